"""Rules of ``mlwarden deps inspect``."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

# setuptools' own .pth line (distutils-precedence.pth): known and harmless.
KNOWN_PTH_LINES = frozenset({
    "import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os.environ.get(var, 'local') == "
    "'local'; enabled and __import__('_distutils_hack').add_shim(); ",
    "import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os.environ.get(var, 'local') == "
    "'local'; enabled and __import__('_distutils_hack').add_shim();",
    "import _virtualenv",
})

CMDCLASS = rule(
    "pkg-cmdclass", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "setup.py or [tool.setuptools] replaces a setuptools command",
    "Custom install/develop/egg_info/build commands run arbitrary code when the package is "
    "installed from source. Read the command classes before installing.",
)
IN_TREE_BACKEND = rule(
    "pkg-in-tree-backend", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Build backend loaded from the package itself (backend-path)",
    "Building the sdist imports code shipped inside it; that code runs with the installer's "
    "rights. Prefer wheels, or review the backend module.",
)
NETWORK = rule(
    "pkg-network", Verdict.SUSPICIOUS, Severity.HIGH,
    "Install-time or import-time code opens network connections",
    "Packages have no reason to reach the network when installed or imported; this is how "
    "payloads are fetched and data is exfiltrated.",
)
PROCESS = rule(
    "pkg-process", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Install-time or import-time code spawns processes",
    "Common in build scripts (git describe, compilers); unusual on import. Check what runs.",
)
SECRETS = rule(
    "pkg-secrets", Verdict.SUSPICIOUS, Severity.HIGH,
    "Code reads secrets, SSH keys, credential files or the whole environment",
    "Reading ~/.ssh, cloud credentials, tokens or dumping os.environ at install or import "
    "time is the first half of credential theft (torchtriton read SSH keys and env vars).",
)
EXFILTRATION = rule(
    "pkg-exfiltration", Verdict.MALICIOUS, Severity.CRITICAL,
    "Code reads secrets and opens network connections",
    "Reading credentials and talking to the network in the same install/import-time code "
    "is the shape of an exfiltration payload.",
)
DYNAMIC_EXEC = rule(
    "pkg-dynamic-exec", Verdict.SUSPICIOUS, Severity.HIGH,
    "exec/eval/compile of a computed string at install or import time",
    "Dynamic code defeats review; check where the string comes from.",
)
OBFUSCATED_EXEC = rule(
    "pkg-obfuscated-exec", Verdict.MALICIOUS, Severity.CRITICAL,
    "Decodes or downloads code and executes it",
    "exec(base64/zlib/marshal/hex-decoded data) or exec of a downloaded body hides a payload "
    "from review; legitimate packages do not do this.",
)
AGENT_MEMORY = rule(
    "pkg-agent-memory", Verdict.MALICIOUS, Severity.CRITICAL,
    "Writes coding-agent memory or instruction files",
    "CLAUDE.md, AGENTS.md, .cursorrules, ~/.claude and similar files steer coding agents; a "
    "package that writes them at install or import time is planting instructions.",
)
OUTSIDE_WRITE = rule(
    "pkg-outside-write", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Install-time or import-time code writes outside the package (home or system paths)",
    "Writes to ~ or /etc at install/import time modify the host, not the package.",
)
CONDITIONAL_TRIGGER = rule(
    "pkg-conditional-trigger", Verdict.SUSPICIOUS, Severity.HIGH,
    "Risky behaviour runs only under a condition (CI variable, date, host or user)",
    "Payloads hide from sandboxes and developers by firing only in CI, after a date or on "
    "chosen hosts.",
)
PTH_EXEC = rule(
    "pkg-pth-exec", Verdict.SUSPICIOUS, Severity.MEDIUM,
    ".pth file with an executable 'import' line",
    "site.py executes such lines at every interpreter start, for every program, before any "
    "user code. Known setuptools/virtualenv lines are not reported.",
)
UNREADABLE = rule(
    "pkg-unreadable", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Part of the package could not be read or parsed",
    "Corrupt archive, a file over the size bound, or source that is not Python 3: that "
    "part was not analysed, so the result is not clean.",
)
NOTHING = rule(
    "pkg-nothing-to-inspect", Verdict.CLEAN, Severity.INFO,
    "No install-time or import-time code found",
)
