"""A small reader of fleet-scan results, so trace can search them without depending on the
fleet package.

The fleet writes (remote-fleet's schema): a directory of Parquet parts ``repos-<batch>``
and ``files-<batch>`` (a ``files-`` part without its ``repos-`` part is a killed batch and
is ignored), or PostgreSQL tables ``fleet_repos`` / ``fleet_files`` keyed by ``run``. Files
carry ``repo`` (``hf://ORG/NAME[@REV]``, or an s3:// URL), ``path``, ``sha256`` (may be
null), ``verdict`` and ``rules`` (a JSON list); the commit comes from the repos table.

Any other single Parquet file is read by column names, tolerating the usual spellings
(``repo_id``, ``revision``, ``digest``...); a table without a repository and a digest,
path or package column is refused, never half-read.
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


def normalize_repo(key: str) -> str:
    """``hf://ORG/NAME@REV (endpoint)`` -> ``ORG/NAME``; other URLs stay as they are."""
    k = key.split(" (", 1)[0]
    if k.startswith("hf://"):
        k = k[len("hf://"):].split("@", 1)[0]
        k = k.removeprefix("models/")
    return k


def _batches(directory: Path) -> list[tuple[Path, Path]]:
    """(repos part, files part) of every complete batch."""
    out = []
    for f in sorted(directory.glob("files-*.parquet")):
        r = directory / ("repos-" + f.name[len("files-"):])
        if r.is_file():
            out.append((r, f))
    return out


def _table_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(path))
    names = set(pf.schema_arrow.names)
    cols = [c for c in columns if c in names] if columns is not None else None
    for batch in pf.iter_batches(columns=cols):
        yield from batch.to_pylist()


def read_parquet(path: str | os.PathLike[str]) -> Iterator[FleetRow]:
    """A fleet output directory, or any single Parquet file of scan rows."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise TraceInputError("reading Parquet fleet results needs pyarrow "
                              "(pip install pyarrow)") from None
    p = Path(path)
    if not p.exists():
        raise TraceInputError(f"{p}: no such Parquet file or directory")
    try:
        if p.is_dir():
            batches = _batches(p)
            if not batches:
                raise TraceInputError(f"{p}: no complete fleet batches (repos-*/files-* "
                                      "Parquet parts)")
            commits: dict[str, str | None] = {}
            for repos, _ in batches:
                for rec in _table_rows(repos, ["repo", "commit"]):
                    commits[str(rec.get("repo"))] = _text(rec.get("commit"))
            seen = 0
            for _, files in batches:
                for rec in _table_rows(files, ["repo", "path", "sha256", "verdict",
                                               "rules"]):
                    seen += 1
                    if seen > MAX_ROWS:
                        raise TraceInputError(f"{p}: more than {MAX_ROWS} rows")
                    key = str(rec.get("repo") or "")
                    if not key:
                        continue
                    sha = _text(rec.get("sha256"))
                    yield FleetRow(normalize_repo(key), commits.get(key),
                                   _text(rec.get("path")), sha.lower() if sha else None,
                                   _text(rec.get("verdict")), _rules(rec.get("rules")), "",
                                   None, None, f"{files.name}: {key}")
            return
        import pyarrow.parquet as pq

        cols = _columns(pq.ParquetFile(str(p)).schema_arrow.names, str(p))
        for seen, rec in enumerate(_table_rows(p, sorted(set(cols.values()))), 1):
            if seen > MAX_ROWS:
                raise TraceInputError(f"{p}: more than {MAX_ROWS} rows")
            row = _row(rec, cols, str(p))
            if row is not None:
                yield row
    except TraceInputError:
        raise
    except Exception as exc:  # pyarrow's own errors: a damaged or foreign file
        raise TraceInputError(f"{p}: cannot read Parquet: {exc}") from None


def read_postgres(url: str, run: str | None = None) -> Iterator[FleetRow]:
    """``fleet_files`` joined with ``fleet_repos`` (for the commit), optionally one run."""
    try:
        import psycopg
    except ImportError:
        raise TraceInputError("reading fleet results from PostgreSQL needs psycopg") from None
    sql = ("SELECT f.repo, r.commit, f.path, f.sha256, f.verdict, f.rules, f.run "
           "FROM fleet_files f LEFT JOIN fleet_repos r ON r.run = f.run AND r.repo = f.repo")
    params: tuple[str, ...] = ()
    if run is not None:
        sql += " WHERE f.run = %s"
        params = (run,)
    try:
        with psycopg.connect(url) as conn, conn.cursor(name="mlwarden_trace") as cur:
            cur.execute(sql, params)
            for repo, commit, path, sha, verdict, rules, r in cur:
                if not repo:
                    continue
                yield FleetRow(normalize_repo(str(repo)), _text(commit), _text(path),
                               str(sha).lower() if sha else None, _text(verdict),
                               _rules(rules), "", None, None, f"postgres run {r}: {repo}")
    except psycopg.Error as exc:
        raise TraceInputError(f"cannot read fleet results from PostgreSQL: {exc}") from None


def read_fleet(spec: str) -> Iterator[FleetRow]:
    """``PATH`` (a fleet output directory or a Parquet file) or
    ``postgresql://...[#run=NAME]``."""
    if spec.startswith(("postgresql://", "postgres://")):
        url, _, frag = spec.partition("#")
        run = frag.removeprefix("run=") if frag else None
        return read_postgres(url, run or None)
    return read_parquet(spec)
