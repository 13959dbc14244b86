"""``mlwarden demo`` in a fresh directory exits 0 only because it checked itself."""

from __future__ import annotations

import pickle
from pathlib import Path

from e2e.support import mlw


def test_demo_passes_its_self_check(tmp_path: Path) -> None:
    r = mlw("demo", "--dir", tmp_path / "demo", "--format", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    assert "Every sample under" in r.err
    doc = r.json()
    assert isinstance(doc, dict)
    verdicts = {f["path"]: f["verdict"] for f in doc["files"] if f["parent"] is None}
    assert any("/malicious/" in p and v == "malicious" for p, v in verdicts.items())
    assert all(v == "clean" for p, v in verdicts.items() if "/benign/" in p)


def test_demo_relative_dir_and_table(tmp_path: Path) -> None:
    r = mlw("demo", "--dir", "./samples/", cwd=tmp_path)
    assert r.code == 0, r.err
    assert "malicious" in r.out and (tmp_path / "samples" / "benign").is_dir()


def test_demo_self_check_is_not_vacuous(tmp_path: Path) -> None:
    """A benign file planted among the malicious samples must fail the demo."""
    root = tmp_path / "demo"
    (root / "malicious").mkdir(parents=True)
    (root / "malicious" / "innocent.pkl").write_bytes(pickle.dumps({"a": 1}))
    r = mlw("demo", "--dir", root, "--format", "json")
    assert r.code == 1
    assert "innocent.pkl" in r.err and "Traceback" not in r.err
