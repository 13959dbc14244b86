"""Known exfiltration and staging endpoints (webhooks, paste sites, tunnels, out-of-band
interaction services), from the maintained data file ``data/endpoints.tsv``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

_HOST = re.compile(r"(?<![\w-])((?:[a-z0-9_-]{1,63}\.){1,12}[a-z]{2,24})(/[^\s'\"]{0,200})?",
                   re.I)
MAX_TEXT = 1 << 16


@dataclass(frozen=True)
class Endpoint:
    domain: str  # as listed, with its path prefix if any
    category: str  # webhook | paste | tunnel | oob | file-drop | telegram
    reference: str


@functools.cache
def _table() -> dict[str, list[tuple[str, Endpoint]]]:
    """host -> [(path prefix, endpoint)]"""
    text = resources.files("mlwarden.behaviour").joinpath("data/endpoints.tsv").read_text()
    out: dict[str, list[tuple[str, Endpoint]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        domain, category, reference = [*line.split("\t"), "", ""][:3]
        host, _, path = domain.partition("/")
        out.setdefault(host.lower(), []).append(
            (f"/{path}" if path else "", Endpoint(domain, category, reference)))
    return out


def endpoints() -> list[Endpoint]:
    return [e for entries in _table().values() for _, e in entries]


def endpoint_in(text: str) -> Endpoint | None:
    """The first listed endpoint a string names (a host or a subdomain of one)."""
    if "." not in text:
        return None
    table = _table()
    for m in _HOST.finditer(text[:MAX_TEXT]):
        labels = m.group(1).lower().split(".")
        path = (m.group(2) or "").lower()
        for i in range(len(labels) - 1):
            entries = table.get(".".join(labels[i:]))
            if not entries:
                continue
            for prefix, ep in entries:
                if not prefix or path.startswith(prefix):
                    return ep
    return None
