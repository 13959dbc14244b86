"""An installed environment, read through importlib.metadata: only .dist-info/.egg-info
metadata files are read; no installed package is imported."""

from __future__ import annotations

import importlib.metadata as md
import sys

from mlwarden.deps.model import Dep, Parsed


def parse_installed(site_dirs: list[str] | None = None) -> Parsed:
    """Distributions on ``site_dirs`` (default: this interpreter's sys.path)."""
    label = "installed:" + (",".join(site_dirs) if site_dirs else sys.prefix)
    parsed = Parsed(label, "installed", deployment=True)
    seen: set[str] = set()
    dists = md.distributions(path=site_dirs) if site_dirs else md.distributions()
    for dist in dists:
        try:
            raw = dist.metadata["Name"]
            version = dist.version
        except Exception:
            continue
        if not raw or not version:
            continue
        name = Dep.canonical(raw)
        if name in seen:  # first on the path wins, as for the import system
            continue
        seen.add(name)
        parsed.deps.append(Dep(name=name, raw_name=raw, path=label, specifier=f"=={version}",
                               version=version, origin="installed"))
    return parsed
