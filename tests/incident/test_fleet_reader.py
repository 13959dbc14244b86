"""trace's fleet-result reader against what `mlwarden fleet` actually writes: its Parquet and
PostgreSQL sinks (real pyarrow files, a real PostgreSQL database), and a generic Parquet
file with other column names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.fleet.worker import RepoOutcome
from mlwarden.incident.errors import TraceInputError
from mlwarden.incident.fleet import read_fleet, read_parquet

SHA = "ab" * 32


def outcomes() -> list[RepoOutcome]:
    def out(key: str, commit: str, files: list[tuple[str, str | None, str]]) -> RepoOutcome:
        return RepoOutcome(key, {"repo": key, "commit": commit, "status": "scanned",
                                 "verdict": "malicious"},
                           [{"repo": key, "path": p, "sha256": s, "verdict": v,
                             "rules": '["pickle-dangerous-callable"]' if v == "malicious"
                             else "[]", "size": 1} for p, s, v in files])

    return [out("hf://acme/model@main", "1" * 40, [("weights.bin", SHA, "malicious"),
                                                   ("config.json", None, "clean")]),
            out("hf://other/model (https://mirror.example)", "2" * 40,
                [("model.safetensors", "cd" * 32, "clean")])]


def check(rows: list) -> None:
    by_path = {r.path: r for r in rows}
    w = by_path["weights.bin"]
    assert (w.repo, w.commit, w.sha256, w.verdict) == ("acme/model", "1" * 40, SHA,
                                                       "malicious")
    assert w.rules == ("pickle-dangerous-callable",)
    assert by_path["config.json"].sha256 is None  # null digests are kept as unknown
    assert by_path["model.safetensors"].repo == "other/model"


def test_reads_the_fleet_parquet_sink(tmp_path: Path) -> None:
    from mlwarden.fleet import open_sink

    sink = open_sink(str(tmp_path / "results"))
    sink.write(outcomes())
    sink.close()
    # A batch killed between its two parts is not evidence.
    import shutil

    part = next((tmp_path / "results").glob("files-*.parquet"))
    shutil.copy(part, tmp_path / "results" / "files-killed.parquet")
    rows = list(read_fleet(str(tmp_path / "results")))
    assert len(rows) == 3
    check(rows)


def test_reads_the_fleet_postgres_sink(postgres_url: str) -> None:
    from mlwarden.fleet import open_sink

    sink = open_sink(postgres_url, run="nightly")
    sink.write(outcomes())
    sink.close()
    check(list(read_fleet(postgres_url)))
    check(list(read_fleet(postgres_url + "#run=nightly")))
    assert list(read_fleet(postgres_url + "#run=other")) == []


def test_generic_parquet_and_refusals(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"repo_id": ["acme/x"], "revision": ["3" * 40],
                             "file_path": ["a.pkl"], "digest": [f"sha256:{SHA}"]}),
                   tmp_path / "scan.parquet")
    (row,) = read_parquet(tmp_path / "scan.parquet")
    assert (row.repo, row.commit, row.path, row.sha256) == ("acme/x", "3" * 40, "a.pkl", SHA)
    pq.write_table(pa.table({"name": ["x"]}), tmp_path / "other.parquet")
    with pytest.raises(TraceInputError, match="not fleet-scan results"):
        list(read_parquet(tmp_path / "other.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TraceInputError, match="no complete fleet batches"):
        list(read_parquet(tmp_path / "empty"))
