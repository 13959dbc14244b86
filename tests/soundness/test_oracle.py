"""The differential oracle itself: real loaders in the sandbox, what they record, and how a
divergence from the scanner is decided."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest

from corpus.pickles import call_global
from soundness.oracle import (
    MARKER,
    Comparison,
    Oracle,
    OracleResult,
    ScannerView,
    compare,
)


def _s4(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def _kinds(r: OracleResult) -> set[str]:
    return {e.kind for e in r.violations}


def test_benign_files_of_every_loader(oracle: Oracle, tmp_path: Path) -> None:
    import collections

    import joblib
    import numpy as np
    import torch

    files = {
        "containers.pkl": pickle.dumps({"od": collections.OrderedDict(a=1), "s": {1, 2},
                                        "n": np.arange(3), "c": 1j}, protocol=2),
    }
    paths = [_write(tmp_path, k, v) for k, v in files.items()]
    torch.save({"w": torch.ones(2), "o": torch.optim.SGD([torch.nn.Parameter(torch.ones(1))],
                                                         lr=0.1).state_dict()},
               tmp_path / "zip.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    joblib.dump({"a": np.arange(5), "o": np.array([None, "x"], dtype=object)},
                tmp_path / "m.joblib", compress=3)
    np.save(tmp_path / "o.npy", np.array([1, None], dtype=object), allow_pickle=True)
    paths += [tmp_path / n for n in ("zip.pt", "legacy.pt", "m.joblib", "o.npy")]
    expected_loader = {"containers.pkl": "pickle", "zip.pt": "torch-weights-only",
                       "legacy.pt": "torch", "m.joblib": "joblib", "o.npy": "numpy"}
    for p in paths:
        c = compare(p, oracle=oracle)
        loaded = {r.loader for r in c.oracle if r.status == "ok"}
        assert expected_loader[p.name] in loaded, (p.name, [(r.loader, r.error)
                                                            for r in c.oracle])
        assert not c.malicious_loaders, [r.reasons() for r in c.malicious_loaders]
        assert c.divergence is None
        assert c.scanner.verdict == "clean"


@pytest.mark.parametrize("payload, kinds", [
    (call_global("os", "system", f"touch {MARKER}"), {"call", "process"}),
    (call_global("builtins", "open", MARKER, "w"), {"call"}),
    (call_global("builtins", "eval", "1+1"), {"call", "code"}),
    (call_global("builtins", "open", ".ssh/id_rsa"), {"call", "canary"}),
    (call_global("builtins", "open", "/tmp/mlw-oracle-escape-test", "w"), {"call", "file"}),
    (call_global("socket", "create_connection", ("192.0.2.1", 9)), {"call", "network"}),
    (call_global("logging", "Formatter", "%(message)s"), {"class-call"}),
    # getattr(logging.os, 'system') resolves a name; calling the result is the violation.
    (b"\x80\x04" + _s4("builtins") + _s4("getattr") + b"\x93" + _s4("logging")
     + _s4("os") + b"\x93" + _s4("system") + b"\x86R" + _s4(f"touch {MARKER}")
     + b"\x85R.", {"call", "process"}),
    # A helper that calls its argument: torch's tensor-subclass rebuild calls func(*args).
    (b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(cos\nsystem\nctorch\nTensor\n("
     + b"X" + struct.pack("<I", len(f"touch {MARKER}")) + f"touch {MARKER}".encode()
     + b"t}tR.", {"call", "process"}),
])
def test_payloads_are_recorded(oracle: Oracle, tmp_path: Path, payload: bytes,
                               kinds: set[str]) -> None:
    r = oracle.run(_write(tmp_path, "p.pkl", payload), "pickle")
    assert r.malicious, (r.status, r.error, r.events)
    assert kinds <= _kinds(r), r.reasons()


def test_marker_file_and_sandbox_writes(oracle: Oracle, tmp_path: Path) -> None:
    r = oracle.run(_write(tmp_path, "m.pkl", call_global("builtins", "open", MARKER, "w")),
                   "pickle")
    assert r.markers == (MARKER,)
    escape = Path("/tmp/mlw-oracle-escape-test")
    r = oracle.run(_write(tmp_path, "e.pkl", call_global("builtins", "open", str(escape),
                                                         "w")), "pickle")
    assert r.status == "blocked" and "file" in _kinds(r)
    assert not escape.exists()


def test_processes_are_blocked_not_run(oracle: Oracle, tmp_path: Path) -> None:
    r = oracle.run(_write(tmp_path, "s.pkl", call_global("os", "system", f"touch {MARKER}")),
                   "joblib")
    assert r.status == "blocked" and not r.markers
    assert "process" in _kinds(r)


def test_timeout_keeps_what_was_recorded(oracle: Oracle, tmp_path: Path) -> None:
    p = _write(tmp_path, "sleep.pkl", call_global("time", "sleep", 60))
    r = oracle.run(p, "pickle", timeout=1)
    assert r.status == "timeout"
    assert any(e.kind == "call" and "time.sleep" in e.detail for e in r.violations)


def test_without_namespaces_the_audit_hook_still_blocks(tmp_path: Path) -> None:
    escape = tmp_path / "outside"
    p = _write(tmp_path, "e.pkl", call_global("builtins", "open", str(escape), "w"))
    with Oracle(sandbox=False, scratch=tmp_path / "scratch") as o:
        assert o.sandbox_mode == "none"
        r = o.run(p, "pickle")
    assert r.status == "blocked" and not escape.exists()


def test_weights_only_rejects_what_it_does_not_allow(oracle: Oracle, tmp_path: Path) -> None:
    p = _write(tmp_path, "s.pkl", call_global("os", "system", f"touch {MARKER}"))
    wo = oracle.run(p, "torch-weights-only")
    assert wo.status == "error" and not wo.malicious
    full = oracle.run(p, "torch")  # legacy path: the first pickle is unpickled freely
    assert full.malicious


def test_resolutions_are_recorded(oracle: Oracle, tmp_path: Path) -> None:
    r = oracle.run(_write(tmp_path, "od.pkl", pickle.dumps(
        __import__("collections").OrderedDict(a=1), protocol=0)), "pickle")
    assert r.status == "ok" and not r.malicious
    assert any("collections.OrderedDict" in d for d in r.resolved)


def test_frame_divergence_runs_only_under_file_load(oracle: Oracle, tmp_path: Path) -> None:
    from corpus.pickles import _frame_exploit

    p = _write(tmp_path, "frame.pkl", _frame_exploit(MARKER, verified=True))
    assert oracle.run(p, "pickle").malicious  # C unpickler reading a file
    assert not oracle.run(p, "pickle-loads").malicious  # linear in-memory view


def test_divergence_is_one_sided() -> None:
    bad = OracleResult("f", "pickle", "ok", markers=(MARKER,))
    good = OracleResult("f", "pickle", "ok")
    for verdict, diverges in (("clean", True), ("suspicious", True), ("unscannable", False),
                              ("malicious", False)):
        c = Comparison("f", ScannerView(verdict), (bad, good))
        assert (c.divergence is not None) is diverges
        assert c.divergence is None or c.divergence.oracle == (bad,)
    alarm = Comparison("f", ScannerView("malicious"), (good,))
    assert alarm.false_alarm and alarm.divergence is None


def test_transformers_remote_code(tmp_path: Path) -> None:
    from corpus import repos

    benign = tmp_path / "benign"
    benign.mkdir()
    repos.evil_base64_exec(benign, Path(MARKER))  # same layout, the payload line removed
    code = (benign / "modeling_evil.py").read_text().splitlines()
    (benign / "modeling_evil.py").write_text("\n".join(
        ln for ln in code if "b64exec" not in ln and "_BLOB" not in ln) + "\n")
    evil = tmp_path / "evil"
    evil.mkdir()
    repos.evil_base64_exec(evil, Path(MARKER))
    with Oracle(loaders=("transformers",), timeout=120, scratch=tmp_path / "s") as o:
        ok = compare(benign, oracle=o)
        bad = compare(evil, oracle=o)
    assert [r.status for r in ok.oracle] == ["ok"] and not ok.malicious_loaders
    (r,) = bad.oracle
    assert r.markers == (MARKER,) and "code" in _kinds(r), r.reasons()
    assert bad.divergence is None  # the scanner calls it malicious
