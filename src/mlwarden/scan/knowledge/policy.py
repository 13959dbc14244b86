"""What the user vouches for: classes admitted by exact name, and where library sources
are read from (in addition to the installed distributions).

Set once per scan by the engine (``configure``), or from the environment:
``MLWARDEN_ALLOW_CLASSES`` (comma-separated ``module.Class`` names) and
``MLWARDEN_SOURCE_PATH`` (directories, ``os.pathsep``-separated). A class admitted here is
treated as plain reconstruction (referenced, rebuilt by NEWOBJ + BUILD), never as a
callable: a pickle that calls it is still a call of an unlisted callable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KnowledgePolicy:
    allow_classes: frozenset[str] = field(default_factory=frozenset)
    source_roots: tuple[str, ...] = ()
    installed_sources: bool = True  # judge unknown names by their installed source


_current: KnowledgePolicy | None = None


def from_environment() -> KnowledgePolicy:
    classes = os.environ.get("MLWARDEN_ALLOW_CLASSES", "")
    roots = os.environ.get("MLWARDEN_SOURCE_PATH", "")
    return KnowledgePolicy(frozenset(c.strip() for c in classes.split(",") if c.strip()),
                           tuple(r for r in roots.split(os.pathsep) if r))


def current() -> KnowledgePolicy:
    global _current
    if _current is None:
        _current = from_environment()
        _apply(_current)
    return _current


def configure(policy: KnowledgePolicy) -> None:
    """Use ``policy`` for every lookup from now on (clears cached answers)."""
    global _current
    env = from_environment()
    _current = KnowledgePolicy(policy.allow_classes | env.allow_classes,
                               policy.source_roots + env.source_roots,
                               policy.installed_sources)
    _apply(_current)


def use(allow_classes: frozenset[str], source_roots: tuple[str, ...]) -> None:
    """The policy of one scan: these entries plus the environment's. A scan without
    entries goes back to the environment's policy instead of keeping an earlier scan's."""
    wanted = KnowledgePolicy(allow_classes, source_roots)
    if _current is None and not allow_classes and not source_roots:
        return  # current() will read the environment on first use
    env = from_environment()
    merged = KnowledgePolicy(allow_classes | env.allow_classes,
                             source_roots + env.source_roots, wanted.installed_sources)
    if merged != _current:
        configure(wanted)


def _apply(policy: KnowledgePolicy) -> None:
    from mlwarden.scan.knowledge import sources
    from mlwarden.scan.knowledge.lookup import danger_of, lookup, undefined

    sources.set_source_roots(list(policy.source_roots))
    lookup.cache_clear()
    danger_of.cache_clear()
    undefined.cache_clear()
