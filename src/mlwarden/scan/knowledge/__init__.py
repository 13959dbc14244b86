"""What mlwarden knows about the callables a pickle can import.

``dangerous``: callables and modules that give code execution, process spawning, imports,
file or network I/O, each with a reason and a public reference. ``allowlist``: callables that
ordinary model files need, each with the uses (reference, reconstruction, call) in which it
is safe. ``lookup`` combines both into one answer for a ``module.qualname``.
"""

from mlwarden.scan.knowledge.lookup import Knowledge, Use, exists, lookup, undefined

__all__ = ["Knowledge", "Use", "exists", "lookup", "undefined"]
