"""Verify on load, inside a training or serving process.

``install()`` (or ``mlwarden run``, through sitecustomize) makes this process:

* refuse ``torch.load(weights_only=False)`` and load everything else weights-only;
* make ``from_pretrained`` use safetensors (``use_safetensors=False`` is refused);
* refuse ``trust_remote_code`` except for the commit the manifest records as reviewed;
* check each model file's sha256 against the manifest before it is opened: every path
  transformers resolves (``cached_files``) and every Python ``open()`` of a file inside an
  HF-cache-shaped tree (``models--ORG--NAME/snapshots/COMMIT/PATH``) or a store blob;
* with a signing configuration (``[guard.signing]``, ``mlwarden run --require-signature``),
  verify the model's signature once, before the first of its files is opened
  (mlwarden.guard.signatures);
* run with hardened settings: no implicit token, no safetensors-conversion thread, no
  telemetry, and offline against a view of the store (or HF_ENDPOINT at the registry).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mlwarden.guard import rules as G
from mlwarden.manifest import Manifest, ManifestError, ModelEntry
from mlwarden.manifest import load as load_manifest
from mlwarden.report.rules import Rule
from mlwarden.util.importhooks import when_any_imported, when_imported

if TYPE_CHECKING:
    from mlwarden.guard.provenance import ProvenanceGate
    from mlwarden.guard.signatures import GuardSigning, SignatureGate
    from mlwarden.provenance.policy import ProvenanceRequirements

_SNAPSHOT = re.compile(r"(?:^|/)models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/"
                       r"(?P<commit>[0-9a-f]{40})/(?P<rel>.+)$")
_BLOB = re.compile(r"/blobs/sha256/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{62})$")
HARDENED_ENV = {
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DISABLE_SAFETENSORS_CONVERSION": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_XET": "1",
    "DO_NOT_TRACK": "1",
}


class GuardViolation(PermissionError):
    """A load the guard refuses. The message starts with the rule id.

    A PermissionError (an OSError) on purpose: transformers re-raises OSErrors from file
    resolution as they are, but rewraps other exceptions into a generic "can't load".
    """

    def __init__(self, rule: Rule, message: str) -> None:
        super().__init__(f"{rule.id}: {message}")
        self.rule = rule


@dataclass
class GuardState:
    manifest_path: Path
    manifest: Manifest
    store: Path | None
    hf_cache: Path | None
    endpoint: str | None
    strict: bool
    verified: dict[tuple[int, int, int, int], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    checks: int = 0
    signatures: SignatureGate | None = None  # set when signatures are configured
    provenance: ProvenanceGate | None = None  # set when provenance is configured


_state: GuardState | None = None
_local = threading.local()


def state() -> GuardState | None:
    return _state


# ----------------------------------------------------------------------------- checking


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:  # our own open: the audit hook lets it pass
        while block := fh.read(4 << 20):
            h.update(block)
    return h.hexdigest()


def _hash_once(st: GuardState, path: str) -> str:
    s = os.stat(path)
    key = (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns)
    with st.lock:
        got = st.verified.get(key)
    if got is None:
        got = _sha256(path)
        with st.lock:
            st.verified[key] = got
    return got


def _entry_for(st: GuardState, org: str, name: str) -> tuple[str, ModelEntry | None]:
    repo = f"{org}/{name}"
    return repo, st.manifest.get(repo)


def check_path(path: str | os.PathLike[str]) -> bool:
    """Verify one file against the manifest if it is a model file we guard.

    Returns True when it was checked, False when the path is outside every guarded tree;
    raises GuardViolation when it must not be opened.
    """
    st = _state
    if st is None:
        return False
    text = os.fspath(path)
    norm = text.replace(os.sep, "/")
    m = _SNAPSHOT.search(norm)
    if m is not None:
        repo, entry = _entry_for(st, m.group("org"), m.group("name"))
        if entry is None:
            raise GuardViolation(G.NOT_IN_MANIFEST, f"{repo} is not in {st.manifest_path}: "
                                 f"refusing to open {m.group('rel')}")
        if entry.commit != m.group("commit"):
            raise GuardViolation(G.NOT_PINNED, f"{repo}@{m.group('commit')[:12]} is not the "
                                 f"pinned commit {entry.commit[:12]} ({m.group('rel')})")
        mf = entry.files.get(m.group("rel"))
        if mf is None:
            raise GuardViolation(G.NOT_IN_MANIFEST, f"{repo}: {m.group('rel')} is not a file "
                                 "the manifest pins")
        if st.signatures is not None:
            _check_signature(st, repo, entry, Path(norm[:m.start("rel")]))
        if st.provenance is not None:
            _check_provenance(st, repo, entry, Path(norm[:m.start("rel")]))
        expected: str | None = mf.sha256
    else:
        b = _BLOB.search(norm)
        if b is None or st.store is None or not os.path.abspath(text).startswith(
                str(st.store)):
            return False
        expected = b.group("a") + b.group("b")
        if st.signatures is not None:
            _check_blob_signature(st, expected)
        if st.provenance is not None:
            _check_blob_provenance(st, expected)
    try:
        got = _hash_once(st, text)
    except OSError as exc:
        raise GuardViolation(G.HASH_MISMATCH, f"cannot read {text}: {exc.strerror}") from None
    st.checks += 1
    if got != expected:
        raise GuardViolation(G.HASH_MISMATCH, f"{text}: sha256 {got} does not match the "
                             f"pinned {expected}")
    return True


def _check_signature(st: GuardState, repo: str, entry: ModelEntry, model_dir: Path) -> None:
    """Once per model directory, before any of its files is opened. Our own opens while
    verifying (hashing, model_signing's reads) must not re-enter the audit hook."""
    assert st.signatures is not None
    fetch = None
    if st.endpoint is not None:  # the HF cache fills lazily: complete it to verify
        cache_root = model_dir.parents[2]

        def fetch(rel: str) -> Path:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo, rel, revision=entry.commit,
                                        cache_dir=cache_root))

    busy = getattr(_local, "busy", False)
    _local.busy = True
    try:
        st.signatures.check(repo, entry, model_dir, fetch)
    finally:
        _local.busy = busy


def _check_provenance(st: GuardState, repo: str, entry: ModelEntry, model_dir: Path) -> None:
    """Once per model directory, before any of its files is opened (as signatures)."""
    assert st.provenance is not None
    fetch = None
    if st.endpoint is not None:
        cache_root = model_dir.parents[2]

        def fetch(rel: str) -> Path:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo, rel, revision=entry.commit,
                                        cache_dir=cache_root))

    busy = getattr(_local, "busy", False)
    _local.busy = True
    try:
        st.provenance.check(repo, entry, model_dir, fetch)
    finally:
        _local.busy = busy


def _check_blob_provenance(st: GuardState, sha256: str) -> None:
    """A store blob opened directly: some pinned model owning it must have provenance."""
    _check_blob_owner(st, sha256, _check_provenance, G.PROVENANCE, "provenance")


def _check_blob_signature(st: GuardState, sha256: str) -> None:
    """A store blob opened directly: it must belong to a pinned model whose signature
    verifies (through that model's directory in the offline view)."""
    _check_blob_owner(st, sha256, _check_signature, G.SIGNATURE, "signature")


def _check_blob_owner(st: GuardState, sha256: str, check: Callable[..., None], rule: Rule,
                      what: str) -> None:
    """Passes when ``check`` passes for one pinned model owning the blob (its snapshot
    directory in the offline view); otherwise raises the first model's violation."""
    owners = sorted(r for r, e in st.manifest.models.items()
                    if any(f.sha256 == sha256 for f in e.files.values()))
    if not owners or st.hf_cache is None:
        raise GuardViolation(rule, f"store blob {sha256[:12]} belongs to no pinned "
                             f"model whose {what} can be verified")
    first: GuardViolation | None = None
    for repo in owners:
        entry = st.manifest.models[repo]
        org, name = repo.split("/", 1)
        try:
            check(st, repo, entry, st.hf_cache / f"models--{org}--{name}" / "snapshots" /
                  entry.commit)
            return
        except GuardViolation as exc:
            first = first or exc
    assert first is not None
    raise first


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or _state is None or getattr(_local, "busy", False):
        return
    path, mode, flags = args[0], args[1], args[2] if len(args) > 2 else 0
    if not isinstance(path, (str, bytes, os.PathLike)) or isinstance(path, int):
        return
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return  # writes are not loads
    if isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR):
        return
    p = os.fsdecode(path)
    if "/snapshots/" not in p and "/blobs/sha256/" not in p:
        return
    _local.busy = True
    try:
        check_path(p)
    finally:
        _local.busy = False


# ----------------------------------------------------------------------------- patches


_originals: dict[int, Any] = {}  # id(original function) -> guarded replacement


def _rebind(module: ModuleType) -> None:
    """Replace names bound by ``from x import f`` to an original we have patched."""
    if not _originals:
        return
    for k, v in list(vars(module).items()):
        repl = _originals.get(id(v))
        if repl is not None and repl is not v:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(module, k, repl)


def _patch_torch(torch: ModuleType) -> None:
    orig = torch.load
    if getattr(orig, "__mlwarden_guard__", False):
        return

    @functools.wraps(orig)
    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is False:
            raise GuardViolation(G.UNSAFE_LOAD, "torch.load(weights_only=False) can run "
                                 "code from the file; the guard only allows weights_only=True")
        if kwargs.get("pickle_module") is not None or len(args) >= 2:
            raise GuardViolation(G.UNSAFE_LOAD, "torch.load with a custom pickle_module is "
                                 "refused under the guard")
        if isinstance(f, (str, os.PathLike)):
            check_path(f)
        kwargs["weights_only"] = True
        return orig(f, *args, **kwargs)

    load.__mlwarden_guard__ = True  # type: ignore[attr-defined]
    torch.load = load  # type: ignore[attr-defined]
    _originals[id(orig)] = load


def _remote_code_allowed(model_name: Any) -> tuple[bool, str]:
    st = _state
    if st is None:
        return True, ""
    name = os.fspath(model_name) if isinstance(model_name, (str, os.PathLike)) else ""
    m = _SNAPSHOT.search(name.replace(os.sep, "/") + "/x")
    if m is not None:
        repo, entry = _entry_for(st, m.group("org"), m.group("name"))
        commit: str | None = m.group("commit")
    else:
        repo, entry, commit = name, st.manifest.get(name), None
    if entry is None:
        return False, f"{repo or model_name!r} is not in the manifest"
    if not entry.remote_code_approved:
        return False, f"{repo}@{entry.commit[:12]} has no reviewed remote code in the manifest"
    if commit is not None and commit != entry.commit:
        return False, f"{repo}@{commit[:12]} is not the reviewed commit {entry.commit[:12]}"
    return True, ""


def _patch_dynamic(mod: ModuleType) -> None:
    orig = getattr(mod, "resolve_trust_remote_code", None)
    if orig is None or getattr(orig, "__mlwarden_guard__", False):
        return

    @functools.wraps(orig)
    def resolve(trust_remote_code: Any, model_name: Any, *args: Any, **kwargs: Any) -> Any:
        result = orig(trust_remote_code, model_name, *args, **kwargs)
        if result:
            ok, why = _remote_code_allowed(model_name)
            if not ok:
                raise GuardViolation(G.REMOTE_CODE, f"trust_remote_code refused: {why}")
        return result

    resolve.__mlwarden_guard__ = True  # type: ignore[attr-defined]
    mod.resolve_trust_remote_code = resolve  # type: ignore[attr-defined]
    _originals[id(orig)] = resolve


def _patch_hub(mod: ModuleType) -> None:
    orig = getattr(mod, "cached_files", None)
    if orig is None or getattr(orig, "__mlwarden_guard__", False):
        return

    @functools.wraps(orig)
    def cached_files(*args: Any, **kwargs: Any) -> Any:
        out = orig(*args, **kwargs)
        for p in out or ():
            if p is not None and not check_path(p) and _state is not None and _state.strict:
                raise GuardViolation(G.NOT_IN_MANIFEST, f"{p} is outside every guarded "
                                     "model tree (strict mode)")
        return out

    cached_files.__mlwarden_guard__ = True  # type: ignore[attr-defined]
    mod.cached_files = cached_files  # type: ignore[attr-defined]
    _originals[id(orig)] = cached_files


def _patch_modeling(mod: ModuleType) -> None:
    cls = getattr(mod, "PreTrainedModel", None)
    if cls is None or getattr(cls.from_pretrained, "__mlwarden_guard__", False):
        return
    orig: Callable[..., Any] = cls.from_pretrained.__func__

    @functools.wraps(orig)
    def from_pretrained(klass: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("use_safetensors") is False:
            raise GuardViolation(G.UNSAFE_LOAD, "use_safetensors=False is refused under the "
                                 "guard: pickle weights can run code")
        kwargs["use_safetensors"] = True
        return orig(klass, *args, **kwargs)

    from_pretrained.__mlwarden_guard__ = True  # type: ignore[attr-defined]
    cls.from_pretrained = classmethod(from_pretrained)


def _harden_hub_constants(hub: ModuleType) -> None:
    """huggingface_hub reads its settings at import; refresh them if it came first."""
    c = getattr(hub, "constants", None)
    if c is None:
        return
    c.HF_HUB_DISABLE_IMPLICIT_TOKEN = True
    c.HF_HUB_DISABLE_TELEMETRY = True
    st = _state
    if st is not None and st.endpoint is None:
        c.HF_HUB_OFFLINE = True
    if st is not None and st.hf_cache is not None:
        c.HF_HUB_CACHE = str(st.hf_cache)


# ----------------------------------------------------------------------------- install


def install(manifest: str | os.PathLike[str] = "model-manifest.yaml",
            store: str | os.PathLike[str] | None = None,
            hf_cache: str | os.PathLike[str] | None = None,
            endpoint: str | None = None, strict: bool = False,
            signing: GuardSigning | None = None,
            provenance: ProvenanceRequirements | None = None) -> GuardState:
    """Guard this process. Call it before importing transformers when you can (or use
    ``mlwarden run``); patches also apply to modules that were imported earlier.

    ``signing`` (``mlwarden.guard.signatures.load_guard_signing``) makes every model need a
    valid signature from the identities configured for it before any of its files opens;
    ``provenance`` (``mlwarden.guard.provenance.load_guard_provenance``) a signed provenance
    record from an accepted builder and source whose subjects are the pinned files."""
    global _state
    mpath = Path(manifest).resolve()
    try:
        m = load_manifest(mpath, missing_ok=False)
    except ManifestError as exc:
        raise GuardViolation(G.NOT_IN_MANIFEST, str(exc)) from None
    store_path = Path(store).resolve() if store is not None else None
    cache = Path(hf_cache).resolve() if hf_cache is not None else None
    if store_path is not None and cache is None and endpoint is None:
        from mlwarden.guard.view import default_view_dir

        cache = default_view_dir(store_path)
    if store_path is not None and cache is not None and endpoint is None:
        from mlwarden.guard.view import materialize

        materialize(m, store_path, cache)
    os.environ.update(HARDENED_ENV)
    if endpoint is not None:
        os.environ["HF_ENDPOINT"] = endpoint.rstrip("/")
        os.environ.pop("HF_HUB_OFFLINE", None)
        os.environ.pop("TRANSFORMERS_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    if cache is not None:
        os.environ["HF_HUB_CACHE"] = str(cache)
    first = _state is None
    _state = GuardState(mpath, m, store_path, cache, endpoint, strict)
    if signing is not None:
        from mlwarden.guard.signatures import SignatureGate

        new = _state
        _state.signatures = SignatureGate(signing, lambda p: _hash_once(new, p), _sha256)
    if provenance is not None:
        from mlwarden.guard.provenance import ProvenanceGate

        pnew = _state
        _state.provenance = ProvenanceGate(provenance, lambda p: _hash_once(pnew, p))
    if first:
        sys.addaudithook(_audit)
        when_imported("torch", _patch_torch)
        when_imported("huggingface_hub", _harden_hub_constants)
        when_imported("transformers.utils.hub", _patch_hub)
        when_imported("transformers.dynamic_module_utils", _patch_dynamic)
        when_imported("transformers.modeling_utils", _patch_modeling)
        when_any_imported("transformers", _rebind)
    return _state


def install_from_env() -> GuardState | None:
    """What the sitecustomize of ``mlwarden run`` calls."""
    if os.environ.get("MLWARDEN_GUARD") != "1":
        return None
    signing = None
    if any(os.environ.get(k) for k in ("MLWARDEN_GUARD_SIGNING_CONFIG",
                                        "MLWARDEN_GUARD_REQUIRE_SIGNATURE",
                                        "MLWARDEN_GUARD_SIGNING_KEYS")):
        from mlwarden.guard.signatures import signing_from_env

        signing = signing_from_env(os.environ)  # a bad configuration fails closed
    provenance = None
    if os.environ.get("MLWARDEN_GUARD_PROVENANCE_CONFIG"):
        from mlwarden.guard.provenance import provenance_from_env

        provenance = provenance_from_env(os.environ)  # fails closed too
    return install(manifest=os.environ["MLWARDEN_GUARD_MANIFEST"],
                   store=os.environ.get("MLWARDEN_GUARD_STORE") or None,
                   hf_cache=os.environ.get("MLWARDEN_GUARD_HF_CACHE") or None,
                   endpoint=os.environ.get("MLWARDEN_GUARD_ENDPOINT") or None,
                   strict=os.environ.get("MLWARDEN_GUARD_STRICT") == "1", signing=signing,
                   provenance=provenance)
