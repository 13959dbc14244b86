"""`mlwarden deps` recognises the mlwarden index as the sole source as the safe setting."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mlwarden.cli.main import cli

URL = "https://pkgs.acme.example/simple/"


def audit(root: Path, *extra: str) -> dict[str, set[str]]:
    r = CliRunner().invoke(cli, ["deps", str(root), "--offline", "--format", "json",
                                 "--fail-on", "never", "--verbose", *extra],
                           catch_exceptions=False)
    out: dict[str, set[str]] = {}
    for f in json.loads(r.output)["findings"]:
        out.setdefault(Path(str(f["path"])).name, set()).add(str(f["rule"]))
    return out


def test_pip_conf_sole_source_is_safe(tmp_path):
    (tmp_path / "pip.conf").write_text(f"[global]\nindex-url = {URL}\n")
    (tmp_path / "requirements.txt").write_text("acme-core==1.0\n")
    found = audit(tmp_path, "--internal", "acme-core", "--mlwarden-index", URL)
    assert "deps-sole-mlwarden-index" in found["pip.conf"]
    assert "deps-internal-unbound" not in found.get("requirements.txt", set())


def test_extra_index_beside_it_is_a_bypass(tmp_path):
    (tmp_path / "pip.conf").write_text(
        f"[global]\nindex-url = {URL}\nextra-index-url = https://pypi.org/simple\n")
    found = audit(tmp_path, "--mlwarden-index", URL)
    assert "deps-mlwarden-index-bypass" in found["pip.conf"]
    assert "deps-sole-mlwarden-index" not in found["pip.conf"]


def test_poetry_primary_source_and_pyproject_declaration(tmp_path):
    (tmp_path / "pyproject.toml").write_text(f"""
[tool.mlwarden]
index-url = "{URL}"
internal-packages = ["acme-core"]

[tool.poetry.dependencies]
python = "^3.10"
acme-core = "1.0"

[[tool.poetry.source]]
name = "acme"
url = "{URL}"
priority = "primary"
""")
    found = audit(tmp_path)
    assert "deps-sole-mlwarden-index" in found["pyproject.toml"]
    assert "deps-internal-unbound" not in found["pyproject.toml"]


def test_uv_default_index(tmp_path):
    (tmp_path / "uv.toml").write_text(
        f'[[index]]\nname = "acme"\nurl = "{URL}"\ndefault = true\n')
    assert "deps-sole-mlwarden-index" in audit(tmp_path, "--mlwarden-index", URL)["uv.toml"]
    (tmp_path / "uv.toml").write_text(f'[[index]]\nname = "acme"\nurl = "{URL}"\n')
    # Not the default: uv still falls back to PyPI for everything else.
    assert "deps-mlwarden-index-bypass" in audit(tmp_path, "--mlwarden-index", URL)["uv.toml"]
