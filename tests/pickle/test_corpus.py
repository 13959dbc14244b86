"""Every published pickle technique is judged malicious, through the API, the reader and
the engine."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from corpus.pickles import (
    joblib_payload_after_buffer,
    malicious_samples,
    npy_object_payload,
    torch_legacy_with_payload,
)
from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.engine import scan_paths
from mlwarden.scan.readers.pickle_file import read_pickle_file
from mlwarden.scan.source import Source

SAMPLES = malicious_samples("/nonexistent/MARKER")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_technique_is_malicious(name: str, scan_bytes) -> None:  # type: ignore[no-untyped-def]
    ctx = scan_bytes(SAMPLES[name])
    assert ctx.verdict is Verdict.MALICIOUS, [f.message for f in ctx.findings]
    for f in ctx.findings:
        assert f.location is not None and f.location.detail and "pickle #" in f.location.detail


def test_denylist_findings_name_the_callable(scan_bytes) -> None:  # type: ignore[no-untyped-def]
    ctx = scan_bytes(SAMPLES["dotted-logging-os-system"])
    msgs = [f.message for f in ctx.findings if f.rule == "pickle-dangerous-callable"]
    assert msgs and "logging.os.system" in msgs[0] and "called" in msgs[0]


def test_broken_stream_reports_payload_and_break(scan_bytes) -> None:  # type: ignore[no-untyped-def]
    ctx = scan_bytes(SAMPLES["broken-stream-nullifai"])
    rules = {f.rule for f in ctx.findings}
    assert {"pickle-dangerous-callable", "pickle-broken-stream"} <= rules


def test_memo_anomalies_reported(scan_bytes) -> None:  # type: ignore[no-untyped-def]
    for name in ("memo-missing-after-payload", "memo-int-after-payload", "memo-overwrite"):
        ctx = scan_bytes(SAMPLES[name])
        assert "pickle-memo-anomaly" in {f.rule for f in ctx.findings}, name


def _read(data: bytes) -> ScanContext:
    ctx = ScanContext("file", Limits())
    read_pickle_file(Source.from_bytes(data, "file"), ctx)
    return ctx


@pytest.mark.parametrize("index", [1, 2, 3, 4, 5])
def test_legacy_torch_payload_in_any_stacked_pickle(index: int, marker: str) -> None:
    ctx = _read(torch_legacy_with_payload(marker, index))
    assert ctx.verdict is Verdict.MALICIOUS
    hit = [f for f in ctx.findings if f.rule == "pickle-dangerous-callable"]
    assert hit[0].location is not None and hit[0].location.detail == f"pickle #{index}"


def test_joblib_payload_after_array_buffer(marker: str) -> None:
    ctx = _read(joblib_payload_after_buffer(marker))
    assert ctx.format == "joblib"
    assert ctx.verdict is Verdict.MALICIOUS
    assert "os.system" in " ".join(f.message for f in ctx.findings)


def test_compressed_joblib_payload_via_decompressed_stream(marker: str) -> None:
    # The containers reader decompresses and hands the inner stream over; emulate it.
    inner = joblib_payload_after_buffer(marker)
    ctx = _read(zlib.decompress(zlib.compress(inner)))
    assert ctx.verdict is Verdict.MALICIOUS


def test_npy_object_array_payload(tmp_path: Path, marker: str) -> None:
    p = tmp_path / "arr.npy"
    p.write_bytes(npy_object_payload(marker))
    report = scan_paths([str(p)])
    (res,) = report.files
    assert res.format == "npy" and res.verdict is Verdict.MALICIOUS


def test_engine_scans_by_content_not_extension(tmp_path: Path) -> None:
    # CVE-2025-1889 / CVE-2025-10155: a plain pickle under a model-ish name.
    for name in ("weights.model", "pytorch_model.bin", "model.pt", "README"):
        (tmp_path / name).write_bytes(SAMPLES["gap-os.system"])
    report = scan_paths([str(tmp_path)])
    pick = [f for f in report.files if f.format == "pickle"]
    assert len(pick) == 4 and all(f.verdict is Verdict.MALICIOUS for f in pick)
