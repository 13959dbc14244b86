"""The facts of one training run and their in-toto / SLSA Provenance v1 form.

A BuildRecord is what ``mlwarden attest``, ``Recorder`` and the transformers callback all
produce; ``to_statement`` is the one place that turns it into a Statement, so the three give
the same record for the same run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import mlwarden

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://mlwarden.dev/attest/training/v1"
LEVEL_URI = "https://mlwarden.dev/attest/slsa-build-level"
KIND = "mlwarden:kind"
# Kinds of resolved dependency, in the order they are listed.
KINDS = ("source", "code", "config", "dataset", "base-model", "container-image",
         "interpreter", "distribution", "input")


@dataclass(frozen=True)
class Artifact:
    """An output of the run: a subject of the statement."""

    name: str  # path relative to the working directory, '/'-separated
    sha256: str
    size: int


@dataclass(frozen=True)
class Dependency:
    """A resolvedDependency: one ResourceDescriptor with its kind in the annotations."""

    kind: str
    name: str | None = None
    uri: str | None = None
    digest: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, Any] = field(default_factory=dict)

    def descriptor(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.uri:
            d["uri"] = self.uri
        if self.name:
            d["name"] = self.name
        if self.digest:
            d["digest"] = dict(self.digest)
        d["annotations"] = {KIND: self.kind, **dict(self.annotations)}
        return d


@dataclass(frozen=True)
class BuilderInfo:
    id: str
    platform: str  # github-actions | gitlab-ci | local
    hosted: bool  # a hosted build platform (not a self-managed runner or a laptop)
    invocation_id: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Level:
    """The SLSA Build level the record supports, with the reasons and what the next level
    would need."""

    level: int
    reasons: tuple[str, ...]
    unmet: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "reasons": list(self.reasons), "unmet": list(self.unmet)}


@dataclass(frozen=True)
class BuildRecord:
    command: tuple[str, ...]
    working_directory: str  # relative to the source root when inside it
    subjects: tuple[Artifact, ...]
    dependencies: tuple[Dependency, ...]
    builder: BuilderInfo
    started: float
    finished: float
    exit_code: int
    source_uri: str | None = None  # git+https://host/org/repo@ref, digest in the source dep
    level: Level = Level(1, ())
    capture: Mapping[str, Any] = field(default_factory=dict)  # methods, ignored counts
    parameters: Mapping[str, Any] = field(default_factory=dict)  # extra externalParameters


def timestamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dirhash(files: Iterable[tuple[str, str]]) -> str:
    """One digest for a set of files: sha256 of ``sha256sum``-style lines, sorted by path."""
    lines = "".join(f"{sha}  {path}\n" for path, sha in sorted(files, key=lambda x: x[0]))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def to_statement(rec: BuildRecord) -> dict[str, Any]:
    deps = sorted(rec.dependencies, key=lambda d: (KINDS.index(d.kind) if d.kind in KINDS
                                                  else len(KINDS), d.name or d.uri or ""))
    external: dict[str, Any] = {"command": list(rec.command),
                                "workingDirectory": rec.working_directory}
    if rec.source_uri:
        external["source"] = rec.source_uri
    configs = [d.name for d in deps if d.kind == "config" and d.name]
    if configs:
        external["configFiles"] = configs
    external.update(dict(rec.parameters))
    builder: dict[str, Any] = {"id": rec.builder.id,
                               "version": {"mlwarden": mlwarden.__version__}}
    metadata: dict[str, Any] = {"startedOn": timestamp(rec.started),
                                "finishedOn": timestamp(rec.finished)}
    if rec.builder.invocation_id:
        metadata["invocationId"] = rec.builder.invocation_id
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {
                "builderPlatform": rec.builder.platform,
                "hostedBuilder": rec.builder.hosted,
                **({"builderDetails": dict(rec.builder.details)} if rec.builder.details
                   else {}),
                "exitCode": rec.exit_code,
                "capture": dict(rec.capture),
            },
            "resolvedDependencies": [d.descriptor() for d in deps],
        },
        "runDetails": {
            "builder": builder,
            "metadata": metadata,
            "byproducts": [{"uri": LEVEL_URI, "annotations": rec.level.to_dict()}],
        },
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": a.name, "digest": {"sha256": a.sha256}}
                    for a in sorted(rec.subjects, key=lambda a: a.name)],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": predicate,
    }


@lru_cache(maxsize=1)
def slsa_schema() -> dict[str, Any]:
    text = resources.files("mlwarden.provenance").joinpath(
        "schema/slsa-provenance-v1.schema.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def schema_errors(stmt: Mapping[str, Any]) -> list[str]:
    """Where ``stmt`` breaks the SLSA Provenance v1 statement schema (empty: valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(slsa_schema())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(stmt), key=lambda e: list(e.absolute_path))]


def validate_statement(stmt: Mapping[str, Any], schema: bool = False) -> None:
    """in-toto-attestation's Statement and ResourceDescriptor checks, and a strict parse of
    the predicate into the official SLSA Provenance v1 protobuf (unknown fields, wrong types
    and malformed timestamps are errors); ValueError if invalid. ``schema`` also checks the
    JSON schema (jsonschema's import costs seconds, too much after every training run; the
    tests check every record against it)."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    try:
        pb = json_format.ParseDict(dict(stmt), statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
    except (json_format.ParseError, ValueError) as exc:
        raise ValueError(f"not a valid in-toto Statement: {exc}") from None
    if stmt.get("predicateType") != SLSA_PROVENANCE_V1:
        raise ValueError(f"predicate type is not {SLSA_PROVENANCE_V1}")
    try:
        prov = json_format.ParseDict(stmt.get("predicate") or {}, provenance_pb2.Provenance(),
                                     ignore_unknown_fields=False)
        for d in (*prov.build_definition.resolved_dependencies,
                  *prov.run_details.byproducts):
            ResourceDescriptor.copy_from_pb(d).validate()
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise ValueError(f"not valid SLSA Provenance v1: {exc}") from None
    if not prov.build_definition.build_type or not prov.run_details.builder.id:
        raise ValueError("not valid SLSA Provenance v1: buildType and builder.id are required")
    if schema:
        errors = schema_errors(stmt)
        if errors:
            raise ValueError("not valid SLSA Provenance v1: " + "; ".join(errors[:5]))


def subjects_of(stmt: Mapping[str, Any]) -> dict[str, str]:
    """Subject name -> sha256 (subjects without a sha256 are left out)."""
    out: dict[str, str] = {}
    for s in stmt.get("subject") or []:
        if isinstance(s, dict) and isinstance(s.get("name"), str) and \
                isinstance((s.get("digest") or {}).get("sha256"), str):
            out[s["name"]] = s["digest"]["sha256"].lower()
    return out


def dependencies_of(stmt: Mapping[str, Any]) -> list[dict[str, Any]]:
    pred = stmt.get("predicate") if isinstance(stmt.get("predicate"), dict) else {}
    bd = pred.get("buildDefinition") if isinstance(pred, dict) else None
    deps = bd.get("resolvedDependencies") if isinstance(bd, dict) else None
    return [d for d in deps if isinstance(d, dict)] if isinstance(deps, list) else []


def kind_of(dep: Mapping[str, Any]) -> str:
    ann = dep.get("annotations")
    k = ann.get(KIND) if isinstance(ann, dict) else None
    return k if isinstance(k, str) else "input"
