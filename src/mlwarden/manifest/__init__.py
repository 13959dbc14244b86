"""model-manifest.yaml read/write (atomic, locked, diff-friendly)."""

from mlwarden.manifest.model import (
    Manifest,
    ManifestError,
    ManifestFile,
    ModelEntry,
    load,
    loads,
    save,
    update,
)

__all__ = ["Manifest", "ManifestError", "ManifestFile", "ModelEntry", "load", "loads", "save",
           "update"]
