"""Rules cited by provenance verification (``verify-provenance``, the guard, the policy)."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

VERIFIED = rule(
    "provenance-verified", Verdict.CLEAN, Severity.INFO,
    "The provenance verified",
    "Signed by a trusted signer, built by an accepted builder from the expected source, and "
    "every model file is a subject with the same sha256.")
SIGNATURE = rule(
    "provenance-signature", Verdict.MALICIOUS, Severity.CRITICAL,
    "The provenance signature does not verify against a trusted key, CA or identity",
    "The record was altered after signing, or signed by someone the verifier does not "
    "trust. Nothing in it can be believed.")
UNSIGNED = rule(
    "provenance-unsigned", Verdict.SUSPICIOUS, Severity.HIGH,
    "The provenance is not signed",
    "An unsigned record can be written by anyone; verification requires a signature.")
MISSING = rule(
    "provenance-missing", Verdict.SUSPICIOUS, Severity.HIGH,
    "No provenance record where one is required",
    "The guard or the policy requires provenance for this model and none was found.")
MALFORMED = rule(
    "provenance-malformed", Verdict.UNSCANNABLE, Severity.HIGH,
    "The provenance is not an in-toto Statement with the SLSA Provenance v1 predicate",
    "It does not parse, or it breaks the SLSA v1 schema.")
BUILDER = rule(
    "provenance-builder", Verdict.MALICIOUS, Severity.HIGH,
    "The provenance names a builder that is not accepted",
    "builder.id must equal one of the accepted builders (an accepted id without @ref "
    "accepts any ref of that builder).")
SOURCE = rule(
    "provenance-source", Verdict.MALICIOUS, Severity.HIGH,
    "The model was built from another source repository, ref or commit",
    "The source dependency (git+URL@ref with its gitCommit) must match --source, and "
    "--source-ref / --source-commit when given.")
DIRTY = rule(
    "provenance-dirty-source", Verdict.SUSPICIOUS, Severity.HIGH,
    "The training code was not a clean commit",
    "Tracked files were modified, or code outside the commit ran; the commit does not "
    "identify the code. Accept with --allow-dirty.")
DATASET = rule(
    "provenance-dataset", Verdict.SUSPICIOUS, Severity.HIGH,
    "The model was trained on a dataset outside the allowed set",
    "Every dataset dependency's digest must be in the allowed set.")
SUBJECT_MISMATCH = rule(
    "provenance-subject-mismatch", Verdict.MALICIOUS, Severity.CRITICAL,
    "A model file differs from the output the provenance describes",
    "Its sha256 is not the subject's: the file was swapped or changed after training.")
NOT_A_SUBJECT = rule(
    "provenance-not-a-subject", Verdict.MALICIOUS, Severity.HIGH,
    "A model file is not an output of the attested run",
    "The file has no subject in the provenance: it was added after training.")
