"""``mlwarden deps inspect``: read a wheel, sdist, directory or installed distribution with
bounded readers (zipfile, tarfile in stream mode, os.walk, importlib.metadata RECORD), pick
the files that run code (setup.py, pyproject build backend, .pth, __init__ and top-level
modules) and analyse them statically."""

from __future__ import annotations

import ast
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

from mlwarden.behaviour import collect as c
from mlwarden.behaviour import entry
from mlwarden.behaviour import rules as BR
from mlwarden.behaviour.parse import no_gc
from mlwarden.behaviour.policy import PACKAGE, Root, judge
from mlwarden.behaviour.program import Program, analyse_module
from mlwarden.deps.inputs import tomllib
from mlwarden.deps.inspect import rules as R
from mlwarden.report.model import FileResult, Finding, Location, Report, Verdict
from mlwarden.scan.remote_code import nested_pickle_findings

MAX_MEMBERS = 50_000
MAX_FILE = 8 << 20
HEAD = 4096  # bytes of a non-code member probed for native code
MAX_TOTAL = 512 << 20  # bytes read (or streamed past) per target
_SKIP_PARTS = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks",
               "scripts", "tools", "ci", "dev", "build_tools", "asv_bench", "bench",
               ".git", "__pycache__", ".tox", ".venv", "venv", "node_modules"}


_TEST_PARTS = {"tests", "test", "testing", "benchmarks", "examples"}


class InspectError(Exception):
    pass


class SourceError(Exception):
    """One member cannot be read (over the bound, not a regular file)."""


@dataclass(frozen=True)
class Member:
    path: str  # relative, posix
    read: Callable[[], bytes]
    head: Callable[[], bytes] | None = None  # first 4 KiB (binary probe of non-code members)


# ----------------------------------------------------------------------------- readers

def _bounded(data: bytes, path: str) -> bytes:
    if len(data) > MAX_FILE:
        raise SourceError(f"{path}: larger than {MAX_FILE} bytes")
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
                raise SourceError(f"{info.filename}: larger than {MAX_FILE} bytes")
            with zf.open(info) as fh:
                return _bounded(fh.read(MAX_FILE + 1), info.filename)

        def head(info: zipfile.ZipInfo = info) -> bytes:
            with zf.open(info) as fh:
                return fh.read(HEAD)

        yield Member(info.filename, read, head)


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
            code = is_code(m.name)
            if code and m.size > MAX_FILE:
                data: bytes | SourceError = SourceError(
                    f"{m.name}: larger than {MAX_FILE} bytes")
            else:
                fh = tf.extractfile(m)
                data = (fh.read(MAX_FILE + 1) if code else fh.read(HEAD)) if fh else b""

            def read(data: bytes | SourceError = data) -> bytes:
                if isinstance(data, SourceError):
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

            def read(full: Path = full, rel: str = rel, n: int | None = None) -> bytes:
                if full.is_symlink() or not full.is_file():
                    raise SourceError(f"{rel}: not a regular file")
                if n is not None:
                    with full.open("rb") as fh:
                        return fh.read(n)
                with full.open("rb") as fh:
                    return _bounded(fh.read(MAX_FILE + 1), rel)

            def head(read: Callable[..., bytes] = read) -> bytes:
                return read(n=HEAD)

            yield Member(rel, read, head)


def _strip_root(names: list[str]) -> str:
    """The sdist's single top directory ("pkg-1.0/"), if every member sits inside one."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return next(iter(tops)) + "/"
    return ""


# ----------------------------------------------------------------------------- analysis

_NATIVE_MAGIC = ((b"\x7fELF", "ELF"), (b"MZ", "PE"), (b"\xcf\xfa\xed\xfe", "Mach-O"),
                 (b"\xce\xfa\xed\xfe", "Mach-O"), (b"\xfe\xed\xfa\xcf", "Mach-O"),
                 (b"\xca\xfe\xba\xbe", "Mach-O universal"))
_NATIVE_SUFFIXES = (".so", ".pyd", ".dll", ".dylib", ".exe", ".bin", ".node", ".a", ".lib",
                    ".o", ".sys", ".elf", ".out", ".com", ".scr", ".msi")
# Names under which native code hides as data: a binary here is disguised.
_DATA_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".txt", ".md", ".rst",
                  ".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".csv", ".html", ".css",
                  ".js", ".py", ".pyi", ".pth", ".dat", ".db", ".xml", ".svg", ".wav", ".mp3",
                  ".pdf", ".zip", ".gz", ".pkl", ".pickle", ".npy", ".typed")
MAX_PENDING = 64 << 20  # source of skipped directories kept for on-demand analysis
MAX_SOURCE_TOTAL = 256 << 20  # Python source analysed per package


def native_kind(data: bytes) -> str | None:
    """ELF, PE (MZ header pointing at a PE signature) or Mach-O, by content."""
    for magic, kind in _NATIVE_MAGIC:
        if data.startswith(magic):
            if kind == "PE":
                off = int.from_bytes(data[0x3C:0x40], "little") if len(data) >= 0x40 else -1
                if not 0 < off < len(data) - 4 or data[off:off + 4] != b"PE\0\0":
                    return None
            if kind == "ELF" and len(data) >= 20:
                # GPU code objects (AMD *.co/*.hsaco, NVIDIA cubins) are ELF files that no
                # CPU runs: kernels shipped by ML libraries, not native executables
                machine = data[18:20] if data[5:6] == b"\x01" else data[19:17:-1]
                if int.from_bytes(machine, "little") in _GPU_MACHINES:
                    return "GPU ELF"
            return kind
    return None


_GPU_MACHINES = frozenset({190, 224})  # e_machine EM_CUDA, EM_AMDGPU


def module_name(rel: str) -> tuple[str, bool] | None:
    """Dotted module name of a ``.py`` member (wheel, sdist or tree layout), and whether it
    is a package's ``__init__``."""
    parts = list(PurePosixPath(rel).parts)
    if not parts or not parts[-1].endswith(".py"):
        return None
    if len(parts) > 2 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
        parts = parts[2:]
    elif parts[0] in ("src", "lib", "python") and len(parts) > 1:
        parts = parts[1:]
    stem = parts[-1][:-3]
    package = stem == "__init__"
    names = parts[:-1] if package else [*parts[:-1], stem]
    if not names or not all(n.isidentifier() for n in names):
        return None
    return ".".join(names), package


class _Inspection:
    """Members of one package, analysed as one program."""

    def __init__(self, strip_tests: bool) -> None:
        self.strip_tests = strip_tests
        self.findings: list[Finding] = []
        self.files = 0
        self.program = Program(callbacks=False)
        self.roots: list[Root] = []
        self.paths: dict[str, str] = {}  # module key -> member path
        self.pending: dict[str, tuple[str, bytes, bool]] = {}
        self.pending_bytes = 0
        self.source_bytes = 0
        self.members: list[str] = []
        self.binaries: list[tuple[str, str]] = []
        self.pure = False  # a py3-none-any wheel
        self.backend: tuple[str, list[str]] | None = None

    def skipped(self, rel: str) -> bool:
        """Tests, docs, examples: analysed only when analysed code imports them (in
        wheels too: a package's test modules are installed but not imported by use)."""
        parts = PurePosixPath(rel).parts
        skip = _SKIP_PARTS if self.strip_tests else _TEST_PARTS
        return any(p.lower() in skip for p in parts[:-1])

    def _in_package(self, rel: str) -> bool:
        """Installed code of an sdist or tree: top-level modules and files inside package
        directories (a directory with an __init__.py). Helper scripts under tools/, ci/,
        scripts/ are analysed only when analysed code imports them."""
        if not self.strip_tests:
            return True  # wheels and installed distributions hold installed code only
        parts = PurePosixPath(rel).parts
        if len(parts) == 1 or (len(parts) == 2 and parts[0] in ("src", "lib")):
            # runtests.py, tasks.py, versioneer.py beside setup.py: analysed when imported
            return False
        if parts[0] != "src" and self.src_layout:
            # a src-layout project installs src/*: urllib3's top-level dummyserver/ is its
            # test server (analysed when analysed code imports it)
            return False
        start = 1 if parts[0] in ("src", "lib", "python") else 0
        return "/".join(parts[: start + 1]) + "/__init__.py" in self.init_files

    init_files: set[str]

    @property
    def src_layout(self) -> bool:
        if self._src_layout is None:
            self._src_layout = any(f.startswith("src/") and f.count("/") == 2
                                   for f in self.init_files)
        return self._src_layout

    _src_layout: bool | None = None

    def add(self, rel: str, data: bytes) -> None:
        self.members.append(rel)
        name = PurePosixPath(rel).name
        kind = native_kind(data[:4096])
        if kind is not None:
            self.binaries.append((rel, kind))
            return
        if any(p.endswith((".dist-info", ".egg-info")) for p in PurePosixPath(rel).parts[:-1]):
            return
        if rel == "setup.py":
            self.files += 1
            self._module(rel, data, "setup", False, root="install")
        elif rel == "pyproject.toml":
            self.files += 1
            self._pyproject(rel, data)
        elif name.endswith(".pth"):
            self.files += 1
            self._pth(rel, data)
        elif name.endswith(".py"):
            mod = module_name(rel)
            if mod is None:
                return
            if self.skipped(rel) or name == "__main__.py" or name in (
                    "conftest.py", "noxfile.py") or not self._in_package(rel):
                if self.pending_bytes + len(data) <= MAX_PENDING:
                    self.pending[mod[0]] = (rel, data, mod[1])
                    self.pending_bytes += len(data)
                return
            self.files += 1
            self._module(rel, data, mod[0], mod[1], root="import")

    def _module(self, rel: str, data: bytes, name: str, package: bool,
                root: str | None) -> None:
        if self.source_bytes + len(data) > MAX_SOURCE_TOTAL:
            self.findings.append(R.UNREADABLE.finding(
                f"{rel}: not analysed, the package's Python source exceeds "
                f"{MAX_SOURCE_TOTAL} bytes", Location(member=rel)))
            return
        self.source_bytes += len(data)
        m = analyse_module(data, rel, name, package, limit=MAX_FILE)
        if m.problem is not None:
            self.findings.append(R.UNREADABLE.finding(
                f"{rel}: {m.problem.message}", Location(member=rel, line=m.problem.line)))
            return
        if m.key in self.program.modules:  # same module in src/ and at the top: keep both
            m.key = f"{m.key}@{rel}"
        self.program.add(m)
        self.paths[m.key] = rel
        if root == "install" and m.tree is not None and m.resolver is not None:
            self.roots.append(Root((m.key, c.MODULE), "install", "setup.py runs"))
            for node in ast.walk(m.tree):
                if isinstance(node, ast.keyword) and node.arg == "cmdclass":
                    self.findings.append(R.CMDCLASS.finding(
                        "setup.py replaces setuptools commands (their install-time methods "
                        "are analysed)", Location(member=rel, line=node.value.lineno)))
            for scope, why in entry.install_roots(m.tree, m.resolver).items():
                if m.collector and scope in m.collector.functions:
                    self.roots.append(Root((m.key, scope), "install", why))
        elif root == "import":
            self.roots.append(Root((m.key, c.MODULE), "import", f"importing {name} runs it"))
        elif root == "startup":
            self.roots.append(Root((m.key, c.MODULE), "startup",
                                   f"site.py runs {rel} at every interpreter start"))

    def _pth(self, rel: str, data: bytes) -> None:
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
            # the line is analysed as its own module, at its own line number
            self._module(rel, b"\n" * (number - 1) + line.encode(), f"{rel}:{number}", False,
                         root="startup")

    def _pyproject(self, rel: str, data: bytes) -> None:
        try:
            doc: dict[str, Any] = tomllib.loads(data.decode("utf-8", errors="replace"))
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            self.findings.append(R.UNREADABLE.finding(f"{rel}: invalid TOML ({exc})",
                                                      Location(member=rel)))
            return
        build = _dict(doc.get("build-system"))
        backend_path = build.get("backend-path")
        if backend_path:
            backend = str(build.get("build-backend") or "")
            self.findings.append(R.IN_TREE_BACKEND.finding(
                f"build backend {backend!r} is loaded from the package itself (backend-path "
                f"= {backend_path!r}); it is analysed as install-time code",
                Location(member=rel)))
            paths = [str(p) for p in backend_path] if isinstance(backend_path, list) else []
            self.backend = (backend.split(":")[0], paths)
        st = _dict(_dict(doc.get("tool")).get("setuptools"))
        if isinstance(st.get("cmdclass"), dict):
            for cmd, target in st["cmdclass"].items():
                self.findings.append(R.CMDCLASS.finding(
                    f"[tool.setuptools] cmdclass replaces '{cmd}' with {target}",
                    Location(member=rel)))
                mod, _, cls = str(target).rpartition(".")
                self._late_roots.append((mod, cls, f"pip install runs the '{cmd}' command"))

    _late_roots: list[tuple[str, str, str]]

    def finish(self) -> list[Finding]:
        self._link_pending()
        self._extra_install_roots()
        out = list(self.findings)
        for v in judge(self.program, self.roots, PACKAGE):
            rel = self.paths.get(v.module, v.module)
            out.append(v.rule.finding(v.message, Location(member=rel, line=v.line,
                                                          column=v.column)))
        for key, m in self.program.modules.items():
            rel = self.paths.get(key, key)
            for line, col, written, folded in m.folded[:25]:
                out.append(BR.OBFUSCATED.finding(
                    f"identifier {written!r} is {folded!r} to Python (NFKC folding of "
                    "look-alike characters)", Location(member=rel, line=line, column=col)))
            for e in m.events:
                if e.kind == c.NESTED_PICKLE and e.data is not None:
                    for f in nested_pickle_findings(e.data, rel, e.line, e.col, e.detail):
                        loc = f.location
                        out.append(Finding(f.rule, f.severity, f.verdict, f.message, Location(
                            member=rel, line=e.line, column=e.col,
                            offset=loc.offset if loc else None, detail="nested pickle")))
        out += self._binary_findings()
        return out

    def _link_pending(self) -> None:
        """Modules of skipped directories (tests, docs ...) that analysed code imports."""
        for _ in range(8):
            wanted: set[str] = set()
            for m in list(self.program.modules.values()):
                if m.collector is None:
                    continue
                for mods in m.collector.imports.values():
                    for name in mods:
                        parts = name.split(".")
                        wanted |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
                for calls in m.collector.calls.values():
                    for q in calls:
                        parts = q.split(".")
                        wanted |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
            hits = sorted(wanted & self.pending.keys())
            if not hits:
                return
            for name in hits:
                rel, data, package = self.pending.pop(name)
                self.files += 1
                self._module(rel, data, name, package, root=None)

    def _extra_install_roots(self) -> None:
        """setup.py exec'ing a file of the package, an in-tree backend, pyproject cmdclass."""
        for key, m in list(self.program.modules.items()):
            if m.collector is None or self.paths.get(key) != "setup.py":
                continue
            for e in m.events:
                if e.kind != c.EXEC_FILE:
                    continue
                tail = e.detail.rsplit("{}", 1)[-1].strip("'\"/ ").split("'")[0]
                for other, rel in self.paths.items():
                    if tail and rel.endswith(tail) and other != key:
                        self.roots.append(Root((other, c.MODULE), "install",
                                               f"setup.py executes {rel}"))
        if self.backend is not None:
            name, paths = self.backend
            for key, rel in self.paths.items():
                mod = self.program.modules[key]
                stripped = [rel[len(p.strip("/")) + 1:] for p in paths
                            if rel.startswith(p.strip("./") + "/")] or [rel]
                if any(module_name(s) and module_name(s)[0] == name  # type: ignore[index]
                       for s in stripped) and mod.tree is not None:
                    self.roots.append(Root((key, c.MODULE), "install",
                                           f"pip imports the in-tree build backend {name}"))
                    for scope, why in entry.backend_roots(mod.tree).items():
                        self.roots.append(Root((key, scope), "install", why))
        for modname, cls, why in self._late_roots:
            if modname in self.program.modules:
                fns = self.program.modules[modname].collector
                for meth in entry.COMMAND_METHODS:
                    if fns and f"{cls}.{meth}" in fns.functions:
                        self.roots.append(Root((modname, f"{cls}.{meth}"), "install", why))

    def _binary_findings(self) -> list[Finding]:
        out: list[Finding] = []
        for rel, kind in self.binaries[:200]:
            low = rel.lower()
            name = PurePosixPath(low).name
            if kind == "GPU ELF":
                out.append(R.NATIVE_BINARY.finding(f"{rel}: bundled GPU code object",
                                                   Location(member=rel)))
            elif low.endswith(_DATA_SUFFIXES):
                out.append(R.DISGUISED_BINARY.finding(
                    f"{rel} is a native {kind} binary named like data", Location(member=rel)))
            elif self.pure and kind != "PE":
                out.append(R.DISGUISED_BINARY.finding(
                    f"{rel}: native {kind} binary in a pure-Python (none-any) wheel",
                    Location(member=rel)))
            elif not low.endswith(_NATIVE_SUFFIXES) and "." in name and not name.split(
                    ".")[-1].isdigit() and not (self.strip_tests and self.skipped(rel)):
                # (an sdist's vendored test fixtures, e.g. rapidfuzz's precompiled OpenCL
                # kernels *.ir under 3rd-party/.../test/, are neither built nor installed)
                out.append(R.DISGUISED_BINARY.finding(
                    f"{rel} is a native {kind} binary with an unusual name",
                    Location(member=rel)))
            else:
                out.append(R.NATIVE_BINARY.finding(
                    f"{rel}: bundled native {kind} binary", Location(member=rel)))
        return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _analyse(label: str, fmt: str, members: Iterator[Member], strip_tests: bool,
             prefix: str = "") -> FileResult:
    with no_gc():  # one package's trees live until it is judged (see behaviour.parse)
        return _analyse_members(label, fmt, members, strip_tests, prefix)


def _analyse_members(label: str, fmt: str, members: Iterator[Member], strip_tests: bool,
                     prefix: str) -> FileResult:
    ins = _Inspection(strip_tests)
    ins._late_roots = []
    ins.init_files = set()
    ins.pure = fmt == "wheel" and label.endswith("-none-any.whl")
    try:
        for m in _with_init_files(members, ins.init_files, prefix):
            rel = m.path[len(prefix):] if prefix and m.path.startswith(prefix) else m.path
            if not wanted_member(rel):
                continue
            try:
                data = m.read() if is_code(rel) or m.head is None else m.head()
            except SourceError as exc:
                ins.findings.append(R.UNREADABLE.finding(str(exc), Location(member=rel)))
                continue
            except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
                ins.findings.append(R.UNREADABLE.finding(f"{rel}: unreadable ({exc})",
                                                         Location(member=rel)))
                continue
            ins.add(rel, data)
    except InspectError as exc:
        ins.findings.append(R.UNREADABLE.finding(str(exc)))
    findings = tuple(ins.finish())
    if ins.files == 0 and not findings:
        findings = (R.NOTHING.finding("no setup.py, .pth or Python module found"),)
    return FileResult(label, fmt, Verdict.worst(f.verdict for f in findings), None, None,
                      findings)


def _with_init_files(members: Iterator[Member], out: set[str],
                     prefix: str) -> Iterator[Member]:
    """Members, with every package ``__init__.py`` path collected first (so that modules
    can be told from helper scripts whatever the archive order)."""
    items = list(members)
    out.update(m.path[len(prefix):] if prefix and m.path.startswith(prefix) else m.path
               for m in items if m.path.endswith("/__init__.py"))
    return iter(items)


def is_code(rel: str) -> bool:
    """Members read whole (bounded by MAX_FILE); of the others only a 4 KiB head is read."""
    return rel.lower().endswith((".py", ".pth", ".toml"))


def wanted_member(rel: str) -> bool:
    """Members whose bytes are read: code, build config, and anything that may be native
    (every member without a text-like suffix is probed for ELF/PE/Mach-O magic)."""
    name = PurePosixPath(rel).name.lower()
    if name.endswith((".py", ".pth", ".toml")):
        return True
    return not name.endswith((".pyi", ".txt", ".md", ".rst", ".html", ".css", ".json", ".c",
                              ".h", ".cpp", ".hpp", ".cc", ".pyx", ".pxd", ".rs", ".svg",
                              ".csv", ".yaml", ".yml", ".cfg", ".ini", ".in", ".typed",
                              "record", "metadata", "wheel", ".js", ".ts", ".map", ".po",
                              ".mo", ".xml", ".go", ".java", ".f", ".f90", ".inc", ".tex"))


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
            return wanted_member(rel)

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
                        raise SourceError(f"{rel}: listed in RECORD but missing")
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
