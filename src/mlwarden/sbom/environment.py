"""The Python side of an ML-BOM: installed distributions (importlib.metadata: metadata files
only, nothing imported) or a lock file (parsed by mlwarden.deps' bounded parsers)."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from packageurl import PackageURL

from mlwarden.sbom.errors import SbomInputError

_ALGS = {"sha256", "sha384", "sha512", "sha1", "md5"}


@dataclass(frozen=True)
class Library:
    name: str  # canonical name
    version: str | None
    hashes: tuple[tuple[str, str], ...] = ()  # (algorithm, hex digest) of the artifact(s)
    source: str = ""  # "installed" or the lock file
    properties: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def purl(self) -> str:
        return str(PackageURL("pypi", None, self.name, self.version))


def _split_hash(text: str) -> tuple[str, str] | None:
    for sep in (":", "="):
        alg, s, value = text.partition(sep)
        if s and alg.lower() in _ALGS and value and all(c in "0123456789abcdefABCDEF"
                                                         for c in value):
            return alg.lower(), value.lower()
    return None


def installed(paths: list[str] | None = None) -> list[Library]:
    """Distributions visible to this interpreter. The artifact hash comes from PEP 610
    direct_url.json when the installer recorded one; otherwise the sha256 of RECORD (which
    lists every installed file with its own hash) is given as a property, not as an
    artifact hash, because it is not the hash of any wheel."""
    from packaging.utils import canonicalize_name

    libs: dict[str, Library] = {}
    for dist in (md.distributions(path=paths) if paths else md.distributions()):
        try:
            raw, version = dist.metadata["Name"], dist.version
        except Exception:
            continue
        if not raw or not version:
            continue
        name = str(canonicalize_name(raw))
        if name in libs:  # first on the path wins, as for the import system
            continue
        hashes: list[tuple[str, str]] = []
        props: list[tuple[str, str]] = []
        try:
            direct = dist.read_text("direct_url.json")
            info = json.loads(direct).get("archive_info", {}) if direct else {}
            for h in [*(f"{k}={v}" for k, v in (info.get("hashes") or {}).items()),
                      *([info["hash"]] if isinstance(info.get("hash"), str) else [])]:
                parsed = _split_hash(h)
                if parsed and parsed not in hashes:
                    hashes.append(parsed)
        except (ValueError, AttributeError, OSError):
            pass
        try:
            record = dist.read_text("RECORD")
        except OSError:
            record = None
        if record:
            props.append(("mlwarden:record-sha256",
                          hashlib.sha256(record.encode("utf-8")).hexdigest()))
        libs[name] = Library(name, version, tuple(hashes), "installed", tuple(props))
    return sorted(libs.values(), key=lambda lib: lib.name)


def from_lockfile(path: str | os.PathLike[str]) -> list[Library]:
    """requirements (with --hash), uv.lock, poetry.lock, pylock.toml."""
    from mlwarden.deps.inputs.discover import DiscoveryError, parse_file

    p = Path(path)
    if not p.is_file():
        raise SbomInputError(f"{p}: no such lock file")
    try:
        parsed = parse_file(p, p.parent)
    except DiscoveryError as exc:
        raise SbomInputError(str(exc)) from exc
    except OSError as exc:
        raise SbomInputError(f"{p}: cannot read: {exc.strerror}") from exc
    libs: dict[tuple[str, str | None], Library] = {}
    for doc in parsed:
        errors = [f.message for f in doc.findings if f.rule.endswith("parse-error")]
        if errors and not doc.deps:
            raise SbomInputError(f"{doc.path}: {errors[0]}")
        for d in doc.deps:
            hashes = tuple(h for h in (_split_hash(x) for x in d.hashes) if h)
            props = (("mlwarden:url", d.url),) if d.url else ()
            libs.setdefault((d.name, d.version),
                            Library(d.name, d.version, hashes, doc.path, props))
    return sorted(libs.values(), key=lambda lib: (lib.name, lib.version or ""))
