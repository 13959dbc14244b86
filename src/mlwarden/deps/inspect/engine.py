"""``mlwarden deps inspect``: read a wheel, sdist, directory or installed distribution with
bounded readers (zipfile, tarfile in stream mode, os.walk, importlib.metadata RECORD), pick
the files that run code (setup.py, pyproject build backend, .pth, __init__ and top-level
modules) and analyse them statically."""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlwarden.deps.inputs import tomllib
from mlwarden.deps.inspect import analysis as an
from mlwarden.deps.inspect import rules as R
from mlwarden.report.model import FileResult, Finding, Location, Report, Verdict

MAX_MEMBERS = 50_000
MAX_FILE = an.MAX_SOURCE
MAX_TOTAL = 512 << 20  # bytes read (or streamed past) per target
_SKIP_PARTS = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks",
               ".git", "__pycache__", ".tox", ".venv", "venv", "node_modules"}


class InspectError(Exception):
    pass


@dataclass(frozen=True)
class Member:
    path: str  # relative, posix
    read: Callable[[], bytes]


def role(path: str, strip_tests: bool) -> str | None:
    p = PurePosixPath(path)
    parts = p.parts
    if not parts:
        return None
    if any(part.endswith((".dist-info", ".egg-info")) for part in parts[:-1]):
        return None
    if strip_tests and any(part in _SKIP_PARTS for part in parts[:-1]):
        return None
    name = parts[-1]
    if name == "setup.py" and len(parts) == 1:
        return "setup"
    if name == "pyproject.toml" and len(parts) == 1:
        return "pyproject"
    if name.endswith(".pth"):
        return "pth"
    if name == "__init__.py":
        return "module"
    if name.endswith(".py") and name not in ("setup.py", "conftest.py", "noxfile.py") and (
            len(parts) == 1 or (len(parts) == 2 and parts[0] in ("src", "lib"))):
        return "module"
    return None


# ----------------------------------------------------------------------------- readers

def _bounded(data: bytes, path: str) -> bytes:
    if len(data) > MAX_FILE:
        raise an.SourceError(f"{path}: larger than {MAX_FILE} bytes")
    return data


def zip_members(path: Path) -> Iterator[Member]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InspectError(f"{path}: not a readable zip archive ({exc})") from exc
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise InspectError(f"{path}: more than {MAX_MEMBERS} members")
    for info in infos:
        if info.is_dir():
            continue

        def read(info: zipfile.ZipInfo = info) -> bytes:
            if info.file_size > MAX_FILE:
                raise an.SourceError(f"{info.filename}: larger than {MAX_FILE} bytes")
            with zf.open(info) as fh:
                return _bounded(fh.read(MAX_FILE + 1), info.filename)

        yield Member(info.filename, read)


def tar_members(path: Path, wanted: Callable[[str], bool]) -> Iterator[Member]:
    """Stream the archive once; only wanted members are read (into memory, bounded)."""
    try:
        tf = tarfile.open(path, "r|*")  # noqa: SIM115 - closed in the generator's finally
    except (tarfile.TarError, OSError) as exc:
        raise InspectError(f"{path}: not a readable tar archive ({exc})") from exc
    count = 0
    try:
        for m in tf:
            count += 1
            if count > MAX_MEMBERS or m.offset_data + m.size > MAX_TOTAL:
                raise InspectError(f"{path}: archive exceeds {MAX_MEMBERS} members or "
                                   f"{MAX_TOTAL} bytes")
            if not m.isfile() or not wanted(m.name):
                continue
            if m.size > MAX_FILE:
                data: bytes | an.SourceError = an.SourceError(
                    f"{m.name}: larger than {MAX_FILE} bytes")
            else:
                fh = tf.extractfile(m)
                data = fh.read(MAX_FILE + 1) if fh else b""

            def read(data: bytes | an.SourceError = data) -> bytes:
                if isinstance(data, an.SourceError):
                    raise data
                return data

            yield Member(m.name, read)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InspectError(f"{path}: corrupt tar archive ({exc})") from exc
    finally:
        tf.close()


def dir_members(root: Path) -> Iterator[Member]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_PARTS
                             and not os.path.islink(os.path.join(dirpath, d)))
        for fname in sorted(filenames):
            count += 1
            if count > MAX_MEMBERS:
                raise InspectError(f"{root}: more than {MAX_MEMBERS} files")
            full = Path(dirpath, fname)
            rel = full.relative_to(root).as_posix()

            def read(full: Path = full, rel: str = rel) -> bytes:
                if full.is_symlink() or not full.is_file():
                    raise an.SourceError(f"{rel}: not a regular file")
                with full.open("rb") as fh:
                    return _bounded(fh.read(MAX_FILE + 1), rel)

            yield Member(rel, read)


def _strip_root(names: list[str]) -> str:
    """The sdist's single top directory ("pkg-1.0/"), if every member sits inside one."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return next(iter(tops)) + "/"
    return ""


# ----------------------------------------------------------------------------- analysis

_KIND_RULE = {an.NETWORK: R.NETWORK, an.PROCESS: R.PROCESS, an.SECRETS: R.SECRETS,
              an.DYNAMIC_EXEC: R.DYNAMIC_EXEC, an.OBFUSCATED_EXEC: R.OBFUSCATED_EXEC,
              an.AGENT_MEMORY: R.AGENT_MEMORY, an.OUTSIDE_WRITE: R.OUTSIDE_WRITE}


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.files = 0

    def behaviours(self, rel: str, phase: str, found: list[an.Behaviour],
                   line_offset: int = 0) -> None:
        guards: set[str] = set()
        for b in found:
            where = Location(member=rel, line=b.line + line_offset)
            self.findings.append(_KIND_RULE[b.kind].finding(f"{phase}: {b.detail}", where))
            if b.guard and b.guard not in guards:
                guards.add(b.guard)
                self.findings.append(R.CONDITIONAL_TRIGGER.finding(
                    f"{phase}: {b.detail} {b.guard}", where))
        kinds = {b.kind for b in found}
        if an.SECRETS in kinds and an.NETWORK in kinds:
            first = min(b.line for b in found if b.kind == an.SECRETS)
            self.findings.append(R.EXFILTRATION.finding(
                f"{phase}: reads secrets and opens network connections in the same code",
                Location(member=rel, line=first + line_offset)))

    def source(self, rel: str, data: bytes, phase: str, install: bool) -> None:
        self.files += 1
        text = data.decode("utf-8", errors="replace")
        try:
            self.behaviours(rel, phase, an.analyse(text, rel, install_time=install))
        except an.SourceError as exc:
            self.findings.append(R.UNREADABLE.finding(str(exc), Location(member=rel)))
        if install:
            for line, cmd in an.cmdclass_overrides(text):
                self.findings.append(R.CMDCLASS.finding(
                    f"setup.py replaces the '{cmd}' command", Location(member=rel, line=line)))

    def pth(self, rel: str, data: bytes) -> None:
        self.files += 1
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.startswith(("import ", "import\t")):
                continue  # other lines are only added to sys.path
            stripped = line.strip()
            if stripped in R.KNOWN_PTH_LINES:
                continue
            self.findings.append(R.PTH_EXEC.finding(
                f"executable line runs at every interpreter start: {stripped[:120]}",
                Location(member=rel, line=number)))
            try:
                found = an.analyse(line, rel)
            except an.SourceError:
                continue
            self.behaviours(rel, "interpreter start (.pth)", found, line_offset=number - 1)

    def pyproject(self, rel: str, data: bytes) -> None:
        self.files += 1
        try:
            doc: dict[str, Any] = tomllib.loads(data.decode("utf-8", errors="replace"))
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            self.findings.append(R.UNREADABLE.finding(f"{rel}: invalid TOML ({exc})",
                                                      Location(member=rel)))
            return
        build = _dict(doc.get("build-system"))
        backend_path = build.get("backend-path")
        if backend_path:
            self.findings.append(R.IN_TREE_BACKEND.finding(
                f"build backend {build.get('build-backend')!r} is loaded from the package "
                f"itself (backend-path = {backend_path!r})", Location(member=rel)))
        st = _dict(_dict(doc.get("tool")).get("setuptools"))
        if isinstance(st.get("cmdclass"), dict):
            for cmd, target in st["cmdclass"].items():
                self.findings.append(R.CMDCLASS.finding(
                    f"[tool.setuptools] cmdclass replaces '{cmd}' with {target}",
                    Location(member=rel)))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _analyse(label: str, fmt: str, members: Iterator[Member], strip_tests: bool,
             prefix: str = "") -> FileResult:
    col = _Collector()
    try:
        for m in members:
            rel = m.path[len(prefix):] if prefix and m.path.startswith(prefix) else m.path
            kind = role(rel, strip_tests)
            if kind is None:
                continue
            try:
                data = m.read()
            except an.SourceError as exc:
                col.findings.append(R.UNREADABLE.finding(str(exc), Location(member=rel)))
                continue
            except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
                col.findings.append(R.UNREADABLE.finding(f"{rel}: unreadable ({exc})",
                                                         Location(member=rel)))
                continue
            if kind == "setup":
                col.source(rel, data, "install-time (setup.py)", install=True)
            elif kind == "pyproject":
                col.pyproject(rel, data)
            elif kind == "pth":
                col.pth(rel, data)
            else:
                col.source(rel, data, "import-time", install=False)
    except InspectError as exc:
        col.findings.append(R.UNREADABLE.finding(str(exc)))
    if col.files == 0 and not col.findings:
        col.findings.append(R.NOTHING.finding("no setup.py, .pth or Python module found"))
    findings = tuple(col.findings)
    return FileResult(label, fmt, Verdict.worst(f.verdict for f in findings), None, None,
                      findings)


def inspect_target(path: Path) -> FileResult:
    label = str(path)
    if not path.exists():
        raise InspectError(f"{path}: no such file or directory")
    if path.is_dir():
        return _analyse(label, "directory", dir_members(path), strip_tests=True)
    name = path.name.lower()
    if name.endswith(".whl"):
        return _analyse(label, "wheel", zip_members(path), strip_tests=False)
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                prefix = _strip_root(zf.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise InspectError(f"{path}: not a readable zip archive ({exc})") from exc
        return _analyse(label, "sdist", zip_members(path), strip_tests=True, prefix=prefix)
    if name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        # One streaming pass: the sdist's top directory is the first path component.
        def wanted(member: str) -> bool:
            rel = member.split("/", 1)[1] if "/" in member else member
            return role(rel, strip_tests=True) is not None

        members = (Member(m.path.split("/", 1)[1] if "/" in m.path else m.path, m.read)
                   for m in tar_members(path, wanted))
        return _analyse(label, "sdist", members, strip_tests=True)
    raise InspectError(f"{path}: not a wheel (.whl), sdist (.tar.gz/.zip) or directory")


def inspect_paths(paths: list[Path]) -> Report:
    started = time.monotonic()
    results = tuple(inspect_target(p) for p in paths)
    return Report("deps inspect", results, time.monotonic() - started)


def inspect_installed(names: list[str], site_dirs: list[str] | None = None) -> Report:
    """Installed distributions: the files their RECORD lists, read from the site directory."""
    from packaging.utils import canonicalize_name

    started = time.monotonic()
    wanted = {str(canonicalize_name(n)) for n in names}
    dists = md.distributions(path=site_dirs) if site_dirs else md.distributions()
    results: list[FileResult] = []
    seen: set[str] = set()
    for dist in dists:
        try:
            raw = dist.metadata["Name"] or ""
        except Exception:
            continue
        canon = str(canonicalize_name(raw))
        if (wanted and canon not in wanted) or canon in seen:
            continue
        seen.add(canon)
        base = Path(str(dist.locate_file("")))
        files = [str(f) for f in (dist.files or [])]

        def members(files: list[str] = files, base: Path = base) -> Iterator[Member]:
            for rel in files:
                full = base / rel

                def read(full: Path = full, rel: str = rel) -> bytes:
                    if not full.is_file():
                        raise an.SourceError(f"{rel}: listed in RECORD but missing")
                    with full.open("rb") as fh:
                        return _bounded(fh.read(MAX_FILE + 1), rel)

                yield Member(rel.replace(os.sep, "/"), read)

        results.append(_analyse(f"installed:{raw}=={dist.version}", "installed", members(),
                                strip_tests=False))
    missing = wanted - seen
    if missing:
        raise InspectError("not installed: " + ", ".join(sorted(missing)))
    return Report("deps inspect", tuple(results), time.monotonic() - started,
                  meta={"python": sys.executable})
