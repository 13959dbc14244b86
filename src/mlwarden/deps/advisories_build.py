"""Regenerate the bundled advisory database (OSV format) from ml-advisories.md.

    python -m mlwarden.deps.advisories_build /work/shared/reference/ml-advisories.md \
        src/mlwarden/deps/data/advisories.json

Rows become OSV records with ECOSYSTEM ranges. Fixes shipped without a CVE get stable
``MLW-`` ids from the table below (never renumbered; new rows get new numbers), and rows
marked UNVERIFIED or DISPUTED keep that mark in ``database_specific``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from mlwarden.util.fs import atomic_write_text

SCHEMA_VERSION = 1
DB_VERSION = "2026.08.20"
MODIFIED = "2026-08-20T00:00:00Z"

# Stable ids for security fixes without a CVE: (package, reference in the source) -> id.
MLW_IDS = {
    ("huggingface_hub", "PR #1429"): "MLW-2026-0001",
    ("huggingface_hub", "PR #4033"): "MLW-2026-0002",
}
# The two huggingface_hub path traversals described in prose (no fixed release yet). They
# need a malicious or intercepted HF_ENDPOINT, hence the condition.
PROSE: list[dict[str, Any]] = [
    {"id": "MLW-2026-0003", "package": "huggingface_hub", "events": [{"introduced": "0"}],
     "summary": "ETag -> blob path traversal: a server ETag such as '../../../../evil_blob' "
                "makes hf_hub_download write outside the cache (file_download.py blob_path)",
     "condition": "untrusted-endpoint"},
    {"id": "MLW-2026-0004", "package": "huggingface_hub", "events": [{"introduced": "0"}],
     "summary": "repo_info.sha -> tree-cache path traversal: a server sha such as "
                "'../../../../evil_tree' writes or overwrites a .json file outside the cache",
     "condition": "untrusted-endpoint"},
]

_VER = r"(\d+(?:\.\d+)*)"
_ID = re.compile(r"\b(CVE-\d{4}-\d+|GHSA-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}|PYSEC-\d{4}-\d+)")


def _clean(cell: str) -> str:
    return cell.replace("**", "").replace("`", "").strip()


def _table_rows(text: str, heading: str) -> list[list[str]]:
    """Data rows of the first markdown table after the heading line that contains ``heading``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and heading in line)
    rows: list[list[str]] = []
    in_table = False
    for line in lines[start + 1:]:
        if line.startswith("|"):
            in_table = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= set("-: ") or cells[0] in ("#", "Package"):
                continue
            rows.append(cells)
        elif in_table:
            break
    return rows


def _valid(v: str) -> bool:
    try:
        Version(v)
        return True
    except InvalidVersion:
        return False


def events_from(affected: str, fixed: str) -> list[dict[str, str]]:
    """OSV ECOSYSTEM events from the free-text Affected/Fixed cells (see module doc)."""
    a, f = _clean(affected), _clean(fixed)
    introduced = "0"
    last: str | None = None
    if m := re.search(r"≥\s*" + _VER, a):
        introduced = m.group(1)
    elif m := re.match(_VER + r"\.\." + _VER, a):
        introduced, last = m.group(1), m.group(2)
    elif (m := re.match(_VER + r"\b", a)) and not a.startswith(("<", "≤")):
        introduced = last = m.group(1)
    fixed_v = m.group(1) if (m := re.match(_VER, f)) else None
    if fixed_v is None and (m := re.match(r"<\s*" + _VER, a)):
        fixed_v = m.group(1)
    if fixed_v is None and last is None:
        m = (re.search(r"last_affected\s*" + _VER, a) or re.search(r"≤\s*" + _VER, a)
             or re.search(r"through\s*" + _VER, a))
        last = m.group(1) if m else None
    events: list[dict[str, str]] = [{"introduced": introduced}]
    if fixed_v and _valid(fixed_v):
        events.append({"fixed": fixed_v})
    elif last and _valid(last):
        events.append({"last_affected": last})
    return events


def _record(adv_id: str, aliases: list[str], package: str, summary: str,
            events: list[dict[str, str]], specific: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": "1.6.0",
        "id": adv_id,
        "modified": MODIFIED,
        "aliases": aliases,
        "summary": summary,
        "affected": [{"package": {"ecosystem": "PyPI", "name": package},
                      "ranges": [{"type": "ECOSYSTEM", "events": events}]}],
        "database_specific": specific,
    }


def build(markdown: str) -> dict[str, Any]:
    advisories: list[dict[str, Any]] = []
    for cells in _table_rows(markdown, "Verified advisories"):
        _, package, ids, _cve, affected, fixed, summary, src = cells[:8]
        found = _ID.findall(ids)
        row = " ".join(cells)
        advisories.append(_record(
            found[0], found[1:], package, _clean(summary), events_from(affected, fixed),
            {"cve": True, "unverified": "UNVERIFIED" in row, "disputed": "DISPUTED" in ids,
             "source": _clean(src), "fixed_note": _clean(fixed)}))
    for cells in _table_rows(markdown, "Security fixes shipped without a CVE"):
        package, ident, affected, fixed, summary, src = cells[:6]
        found = _ID.findall(ident)
        pr = re.search(r"PR #\d+", ident)
        ref = pr.group(0) if pr else ident
        adv_id = found[0] if found else MLW_IDS[(package, ref)]
        aliases = [ref] if found else [_clean(ident).split(";")[0]]
        advisories.append(_record(
            adv_id, aliases, package, _clean(summary), events_from(affected, fixed),
            {"cve": bool(found), "unverified": "UNVERIFIED" in ident, "disputed": False,
             "source": _clean(src), "fixed_note": _clean(fixed)}))
    for p in PROSE:
        advisories.append(_record(p["id"], [], p["package"], p["summary"], p["events"],
                                  {"cve": False, "unverified": False, "disputed": False,
                                   "source": "ml-advisories.md (reproduced on a loopback hub)",
                                   "condition": p["condition"]}))
    all_ids = [str(a["id"]) for a in advisories]
    if len(all_ids) != len(set(all_ids)):
        raise ValueError("duplicate advisory ids")
    return {"schema_version": SCHEMA_VERSION, "db_version": DB_VERSION,
            "source": "ml-advisories.md", "advisories": advisories}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m mlwarden.deps.advisories_build ML-ADVISORIES.md OUT.json",
              file=sys.stderr)
        return 4
    db = build(Path(args[0]).read_text(encoding="utf-8"))
    atomic_write_text(args[1], json.dumps(db, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(db['advisories'])} advisories written to {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
