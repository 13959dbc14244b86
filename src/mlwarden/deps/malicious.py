"""Known-malicious package names and releases, shipped as package data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class Malicious:
    name: str
    summary: str
    source: str
    releases: tuple[str, ...] = ()  # empty: every release of the name

    def matches(self, version: str | None) -> bool | None:
        """True/False for a known version; None when only the name is known (unpinned)."""
        if not self.releases:
            return True
        if version is None:
            return None
        try:
            v = Version(version)
            return any(Version(r) == v for r in self.releases)
        except InvalidVersion:
            return version in self.releases


@lru_cache(maxsize=1)
def known() -> dict[str, Malicious]:
    raw = json.loads(resources.files("mlwarden.deps").joinpath("data/malicious.json")
                     .read_text(encoding="utf-8"))
    out: dict[str, Malicious] = {}
    for p in raw["packages"]:
        name = str(canonicalize_name(p["name"]))
        out[name] = Malicious(name, p["summary"], p.get("source", ""),
                              tuple(p.get("releases", ())))
    return out


def lookup(name: str) -> Malicious | None:
    return known().get(str(canonicalize_name(name)))
