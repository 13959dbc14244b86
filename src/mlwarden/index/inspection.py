"""What happens to a file in quarantine, before anyone can download it.

The file is validated as the distribution its name claims (archive readable, metadata
names the same project and version), its core metadata is extracted (PEP 658), and the
package behaviour analyser (``deps inspect``) reads its install-time, import-time and
interpreter-start code. Nothing in it is executed, built or imported.
"""

from __future__ import annotations

import email.parser
import email.policy
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlwarden.index import rules as R
from mlwarden.index.names import DistName
from mlwarden.report.model import Finding

MAX_METADATA = 4 << 20


@dataclass(frozen=True)
class Inspected:
    findings: tuple[Finding, ...]
    metadata: bytes | None  # wheel METADATA or sdist PKG-INFO
    requires_python: str | None
    seconds: float


def read_metadata(path: Path, dist: DistName) -> bytes:
    """The core metadata file, read with bounds; raises ValueError when absent or invalid."""
    if dist.kind == "wheel":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist()
                         if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
                if len(names) != 1:
                    raise ValueError(f"expected one .dist-info/METADATA, found {len(names)}")
                info = zf.getinfo(names[0])
                if info.file_size > MAX_METADATA:
                    raise ValueError("METADATA is too large")
                return zf.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
            raise ValueError(f"not a readable wheel ({exc})") from exc
    if path.name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.count("/") == 1
                         and n.endswith("/PKG-INFO")]
                if len(names) != 1:
                    raise ValueError("expected one top-level PKG-INFO")
                info = zf.getinfo(names[0])
                if info.file_size > MAX_METADATA:
                    raise ValueError("PKG-INFO is too large")
                return zf.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
            raise ValueError(f"not a readable sdist ({exc})") from exc
    try:
        with tarfile.open(path, "r|*") as tf:
            for m in tf:
                if m.isfile() and m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"):
                    if m.size > MAX_METADATA:
                        raise ValueError("PKG-INFO is too large")
                    fh = tf.extractfile(m)
                    if fh is None:
                        break
                    return fh.read(MAX_METADATA)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"not a readable sdist ({exc})") from exc
    raise ValueError("no top-level PKG-INFO")


def parse_metadata(data: bytes) -> email.message.Message:
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)


def check_identity(meta: email.message.Message, dist: DistName) -> str | None:
    """Why the metadata does not match the filename, or None."""
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        return "metadata has no Name or Version"
    if str(canonicalize_name(str(name))) != dist.project:
        return f"metadata names project {name!r}, the filename {dist.project!r}"
    try:
        if Version(str(version)) != Version(dist.version):
            return f"metadata says version {version}, the filename {dist.version}"
    except InvalidVersion:
        return f"metadata version {version!r} is not a valid version"
    return None


def inspect_file(path: Path, dist: DistName) -> Inspected:
    """Validate and inspect one quarantined distribution."""
    from mlwarden.deps.inspect.engine import InspectError, inspect_target

    started = time.monotonic()
    findings: list[Finding] = []
    metadata: bytes | None = None
    requires_python: str | None = None
    try:
        metadata = read_metadata(path, dist)
        meta = parse_metadata(metadata)
        problem = check_identity(meta, dist)
        if problem:
            findings.append(R.BAD_DISTRIBUTION.finding(f"{dist.filename}: {problem}"))
        rp = meta.get("Requires-Python")
        requires_python = str(rp).strip() if rp else None
    except ValueError as exc:
        findings.append(R.BAD_DISTRIBUTION.finding(f"{dist.filename}: {exc}"))
        metadata = None
    try:
        result = inspect_target(path)
        findings.extend(result.findings)
    except InspectError as exc:
        findings.append(R.BAD_DISTRIBUTION.finding(f"{dist.filename}: {exc}"))
    return Inspected(tuple(findings), metadata, requires_python, time.monotonic() - started)
