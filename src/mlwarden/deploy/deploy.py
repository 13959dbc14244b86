"""``mlwarden deploy``: put an approved store commit into a deployment directory with its
signed ML-BOM, atomically, and record it.

Layout of a deployment directory DEST (the service loads ``DEST/model``)::

    DEST/model -> releases/<id>/model       symlink, swapped atomically
    DEST/releases/<id>/model/...            the commit's files (copies, never links to blobs:
                                            tampering with a deployment must not reach the store)
    DEST/releases/<id>/sbom.cdx.json        the signed CycloneDX ML-BOM of exactly those files
    DEST/releases/<id>/sbom.cdx.json.sig
    DEST/deployment.json                    the approved state: what the monitor enforces

``deployment.json`` is replaced before the symlink moves, so a monitor that re-reads it on
every change never sees the new files under the old approval. Each deploy is recorded in the
store (``deployments`` table, the BOM as an attestation of the commit) and in the signed
approval log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlwarden.deploy.errors import DeployError
from mlwarden.deploy.tables import attach, record_deployment
from mlwarden.util.actor import default_actor
from mlwarden.util.fs import atomic_write_text, file_lock, fsync_dir

RECORD = "deployment.json"
MODEL_LINK = "model"
RELEASES = "releases"
BOM_NAME = "sbom.cdx.json"
_CHUNK = 4 << 20


@dataclass(frozen=True)
class BomSigner:
    """How the deployment's ML-BOM is signed (as ``mlwarden sbom --sign``)."""

    key: str | None = None
    password: str | None = None
    certificate: str | None = None
    chain: tuple[str, ...] = ()
    sigstore: bool = False
    identity_token: str | None = None


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    root: Path
    repo: str
    commit: str
    release: str
    action: str
    actor: str
    deployed_at: float
    store: str | None = None
    environment: bool = False
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def release_dir(self) -> Path:
        return self.root / RELEASES / self.release

    @property
    def model_dir(self) -> Path:
        return self.release_dir / "model"

    @property
    def sbom(self) -> Path:
        return self.release_dir / BOM_NAME

    @property
    def signature(self) -> Path:
        return self.release_dir / (BOM_NAME + ".sig")

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "name": self.name, "repo": self.repo, "commit": self.commit,
                "release": self.release, "model": f"{RELEASES}/{self.release}/model",
                "sbom": f"{RELEASES}/{self.release}/{BOM_NAME}",
                "signature": f"{RELEASES}/{self.release}/{BOM_NAME}.sig",
                "action": self.action, "actor": self.actor, "deployed_at": self.deployed_at,
                "store": self.store, "environment": self.environment,
                "history": list(self.history)}


def read_record(root: str | os.PathLike[str]) -> DeploymentRecord:
    p = Path(root) / RECORD
    try:
        doc = json.loads(p.read_bytes()[: 16 << 20])
    except FileNotFoundError:
        raise DeployError(f"{root}: not a deployment (no {RECORD})") from None
    except (OSError, ValueError) as exc:
        raise DeployError(f"{p}: unreadable deployment record: {exc}") from None
    try:
        rel = str(doc["release"])
        if "/" in rel or rel in ("", ".", ".."):
            raise ValueError("bad release name")
        return DeploymentRecord(str(doc["name"]), Path(root), str(doc["repo"]),
                                str(doc["commit"]), rel, str(doc.get("action", "deploy")),
                                str(doc.get("actor", "")), float(doc["deployed_at"]),
                                doc.get("store"), bool(doc.get("environment", False)),
                                tuple(doc.get("history") or ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise DeployError(f"{p}: malformed deployment record ({exc})") from None


def open_blob(store: Any, sha256: str) -> contextlib.AbstractContextManager[IO[bytes]]:
    """A blob's bytes through the store's blob backend (filesystem or S3)."""
    reader: contextlib.AbstractContextManager[IO[bytes]] = store.open_blob(sha256)
    return reader


def materialize(store: Any, repo: str, commit: str, dest: Path) -> dict[str, str]:
    """Copy the commit's files into ``dest`` (which must not exist), checking each blob's
    sha256 as it is copied. Returns path -> sha256."""
    dest.mkdir(parents=True)
    out: dict[str, str] = {}
    for e in store.files(repo, commit):
        target = dest / e.path
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with open_blob(store, e.sha256) as src, open(target, "wb") as fh:
            while block := src.read(_CHUNK):
                h.update(block)
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        if h.hexdigest() != e.sha256:
            raise DeployError(f"{repo}@{commit[:12]}: blob of {e.path} does not match its "
                              f"sha256 {e.sha256}: the store is damaged; not deployed")
        out[e.path] = e.sha256
    return out


def _switch(root: Path, release: str) -> None:
    link = root / MODEL_LINK
    tmp = root / f".{MODEL_LINK}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(os.path.join(RELEASES, release, "model"), tmp)
    if link.exists() and not link.is_symlink():
        raise DeployError(f"{link} exists and is not a symlink: refusing to replace it")
    os.replace(tmp, link)
    fsync_dir(root)


def deploy(store: Any, repo: str, revision: str, root: str | os.PathLike[str], *,
           name: str | None = None, signer: BomSigner, actor: str | None = None,
           action: str = "deploy", environment: bool = False,
           python_path: Sequence[str] | None = None, keep: int = 3,
           note: str = "") -> DeploymentRecord:
    """Deploy ``repo@revision`` (approved commits only) to ``root``."""
    from mlwarden.sbom import SbomError, build_sbom
    from mlwarden.sbom.sign import sign_bom

    dest = Path(root).resolve()
    who = actor or default_actor()
    commit = store.resolve(repo, revision).id  # RevisionNotFound for unapproved commits
    dest.mkdir(parents=True, exist_ok=True)
    with file_lock(dest / ".deploy.lock"):
        try:
            old = read_record(dest)
        except DeployError:
            old = None
        if old is not None and name is not None and old.name != name:
            raise DeployError(f"{dest} is deployment {old.name!r}, not {name!r}")
        dep_name = name or (old.name if old else dest.name)
        release = f"{commit[:12]}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        rel_dir = dest / RELEASES / release
        try:
            materialize(store, repo, commit, rel_dir / "model")
            bom = build_sbom(rel_dir / "model", name=repo, commit=commit,
                             environment=environment and python_path is None)
            if environment and python_path is not None:
                bom = _bom_with_environment(rel_dir / "model", repo, commit, python_path)
            atomic_write_text(rel_dir / BOM_NAME, bom)
            sign_bom(rel_dir / BOM_NAME, rel_dir / (BOM_NAME + ".sig"), key=signer.key,
                     password=signer.password, certificate=signer.certificate,
                     chain=signer.chain, sigstore=signer.sigstore,
                     identity_token=signer.identity_token)
        except (SbomError, OSError) as exc:
            shutil.rmtree(rel_dir, ignore_errors=True)
            raise DeployError(f"cannot deploy {repo}@{commit[:12]}: {exc}") from exc
        except BaseException:
            shutil.rmtree(rel_dir, ignore_errors=True)
            raise
        for p in (rel_dir / "model").rglob("*"):  # read-only: a write is a deliberate act
            with contextlib.suppress(OSError):
                os.chmod(p, 0o555 if p.is_dir() else 0o444)
        history = (*(old.history if old else ()),
                   *([{"commit": old.commit, "release": old.release, "action": old.action,
                       "at": old.deployed_at, "actor": old.actor}] if old else []))
        rec = DeploymentRecord(dep_name, dest, repo, commit, release, action, who,
                               time.time(), os.path.abspath(str(getattr(store, "root", ".")))
                               if getattr(store, "root", None) is not None else None,
                               environment, tuple(history[-50:]))
        # The approval first, then the files it approves.
        atomic_write_text(dest / RECORD, json.dumps(rec.to_dict(), indent=2) + "\n")
        _switch(dest, release)
        bom_text = (rel_dir / BOM_NAME).read_text()
        sig_text = (rel_dir / (BOM_NAME + ".sig")).read_text()
        sbom_sha = attach(store, repo, commit, "sbom", bom_text, who)
        attach(store, repo, commit, "sbom-signature", sig_text, who)
        record_deployment(store, dep_name, str(dest), repo, commit, release, action, who,
                          sbom_sha)
        _log(store, action, rec, old, sbom_sha, note)
        _prune(dest, keep, {release, *(h.get("release") for h in history[-keep:])})
    return rec


def _bom_with_environment(model: Path, repo: str, commit: str,
                          python_path: Sequence[str]) -> str:
    """A BOM listing another interpreter's distributions (the serving environment)."""
    from mlwarden.sbom.cyclonedx import to_cyclonedx
    from mlwarden.sbom.environment import installed
    from mlwarden.sbom.inventory import from_directory

    return to_cyclonedx(from_directory(model, name=repo, commit=commit),
                        installed(list(python_path)))


def _log(store: Any, action: str, rec: DeploymentRecord, old: DeploymentRecord | None,
         sbom_sha: str, note: str) -> None:
    if os.environ.get("MLWARDEN_APPROVAL_LOG", "1") == "0":
        return
    from mlwarden.approvals import ApprovalLogError, append

    details = {"action": action, "deployment": rec.name, "path": str(rec.root),
               "repo": rec.repo, "commit": rec.commit, "release": rec.release,
               "sbom_sha256": sbom_sha, "previous": old.commit if old else None,
               "note": note}
    try:
        append(store, "approval", f"{rec.repo}@{rec.commit}", details, actor=rec.actor)
    except (ApprovalLogError, OSError) as exc:
        raise DeployError(f"deployed, but the approval log could not be appended ({exc}); "
                          "the deployment is recorded in the store") from exc


def _prune(root: Path, keep: int, protect: set[Any]) -> None:
    """Keep the newest ``keep`` releases (and any the history still names) for rollback."""
    rels = sorted((p for p in (root / RELEASES).iterdir() if p.is_dir()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for p in rels[max(keep, 1):]:
        if p.name not in protect:
            for q in p.rglob("*"):
                with contextlib.suppress(OSError):
                    os.chmod(q, 0o755 if q.is_dir() else 0o644)
            shutil.rmtree(p, ignore_errors=True)
