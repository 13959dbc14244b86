"""Fixtures for the memory tests: a temp project, a temp HOME, a key outside both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mlwarden.cli.main import cli

Runner = Callable[..., Result]
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.setenv("USERPROFILE", str(h))
    return h


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Path:
    p = tmp_path / "proj"
    (p / ".git").mkdir(parents=True)
    (p / "CLAUDE.md").write_text("# Project\n\nRun tests with pytest.\nUse ruff.\n")
    (p / "AGENTS.md").write_text("Follow CLAUDE.md.\n")
    (p / ".cursorrules").write_text("Prefer small functions.\n")
    (p / ".mcp.json").write_text(json.dumps(
        {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@mcp/fs@1.2.3"]}}}))
    (p / "src").mkdir()
    (p / "src" / "main.py").write_text("print('hi')\n")
    return p


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "memory.key"


@pytest.fixture
def run() -> Runner:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["memory", *args], catch_exceptions=False)

    return invoke


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
            ) -> subprocess.CompletedProcess[str]:
    """The real command in a fresh interpreter (exec replaces the process)."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = SRC + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "mlwarden", "memory", *args],
                          capture_output=True, text=True, env=full_env, timeout=timeout,
                          check=False)
