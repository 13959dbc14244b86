"""Files produced by the real libraries are clean (a whole pickled module of a user class
is at most suspicious, and says why)."""

from __future__ import annotations

import pickle
import zipfile
import zlib
from pathlib import Path

import pytest

from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.engine import scan_paths
from mlwarden.scan.pickle import scan_pickle
from mlwarden.scan.readers.pickle_file import read_pickle_file
from mlwarden.scan.source import Source


def _scan_any(path: Path) -> tuple[ScanContext, str]:
    data = path.read_bytes()
    ctx = ScanContext(str(path), Limits())
    if data[:2] == b"PK":  # torch zip: the zip reader belongs to the containers area
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if n.endswith(".pkl"):
                    scan_pickle(z.read(n), ctx, member=n)
        return ctx, "zip"
    if data[:1] == b"x":  # zlib-compressed joblib: emulate the decompressing container
        data = zlib.decompress(data)
    if data[:6] == b"\x93NUMPY":
        report = scan_paths([str(path)])
        ctx.findings.extend(report.files[0].findings)
        return ctx, report.files[0].format
    read_pickle_file(Source.from_bytes(data, str(path)), ctx)
    return ctx, ctx.format


def test_all_benign_files_clean(benign_dir: dict[str, Path]) -> None:
    bad = {}
    for name, path in benign_dir.items():
        ctx, _fmt = _scan_any(path)
        if ctx.verdict is not Verdict.CLEAN:
            bad[name] = [(f.rule, f.message) for f in ctx.findings]
    assert not bad


@pytest.mark.parametrize("name,fmt", [
    ("state_dict_legacy.pt", "pytorch-legacy"), ("forest.joblib", "joblib"),
    ("logreg.pkl", "pickle"), ("plain_dill.pkl", "dill"), ("strings.npy", "npy"),
    ("arrays.joblib", "joblib"),
])
def test_formats(benign_dir: dict[str, Path], name: str, fmt: str) -> None:
    assert _scan_any(benign_dir[name])[1] == fmt


def test_engine_on_benign_non_zip_files(benign_dir: dict[str, Path]) -> None:
    paths = [str(p) for n, p in benign_dir.items()
             if p.read_bytes()[:2] != b"PK" and not n.endswith(".z")]
    report = scan_paths(paths)
    assert all(f.verdict is Verdict.CLEAN for f in report.files), [
        (f.path, [x.message for x in f.findings]) for f in report.files
        if f.verdict is not Verdict.CLEAN]


def test_legacy_raw_storage_bytes_not_flagged(benign_dir: dict[str, Path]) -> None:
    ctx, fmt = _scan_any(benign_dir["state_dict_legacy.pt"])
    assert fmt == "pytorch-legacy" and ctx.findings == []


def test_user_class_module_is_suspicious_with_reason() -> None:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

    import io
    import sys
    import types

    mod = types.ModuleType("my_project_models")
    Net.__module__, Net.__qualname__ = mod.__name__, "Net"
    mod.Net = Net  # type: ignore[attr-defined]
    sys.modules[mod.__name__] = mod
    try:
        buf = io.BytesIO()
        pickle.Pickler(buf, protocol=2).dump(Net())  # as torch.save writes data.pkl
    finally:
        del sys.modules[mod.__name__]
    ctx = ScanContext("x", Limits())
    scan_pickle(buf.getvalue(), ctx)
    assert ctx.verdict is Verdict.SUSPICIOUS
    (f,) = [f for f in ctx.findings if "my_project_models.Net" in f.message]
    assert f.rule == "pickle-unknown-global" and "nn.Module" in f.message
