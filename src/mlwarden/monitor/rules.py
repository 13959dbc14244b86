"""Rules the runtime monitor alerts with."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

MODIFIED = rule(
    "monitor-file-modified", Verdict.MALICIOUS, Severity.CRITICAL,
    "A deployed file changed without an approved deployment",
    "Its sha256 is no longer the one in the deployment's signed ML-BOM (or manifest).")
ADDED = rule(
    "monitor-file-added", Verdict.MALICIOUS, Severity.HIGH,
    "A file appeared that no approved deployment lists",
    "Anything added to a model directory or to site-packages can be loaded or run.")
DELETED = rule(
    "monitor-file-deleted", Verdict.SUSPICIOUS, Severity.HIGH,
    "An approved file disappeared",
    "A file of the approved deployment is missing.")
PTH = rule(
    "monitor-pth-added", Verdict.MALICIOUS, Severity.CRITICAL,
    "A .pth file that no installed distribution's RECORD lists",
    "Python executes import lines of every .pth file in site-packages at every start-up: "
    "the classic persistence hook.")
PACKAGE_ADDED = rule(
    "monitor-package-added", Verdict.MALICIOUS, Severity.HIGH,
    "A distribution installed that the approved environment BOM does not list",
    "Someone installed a package into the serving environment after it was approved.")
PACKAGE_CHANGED = rule(
    "monitor-package-changed", Verdict.MALICIOUS, Severity.CRITICAL,
    "An installed distribution's RECORD differs from the approved environment BOM",
    "The distribution was reinstalled, upgraded or its RECORD edited; its files are no "
    "longer the approved ones.")
PACKAGE_REMOVED = rule(
    "monitor-package-removed", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "An approved distribution is no longer installed",
    "The environment lost a distribution the approved BOM lists.")
BYTECODE = rule(
    "monitor-bytecode-mismatch", Verdict.MALICIOUS, Severity.CRITICAL,
    "Cached bytecode that is not the compilation of its approved source",
    "Python loads a __pycache__ .pyc instead of the source when its header matches: a "
    "tampered .pyc runs other code than the reviewed .py.")
BYTECODE_UNVERIFIED = rule(
    "monitor-bytecode-unverified", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Cached bytecode of another Python version could not be compared with its source",
    "Run the monitor with the monitored environment's interpreter to compare bytecode with "
    "the source it claims to come from; the header was checked.")
BASELINE = rule(
    "monitor-baseline-invalid", Verdict.MALICIOUS, Severity.CRITICAL,
    "The approved deployment's BOM does not verify",
    "The signed ML-BOM (or its signature) of the deployment was changed or is missing: "
    "there is no trustworthy approved state to compare against.")
