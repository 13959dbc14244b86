"""Fixtures shared by the end-to-end tests (helpers live in support.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e.support import pickle_call


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """One small file per scan verdict, each in its own directory."""
    import pickle

    out: dict[str, Path] = {}
    for name in ("clean", "malicious", "suspicious", "unscannable"):
        (tmp_path / name).mkdir()
    clean = tmp_path / "clean" / "model.pkl"
    clean.write_bytes(pickle.dumps({"lr": 0.1, "layers": [4, 4]}, protocol=4))
    out["clean"] = clean
    marker = tmp_path / "marker"
    bad = tmp_path / "malicious" / "model.pkl"
    # Harmless even if someone loaded it: it only creates a marker file.
    bad.write_bytes(pickle_call("os", "system", f"touch {marker}"))
    out["malicious"] = bad
    sus = tmp_path / "suspicious" / "model.pkl"
    sus.write_bytes(b"\x80\x04cacme_private\nThing\n.")  # unknown import, only referenced
    out["suspicious"] = sus
    fifo = tmp_path / "unscannable" / "pipe.bin"
    os.mkfifo(fifo)  # not a regular file: never opened, reported unscannable
    out["unscannable"] = fifo
    out["marker"] = marker
    return out
