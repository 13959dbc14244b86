"""Rules the airlock policy cites. Every allow/block decision names one of these."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

REQUIRE_SAFETENSORS = rule(
    "policy-require-safetensors", Verdict.SUSPICIOUS, Severity.HIGH,
    "Model ships only pickle weights",
    "Pickle weights (.bin, .pt, .pth, .ckpt, .pkl) can run code when loaded. The policy "
    "requires a safetensors copy of the weights; convert with `mlwarden convert` or add a "
    "pinned exception.")
ORG_BLOCKED = rule(
    "policy-org-blocked", Verdict.SUSPICIOUS, Severity.HIGH,
    "Organisation is on the policy's blocked list",
    "`blocked-orgs` in the policy names this organisation.")
ORG_NOT_ALLOWED = rule(
    "policy-org-not-allowed", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Organisation is not on the policy's allowed list",
    "`allowed-orgs` is set and does not name this organisation.")
TRUST_TIER = rule(
    "policy-trust-tier", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Organisation's trust tier is below the policy minimum",
    "Tiers: official (shipped list plus `official-orgs`), established (`established-orgs`), "
    "new (everything else). `min-trust` sets the lowest tier admitted.")
TYPOSQUAT = rule(
    "policy-typosquat", Verdict.SUSPICIOUS, Severity.HIGH,
    "Model id looks like a popular model or official organisation",
    "The id is a near miss (one or two edits, look-alike characters such as I/l or 0/o, "
    "Cyrillic letters, separator tricks) of a popular model id or an official organisation, "
    "without being it: a typical typosquat.")
UNPINNED = rule(
    "policy-unpinned", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Revision is not pinned to a commit",
    "`require-pinned` is set: pull a 40-hex commit id, or pin the model's commit in the "
    "manifest first; a branch or tag can move.")
REMOTE_CODE = rule(
    "policy-remote-code", Verdict.SUSPICIOUS, Severity.HIGH,
    "Repository ships code that trust_remote_code would execute, at an unreviewed commit",
    "Remote code is allowed only for a commit listed under `remote-code` in the policy "
    "(model, commit, reviewer).")
REMOTE_CODE_REVIEWED = rule(
    "policy-remote-code-reviewed", Verdict.CLEAN, Severity.INFO,
    "Remote code at a reviewed commit",
    "The policy's `remote-code` list approves this exact commit.")
SIZE_LIMIT = rule(
    "policy-size-limit", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "File or model exceeds the policy's size limit",
    "`max-file-size` / `max-total-size` in the policy.")
SCAN_MALICIOUS = rule(
    "policy-scan-malicious", Verdict.MALICIOUS, Severity.CRITICAL,
    "The scanner found malicious content",
    "A malicious file never reaches the store.")
SCAN_UNSCANNABLE = rule(
    "policy-scan-unscannable", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "The scanner could not fully analyse a file",
    "Blocked when `block-verdict` is unscannable (the default) or suspicious.")
SCAN_SUSPICIOUS = rule(
    "policy-scan-suspicious", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "The scanner found suspicious content",
    "Blocked when `block-verdict` is suspicious.")
EXCEPTION_APPLIED = rule(
    "policy-exception-applied", Verdict.CLEAN, Severity.INFO,
    "A pinned policy exception waived a decision",
    "The exception names the rule, the sha256 (or commit) it is pinned to, a justification, "
    "an approver and an expiry date.")
EXCEPTION_EXPIRED = rule(
    "policy-exception-expired", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "A policy exception has expired and no longer applies",
    "Renew it (new expiry, fresh approval) or fix the underlying problem.")
PROVENANCE = rule(
    "policy-provenance", Verdict.MALICIOUS, Severity.CRITICAL,
    "The model's provenance does not verify",
    "`[policy.provenance]` requires a signed SLSA provenance record from an accepted builder "
    "and source whose subjects are exactly the model's files; this one is unsigned or signed "
    "by an untrusted signer, names another builder or source, or does not describe the "
    "files (weights swapped after training).")
PROVENANCE_MISSING = rule(
    "policy-provenance-missing", Verdict.SUSPICIOUS, Severity.HIGH,
    "The model has no provenance record and the policy requires one",
    "`[policy.provenance]` (require = true) applies to this model; the record "
    "(`provenance.json` in the repository by default) is missing.")
PROVENANCE_VERIFIED = rule(
    "policy-provenance-verified", Verdict.CLEAN, Severity.INFO,
    "The model's provenance verified",
    "Signed by a trusted signer, from an accepted builder and source, describing exactly "
    "the model's files.")
