"""A small reader of fleet-scan results (``mlwarden fleet``: Parquet files or PostgreSQL
tables), so trace can search them without depending on the fleet package.

Columns are found by name, tolerating the usual spellings (``repo``/``repo_id``/
``repository``, ``commit``/``revision``, ``path``/``file``, ``sha256``/``digest``, ...);
a table without a repository and a digest or path column is refused, never half-read.
Optional columns: ``verdict``, ``rules`` (list or comma-separated), ``findings`` (JSON or
text that may name advisory ids), ``package`` and ``version``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.incident.errors import TraceInputError

SYNONYMS = {
    "repo": ("repo", "repo_id", "repository", "model", "model_id"),
    "commit": ("commit", "commit_id", "revision", "sha"),
    "path": ("path", "file", "file_path", "filename"),
    "sha256": ("sha256", "digest", "file_sha256", "blob_sha256"),
    "verdict": ("verdict", "file_verdict"),
    "rules": ("rules", "rule_ids", "rule", "rule_id"),
    "findings": ("findings", "messages", "details"),
    "package": ("package", "package_name", "dist"),
    "version": ("version", "package_version"),
    "source": ("source", "endpoint", "input"),
}
MAX_ROWS = 50_000_000


@dataclass(frozen=True)
class FleetRow:
    repo: str
    commit: str | None
    path: str | None
    sha256: str | None
    verdict: str | None
    rules: tuple[str, ...]
    findings: str
    package: str | None
    version: str | None
    source: str  # where the row came from (file or table)


def _columns(names: Sequence[str], where: str) -> dict[str, str]:
    lower = {n.lower(): n for n in names}
    out: dict[str, str] = {}
    for key, options in SYNONYMS.items():
        for o in options:
            if o in lower:
                out[key] = lower[o]
                break
    if "repo" not in out or not ({"sha256", "path", "package"} & set(out)):
        raise TraceInputError(f"{where}: not fleet-scan results (needs a repository column "
                              f"and a sha256, path or package column; has "
                              f"{', '.join(names[:12])})")
    return out


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v)


def _rules(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, (list, tuple)):
        return tuple(str(x) for x in v if x is not None)
    text = str(v)
    if text.startswith("["):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return tuple(str(x) for x in parsed)
        except ValueError:
            pass
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _row(rec: dict[str, Any], cols: dict[str, str], source: str) -> FleetRow | None:
    repo = _text(rec.get(cols["repo"]))
    if not repo:
        return None
    findings = rec.get(cols["findings"]) if "findings" in cols else None
    if findings is not None and not isinstance(findings, str):
        try:
            findings = json.dumps(findings, default=str)
        except (TypeError, ValueError):
            findings = str(findings)
    sha = _text(rec.get(cols["sha256"])) if "sha256" in cols else None
    return FleetRow(repo, _text(rec.get(cols["commit"])) if "commit" in cols else None,
                    _text(rec.get(cols["path"])) if "path" in cols else None,
                    sha.lower().removeprefix("sha256:") if sha else None,
                    _text(rec.get(cols["verdict"])) if "verdict" in cols else None,
                    _rules(rec.get(cols["rules"])) if "rules" in cols else (),
                    findings or "", _text(rec.get(cols["package"])) if "package" in cols
                    else None, _text(rec.get(cols["version"])) if "version" in cols else None,
                    _text(rec.get(cols["source"])) or source if "source" in cols else source)


def read_parquet(path: str | os.PathLike[str]) -> Iterator[FleetRow]:
    """A Parquet file, or a directory of them (a partitioned dataset)."""
    try:
        import pyarrow.dataset as ds
    except ImportError:
        raise TraceInputError("reading Parquet fleet results needs pyarrow: "
                              "pip install 'mlwarden[fleet]'") from None
    p = Path(path)
    if not p.exists():
        raise TraceInputError(f"{p}: no such Parquet file or directory")
    try:
        dataset = ds.dataset(str(p), format="parquet")
        cols = _columns(dataset.schema.names, str(p))
        seen = 0
        for batch in dataset.to_batches(columns=sorted(set(cols.values()))):
            for rec in batch.to_pylist():
                seen += 1
                if seen > MAX_ROWS:
                    raise TraceInputError(f"{p}: more than {MAX_ROWS} rows")
                row = _row(rec, cols, str(p))
                if row is not None:
                    yield row
    except TraceInputError:
        raise
    except Exception as exc:  # pyarrow's own errors: a damaged or foreign file
        raise TraceInputError(f"{p}: cannot read Parquet: {exc}") from None


def read_postgres(url: str, table: str) -> Iterator[FleetRow]:
    """Rows of ``table`` in a PostgreSQL database (the fleet's PostgreSQL sink)."""
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", table):
        raise TraceInputError(f"{table!r} is not a table name")
    try:
        import psycopg
    except ImportError:
        raise TraceInputError("reading fleet results from PostgreSQL needs psycopg") from None
    try:
        with psycopg.connect(url) as conn:
            cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
            names = [d.name for d in cur.description or []]
            cols = _columns(names, table)
            picked = sorted(set(cols.values()))
            sql = "SELECT " + ", ".join(f'"{c}"' for c in picked) + f" FROM {table}"
            with conn.cursor(name="mlwarden_trace") as named:
                named.execute(sql)
                for values in named:
                    row = _row(dict(zip(picked, values, strict=True)), cols, f"postgres:{table}")
                    if row is not None:
                        yield row
    except TraceInputError:
        raise
    except psycopg.Error as exc:
        raise TraceInputError(f"cannot read {table} from PostgreSQL: {exc}") from None


def read_fleet(spec: str) -> Iterator[FleetRow]:
    """``PATH`` (Parquet) or ``postgresql://...#TABLE``."""
    if spec.startswith(("postgresql://", "postgres://")):
        url, _, table = spec.partition("#")
        return read_postgres(url, table or "fleet_files")
    return read_parquet(spec)
