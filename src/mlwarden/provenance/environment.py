"""The installed distributions of a training environment, listed fast.

Read straight from each ``*.dist-info`` directory on the process's sys.path (the first on
the path wins, as for the import system): name and version from METADATA's header lines,
the artifact hash from PEP 610 ``direct_url.json``, and RECORD, whose sha256 is recorded the
way ``mlwarden.sbom`` records it (text, UTF-8) so a record and a BOM of the same environment
agree, and whose first path parts say which top-level names each distribution installed.
importlib.metadata's email parser would cost a second of CPU for a large environment, and
this runs beside the training process on every attested run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAX_META = 1 << 20
_HEADER = re.compile(rb"^(Name|Version):[ \t]*(.*?)[ \t]*$", re.MULTILINE)


def canonical(name: str) -> str:
    """PEP 503 normalisation (as packaging.utils.canonicalize_name)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class InstalledDist:
    name: str  # canonical
    version: str
    site: str  # the sys.path entry it was found in
    record_sha256: str | None
    hashes: dict[str, str] = field(default_factory=dict)
    tops: set[str] = field(default_factory=set)


def _headers(path: str) -> tuple[str, str] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_META)
    except OSError:
        return None
    head = data.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n")
    found = {m.group(1): m.group(2) for m in _HEADER.finditer(head)}
    name, version = found.get(b"Name"), found.get(b"Version")
    if not name or not version:
        return None
    return name.decode("utf-8", "replace"), version.decode("utf-8", "replace")


def _direct_hashes(info: str) -> dict[str, str]:
    try:
        with open(os.path.join(info, "direct_url.json"), "rb") as fh:
            doc = json.loads(fh.read(MAX_META))
    except (OSError, ValueError):
        return {}
    archive = doc.get("archive_info") if isinstance(doc, dict) else None
    if not isinstance(archive, dict):
        return {}
    out: dict[str, str] = {}
    hashes = archive.get("hashes")
    if isinstance(hashes, dict):
        out.update({str(k).lower(): str(v).lower() for k, v in hashes.items()})
    h = archive.get("hash")
    if isinstance(h, str) and "=" in h:
        alg, _, value = h.partition("=")
        out.setdefault(alg.lower(), value.lower())
    return out


def scan(paths: Sequence[str]) -> list[InstalledDist]:
    seen: dict[str, InstalledDist] = {}
    for entry in paths:
        base = os.path.abspath(entry or ".")
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for n in names:
            if not n.endswith((".dist-info", ".egg-info")):
                continue
            info = os.path.join(base, n)
            meta = os.path.join(info, "METADATA" if n.endswith(".dist-info") else "PKG-INFO")
            got = _headers(meta)
            if got is None:
                continue
            name = canonical(got[0])
            if name in seen:
                continue
            record_sha = None
            tops: set[str] = set()
            try:
                with open(os.path.join(info, "RECORD"), encoding="utf-8") as fh:
                    record = fh.read()
                record_sha = hashlib.sha256(record.encode("utf-8")).hexdigest()
                for line in record.splitlines():
                    first = line.split(",", 1)[0].split("/", 1)[0]
                    if first and not first.endswith((".dist-info", ".egg-info")):
                        tops.add(first)
            except (OSError, UnicodeDecodeError):
                pass
            seen[name] = InstalledDist(name, got[1], base, record_sha, _direct_hashes(info),
                                       tops)
    return sorted(seen.values(), key=lambda d: d.name)


def owners(dists: Iterable[InstalledDist], used_files: Iterable[str]) -> set[str]:
    """Names of the distributions that installed any of ``used_files`` (reading metadata,
    as version checks do for every distribution, is not using one)."""
    by_site: dict[str, dict[str, set[str]]] = {}
    for d in dists:
        site = by_site.setdefault(d.site, {})
        for t in d.tops:
            site.setdefault(t, set()).add(d.name)
    prefixes = sorted(((b.rstrip("/") + "/", tops) for b, tops in by_site.items()),
                      key=lambda x: -len(x[0]))
    out: set[str] = set()
    seen: set[str] = set()
    for f in used_files:  # absolute paths, as the probe records them
        for prefix, tops in prefixes:
            if f.startswith(prefix):
                first = f[len(prefix):].split("/", 1)[0]
                key = prefix + first
                if key not in seen:
                    seen.add(key)
                    out.update(tops.get(first, ()))
                break
    return out
