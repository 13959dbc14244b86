"""Fixtures for remote-code tests: repositories are generated per test in tmp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    """The only file a malicious fixture may create if it ever ran."""
    return tmp_path / "markers" / "payload-ran"
