"""Verify on load with provenance: before the first file of a model is opened, the guard
checks that the model has a signed SLSA provenance record from an accepted builder and
source whose subjects are exactly the pinned files (``[guard.provenance]``, see
mlwarden.provenance.policy for the table), once per model.

The files checked are the manifest's pins (sha256 per path), which every later open is
hashed against; the record itself is a pinned file of the model (``provenance.json`` by
default) or a file outside it (an absolute path with {repo}/{commit} placeholders).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlwarden.guard import rules as G
from mlwarden.manifest import ModelEntry
from mlwarden.policy.config import PolicyError, load_table
from mlwarden.provenance.errors import ProvenanceError
from mlwarden.provenance.policy import ProvenanceRequirements, requirements_from_mapping
from mlwarden.provenance.verify import ALWAYS_IGNORED, read_record, verify_files
from mlwarden.report.rules import Rule

ENV_CONFIG = "MLWARDEN_GUARD_PROVENANCE_CONFIG"
ENV_REQUIRE = "MLWARDEN_GUARD_REQUIRE_PROVENANCE"
TABLE = ("guard", "provenance")

Failure = tuple[Rule, str]


def provenance_from_mapping(data: Mapping[str, object], base: str | os.PathLike[str] = ".",
                            source: str = "<mapping>",
                            require: bool | None = None) -> ProvenanceRequirements:
    table = dict(data)
    if require is not None:
        table["require"] = require
        table["models"] = [{**m, "require": require} if isinstance(m, Mapping) else m
                           for m in table.get("models", []) or []]  # type: ignore[attr-defined]
    try:
        return requirements_from_mapping(table, base, source, where="guard.provenance")
    except ProvenanceError as exc:
        raise PolicyError(f"{source}: {exc}") from None


def load_guard_provenance(path: str | os.PathLike[str] | None = None,
                          search_dir: str | os.PathLike[str] | None = None, *,
                          require: bool | None = None, search: bool = True) -> \
        tuple[ProvenanceRequirements | None, Path | None]:
    """``[guard.provenance]`` from ``path``, else (with ``search``) mlwarden.toml /
    pyproject.toml in ``search_dir``. (None, None) when nothing asks for provenance;
    ``require`` without a table is an error (who would be trusted?)."""
    table, found = (None, None)
    if path is not None or search:
        table, found = load_table(TABLE, path, search_dir)
    if table is None:
        if require:
            raise PolicyError("--require-provenance needs a [guard.provenance] table naming "
                              "the accepted builders and signers")
        return None, found
    base = found.parent if found is not None else Path(".")
    return provenance_from_mapping(table, base, str(found), require), found


def provenance_env(config: Path, require: bool) -> dict[str, str]:
    env = {ENV_CONFIG: str(config.resolve())}
    if require:
        env[ENV_REQUIRE] = "1"
    return env


def provenance_from_env(env: Mapping[str, str]) -> ProvenanceRequirements | None:
    if not env.get(ENV_CONFIG):
        return None
    reqs, _ = load_guard_provenance(env[ENV_CONFIG], require=True
                                    if env.get(ENV_REQUIRE) == "1" else None, search=False)
    return reqs


@dataclass
class ProvenanceGate:
    """Verifies each model's provenance once (per repo, commit and directory)."""

    requirements: ProvenanceRequirements
    hash_file: Callable[[str], str]
    outcomes: dict[tuple[str, str, str], Failure | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    verified: int = 0

    def check(self, repo: str, entry: ModelEntry, model_dir: Path,
              fetch: Callable[[str], Path] | None = None) -> None:
        from mlwarden.guard.core import GuardViolation

        req = self.requirements.for_model(repo)
        if not req.checks:
            return
        key = (repo, entry.commit, os.path.abspath(model_dir))
        with self.lock:
            if key in self.outcomes:
                outcome = self.outcomes[key]
            else:
                outcome, final = self._verify(repo, entry, model_dir, fetch)
                if final:
                    self.outcomes[key] = outcome
        if outcome is not None:
            raise GuardViolation(*outcome)

    def _verify(self, repo: str, entry: ModelEntry, model_dir: Path,
                fetch: Callable[[str], Path] | None) -> tuple[Failure | None, bool]:
        req = self.requirements.for_model(repo)
        who = f"{repo}@{entry.commit[:12]}"
        rec_text = req.record_for(repo, entry.commit)
        inside = not os.path.isabs(rec_text)
        if inside and rec_text not in entry.files:
            if not req.require:
                return None, True
            return (G.PROVENANCE_MISSING, f"{who} has no provenance ({rec_text} is not a "
                    f"pinned file) and {self.requirements.source} requires one"), True
        path = model_dir / rec_text if inside else Path(rec_text)
        if inside:
            if not os.path.lexists(path) and fetch is not None:
                try:
                    path = fetch(rec_text)
                except Exception as exc:  # network: not cached, a retry may succeed
                    return (G.PROVENANCE, f"{who}: cannot fetch {rec_text}: {exc}"), False
            try:
                got = self.hash_file(str(path))
            except OSError as exc:
                return (G.PROVENANCE, f"{who}: cannot read {rec_text}: "
                        f"{exc.strerror or exc}"), True
            if got != entry.files[rec_text].sha256:
                return (G.HASH_MISMATCH, f"{who}: {rec_text}: sha256 {got} does not match "
                        f"the pinned {entry.files[rec_text].sha256}"), True
        elif not path.is_file():
            if not req.require:
                return None, True
            return (G.PROVENANCE_MISSING, f"{who} has no provenance at {path} and "
                    f"{self.requirements.source} requires one"), True
        try:
            data = read_record(path)
        except ProvenanceError as exc:
            return (G.PROVENANCE, f"{who}: {exc}"), True
        files = {p: f.sha256 for p, f in entry.files.items()
                 if p != rec_text and not any(p == s or p.startswith(s + "/")
                                              for s in ALWAYS_IGNORED)}
        try:
            res = verify_files(files, data, req.options(), record_name=str(path),
                               display_root=f"{repo}/")
        except ProvenanceError as exc:
            return (G.PROVENANCE, f"{who}: {exc}"), True
        self.verified += 1
        if res.ok:
            return None, True
        problems = [f"{r.path}: {f.rule}: {f.message}" for r in res.report.files
                    for f in r.findings if f.rule != "provenance-verified"]
        return (G.PROVENANCE, f"{who}: provenance does not verify: "
                + "; ".join(problems[:6])), True

