"""HDF5 files: legacy Keras ``.h5`` models (the ``model_config`` attribute is analysed like a
``.keras`` config, including Lambda bytecode that Keras runs even in safe mode,
CVE-2025-9905), Keras weight files, and plain HDF5 data.

h5py only parses the container; Keras is never imported. External links are listed without
being followed.
"""

from __future__ import annotations

from typing import Any

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats.keras import analyze_keras_config_bytes
from mlwarden.scan.source import Source

MAX_LINKS = 200_000

HDF5_DATA = rule(
    "hdf5-data",
    Verdict.CLEAN,
    Severity.INFO,
    "HDF5 file without a model config",
    "Weights or data only (no model_config attribute): nothing in it is deserialised into "
    "code.",
)
HDF5_EXTERNAL = rule(
    "hdf5-external-link",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "HDF5 external link to another file",
    "An external link makes readers that follow it open another file (any path on the "
    "host). Model files do not need them.",
)
HDF5_INVALID = rule(
    "hdf5-malformed",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "HDF5 file that h5py cannot open",
    "The signature says HDF5 but the library cannot parse the file (truncated or crafted).",
)


def read_hdf5(source: Source, ctx: ScanContext) -> None:
    import h5py  # imported lazily: only HDF5 files pay for it

    ctx.format = "hdf5"
    fh = None if source.fs_path is not None else source.open()
    try:
        try:
            f = h5py.File(str(source.fs_path) if fh is None else fh, "r", locking=False)
        except (OSError, ValueError) as exc:
            ctx.report(HDF5_INVALID, f"h5py cannot open the file: {str(exc)[:300]}")
            return
        with f:
            _analyse(f, ctx)
    finally:
        if fh is not None:
            fh.close()


def _analyse(f: Any, ctx: ScanContext) -> None:
    _links(f, ctx)
    attrs = f.attrs
    if "model_config" in attrs:
        ctx.format = "keras-h5"
        size = attrs.get_id("model_config").get_storage_size()
        if size > ctx.limits.max_text_bytes:
            ctx.limit(f"model_config attribute of {size} bytes exceeds the "
                      f"{ctx.limits.max_text_bytes}-byte bound",
                      Location(detail="model_config attribute"))
            return
        raw: Any = attrs["model_config"]
        if hasattr(raw, "tobytes") and not isinstance(raw, bytes | str):
            raw = raw.tobytes()
        if not isinstance(raw, bytes | str):
            ctx.unscannable(f"model_config attribute has unexpected type "
                            f"{type(raw).__name__}", Location(detail="model_config attribute"))
            return
        analyze_keras_config_bytes(raw, ctx, Location(detail="model_config attribute"))
        return
    kind = "Keras weights" if "layer_names" in attrs or "keras_version" in attrs else "data"
    ctx.report(HDF5_DATA, f"HDF5 {kind}; no model_config attribute")


def _links(f: Any, ctx: ScanContext) -> None:
    """Report external links without resolving them (visit_links never opens targets)."""
    import h5py

    seen = [0]

    def visit(name: str, link: Any) -> bool | None:
        seen[0] += 1
        if seen[0] > MAX_LINKS:
            ctx.limit(f"more than {MAX_LINKS} HDF5 links; link check stopped")
            return True
        if isinstance(link, h5py.ExternalLink):
            ctx.report(HDF5_EXTERNAL, f"{name!r} links to {link.filename!r}:{link.path!r}",
                       Location(detail=f"link {name!r}"))
        return None

    f.visititems_links(visit)
