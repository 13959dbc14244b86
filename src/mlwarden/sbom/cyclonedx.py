"""CycloneDX 1.6 ML-BOM. cyclonedx-python-lib builds and serializes everything it models;
we add only what it lacks (the model card and component ``data``), then validate the result
with its strict 1.6 JSON-schema validator. An invalid BOM is an error, never output."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import mlwarden
from mlwarden.sbom.environment import Library
from mlwarden.sbom.errors import SbomValidationError
from mlwarden.sbom.inventory import ModelInventory

MODEL_REF = "model"
CARD_REF = "model-card"
HUB = "https://huggingface.co"


def dataset_ref(name: str) -> str:
    return f"dataset:{name}"


def _license_factory() -> Any:
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # cyclonedx-python-lib < 11
        from cyclonedx.factory.license import LicenseFactory
    return LicenseFactory()


def _hub_purl(repo: str) -> Any:
    from packageurl import PackageURL

    org, _, name = repo.rpartition("/")
    return PackageURL("huggingface", org or None, name)


def to_cyclonedx(inv: ModelInventory, libraries: Sequence[Library] = ()) -> str:
    from cyclonedx.model import (
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        Property,
        XsUri,
    )
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    algs = {"sha256": HashAlgorithm.SHA_256, "sha384": HashAlgorithm.SHA_384,
            "sha512": HashAlgorithm.SHA_512, "sha1": HashAlgorithm.SHA_1,
            "md5": HashAlgorithm.MD5}
    card = inv.card
    files = [
        Component(
            type=ComponentType.FILE, name=f.path, bom_ref=f"file:{f.path}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=f.sha256)] if f.sha256 else [],
            properties=[Property(name="mlwarden:verdict", value=f.verdict),
                        Property(name="mlwarden:format", value=f.format),
                        *([Property(name="mlwarden:size", value=str(f.size))]
                          if f.size is not None else []),
                        *[Property(name="mlwarden:rule", value=r) for r in f.rules]])
        for f in inv.files]
    ancestors = [Component(type=ComponentType.MACHINE_LEARNING_MODEL, name=b.rpartition("/")[2],
                           group=b.rpartition("/")[0] or None, bom_ref=f"base-model:{b}",
                           purl=_hub_purl(b),
                           external_references=[ExternalReference(
                               type=ExternalReferenceType.DISTRIBUTION,
                               url=XsUri(f"{HUB}/{b}"))])
                 for b in card.base_models]
    props = [Property(name="mlwarden:verdict", value=inv.verdict),
             Property(name="mlwarden:scanner-version", value=inv.scanner_version),
             Property(name="mlwarden:source", value=inv.source),
             *[Property(name="mlwarden:repository-finding", value=r)
               for r in inv.repository_findings]]
    if inv.approved is not None:
        props.append(Property(name="mlwarden:approved", value=str(inv.approved).lower()))
    if card.error:
        props.append(Property(name="mlwarden:model-card-error", value=card.error))
    refs = []
    if inv.org:
        refs.append(ExternalReference(
            type=ExternalReferenceType.DISTRIBUTION,
            url=XsUri(f"{HUB}/{inv.name}" + (f"/tree/{inv.commit}" if inv.commit else ""))))
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL, name=inv.short_name, group=inv.org,
        version=inv.commit, bom_ref=MODEL_REF,
        purl=PackageURL("huggingface", inv.org, inv.short_name, inv.commit),
        licenses=[_license_factory().make_from_string(card.license)] if card.license else [],
        properties=props, components=files, external_references=refs,
        pedigree=Pedigree(ancestors=ancestors) if ancestors else None,
        tags=list(card.tags) or None)
    datasets = [Component(type=ComponentType.DATA, name=d, bom_ref=dataset_ref(d),
                          external_references=[ExternalReference(
                              type=ExternalReferenceType.DISTRIBUTION,
                              url=XsUri(f"{HUB}/datasets/{d}"))])
                for d in card.datasets]
    libs = [Component(type=ComponentType.LIBRARY, name=lib.name, version=lib.version,
                      bom_ref=lib.purl, purl=PackageURL("pypi", None, lib.name, lib.version),
                      hashes=[HashType(alg=algs[a], content=h) for a, h in lib.hashes
                              if a in algs],
                      properties=[Property(name="mlwarden:source", value=lib.source),
                                  *[Property(name=k, value=v) for k, v in lib.properties]])
            for lib in libraries]

    bom = Bom()
    bom.metadata.component = model
    bom.metadata.tools.components.add(Component(
        type=ComponentType.APPLICATION, name="mlwarden", version=mlwarden.__version__,
        bom_ref="tool:mlwarden", purl=PackageURL("pypi", None, "mlwarden",
                                                 mlwarden.__version__)))
    for c in [*datasets, *libs]:
        bom.components.add(c)
    # The model depends on the data it was trained on and on its runtime libraries.
    bom.register_dependency(model, [*datasets, *libs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = JsonV1Dot6(bom).output_as_string()
    doc = json.loads(text)
    _add_what_the_library_lacks(doc, inv)
    out = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    validate_cyclonedx(out)
    return out


def _add_what_the_library_lacks(doc: dict[str, Any], inv: ModelInventory) -> None:
    card = inv.card
    model = doc["metadata"]["component"]
    params: dict[str, Any] = {}
    if card.task:
        params["task"] = card.task
    if inv.model_type:
        params["architectureFamily"] = inv.model_type
    if inv.architecture:
        params["modelArchitecture"] = inv.architecture
    if card.datasets:
        params["datasets"] = [{"ref": dataset_ref(d)} for d in card.datasets]
    model_card: dict[str, Any] = {"bom-ref": CARD_REF}
    if params:
        model_card["modelParameters"] = params
    metrics = [{"type": m.type, "value": m.value,
                **({"slice": m.dataset} if m.dataset else {})} for m in card.results]
    # Metrics the card names without a value (`metrics: [accuracy]`): the type alone.
    metrics += [{"type": name} for name in card.metrics
                if not any(m.type == name for m in card.results)]
    if metrics:
        model_card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    model["modelCard"] = model_card
    for comp in doc.get("components", []):
        if comp.get("type") == "data":
            name = comp["name"]
            comp["data"] = [{"type": "dataset", "name": name,
                             "contents": {"url": f"{HUB}/datasets/{name}"}}]


def validate_cyclonedx(text: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise SbomValidationError(f"generated CycloneDX BOM does not validate against the "
                                  f"1.6 schema: {str(error)[:500]}")
