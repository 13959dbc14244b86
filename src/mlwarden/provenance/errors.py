"""Failures the caller can fix: one line each, never a traceback."""

from __future__ import annotations


class ProvenanceError(Exception):
    """Base class."""


class AttestError(ProvenanceError):
    """The run could not be attested (bad options, unusable key, unwritable output)."""


class ProvenanceInputError(ProvenanceError):
    """Missing or unreadable model, record or key; a bad trust configuration."""
