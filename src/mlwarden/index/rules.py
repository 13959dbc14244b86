"""Rules of the package index: why a file was refused, held back or reported."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

DEPENDENCY_CONFUSION = rule(
    "index-dependency-confusion", Verdict.MALICIOUS, Severity.CRITICAL,
    "An upstream project shares a name with the internal namespace",
    "Someone published a project under an internal name on the public index: a "
    "dependency-confusion attempt (or a defensive placeholder). The index never looks "
    "internal names up upstream and never serves the public project.",
)
NOT_ALLOWED = rule(
    "index-project-not-allowed", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Project not admitted by the policy (allowlist or denylist)",
    "Add it to [projects] allow (allowlist mode) or remove it from deny.",
)
VERSION_EXCLUDED = rule(
    "index-version-excluded", Verdict.SUSPICIOUS, Severity.LOW,
    "Release outside the policy's version constraint for this project",
    "[versions] in the policy file restricts which releases are admitted.",
)
TOO_YOUNG = rule(
    "index-too-young", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Release younger than the minimum release age",
    "Fresh releases are held back until they are [releases] minimum-age old: most "
    "malicious releases are found and removed within days. Approve one early with "
    "`mlwarden index approve` when a fix cannot wait.",
)
UNKNOWN_AGE = rule(
    "index-unknown-age", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "The upstream gives no upload time, so the minimum release age cannot be checked",
    "Neither PEP 700 upload-time nor a Last-Modified header was available: held, never "
    "admitted blind.",
)
YANKED = rule(
    "index-yanked", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Release yanked upstream (PEP 592)",
    "Yanked releases are broken or withdrawn; the policy refuses them.",
)
TYPOSQUAT = rule(
    "index-typosquat", Verdict.SUSPICIOUS, Severity.HIGH,
    "Project name is a typosquat of a popular package",
    "One typo, transposition, separator, affix or look-alike character away from a much "
    "more popular name (the shipped top-PyPI list).",
)
KNOWN_MALICIOUS = rule(
    "index-known-malicious", Verdict.MALICIOUS, Severity.CRITICAL,
    "Known-malicious project or release (bundled list)",
    "Published with a malicious payload according to public reports; never served.",
)
ADVISORY = rule(
    "index-advisory", Verdict.SUSPICIOUS, Severity.HIGH,
    "Release affected by a security advisory (bundled database)",
    "The policy's [releases] advisories setting decides: hold for review, refuse, or admit.",
)
HASH_MISMATCH = rule(
    "index-hash-mismatch", Verdict.MALICIOUS, Severity.CRITICAL,
    "Downloaded bytes do not match the upstream's published sha256",
    "The file changed between the index page and the download (a compromised mirror, CDN "
    "or man in the middle). Refused; nothing is kept.",
)
NO_UPSTREAM_HASH = rule(
    "index-no-upstream-hash", Verdict.UNSCANNABLE, Severity.HIGH,
    "The upstream publishes no sha256 for this file",
    "Without a published hash the download cannot be verified: never admitted.",
)
BAD_DISTRIBUTION = rule(
    "index-bad-distribution", Verdict.UNSCANNABLE, Severity.HIGH,
    "File is not a valid wheel or sdist for the name and version it claims",
    "The filename, the archive and its metadata must agree; a mismatch is how a file "
    "smuggles in another project's code.",
)
REVIEWED = rule(
    "index-reviewed", Verdict.CLEAN, Severity.INFO,
    "A reviewer decided this file (mlwarden index approve/refuse)",
    "The decision, its author and note are in the signed approval log.",
)
