"""Reader table: format name -> the function that analyses it.

Readers are imported lazily so that ``mlwarden scan`` on a directory of pickles does not
pay for importing onnx or h5py. A reader has the signature
``read(source: Source, ctx: ScanContext) -> None`` and reports through ``ctx``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from mlwarden.scan import sniff as f
from mlwarden.scan.formats.inert_formats import INERT_FORMATS, WALKED

if TYPE_CHECKING:
    from mlwarden.scan.context import ScanContext
    from mlwarden.scan.source import Source

Reader = Callable[["Source", "ScanContext"], None]

_TABLE: dict[str, str] = {
    f.EMPTY: "mlwarden.scan.readers.inert:read_empty",
    f.PICKLE: "mlwarden.scan.readers.pickle_file:read_pickle_file",
    f.NPY: "mlwarden.scan.readers.numpy_file:read_npy",
    f.ZIP: "mlwarden.scan.readers.zip_file:read_zip",
    f.TAR: "mlwarden.scan.readers.archives:read_tar",
    f.GZIP: "mlwarden.scan.readers.archives:read_compressed",
    f.BZ2: "mlwarden.scan.readers.archives:read_compressed",
    f.XZ: "mlwarden.scan.readers.archives:read_compressed",
    f.LZMA: "mlwarden.scan.readers.archives:read_compressed",
    f.ZLIB: "mlwarden.scan.readers.archives:read_compressed",
    f.LZ4: "mlwarden.scan.readers.archives:read_compressed",
    f.ZSTD: "mlwarden.scan.readers.archives:read_compressed",
    f.SEVENZ: "mlwarden.scan.readers.archives:read_7z",
    f.SAFETENSORS: "mlwarden.scan.readers.safetensors_file:read_safetensors",
    f.GGUF: "mlwarden.scan.readers.gguf_file:read_gguf",
    f.HDF5: "mlwarden.scan.readers.hdf5_file:read_hdf5",
    f.PROTOBUF: "mlwarden.scan.readers.protobuf_file:read_protobuf",
    f.NATIVE: "mlwarden.scan.readers.inert:read_native",
    f.IMAGE: "mlwarden.scan.readers.inert:read_inert",
    f.MSGPACK: "mlwarden.scan.readers.inert:read_inert",
    f.TFLITE: "mlwarden.scan.readers.inert:read_inert",
    f.TEXT: "mlwarden.scan.readers.text_file:read_text",
    f.UNKNOWN: "mlwarden.scan.readers.inert:read_unknown",
    f.WORD2VEC: "mlwarden.scan.readers.inert:read_walked",
    f.JOBLIB_ZFILE: "mlwarden.scan.readers.joblib_zfile:read_zfile",
}
for _fmt in INERT_FORMATS:
    _TABLE.setdefault(_fmt, "mlwarden.scan.readers.inert:read_walked" if _fmt in WALKED
                      else "mlwarden.scan.readers.inert:read_inert")
_TABLE[f.MSGPACK] = "mlwarden.scan.readers.inert:read_walked"

_cache: dict[str, Reader] = {}


def get_reader(fmt: str) -> Reader | None:
    """The reader for ``fmt``, or None when that reader is not installed."""
    if fmt in _cache:
        return _cache[fmt]
    target = _TABLE.get(fmt)
    if target is None:
        return None
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("mlwarden."):
            return None
        raise
    reader: Reader = getattr(module, attr)
    _cache[fmt] = reader
    return reader


def import_all_readers() -> None:
    """Import every reader so that all rules are declared (for ``mlwarden rules``)."""
    for fmt in _TABLE:
        get_reader(fmt)
    for extra in ("mlwarden.scan.repository", "mlwarden.scan.remote_code"):
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(extra)
