"""Moved to mlwarden.util.importhooks (provenance capture uses it too); kept for imports."""

from mlwarden.util.importhooks import when_any_imported, when_imported

__all__ = ["when_any_imported", "when_imported"]
