"""poetry resolves, locks and installs through the index with nothing but a source setting
(`[[tool.poetry.source]]`, priority primary) and credentials in its environment."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from index.support import client_env, wheel
from index.test_scenarios import twine_upload

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = """\
[project]
name = "consumer"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["app", "acme-utils"]

[tool.poetry]
package-mode = false

[[tool.poetry.source]]
name = "acme"
url = "{url}"
priority = "primary"
"""


def poetry_env(tmp: Path, token: str) -> dict[str, str]:
    env = client_env(tmp)
    env = {k: v for k, v in env.items() if not k.startswith("POETRY_")}
    env.update({
        "POETRY_CONFIG_DIR": str(tmp / "poetry-config"),
        "POETRY_CACHE_DIR": str(tmp / "poetry-cache"),
        "POETRY_DATA_DIR": str(tmp / "poetry-data"),
        "POETRY_VIRTUALENVS_IN_PROJECT": "true",
        "POETRY_NO_INTERACTION": "1",
        "POETRY_KEYRING_ENABLED": "false",
        # The documented way to give poetry the token: http-basic.<source>.
        "POETRY_HTTP_BASIC_ACME_USERNAME": "__token__",
        "POETRY_HTTP_BASIC_ACME_PASSWORD": token,
        "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
        "VIRTUALENV_OVERRIDE_APP_DATA": str(tmp / "virtualenv-data"),
    })
    return env


def poetry(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "poetry", "--no-ansi", *args], cwd=project,
                          env=env, capture_output=True, text=True, timeout=180)


def test_poetry_locks_and_installs_through_the_index(make_index, upstream, tmp_path):
    if importlib.util.find_spec("poetry") is None:
        pytest.skip("poetry is not installed (pip install -e '.[test]')")
    idx = make_index()
    # acme-utils is internal (1.0 uploaded here); the upstream publishes 9.0 under the name.
    up = twine_upload(idx, wheel(tmp_path / "dist", "acme-utils", "1.0"), idx.write_token)
    assert up.returncode == 0, up.stdout + up.stderr
    project = tmp_path / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT.format(url=idx.url))
    env = poetry_env(tmp_path, idx.read_token)
    before = len(upstream.proxy.paths)

    r = poetry(project, env, "env", "use", sys.executable)
    assert r.returncode == 0, r.stdout + r.stderr
    r = poetry(project, env, "lock")
    assert r.returncode == 0, r.stdout + r.stderr
    lock = tomllib.loads((project / "poetry.lock").read_text())
    pins = {p["name"]: p for p in lock["package"]}
    assert {n: p["version"] for n, p in pins.items()} == {
        "acme-utils": "1.0", "app": "1.0", "liba": "1.0", "libb": "1.0", "libc": "1.0",
        "libd": "1.0"}
    # Every locked hash is the sha256 of the file the index admitted, and every package
    # names the index as its source.
    idx.flush()
    admitted = {f.filename: f.sha256 for f in idx.service.storage.all_files() if f.served}
    for p in pins.values():
        assert p["source"]["reference"] == "acme", p
        for f in p["files"]:
            assert f["hash"] == f"sha256:{admitted[f['file']]}"

    r = poetry(project, env, "install", "--no-root")
    assert r.returncode == 0, r.stdout + r.stderr
    site = next((project / ".venv").glob("lib/python*/site-packages"))
    init = site / "acme_utils" / "__init__.py"
    assert init.read_text() == "__version__ = '1.0'\n"  # the internal one, not the public 9.0
    for mod in ("app", "liba", "libb", "libc", "libd"):
        assert (site / mod / "__init__.py").exists()

    # The audit log shows poetry fetching every file from the index.
    idx.flush()
    got = {e.path for e in idx.store.audit(action="pkg-download")
           if e.status == 200 and "poetry" in e.detail.lower()}
    assert got >= set(admitted) - {None}
    # The internal name was never asked of the upstream, by lock or by install.
    assert not [p for p in upstream.proxy.paths[before:] if "acme" in p]
