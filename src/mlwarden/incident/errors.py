"""Incident-response failures the caller can fix: one line each."""

from __future__ import annotations


class IncidentError(Exception):
    pass


class TraceInputError(IncidentError):
    """A bad query, or a source (fleet results, SBOM, provenance file) that cannot be read."""


class RestoreError(IncidentError):
    """Nothing to restore to, or the target cannot be moved."""
