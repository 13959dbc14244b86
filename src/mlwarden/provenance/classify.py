"""Sort what a run read into the resolvedDependencies of its provenance: datasets,
configuration, code outside the commit, base models (with their Hub commits), and the
environment; hash them (after the run, so the digests are of what stayed on disk).

Every read path lands in exactly one place: a dependency, or a counted category in
``ignored`` (the Python environment, which is listed as distributions instead; system
files; the run's own outputs; caches; files gone by the end). Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlwarden.provenance.capture import Capture
from mlwarden.provenance.record import Dependency, dirhash
from mlwarden.provenance.source import SourceInfo

_HUB = re.compile(r"^(?P<root>.*)/(?P<type>models|datasets)--(?P<org>[^/]+?)--(?P<name>[^/]+)"
                  r"/snapshots/(?P<commit>[0-9a-f]{40})/(?P<rel>.+)$")
CODE_EXT = frozenset({".py", ".pyi", ".pyx", ".ipynb", ".sh", ".bash", ".r", ".jl"})
CONFIG_EXT = frozenset({".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".json", ".env",
                        ".properties", ".hocon", ".jsonnet"})
WEIGHT_EXT = frozenset({".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx",
                        ".h5", ".keras", ".msgpack", ".pkl", ".joblib", ".npz", ".model"})
MODEL_MARKERS = ("config.json", "model_index.json", "adapter_config.json")
SYSTEM_PREFIXES = ("/proc/", "/sys/", "/dev/", "/etc/", "/usr/", "/lib/", "/lib64/", "/bin/",
                   "/sbin/", "/run/", "/var/run/", "/var/cache/", "/snap/", "/nix/store/")
TOOL_CACHES = (".cache/matplotlib", ".config/matplotlib", ".cache/pip", ".cache/uv",
               ".triton", ".nv", ".cache/torch/kernels", ".cache/torch_extensions",
               ".cache/fontconfig", ".ipython")
MAX_CONFIG_BYTES = 1 << 20
DATASET_DIR_FILES = 64  # more files than this read from one directory: one digest for it
_HASH_CHUNK = 4 << 20


def sha256_file(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(_HASH_CHUNK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class Hasher:
    """sha256 of many files in threads (hashlib releases the GIL), each file once."""

    def __init__(self, workers: int = 4) -> None:
        self.workers = workers
        self.done: dict[str, tuple[str, int] | None] = {}

    def hash_all(self, paths: Iterable[str]) -> None:
        todo = [p for p in dict.fromkeys(paths) if p not in self.done]
        if not todo:
            return

        def one(p: str) -> tuple[str, tuple[str, int] | None]:
            try:
                return p, sha256_file(p)
            except OSError:
                return p, None

        small = sum(_size(p) for p in todo[:64]) < (16 << 20) and len(todo) <= 64
        if small or self.workers <= 1:  # threads cost more than they save here
            self.done.update(map(one, todo))
            return
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            self.done.update(pool.map(one, todo))

    def get(self, path: str) -> tuple[str, int] | None:
        if path not in self.done:
            self.hash_all([path])
        return self.done[path]


@dataclass(frozen=True)
class Declared:
    """Inputs the user names (``--dataset``, ``--config``, ``--input``): classified as said,
    and recorded even when the run was not seen opening them."""

    datasets: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


@dataclass
class Classified:
    dependencies: list[Dependency] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    env_reads: list[str] = field(default_factory=list)
    dirty_code: list[str] = field(default_factory=list)


def _under(path: str, roots: Iterable[str]) -> str | None:
    for r in roots:
        if path.startswith(r) and (len(path) == len(r) or path[len(r)] == "/" or
                                   r.endswith("/")):
            return r
    return None


def _weights(path: str, ext: str) -> bool:
    """Model weights by content: safetensors, GGUF and HDF5 whatever their name; pickle or
    zip (torch.save) only under a weights name, since data is pickled and zipped too."""
    from mlwarden.scan import sniff as S

    try:
        with open(path, "rb") as fh:
            head = fh.read(S.HEAD_BYTES)
        kind = S.sniff(head, os.path.getsize(path))
    except OSError:
        return False
    if kind in (S.SAFETENSORS, S.GGUF, S.HDF5):
        return True
    return kind in (S.PICKLE, S.ZIP) and ext in WEIGHT_EXT


def _files_in(directory: str, limit: int = 100_000) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", "__pycache__"))
        for n in sorted(filenames):
            out.append(os.path.join(dirpath, n))
            if len(out) >= limit:
                return out
    return out


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def classify(capture: Capture, *, cwd: str, outputs: Iterable[str],
             source: SourceInfo | None, declared: Declared = Declared(),
             exclude: Sequence[str] = (), env_roots: Sequence[str] = (),
             hasher: Hasher | None = None, home: str | None = None) -> Classified:
    out = Classified()
    h = hasher or Hasher()
    outs = set(outputs)
    workspace = str(source.root) if source is not None else os.path.abspath(cwd)
    home = home or os.path.expanduser("~")
    hf_home = os.path.abspath(os.environ.get("HF_HOME") or os.path.join(home, ".cache",
                                                                          "huggingface"))
    tool_caches = [os.path.join(home, c) for c in TOOL_CACHES]
    excluded = [os.path.abspath(e) for e in (*exclude, *declared.ignore)]
    roots = sorted({os.path.abspath(r) for r in env_roots if r}, key=len, reverse=True)
    roots = [r for r in roots if not (workspace == r or workspace.startswith(r + "/")) or
             "site-packages" in r or "dist-packages" in r]
    decl: list[tuple[str, str]] = [
        *((os.path.abspath(p), "dataset") for p in declared.datasets),
        *((os.path.abspath(p), "config") for p in declared.configs),
        *((os.path.abspath(p), "input") for p in declared.inputs)]
    hub: dict[tuple[str, str, str, str], dict[str, str]] = {}
    groups: dict[str, list[str]] = defaultdict(list)  # declared root -> files read under it
    model_dirs: dict[str, list[str]] = defaultdict(list)
    singles: list[tuple[str, str]] = []  # (kind, path)
    for path, _via in sorted(capture.reads.items()):
        if _under(path, excluded):
            out.ignored["mlwarden"] += 1
            continue
        if path in outs or path in capture.writes:
            out.ignored["outputs"] += 1
            continue
        m = _HUB.match(path)
        if m is not None:
            key = (m.group("type"), m.group("org"), m.group("name"), m.group("commit"))
            hub.setdefault(key, {})[m.group("rel")] = path
            continue
        d = next(((r, k) for r, k in decl if path == r or path.startswith(r + "/")), None)
        if d is not None:
            groups[d[0]].append(path)
            continue
        if _under(path, roots):
            out.env_reads.append(path)
            out.ignored["environment"] += 1
            continue
        if path.startswith(SYSTEM_PREFIXES):
            out.ignored["system"] += 1
            continue
        inside = _under(path, [workspace]) is not None
        if not inside and (_under(path, [hf_home]) or _under(path, tool_caches)):
            out.ignored["caches"] += 1
            continue
        if not _regular(path):
            out.ignored["missing-or-special"] += 1
            continue
        ext = os.path.splitext(path)[1].lower()
        if ext in CODE_EXT:
            rel = os.path.relpath(path, workspace) if inside else path
            if source is not None and inside and rel in source.tracked and \
                    rel not in source.modified:
                out.ignored["code-in-commit"] += 1
            else:
                singles.append(("code", path))
                out.dirty_code.append(rel)
            continue
        parent = os.path.dirname(path)
        weights = _weights(path, ext)
        if weights or os.path.basename(path) in MODEL_MARKERS:
            if any(os.path.isfile(os.path.join(parent, mk)) for mk in MODEL_MARKERS):
                model_dirs[parent].append(path)
            elif weights:
                singles.append(("base-model", path))
            else:
                singles.append(("config", path))
            continue
        if ext in CONFIG_EXT:
            try:
                small = os.path.getsize(path) <= MAX_CONFIG_BYTES
            except OSError:
                small = False
            singles.append(("config" if small else "dataset", path))
            continue
        singles.append(("dataset", path))
    for p, _kind in decl:  # declared but never seen opened: still recorded
        if p not in groups and os.path.exists(p):
            groups[p] = []

    # Everything to hash, at once.
    files_of_dirs = {d: [f for f in _files_in(d) if _regular(f)] for d in model_dirs}
    files_of_groups = {g: (sorted(set(v)) if v or os.path.isfile(g) else
                           [f for f in _files_in(g) if _regular(f)]) or
                       ([g] if os.path.isfile(g) else []) for g, v in groups.items()}
    files_of_hub = {k: _snapshot_files(k, v) for k, v in hub.items()}
    h.hash_all([*(p for _, p in singles), *(f for fs in files_of_dirs.values() for f in fs),
                *(f for fs in files_of_groups.values() for f in fs),
                *(f for fs in files_of_hub.values() for f in fs.values())])

    def name(p: str) -> str:
        return os.path.relpath(p, workspace).replace(os.sep, "/") \
            if _under(p, [workspace]) else p

    # Datasets read file by file from one large directory: one digest for the directory.
    by_dir: dict[str, list[str]] = defaultdict(list)
    for kind, p in singles:
        if kind == "dataset":
            by_dir[os.path.dirname(p)].append(p)
    big = {d for d, fs in by_dir.items() if len(fs) > DATASET_DIR_FILES}
    for kind, p in singles:
        if kind == "dataset" and os.path.dirname(p) in big:
            continue
        got = h.get(p)
        if got is None:
            out.ignored["unreadable"] += 1
            continue
        ann: dict[str, Any] = {"size": got[1]}
        if kind == "code" and source is not None:
            rel = os.path.relpath(p, workspace)
            ann["tracked"] = rel in source.tracked
            ann["modified"] = rel in source.modified
        out.dependencies.append(Dependency(kind, name(p), None, {"sha256": got[0]}, ann))
    for big_dir in sorted(big):
        out.dependencies.append(_dir_dep("dataset", name(big_dir), big_dir, by_dir[big_dir],
                                         h, partial=True))
    for g, gfiles in sorted(files_of_groups.items()):
        kind = next(k for r, k in decl if r == g)
        if os.path.isfile(g):
            got = h.get(g)
            if got is not None:
                out.dependencies.append(Dependency(kind, name(g), None, {"sha256": got[0]},
                                                   {"size": got[1], "declared": True}))
            continue
        out.dependencies.append(_dir_dep(kind, name(g), g, gfiles, h, partial=False,
                                         declared=True))
    for mdir, mfiles in sorted(files_of_dirs.items()):
        out.dependencies.append(_dir_dep("base-model", name(mdir), mdir, mfiles, h,
                                         partial=False))
    for (typ, org, nm, commit), snap in sorted(files_of_hub.items()):
        pairs = [(rel, h.done[p]) for rel, p in snap.items()]
        files = {rel: got[0] for rel, got in pairs if got is not None}
        repo = f"{org}/{nm}"
        if typ == "models":
            uri = f"pkg:huggingface/{repo}@{commit}"
            kind = "base-model"
        else:
            uri = f"https://huggingface.co/datasets/{repo}/tree/{commit}"
            kind = "dataset"
        out.dependencies.append(Dependency(
            kind, repo, uri, {"gitCommit": commit, "sha256": dirhash(files.items())},
            {"repository": repo, "commit": commit, "files": files,
             "read": sorted(hub[(typ, org, nm, commit)])}))
    return out


def _snapshot_files(key: tuple[str, str, str, str], read: Mapping[str, str]) -> dict[str, str]:
    """Every file of a Hub snapshot (what from_pretrained could load), by repository path."""
    any_path = next(iter(read.values()))
    rel0 = next(iter(read))
    snap = any_path[: len(any_path) - len(rel0) - 1]
    files = {os.path.relpath(f, snap).replace(os.sep, "/"): f for f in _files_in(snap)
             if os.path.isfile(f)}
    return files or dict(read)


def _dir_dep(kind: str, name: str, directory: str, files: Sequence[str], h: Hasher,
             partial: bool, declared: bool = False) -> Dependency:
    pairs = {os.path.relpath(f, directory).replace(os.sep, "/"): h.done.get(f)
             for f in files}
    digests = {rel: got[0] for rel, got in pairs.items() if got is not None}
    ann: dict[str, Any] = {"files": len(digests), "size": sum(
        got[1] for got in pairs.values() if got is not None), "digestOf": "files"}
    if partial:
        ann["note"] = "only the files the run read; digest over those"
    if declared:
        ann["declared"] = True
    if kind == "base-model" or len(digests) <= 256:
        ann["fileDigests"] = digests
    return Dependency(kind, name, None, {"sha256": dirhash(digests.items())}, ann)


def distributions(paths: Sequence[str], used_files: Iterable[str] = (),
                  listed: Sequence[Any] | None = None) -> list[Dependency]:
    """Installed distributions visible on ``paths`` (a process's sys.path), each as
    ``pkg:pypi/NAME@VERSION``; ``used`` when the run read one of its files."""
    from urllib.parse import quote

    from mlwarden.provenance.environment import owners, scan

    dists = list(listed) if listed is not None else scan(paths)
    used = owners(dists, used_files)
    out = []
    for d in dists:
        ann: dict[str, Any] = {}
        if d.record_sha256:
            ann["mlwarden:record-sha256"] = d.record_sha256
        ann["used"] = d.name in used
        digest = {a: v for a, v in d.hashes.items() if a == "sha256"}
        purl = f"pkg:pypi/{d.name}@{quote(d.version, safe='.+!-_')}"
        out.append(Dependency("distribution", d.name, purl, digest, ann))
    return out


def interpreter(capture: Capture) -> Dependency | None:
    main = capture.main
    if main is None:
        return None
    return Dependency("interpreter", "python", f"pkg:generic/python@{main.python}", {},
                      {"executable": main.executable, "prefix": main.prefix,
                       "basePrefix": main.base_prefix})


def image_dependency(ref: str) -> Dependency:
    """``REGISTRY/NAME@sha256:HEX`` (or NAME:TAG@sha256:HEX) as a purl with its digest."""
    from urllib.parse import quote

    name, _, digest = ref.rpartition("@")
    alg, _, hexd = digest.partition(":")
    if not name or alg != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexd):
        raise ValueError(f"{ref!r} is not IMAGE@sha256:<64 hex>")
    repo = name.rsplit(":", 1)[0] if name.rfind(":") > name.rfind("/") else name
    short = repo.rsplit("/", 1)[-1]
    purl = f"pkg:oci/{short}@{quote(digest, safe='')}?repository_url={quote(repo, safe='/')}"
    return Dependency("container-image", name, purl, {"sha256": hexd}, {"reference": ref})


def hash_outputs(paths: Iterable[str], cwd: str, h: Hasher) -> list[tuple[str, str, int]]:
    """(name relative to cwd, sha256, size) of every output file still present."""
    ps = [p for p in paths if _regular(p)]
    h.hash_all(ps)
    out = []
    for p in ps:
        got = h.done.get(p)
        if got is not None:
            out.append((os.path.relpath(p, cwd).replace(os.sep, "/"), got[0], got[1]))
    return sorted(out)

