"""Checking one path, or everything, against the baseline. Model directories: every file
must be in the BOM with the same sha256. Python environments: every distribution must be in
the approved BOM with the same RECORD sha256, and every file in site-packages must be listed
with its hash in an approved RECORD, or be the bytecode of an approved source."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import marshal
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from mlwarden.monitor import rules as R
from mlwarden.monitor.baseline import Library, RootBaseline
from mlwarden.report.rules import Rule

_CHUNK = 4 << 20
MAX_PYC = 64 << 20
MAX_META = 1 << 20


@dataclass(frozen=True)
class Issue:
    rule: Rule
    root: str
    path: str  # absolute
    message: str
    fingerprint: str  # what was observed: sha256, "absent", a RECORD digest...
    expected: str | None = None

    @property
    def key(self) -> str:
        return f"{self.rule.id}|{self.path}"

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule.id, "severity": self.rule.severity.value,
                "verdict": self.rule.verdict.value, "title": self.rule.title,
                "root": self.root, "path": self.path, "message": self.message,
                "observed": self.fingerprint, "expected": self.expected}


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def walk_files(root: Path, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, os.stat_result]]:
    """(absolute path, lstat) of everything under ``root`` except directories; ``skip``
    prefixes (the monitor's own state) are never entered."""
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                p = os.path.join(d, e.name)
                if any(p == s or p.startswith(s + "/") for s in skip):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(p)
                else:
                    yield p, st


# ----------------------------------------------------------------------------- models


def check_model_path(base: RootBaseline, path: str) -> list[Issue]:
    root = str(base.root)
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    if rel.startswith("../"):
        return []
    want = base.files.get(rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if rel in base.files:
            return [Issue(R.DELETED, root, path, f"{rel} of {base.label} is missing",
                          "absent", want)]
        return []
    except OSError as exc:
        return [Issue(R.MODIFIED, root, path, f"{rel}: unreadable ({exc.strerror})",
                      "unreadable", want)]
    if stat.S_ISDIR(st.st_mode):
        return []
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a special file"
        return [Issue(R.ADDED if rel not in base.files else R.MODIFIED, root, path,
                      f"{rel} is {kind}, not an approved file of {base.label}",
                      f"special:{st.st_mode:o}", want)]
    try:
        got = sha256_file(path)
    except OSError as exc:
        return [Issue(R.MODIFIED, root, path, f"{rel}: unreadable ({exc.strerror})",
                      "unreadable", want)]
    if rel not in base.files:
        return [Issue(R.ADDED, root, path, f"{rel} is not in {base.label}", got, None)]
    if want is not None and got != want:
        return [Issue(R.MODIFIED, root, path, f"{rel}: sha256 {got} differs from the "
                      f"approved {want} ({base.label})", got, want)]
    return []


# ----------------------------------------------------------------------------- environment


@dataclass
class Dist:
    name: str
    version: str
    info_dir: str
    site: str
    record_sha256: str | None
    approved: bool
    files: dict[str, str | None] = field(default_factory=dict)  # abs path -> sha256


def _record_rows(text: str, site: str) -> dict[str, str | None]:
    import base64

    out: dict[str, str | None] = {}
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        p = os.path.normpath(os.path.join(site, row[0]))
        digest = None
        if len(row) > 1 and row[1].startswith("sha256="):
            b64 = row[1][7:]
            try:
                digest = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
            except ValueError:
                digest = "invalid"
        out[p] = digest
    return out


def _read_dist(info_dir: str, site: str) -> Dist | None:
    from packaging.utils import canonicalize_name

    try:
        with open(os.path.join(info_dir, "METADATA"), "rb") as fh:
            meta = HeaderParser().parsestr(fh.read(MAX_META).decode("utf-8", "replace"))
    except OSError:
        return None
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        return None
    try:
        # As mlwarden.sbom.environment reads it (text mode), so the digests agree.
        with open(os.path.join(info_dir, "RECORD"), encoding="utf-8") as fh:
            record: str | None = fh.read()
    except OSError:
        record = None
    d = Dist(str(canonicalize_name(name)), version, info_dir, site,
             hashlib.sha256(record.encode("utf-8")).hexdigest() if record is not None
             else None, False)
    if record is not None:
        d.files = _record_rows(record, site)
    return d


class EnvIndex:
    """The approved files of the environment, rebuilt whenever a distribution changes."""

    def __init__(self, sites: list[Path], libraries: Mapping[str, Library],
                 bytecode: str = "verify") -> None:
        self.sites = [str(s) for s in sites]
        self.libraries = dict(libraries)
        self.bytecode = bytecode
        self.dists: dict[str, Dist] = {}  # info_dir -> Dist
        self.allowed: dict[str, str | None] = {}
        self.claimed: dict[str, str] = {}  # path -> info_dir of an unapproved dist
        self.rebuild()

    def rebuild(self) -> None:
        self.dists.clear()
        for site in self.sites:
            try:
                names = os.listdir(site)
            except OSError:
                continue
            for n in names:
                if n.endswith(".dist-info"):
                    d = _read_dist(os.path.join(site, n), site)
                    if d is not None:
                        self.dists[d.info_dir] = d
        self._index()

    def refresh_dist(self, info_dir: str) -> None:
        site = os.path.dirname(info_dir)
        d = _read_dist(info_dir, site) if os.path.isdir(info_dir) else None
        if d is None:
            self.dists.pop(info_dir, None)
        else:
            self.dists[info_dir] = d
        self._index()

    def _index(self) -> None:
        self.allowed, self.claimed = {}, {}
        for d in self.dists.values():
            lib = self.libraries.get(d.name)
            d.approved = lib is not None and lib.version == d.version and \
                lib.record_sha256 is not None and lib.record_sha256 == d.record_sha256
            for p, sha in d.files.items():
                if d.approved:
                    self.allowed[p] = sha
                else:
                    self.claimed.setdefault(p, d.info_dir)

    def site_of(self, path: str) -> str | None:
        for s in self.sites:
            if path == s or path.startswith(s + "/"):
                return s
        return None

    # -- distribution-level issues ---------------------------------------------------

    def dist_issues(self) -> list[Issue]:
        out = []
        seen = set()
        for d in self.dists.values():
            seen.add(d.name)
            out.extend(self._dist_issue(d))
        for name, lib in self.libraries.items():
            if name not in seen:
                path = os.path.join(self.sites[0], f"{name}-{lib.version}.dist-info") \
                    if self.sites else name
                out.append(Issue(R.PACKAGE_REMOVED, self.sites[0] if self.sites else "",
                                 path, f"{name} {lib.version} of the approved environment is "
                                 "not installed", "absent", lib.record_sha256))
        return out

    def _dist_issue(self, d: Dist) -> list[Issue]:
        lib = self.libraries.get(d.name)
        if lib is None:
            return [Issue(R.PACKAGE_ADDED, d.site, d.info_dir, f"{d.name} {d.version} is "
                          "installed but not in the approved environment",
                          d.record_sha256 or "no-record")]
        if not d.approved:
            why = f"version {d.version}, approved {lib.version}" if lib.version != d.version \
                else "its RECORD differs from the approved one" if d.record_sha256 else \
                "it has no RECORD"
            return [Issue(R.PACKAGE_CHANGED, d.site, d.info_dir, f"{d.name}: {why}",
                          d.record_sha256 or "no-record", lib.record_sha256)]
        return []

    # -- file-level issues -----------------------------------------------------------

    def check_path(self, path: str) -> list[Issue]:
        site = self.site_of(path)
        if site is None:
            return []
        rel = os.path.relpath(path, site)
        top = rel.split(os.sep, 1)[0]
        if top.endswith(".dist-info"):
            info = os.path.join(site, top)
            self.refresh_dist(info)
            d = self.dists.get(info)
            if d is not None:
                issues = self._dist_issue(d)
                if issues or path == info:
                    return issues
            elif not os.path.exists(info):
                return self._removed_issue(info)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if path in self.allowed:
                return [Issue(R.DELETED, site, path, f"{rel} of an approved distribution is "
                              "missing", "absent", self.allowed[path])]
            return []
        except OSError:
            return []
        if stat.S_ISDIR(st.st_mode):
            return []
        if not stat.S_ISREG(st.st_mode) and path not in self.allowed:
            return [Issue(R.ADDED, site, path, f"{rel} is a link or special file that no "
                          "approved RECORD lists", f"special:{st.st_mode:o}")]
        if path in self.allowed:
            want = self.allowed[path]
            if want is None:
                return []  # RECORD lists it without a hash (RECORD itself, some .pyc)
            try:
                got = sha256_file(path)
            except OSError:
                got = "unreadable"
            if got != want:
                return [Issue(R.MODIFIED, site, path, f"{rel}: sha256 {got} differs from "
                              "its approved RECORD", got, want)]
            return []
        if path.endswith(".pyc") and os.path.basename(os.path.dirname(path)) == "__pycache__":
            return self._check_pyc(site, path, rel)
        if path in self.claimed:
            if path.endswith(".pth"):
                return [Issue(R.PTH, site, path, f"{rel} (from unapproved "
                              f"{os.path.basename(self.claimed[path])}) runs at every "
                              "interpreter start", _safe_hash(path))]
            return []  # reported once, as the unapproved distribution
        got = _safe_hash(path)
        if path.endswith(".pth"):
            return [Issue(R.PTH, site, path, f"{rel} is a .pth file no approved distribution "
                          "installed: its import lines run at every interpreter start", got)]
        return [Issue(R.ADDED, site, path, f"{rel} is not listed by any approved "
                      "distribution's RECORD", got)]

    def _removed_issue(self, info: str) -> list[Issue]:
        name = os.path.basename(info).split("-", 1)[0]
        from packaging.utils import canonicalize_name

        lib = self.libraries.get(str(canonicalize_name(name)))
        if lib is None:
            return []
        return [Issue(R.PACKAGE_REMOVED, os.path.dirname(info), info, f"{lib.name} "
                      f"{lib.version} of the approved environment was removed", "absent",
                      lib.record_sha256)]

    def _check_pyc(self, site: str, path: str, rel: str) -> list[Issue]:
        name = os.path.basename(path)
        src = os.path.join(os.path.dirname(os.path.dirname(path)), name.split(".", 1)[0]
                           + ".py")
        if src not in self.allowed:
            if src in self.claimed:
                return []
            return [Issue(R.ADDED, site, path, f"{rel}: bytecode without an approved source",
                          _safe_hash(path))]
        ok, why, verified = pyc_matches(path, src, self.bytecode == "verify")
        if not ok:
            return [Issue(R.BYTECODE, site, path, f"{rel}: {why}", _safe_hash(path))]
        if not verified and self.bytecode == "verify":
            return [Issue(R.BYTECODE_UNVERIFIED, site, path, f"{rel}: {why}",
                          _safe_hash(path))]
        return []


def _safe_hash(path: str) -> str:
    try:
        return sha256_file(path)
    except OSError:
        return "unreadable"


def pyc_matches(pyc: str, source: str, compare_code: bool) -> tuple[bool, str, bool]:
    """(consistent, reason, content compared). The header must match the source (mtime and
    size, or its hash); with ``compare_code`` and the same Python version, the code object
    must equal the source's compilation (unmarshalling builds objects, it runs nothing)."""
    try:
        with open(pyc, "rb") as fh:
            data = fh.read(MAX_PYC + 1)
        with open(source, "rb") as fh:
            src = fh.read()
        st = os.stat(source)
    except OSError as exc:
        return False, f"unreadable ({exc.strerror})", False
    if len(data) < 16 or len(data) > MAX_PYC:
        return False, "not a bytecode file", False
    flags = int.from_bytes(data[4:8], "little")
    if flags & 1:  # hash-based pyc (PEP 552)
        if data[8:16] != importlib.util.source_hash(src):
            return False, "its source hash is not the approved source's", False
    else:
        mtime = int.from_bytes(data[8:12], "little")
        size = int.from_bytes(data[12:16], "little")
        if mtime != (int(st.st_mtime) & 0xFFFFFFFF) or size != (st.st_size & 0xFFFFFFFF):
            # Python would recompile instead of loading it: stale, harmless.
            return True, "stale (Python ignores it)", True
    if not compare_code:
        return True, "header matches", False
    if data[:4] != importlib.util.MAGIC_NUMBER:
        return True, "bytecode of another Python version: only its header was checked " \
            "(run the monitor with the environment's interpreter)", False
    opt = 0
    if ".opt-" in os.path.basename(pyc):
        try:
            opt = int(os.path.basename(pyc).split(".opt-", 1)[1][0])
        except (ValueError, IndexError):
            opt = 0
    try:
        code = marshal.loads(data[16:])
        expected = compile(src, source, "exec", dont_inherit=True, optimize=opt)
    except (ValueError, EOFError, TypeError):
        return False, "bytecode does not unmarshal", True
    except (SyntaxError, MemoryError, RecursionError):
        return False, "the approved source does not compile, so no bytecode can be its", True
    if code != expected:
        return False, "the bytecode is not the compilation of the approved source", True
    return True, "bytecode equals the source's compilation", True
