"""Repository-level checks, run after every file of a scanned directory has a verdict.

They look at what a loader would do with the directory as a whole: which Python files
``trust_remote_code=True`` / ``torch.hub.load`` would import (and whether the scan saw
them), which weight shards an index names, unsafe names, and pickle weights that have a
safetensors twin. Per-file findings (including ``symlink-outside-root``) are not repeated.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from mlwarden.report.model import FileResult, Finding, Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.readers.text_file import LOADER_CONFIGS, code_refs, parse_config

MAX_CONFIG_BYTES = 16 << 20
MAX_CODE_FILES = 500  # remote-code files followed through relative imports
MAX_LISTED = 30

UNSAFE_PATH = rule(
    "repo-unsafe-path", Verdict.SUSPICIOUS, Severity.HIGH,
    "Path that escapes the repository",
    "A file or member name, shard name or relative import with '..', an absolute path or a "
    "drive letter. Extractors and loaders that join it to a directory write or read "
    "outside that directory (path traversal).")
MISSING_CODE = rule(
    "repo-missing-code", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Custom code that loaders import is not in the scanned tree",
    "A config (auto_map, custom_pipelines, model_index.json) or a remote-code file names a "
    "module whose .py file is absent. Loading from the Hub fetches it, unscanned.")
CODE_NOT_ANALYSED = rule(
    "repo-code-not-analysed", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "A .py file that loaders import was not analysed as Python",
    "Its bytes did not sniff as text (binary, odd encoding), so the Python analysis never "
    "ran, yet an import by name would execute it.")
MISSING_SHARD = rule(
    "repo-missing-shard", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "A weights index names shards that are not in the tree",
    "The loader would fetch or fail on them; either way those weights were not scanned.")
WEIGHT_NOT_ANALYSED = rule(
    "repo-weight-not-analysed", Verdict.SUSPICIOUS, Severity.LOW,
    "A file named like model weights holds content of another kind",
    "The scan identified the bytes as inert, but a loader picks the file by name and hands "
    "it to a deserializer the scan did not model.")
LFS_POINTER = rule(
    "repo-lfs-pointer", Verdict.UNSCANNABLE, Severity.LOW,
    "Weights file is a Git LFS pointer",
    "The repository was cloned without LFS: the real weights were neither downloaded nor "
    "scanned. Scan the files a loader will actually read.")
PICKLE_TWIN = rule(
    "repo-pickle-twin", Verdict.CLEAN, Severity.INFO,
    "Pickle weights with a safetensors twin",
    "The same weights exist as safetensors, which cannot run code. transformers prefers the "
    "safetensors file, but other tools and use_safetensors=False load the pickle: delete it, "
    "or download with ignore_patterns=['*.bin', '*.pt', '*.pth', '*.ckpt'].")
REMOTE_CODE = rule(
    "repo-remote-code", Verdict.CLEAN, Severity.INFO,
    "Python files that loading this repository executes",
    "Summary: the modules trust_remote_code=True would import (auto_map, custom_pipelines, "
    "diffusers custom components, their relative imports) and hubconf.py for torch.hub, "
    "each with its verdict.")

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5",
                   ".keras", ".pkl", ".pickle", ".joblib", ".npy", ".npz", ".pb", ".tflite",
                   ".mar", ".nemo")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_SHARD = re.compile(r"^(?P<stem>pytorch_model|diffusion_pytorch_model|model|adapter_model)"
                    r"(?P<shard>-\d+-of-\d+)?\.bin$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_INERT_FORMATS = frozenset({"text", "image", "json", "empty", "jinja"})


def unsafe_reason(name: str, member: bool) -> str | None:
    """Why ``name`` would escape a directory it is joined to, or None."""
    norm = name.replace("\\", "/")
    if member and norm.startswith("/"):
        return "absolute path"
    if _DRIVE.match(norm) or norm.startswith("//"):
        return "drive or UNC path"
    parts = norm.split("/")
    if ".." in parts and (member or "\\" in name):
        return "'..' component"
    if any(ord(ch) < 32 for ch in name):
        return "control character in name"
    return None


class TreeReader(Protocol):
    """The files of a repository, local or remote (``scan/sources``), by relative path."""

    def read(self, rel: str, limit: int) -> bytes | None:
        """The whole file, or None when it is missing, unreadable or over ``limit`` bytes."""
        ...

    def head(self, rel: str, n: int) -> bytes: ...


class LocalTree:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, rel: str, limit: int) -> bytes | None:
        return _read(self.root / rel, limit)

    def head(self, rel: str, n: int) -> bytes:
        return _read_head(self.root / rel, n)


def check_repository(root: Path | TreeReader, display_root: str,
                     results: list[FileResult]) -> dict[str, list[Finding]]:
    """Extra findings keyed by reported path; ``display_root`` itself for the directory."""
    tree = LocalTree(root) if isinstance(root, Path) else root
    prefix = display_root if display_root.endswith(("/", os.sep)) else display_root + os.sep
    mine = [r for r in results if r.path.startswith(prefix)]
    by_path = {r.path: r for r in mine}
    files = {r.path[len(prefix):].replace(os.sep, "/"): r for r in mine if "!" not in r.path}
    out: dict[str, list[Finding]] = defaultdict(list)

    _names(mine, by_path, prefix, out)
    _twins(files, prefix, out)
    _weights(tree, files, prefix, out)
    _remote_code(tree, files, prefix, display_root, out)
    return dict(out)


# ------------------------------------------------------------------------------ names


def _already_reported(r: FileResult | None) -> bool:
    return r is not None and any(
        any(w in f.rule for w in ("path", "traversal", "slip", "absolute")) for f in r.findings)


def _names(mine: list[FileResult], by_path: dict[str, FileResult], prefix: str,
           out: dict[str, list[Finding]]) -> None:
    for r in mine:
        segments = r.path[len(prefix):].split("!")
        for i, seg in enumerate(segments):
            reason = unsafe_reason(seg, member=i > 0)
            if reason is None:
                continue
            parent = by_path.get(r.parent) if r.parent else None
            if not (_already_reported(r) or _already_reported(parent)):
                out[r.path].append(UNSAFE_PATH.finding(f"{reason} in {seg!r}"))
            break


# ------------------------------------------------------------------------------ twins


def _twin_names(rel: str) -> list[str]:
    d, base = posixpath.split(rel)
    names: list[str] = []
    m = _SHARD.match(base)
    if m:
        stem = "model" if m["stem"] == "pytorch_model" else m["stem"]
        names.append(f"{stem}{m['shard'] or ''}.safetensors")
    if base == "pytorch_model.bin.index.json":
        names.append("model.safetensors.index.json")
    if base == "diffusion_pytorch_model.bin.index.json":
        names.append("diffusion_pytorch_model.safetensors.index.json")
    if base.endswith(PICKLE_SUFFIXES):
        names.append(base.rsplit(".", 1)[0] + ".safetensors")
    return [posixpath.join(d, n) for n in dict.fromkeys(names)]


def _twins(files: dict[str, FileResult], prefix: str, out: dict[str, list[Finding]]) -> None:
    for rel, r in files.items():
        is_index = rel.endswith(".index.json")
        if not is_index and (r.format == "safetensors" or r.format in _INERT_FORMATS):
            continue
        for twin in _twin_names(rel):
            if twin in files and twin != rel:
                out[r.path].append(PICKLE_TWIN.finding(
                    f"{posixpath.basename(twin)} holds these weights without pickle; "
                    f"delete {posixpath.basename(rel)} or exclude it when downloading"))
                break


# ------------------------------------------------------------------------------ weights


def _read(path: Path, limit: int) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return None
    return data if len(data) <= limit else None


def _weights(root: TreeReader, files: dict[str, FileResult], prefix: str,
             out: dict[str, list[Finding]]) -> None:
    for rel, r in files.items():
        base = posixpath.basename(rel)
        if base.endswith(".index.json"):
            _index(root, rel, r, files, out)
        elif base.endswith(WEIGHT_SUFFIXES) and r.format in _INERT_FORMATS | {"unknown"}:
            head = root.head(rel, 128)
            if head.startswith(b"version https://git-lfs.github.com/spec/"):
                out[r.path].append(LFS_POINTER.finding(
                    "Git LFS pointer instead of weights; the real file was not scanned"))
            elif r.format != "unknown":
                out[r.path].append(WEIGHT_NOT_ANALYSED.finding(
                    f"named like weights but its content is {r.format}"))


def _read_head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _index(root: TreeReader, rel: str, r: FileResult, files: dict[str, FileResult],
           out: dict[str, list[Finding]]) -> None:
    data = root.read(rel, MAX_CONFIG_BYTES)
    if data is None:
        return
    doc, _err, _dup = parse_config(data)
    if doc is None or not isinstance(doc.get("weight_map"), dict):
        return
    shards = {v for v in doc["weight_map"].values() if isinstance(v, str)}
    d = posixpath.dirname(rel)
    missing: list[str] = []
    for shard in sorted(shards):
        reason = unsafe_reason(shard, member=True)
        if reason:
            out[r.path].append(UNSAFE_PATH.finding(f"weight_map names shard {shard!r}: {reason}",
                                                   Location(detail="weight_map")))
        elif posixpath.normpath(posixpath.join(d, shard)) not in files:
            missing.append(shard)
    if missing:
        listed = ", ".join(missing[:MAX_LISTED]) + (" ..." if len(missing) > MAX_LISTED else "")
        out[r.path].append(MISSING_SHARD.finding(
            f"{len(missing)} of {len(shards)} shards are not in the tree: {listed}",
            Location(detail="weight_map")))


# ------------------------------------------------------------------------------ remote code


def remote_code_files(root: Path | TreeReader, display_root: str,
                      results: list[FileResult]) -> dict[str, str]:
    """The .py files ``trust_remote_code=True`` / ``torch.hub.load`` would import from the
    scanned tree ``root`` (repository path -> why), as the repository checks find them:
    config entry points followed through relative imports. For reviewers and reports."""
    tree = LocalTree(root) if isinstance(root, Path) else root
    prefix = display_root if display_root.endswith(("/", os.sep)) else display_root + os.sep
    files = {r.path[len(prefix):].replace(os.sep, "/"): r for r in results
             if r.path.startswith(prefix) and "!" not in r.path}
    entries, _ = _code_entries(tree, files, defaultdict(list))
    return entries


def _remote_code(root: TreeReader, files: dict[str, FileResult], prefix: str, display_root: str,
                 out: dict[str, list[Finding]]) -> None:
    entries, loaded = _code_entries(root, files, out)
    if loaded:
        from mlwarden.scan.remote_code import load_time_findings

        _load_time(root, files, dict(loaded), load_time_findings, out)

    for rel, r in files.items():
        if rel.endswith(".py") and r.format != "python" and (
                rel in entries or r.verdict is Verdict.CLEAN):
            out[r.path].append(CODE_NOT_ANALYSED.finding(
                f"content identified as {r.format}, not Python text"))

    if entries:
        def verdict(r: FileResult) -> Verdict:  # with the load-time findings added above
            return Verdict.worst([r.verdict, *(f.verdict for f in out.get(r.path, ()))])

        parts = [f"{py} ({verdict(files[py]).value}; {why})" for py, why in entries.items()]
        others = sum(1 for rel in files if rel.endswith(".py") and rel not in entries)
        text = "loading this repository runs " + "; ".join(parts[:MAX_LISTED])
        if len(parts) > MAX_LISTED:
            text += f"; +{len(parts) - MAX_LISTED} more"
        if others:
            text += f". {others} other .py file(s) are not imported by loaders by name"
        out[display_root].append(REMOTE_CODE.finding(text))


def _code_entries(root: TreeReader, files: dict[str, FileResult],
                  out: dict[str, list[Finding]]
                  ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(.py -> why a loader imports it, .py -> class it builds -> why), reporting missing
    and escaping modules into ``out``."""
    entries: dict[str, str] = {}  # repository path of a .py -> why a loader imports it
    loaded: dict[str, dict[str, str]] = defaultdict(dict)  # .py -> class it builds -> why
    for rel, r in sorted(files.items()):
        if posixpath.basename(rel) not in LOADER_CONFIGS or r.format != "json":
            continue
        data = root.read(rel, MAX_CONFIG_BYTES)
        doc: dict[str, Any] | None = parse_config(data)[0] if data is not None else None
        if doc is None:
            continue
        d = posixpath.dirname(rel)
        missing: list[str] = []
        for ref in code_refs(posixpath.basename(rel), doc):
            if not ref.valid or ref.repo is not None:
                continue  # reported on the config itself
            py = posixpath.join(d, f"{ref.module}.py")
            if py in files:
                entries.setdefault(py, f"{ref.key} in {rel}")
                verb = "pipeline()" if ref.key.startswith("custom_pipelines") else \
                    "from_pretrained"
                loaded[py].setdefault(ref.cls, f"{verb} instantiates {ref.cls} ({ref.key} in "
                                               f"{rel})")
            else:
                missing.append(f"{ref.module}.py ({ref.key})")
        if missing:
            out[r.path].append(MISSING_CODE.finding(
                "trust_remote_code=True would import " + ", ".join(dict.fromkeys(missing))
                + ", not present in the scanned tree"))
    if "hubconf.py" in files:
        entries.setdefault("hubconf.py", "torch.hub.load")

    # Follow relative imports the way transformers does (regex over the text).
    queue = list(entries)
    if queue:  # the Python analysis (remote_code, pyast) loads only when there is code
        from mlwarden.scan.remote_code import relative_imports
    while queue and len(entries) < MAX_CODE_FILES:
        py = queue.pop(0)
        data = root.read(py, MAX_CONFIG_BYTES)
        if data is None or files[py].format != "python":
            continue
        d = posixpath.dirname(py)
        for mod in relative_imports(data.decode("utf-8", errors="replace")):
            target = f"{posixpath.join(d, mod)}.py"
            reason = unsafe_reason(mod, member=True) or ("/" in mod and "path separator")
            if reason:
                out[files[py].path].append(UNSAFE_PATH.finding(
                    f"relative import .{mod} resolves outside the module directory ({reason})"))
            elif target not in files:
                out[files[py].path].append(MISSING_CODE.finding(
                    f"imports .{mod}, but {target} is not in the scanned tree"))
            elif target not in entries:
                entries[target] = f"imported by {py}"
                queue.append(target)
    return entries, loaded


LoadTimeAnalysis = Callable[[bytes, str, dict[str, str], tuple[Finding, ...]],
                            tuple[list[Finding], list[tuple[str, str, str]]]]


def _load_time(root: TreeReader, files: dict[str, FileResult], loaded: dict[str, dict[str, str]],
               analyse: LoadTimeAnalysis, out: dict[str, list[Finding]]) -> None:
    """Code the classes named by configs run when a loader instantiates them (``__init__``,
    ``post_init`` ...), followed into bases imported from sibling modules; rated like
    import-time code (remote_code.load_time_findings)."""
    queue = list(loaded.items())
    done: set[tuple[str, str]] = set()
    while queue and len(done) < MAX_CODE_FILES:
        py, classes = queue.pop(0)
        classes = {k: v for k, v in classes.items() if (py, k) not in done}
        if not classes or py not in files or files[py].format != "python":
            continue
        done.update((py, k) for k in classes)
        data = root.read(py, MAX_CONFIG_BYTES)
        if data is None:
            continue
        r = files[py]
        found, inherited = analyse(data, r.path, classes, r.findings + tuple(out.get(r.path, ())))
        out[r.path].extend(found)
        d = posixpath.dirname(py)
        for module, cls, why in inherited:
            target = f"{posixpath.join(d, module)}.py"
            if "/" not in module and ".." not in module and target in files:
                queue.append((target, {cls: why}))
