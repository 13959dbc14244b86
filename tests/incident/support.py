"""Signed provenance records of synthetic training runs (the real Trainer run is covered by
the provenance tests), and a store to trace and restore in."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from pathlib import Path

from mlwarden.provenance.levels import assess
from mlwarden.provenance.record import Artifact, BuilderInfo, BuildRecord, Dependency, to_statement
from mlwarden.signing.statement import sign_statement

BUILDER = "https://github.com/acme/train/.github/workflows/train.yml@refs/heads/main"
SOURCE_URI = "git+https://github.com/acme/train@refs/heads/main"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record(key: Path, run: str, outputs: Mapping[str, bytes], *, datasets: Mapping[str, bytes]
           = {}, dists: Mapping[str, str] = {}, commit: str = "c" * 40,
           builder: str = BUILDER) -> bytes:
    """A signed SLSA record of run ``run`` that read ``datasets`` and wrote ``outputs``."""
    deps = [Dependency("source", None, SOURCE_URI, {"gitCommit": commit}, {"dirty": False}),
            *(Dependency("dataset", n, None, {"sha256": sha(d)}, {"size": len(d)})
              for n, d in datasets.items()),
            *(Dependency("distribution", n, f"pkg:pypi/{n}@{v}", {}, {"used": True})
              for n, v in dists.items())]
    b = BuilderInfo(builder, "github-actions", True, f"https://github.com/acme/train/actions/"
                                                     f"runs/{run}/attempts/1")
    rec = BuildRecord(("python", "train.py"), ".", tuple(Artifact(n, sha(d), len(d))
                                                         for n, d in outputs.items()),
                      tuple(deps), b, time.time() - 60, time.time(), 0, SOURCE_URI,
                      assess(b, "key"))
    return sign_statement(to_statement(rec), key=str(key))


def model_dir(root: Path, files: Mapping[str, bytes], record_bytes: bytes | None) -> Path:
    root.mkdir(parents=True)
    for n, d in files.items():
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(d)
    if record_bytes is not None:
        (root / "provenance.json").write_bytes(record_bytes)
    return root
