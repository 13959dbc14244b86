"""Rules cited when a deployment is checked against a signed ML-BOM (``verify --sbom``)."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

VERIFIED = rule(
    "sbom-verified", Verdict.CLEAN, Severity.INFO,
    "The target matches the signed BOM",
    "The BOM's signature verifies and every file's sha256 matches; nothing is extra or "
    "missing.")
SIGNATURE = rule(
    "sbom-signature", Verdict.MALICIOUS, Severity.CRITICAL,
    "The BOM's signature does not verify against a trusted signer",
    "The BOM was changed after signing, or signed by someone not trusted; the target is "
    "not compared against an untrusted inventory.")
MISMATCH = rule(
    "sbom-file-mismatch", Verdict.MALICIOUS, Severity.CRITICAL,
    "A file's sha256 differs from the signed BOM",
    "Any substitution changes the hash: the deployed file is not the one that was approved.")
MISSING = rule(
    "sbom-file-missing", Verdict.MALICIOUS, Severity.HIGH,
    "A file the signed BOM lists is missing",
    "The deployment lacks a file that was approved as part of it.")
EXTRA = rule(
    "sbom-file-extra", Verdict.MALICIOUS, Severity.HIGH,
    "A file that the signed BOM does not list",
    "Something was added to the deployment after it was approved (an added pickle or "
    "Python file can run code when the model loads).")
UNHASHED = rule(
    "sbom-file-unhashed", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "The BOM lists a file without a sha256",
    "It cannot be compared; regenerate the BOM (`mlwarden sbom` always hashes).")
SPECIAL = rule(
    "sbom-file-special", Verdict.MALICIOUS, Severity.HIGH,
    "A symbolic link or special file in the target",
    "A deployment holds regular files only; a link can point anywhere after approval.")
