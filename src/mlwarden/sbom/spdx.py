"""SPDX 3.0.1 JSON-LD with the AI and Dataset profiles, built with spdx-python-model. The
library type-checks every property on assignment and refuses to serialize an object missing
a required property; we then read the document back to prove it round-trips."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Sequence
from typing import Any

import mlwarden
from mlwarden.sbom.environment import Library
from mlwarden.sbom.errors import SbomValidationError
from mlwarden.sbom.inventory import ModelInventory

HUB = "https://huggingface.co"
SPDX_CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"


def to_spdx(inv: ModelInventory, libraries: Sequence[Library] = (),
            created: dt.datetime | None = None) -> str:
    from spdx_python_model import v3_0_1 as m

    base = f"https://spdx.org/spdxdocs/mlwarden-{uuid.uuid4()}/"
    counter = 0

    def sid(kind: str) -> str:
        nonlocal counter
        counter += 1
        return f"{base}{kind}-{counter}"

    ci = m.CreationInfo()
    ci.specVersion = "3.0.1"
    ci.created = (created or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    agent = m.Organization(spdxId=sid("agent"), name="mlwarden", creationInfo=ci)
    tool = m.Tool(spdxId=sid("tool"), name=f"mlwarden {mlwarden.__version__}", creationInfo=ci)
    ci.createdBy = [agent]
    ci.createdUsing = [tool]
    elements: list[Any] = [agent, tool]

    def add(obj: Any) -> Any:
        elements.append(obj)
        return obj

    card = inv.card
    model = add(m.ai_AIPackage(spdxId=sid("model"), name=inv.name, creationInfo=ci))
    model.software_primaryPurpose = m.software_SoftwarePurpose.model
    model.software_packageUrl = inv.purl
    model.software_downloadLocation = (f"{HUB}/{inv.name}" if inv.org else "NOASSERTION")
    if inv.commit:
        model.software_packageVersion = inv.commit
    if card.task:
        model.ai_informationAboutApplication = f"task: {card.task}"
    if inv.architecture or inv.model_type:
        model.ai_typeOfModel = [t for t in (inv.model_type, inv.architecture) if t]
    if card.results:
        model.ai_metric = [m.DictionaryEntry(
            key=f"{r.type}" + (f" [{r.dataset}]" if r.dataset else ""), value=r.value)
            for r in card.results]
    if card.license:
        model.comment = f"license (model card): {card.license}"
    model.summary = f"mlwarden scan verdict: {inv.verdict} (scanner {inv.scanner_version})"

    def relate(frm: Any, rtype: Any, to: list[Any]) -> None:
        if to:
            add(m.Relationship(spdxId=sid("relationship"), creationInfo=ci, from_=frm, to=to,
                               relationshipType=rtype))

    files = []
    for f in inv.files:
        fo = add(m.software_File(spdxId=sid("file"), name=f.path, creationInfo=ci))
        if f.sha256:
            fo.verifiedUsing = [m.Hash(algorithm=m.HashAlgorithm.sha256, hashValue=f.sha256)]
        fo.comment = f"mlwarden verdict: {f.verdict}; format: {f.format}"
        statement = f"mlwarden {inv.scanner_version} scan verdict: {f.verdict}" + (
            f" (rules: {', '.join(f.rules)})" if f.rules else "")
        add(m.Annotation(spdxId=sid("annotation"), creationInfo=ci, subject=fo,
                         annotationType=m.AnnotationType.review, statement=statement))
        files.append(fo)
    relate(model, m.RelationshipType.contains, files)
    add(m.Annotation(spdxId=sid("annotation"), creationInfo=ci, subject=model,
                     annotationType=m.AnnotationType.review,
                     statement=f"mlwarden {inv.scanner_version} scan verdict: {inv.verdict}"))

    datasets = []
    for d in card.datasets:
        ds = add(m.dataset_DatasetPackage(spdxId=sid("dataset"), name=d, creationInfo=ci))
        ds.software_primaryPurpose = m.software_SoftwarePurpose.data
        ds.software_downloadLocation = f"{HUB}/datasets/{d}"
        ds.dataset_datasetType = [m.dataset_DatasetType.noAssertion]
        datasets.append(ds)
    relate(model, m.RelationshipType.trainedOn, datasets)

    for b in card.base_models:
        bm = add(m.ai_AIPackage(spdxId=sid("base-model"), name=b, creationInfo=ci))
        bm.software_primaryPurpose = m.software_SoftwarePurpose.model
        bm.software_downloadLocation = f"{HUB}/{b}"
        bm.software_packageUrl = str(_hub_purl(b))
        relate(bm, m.RelationshipType.ancestorOf, [model])

    libs = []
    for lib in libraries:
        p = add(m.software_Package(spdxId=sid("package"), name=lib.name, creationInfo=ci))
        p.software_primaryPurpose = m.software_SoftwarePurpose.library
        p.software_packageUrl = lib.purl
        if lib.version:
            p.software_packageVersion = lib.version
        algs = {"sha256": m.HashAlgorithm.sha256, "sha384": m.HashAlgorithm.sha384,
                "sha512": m.HashAlgorithm.sha512, "sha1": m.HashAlgorithm.sha1,
                "md5": m.HashAlgorithm.md5}
        hashes = [m.Hash(algorithm=algs[a], hashValue=h) for a, h in lib.hashes if a in algs]
        if hashes:
            p.verifiedUsing = hashes
        libs.append(p)
    relate(model, m.RelationshipType.dependsOn, libs)

    sbom = m.software_Sbom(spdxId=sid("sbom"), creationInfo=ci, rootElement=[model],
                           element=[e for e in elements if e not in (agent, tool)],
                           software_sbomType=[m.software_SbomType.analyzed])
    doc = m.SpdxDocument(spdxId=sid("document"), creationInfo=ci, rootElement=[sbom],
                         element=[sbom, *elements], name=f"ML-BOM of {inv.name}",
                         dataLicense="https://spdx.org/licenses/CC0-1.0",
                         profileConformance=[m.ProfileIdentifierType.core,
                                             m.ProfileIdentifierType.software,
                                             m.ProfileIdentifierType.ai,
                                             m.ProfileIdentifierType.dataset])
    objset = m.SHACLObjectSet()
    for o in [doc, sbom, *elements]:
        objset.add(o)
    buf = io.BytesIO()
    try:
        m.JSONLDSerializer().write(objset, buf, indent=2)
    except (ValueError, TypeError) as exc:
        raise SbomValidationError(f"SPDX document is incomplete: {exc}") from exc
    data = buf.getvalue()
    validate_spdx(data, expected=len(elements) + 2)
    return data.decode("utf-8") + "\n"


def validate_spdx(data: bytes, expected: int | None = None) -> None:
    """Read the document back with the library's own deserializer (types and links)."""
    import json

    from spdx_python_model import v3_0_1 as m

    try:
        doc = json.loads(data)
        if doc.get("@context") != SPDX_CONTEXT:
            raise ValueError(f"@context is not {SPDX_CONTEXT}")
        objset = m.SHACLObjectSet()
        m.JSONLDDeserializer().read(io.BytesIO(data), objset)
    except Exception as exc:
        raise SbomValidationError(f"SPDX document does not round-trip: {exc}") from exc
    count = sum(1 for o in objset.foreach() if isinstance(o, m.Element))
    if expected is not None and count != expected:
        raise SbomValidationError(f"SPDX document round-trip lost elements "
                                  f"({count} of {expected})")


def _hub_purl(repo: str) -> Any:
    from packageurl import PackageURL

    org, _, name = repo.rpartition("/")
    return PackageURL("huggingface", org or None, name)
