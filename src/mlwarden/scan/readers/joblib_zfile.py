"""Old joblib ``ZF`` files (joblib < 0.10 ``compress=True``): ``ZF`` + the decompressed
length in hex (padded to 19 characters, one more space from Python 2 joblib 0.8), then a
zlib stream. ``joblib.load`` still reads them (numpy_pickle_compat.read_zfile) and unpickles
the payload with its NumpyUnpickler; the ``*.npy.z`` side files of the same era are the
same wrapper around raw array bytes, which ZNDArrayWrapper copies into an array.

So the payload is scanned as its own entry when it is a pickle, and otherwise read as a
pickle from offset 0 (what ``joblib.load`` of the side file itself would do) and otherwise
taken as raw array data.
"""

from __future__ import annotations

from mlwarden.report.model import Location
from mlwarden.scan import shadow, sniff
from mlwarden.scan.context import NOT_ANALYSED, ScanContext
from mlwarden.scan.readers.archives import (
    ARCHIVE_CORRUPT,
    archive_tree,
    expand,
    may_expand,
    member_display,
    scan_expanded,
)
from mlwarden.scan.source import Source, release
from mlwarden.scan.zipread import DecompressingReader, ZlibInflater


def read_zfile(source: Source, ctx: ScanContext) -> None:
    ctx.format = sniff.JOBLIB_ZFILE
    head = source.head(2 + sniff.ZF_MAX_LEN + 1)
    declared = sniff.zfile_length(head)
    if declared is None:
        ctx.unscannable("ZF header without a hexadecimal length")
        return
    start = 2 + sniff.ZF_MAX_LEN + (1 if head[2 + sniff.ZF_MAX_LEN:] == b" " else 0)
    with archive_tree(ctx) as tree, source.open() as fh:
        if not may_expand(ctx, tree, 1):
            return
        stream = DecompressingReader(fh, start, source.size - start, ZlibInflater(15))
        name = "<zfile payload>"
        exp = expand(stream, member_display(ctx, name), ctx, tree, comp_size=source.size,
                     declared=declared)
        if exp.error is None and exp.bomb is None and exp.produced != declared:
            ctx.report(ARCHIVE_CORRUPT, f"payload is {exp.produced} bytes, the header "
                       f"declares {declared} (joblib asserts they match)", Location(member=name))
        payload = exp.source
        if sniff.sniff(payload.head(sniff.HEAD_BYTES), payload.size) == sniff.PICKLE \
                or exp.bomb is not None or exp.error is not None:
            scan_expanded(ctx, exp, name, what="ZF payload")
            return
        try:
            shadow.analyse(payload, ctx, payload.head(sniff.HEAD_BYTES))
        finally:
            release(payload)
        ctx.report(NOT_ANALYSED, f"ZF payload of {exp.produced} bytes is not a pickle: raw "
                   "array data of a joblib side file (joblib.load's pickle reading of it "
                   "was analysed)", Location(member=name))
