"""Provenance requirements as data, shared by the load guard (``[guard.provenance]``), the
airlock policy (``[policy.provenance]``) and ``mlwarden restore``::

    [policy.provenance]
    require = true                        # models without a record are refused
    record = "provenance.json"            # a file of the model, or an absolute path with
                                          #   {repo} {org} {name} {commit}
    builders = ["https://github.com/acme/train/.github/workflows/train.yml"]
    source = "github.com/acme/train"
    source-ref = "refs/heads/main"        # optional
    public-keys = ["keys/train.pub.pem"]  # trust anchors, as for signatures:
    certificate-chain = []                #   keys, a private CA (+ identities), or
    identities = []                       #   Sigstore identities with issuer
    trust-root = "sigstore/trusted_root.json"
    datasets = ["<sha256>", ...]          # optional: allowed dataset digests
    allow-dirty = false

    [[policy.provenance.models]]          # per model: the first glob that matches
    match = "partner/*"                   #   overrides the table's settings
    builders = ["https://gitlab.com/partner/train/-/runners/42"]

Relative paths are relative to the configuration file. Unknown keys are errors.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.provenance.errors import ProvenanceInputError
from mlwarden.provenance.verify import DEFAULT_NAME, VerifyOptions
from mlwarden.signing.statement import Trust

KEYS = frozenset({"require", "record", "builders", "source", "source-ref", "public-keys",
                  "certificate-chain", "identities", "trust-root", "datasets", "allow-dirty"})
_PLACEHOLDERS = {"repo": "o/n", "org": "o", "name": "n", "commit": "0" * 40}


@dataclass(frozen=True)
class ProvenanceRequirement:
    match: str
    require: bool
    record: str
    builders: tuple[str, ...]
    source: str | None
    source_ref: str | None
    trust: Trust
    datasets: frozenset[str] | None
    allow_dirty: bool

    @property
    def checks(self) -> bool:
        return self.require or bool(self.builders)

    def options(self, ignore: tuple[str, ...] = ()) -> VerifyOptions:
        return VerifyOptions(self.trust, self.builders, self.source, self.source_ref, None,
                             self.datasets, self.allow_dirty, None, ignore)

    def record_for(self, repo: str, commit: str) -> str:
        org, _, name = repo.partition("/")
        return self.record.format_map({"repo": repo, "org": org, "name": name,
                                       "commit": commit})


@dataclass(frozen=True)
class ProvenanceRequirements:
    default: ProvenanceRequirement
    models: tuple[ProvenanceRequirement, ...] = ()
    source: str = "<mapping>"

    def for_model(self, repo: str) -> ProvenanceRequirement:
        for m in self.models:
            if fnmatch.fnmatchcase(repo, m.match):
                return m
        return self.default


def _strs(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = data.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ProvenanceInputError(f"{where}.{key}: expected a list of strings")
    return tuple(v)


def _requirement(data: Mapping[str, Any], base: Path, where: str, match: str) -> \
        ProvenanceRequirement:
    unknown = set(data) - KEYS - {"match", "models"}
    if unknown:
        raise ProvenanceInputError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    for k in ("require", "allow-dirty"):
        if k in data and not isinstance(data[k], bool):
            raise ProvenanceInputError(f"{where}.{k}: expected true or false")
    record = data.get("record", DEFAULT_NAME)
    if not isinstance(record, str) or not record:
        raise ProvenanceInputError(f"{where}.record: expected a path")
    try:
        record.format_map(_PLACEHOLDERS)
    except (KeyError, ValueError, IndexError) as exc:
        raise ProvenanceInputError(f"{where}.record: only {{repo}}, {{org}}, {{name}} and "
                                   f"{{commit}} may be substituted ({exc})") from None
    if not os.path.isabs(record) and ("{" in record or record.startswith("..")):
        raise ProvenanceInputError(f"{where}.record: a relative path names a file of the "
                                   "model (no placeholders, no ..)")

    def path(p: str) -> Path:
        q = Path(p)
        q = q if q.is_absolute() else base / q
        if not q.is_file():
            raise ProvenanceInputError(f"{where}: {q}: no such file")
        return q

    ids: list[tuple[str, str | None]] = []
    for item in data.get("identities", []):
        if not isinstance(item, Mapping) or not isinstance(item.get("identity"), str):
            raise ProvenanceInputError(f"{where}.identities: each entry needs identity = "
                                       "\"...\" (and issuer = \"...\")")
        iss = item.get("issuer")
        ids.append((item["identity"], iss if isinstance(iss, str) else None))
    tr = data.get("trust-root")
    if tr is not None and not isinstance(tr, str):
        raise ProvenanceInputError(f"{where}.trust-root: expected a path")
    trust = Trust(tuple(path(p) for p in _strs(data, "public-keys", where)),
                  tuple(path(p) for p in _strs(data, "certificate-chain", where)),
                  tuple(ids), path(tr) if tr else None)
    datasets = None
    if "datasets" in data:
        datasets = frozenset(d.lower().removeprefix("sha256:") if re.fullmatch(
            r"(?i)(sha256:)?[0-9a-f]{64}", d) else d.lower()
            for d in _strs(data, "datasets", where))
    source = data.get("source")
    ref = data.get("source-ref")
    if (source is not None and not isinstance(source, str)) or \
            (ref is not None and not isinstance(ref, str)):
        raise ProvenanceInputError(f"{where}.source / source-ref: expected strings")
    req = ProvenanceRequirement(
        match=match, require=bool(data.get("require", True)), record=record,
        builders=_strs(data, "builders", where), source=source, source_ref=ref, trust=trust,
        datasets=datasets, allow_dirty=bool(data.get("allow-dirty", False)))
    return req


def _check_anchored(entries: list[ProvenanceRequirement], where: str) -> None:
    """Requiring provenance while accepting no builder or trusting no signer is a mistake,
    not a policy. (One entry may leave the rest unanchored: only its models can load.)"""
    if not any(e.require for e in entries):
        return
    if not any(e.builders for e in entries):
        raise ProvenanceInputError(f"{where}: provenance is required but no builders are "
                                   "accepted (builders = [...])")
    if all(e.trust.empty for e in entries):
        raise ProvenanceInputError(f"{where}: provenance is required but no public key, "
                                   "certificate chain or Sigstore identity is trusted")


def requirements_from_mapping(data: Mapping[str, Any], base: str | os.PathLike[str] = ".",
                              source: str = "<mapping>",
                              where: str = "provenance") -> ProvenanceRequirements:
    root = Path(base)
    top = dict(data)
    models = top.pop("models", [])
    if not isinstance(models, list):
        raise ProvenanceInputError(f"{where}.models must be an array of tables")
    default = _requirement(top, root, where, "*")
    entries = []
    for i, m in enumerate(models):
        w = f"{where}.models[{i}]"
        if not isinstance(m, Mapping) or not isinstance(m.get("match"), str) or \
                not m["match"]:
            raise ProvenanceInputError(f"{w}: needs match = \"ORG/NAME glob\"")
        merged = {**{k: v for k, v in top.items() if k in KEYS}, **dict(m)}
        entries.append(_requirement(merged, root, w, m["match"]))
    _check_anchored([default, *entries], where)
    return ProvenanceRequirements(default, tuple(entries), source)
