"""Files that are pickle streams: plain pickles, stacked pickles, legacy PyTorch, joblib."""

from __future__ import annotations

from mlwarden.scan.context import ScanContext
from mlwarden.scan.pickle import scan_pickle
from mlwarden.scan.source import Source


def read_pickle_file(source: Source, ctx: ScanContext) -> None:
    data = source.read_all(ctx.limits.max_pickle_bytes)
    scan_pickle(data, ctx)
