"""What a BOM describes: a model's files with sha256 and scanner verdicts, its identity on the
Hub, and its model card. Built from a directory or from a commit in the store; the files are
scanned by our own static scanner (nothing is imported or unpickled)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import mlwarden
from mlwarden.report.model import FileResult, Report, Verdict
from mlwarden.sbom.errors import SbomInputError
from mlwarden.sbom.modelcard import ModelCard, read_model_card

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SKIP_PREFIXES = (".git/", ".cache/huggingface/")
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    path: str  # repository path, '/'-separated
    sha256: str | None
    size: int | None
    verdict: str
    format: str
    rules: tuple[str, ...]  # rule ids of non-informational findings


@dataclass(frozen=True)
class ModelInventory:
    name: str  # NAME, or ORG/NAME
    commit: str | None
    files: tuple[ModelFile, ...]
    verdict: str  # worst verdict of every scanned file
    scanner_version: str
    card: ModelCard
    architecture: str | None = None  # config.json architectures[0]
    model_type: str | None = None  # config.json model_type
    source: str = ""  # the directory, or "store:ORG/NAME@COMMIT"
    repository_findings: tuple[str, ...] = ()
    approved: bool | None = None  # store commits only

    @property
    def org(self) -> str | None:
        return self.name.split("/", 1)[0] if "/" in self.name else None

    @property
    def short_name(self) -> str:
        return self.name.split("/", 1)[-1]

    @property
    def purl(self) -> str:
        from packageurl import PackageURL

        return str(PackageURL("huggingface", self.org, self.short_name, self.commit))


def _files_from_report(report: Report, root_display: str) -> tuple[list[ModelFile], list[str]]:
    files: list[ModelFile] = []
    repo_findings: list[str] = []
    for r in report.files:
        if r.parent is not None:  # archive members: their verdicts roll up into the file
            continue
        rel = os.path.relpath(r.path, root_display).replace(os.sep, "/")
        if r.format == "repository" and r.sha256 is None and r.size is None:
            repo_findings.extend(f"{f.rule}: {f.message}" for f in r.findings)
            continue
        if rel.startswith(_SKIP_PREFIXES):
            continue
        files.append(_model_file(r, rel))
    return sorted(files, key=lambda f: f.path), repo_findings


def _model_file(r: FileResult, rel: str) -> ModelFile:
    rules = tuple(dict.fromkeys(f.rule for f in r.findings if f.verdict is not Verdict.CLEAN))
    return ModelFile(rel, r.sha256, r.size, r.verdict.value, r.format, rules)


def _config(directory: Path) -> tuple[str | None, str | None]:
    try:
        with (directory / "config.json").open("rb") as fh:
            doc = json.loads(fh.read(MAX_CONFIG_BYTES))
    except (OSError, ValueError, RecursionError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    arch = doc.get("architectures")
    first = arch[0] if isinstance(arch, list) and arch and isinstance(arch[0], str) else None
    mt = doc.get("model_type")
    return first, mt if isinstance(mt, str) else None


def _guess_identity(directory: Path) -> tuple[str, str | None]:
    """A Hugging Face cache snapshot (models--ORG--NAME/snapshots/COMMIT) names itself."""
    parts = directory.resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and _COMMIT.fullmatch(parts[-1]) \
            and parts[-3].startswith("models--"):
        return parts[-3][len("models--"):].replace("--", "/"), parts[-1]
    return directory.resolve().name, None


def scan_directory(directory: Path) -> Report:
    from mlwarden.scan.engine import InputError, ScanOptions, scan_paths

    try:
        return scan_paths([str(directory)], ScanOptions(hash="always"))
    except InputError as exc:
        raise SbomInputError(str(exc)) from exc


def from_directory(directory: str | os.PathLike[str], name: str | None = None,
                   commit: str | None = None) -> ModelInventory:
    d = Path(directory)
    if not d.is_dir():
        raise SbomInputError(f"{d}: not a directory")
    if not os.access(d, os.R_OK | os.X_OK):
        raise SbomInputError(f"{d}: not readable")
    guessed, guessed_commit = _guess_identity(d)
    report = scan_directory(d)
    files, repo_findings = _files_from_report(report, str(d))
    arch, model_type = _config(d)
    return ModelInventory(
        name=name or guessed, commit=commit or guessed_commit, files=tuple(files),
        verdict=report.verdict.value, scanner_version=mlwarden.__version__,
        card=read_model_card(d / "README.md"), architecture=arch, model_type=model_type,
        source=str(d), repository_findings=tuple(repo_findings))


def from_store(store_path: str | os.PathLike[str], ref: str) -> ModelInventory:
    """``ORG/NAME@REV`` in the store. The commit's blobs are fetched from the blob backend
    (hard-linked when they are local files) into a private staging directory under their
    repository paths, so the scanner sees the same tree a client downloads."""
    from mlwarden.store import Store, StoreError

    repo, _, rev = ref.partition("@")
    try:
        store = Store.open(store_path, create=False)
    except StoreError as exc:
        raise SbomInputError(str(exc)) from exc
    try:
        c = store.resolve(repo, rev or "main", approved_only=False)
        entries = store.files(repo, c.id)
        with store.staging() as stage:
            tree = stage / "model"
            for e in entries:
                store.blobs.fetch_to(e.sha256, tree / e.path)
            inv = from_directory(tree, name=repo, commit=c.id)
    except StoreError as exc:
        raise SbomInputError(str(exc)) from exc
    except OSError as exc:
        raise SbomInputError(f"cannot read {ref} from the store: {exc.strerror or exc}") \
            from exc
    finally:
        store.close()
    return ModelInventory(**{**inv.__dict__, "source": f"store:{repo}@{c.id}",
                             "approved": c.approved})
