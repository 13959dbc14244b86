"""What a fleet run scans: repository URLs from a file, an organisation on a Hub, every
repository of our own registry, or every repository under an S3 prefix."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlwarden.scan.sources.polite import endpoint_of, polite_call

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*(@\S+)?$")


class FleetInputError(Exception):
    """An input that cannot be listed (bad file, unknown organisation, no access)."""


@dataclass(frozen=True, order=True)
class RepoTask:
    """One repository to scan. ``url`` is an hf://, s3:// or gs:// URL; ``endpoint`` is the
    Hub-compatible endpoint for hf:// (None: huggingface_hub's own, HF_ENDPOINT)."""

    url: str
    endpoint: str | None = None

    @property
    def key(self) -> str:
        """The result key: the URL, qualified by a non-default endpoint."""
        return self.url if self.endpoint is None else f"{self.url} ({self.endpoint})"


def from_file(path: Path, endpoint: str | None = None) -> Iterator[RepoTask]:
    """One repository per line: ``ORG/NAME[@REV]`` or a URL; '#' starts a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetInputError(f"{path}: cannot read: {exc}") from None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("hf://", "s3://", "gs://")):
            yield RepoTask(line, endpoint if line.startswith("hf://") else None)
        elif _REPO_ID.match(line):
            yield RepoTask(f"hf://{line}", endpoint)
        else:
            raise FleetInputError(f"{path}:{n}: not a repository id or URL: {line[:80]!r}")


def from_hub(author: str | None, endpoint: str | None = None) -> Iterator[RepoTask]:
    """Every model repository of ``author`` (every one when None) on a Hub-compatible
    endpoint: the Hub, a mirror, or ``mlwarden serve`` (our own registry)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    where = endpoint_of(str(api.endpoint))
    try:
        models = polite_call(where, lambda: [m.id for m in api.list_models(author=author)],
                             f"list models of {author or 'the registry'}")
    except Exception as exc:
        raise FleetInputError(f"cannot list {author or 'repositories'} at {api.endpoint}: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
    for repo in sorted(set(models)):
        yield RepoTask(f"hf://{repo}", endpoint)


def from_prefix(prefix: str, depth: int = 2) -> Iterator[RepoTask]:
    """Every directory ``depth`` levels below an s3:// or gs:// prefix is a repository
    (2: the Hub's ORG/NAME layout)."""
    from mlwarden.scan.sources.objects import endpoint_for, filesystem

    scheme, _, path = prefix.partition("://")
    if scheme not in ("s3", "gs") or not path.strip("/"):
        raise FleetInputError(f"{prefix}: expected s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")
    try:
        fs = filesystem(scheme)
    except Exception as exc:
        raise FleetInputError(str(exc)) from None
    base = path.strip("/")
    where = endpoint_for(scheme, fs)
    level = [base]
    try:
        for _ in range(depth):
            nxt: list[str] = []
            for d in level:
                def ls(d: str = d) -> list[dict[str, object]]:
                    return list(fs.ls(d, detail=True, refresh=True))

                entries = polite_call(where, ls, f"list {scheme}://{d}")
                nxt.extend(str(e["name"]).strip("/") for e in entries
                           if e.get("type") == "directory")
            level = nxt
    except FileNotFoundError:
        raise FleetInputError(f"{prefix}: no such bucket or prefix") from None
    except Exception as exc:
        raise FleetInputError(f"{prefix}: listing failed: {type(exc).__name__}: "
                              f"{str(exc)[:200]}") from None
    for d in sorted(level):
        yield RepoTask(f"{scheme}://{d}")
