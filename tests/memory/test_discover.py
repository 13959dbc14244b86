"""Discovery finds every instruction file an agent would load, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from mlwarden.memory.discover import DiscoverySettings, discover, glob_regex

from .conftest import Runner


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x\n")


EXPECTED = {
    "CLAUDE.md": "claude-md",
    "pkg/sub/CLAUDE.md": "claude-md",
    "CLAUDE.local.md": "claude-local-md",
    ".claude/settings.json": "claude-settings",
    ".claude/commands/deploy.md": "claude-command",
    ".claude/agents/reviewer.md": "claude-agent",
    "AGENTS.md": "agents-md",
    "GEMINI.md": "gemini-md",
    ".cursorrules": "cursor-rules",
    ".cursor/rules/style.mdc": "cursor-rules",
    ".cursor/mcp.json": "mcp-config",
    ".windsurfrules": "windsurf-rules",
    ".github/copilot-instructions.md": "copilot-instructions",
    ".github/instructions/py.instructions.md": "copilot-instructions",
    "memory.md": "memory-md",
    ".mcp.json": "mcp-config",
    "claude_desktop_config.json": "mcp-config",
    ".vscode/mcp.json": "mcp-config",
    "CLAUDE.md.mlwenc": "encrypted",
}


def test_discovers_every_known_kind(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    root = tmp_path / "p"
    _touch(root, *EXPECTED, "README.md", "src/app.py", ".github/workflows/ci.yml",
           "node_modules/x/CLAUDE.md", ".git/CLAUDE.md", ".venv/lib/AGENTS.md")
    found = {f.key: f.kind for f in discover(root, DiscoverySettings(home=False), home).files}
    assert found == EXPECTED


def test_home_files_custom_globs_and_excludes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = tmp_path / "p"
    _touch(home, ".claude/CLAUDE.md", ".claude/commands/x.md", ".codex/AGENTS.md",
           ".claude/projects/junk.jsonl", "Documents/CLAUDE.md")
    _touch(root, "CLAUDE.md", "docs/agent-notes.txt", "vendor/CLAUDE.md")
    settings = DiscoverySettings(globs=("docs/*.txt", "~/notes/*.md"), excludes=("vendor",))
    _touch(home, "notes/n.md")
    keys = {f.key for f in discover(root, settings, home).files}
    assert keys == {"CLAUDE.md", "docs/agent-notes.txt", "~/.claude/CLAUDE.md",
                    "~/.claude/commands/x.md", "~/.codex/AGENTS.md", "~/notes/n.md"}
    no_home = {f.key for f in discover(root, DiscoverySettings(home=False), home).files}
    assert no_home == {"CLAUDE.md", "vendor/CLAUDE.md"}


def test_symlinked_instruction_file_is_listed(tmp_path: Path) -> None:
    root = tmp_path / "p"
    _touch(root, "AGENTS.md")
    (root / "CLAUDE.md").symlink_to("AGENTS.md")
    keys = {f.key for f in discover(root, DiscoverySettings(home=False)).files}
    assert keys == {"AGENTS.md", "CLAUDE.md"}


def test_glob_translation() -> None:
    assert glob_regex("**/CLAUDE.md").match("CLAUDE.md")
    assert glob_regex("**/CLAUDE.md").match("a/b/CLAUDE.md")
    assert not glob_regex("**/CLAUDE.md").match("a/xCLAUDE.md")
    assert glob_regex(".cursor/rules/**/*").match(".cursor/rules/a/b.mdc")
    assert not glob_regex("docs/*.md").match("docs/sub/x.md")


def test_cli_json_and_sarif(project: Path, run: Runner) -> None:
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").write_text(
        json.dumps({"permissions": {"allow": ["Bash(*)"]}}))
    res = run("discover", str(project), "--format", "json")
    assert res.exit_code == 3, res.output
    doc = json.loads(res.stdout)
    kinds = {f["path"]: f["format"] for f in doc["files"]}
    assert kinds["CLAUDE.md"] == "claude-md" and kinds[".mcp.json"] == "mcp-config"
    assert kinds[".claude/settings.json"] == "claude-settings"
    claude = next(f for f in doc["files"] if f["path"] == "CLAUDE.md")
    assert claude["findings"][0]["rule"] == "memory-instruction-file"
    assert "Claude Code" in claude["findings"][0]["message"]
    assert len(claude["sha256"]) == 64
    res = run("discover", str(project), "--format", "sarif")
    sarif = json.loads(res.stdout)
    results = sarif["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["memory-permission-allow-all"]
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        ".claude/settings.json"
    assert run("discover", str(project), "--fail-on", "never").exit_code == 0


def test_cli_bad_root(run: Runner) -> None:
    res = run("discover", "/nonexistent/xyz")
    assert res.exit_code == 4
    assert "Traceback" not in res.output
