"""Agent memory and instruction-file integrity: discover, content-check, seal and verify,
and authenticated encryption of the files agents load as instructions (CLAUDE.md,
AGENTS.md, .cursorrules, MCP configs, ...).

``read_instructions(path, key)`` is the API for agent wrappers: it returns decrypted
instructions only after they authenticate.
"""

from __future__ import annotations

from typing import Any

__all__ = ["InvalidCiphertext", "MemoryGuardError", "read_instructions"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (for its rules) must not pull in cryptography.
    if name == "read_instructions":
        from mlwarden.memory.crypt import read_instructions

        return read_instructions
    if name in ("InvalidCiphertext", "MemoryGuardError"):
        from mlwarden.memory import errors

        return getattr(errors, name)
    raise AttributeError(name)
