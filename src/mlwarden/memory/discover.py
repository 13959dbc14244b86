"""Find the files agents load as instructions or tool configuration, by name.

A pattern is a glob relative to the project root (or, for ``~/``-patterns, to the home
directory). Directories are walked once, without following directory symlinks, with a bound
on the number of entries so a huge tree cannot stall discovery.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ENCRYPTED_SUFFIX = ".mlwenc"
CONFIG_PATH = ".mlwarden/memory.toml"
MAX_ENTRIES = 500_000

# Directories that are not walked by default: VCS data, dependency trees and caches. Their
# files are not project instructions and change on every install; --no-default-excludes
# walks them too.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", "site-packages", ".mlwarden",
)


@dataclass(frozen=True)
class Pattern:
    glob: str  # relative to the root, or to home when it starts with "~/"
    kind: str  # short machine name, used as the report's format column
    agent: str  # who reads it
    description: str
    config: bool = False  # JSON agent/MCP configuration rather than prose


P = Pattern
# Nested CLAUDE.md/AGENTS.md files are read by the agents when they work in that directory.
PROJECT_PATTERNS: tuple[Pattern, ...] = (
    P("**/CLAUDE.md", "claude-md", "Claude Code", "project instructions"),
    P("**/CLAUDE.local.md", "claude-local-md", "Claude Code", "private project instructions"),
    P(".claude/settings.json", "claude-settings", "Claude Code", "project settings", True),
    P(".claude/settings.local.json", "claude-settings", "Claude Code", "local settings", True),
    P(".claude/commands/**/*.md", "claude-command", "Claude Code", "slash command"),
    P(".claude/agents/**/*.md", "claude-agent", "Claude Code", "subagent definition"),
    P(".claude/skills/**/*.md", "claude-skill", "Claude Code", "skill"),
    P("**/AGENTS.md", "agents-md", "Codex/Copilot/Cursor/others", "AGENTS.md instructions"),
    P("**/GEMINI.md", "gemini-md", "Gemini CLI", "project instructions"),
    P(".gemini/settings.json", "gemini-settings", "Gemini CLI", "project settings", True),
    P(".cursorrules", "cursor-rules", "Cursor", "legacy project rules"),
    P(".cursor/rules/**/*", "cursor-rules", "Cursor", "project rules"),
    P(".cursor/mcp.json", "mcp-config", "Cursor", "MCP servers", True),
    P(".windsurfrules", "windsurf-rules", "Windsurf", "project rules"),
    P(".windsurf/rules/**/*", "windsurf-rules", "Windsurf", "project rules"),
    P(".clinerules", "cline-rules", "Cline", "project rules"),
    P(".github/copilot-instructions.md", "copilot-instructions", "GitHub Copilot",
      "repository instructions"),
    P(".github/instructions/**/*.instructions.md", "copilot-instructions", "GitHub Copilot",
      "path-specific instructions"),
    P(".github/prompts/**/*.prompt.md", "copilot-prompt", "GitHub Copilot", "prompt file"),
    P("**/memory.md", "memory-md", "any", "agent memory"),
    P("**/MEMORY.md", "memory-md", "any", "agent memory"),
    P(".mcp.json", "mcp-config", "Claude Code", "project MCP servers", True),
    P("**/claude_desktop_config.json", "mcp-config", "Claude Desktop", "MCP servers", True),
    P(".vscode/mcp.json", "mcp-config", "VS Code/Copilot", "MCP servers", True),
    P(CONFIG_PATH, "mlwarden-config", "mlwarden", "memory discovery settings"),
    P(f"**/*{ENCRYPTED_SUFFIX}", "encrypted", "mlwarden", "encrypted instructions"),
)

# ~/.claude.json is deliberately absent: Claude Code rewrites it constantly (usage state),
# so sealing it would fail every verification.
HOME_PATTERNS: tuple[Pattern, ...] = (
    P("~/.claude/CLAUDE.md", "claude-md", "Claude Code", "user instructions"),
    P("~/.claude/settings.json", "claude-settings", "Claude Code", "user settings", True),
    P("~/.claude/commands/**/*.md", "claude-command", "Claude Code", "user slash command"),
    P("~/.claude/agents/**/*.md", "claude-agent", "Claude Code", "user subagent"),
    P("~/.claude/skills/**/*.md", "claude-skill", "Claude Code", "user skill"),
    P("~/.codex/AGENTS.md", "agents-md", "Codex", "user instructions"),
    P("~/.gemini/GEMINI.md", "gemini-md", "Gemini CLI", "user instructions"),
    P("~/.gemini/settings.json", "gemini-settings", "Gemini CLI", "user settings", True),
    P("~/.cursor/mcp.json", "mcp-config", "Cursor", "user MCP servers", True),
    P("~/.codeium/windsurf/memories/global_rules.md", "windsurf-rules", "Windsurf",
      "global rules"),
    P("~/.codeium/windsurf/mcp_config.json", "mcp-config", "Windsurf", "MCP servers", True),
    P("~/.config/Claude/claude_desktop_config.json", "mcp-config", "Claude Desktop",
      "MCP servers", True),
    P("~/Library/Application Support/Claude/claude_desktop_config.json", "mcp-config",
      "Claude Desktop", "MCP servers", True),
    P("~/AppData/Roaming/Claude/claude_desktop_config.json", "mcp-config", "Claude Desktop",
      "MCP servers", True),
)
del P

CONFIG_KINDS = frozenset(p.kind for p in PROJECT_PATTERNS + HOME_PATTERNS if p.config)
# Directories under home that agents own; a key must not live in them either.
HOME_AGENT_DIRS: tuple[str, ...] = (".claude", ".codex", ".gemini", ".cursor", ".codeium")


@dataclass(frozen=True)
class InstructionFile:
    key: str  # display and manifest key: "CLAUDE.md", "sub/AGENTS.md", "~/.claude/CLAUDE.md"
    path: Path  # where it is now (not resolved: symlinks are judged by seal/verify)
    kind: str
    agent: str
    description: str

    @property
    def is_config(self) -> bool:
        return self.kind in CONFIG_KINDS

    @property
    def is_encrypted(self) -> bool:
        return self.kind == "encrypted"


@dataclass(frozen=True)
class DiscoverySettings:
    """What to look for; recorded in a seal so verification repeats the same discovery."""

    globs: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    home: bool = True
    default_excludes: bool = True

    def to_dict(self) -> dict[str, object]:
        return {"globs": list(self.globs), "excludes": list(self.excludes),
                "home": self.home, "default_excludes": self.default_excludes}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> DiscoverySettings:
        globs, excludes = d.get("globs", []), d.get("excludes", [])
        if not isinstance(globs, list) or not isinstance(excludes, list):
            raise ValueError("discovery settings: globs and excludes must be lists")
        return cls(tuple(str(g) for g in globs), tuple(str(e) for e in excludes),
                   bool(d.get("home", True)), bool(d.get("default_excludes", True)))


@dataclass(frozen=True)
class Discovery:
    files: tuple[InstructionFile, ...]
    truncated: bool = False  # MAX_ENTRIES reached
    notes: tuple[str, ...] = field(default=())


# ----------------------------------------------------------------------------- glob matching

@lru_cache(maxsize=512)
def glob_regex(glob: str) -> re.Pattern[str]:
    """Translate a path glob (``**`` spans directories, ``*``/``?`` do not) to a regex."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = glob.find("]", i + 2)
            if j == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = glob[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _static_prefix(glob: str) -> str:
    """The directory part of a glob before its first wildcard: where walking starts."""
    parts = glob.split("/")
    static: list[str] = []
    for part in parts[:-1]:
        if any(ch in part for ch in "*?["):
            break
        static.append(part)
    return "/".join(static)


def custom_patterns(globs: Iterable[str]) -> tuple[Pattern, ...]:
    out = []
    for g in globs:
        g = g.replace("\\", "/")
        if g.startswith("./"):
            g = g[2:]
        out.append(Pattern(g, "custom", "custom", f"matches --glob {g}",
                           config=g.endswith(".json")))
    return tuple(out)


def load_config_globs(root: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Extra globs and excludes from ROOT/.mlwarden/memory.toml (``globs``, ``exclude``).

    Read at seal time only: verification uses what the signed seal recorded."""
    import tomllib

    path = root / CONFIG_PATH
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return (), ()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    globs, excludes = data.get("globs", []), data.get("exclude", [])
    if not (isinstance(globs, list) and isinstance(excludes, list)):
        raise ValueError(f"{path}: 'globs' and 'exclude' must be lists of strings")
    return tuple(str(g) for g in globs), tuple(str(e) for e in excludes)


def load_config_allow_hosts(root: Path) -> tuple[str, ...]:
    import tomllib

    try:
        data = tomllib.loads((root / CONFIG_PATH).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ()
    hosts = data.get("allow_hosts", [])
    return tuple(str(h) for h in hosts) if isinstance(hosts, list) else ()


# ----------------------------------------------------------------------------- walking

def _walk(base: Path, excluded: Sequence[str], budget: list[int]) -> Iterable[str]:
    """Relative posix paths of non-directory entries under ``base``. ``budget`` is shared."""
    exclude_res = [glob_regex(e) for e in excluded]

    def is_excluded(rel: str, name: str) -> bool:
        return any(r.match(rel) or r.match(name) for r in exclude_res)

    def onerror(exc: OSError) -> None:
        return None

    for dirpath, dirnames, filenames in os.walk(base, onerror=onerror, followlinks=False):
        rel_dir = os.path.relpath(dirpath, base).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        budget[0] -= len(dirnames) + len(filenames)
        if budget[0] < 0:
            return
        keep = []
        for d in sorted(dirnames):
            if not is_excluded(rel_dir + d, d):
                keep.append(d)
        dirnames[:] = keep
        # Symlinks to directories are listed by os.walk as directories but not entered;
        # an instruction "file" that is a directory symlink is still reported.
        for name in sorted(filenames) + [d for d in keep if os.path.islink(
                os.path.join(dirpath, d))]:
            rel = rel_dir + name
            if not is_excluded(rel, name):
                yield rel


def discover(root: str | os.PathLike[str], settings: DiscoverySettings | None = None,
             home: Path | None = None) -> Discovery:
    """Every instruction file under ``root`` (and in the home directory if asked)."""
    settings = settings or DiscoverySettings()
    root_path = Path(root)
    home_path = home if home is not None else Path.home()
    excludes = tuple(DEFAULT_EXCLUDES if settings.default_excludes else ()) + settings.excludes
    customs = custom_patterns(settings.globs)
    project = [p for p in PROJECT_PATTERNS + customs if not p.glob.startswith("~/")]
    home_pats = [p for p in customs if p.glob.startswith("~/")]
    if settings.home:
        home_pats = list(HOME_PATTERNS) + home_pats
    budget = [MAX_ENTRIES]
    found: dict[str, InstructionFile] = {}

    def match(rel: str, patterns: Sequence[Pattern], key_prefix: str, base: Path) -> None:
        key = key_prefix + rel
        if key in found:
            return
        for p in patterns:
            glob = p.glob[2:] if p.glob.startswith("~/") else p.glob
            if glob_regex(glob).match(rel):
                found[key] = InstructionFile(key, base / rel, p.kind, p.agent, p.description)
                return

    for rel in _walk(root_path, excludes, budget):
        match(rel, project, "", root_path)
    # .mlwarden is pruned (the seal lives there) but its discovery settings are sealed.
    if os.path.lexists(root_path / CONFIG_PATH):
        match(CONFIG_PATH, project, "", root_path)
    # Home patterns: walk only each pattern's static directory, never the whole home.
    if home_pats and home_path.is_dir():
        walked: set[str] = set()
        for p in home_pats:
            glob = p.glob[2:]
            prefix = _static_prefix(glob)
            if "*" not in glob and "?" not in glob and "[" not in glob:
                if os.path.lexists(home_path / glob):
                    match(glob, home_pats, "~/", home_path)
                continue
            if prefix in walked or not (home_path / prefix).is_dir():
                continue
            walked.add(prefix)
            for rel in _walk(home_path / prefix, excludes, budget):
                match(f"{prefix}/{rel}" if prefix else rel, home_pats, "~/", home_path)
    files = tuple(sorted(found.values(), key=lambda f: (f.key.startswith("~/"), f.key)))
    return Discovery(files, truncated=budget[0] < 0)


def resolve_key(key: str, root: Path, home: Path | None = None) -> Path:
    """Where a manifest key lives now."""
    if key.startswith("~/"):
        return (home if home is not None else Path.home()) / key[2:]
    return root / key
