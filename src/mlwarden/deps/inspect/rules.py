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
    "pkg-cmdclass", Verdict.CLEAN, Severity.INFO,
    "setup.py or [tool.setuptools] replaces a setuptools command",
    "Custom install/develop/egg_info/build commands run code when the package is installed "
    "from source. Their methods are analysed as install-time code (code-* findings).",
)
IN_TREE_BACKEND = rule(
    "pkg-in-tree-backend", Verdict.CLEAN, Severity.INFO,
    "Build backend loaded from the package itself (backend-path)",
    "Building the sdist imports code shipped inside it; that module and its PEP 517 hooks "
    "are analysed as install-time code (code-* findings).",
)
NATIVE_BINARY = rule(
    "pkg-native-binary", Verdict.CLEAN, Severity.INFO,
    "Bundled native binary",
    "An ELF, PE or Mach-O file in the package (extension modules, vendored libraries, "
    "launchers). Found by content, not by name. Context: what runs it is judged by the "
    "code-* rules.",
)
DISGUISED_BINARY = rule(
    "pkg-disguised-binary", Verdict.SUSPICIOUS, Severity.HIGH,
    "Native binary named like data, or native code in a pure-Python wheel",
    "An executable or library whose name says image, text or data, or an ELF/Mach-O file "
    "in a none-any wheel, is how droppers ship their second stage. Reference: GuardDog "
    "bundled_binary; Phylum reports of PyPI packages shipping disguised executables (2023).",
)
PTH_EXEC = rule(
    "pkg-pth-exec", Verdict.CLEAN, Severity.INFO,
    ".pth file with an executable 'import' line",
    "site.py executes such lines at every interpreter start, for every program, before any "
    "user code. Context: the line is analysed as start-up code (code-* findings; a process "
    "there is malicious). Known setuptools/virtualenv lines are not reported.",
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
