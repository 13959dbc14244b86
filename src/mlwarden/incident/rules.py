"""Rules of ``mlwarden trace`` answers (each affected thing is one result)."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

DEPLOYMENT = rule(
    "trace-affected-deployment", Verdict.SUSPICIOUS, Severity.CRITICAL,
    "A deployment serves an affected commit",
    "Isolate it (revoke the commit in the registry), restore it to the last commit whose "
    "signed BOM and provenance verify (`mlwarden restore`), then verify it.")
COMMIT = rule(
    "trace-affected-commit", Verdict.SUSPICIOUS, Severity.HIGH,
    "A store commit contains or was built from the traced item",
    "Revoke it (`mlwarden approve REPO COMMIT --revoke`) so no client can download it.")
TAG = rule(
    "trace-affected-tag", Verdict.SUSPICIOUS, Severity.HIGH,
    "A branch or tag points at an affected commit",
    "Clients resolving this ref get the affected commit; restore the tag.")
RUN = rule(
    "trace-training-run", Verdict.SUSPICIOUS, Severity.HIGH,
    "A training run used or produced the traced item",
    "Every output of the run (its provenance subjects) is affected.")
EXTERNAL = rule(
    "trace-fleet-result", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "A fleet-scan result matches the traced item",
    "A repository outside the store (as the fleet scan saw it) contains the item.")
RECORD = rule(
    "trace-record", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "A signed record (approval log, ML-BOM) names the traced item",
    "The evidence trail: what was promoted, approved or deployed with it.")
