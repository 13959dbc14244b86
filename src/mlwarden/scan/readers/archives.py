"""Archives and compressed streams: tar, gzip/bz2/xz/lzma/zlib/lz4/zstd, 7z.

Nothing is ever extracted to disk by name: members are decompressed with bounds into a
:class:`Source` and handed back to the engine with ``ctx.scan_member``. The bounds and the
bomb/traversal rules shared with the zip reader live here too.

Bounds are charged per *archive tree* (one top-level file and everything nested in it):
members and decompressed bytes are counted across nesting levels, so a 42.zip-style
recursion runs out of budget instead of out of memory. After a decompression bomb is
found, the rest of the tree is not expanded: the file is already flagged, and expanding
more bombs only costs time.
"""

from __future__ import annotations

import bz2
import contextlib
import contextvars
import lzma
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import MiB, ScanContext
from mlwarden.scan.source import SPOOL_THRESHOLD, Source, release

if TYPE_CHECKING:
    import tarfile  # imported by read_tar, only when a tar is met

# A member must pass both the ratio bound and this floor to count as a bomb: benign
# zero-filled arrays compress ~1000:1, and at this size they are no threat.
RATIO_FLOOR = 128 * MiB
# How much of an over-expanding member is still analysed (a payload up front is found).
BOMB_PREFIX = 4 * MiB
# xz -9 needs 65 MiB to decode; a header declaring more only makes liblzma reserve it.
LZMA_MEMLIMIT = 128 * MiB

ARCHIVE_BOMB = rule(
    "archive-bomb",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Decompression bomb",
    "A member expands beyond the configured bounds (ratio above max_ratio past a 128 MiB "
    "floor, max_member_bytes, or the per-file max_total_bytes), or declares it will. "
    "Only its first 4 MiB are analysed, and the rest of the archive tree is not "
    "expanded. Loaders that extract it exhaust memory or disk.",
)
PATH_TRAVERSAL = rule(
    "archive-path-traversal",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Archive member name escapes the extraction directory",
    "Names with '..' components, absolute paths or drive letters write outside the target "
    "directory when a tool extracts the archive (tarfile before 3.12, zip extractors, "
    "model downloaders that unpack). No legitimate model archive needs them.",
)
LINK_ESCAPE = rule(
    "archive-link-escape",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Archive link member points outside the archive",
    "A symbolic or hard link to an absolute path or through '..' exposes host files (or "
    "lets later members be written through it) when the archive is extracted.",
)
SPECIAL_MEMBER = rule(
    "archive-special-member",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Archive holds a device or FIFO member",
    "Character/block devices and FIFOs have no place in a model archive; extracting them "
    "as root creates device nodes.",
)
ARCHIVE_CORRUPT = rule(
    "archive-corrupt",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "Archive or compressed stream is corrupt",
    "The structure or compressed data breaks part-way. Whatever decompressed before the "
    "break is still analysed (a loader reading the stream would have consumed it too), but "
    "the rest is unknown.",
)
ARCHIVE_ENCRYPTED = rule(
    "archive-encrypted",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "Encrypted archive content",
    "Encrypted members cannot be analysed without the password.",
)
ARCHIVE_TRAILING = rule(
    "archive-trailing-data",
    Verdict.SUSPICIOUS,
    Severity.LOW,
    "Data after the end of a compressed stream",
    "Bytes follow the end of the compressed stream. Most decompressors ignore them, but "
    "they can hide a second payload from tools that stop at the first stream.",
)


# --------------------------------------------------------------------------- tree budget


@dataclass
class Tree:
    """Budget shared by every archive nested in one top-level file."""

    members_left: int
    bytes_left: int
    bomb: str | None = None  # where the first bomb was found
    stop_reported: bool = False


_TREE: contextvars.ContextVar[Tree | None] = contextvars.ContextVar("mlwarden_tree", default=None)


@contextlib.contextmanager
def archive_tree(ctx: ScanContext) -> Iterator[Tree]:
    tree = _TREE.get()
    if tree is not None:
        yield tree
        return
    tree = Tree(ctx.limits.max_members, ctx.limits.max_total_bytes)
    token = _TREE.set(tree)
    try:
        yield tree
    finally:
        _TREE.reset(token)


def may_expand(ctx: ScanContext, tree: Tree, remaining: int) -> bool:
    """Whether another member may be expanded; reports once per archive why not."""
    if tree.bomb is not None:
        if remaining:
            ctx.limit(f"{remaining} member(s) not expanded: a decompression bomb was found "
                      f"in this archive tree ({tree.bomb})")
        return False
    if tree.members_left <= 0:
        if remaining:
            ctx.limit(f"{remaining} member(s) not scanned: the archive tree holds more than "
                      f"{ctx.limits.max_members} members")
        return False
    return True


# --------------------------------------------------------------------------- names


_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name(name: str) -> str | None:
    """Why an archive member name would escape an extraction directory, or None."""
    if "\x00" in name:
        return "contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(norm):
        return "starts with a drive letter"
    if ".." in norm.split("/"):
        return "contains a '..' component"
    return None


def link_escapes(member: str, target: str, hard: bool) -> bool:
    norm = target.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        return True
    base = "" if hard else posixpath.dirname(member.replace("\\", "/"))
    joined = posixpath.normpath(posixpath.join(base, norm))
    return joined == ".." or joined.startswith("../")


def member_display(ctx: ScanContext, name: str) -> str:
    return f"{ctx.display_path}!{name}"


# --------------------------------------------------------------------------- expansion


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Expanded:
    source: Source
    produced: int
    bomb: str | None = None  # why the content was cut short
    error: str | None = None  # decompression error after ``produced`` bytes


def expansion_limit(ctx: ScanContext, tree: Tree, comp_size: int | None) -> int:
    limit = min(ctx.limits.max_member_bytes, max(tree.bytes_left, 0))
    if comp_size is not None:
        limit = min(limit, max(RATIO_FLOOR, int(comp_size * ctx.limits.max_ratio)))
    return limit


def _bomb_reason(ctx: ScanContext, tree: Tree, comp_size: int | None, size: int,
                 declared: bool) -> str:
    verb = "declares" if declared else "expands to more than"
    if size > ctx.limits.max_member_bytes:
        why = f"max_member_bytes is {ctx.limits.max_member_bytes}"
    elif size > tree.bytes_left:
        why = f"the file's max_total_bytes budget ({ctx.limits.max_total_bytes}) is spent"
    else:
        why = (f"more than {ctx.limits.max_ratio:g}x its {comp_size} compressed bytes"
               if comp_size is not None else "the bound")
    return f"{verb} {size} bytes: {why}"


class Spool:
    """Bytes kept in memory up to SPOOL_THRESHOLD, then in a temporary file."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._fh: BinaryIO | None = None
        self._path: str | None = None
        self.size = 0

    def write(self, block: bytes | bytearray) -> None:
        if self._fh is None and len(self._buf) + len(block) > SPOOL_THRESHOLD:
            fd, self._path = tempfile.mkstemp(prefix="mlwarden-")
            self._fh = os.fdopen(fd, "w+b")
            self._fh.write(self._buf)
            self._buf = bytearray()
        if self._fh is not None:
            self._fh.write(block)
        else:
            self._buf += block
        self.size += len(block)

    def head(self, n: int) -> bytes:
        if self._fh is None:
            return bytes(self._buf[:n])
        self._fh.flush()
        self._fh.seek(0)
        data = self._fh.read(n)
        self._fh.seek(0, os.SEEK_END)
        return data

    def to_source(self, display: str) -> Source:
        """The content as a Source; a spooled file now belongs to it (see release())."""
        if self._fh is None or self._path is None:
            src = Source.from_bytes(bytes(self._buf), display)
            self._buf = bytearray()
            return src
        self._fh.close()
        self._fh = None
        src = Source(display_path=display, size=self.size, spool=Path(self._path))
        self._path = None
        return src

    def discard(self) -> None:
        self._buf = bytearray()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = None


def expand(stream: Readable, display: str, ctx: ScanContext, tree: Tree, *,
           comp_size: int | None, declared: int | None = None) -> Expanded:
    """Decompress ``stream`` into a Source with bounds; never raises on bad data.

    Call :func:`release` on the result's source. On a bomb only the first BOMB_PREFIX
    bytes are kept; on a decompression error, what came out before it is kept.
    """
    tree.members_left -= 1
    limit = expansion_limit(ctx, tree, comp_size)
    bomb: str | None = None
    if declared is not None and declared > limit:
        bomb = _bomb_reason(ctx, tree, comp_size, declared, declared=True)
        limit = BOMB_PREFIX
    spool = Spool()
    error: str | None = None
    try:
        while True:
            try:
                block = stream.read(min(1 << 20, limit + 1 - spool.size))
            except MemoryError:
                error = "decompressor needs more memory than allowed"
                break
            except Exception as exc:  # every codec has its own error types
                error = f"{type(exc).__name__}: {exc}"
                break
            if not block:
                break
            spool.write(block)
            if spool.size > limit:
                if bomb is None:
                    bomb = _bomb_reason(ctx, tree, comp_size, limit, declared=False)
                break
        produced = spool.size
        tree.bytes_left -= produced
        if bomb is not None:
            tree.bomb = tree.bomb or display
            return Expanded(Source.from_bytes(spool.head(BOMB_PREFIX), display), produced,
                            bomb, error)
        return Expanded(spool.to_source(display), produced, None, error)
    finally:
        spool.discard()


def scan_expanded(ctx: ScanContext, exp: Expanded, name: str, what: str = "member") -> None:
    """Report what expansion found, then scan the content as its own entry."""
    loc = Location(member=name)
    if exp.bomb is not None:
        ctx.report(ARCHIVE_BOMB, f"{what} {name!r} {exp.bomb}; only its first "
                   f"{min(exp.source.size, BOMB_PREFIX)} bytes were analysed", loc)
    if exp.error is not None:
        ctx.report(ARCHIVE_CORRUPT, f"{what} {name!r}: decompression failed after "
                   f"{exp.produced} bytes ({exp.error}); the bytes before the break "
                   "were analysed", loc)
    try:
        ctx.scan_member(exp.source)
    finally:
        release(exp.source)


# --------------------------------------------------------------------------- tar


def read_tar(source: Source, ctx: ScanContext) -> None:
    import tarfile

    ctx.format = "tar"
    with archive_tree(ctx) as tree, source.open() as fh:
        try:
            tf = tarfile.open(fileobj=fh, mode="r:")  # noqa: SIM115 (fh is closed above)
        except (tarfile.TarError, EOFError, OSError, UnicodeError, ValueError) as exc:
            ctx.report(ARCHIVE_CORRUPT, f"not a readable tar archive: {exc}")
            return
        count = 0
        while True:
            try:
                ti = tf.next()
            except (tarfile.TarError, EOFError, UnicodeError, ValueError, OverflowError) as exc:
                ctx.report(ARCHIVE_CORRUPT, f"tar header unreadable after {count} members: "
                           f"{exc}")
                return
            if ti is None:
                return
            tf.members.clear()  # type: ignore[attr-defined]  # streamed: keep none
            count += 1
            _check_tar_member(ctx, ti)
            if not ti.isreg():
                continue
            if not may_expand(ctx, tree, 1):
                return
            try:
                stream = tf.extractfile(ti)
            except (tarfile.TarError, OSError, ValueError) as exc:
                ctx.report(ARCHIVE_CORRUPT, f"member {ti.name!r} unreadable: {exc}",
                           Location(member=ti.name))
                continue
            if stream is None:
                continue
            exp = expand(stream, member_display(ctx, ti.name), ctx, tree, comp_size=None,
                         declared=ti.size)
            scan_expanded(ctx, exp, ti.name)


def _check_tar_member(ctx: ScanContext, ti: tarfile.TarInfo) -> None:
    loc = Location(member=ti.name)
    why = unsafe_name(ti.name)
    if why is not None:
        ctx.report(PATH_TRAVERSAL, f"member name {ti.name!r} {why}", loc)
    if (ti.issym() or ti.islnk()) and link_escapes(ti.name, ti.linkname, ti.islnk()):
        kind = "hard link" if ti.islnk() else "symbolic link"
        ctx.report(LINK_ESCAPE, f"{kind} {ti.name!r} -> {ti.linkname!r} points outside the "
                   "archive", loc)
    if ti.ischr() or ti.isblk() or ti.isfifo():
        kind = "character device" if ti.ischr() else "block device" if ti.isblk() else "FIFO"
        ctx.report(SPECIAL_MEMBER, f"{kind} member {ti.name!r}", loc)


# --------------------------------------------------------------------------- single streams

_SUFFIXES = {
    "gzip": (".gz", ".gzip", ".tgz"),
    "bz2": (".bz2", ".tbz2", ".tbz"),
    "xz": (".xz", ".txz"),
    "lzma": (".lzma",),
    "zlib": (".z", ".zlib", ".zz"),
    "lz4": (".lz4",),
    "zstd": (".zst", ".zstd"),
}


def _inner_name(name: str, kind: str) -> str:
    lower = name.lower()
    for suffix in _SUFFIXES.get(kind, ()):
        if lower.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            return stem + ".tar" if suffix.startswith(".t") and suffix != ".tar" else stem
    return "<decompressed>"


def _open_stream(kind: str, fh: BinaryIO, size: int) -> Readable:
    from mlwarden.scan import zipread

    if kind == "gzip":
        # Not GzipFile: its buffered reader drops the output that preceded a truncation.
        return zipread.DecompressingReader(fh, 0, size, zipread.ZlibInflater(31),
                                           restart=lambda: zipread.ZlibInflater(31))
    if kind == "bz2":
        return bz2.BZ2File(fh, mode="rb")
    if kind in ("xz", "lzma"):
        fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
        inf = zipread._Native(lzma.LZMADecompressor(fmt, memlimit=LZMA_MEMLIMIT))
        return zipread.DecompressingReader(fh, 0, size, inf)
    if kind == "zlib":
        return zipread.DecompressingReader(fh, 0, size, zipread.ZlibInflater(15))
    if kind == "lz4":
        import lz4.frame

        reader: Readable = lz4.frame.LZ4FrameFile(fh, mode="rb")
        return reader
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
    raise ValueError(f"not a compressed stream: {kind}")


def read_compressed(source: Source, ctx: ScanContext) -> None:
    """A single compressed stream (compressed joblib files are exactly this)."""
    kind = ctx.format
    with archive_tree(ctx) as tree, source.open() as fh:
        if not may_expand(ctx, tree, 1):
            return
        try:
            stream = _open_stream(kind, fh, source.size)
        except Exception as exc:
            ctx.report(ARCHIVE_CORRUPT, f"{kind} stream cannot be opened: {exc}")
            return
        name = _inner_name(source.name, kind)
        exp = expand(stream, member_display(ctx, name), ctx, tree, comp_size=source.size)
        trailing = _trailing(stream)
        if trailing:
            ctx.report(ARCHIVE_TRAILING, f"{trailing} bytes follow the end of the {kind} "
                       "stream and were not analysed")
        scan_expanded(ctx, exp, name, what="decompressed stream")


def _trailing(stream: Any) -> int:
    trailing = getattr(stream, "trailing", 0)
    return trailing if isinstance(trailing, int) else 0


# --------------------------------------------------------------------------- 7z


class _Stop(Exception):
    """Raised from inside py7zr to abort an extraction that passed its bound."""


def read_7z(source: Source, ctx: ScanContext) -> None:
    ctx.format = "7z"
    import py7zr
    import py7zr.io

    with archive_tree(ctx) as tree, source.open() as fh:
        try:
            z = py7zr.SevenZipFile(fh, mode="r")
        except py7zr.PasswordRequired:
            ctx.report(ARCHIVE_ENCRYPTED, "7z archive with encrypted headers")
            return
        except Exception as exc:
            ctx.report(ARCHIVE_CORRUPT, f"not a readable 7z archive: {exc}")
            return
        with z:
            if z.needs_password():
                ctx.report(ARCHIVE_ENCRYPTED, "7z archive content is encrypted")
                return
            try:
                infos = z.list()
            except Exception as exc:
                ctx.report(ARCHIVE_CORRUPT, f"7z directory unreadable: {exc}")
                return
            targets: list[str] = []
            for info in infos:
                name = info.filename
                why = unsafe_name(name)
                if why is not None:
                    ctx.report(PATH_TRAVERSAL, f"member name {name!r} {why}; not extracted",
                               Location(member=name))
                    ctx.unscannable(f"member {name!r} not analysed: its name cannot be "
                                    "extracted safely", Location(member=name))
                    continue
                if info.is_directory:
                    continue
                targets.append(name)
            if len(targets) > tree.members_left:
                ctx.limit(f"{len(targets) - tree.members_left} member(s) not scanned: the "
                          f"archive tree holds more than {ctx.limits.max_members} members")
                targets = targets[: max(tree.members_left, 0)]
            if not targets or not may_expand(ctx, tree, len(targets)):
                return
            factory = _ScanFactory(ctx, tree, source.size)
            try:
                z.extract(targets=targets, factory=cast("py7zr.io.WriterFactory", factory))
            except _Stop:
                pass
            except Exception as exc:
                ctx.report(ARCHIVE_CORRUPT, f"7z extraction failed: {type(exc).__name__}: "
                           f"{exc}")
            finally:
                factory.finish()


class _MemberIO:
    """py7zr writer for one member: bounded spool, scanned when py7zr closes it."""

    def __init__(self, factory: _ScanFactory, name: str) -> None:
        self.factory = factory
        self.name = name
        self.spool = Spool()
        self.done = False

    def write(self, s: bytes | bytearray) -> int:
        f = self.factory
        f.written += len(s)
        self.spool.write(s)
        if f.written > f.limit:
            f.bomb(self)
            raise _Stop()
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.spool.size

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.factory.scan(self)


class _ScanFactory:
    """py7zr WriterFactory (duck-typed): every member goes to a bounded spool."""

    def __init__(self, ctx: ScanContext, tree: Tree, comp_size: int) -> None:
        self.ctx = ctx
        self.tree = tree
        # 7z blocks are solid: the ratio is judged on the whole archive's expansion.
        self.limit = expansion_limit(ctx, tree, comp_size)
        self.comp_size = comp_size
        self.written = 0
        self.members: list[_MemberIO] = []

    def create(self, filename: str) -> Any:
        io_ = _MemberIO(self, filename)
        self.members.append(io_)
        return io_

    def scan(self, io_: _MemberIO) -> None:
        self.tree.members_left -= 1
        display = member_display(self.ctx, io_.name)
        exp = Expanded(io_.spool.to_source(display), io_.spool.size)
        scan_expanded(self.ctx, exp, io_.name)

    def bomb(self, io_: _MemberIO) -> None:
        reason = _bomb_reason(self.ctx, self.tree, self.comp_size, self.limit, declared=False)
        display = member_display(self.ctx, io_.name)
        self.tree.bomb = self.tree.bomb or display
        io_.done = True
        head = io_.spool.head(BOMB_PREFIX)
        io_.spool.discard()
        exp = Expanded(Source.from_bytes(head, display), io_.spool.size,
                       bomb=f"(whole archive) {reason}")
        scan_expanded(self.ctx, exp, io_.name)

    def finish(self) -> None:
        self.tree.bytes_left -= self.written
        for io_ in self.members:
            io_.spool.discard()
