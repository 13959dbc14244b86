"""The checked-in library tables (tools/build_knowledge_tables.py): classes of the pinned
libraries whose plain reconstruction is pure, their functions, re-exported spellings and
legacy pickle entry points, all by identity. Loaded lazily (only when a name is not in the
hand-written knowledge base), so ordinary checkpoints never pay for it.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

_DATA = Path(__file__).with_name("data") / "libraries.json.gz"


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    if os.environ.get("MLWARDEN_TABLES") == "off" or not _DATA.exists():
        return {"classes": {}, "functions": [], "aliases": {}, "legacy": {}, "versions": {}}
    doc: dict[str, Any] = json.loads(gzip.decompress(_DATA.read_bytes()))
    doc["functions"] = frozenset(doc.get("functions", ()))
    return doc


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
