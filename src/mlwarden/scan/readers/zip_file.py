"""Zip archives, read the way their loaders read them.

Sub-kinds are told apart by the central directory's names (never by the file name):

- PyTorch zip (``<prefix>/data.pkl``): every pickle member is analysed, tensor storages
  (``data/``, ``constants/``) are never read;
- TorchScript (``code/`` + ``constants.pkl``): the pickles plus a look at the code;
- Keras v3 (``config.json`` + ``metadata.json``): config to the Keras analyser;
- npz and generic zips: every member is scanned as ``ARCHIVE!member``.

Structure anomalies (bad CRCs, flag bits, header name mismatches, overlaps, traversal
names, duplicates, prepended data) are suspicious on their own; content decides whether a
file is malicious.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Callable
from typing import BinaryIO

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import Rule, rule
from mlwarden.scan import sniff
from mlwarden.scan import zipread as zr
from mlwarden.scan.context import ScanContext
from mlwarden.scan.pickle import scan_pickle
from mlwarden.scan.readers.archives import (
    ARCHIVE_BOMB,
    ARCHIVE_CORRUPT,
    ARCHIVE_ENCRYPTED,
    PATH_TRAVERSAL,
    Expanded,
    Tree,
    archive_tree,
    expand,
    may_expand,
    member_display,
    scan_expanded,
    unsafe_name,
)
from mlwarden.scan.source import Source, TooLarge, release

ZIP_MALFORMED = rule(
    "zip-malformed",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "Zip structure cannot be read",
    "No usable end-of-central-directory record or central directory. Loaders that rely "
    "on the central directory (torch, numpy, zipfile) reject the file too, but other "
    "tools may still recover members from it.",
)
BAD_CRC = rule(
    "zip-bad-crc",
    Verdict.CLEAN,
    Severity.LOW,
    "Member CRC-32 does not match its content",
    "torch ignores CRCs while CPython's zipfile raises, so scanners built on zipfile stop "
    "where torch loads (CVE-2025-10156). mlwarden analyses the very bytes torch loads, so "
    "the mismatch hides nothing from this scan; real benign models have bad CRCs (e.g. "
    "jina-embeddings-v2-base-en), so it is reported without changing the verdict.",
)
FLAG_BITS = rule(
    "zip-flag-bits",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Member has encryption/patch flag bits set",
    "General-purpose flag bits 0x1 (encrypted), 0x20 (patched data), 0x40 (strong "
    "encryption) or 0x2000 make CPython's zipfile refuse the member while readers that "
    "trust the other header copy load it (CVE-2025-1945). The member was read as plain "
    "data and analysed.",
)
NAME_MISMATCH = rule(
    "zip-name-mismatch",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Local header name differs from the central directory",
    "torch looks members up in the central directory and ignores the local name; CPython's "
    "zipfile raises, so zipfile-based scanners skip the member (CVE-2025-1944). The member "
    "was analysed under its central-directory name.",
)
OVERLAP = rule(
    "zip-overlapping-members",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Zip members share bytes",
    "No zip writer produces overlapping members. The construction is used by "
    "overlapping-entry zip bombs and to give one content several names.",
)
DUPLICATE = rule(
    "zip-duplicate-name",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Several zip members have the same name",
    "Loaders disagree on which copy they read (the first, the last, or a binary-search "
    "hit), so a scanner can be shown one copy and the loader another. Every copy is "
    "scanned.",
)
PREFIX = rule(
    "zip-prefix-data",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Data before the first zip member",
    "Bytes before the first local header make a polyglot: a loader that sniffs the start "
    "of the file (pickle, torch legacy format) sees different content than a zip reader. "
    "A pickle prefix is analysed as well.",
)
LAYOUT = rule(
    "zip-layout",
    Verdict.SUSPICIOUS,
    Severity.LOW,
    "Inconsistent zip layout",
    "Offsets or counts in the zip records disagree with each other; different readers may "
    "see different members.",
)
UNSUPPORTED_METHOD = rule(
    "zip-unsupported-method",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "Zip member uses a compression method mlwarden cannot decompress",
    "Only stored, deflate, bzip2 and lzma members are analysed.",
)
TORCHSCRIPT_FILE_OP = rule(
    "torchscript-file-op",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "TorchScript code calls a file-reading operator",
    "torch.from_file maps a host file into a tensor when the scripted module runs; a model "
    "has no reason to read arbitrary host files.",
)
TORCHSCRIPT_CUSTOM_OP = rule(
    "torchscript-custom-op",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "TorchScript code calls operators from a non-standard namespace",
    "Custom operators and classes run native code from a library that must be loaded "
    "separately; what they do is not visible in the archive.",
)
TORCHSCRIPT_ANALYSED = rule(
    "torchscript-code",
    Verdict.CLEAN,
    Severity.INFO,
    "TorchScript code analysed",
    "TorchScript code is run by the TorchScript interpreter, not by Python: it can only "
    "call TorchScript builtins and registered operators. None of the operators it calls "
    "can reach files, processes or the network.",
)

# Each anomaly rule is reported for at most this many members, then summarised.
_PER_RULE = 10
# Operator namespaces shipped with torch itself.
_STD_NAMESPACES = frozenset({"aten", "prim", "quantized", "_quantized", "profiler", "_caffe2",
                             "cuda", "mkldnn", "mkl", "_c10d_functional", "c10d", "_c10d",
                             "quantized_decomposed", "_test", "_nested", "onednn", "xnnpack",
                             "_prepacked", "sparse", "fbgemm", "mps", "inductor",
                             "_higher_order_ops", "higher_order", "symm_mem", "cudnn"})
_OPS_RE = re.compile(rb"\bops\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")
_CLASSES_RE = re.compile(rb"\bclasses\.([A-Za-z_][A-Za-z0-9_]*)\.")
_FILE_OP_RE = re.compile(rb"\bfrom_file\s*\(")
_SMALL_MEMBER = 1 << 16  # non-pickle metadata members are sniffed when this small


class _Reporter:
    """Caps repeated anomalies so a 10,000-member archive gives ten lines, not 10,000."""

    def __init__(self, ctx: ScanContext) -> None:
        self.ctx = ctx
        self.counts: Counter[str] = Counter()

    def __call__(self, r: Rule, message: str, member: str | None = None,
                 offset: int | None = None) -> None:
        self.counts[r.id] += 1
        if self.counts[r.id] <= _PER_RULE:
            self.ctx.report(r, message, Location(member=member, offset=offset))

    def summarise(self, rules: dict[str, Rule]) -> None:
        for rid, n in self.counts.items():
            if n > _PER_RULE:
                self.ctx.report(rules[rid], f"... and {n - _PER_RULE} more member(s) with the "
                                "same anomaly")


_ANOMALY_RULES = {"prefix": PREFIX, "overlap": OVERLAP, "duplicate": DUPLICATE,
                  "layout": LAYOUT}


def read_zip(source: Source, ctx: ScanContext) -> None:
    ctx.format = "zip"
    with archive_tree(ctx) as tree, source.open() as fh:
        try:
            d = zr.read_directory(fh, source.size, ctx.limits.max_members)
        except zr.ZipFormatError as exc:
            ctx.report(ZIP_MALFORMED, str(exc))
            return
        rep = _Reporter(ctx)
        for a in d.anomalies:
            rep(_ANOMALY_RULES.get(a.kind, LAYOUT), a.message, a.member, a.offset)
        if d.total_entries > len(d.members) and len(d.members) >= ctx.limits.max_members:
            ctx.limit(f"archive declares {d.total_entries} entries; only the first "
                      f"{ctx.limits.max_members} were read")
        for m in d.members:
            why = unsafe_name(m.name)
            if why is not None:
                rep(PATH_TRAVERSAL, f"member name {m.name!r} {why}", m.name)
            if m.flags & zr.REFUSED_FLAGS:
                rep(FLAG_BITS, f"central directory sets flag bits {m.flags & zr.REFUSED_FLAGS:#x}"
                    f" on {m.name!r}", m.name)
        if d.first_header > 0:
            _scan_prefix(fh, d, ctx, rep)
        zs = _ZipScan(fh, source.size, ctx, tree, rep)
        names = {m.name for m in d.members}
        kind = _classify(d, names)
        if kind is not None and kind[0] in ("pytorch-zip", "torchscript"):
            _scan_torch(zs, d, kind[0], kind[1])
        elif kind is not None and kind[0] == "keras":
            _scan_keras(zs, d)
        else:
            if d.members and all(m.name.endswith(".npy") for m in d.members if not m.is_dir):
                ctx.format = "npz"
            _scan_all(zs, [m for m in d.members if not m.is_dir])
        rep.summarise({**{r.id: r for r in _ANOMALY_RULES.values()},
                       **{r.id: r for r in (PATH_TRAVERSAL, FLAG_BITS, BAD_CRC, NAME_MISMATCH,
                                            UNSUPPORTED_METHOD, ARCHIVE_ENCRYPTED,
                                            ARCHIVE_CORRUPT)}})


def _classify(d: zr.ZipDirectory, names: set[str]) -> tuple[str, str] | None:
    if not d.members:
        return None
    first = d.members[0].name
    # torch takes the archive prefix from the first central-directory entry.
    if "/" in first:
        prefix = first.split("/", 1)[0]
        if f"{prefix}/data.pkl" in names:
            torchscript = f"{prefix}/constants.pkl" in names and any(
                n.startswith(f"{prefix}/code/") for n in names)
            return ("torchscript" if torchscript else "pytorch-zip", prefix)
    if "config.json" in names and "metadata.json" in names:
        return ("keras", "")
    return None


class _ZipScan:
    """Per-archive state for reading members through their local headers."""

    def __init__(self, fh: BinaryIO, size: int, ctx: ScanContext, tree: Tree,
                 rep: _Reporter) -> None:
        self.fh = fh
        self.size = size
        self.ctx = ctx
        self.tree = tree
        self.rep = rep

    def expand(self, m: zr.ZipMember, display: str | None = None,
               declared: int | None = None) -> Expanded | None:
        """Decompress one member with bounds; None when it cannot be read at all."""
        ctx = self.ctx
        try:
            lh = zr.read_local_header(self.fh, self.size, m)
        except zr.ZipFormatError as exc:
            ctx.report(ARCHIVE_CORRUPT, str(exc), Location(member=m.name))
            return None
        if lh.raw_name != m.raw_name:
            self.rep(NAME_MISMATCH, f"local header names {zr.decode_name(lh.raw_name, lh.flags)!r}"
                     f", central directory names {m.name!r}", m.name, m.header_offset)
        if lh.flags & zr.REFUSED_FLAGS and not m.flags & zr.REFUSED_FLAGS:
            self.rep(FLAG_BITS, f"local header sets flag bits {lh.flags & zr.REFUSED_FLAGS:#x} "
                     f"on {m.name!r}", m.name, m.header_offset)
        if m.method not in zr.SUPPORTED_METHODS:
            self.rep(UNSUPPORTED_METHOD, f"{m.name!r} uses {m.method_name}; not analysed",
                     m.name)
            return None
        reader = zr.DecompressingReader(self.fh, lh.data_offset, m.comp_size,
                                        zr.inflater_for(m.method))
        exp = expand(reader, display or member_display(ctx, m.name), ctx, self.tree,
                     comp_size=m.comp_size, declared=m.size if declared is None else declared)
        if exp.error is not None and m.flags & zr.FLAG_ENCRYPTED:
            self.rep(ARCHIVE_ENCRYPTED, f"{m.name!r} is encrypted; its content cannot be "
                     "analysed", m.name)
            exp = Expanded(exp.source, exp.produced, exp.bomb, None)
        elif exp.error is None and exp.bomb is None and reader.crc != m.crc:
            self.rep(BAD_CRC, f"{m.name!r}: CRC-32 {reader.crc:#010x}, central directory says "
                     f"{m.crc:#010x}", m.name)
        return exp

    def scan_member(self, m: zr.ZipMember) -> None:
        exp = self.expand(m)
        if exp is not None:
            scan_expanded(self.ctx, exp, m.name)

    def scan_pickle_member(self, m: zr.ZipMember) -> None:
        """Pickles inside a model archive: findings go on the archive's own entry."""
        exp = self.expand(m)
        if exp is None:
            return
        try:
            if exp.bomb is not None:
                self.ctx.report(ARCHIVE_BOMB, f"pickle {m.name!r} {exp.bomb}; only its first "
                                f"{exp.source.size} bytes were analysed", Location(member=m.name))
            if exp.error is not None:
                self.ctx.report(ARCHIVE_CORRUPT, f"{m.name!r}: decompression failed after "
                                f"{exp.produced} bytes ({exp.error})", Location(member=m.name))
            try:
                data = exp.source.read_all(self.ctx.limits.max_pickle_bytes)
            except TooLarge as exc:
                self.ctx.limit(f"pickle {m.name!r}: {exc}", Location(member=m.name))
                return
            # torch.load's unpickler gives joblib's array wrappers no meaning.
            scan_pickle(data, self.ctx, member=m.name, joblib=False)
        finally:
            release(exp.source)

    def head(self, m: zr.ZipMember, n: int) -> bytes | None:
        """The first ``n`` decompressed bytes of a member (for sniffing), or None."""
        try:
            lh = zr.read_local_header(self.fh, self.size, m)
            reader = zr.DecompressingReader(self.fh, lh.data_offset, m.comp_size,
                                            zr.inflater_for(m.method))
            out = b""
            while len(out) < n:
                block = reader.read(n - len(out))
                if not block:
                    break
                out += block
            return out
        except zr.ZipFormatError:
            return None


def _scan_all(zs: _ZipScan, members: list[zr.ZipMember]) -> None:
    for i, m in enumerate(members):
        if not may_expand(zs.ctx, zs.tree, len(members) - i):
            return
        zs.scan_member(m)


def _scan_prefix(fh: BinaryIO, d: zr.ZipDirectory, ctx: ScanContext, rep: _Reporter) -> None:
    n = d.first_header
    fh.seek(0)
    head = fh.read(min(n, sniff.HEAD_BYTES))
    kind = sniff.sniff(head, n)
    rep(PREFIX, f"{n} bytes ({kind}) precede the first zip member", None, 0)
    if kind == sniff.PICKLE and n <= ctx.limits.max_pickle_bytes:
        fh.seek(0)
        scan_pickle(fh.read(n), ctx, member="<prefix>")


# --------------------------------------------------------------------------- torch


def _scan_torch(zs: _ZipScan, d: zr.ZipDirectory, kind: str, prefix: str) -> None:
    ctx = zs.ctx
    # Set before the pickles are analysed: TorchScript pickles name __torch__ classes.
    ctx.format = kind
    base = prefix + "/"
    code_files = 0
    code_bytes: list[tuple[str, bytes]] = []
    skipped = 0
    for m in d.members:
        if m.is_dir:
            continue
        if not m.name.startswith(base):
            # torch never reads members outside its prefix; other tools might.
            if may_expand(ctx, zs.tree, 1):
                zs.scan_member(m)
            continue
        rel = m.name[len(base):]
        if rel.endswith(".pkl") or rel.endswith(".debug_pkl"):
            zs.scan_pickle_member(m)
        elif rel.startswith(("data/", "constants/")):
            skipped += 1  # tensor storage: never read
        elif kind == "torchscript" and rel.startswith("code/"):
            code_files += 1
            exp = zs.expand(m, declared=m.size)
            if exp is not None:
                try:
                    code_bytes.append((m.name, exp.source.read_all(ctx.limits.max_text_bytes)))
                finally:
                    release(exp.source)
        else:
            _scan_small(zs, m)
    if kind == "torchscript":
        _analyse_torchscript(ctx, code_bytes, code_files)


def _scan_small(zs: _ZipScan, m: zr.ZipMember) -> None:
    """Metadata members (version, byteorder, extra/...): sniff; analyse what is not text."""
    if m.size == 0:
        return
    if m.size <= _SMALL_MEMBER and m.method in zr.SUPPORTED_METHODS:
        head = zs.head(m, sniff.HEAD_BYTES)
        # Empty although the directory declares bytes: the member is broken; the full
        # expansion below reports why.
        if head:
            kind = sniff.sniff(head, m.size)
            if kind == sniff.TEXT:
                return
            if kind == sniff.PICKLE:
                zs.scan_pickle_member(m)
                return
    if may_expand(zs.ctx, zs.tree, 1):
        zs.scan_member(m)


def _analyse_torchscript(ctx: ScanContext, code: list[tuple[str, bytes]], n_files: int) -> None:
    flagged = False
    for name, text in code:
        for match in _FILE_OP_RE.finditer(text):
            flagged = True
            line = text.count(b"\n", 0, match.start()) + 1
            ctx.report(TORCHSCRIPT_FILE_OP, "TorchScript calls from_file (reads a host file)",
                       Location(member=name, line=line))
        seen: set[bytes] = set()
        for rx in (_OPS_RE, _CLASSES_RE):
            for match in rx.finditer(text):
                ns = match.group(1)
                if ns.decode() in _STD_NAMESPACES or ns in seen:
                    continue
                seen.add(ns)
                flagged = True
                line = text.count(b"\n", 0, match.start()) + 1
                call = match.group(0).decode(errors="replace")
                ctx.report(TORCHSCRIPT_CUSTOM_OP, f"calls into namespace "
                           f"{ns.decode(errors='replace')!r} ({call})",
                           Location(member=name, line=line))
    if not flagged:
        ctx.report(TORCHSCRIPT_ANALYSED, f"{n_files} TorchScript code file(s) analysed; no "
                   "file, process or network-capable operator is called")


# --------------------------------------------------------------------------- keras


def _keras_analyser() -> Callable[[bytes, ScanContext, str], None] | None:
    try:
        mod = importlib.import_module("mlwarden.scan.formats.keras")
    except ImportError:
        return None
    fn = getattr(mod, "analyze_keras_archive_config", None)
    return fn if callable(fn) else None


def _scan_keras(zs: _ZipScan, d: zr.ZipDirectory) -> None:
    ctx = zs.ctx
    ctx.format = "keras"
    analyser = _keras_analyser()
    rest: list[zr.ZipMember] = []
    for m in d.members:
        if m.is_dir:
            continue
        if m.name == "config.json" and analyser is not None:
            exp = zs.expand(m)
            if exp is None:
                continue
            try:
                data = exp.source.read_all(ctx.limits.max_text_bytes)
            finally:
                release(exp.source)
            analyser(data, ctx, m.name)
        else:
            rest.append(m)
    _scan_all(zs, rest)
