"""Content checks of instruction files: hidden characters, exfiltration and override wording,
and permission escalation in agent/MCP configuration.

Everything here is pattern matching over bytes we read ourselves; JSON configuration is parsed
with the standard library after removing JSONC comments. Nothing is executed.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlwarden.memory import rules as R
from mlwarden.report.model import Finding, Location
from mlwarden.report.rules import Rule

MAX_PER_RULE = 20  # findings of one rule per file; the rest are summarised

DEFAULT_ALLOW_HOSTS: tuple[str, ...] = (
    "localhost", "127.0.0.1", "::1", "example.com", "example.org", "example.net",
    "github.com", "gitlab.com", "bitbucket.org", "pypi.org", "python.org", "npmjs.com",
    "anthropic.com", "claude.ai", "claude.com", "openai.com", "microsoft.com",
    "visualstudio.com", "cursor.com", "readthedocs.io", "mozilla.org", "w3.org",
)


class _Lines:
    """Offset -> (line, column), 1-based, for one text."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def loc(self, offset: int, detail: str | None = None) -> Location:
        i = bisect.bisect_right(self.starts, offset) - 1
        return Location(line=i + 1, column=offset - self.starts[i] + 1, detail=detail)


class _Collector:
    def __init__(self, text: str) -> None:
        self.lines = _Lines(text)
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = {}

    def add(self, rule: Rule, message: str, offset: int | None = None,
            detail: str | None = None, location: Location | None = None) -> None:
        n = self.counts.get(rule.id, 0) + 1
        self.counts[rule.id] = n
        if n > MAX_PER_RULE:
            return
        if location is None and offset is not None:
            location = self.lines.loc(offset, detail)
        elif location is None and detail is not None:
            location = Location(detail=detail)
        self.findings.append(rule.finding(message, location))

    def done(self) -> list[Finding]:
        from mlwarden.report.rules import RULES

        for rule_id, n in self.counts.items():
            if n > MAX_PER_RULE:
                self.findings.append(RULES[rule_id].finding(
                    f"... and {n - MAX_PER_RULE} more of the same in this file"))
        return self.findings


# ----------------------------------------------------------------------------- unicode

_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]+")
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]+")


def _check_unicode(text: str, c: _Collector) -> None:
    for m in _TAGS.finditer(text):
        hidden = "".join(chr(ord(ch) - 0xE0000) if 0xE0020 <= ord(ch) <= 0xE007E else ""
                         for ch in m.group())
        shown = f": hidden text {hidden[:120]!r}" if hidden else ""
        c.add(R.UNICODE_TAG, f"{len(m.group())} invisible tag character(s){shown}", m.start())
    for m in _BIDI.finditer(text):
        names = ", ".join(sorted({f"U+{ord(ch):04X}" for ch in m.group()}))
        c.add(R.UNICODE_BIDI, f"bidirectional control character(s) {names}", m.start())
    for m in _ZERO_WIDTH.finditer(text):
        if m.start() == 0 and m.group() == "\ufeff":
            continue  # a leading byte-order mark is legitimate
        names = ", ".join(sorted({f"U+{ord(ch):04X}" for ch in m.group()}))
        c.add(R.UNICODE_ZERO_WIDTH, f"zero-width character(s) {names}", m.start())


# ----------------------------------------------------------------------------- shell & exfil

_FETCH = r"(?:curl|wget|fetch|iwr|irm|Invoke-WebRequest|Invoke-RestMethod)"
_SHELL = r"(?:sudo\s+(?:-\S+\s+)*)?(?:ba|z|da|k|fi|c|tc)?sh|python[0-9.]*|perl|ruby|node|php|iex"
_PIPE_TO_SHELL = re.compile(
    rf"\b{_FETCH}\b[^\n|;&]*\|\s*(?:{_SHELL})\b"  # curl URL | sh
    rf"|\b(?:ba|z)?sh\s+(?:-\w+\s+)*[\"']?\$\(\s*{_FETCH}\b"  # sh -c "$(curl URL)"
    rf"|\b(?:ba|z)?sh\s+<\(\s*{_FETCH}\b"  # bash <(curl URL)
    rf"|\b(?:iex|Invoke-Expression)\s*\(?\s*(?:\(\s*)?(?:New-Object\s+Net\.WebClient|{_FETCH})"
    rf"|\bsource\s+<\(\s*{_FETCH}\b",
    re.IGNORECASE,
)
_SKIP_PERMS = re.compile(
    r"--dangerously-skip-permissions|--dangerously-bypass-approvals-and-sandbox"
    r"|--yolo\b|\bbypassPermissions\b|--allow-dangerously-skip-permissions")
_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s<>\"'`)\]}]+", re.IGNORECASE)
_SECRET_WORDS = re.compile(
    r"api[_ -]?keys?|\btokens?\b|\bsecrets?\b|passwords?|passwd|credentials?"
    r"|private[_ -]?keys?|ssh[_ -]?keys?|id_rsa|id_ed25519|\.ssh\b|\.aws\b|\.netrc|\.npmrc"
    r"|\.pypirc|\.env\b|env(?:ironment)?\s+var|printenv|\benv\b\s*[|>]|os\.environ"
    r"|process\.env|\$\{?[A-Z_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASS)\b|\bAWS_[A-Z_]+|cookies?",
    re.IGNORECASE,
)
_OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+|your\s+)*"
    r"(?:previous|prior|above|earlier|preceding|system|original)\s+"
    r"(?:instructions?|prompts?|rules|directions|guidelines|messages?)"
    r"|\b(?:do\s+not|don't|never)\s+(?:tell|inform|mention\s+(?:this\s+)?to|notify|alert|warn)"
    r"\s+(?:the\s+)?user"
    r"|\bwithout\s+(?:telling|informing|asking|notifying|alerting|warning)\s+(?:the\s+)?user"
    r"|\b(?:hide|conceal)\s+(?:this|these|the|it|them)\s+(?:\w+\s+)?from\s+(?:the\s+)?user"
    r"|\b(?:do\s+not|don't|never)\s+(?:mention|reveal|disclose|show)\s+"
    r"(?:this|these|the\s+following)\s+instructions?"
    r"|\byou\s+are\s+now\s+(?:in\s+)?(?:developer|god|admin|jailbreak|unrestricted|DAN)\b"
    r"|\bnew\s+system\s+prompt\b",
    re.IGNORECASE,
)
_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/]{100,}={0,2}(?![A-Za-z0-9+/=_-])")


def _host_allowed(host: str, allow: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == h or host.endswith("." + h) for h in allow)


def _check_prose(text: str, c: _Collector, allow_hosts: tuple[str, ...], config: bool) -> None:
    for m in _PIPE_TO_SHELL.finditer(text):
        c.add(R.PIPE_TO_SHELL, f"runs a downloaded script: {_snip(m.group())}", m.start())
    for m in _SKIP_PERMS.finditer(text):
        c.add(R.SKIP_PERMISSIONS, f"permission checks switched off: {m.group()}", m.start())
    if config:
        return  # prose rules below would misread JSON; structured checks cover configs
    lines = text.split("\n")
    offsets = c.lines.starts
    for m in _URL.finditer(text):
        try:
            host = urlsplit(m.group()).hostname or ""
        except ValueError:
            host = ""
        if not host or _host_allowed(host, allow_hosts):
            continue
        line = bisect.bisect_right(offsets, m.start()) - 1
        window = "\n".join(lines[max(0, line - 1):line + 2])
        word = _SECRET_WORDS.search(window)
        if word:
            c.add(R.EXFIL_URL, f"URL to {host} next to {word.group().strip()!r}: "
                  f"{_snip(m.group())}", m.start())
    for m in _OVERRIDE.finditer(text):
        c.add(R.OVERRIDE, f"override wording: {_snip(m.group())!r}", m.start())
    for m in _B64.finditer(text):
        blob = m.group()
        if text[max(0, m.start() - 40):m.start()].rstrip().endswith(";base64,") and \
                "data:image/" in text[max(0, m.start() - 40):m.start()]:
            continue  # an inline image, not hidden text
        if not (re.search(r"[0-9+]", blob) and re.search("[a-z]", blob)
                and re.search("[A-Z]", blob)):
            continue
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        preview = ""
        sample = decoded[:400]
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
        if sample and printable >= 0.9 * len(sample):
            txt = sample.decode("ascii", "replace")
            preview = f", decodes to text {txt[:80]!r}"
            if _PIPE_TO_SHELL.search(txt) or _OVERRIDE.search(txt) or _URL.search(txt):
                preview += " (contains a command, URL or override wording)"
        c.add(R.BASE64_BLOB, f"{len(blob)}-character base64 blob{preview}", m.start())


def _snip(s: str, n: int = 100) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n - 3] + "..."


# ----------------------------------------------------------------------------- JSON configs

def strip_jsonc(text: str) -> str:
    """Remove // and /* */ comments and trailing commas outside strings (VS Code's JSONC)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_str = False
    while i < n:
        ch = text[i]
        if in_str:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_str = False
            i += 1
        elif ch == '"':
            in_str = True
            out.append(ch)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j == -1 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            # keep line count stable so line numbers still match the file
            chunk = text[i:n if j == -1 else j + 2]
            out.append("\n" * chunk.count("\n"))
            i = n if j == -1 else j + 2
        else:
            out.append(ch)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


_SHELLS = {"sh", "bash", "zsh", "dash", "fish", "ksh", "cmd", "cmd.exe", "powershell",
           "powershell.exe", "pwsh", "pwsh.exe"}
_SHELL_FLAGS = {"-c", "/c", "/k", "-lc", "-ic", "-command", "-encodedcommand", "-enc", "-e"}
_RUNNERS = {"npx", "bunx", "pnpx", "uvx", "pipx", "pnpm", "yarn", "npm", "bun", "docker",
            "podman", "deno"}
_SECRET_KEY = re.compile(
    r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH", re.IGNORECASE)
_TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-(?:ant-|proj-)?"
    r"[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|hf_[A-Za-z0-9]{30,})")
_PLACEHOLDER = re.compile(
    r"^\s*$|\$\{|^\$[A-Za-z_]|^<.*>$|^%[A-Za-z_]+%$|your[_ -]|xxx|changeme|placeholder|\.\.\.",
    re.IGNORECASE)
_EXACT_VERSION = re.compile(r"^v?\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.-]+)?$")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def _base(cmd: str) -> str:
    return re.split(r"[\\/]", cmd)[-1].lower()


def _pkg_pinned(runner: str, pkg: str) -> bool:
    if runner in {"docker", "podman"}:
        if "@sha256:" in pkg:
            return True
        name = pkg.rsplit("/", 1)[-1]
        return ":" in name and not name.endswith(":latest")
    if runner in {"uvx", "pipx"}:
        if "==" in pkg:
            return True
        if "@" in pkg:
            return bool(_EXACT_VERSION.match(pkg.rsplit("@", 1)[1]))
        return False
    if runner == "deno":
        return bool(re.search(r"@\d+\.\d+\.\d+", pkg))
    # npm-style: name@1.2.3 or @scope/name@1.2.3
    at = pkg.rfind("@")
    if at <= 0:
        return False
    return bool(_EXACT_VERSION.match(pkg[at + 1:]))


def _package_arg(runner: str, args: list[str]) -> str | None:
    """The package a registry runner fetches (first positional after its own flags)."""
    takes_value = {"-p", "--package", "--from", "--spec", "--registry", "-e", "--env",
                   "--name", "-v", "--volume", "--network", "--with"}
    subcommands = {"dlx", "exec", "x", "run", "tool"}
    if runner in {"pnpm", "yarn", "npm", "bun"} and not (args and args[0] in subcommands):
        return None  # pnpm install etc.: not a fetch-and-run
    if runner == "deno":
        return next((a for a in args if a.startswith(("npm:", "jsr:", "http"))), None)
    i = 0
    while i < len(args):
        a = args[i]
        if a in {"--from", "--package", "-p", "--spec"} and i + 1 < len(args):
            return args[i + 1]
        if a in takes_value:
            i += 2
            continue
        if a.startswith("-") or (a in subcommands and i == 0):
            i += 1
            continue
        if runner in {"docker", "podman"} and a in {"run", "container"}:
            i += 1
            continue
        return a
    return None


def _line_of(text: str, needle: str) -> int | None:
    i = text.find(needle)
    return None if i < 0 else text.count("\n", 0, i) + 1


def _servers(data: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, name, server) for each MCP server in the known config shapes."""
    for key in ("mcpServers", "servers", "mcp_servers", "context_servers"):
        block = data.get(key)
        if isinstance(block, dict):
            for name, server in block.items():
                if isinstance(server, dict):
                    yield f"{key}.{name}", str(name), server
    mcp = data.get("mcp")
    if isinstance(mcp, dict):
        for path, name, server in _servers(mcp):
            yield f"mcp.{path}", name, server
    projects = data.get("projects")  # ~/.claude.json style, per project
    if isinstance(projects, dict):
        for proj, pdata in projects.items():
            if isinstance(pdata, dict):
                for path, name, server in _servers(pdata):
                    yield f"projects.{proj}.{path}", name, server


def _check_server(path: str, name: str, server: dict[str, Any], text: str,
                  c: _Collector) -> None:
    line = _line_of(text, f'"{name}"')
    loc = Location(line=line, detail=path)
    cmd = server.get("command")
    args = server.get("args")
    args = [str(a) for a in args] if isinstance(args, list) else []
    if isinstance(cmd, str) and cmd:
        words = cmd.split() if not args and " " in cmd else [cmd]
        runner, rest = _base(words[0]), words[1:] + args
        if runner in _SHELLS and any(a.lower() in _SHELL_FLAGS for a in rest):
            c.add(R.SHELL_SERVER, f"MCP server {name!r} runs an inline {runner} command: "
                  f"{_snip(' '.join(rest))}", location=loc)
        if runner in _RUNNERS:
            pkg = _package_arg(runner, rest)
            if pkg is not None and not _pkg_pinned(runner, pkg):
                c.add(R.UNPINNED_PACKAGE, f"MCP server {name!r} runs `{runner} {pkg}` with "
                      f"no pinned version", location=loc)
    for field in ("env", "headers"):
        block = server.get(field)
        if not isinstance(block, dict):
            continue
        for k, v in block.items():
            if not isinstance(v, str) or _PLACEHOLDER.search(v):
                continue
            if _TOKEN_SHAPES.search(v) or (_SECRET_KEY.search(str(k)) and len(v) >= 8):
                c.add(R.SECRET_ENV, f"MCP server {name!r} is given a literal secret in "
                      f"{field}.{k}", location=Location(line=_line_of(text, f'"{k}"') or line,
                                                        detail=f"{path}.{field}.{k}"))
    for field in ("url", "serverUrl", "httpUrl", "uri"):
        url = server.get(field)
        if isinstance(url, str) and url.lower().startswith(("http://", "ws://")):
            host = (urlsplit(url).hostname or "").lower()
            if host not in _LOOPBACK:
                c.add(R.REMOTE_HTTP, f"MCP server {name!r} is reached over plain http: "
                      f"{_snip(url)}", location=loc)
    for field in ("autoApprove", "alwaysAllow", "allowedTools", "includeTools"):
        val = server.get(field)
        if val is True or (isinstance(val, list) and any(v in ("*", "all") for v in val)):
            c.add(R.ALLOW_ALL, f"MCP server {name!r} auto-approves every tool ({field})",
                  location=loc)
    if server.get("trust") is True:
        c.add(R.ALLOW_ALL, f"MCP server {name!r} is trusted: tool calls skip confirmation",
              location=loc)


_ALLOW_ALL_ENTRY = re.compile(r"^(?:\*|Bash|Bash\(\s*\*{1,2}\s*\)|Bash\(\s*:?\*\s*\)|mcp__\*)$")


def _check_settings(data: dict[str, Any], text: str, c: _Collector) -> None:
    perms = data.get("permissions")
    if isinstance(perms, dict):
        allow = perms.get("allow")
        if isinstance(allow, list):
            for entry in allow:
                if isinstance(entry, str) and _ALLOW_ALL_ENTRY.match(entry.strip()):
                    c.add(R.ALLOW_ALL, f"permissions.allow grants {entry!r} without asking",
                          location=Location(line=_line_of(text, f'"{entry}"'),
                                            detail="permissions.allow"))
    if data.get("enableAllProjectMcpServers") is True:
        c.add(R.ALLOW_ALL, "enableAllProjectMcpServers approves every MCP server in .mcp.json",
              location=Location(line=_line_of(text, '"enableAllProjectMcpServers"'),
                                detail="enableAllProjectMcpServers"))
    for key in ("autoApprove", "chat.tools.autoApprove", "yolo"):
        if data.get(key) is True:
            c.add(R.ALLOW_ALL, f"{key} approves every tool call",
                  location=Location(line=_line_of(text, f'"{key}"'), detail=key))
    hooks = data.get("hooks")
    if isinstance(hooks, dict):
        for event, entries in hooks.items():
            for entry in entries if isinstance(entries, list) else []:
                inner = entry.get("hooks") if isinstance(entry, dict) else None
                for h in inner if isinstance(inner, list) else []:
                    cmd = h.get("command") if isinstance(h, dict) else None
                    if isinstance(cmd, str):
                        first = cmd.split()[0] if cmd.split() else ""
                        c.add(R.HOOK_COMMAND, f"{event} hook runs: {_snip(cmd)}",
                              location=Location(line=_line_of(text, first) if first else None,
                                                detail=f"hooks.{event}"))
                        words = cmd.split()
                        if words and _base(words[0]) in _SHELLS and any(
                                w.lower() in _SHELL_FLAGS for w in words[1:]):
                            c.add(R.SHELL_SERVER, f"{event} hook runs an inline shell command",
                                  location=Location(detail=f"hooks.{event}"))


def _check_config(text: str, c: _Collector) -> None:
    try:
        data = json.loads(strip_jsonc(text))
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = getattr(exc, "msg", "nesting too deep")
        c.add(R.CONFIG_UNPARSEABLE, f"not valid JSON: {msg}",
              location=Location(line=getattr(exc, "lineno", None)))
        return
    if not isinstance(data, dict):
        c.add(R.CONFIG_UNPARSEABLE, "top level is not a JSON object")
        return
    for path, name, server in _servers(data):
        _check_server(path, name, server, text, c)
    _check_settings(data, text, c)


# ----------------------------------------------------------------------------- entry point

@dataclass(frozen=True)
class CheckOptions:
    allow_hosts: tuple[str, ...] = DEFAULT_ALLOW_HOSTS


def check_bytes(data: bytes, config: bool, options: CheckOptions | None = None) -> list[Finding]:
    """Content findings for one instruction file's bytes."""
    options = options or CheckOptions()
    findings: list[Finding] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", "replace")
        findings.append(R.NOT_UTF8.finding(f"invalid UTF-8 at byte {exc.start}",
                                           Location(offset=exc.start)))
    c = _Collector(text)
    _check_unicode(text, c)
    _check_prose(text, c, options.allow_hosts, config)
    if config:
        _check_config(text, c)
    return findings + c.done()
