"""The airlock policy as data: ``[policy]`` in mlwarden.toml or ``[tool.mlwarden.policy]``
in pyproject.toml. Unknown keys are errors, so a typo never silently weakens the policy."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mlwarden.report.model import Verdict

TIERS = ("new", "established", "official")  # lowest to highest
_SIZE = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class PolicyError(Exception):
    """The policy file cannot be used; shown as one line."""


@dataclass(frozen=True)
class PolicyException:
    """A waiver of one rule, pinned to file content (sha256) or to a model commit."""

    rule: str
    justification: str
    approver: str
    expires: dt.date
    sha256: str | None = None
    model: str | None = None
    commit: str | None = None

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def describe(self) -> str:
        pin = f"sha256 {self.sha256[:12]}" if self.sha256 else f"{self.model}@{self.commit}"
        return (f"{self.rule} waived for {pin} by {self.approver} until "
                f"{self.expires.isoformat()}: {self.justification}")

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"rule": self.rule, "justification": self.justification,
                                "approver": self.approver, "expires": self.expires.isoformat()}
        for k in ("sha256", "model", "commit"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        return d


@dataclass(frozen=True)
class RemoteCodeReview:
    model: str
    commit: str
    reviewer: str
    note: str = ""


@dataclass(frozen=True)
class Policy:
    require_safetensors: bool = True
    allowed_orgs: tuple[str, ...] = ()  # empty: any org
    blocked_orgs: tuple[str, ...] = ()
    official_orgs: tuple[str, ...] = ()  # added to the shipped list
    established_orgs: tuple[str, ...] = ()
    min_trust: str = "new"
    typosquat: str = "block"  # block | warn | off
    require_pinned: bool = False
    block_verdict: Verdict = Verdict.UNSCANNABLE  # this verdict and worse are blocked
    max_file_size: int | None = None
    max_total_size: int | None = None
    remote_code: tuple[RemoteCodeReview, ...] = ()
    exceptions: tuple[PolicyException, ...] = ()
    source: str = "built-in defaults"
    # Registry review: two distinct approvers, neither of them the pusher's owner.
    two_person_review: bool = False

    def reviewed(self, model: str, commit: str) -> RemoteCodeReview | None:
        for r in self.remote_code:
            if r.model == model and r.commit == commit:
                return r
        return None

    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the effective settings (defaults included, ``source`` not):
        the policy version recorded in the approval log, so two runs under the same rules
        name the same version wherever the file lives."""
        def plain(v: Any) -> Any:
            if isinstance(v, Verdict):
                return v.value
            if isinstance(v, dt.date):
                return v.isoformat()
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        body = {k: plain(v) for k, v in dataclasses.asdict(self).items() if k != "source"}
        if not self.two_person_review:  # added later: leave existing policy versions as they were
            del body["two_person_review"]
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def parse_size(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        m = _SIZE.fullmatch(value)
        if m and (m.group(2) or "").lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
    raise PolicyError(f"policy.{key}: expected a size such as 2GB, 500MiB or a byte count")


def _strs(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    v = data.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise PolicyError(f"policy.{key}: expected a list of strings")
    return tuple(v)


def _date(v: Any, where: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v[:10])
        except ValueError:
            pass
    raise PolicyError(f"{where}: expires must be a date (YYYY-MM-DD)")


def _exception(item: Any, i: int) -> PolicyException:
    where = f"policy.exceptions[{i}]"
    if not isinstance(item, Mapping):
        raise PolicyError(f"{where}: expected a table")
    unknown = set(item) - {"rule", "sha256", "model", "commit", "justification", "approver",
                           "expires"}
    if unknown:
        raise PolicyError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    for k in ("rule", "justification", "approver"):
        if not isinstance(item.get(k), str) or not item[k].strip():
            raise PolicyError(f"{where}: {k} is required (a non-empty string)")
    if "expires" not in item:
        raise PolicyError(f"{where}: expires is required: exceptions must not be permanent")
    sha = item.get("sha256")
    model, commit = item.get("model"), item.get("commit")
    if sha is not None:
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha.lower()):
            raise PolicyError(f"{where}: sha256 must be 64 hex digits")
        sha = sha.lower()
    elif not (isinstance(model, str) and isinstance(commit, str)
              and _HEX40.fullmatch(commit.lower())):
        raise PolicyError(f"{where}: pin it with sha256 = <file sha256>, or with model = "
                          "ORG/NAME and commit = <40-hex commit>")
    return PolicyException(
        rule=item["rule"].strip(), justification=item["justification"].strip(),
        approver=item["approver"].strip(), expires=_date(item["expires"], where), sha256=sha,
        model=model if isinstance(model, str) else None,
        commit=commit.lower() if isinstance(commit, str) else None)


def _review(item: Any, i: int) -> RemoteCodeReview:
    where = f"policy.remote-code[{i}]"
    if not isinstance(item, Mapping):
        raise PolicyError(f"{where}: expected a table")
    model, commit, reviewer = item.get("model"), item.get("commit"), item.get("reviewer")
    if not (isinstance(model, str) and isinstance(commit, str) and isinstance(reviewer, str)
            and _HEX40.fullmatch(commit) and reviewer.strip()):
        raise PolicyError(f"{where}: needs model = ORG/NAME, commit = <40-hex commit> and "
                          "reviewer = NAME")
    note = item.get("note", "")
    return RemoteCodeReview(model, commit, reviewer.strip(), note if isinstance(note, str) else "")


_KEYS = {"require-safetensors", "allowed-orgs", "blocked-orgs", "official-orgs",
         "established-orgs", "min-trust", "typosquat", "require-pinned", "block-verdict",
         "max-file-size", "max-total-size", "remote-code", "exceptions", "two-person-review"}


def policy_from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> Policy:
    unknown = set(data) - _KEYS
    if unknown:
        raise PolicyError(f"{source}: unknown policy keys {', '.join(sorted(unknown))}")
    for key in ("require-safetensors", "require-pinned", "two-person-review"):
        if key in data and not isinstance(data[key], bool):
            raise PolicyError(f"policy.{key}: expected true or false")
    min_trust = data.get("min-trust", "new")
    if min_trust not in TIERS:
        raise PolicyError(f"policy.min-trust: expected one of {', '.join(TIERS)}")
    typo = data.get("typosquat", "block")
    if typo not in ("block", "warn", "off"):
        raise PolicyError("policy.typosquat: expected block, warn or off")
    bv = data.get("block-verdict", "unscannable")
    try:
        block_verdict = Verdict(bv)
    except ValueError:
        raise PolicyError("policy.block-verdict: expected malicious, unscannable or "
                          "suspicious") from None
    if block_verdict is Verdict.CLEAN:
        raise PolicyError("policy.block-verdict: 'clean' would block every model")
    exc = data.get("exceptions", [])
    rc = data.get("remote-code", [])
    if not isinstance(exc, list) or not isinstance(rc, list):
        raise PolicyError("policy.exceptions and policy.remote-code must be arrays of tables")
    return Policy(
        require_safetensors=data.get("require-safetensors", True),
        allowed_orgs=_strs(data, "allowed-orgs"), blocked_orgs=_strs(data, "blocked-orgs"),
        official_orgs=_strs(data, "official-orgs"),
        established_orgs=_strs(data, "established-orgs"), min_trust=min_trust, typosquat=typo,
        require_pinned=data.get("require-pinned", False), block_verdict=block_verdict,
        max_file_size=parse_size(data["max-file-size"], "max-file-size")
        if "max-file-size" in data else None,
        max_total_size=parse_size(data["max-total-size"], "max-total-size")
        if "max-total-size" in data else None,
        remote_code=tuple(_review(x, i) for i, x in enumerate(rc)),
        exceptions=tuple(_exception(x, i) for i, x in enumerate(exc)),
        source=source, two_person_review=data.get("two-person-review", False))


def load_policy(path: str | os.PathLike[str] | None = None,
                search_dir: str | os.PathLike[str] | None = None) -> Policy:
    """Read the policy from ``path``, else from mlwarden.toml / pyproject.toml in
    ``search_dir`` (default: the current directory), else the built-in defaults."""
    if path is None:
        base = Path(search_dir or ".")
        for candidate in (base / "mlwarden.toml", base / "pyproject.toml"):
            if candidate.is_file():
                table = _table(candidate)
                if table is not None:
                    return policy_from_mapping(table, str(candidate))
        return Policy()
    p = Path(path)
    if not p.is_file():
        raise PolicyError(f"{p}: policy file not found")
    table = _table(p)
    return policy_from_mapping(table or {}, str(p))


def _table(p: Path, keys: tuple[str, ...] = ("policy",)) -> dict[str, Any] | None:
    try:
        if p.stat().st_size > 4 << 20:
            raise PolicyError(f"{p}: policy file larger than 4 MiB")
        doc = tomllib.loads(p.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{p}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{p}: invalid TOML: {exc}") from exc
    if p.name == "pyproject.toml":
        doc = doc.get("tool", {}).get("mlwarden", {})
        if not isinstance(doc, dict):
            return None
    t: Any = doc
    for key in keys:
        t = t.get(key) if isinstance(t, dict) else None
        if t is None:
            return None
    if not isinstance(t, dict):
        raise PolicyError(f"{p}: {'.'.join(keys)} must be a table")
    return t


def load_table(keys: tuple[str, ...], path: str | os.PathLike[str] | None = None,
               search_dir: str | os.PathLike[str] | None = None) -> \
        tuple[dict[str, Any] | None, Path | None]:
    """Another table of the same configuration (e.g. ``("guard", "signing")``), found the
    way ``load_policy`` finds ``[policy]``: ``path``, else mlwarden.toml, else pyproject.toml
    (``[tool.mlwarden...]``) in ``search_dir``. Returns (table or None, file it came from)."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise PolicyError(f"{p}: configuration file not found")
        return _table(p, keys), p
    base = Path(search_dir or ".")
    for candidate in (base / "mlwarden.toml", base / "pyproject.toml"):
        if candidate.is_file():
            table = _table(candidate, keys)
            if table is not None:
                return table, candidate
    return None, None


__all__ = ["TIERS", "Policy", "PolicyError", "PolicyException", "RemoteCodeReview",
           "load_policy", "load_table", "policy_from_mapping"]
