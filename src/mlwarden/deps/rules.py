"""Rules of ``mlwarden deps``: one catalogue so the audit's verdict policy reads in one place."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

PARSE_ERROR = rule(
    "deps-parse-error", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "A dependency input could not be parsed",
    "The file is malformed, too large, or includes a file that does not exist. Its "
    "dependencies were not checked, so the result is unscannable rather than clean.",
)
UNPINNED = rule(
    "deps-unpinned", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Deployment requirement without an exact version pin",
    "A range or a bare name lets every install resolve a different (possibly hijacked or "
    "vulnerable) release. Pin with == and generate hashes (pip-compile --generate-hashes, "
    "uv pip compile --generate-hashes).",
)
MISSING_HASH = rule(
    "deps-missing-hash", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Deployment requirement or lock entry without a hash",
    "Without --hash, a compromised index or mirror can serve different bytes under the same "
    "version. Lock files normally carry hashes; an entry without one is not verified.",
)
URL_REQUIREMENT = rule(
    "deps-url-requirement", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Direct URL or VCS requirement that is not pinned by hash or commit",
    "A URL or branch can change under the same name. Pin a VCS requirement to a full commit "
    "sha and an archive URL with --hash or #sha256=.",
)
EXTRA_INDEX = rule(
    "deps-extra-index-url", Verdict.SUSPICIOUS, Severity.HIGH,
    "pip extra-index-url: every index is searched and the highest version wins",
    "This is the dependency-confusion setup of the torchtriton attack: a public package with "
    "an internal package's name and a higher version is installed instead. Use a single "
    "index that proxies PyPI, or uv with explicit indexes bound in [tool.uv.sources].",
)
UNSAFE_STRATEGY = rule(
    "deps-unsafe-index-strategy", Verdict.SUSPICIOUS, Severity.HIGH,
    "uv index-strategy searches several indexes for the same name",
    "unsafe-best-match (and unsafe-first-match) reintroduce pip's extra-index-url behaviour: "
    "a name published on a later index can win. Keep the default first-index strategy.",
)
INSECURE_INDEX = rule(
    "deps-insecure-index", Verdict.SUSPICIOUS, Severity.HIGH,
    "Package index over plain http or marked trusted-host",
    "Anyone on the network path can substitute packages. Use https and keep certificate "
    "verification on.",
)
INTERNAL_UNBOUND = rule(
    "deps-internal-unbound", Verdict.SUSPICIOUS, Severity.HIGH,
    "Internal package not bound to its index",
    "The resolver may take an internal name from the public index. Bind it: uv "
    "[tool.uv.sources] NAME = { index = \"internal\" } with an explicit index, or poetry "
    "source = \"internal\" with priority = \"explicit\".",
)
INTERNAL_PUBLIC = rule(
    "deps-internal-public", Verdict.SUSPICIOUS, Severity.CRITICAL,
    "Internal package name exists on the public index",
    "Someone registered the name publicly: either a defensive placeholder or a "
    "dependency-confusion payload. Verify the owner before any install that can reach it.",
)
LOOKUP_FAILED = rule(
    "deps-lookup-failed", Verdict.UNSCANNABLE, Severity.HIGH,
    "An online lookup could not run",
    "Network error, timeout or server error: the check did not happen, so the result fails "
    "closed instead of reporting 'nothing found'.",
)
TYPOSQUAT = rule(
    "deps-typosquat", Verdict.SUSPICIOUS, Severity.HIGH,
    "Name looks like a typosquat of a popular package",
    "The name is one typo, transposition, separator, py/python affix or look-alike "
    "character away from a much more popular package and is not itself popular. Check the "
    "spelling and the project's owner.",
)
KNOWN_MALICIOUS = rule(
    "deps-known-malicious", Verdict.MALICIOUS, Severity.CRITICAL,
    "Known-malicious package name or release",
    "The name (or this exact release) was published with a malicious payload according to "
    "public reports. Remove it and treat machines that installed it as compromised.",
)
VULNERABLE = rule(
    "deps-vulnerable", Verdict.SUSPICIOUS, Severity.HIGH,
    "Pinned, locked or installed version is affected by an advisory",
    "Upgrade to the fixed version named in the message. The bundled database includes ML "
    "security fixes that never got a CVE.",
)
RANGE_VULNERABLE = rule(
    "deps-range-admits-vulnerable", Verdict.SUSPICIOUS, Severity.LOW,
    "Version range admits releases affected by an advisory",
    "The constraint does not exclude affected versions, so an old or pinned-elsewhere "
    "resolution can install them. Raise the lower bound to the fixed version.",
)
ADVISORY_NOTE = rule(
    "deps-advisory-note", Verdict.CLEAN, Severity.INFO,
    "Advisory that applies only in a specific setup",
    "For example a huggingface_hub issue that needs a malicious or http HF_ENDPOINT: "
    "`mlwarden doctor` reports it when the environment is exposed.",
)
SOLE_MLWARDEN_INDEX = rule(
    "deps-sole-mlwarden-index", Verdict.CLEAN, Severity.INFO,
    "The mlwarden package index is the only package source",
    "The safe setting: internal names never reach the public index, and every public file "
    "was verified and inspected before it was admitted (`mlwarden index serve`).",
)
INDEX_BYPASS = rule(
    "deps-mlwarden-index-bypass", Verdict.SUSPICIOUS, Severity.HIGH,
    "Another package source sits beside the mlwarden package index",
    "Packages from the other source (an extra index, find-links, PyPI as the implicit "
    "default) are neither inspected nor protected from dependency confusion. Make the "
    "mlwarden index the only index (index-url, uv default index, poetry primary source).",
)
