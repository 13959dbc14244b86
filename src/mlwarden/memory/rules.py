"""Every rule the memory commands emit: discovery, content checks, seal integrity, encryption.

One module so that ``mlwarden rules`` and docs/memory.md list the whole verdict policy of the
area in one place.
"""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

# ----------------------------------------------------------------------------- discovery

INSTRUCTION_FILE = rule(
    "memory-instruction-file", Verdict.CLEAN, Severity.INFO,
    "A file an agent loads as instructions or tool configuration",
    "Listed so that it can be reviewed and sealed; it is not a problem by itself.",
)
ENCRYPTED_FILE = rule(
    "memory-encrypted-file", Verdict.CLEAN, Severity.INFO,
    "An mlwarden-encrypted instruction file",
    "Its content is authenticated on decryption; it is not content-checked without the key.",
)
SPECIAL_FILE = rule(
    "memory-special-file", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "An instruction path is not a regular file (FIFO, device, socket or dangling link)",
    "Agents read these names as text files; anything else is unusual and was not read.",
)
TOO_LARGE = rule(
    "memory-too-large", Verdict.UNSCANNABLE, Severity.LOW,
    "The instruction file is larger than the content-check bound",
    "It was hashed and sealed but its content was not checked.",
)
READ_ERROR = rule(
    "memory-read-error", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "The instruction file could not be read",
    "Permissions or a race stopped the read; its content and integrity are unknown.",
)
WALK_LIMIT = rule(
    "memory-walk-limit", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Discovery stopped at the directory-entry bound",
    "The tree is larger than the bound; files beyond it were not discovered.",
)

# ----------------------------------------------------------------------------- content checks

UNICODE_TAG = rule(
    "memory-unicode-tag", Verdict.MALICIOUS, Severity.HIGH,
    "Invisible Unicode tag characters (U+E0000-E007F)",
    "Tag characters render as nothing but models read them as ASCII ('ASCII smuggling'). "
    "There is no legitimate reason for them in an instruction file.",
)
UNICODE_BIDI = rule(
    "memory-unicode-bidi", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Bidirectional override characters (U+202A-202E, U+2066-2069)",
    "They make displayed text differ from the text a model reads (Trojan Source).",
)
UNICODE_ZERO_WIDTH = rule(
    "memory-unicode-zero-width", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Zero-width characters (U+200B-200D, U+2060, U+FEFF after the start)",
    "Invisible in review, they can split keywords past filters or hide content.",
)
PIPE_TO_SHELL = rule(
    "memory-pipe-to-shell", Verdict.SUSPICIOUS, Severity.HIGH,
    "Downloads a script and runs it (curl | sh, wget | bash, iex(iwr ...))",
    "An agent following this runs whatever the remote host serves at that moment.",
)
EXFIL_URL = rule(
    "memory-exfiltration", Verdict.SUSPICIOUS, Severity.HIGH,
    "A URL to a non-allowlisted host next to secrets, credentials or environment words",
    "The shape of an instruction to send secrets somewhere. Allow the host with "
    "--allow-host if it is yours.",
)
BASE64_BLOB = rule(
    "memory-base64-blob", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "A long base64 blob in an instruction file",
    "Encoded payloads hide instructions or commands from a human reviewer.",
)
OVERRIDE = rule(
    "memory-instruction-override", Verdict.SUSPICIOUS, Severity.HIGH,
    "Text that tries to override earlier instructions or hide actions from the user",
    "'Ignore previous instructions', 'do not tell the user' and the like are the wording of "
    "injected instructions, not of project conventions.",
)
NOT_UTF8 = rule(
    "memory-not-utf8", Verdict.SUSPICIOUS, Severity.LOW,
    "The instruction file is not valid UTF-8",
    "Agents and reviewers may decode it differently; it was checked after lossy decoding.",
)
CONFIG_UNPARSEABLE = rule(
    "memory-config-unparseable", Verdict.UNSCANNABLE, Severity.LOW,
    "An agent or MCP configuration file is not valid JSON",
    "Its permissions and servers could not be checked.",
)
SHELL_SERVER = rule(
    "memory-mcp-shell-command", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "An MCP server or hook runs an inline shell command (sh -c, bash -c, powershell -c)",
    "Inline shell gives the configuration arbitrary command execution; prefer a fixed binary.",
)
UNPINNED_PACKAGE = rule(
    "memory-mcp-unpinned-package", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "An MCP server is fetched and run from a package registry without a pinned version",
    "npx/uvx/pipx/bunx of an unpinned package runs whatever is published next.",
)
SKIP_PERMISSIONS = rule(
    "memory-skip-permissions", Verdict.SUSPICIOUS, Severity.HIGH,
    "Agent permission checks are switched off (--dangerously-skip-permissions, bypass modes)",
    "Every tool call then runs without the user's confirmation.",
)
ALLOW_ALL = rule(
    "memory-permission-allow-all", Verdict.SUSPICIOUS, Severity.HIGH,
    "An allow-all tool permission (Bash(*), '*', auto-approve everything, trust all servers)",
    "Grants the agent or an MCP server every tool without confirmation.",
)
SECRET_ENV = rule(
    "memory-mcp-secret-env", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "A literal secret is written into an agent configuration and passed to a server",
    "Any process that can read the project can read it; reference an environment "
    "variable or input prompt instead.",
)
REMOTE_HTTP = rule(
    "memory-mcp-remote-http", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "A remote MCP server is reached over plain http",
    "Tool calls and results can be read and rewritten in transit.",
)
HOOK_COMMAND = rule(
    "memory-hook-command", Verdict.CLEAN, Severity.INFO,
    "An agent hook runs a command on agent events",
    "Listed for review: hooks run without asking.",
)

# ----------------------------------------------------------------------------- seal integrity

SEALED_OK = rule(
    "memory-sealed", Verdict.CLEAN, Severity.INFO,
    "Matches the seal",
    "The file's sha256 and size equal the signed seal.",
)
MODIFIED = rule(
    "memory-modified", Verdict.MALICIOUS, Severity.HIGH,
    "A sealed instruction file was modified",
    "Its content no longer matches the signed seal. If you made the change, review it "
    "and re-seal; otherwise treat the environment as compromised.",
)
DELETED = rule(
    "memory-deleted", Verdict.MALICIOUS, Severity.HIGH,
    "A sealed instruction file was deleted",
    "A file recorded in the signed seal is missing.",
)
ADDED = rule(
    "memory-added", Verdict.MALICIOUS, Severity.HIGH,
    "An instruction file appeared that the seal does not cover",
    "Agents would load it, but it was not there when the tree was sealed.",
)
BAD_SIGNATURE = rule(
    "memory-seal-invalid", Verdict.MALICIOUS, Severity.CRITICAL,
    "The seal's signature is invalid, made with another key, or the seal is malformed",
    "Nothing in the seal can be trusted; re-seal from a trusted state.",
)
SEAL_MISSING = rule(
    "memory-seal-missing", Verdict.UNSCANNABLE, Severity.HIGH,
    "There is no seal to verify against",
    "Run `mlwarden memory seal` first; without a seal nothing can be verified.",
)
