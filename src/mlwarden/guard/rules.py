"""Rules the load guard cites when it refuses a load (GuardViolation messages)."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

HASH_MISMATCH = rule(
    "guard-hash-mismatch", Verdict.MALICIOUS, Severity.CRITICAL,
    "A model file's sha256 differs from the manifest at load time",
    "The file was changed after it was pulled and pinned; it is not opened.")
NOT_IN_MANIFEST = rule(
    "guard-not-in-manifest", Verdict.SUSPICIOUS, Severity.HIGH,
    "A model or file the manifest does not pin",
    "Only models pulled through the airlock (and listed in model-manifest.yaml) load.")
NOT_PINNED = rule(
    "guard-not-pinned", Verdict.SUSPICIOUS, Severity.HIGH,
    "A commit other than the pinned one",
    "The process asked for a revision of the model that the manifest does not pin.")
REMOTE_CODE = rule(
    "guard-remote-code", Verdict.SUSPICIOUS, Severity.HIGH,
    "trust_remote_code for a commit without a reviewed remote-code approval",
    "The manifest's remote_code entry (written by pull from the policy's remote-code "
    "reviews) must name this exact commit and a reviewer.")
UNSAFE_LOAD = rule(
    "guard-unsafe-load", Verdict.SUSPICIOUS, Severity.HIGH,
    "A load that could execute code from the file",
    "torch.load(weights_only=False), a custom pickle_module, or use_safetensors=False.")
SIGNATURE_MISSING = rule(
    "guard-signature-missing", Verdict.SUSPICIOUS, Severity.HIGH,
    "A model without a signature where the guard requires one",
    "The guard's signing configuration ([guard.signing], or `mlwarden run "
    "--require-signature`) requires a model signature; none was found for this model.")
SIGNATURE = rule(
    "guard-signature", Verdict.MALICIOUS, Severity.CRITICAL,
    "A model signature that does not verify against the configured identities",
    "The signature does not match the pinned files (tampered files or signature), or it "
    "was made by a key, CA or identity the configuration does not trust for this model. "
    "No file of the model is opened.")
PROVENANCE_MISSING = rule(
    "guard-provenance-missing", Verdict.SUSPICIOUS, Severity.HIGH,
    "A model without provenance where the guard requires it",
    "The guard's provenance configuration ([guard.provenance], or `mlwarden run "
    "--require-provenance`) requires a signed SLSA provenance record for this model; none "
    "was found.")
PROVENANCE = rule(
    "guard-provenance", Verdict.MALICIOUS, Severity.CRITICAL,
    "A model whose provenance does not verify",
    "The record is not signed by a trusted signer, names another builder or source, or its "
    "subjects are not the pinned files (weights swapped after training). No file of the "
    "model is opened.")
