"""Check a deployment against a signed ML-BOM: the signature first (an unverified BOM is
never used), then every file: same sha256, nothing missing, nothing extra.

A target is a directory (a deployment, ``/proc/PID/root/models/x`` of a running
container), a store commit (``ORG/NAME@REV`` with a store: the store's file table and the
blobs themselves, re-hashed), or a path inside a container image (mlwarden.sbom.oci).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.report.model import FileResult, Finding, Report, Verdict
from mlwarden.sbom import rules as R
from mlwarden.sbom.errors import SbomInputError
from mlwarden.signing.statement import Trust

MAX_BOM_BYTES = 256 << 20
SKIPPED = (".git/", ".cache/huggingface/")  # what the BOM never lists (sbom.inventory)
_CHUNK = 4 << 20


@dataclass(frozen=True)
class BomVerification:
    ok: bool
    report: Report
    target: str
    signer: str | None = None  # who signed the BOM
    bom_name: str | None = None
    bom_commit: str | None = None
    image_digest: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


def bom_files(text: str | bytes) -> tuple[dict[str, str | None], str | None, str | None]:
    """(path -> sha256 of each file the BOM lists, model name, model version/commit).
    CycloneDX (metadata.component.components of type file) or SPDX 3 (software_File)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise SbomInputError("the BOM is not JSON") from None
    if not isinstance(doc, dict):
        raise SbomInputError("the BOM is not a JSON object")
    files: dict[str, str | None] = {}
    if doc.get("bomFormat") == "CycloneDX":
        comp = (doc.get("metadata") or {}).get("component") or {}

        def walk(cs: Any) -> None:
            for c in cs or []:
                if not isinstance(c, dict):
                    continue
                if c.get("type") == "file" and isinstance(c.get("name"), str):
                    sha = next((h.get("content") for h in c.get("hashes") or []
                                if isinstance(h, dict) and h.get("alg") == "SHA-256"), None)
                    files[c["name"]] = sha.lower() if isinstance(sha, str) else None
                walk(c.get("components"))

        walk(comp.get("components"))
        name = "/".join(x for x in (comp.get("group"), comp.get("name")) if x) or None
        return files, name, comp.get("version")
    graph = doc.get("@graph")
    if isinstance(graph, list):
        model = next((e for e in graph if isinstance(e, dict) and
                      e.get("type") == "ai_AIPackage"), {})
        for e in graph:
            if isinstance(e, dict) and e.get("type") == "software_File" and \
                    isinstance(e.get("name"), str):
                sha = next((h.get("hashValue") for h in e.get("verifiedUsing") or []
                            if isinstance(h, dict) and h.get("algorithm") == "sha256"), None)
                files[e["name"]] = sha.lower() if isinstance(sha, str) else None
        return files, model.get("name"), model.get("software_packageVersion")
    raise SbomInputError("not a CycloneDX or SPDX 3 JSON BOM")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def directory_files(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> sha256 of regular files, path -> why, for links and special files)."""
    if not root.is_dir():
        raise SbomInputError(f"{root}: not a directory")
    files: dict[str, str] = {}
    special: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for d in list(dirnames):
            if (rel_dir + d + "/").startswith(SKIPPED):
                dirnames.remove(d)
            elif os.path.islink(os.path.join(dirpath, d)):
                special[rel_dir + d] = f"symbolic link -> {os.readlink(os.path.join(dirpath, d))}"
                dirnames.remove(d)
        for n in filenames:
            rel = rel_dir + n
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                special[rel] = f"symbolic link -> {os.readlink(p)}"
            elif not stat.S_ISREG(st.st_mode):
                special[rel] = "special file"
            else:
                try:
                    files[rel] = _sha256(p)
                except OSError as exc:
                    special[rel] = f"unreadable: {exc.strerror}"
    return files, special


def store_files(store_path: str | os.PathLike[str], ref: str,
                db_url: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """A store commit: each blob the commit names is re-hashed (the table alone could lie)."""
    from mlwarden.store import Store, StoreError

    repo, _, rev = ref.partition("@")
    try:
        store = Store.open(store_path, db_url, create=False)
    except StoreError as exc:
        raise SbomInputError(str(exc)) from exc
    try:
        c = store.resolve(repo, rev or "main", approved_only=False)
        files: dict[str, str] = {}
        special: dict[str, str] = {}
        for e in store.files(repo, c.id):
            try:
                got = _blob_sha256(store, e.sha256)
            except (OSError, StoreError) as exc:
                special[e.path] = f"blob {e.sha256[:12]} unreadable: {exc}"
                continue
            files[e.path] = got
        return files, special
    except StoreError as exc:
        raise SbomInputError(str(exc)) from exc
    finally:
        store.close()


def _blob_sha256(store: Any, sha256: str) -> str:
    from mlwarden.store.blobs import hash_blob

    return hash_blob(store.blobs, sha256).sha256


def compare(expected: Mapping[str, str | None], actual: Mapping[str, str],
            special: Mapping[str, str], display_root: str) -> list[FileResult]:
    out: list[FileResult] = []
    for path in sorted(set(expected) | set(actual) | set(special)):
        findings: list[Finding] = []
        want = expected.get(path)
        got = actual.get(path)
        if path in special:
            findings.append(R.SPECIAL.finding(f"{special[path]}"))
        elif path not in expected:
            findings.append(R.EXTRA.finding("not in the signed BOM"))
        elif got is None:
            findings.append(R.MISSING.finding("listed in the signed BOM, missing"))
        elif want is None:
            findings.append(R.UNHASHED.finding("the BOM gives no sha256 for this file"))
        elif want != got:
            findings.append(R.MISMATCH.finding(f"sha256 {got} differs from the signed "
                                               f"{want}"))
        out.append(FileResult(f"{display_root}{path}", "file",
                              Verdict.worst(f.verdict for f in findings), None, got,
                              tuple(findings)))
    return out


def verify_against_bom(bom: str | os.PathLike[str], signature: str | os.PathLike[str],
                       target: str, trust: Trust, *, store: str | None = None,
                       db_url: str | None = None) -> BomVerification:
    """Verify the BOM's signature, then ``target`` (directory, ``ORG/NAME@REV`` with
    ``store``, or an image path such as ``oci:DIR!/models/x``) against it."""
    from mlwarden.sbom.oci import image_files, parse_target
    from mlwarden.sbom.sign import verify_bom_signature

    bom_path = Path(bom)
    sig = verify_bom_signature(bom_path, signature, trust)
    bom_entry = f"{bom_path}"
    if not sig.ok:
        tried = "; ".join(sig.tried)
        f = R.SIGNATURE.finding((sig.error or "not verified") + (f" ({tried})" if tried
                                                                  else ""))
        fr = FileResult(bom_entry, "cyclonedx", f.verdict, None, None, (f,))
        return BomVerification(False, Report("verify-sbom", (fr,)), target,
                               problems=(sig.error or "",))
    try:
        with bom_path.open("rb") as fh:
            data = fh.read(MAX_BOM_BYTES + 1)
    except OSError as exc:
        raise SbomInputError(f"{bom_path}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_BOM_BYTES:
        raise SbomInputError(f"{bom_path}: larger than {MAX_BOM_BYTES} bytes")
    expected, name, version = bom_files(data)
    image_digest = None
    image = parse_target(target)
    if image is not None:
        got_image = image_files(image)
        actual = {p: s for p, (s, _) in got_image.files.items()}
        special = got_image.special
        image_digest = got_image.digest
        display = f"{image.display.rstrip('/')}/"
    elif store is not None:
        actual, special = store_files(store, target, db_url)
        display = f"{target}/"
    else:
        actual, special = directory_files(Path(target))
        display = f"{target.rstrip('/')}/"
    results = compare(expected, actual, special, display)
    ok = all(r.verdict is Verdict.CLEAN for r in results)
    signer = ", ".join(sig.identities) or sig.method
    note = R.VERIFIED.finding(f"signed ({signer}); {len(expected)} file(s) of "
                              f"{name or 'the model'}@{(version or '?')[:12]} verified"
                              + (f"; image {image_digest}" if image_digest else "")) \
        if ok else None
    head = FileResult(bom_entry, "cyclonedx", Verdict.CLEAN, None, None,
                      (note,) if note else ())
    problems = tuple(f"{r.path}: {f.message}" for r in results for f in r.findings)
    return BomVerification(ok, Report("verify-sbom", (head, *results)), target, signer,
                           name, version, image_digest, problems)
