"""Files that are pickle streams: plain pickles, stacked pickles, legacy PyTorch, joblib,
dill and cloudpickle. The stream is analysed by our own interpreter, never unpickled."""

from __future__ import annotations

from mlwarden.scan.context import ScanContext
from mlwarden.scan.pickle import scan_pickle
from mlwarden.scan.source import Source

# torch.serialization.MAGIC_NUMBER: the first pickle of a legacy (pre-zip) torch file.
TORCH_MAGIC = 0x1950A86A20F9469CFC6C
# A legacy file holds magic number, protocol version, sys_info, the object and the storage
# keys; raw storage bytes follow and torch never unpickles them.
_TORCH_LEGACY_PICKLES = 5


def read_pickle_file(source: Source, ctx: ScanContext) -> None:
    data = source.read_all(ctx.limits.max_pickle_bytes)
    first = scan_pickle(data, ctx, stacked=False, joblib=True)
    names = set(first.globals)
    arrays = first.joblib_arrays
    legacy = first.count == 1 and first.first_value == TORCH_MAGIC
    if first.count == 1 and first.end is not None and first.end < len(data):
        rest = scan_pickle(data, ctx, start=first.end, stacked=True, first_index=2,
                           max_pickles=_TORCH_LEGACY_PICKLES - 1 if legacy else None,
                           joblib=True)
        names |= rest.globals
        arrays += rest.joblib_arrays
    ctx.format = file_format(names, legacy, arrays)


def file_format(names: set[str], legacy: bool, joblib_arrays: int) -> str:
    """The format name of a pickle file from what its analysis imported."""
    if legacy:
        return "pytorch-legacy"
    if joblib_arrays or any(n.startswith("joblib.") for n in names):
        return "joblib"
    if any(n.startswith("dill.") for n in names):
        return "dill"
    if any(n.startswith("cloudpickle.") for n in names):
        return "cloudpickle"
    return "pickle"
