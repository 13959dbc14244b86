"""ML-BOMs (CycloneDX 1.6 and SPDX 3.0.1 AI/Dataset) of a model directory or store commit."""

from __future__ import annotations

import os
from collections.abc import Sequence

from mlwarden.sbom.environment import Library, from_lockfile, installed
from mlwarden.sbom.errors import SbomError, SbomInputError, SbomValidationError
from mlwarden.sbom.inventory import ModelInventory, from_directory, from_store

FORMATS = ("cyclonedx", "spdx")

__all__ = [
    "FORMATS", "Library", "ModelInventory", "SbomError", "SbomInputError",
    "SbomValidationError", "build_sbom", "from_directory", "from_lockfile", "from_store",
    "installed",
]


def build_sbom(model: str | os.PathLike[str], *, fmt: str = "cyclonedx",
               store: str | os.PathLike[str] | None = None, name: str | None = None,
               commit: str | None = None, environment: bool = False,
               lockfiles: Sequence[str | os.PathLike[str]] = ()) -> str:
    """The validated BOM text. ``model`` is a directory, or ``ORG/NAME@REV`` with ``store``."""
    if fmt not in FORMATS:
        raise SbomInputError(f"unknown BOM format {fmt!r}")
    inv = from_store(store, str(model)) if store is not None else \
        from_directory(model, name=name, commit=commit)
    libs: list[Library] = installed() if environment else []
    for lf in lockfiles:
        libs.extend(from_lockfile(lf))
    if fmt == "cyclonedx":
        from mlwarden.sbom.cyclonedx import to_cyclonedx

        return to_cyclonedx(inv, _unique(libs))
    from mlwarden.sbom.spdx import to_spdx

    return to_spdx(inv, _unique(libs))


def _unique(libs: list[Library]) -> list[Library]:
    """One component per purl (bom-refs must be unique); the first source wins."""
    seen: dict[str, Library] = {}
    for lib in libs:
        seen.setdefault(lib.purl, lib)
    return list(seen.values())
