"""The files under a path inside a container image, hashed straight from its layers: no
container runtime, nothing extracted to disk.

Targets use skopeo's transport names and ``!`` for the path inside (as archive members are
named elsewhere in mlwarden):

* ``oci:LAYOUT_DIR[:REF]!/models/bert``      an OCI image layout directory
* ``oci-archive:IMAGE.tar[:REF]!/models/bert`` a tar of one (``skopeo copy ... oci-archive:``)
* ``docker-archive:IMAGE.tar[:REF]!/models/bert``  ``docker save`` output

Layers are applied in order with OCI whiteouts (``.wh.NAME`` deletes, ``.wh..wh..opq``
makes a directory opaque). In OCI layouts every blob read (index, manifest, layers) is
checked against its sha256 digest, so the files hashed are the image the digest names.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlwarden.sbom.errors import SbomInputError

TRANSPORTS = ("oci", "oci-archive", "docker-archive")
MAX_JSON_BYTES = 16 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageTarget:
    transport: str
    location: Path
    ref: str | None
    path: str  # inside the image, no leading slash

    @property
    def display(self) -> str:
        ref = f":{self.ref}" if self.ref else ""
        return f"{self.transport}:{self.location}{ref}!/{self.path}"


def parse_target(text: str) -> ImageTarget | None:
    """None when ``text`` does not name an image transport."""
    transport, sep, rest = text.partition(":")
    if not sep or transport not in TRANSPORTS:
        return None
    loc, bang, inner = rest.partition("!")
    if not bang or not inner.strip("/"):
        raise SbomInputError(f"{text}: name the path inside the image after '!' "
                             f"({transport}:LOCATION!/models/NAME)")
    ref = None
    if not os.path.exists(loc):
        # LOCATION:REF, where the ref may itself hold colons (acme/app:1).
        cuts = [i for i, c in enumerate(loc) if c == ":"]
        for i in cuts:
            if os.path.exists(loc[:i]):
                loc, ref = loc[:i], loc[i + 1:]
                break
    if not os.path.exists(loc):
        kind = "directory" if transport == "oci" else "archive"
        raise SbomInputError(f"{loc}: no such image {kind}")
    return ImageTarget(transport, Path(loc), ref, inner.strip("/"))


@dataclass
class ImageFiles:
    """Result: repository-relative path -> (sha256, size), plus what was not a file."""

    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    special: dict[str, str] = field(default_factory=dict)  # path -> "symlink -> x", ...
    digest: str | None = None  # manifest digest (OCI), config digest (docker-archive)


class _HashingReader(io.RawIOBase):
    """Reads through, hashing; ``finish()`` drains the rest and checks the digest."""

    def __init__(self, raw: IO[bytes], expected: str | None, what: str) -> None:
        self.raw, self.expected, self.what = raw, expected, what
        self.h = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.h.update(data)
        return n

    def finish(self) -> None:
        while block := self.raw.read(_CHUNK):
            self.h.update(block)
        if self.expected is not None and self.h.hexdigest() != self.expected:
            raise SbomInputError(f"{self.what}: content does not match its digest "
                                 f"sha256:{self.expected}: the image was modified")


# ----------------------------------------------------------------------------- sources


class _Source:
    """Where blobs come from: a layout directory, or members of a tar."""

    def __init__(self, target: ImageTarget) -> None:
        self.target = target
        self.tar: tarfile.TarFile | None = None
        if target.transport != "oci":
            try:
                self.tar = tarfile.open(target.location, "r:")  # noqa: SIM115
            except (tarfile.TarError, OSError) as exc:
                raise SbomInputError(f"{target.location}: not a tar archive: {exc}") from None

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        if self.tar is None:
            p = self.target.location / name
            if not p.is_file():
                raise SbomInputError(f"{self.target.location}: missing {name}")
            with p.open("rb") as fh:
                yield fh
            return
        try:
            f = self.tar.extractfile(name.removeprefix("./"))
        except KeyError:
            f = None
        if f is None:
            raise SbomInputError(f"{self.target.location}: missing member {name}")
        with f:
            yield f

    def json(self, name: str, digest: str | None = None) -> Any:
        with self.open(name) as fh:
            data = fh.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise SbomInputError(f"{name}: larger than {MAX_JSON_BYTES} bytes")
        if digest is not None and hashlib.sha256(data).hexdigest() != digest:
            raise SbomInputError(f"{name}: content does not match its digest sha256:{digest}")
        try:
            return json.loads(data)
        except ValueError:
            raise SbomInputError(f"{self.target.location}: {name} is not JSON") from None


def _blob_name(digest: str) -> tuple[str, str]:
    alg, _, hexd = str(digest).partition(":")
    if alg != "sha256" or len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
        raise SbomInputError(f"unsupported or malformed digest {digest!r}")
    return f"blobs/sha256/{hexd}", hexd


def _oci_layers(src: _Source, ref: str | None) -> tuple[list[tuple[str, str | None]], str]:
    """(layer blob names with digests, manifest digest) of the chosen image."""
    index = src.json("index.json")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not manifests:
        raise SbomInputError(f"{src.target.location}: index.json lists no image")
    chosen = manifests[0]
    if ref is not None:
        chosen = next((m for m in manifests if isinstance(m, dict) and
                       (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
                       == ref), None)
        if chosen is None:
            raise SbomInputError(f"{src.target.location}: no image with ref {ref!r}")
    for _ in range(4):  # an image index may point at per-platform manifests
        name, hexd = _blob_name(chosen.get("digest", ""))
        doc = src.json(name, hexd)
        if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
            linux = [m for m in doc["manifests"] if isinstance(m, dict) and
                     (m.get("platform") or {}).get("os", "linux") == "linux"]
            if not linux:
                raise SbomInputError(f"{src.target.location}: no linux image in the index")
            chosen = linux[0]
            continue
        layers = doc.get("layers") if isinstance(doc, dict) else None
        if not isinstance(layers, list):
            raise SbomInputError(f"{src.target.location}: manifest {hexd[:12]} has no layers")
        out: list[tuple[str, str | None]] = []
        for layer in layers:
            lname, lhex = _blob_name(layer.get("digest", "") if isinstance(layer, dict)
                                     else "")
            out.append((lname, lhex))
        return out, f"sha256:{hexd}"
    raise SbomInputError(f"{src.target.location}: image indexes nested too deeply")


def _docker_layers(src: _Source, ref: str | None) -> tuple[list[tuple[str, str | None]], str]:
    doc = src.json("manifest.json")
    if not isinstance(doc, list) or not doc:
        raise SbomInputError(f"{src.target.location}: manifest.json lists no image")
    chosen = doc[0]
    if ref is not None:
        chosen = next((m for m in doc if isinstance(m, dict) and
                       any(t == ref or t.endswith(f":{ref}") or t.split(":")[0] == ref
                           for t in m.get("RepoTags") or [])), None)
        if chosen is None:
            raise SbomInputError(f"{src.target.location}: no image tagged {ref!r}")
    layers = chosen.get("Layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise SbomInputError(f"{src.target.location}: manifest.json has no layer list")
    out: list[tuple[str, str | None]] = []
    for x in layers:
        # Newer docker saves name layers by digest (blobs/sha256/HEX): check those.
        hexd = x.rsplit("/", 1)[-1] if x.startswith("blobs/sha256/") else None
        out.append((x, hexd))
    config = str(chosen.get("Config", ""))
    return out, "sha256:" + config.rsplit("/", 1)[-1].removesuffix(".json")


@contextmanager
def _decompressed(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    """A layer stream, decompressed by its magic bytes (tar, gzip, zstd)."""
    buffered = io.BufferedReader(raw, buffer_size=_CHUNK)  # type: ignore[type-var]
    head = buffered.peek(4)[:4]
    if head[:2] == b"\x1f\x8b":
        import gzip

        with gzip.GzipFile(fileobj=buffered) as gz:
            yield gz  # type: ignore[misc]
    elif head == b"\x28\xb5\x2f\xfd":
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(buffered) as z:
            yield z
    else:
        yield buffered


def _norm(name: str) -> str:
    return os.path.normpath("/" + name).lstrip("/")


def _walk_layer(src: _Source, name: str, hexd: str | None,
                visit: Callable[[tarfile.TarInfo, tarfile.TarFile], None]) -> None:
    with src.open(name) as raw:
        reader = _HashingReader(raw, hexd, name)
        with _decompressed(reader) as stream:  # type: ignore[arg-type]
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tf:
                    for m in tf:
                        visit(m, tf)
            except tarfile.TarError as exc:
                raise SbomInputError(f"{name}: not a tar layer: {exc}") from None
        reader.finish()


def image_files(target: ImageTarget) -> ImageFiles:
    """sha256 and size of every regular file under ``target.path`` in the final image."""
    src = _Source(target)
    try:
        if target.transport == "docker-archive":
            layers, digest = _docker_layers(src, target.ref)
        else:
            layers, digest = _oci_layers(src, target.ref)
        prefix = target.path.rstrip("/") + "/"

        def under(p: str) -> bool:
            return p == target.path or p.startswith(prefix)

        # Pass 1: which layer provides each path in the final filesystem.
        final: dict[str, tuple[int, str]] = {}  # path -> (layer index, kind)
        special: dict[str, str] = {}

        def drop(path: str) -> None:
            for p in [p for p in final if p == path or p.startswith(path + "/")]:
                del final[p]
            for p in [p for p in special if p == path or p.startswith(path + "/")]:
                del special[p]

        for i, (lname, lhex) in enumerate(layers):
            seen_here: set[str] = set()

            def visit(m: tarfile.TarInfo, tf: tarfile.TarFile, i: int = i,
                      seen_here: set[str] = seen_here) -> None:
                p = _norm(m.name)
                base = os.path.basename(p)
                parent = os.path.dirname(p)
                if base == ".wh..wh..opq":
                    for q in [q for q in final if q.startswith(parent + "/") and
                              q not in seen_here]:
                        del final[q]
                    return
                if base.startswith(".wh."):
                    drop(os.path.join(parent, base[4:]))
                    return
                if not under(p) and not target.path.startswith(p + "/"):
                    return
                seen_here.add(p)
                if m.isreg():
                    drop(p)
                    final[p] = (i, "file")
                elif m.islnk():
                    tgt = _norm(m.linkname)
                    drop(p)
                    if tgt in final:
                        final[p] = (i, "link:" + tgt)
                    else:
                        special[p] = f"hard link to {m.linkname} (outside the path)"
                elif m.issym():
                    drop(p)
                    special[p] = f"symbolic link -> {m.linkname}"
                elif m.isdir():
                    final.pop(p, None)
                else:
                    drop(p)
                    special[p] = "special file"

            _walk_layer(src, lname, lhex, visit)
        # Pass 2: hash each file from the layer that provides it (one pass per layer).
        wanted: dict[int, dict[str, list[str]]] = {}
        for p, (i, kind) in final.items():
            if not under(p):
                continue
            member = kind[5:] if kind.startswith("link:") else p
            src_layer = final.get(member, (i, "file"))[0] if kind.startswith("link:") else i
            wanted.setdefault(src_layer, {}).setdefault(member, []).append(p)
        out = ImageFiles(digest=digest)
        for i, members in wanted.items():
            lname, lhex = layers[i]

            def hash_member(m: tarfile.TarInfo, tf: tarfile.TarFile,
                            members: dict[str, list[str]] = members) -> None:
                p = _norm(m.name)
                if p not in members or not m.isreg():
                    return
                f = tf.extractfile(m)
                h = hashlib.sha256()
                if f is not None:
                    while block := f.read(_CHUNK):
                        h.update(block)
                for dst in members[p]:
                    out.files[dst[len(prefix):] if dst != target.path else
                              os.path.basename(dst)] = (h.hexdigest(), m.size)

            _walk_layer(src, lname, lhex, hash_member)
        for p, why in special.items():
            if under(p):
                out.special[p[len(prefix):] if p != target.path else p] = why
        if not out.files and not out.special:
            raise SbomInputError(f"{target.display}: no such path in the image")
        return out
    finally:
        src.close()
