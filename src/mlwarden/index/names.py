"""Project names, distribution filenames and the internal namespace (names and patterns)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_PATTERN_RE = re.compile(r"^[a-z0-9*?][a-z0-9._*?-]*$")
# What may appear in a served filename: no separators, no control characters, no quoting.
_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}$")
SDIST_SUFFIXES = (".tar.gz", ".zip")


class NameError_(ValueError):
    """A project name, filename or pattern that cannot be used."""


def canonical(name: str) -> str:
    """PEP 503 normalised name; raises for anything that is not a valid project name."""
    if not _NAME_RE.match(name) or len(name) > 200:
        raise NameError_(f"not a valid project name: {name!r}")
    return str(canonicalize_name(name))


def is_valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and len(name) <= 200


@dataclass(frozen=True)
class DistName:
    """What a distribution's filename says about it."""

    filename: str
    project: str  # canonical
    version: str  # normalised (str(Version))
    kind: str  # "wheel" | "sdist"


def parse_filename(filename: str) -> DistName:
    """Wheels and sdists (.tar.gz, .zip) only: eggs, .exe and .tar.bz2 are not served."""
    if not _FILENAME_RE.match(filename) or ".." in filename:
        raise NameError_(f"not a distribution filename: {filename!r}")
    try:
        if filename.endswith(".whl"):
            name, ver, _, _ = parse_wheel_filename(filename)
            return DistName(filename, str(name), str(ver), "wheel")
        if filename.endswith(SDIST_SUFFIXES):
            name, ver = parse_sdist_filename(filename)
            return DistName(filename, str(name), str(ver), "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise NameError_(f"not a distribution filename: {filename!r} ({exc})") from None
    raise NameError_(f"{filename!r}: only wheels (.whl) and sdists (.tar.gz, .zip) are served")


def version_key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        return Version("0")


@dataclass(frozen=True)
class Namespace:
    """Internal names: exact names and shell-style patterns (``acme-*``), all canonical.

    A pattern is matched against the canonical name, so ``acme-*`` also covers
    ``Acme_Tools`` and ``acme.tools`` (which pip would request as ``acme-tools``).
    """

    names: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()

    @staticmethod
    def parse(entries: list[str] | tuple[str, ...]) -> Namespace:
        names: set[str] = set()
        patterns: list[str] = []
        for raw in entries:
            text = raw.strip()
            if any(c in text for c in "*?"):
                pat = re.sub(r"[-_.]+", "-", text.lower())
                if not _PATTERN_RE.match(pat):
                    raise NameError_(f"not a valid name pattern: {raw!r}")
                patterns.append(pat)
            else:
                names.add(canonical(text))
        return Namespace(frozenset(names), tuple(patterns))

    def __contains__(self, name: str) -> bool:
        canon = str(canonicalize_name(name))
        return canon in self.names or any(fnmatch.fnmatchcase(canon, p) for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.names or self.patterns)

    def describe(self) -> list[str]:
        return sorted(self.names) + list(self.patterns)
