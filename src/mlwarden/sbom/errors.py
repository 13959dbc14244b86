"""BOM failures: bad input from the caller, or a document that failed its schema."""

from __future__ import annotations


class SbomError(Exception):
    pass


class SbomInputError(SbomError):
    """Missing or unreadable model, store, lock file; bad options."""


class SbomValidationError(SbomError):
    """The generated document does not validate: never written, never printed."""
