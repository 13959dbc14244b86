"""The Git LFS batch API (``POST /{repo}.git/info/lfs/objects/batch``) with the ``basic`` and
``multipart`` transfers and ``verify``, as huggingface_hub's legacy upload path speaks it.

The client PUTs object bytes (and multipart parts, and POSTs the multipart completion)
without its token, like it would to S3, so upload URLs are capabilities: HMAC-signed with
a server secret, bound to the repository, oid, size, token and expiry, and checked again
on use (a revoked token's URLs stop working). Bytes go to quarantine, hashed while they
stream; an object whose sha256 or size is not what the batch announced is dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from starlette.responses import JSONResponse, Response

from mlwarden.registry.api.context import BodyReader, Principal, WriteCall, WriteContext
from mlwarden.registry.api.quarantine import UploadError
from mlwarden.registry.api.repos import parse_json
from mlwarden.registry.responses import HubError

LFS_TYPE = "application/vnd.git-lfs+json"
MAX_OBJECTS = 1000


def _lfs(doc: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(doc, status_code=status, media_type=LFS_TYPE)


def _sign(ctx: WriteContext, fields: dict[str, str]) -> str:
    msg = "\n".join(f"{k}={fields[k]}" for k in sorted(fields)).encode()
    return hmac.new(ctx.push.secret("lfs-upload-urls"), msg, hashlib.sha256).hexdigest()


def _url(ctx: WriteContext, base: str, repo: str, oid: str, suffix: str,
         fields: dict[str, str]) -> str:
    signed = {**fields, "repo": repo, "oid": oid, "kind": suffix or "object"}
    q = {**fields, "sig": _sign(ctx, signed)}
    return f"{base}/api/mlwarden/lfs/{repo}/{oid}{'/' + suffix if suffix else ''}?{urlencode(q)}"


def _in_repo(ctx: WriteContext, repo: str, oid: str, size: int) -> bool:
    """Content this repository already has (an earlier commit, any state), or a verified
    upload waiting in quarantine: the client need not send it again."""
    if ctx.quarantine.lfs_object(oid, size) is not None:
        return True
    rows = ctx.store.db.read("SELECT size FROM files WHERE repo = ? AND sha256 = ? LIMIT 1",
                             (repo, oid))
    return bool(rows) and int(rows[0][0]) == size and ctx.store.blobs.exists(oid)


def batch(ctx: WriteContext, p: Principal, repo: str, body: bytes, base: str,
          call: WriteCall) -> Response:
    call.action = "lfs-batch"
    ctx.need(p, repo, "write", call)
    ctx.repo_exists(repo)
    ctx.sweep()
    doc = parse_json(body)
    if doc.get("operation") != "upload":
        return _lfs({"message": "only the upload operation is offered: download through "
                     "the Hub API (resolve URLs)"}, 422)
    transfers = doc.get("transfers") or ["basic"]
    if not isinstance(transfers, list) or not {"basic", "multipart"} & set(transfers):
        return _lfs({"message": "supported transfers: basic, multipart"}, 422)
    if doc.get("hash_algo", "sha256") != "sha256":
        return _lfs({"message": "only sha256 object ids are supported"}, 409)
    objects = doc.get("objects")
    if not isinstance(objects, list) or len(objects) > MAX_OBJECTS:
        return _lfs({"message": f"objects: a list of at most {MAX_OBJECTS}"}, 422)
    exp = str(int(time.time() + ctx.write.upload_url_ttl))
    out: list[dict[str, Any]] = []
    used = "basic"
    for obj in objects:
        oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
        if not isinstance(oid, str) or not isinstance(size, int) or isinstance(size, bool) \
                or size < 0:
            out.append({"oid": str(oid), "size": 0,
                        "error": {"code": 422, "message": "oid and size are required"}})
            continue
        try:
            ctx.quarantine.lfs_path(oid)
        except UploadError as exc:
            out.append({"oid": oid, "size": size, "error": {"code": 422,
                                                            "message": exc.message}})
            continue
        if size > ctx.write.max_object_bytes:
            out.append({"oid": oid, "size": size, "error": {
                "code": 422, "message": f"object larger than {ctx.write.max_object_bytes}"}})
            continue
        entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if not _in_repo(ctx, repo, oid, size):
            fields = {"size": str(size), "exp": exp, "tok": p.token.id}
            upload: dict[str, Any]
            if "multipart" in transfers and size > ctx.write.multipart_threshold:
                used = "multipart"
                chunk = ctx.write.multipart_chunk
                up = ctx.quarantine.new_multipart()
                mfields = {**fields, "up": up, "chunk": str(chunk)}
                header: dict[str, str] = {"chunk_size": str(chunk)}
                for n in range(1, -(-size // chunk) + 1):
                    header[str(n)] = _url(ctx, base, repo, oid, f"part/{n}", mfields)
                upload = {"href": _url(ctx, base, repo, oid, "", mfields), "header": header}
            else:
                upload = {"href": _url(ctx, base, repo, oid, "", fields)}
            upload["expires_in"] = int(ctx.write.upload_url_ttl)
            entry["actions"] = {"upload": upload, "verify": {
                "href": f"{base}/api/mlwarden/lfs/{repo}/{oid}/verify"}}
        out.append(entry)
    call.notes.append(f"{len(out)} object(s)")
    return _lfs({"transfer": used, "objects": out, "hash_algo": "sha256"})


def _check_url(ctx: WriteContext, repo: str, oid: str, suffix: str,
               query: dict[str, str], call: WriteCall) -> dict[str, str]:
    fields = {k: v for k, v in query.items() if k != "sig"}
    if set(fields) - {"size", "exp", "tok", "up", "chunk"} or \
            not {"size", "exp", "tok"} <= set(fields):
        raise HubError(403, None, "not a valid upload URL", audit="denied")
    want = _sign(ctx, {**fields, "repo": repo, "oid": oid, "kind": suffix or "object"})
    if not hmac.compare_digest(want, query.get("sig", "")):
        raise HubError(403, None, "upload URL signature does not match", audit="denied")
    if not fields["exp"].isdigit() or int(fields["exp"]) < time.time():
        raise HubError(403, None, "upload URL expired: ask the batch API again", audit="denied")
    token = next((t for t in ctx.store.tokens() if t.id == fields["tok"]), None)
    if token is None or not token.active(time.time()) or not token.can(repo, "write"):
        raise HubError(403, None, "the token behind this upload URL is no longer valid",
                       audit="denied")
    call.actor = f"token:{token.name}/{token.id}"
    for k in ("size", "chunk"):
        if k in fields and not fields[k].isdigit():
            raise HubError(400, None, f"invalid {k}", audit="bad-request")
    return fields


def upload_object(ctx: WriteContext, repo: str, oid: str, query: dict[str, str],
                  body: BodyReader, call: WriteCall) -> Response:
    """Basic transfer: the whole object in one PUT."""
    call.action = "lfs-upload"
    call.repo, call.path = repo, oid
    fields = _check_url(ctx, repo, oid, "", query, call)
    if "up" in fields:
        raise HubError(400, None, "this object uploads in parts", audit="bad-request")
    size = int(fields["size"])
    try:
        ctx.quarantine.put_lfs(oid, size, body.chunk)
    except UploadError as exc:
        raise HubError(exc.status, None, exc.message, audit="bad-request") from None
    call.nbytes = body.total
    return Response(status_code=200)


def upload_part(ctx: WriteContext, repo: str, oid: str, number: str, query: dict[str, str],
                body: BodyReader, call: WriteCall) -> Response:
    call.action = "lfs-part"
    call.repo, call.path = repo, oid
    fields = _check_url(ctx, repo, oid, f"part/{number}", query, call)
    if "up" not in fields or "chunk" not in fields or not number.isdigit():
        raise HubError(400, None, "not a part upload URL", audit="bad-request")
    try:
        etag = ctx.quarantine.put_part(fields["up"], int(number), int(fields["chunk"]),
                                       int(fields["size"]), body.chunk)
    except UploadError as exc:
        raise HubError(exc.status, None, exc.message, audit="bad-request") from None
    call.nbytes = body.total
    call.notes.append(f"part {number}")
    return Response(status_code=200, headers={"ETag": f'"{etag}"'})


def complete_multipart(ctx: WriteContext, repo: str, oid: str, query: dict[str, str],
                       raw: bytes, call: WriteCall) -> Response:
    call.action = "lfs-complete"
    call.repo, call.path = repo, oid
    fields = _check_url(ctx, repo, oid, "", query, call)
    if "up" not in fields or "chunk" not in fields:
        raise HubError(400, None, "this object was not uploaded in parts", audit="bad-request")
    try:
        doc = json.loads(raw)
        parts = [(int(x["partNumber"]), str(x["etag"])) for x in doc["parts"]]
        if doc.get("oid") != oid:
            raise ValueError("oid")
    except (ValueError, KeyError, TypeError):
        raise HubError(400, None, "completion body must be {oid, parts: [{partNumber, etag}]}",
                       audit="bad-request") from None
    try:
        ctx.quarantine.complete(fields["up"], oid, int(fields["size"]), int(fields["chunk"]),
                                parts)
    except UploadError as exc:
        raise HubError(exc.status, None, exc.message, audit="bad-request") from None
    return _lfs({"oid": oid, "size": int(fields["size"])})


def verify(ctx: WriteContext, p: Principal, repo: str, oid: str, raw: bytes,
           call: WriteCall) -> Response:
    call.action = "lfs-verify"
    ctx.need(p, repo, "write", call)
    call.path = oid
    doc = parse_json(raw)
    size = doc.get("size")
    if doc.get("oid") != oid or not isinstance(size, int):
        raise HubError(422, None, "verify body must be {oid, size}", audit="bad-request")
    try:
        found = ctx.quarantine.lfs_object(oid, size) is not None or _in_repo(ctx, repo, oid, size)
    except UploadError as exc:
        raise HubError(422, None, exc.message, audit="bad-request") from None
    if not found:
        raise HubError(404, None, f"object {oid} ({size} bytes) was not received",
                       audit="not-found")
    return _lfs({"oid": oid, "size": size})
