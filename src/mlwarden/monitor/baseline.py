"""What the monitor enforces: the approved state, read only from signed documents.

* a deployment (``mlwarden deploy``): DEST/deployment.json names the release; the release's
  signed ML-BOM lists its files (and, when deployed with ``--environment``, the serving
  environment's distributions). Re-read whenever deployment.json changes;
* a signed BOM and the directory it describes;
* a model-manifest.yaml and the directories holding its models;
* for the Python environment: the libraries of a signed BOM (name, version and the sha256
  of each distribution's RECORD, which lists every installed file with its hash).

A BOM whose signature does not verify yields an invalid baseline (an alert of its own),
never a silently empty one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.sbom.errors import SbomError
from mlwarden.signing.statement import Trust

MAX_BOM_BYTES = 256 << 20


@dataclass(frozen=True)
class RootBaseline:
    root: Path
    files: Mapping[str, str | None]  # repository path -> sha256
    label: str


@dataclass(frozen=True)
class Library:
    name: str
    version: str | None
    record_sha256: str | None


@dataclass(frozen=True)
class Baseline:
    roots: tuple[RootBaseline, ...] = ()
    libraries: Mapping[str, Library] | None = None  # None: no approved environment
    label: str = ""
    reload_on: tuple[Path, ...] = ()  # files whose change means the approval changed
    errors: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for r in self.roots:
            h.update(f"{r.root}\0".encode())
            for p, s in sorted(r.files.items()):
                h.update(f"{p}\0{s}\n".encode())
        for n, lib in sorted((self.libraries or {}).items()):
            h.update(f"lib {n} {lib.version} {lib.record_sha256}\n".encode())
        return h.hexdigest()


def _bom_libraries(doc: Mapping[str, Any]) -> dict[str, Library]:
    from packaging.utils import canonicalize_name

    libs: dict[str, Library] = {}
    for c in doc.get("components") or []:
        if not isinstance(c, dict) or c.get("type") != "library":
            continue
        purl = str(c.get("purl") or "")
        if not purl.startswith("pkg:pypi/"):
            continue
        rec = next((p.get("value") for p in c.get("properties") or []
                    if isinstance(p, dict) and p.get("name") == "mlwarden:record-sha256"),
                   None)
        name = str(canonicalize_name(str(c.get("name", ""))))
        libs[name] = Library(name, c.get("version"), rec if isinstance(rec, str) else None)
    return libs


def read_signed_bom(bom: Path, signature: Path, trust: Trust) -> \
        tuple[dict[str, str | None], dict[str, Library], str, str]:
    """(files, libraries, model@version label, signer) of a BOM whose signature verified;
    SbomError otherwise."""
    from mlwarden.sbom.sign import verify_bom_signature
    from mlwarden.sbom.verify import bom_files

    res = verify_bom_signature(bom, signature, trust)
    if not res.ok:
        tried = "; ".join(res.tried)
        raise SbomError(f"{bom}: signature does not verify: {res.error}"
                        + (f" ({tried})" if tried else ""))
    data = bom.read_bytes()[: MAX_BOM_BYTES + 1]
    if len(data) > MAX_BOM_BYTES:
        raise SbomError(f"{bom}: larger than {MAX_BOM_BYTES} bytes")
    files, name, version = bom_files(data)
    try:
        doc = json.loads(data)
    except ValueError:
        doc = {}
    libs = _bom_libraries(doc) if isinstance(doc, dict) else {}
    signer = ", ".join(res.identities) or str(res.method)
    return files, libs, f"{name or '?'}@{(version or '?')[:12]}", signer


@dataclass
class Sources:
    """Everything the command line named; ``load()`` turns it into a Baseline."""

    trust: Trust
    deployments: list[Path] = field(default_factory=list)
    boms: list[tuple[Path, Path, Path]] = field(default_factory=list)  # bom, sig, dir
    manifest: Path | None = None
    manifest_models: list[tuple[str, Path]] = field(default_factory=list)
    env_boms: list[tuple[Path, Path]] = field(default_factory=list)  # bom, sig

    def load(self) -> Baseline:
        from mlwarden.deploy import DeployError, read_record

        roots: list[RootBaseline] = []
        libs: dict[str, Library] = {}
        have_env = False
        errors: list[str] = []
        labels: list[str] = []
        reload_on: list[Path] = []
        for d in self.deployments:
            reload_on.append(d / "deployment.json")
            try:
                rec = read_record(d)
                files, dl, label, signer = read_signed_bom(rec.sbom, rec.signature,
                                                           self.trust)
            except (DeployError, SbomError, OSError) as exc:
                errors.append(f"deployment {d}: {exc}")
                continue
            roots.append(RootBaseline(rec.model_dir, files,
                                      f"deployment {rec.name}: {rec.repo}@{rec.commit[:12]} "
                                      f"(BOM signed by {signer})"))
            labels.append(f"{rec.name}={rec.repo}@{rec.commit[:12]}")
            if rec.environment:
                have_env = True
                libs.update(dl)
        for bom, sig, directory in self.boms:
            try:
                files, _bl, label, signer = read_signed_bom(bom, sig, self.trust)
            except (SbomError, OSError) as exc:
                errors.append(f"{bom}: {exc}")
                continue
            roots.append(RootBaseline(directory, files, f"{label} from {bom} (signed by "
                                                        f"{signer})"))
            labels.append(label)
        if self.manifest is not None:
            from mlwarden.manifest import ManifestError
            from mlwarden.manifest import load as load_manifest

            reload_on.append(self.manifest)
            try:
                m = load_manifest(self.manifest, missing_ok=False)
            except ManifestError as exc:
                errors.append(str(exc))
                m = None
            for repo, directory in self.manifest_models:
                entry = m.get(repo) if m is not None else None
                if entry is None:
                    errors.append(f"{repo} is not in {self.manifest}")
                    continue
                roots.append(RootBaseline(directory, {p: f.sha256 for p, f in
                                                      entry.files.items()},
                                          f"{repo}@{entry.commit[:12]} pinned in "
                                          f"{self.manifest}"))
                labels.append(f"{repo}@{entry.commit[:12]}")
        for bom, sig in self.env_boms:
            try:
                _, el, _, _ = read_signed_bom(bom, sig, self.trust)
            except (SbomError, OSError) as exc:
                errors.append(f"{bom}: {exc}")
                continue
            have_env = True
            libs.update(el)
        return Baseline(tuple(roots), libs if have_env else None, ", ".join(labels),
                        tuple(reload_on), tuple(errors))


def python_site_dirs(python: str) -> list[Path]:
    """site-packages directories of another interpreter (without importing anything of ours
    into it)."""
    import subprocess

    code = ("import json,site,sys;d=[p for p in site.getsitepackages()];"
            "u=site.getusersitepackages();d+=[u] if isinstance(u,str) else [];"
            "print(json.dumps(d))")
    try:
        out = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True,
                             timeout=60, check=True)
        dirs = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SbomError(f"{python}: cannot ask it for its site-packages: {exc}") from None
    return [Path(d) for d in dirs if isinstance(d, str) and os.path.isdir(d)]


def check_sites(dirs: Sequence[Path]) -> list[Path]:
    out = []
    for d in dirs:
        if not d.is_dir():
            raise SbomError(f"{d}: no such site-packages directory")
        out.append(d.resolve())
    return out


def python_path(python: str) -> list[str]:
    """sys.path of another interpreter: where its distributions are found."""
    import subprocess

    try:
        out = subprocess.run([python, "-I", "-c", "import json,sys;print(json.dumps(sys.path))"],
                             capture_output=True, text=True, timeout=60, check=True)
        paths = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SbomError(f"{python}: cannot ask it for its sys.path: {exc}") from None
    return [p for p in paths if isinstance(p, str) and p]
