"""Errors of the memory commands: each carries a one-line message for the user."""

from __future__ import annotations


class MemoryGuardError(Exception):
    """A problem the user must fix (bad key, bad path); the CLI prints it and exits 4."""


class KeyProblem(MemoryGuardError):
    """The key is missing, malformed, or in a place it must not be."""


class InvalidCiphertext(MemoryGuardError):
    """Encrypted content failed authentication or is not ours: never use its bytes."""
