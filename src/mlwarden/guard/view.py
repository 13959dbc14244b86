"""An HF-cache-shaped view of the store, so an offline process loads pinned models by id.

``models--ORG--NAME/snapshots/COMMIT/PATH`` are symlinks to the store's read-only blobs
(when the blob backend keeps local files) or to verified copies fetched once into the
view's own ``blobs/`` (object storage); ``refs/main`` and the recorded ref name the pinned
commit. huggingface_hub in offline mode resolves ``from_pretrained("ORG/NAME")`` through
exactly this layout (hub-protocol.md §6-7).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from mlwarden.manifest import Manifest
from mlwarden.store.blobs import BlobBackend
from mlwarden.store.names import check_file_path, check_ref_name, check_repo_id
from mlwarden.util.fs import atomic_write_text, file_lock


def default_view_dir(store: Path) -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(str(store).encode()).hexdigest()[:12]
    return Path(xdg) / "mlwarden" / "hub-view" / key


def _blob(blobs: BlobBackend, sha256: str, cache: Path) -> Path:
    local = blobs.local_path(sha256)
    if local is not None:
        return local
    copy = cache / "blobs" / "sha256" / sha256[:2] / sha256[2:]
    if not copy.is_file():
        tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        blobs.fetch_to(sha256, tmp)  # verified against the sha256 while it is written
        os.chmod(tmp, 0o444)
        os.replace(tmp, copy)
    return copy


def _link(target: Path, link: Path) -> None:
    with contextlib.suppress(OSError):
        if os.readlink(link) == str(target):
            return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def store_blobs(store: Path) -> BlobBackend:
    """The blob backend of the store directory ``store`` (wherever its blobs live)."""
    from mlwarden.store import Store

    s = Store.open(store, create=False)
    s.db.close()
    return s.blobs


def materialize(manifest: Manifest, store: Path | BlobBackend, cache: Path) -> list[str]:
    """Create or refresh the view; returns the model ids it holds."""
    blobs = store_blobs(store) if isinstance(store, Path) else store
    cache.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    with file_lock(cache / ".mlwarden-view.lock"):
        for model, e in sorted(manifest.models.items()):
            check_repo_id(model)
            org, name = model.split("/")
            repo_dir = cache / f"models--{org}--{name}"
            for rel, mf in e.files.items():
                check_file_path(rel)
                _link(_blob(blobs, mf.sha256, cache), repo_dir / "snapshots" / e.commit / rel)
            refs = {"main"}
            if e.ref:
                with contextlib.suppress(Exception):
                    refs.add(check_ref_name(e.ref))
            for ref in refs:
                path = repo_dir / "refs" / ref
                try:
                    current = path.read_text().strip()
                except OSError:
                    current = ""
                if current != e.commit:
                    atomic_write_text(path, e.commit)
            done.append(model)
    return done
