"""The checked-in library tables (tools/build_knowledge_tables.py): classes of the pinned
libraries whose plain reconstruction is pure, their functions, re-exported spellings and
legacy pickle entry points, all by identity. Loaded lazily (only when a name is not in the
hand-written knowledge base), so ordinary checkpoints never pay for it.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

_DATA = Path(__file__).with_name("data") / "libraries.tsv.gz"
SECTIONS = ("versions", "classes", "functions", "aliases", "legacy")


def parse(text: str) -> dict[str, Any]:
    """The table format: ``[section]`` lines, then one tab-separated entry per line
    (plain text under gzip: a tenth of the time JSON takes to load)."""
    doc: dict[str, Any] = {"versions": {}, "classes": {}, "functions": set(), "aliases": {},
                           "legacy": {}}
    section = ""
    for line in text.split("\n"):
        if not line:
            continue
        if line[0] == "[":
            section = line[1:-1]
            continue
        if section == "functions":
            doc["functions"].add(line)
            continue
        key, _, value = line.partition("\t")
        if section == "classes":
            doc["classes"][key] = int(value)
        elif section == "legacy":
            inv, _, cons = value.partition("\t")
            doc["legacy"][key] = [[int(i) for i in inv.split(",") if i],
                                  [int(i) for i in cons.split(",") if i]]
        elif section in ("aliases", "versions"):
            doc[section][key] = value
    return doc


def render(doc: dict[str, Any]) -> str:
    out: list[str] = []
    for section in SECTIONS:
        out.append(f"[{section}]")
        body = doc[section]
        if section == "functions":
            out += sorted(body)
        elif section == "legacy":
            out += [f"{k}\t{','.join(map(str, v[0]))}\t{','.join(map(str, v[1]))}"
                    for k, v in sorted(body.items())]
        else:
            out += [f"{k}\t{v}" for k, v in sorted(body.items())]
    return "\n".join(out) + "\n"


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    if os.environ.get("MLWARDEN_TABLES") == "off" or not _DATA.exists():
        return parse("")
    return parse(gzip.decompress(_DATA.read_bytes()).decode())


def class_uses(name: str) -> int | None:
    """Use bits a table class allows (REF, NEW, SETATTR, ITEMS), or None."""
    hit = _table()["classes"].get(name)
    return int(hit) if hit is not None else None


def is_function(name: str) -> bool:
    return name in _table()["functions"]


def alias(name: str) -> str | None:
    """Canonical module.qualname of a re-exported spelling, or None."""
    hit = _table()["aliases"].get(name)
    return str(hit) if hit is not None else None


def legacy(name: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(arguments called, arguments instantiated) of a legacy pickle entry point."""
    hit = _table()["legacy"].get(name)
    if hit is None:
        return None
    return tuple(hit[0]), tuple(hit[1])


def versions() -> dict[str, str]:
    return dict(_table().get("versions", {}))
