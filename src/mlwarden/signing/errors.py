"""Two kinds of failure: the caller gave something unusable, or the signature is bad."""

from __future__ import annotations


class SigningError(Exception):
    """Base class: a message fit for one line of output."""


class SigningInputError(SigningError):
    """Missing or unreadable model, key, certificate or signature file; bad options."""


class SignatureFormatError(SigningError):
    """The signature file is not a model-signing bundle. Counts as a failed verification."""
