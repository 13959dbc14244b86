"""Every input format, parsed by the right library, and the pinning/index checks on it."""

from __future__ import annotations

from pathlib import Path

from deps.deps_support import flat, rules_of, run_cli


def _audit(path: Path, *extra: str) -> list[dict[str, object]]:
    return flat(run_cli("deps", str(path), "--offline", "--format", "json", *extra))


def _by_rule(findings: list[dict[str, object]], rule: str) -> list[dict[str, object]]:
    return [f for f in findings if f["rule"] == rule]


def test_requirements_pins_hashes_includes_and_urls(project, tmp_path: Path) -> None:
    project("base.txt", "six==1.16.0 --hash=sha256:aaaa\n")
    project("constraints.txt", "click==8.1.7 --hash=sha256:bbbb\n")
    project("requirements.txt", (
        "-r base.txt\n"
        "-c constraints.txt\n"
        "requests==2.32.3 \\\n    --hash=sha256:cccc  # pinned and hashed\n"
        "rich>=13  # loose\n"
        "click\n"  # pinned and hashed through the constraints file
        "attrs ; python_version >= '3.8'\n"
        "-e ./local-pkg\n"
        "git+https://github.com/org/repo.git@main#egg=repo\n"
        "git+https://github.com/org/pinned.git@" + "a" * 40 + "#egg=pinned\n"
        "this is not a requirement\n"
        "-r missing.txt\n"))
    findings = _audit(tmp_path / "requirements.txt")
    unpinned = {(f["path"], f["line"]) for f in _by_rule(findings, "deps-unpinned")}
    assert unpinned == {("requirements.txt", 5), ("requirements.txt", 7)}
    hashless = {f["line"] for f in _by_rule(findings, "deps-missing-hash")
                if f["path"] == "requirements.txt"}
    assert hashless == {5, 7}
    urls = _by_rule(findings, "deps-url-requirement")
    assert [f["line"] for f in urls] == [9] and "repo" in str(urls[0]["message"])
    parse = {f["line"]: f["message"] for f in _by_rule(findings, "deps-parse-error")}
    assert set(parse) == {11, 12} and "missing.txt" in str(parse[12])
    # Included files are reported as their own inputs; base.txt is fully pinned and hashed.
    assert not [f for f in findings if f["path"] == "base.txt"]


def test_non_deployment_requirements_are_not_held_to_pins(project, tmp_path: Path) -> None:
    project("requirements-dev.txt", "pytest>=8\nruff\n")
    assert _audit(tmp_path) == []


def test_hash_mode_makes_any_file_deployment(project, tmp_path: Path) -> None:
    project("requirements-test.txt", "pytest==8.0.0 --hash=sha256:aa\nruff==0.6.0\n")
    lines = [f["line"] for f in _by_rule(_audit(tmp_path), "deps-missing-hash")]
    assert lines == [2]


def test_index_options_in_requirements(project, tmp_path: Path) -> None:
    project("requirements.txt", "--index-url https://pypi.org/simple\n"
            "--extra-index-url https://pkgs.internal.example/simple\n"
            "--trusted-host pkgs.internal.example\n"
            "-f http://downloads.example/wheels\n")
    findings = _audit(tmp_path)
    assert [f["line"] for f in _by_rule(findings, "deps-extra-index-url")] == [2]
    assert sorted(f["line"] for f in _by_rule(findings, "deps-insecure-index")) == [3, 4]


def test_pyproject_project_groups_and_uv(project, tmp_path: Path) -> None:
    project("pyproject.toml", """\
[project]
name = "demo"
dependencies = [
  "torch>=2.0",
  "numpy>=2",
  "acme-models>=1",
  "acme-data",
]
[project.optional-dependencies]
serve = ["gradio>=5.6"]

[dependency-groups]
dev = ["reqeusts"]

[tool.uv]
index-strategy = "unsafe-best-match"

[[tool.uv.index]]
name = "internal"
url = "https://pkgs.internal.example/simple"
explicit = true

[tool.uv.sources]
acme-models = { index = "internal" }

[tool.mlwarden]
internal-packages = ["acme-models", "acme-data"]
""")
    findings = _audit(tmp_path)
    assert [f["line"] for f in _by_rule(findings, "deps-unsafe-index-strategy")] == [16]
    unbound = _by_rule(findings, "deps-internal-unbound")
    assert [(f["line"], "acme-data" in str(f["message"])) for f in unbound] == [(7, True)]
    ranges = _by_rule(findings, "deps-range-admits-vulnerable")
    assert [f["line"] for f in ranges] == [4]  # torch>=2.0; gradio>=5.6 admits none
    assert "require >=2.10.0" in str(ranges[0]["message"])
    assert [f["line"] for f in _by_rule(findings, "deps-typosquat")] == [13]
    # pyproject ranges are normal for libraries: no pinning findings.
    assert not _by_rule(findings, "deps-unpinned")


def test_poetry_sources_and_constraints(project, tmp_path: Path) -> None:
    project("pyproject.toml", """\
[tool.poetry.dependencies]
python = "^3.10"
transformers = "^4.30"
acme-core = { version = "^1.0", source = "internal" }
acme-util = "^2.0"

[[tool.poetry.source]]
name = "internal"
url = "https://pkgs.internal.example/simple"
priority = "explicit"
""")
    findings = _audit(tmp_path, "--internal", "acme-core", "--internal", "acme_util")
    unbound = _by_rule(findings, "deps-internal-unbound")
    assert [f["line"] for f in unbound] == [5]
    # ^4.30 means >=4.30,<5: it admits the transformers fixes up to 4.53.
    assert [f["line"] for f in _by_rule(findings, "deps-range-admits-vulnerable")] == [3]


def test_poetry_constraint_translation() -> None:
    from mlwarden.deps.inputs.pyproject import poetry_to_pep440

    assert poetry_to_pep440("^1.2.3") == "<2,>=1.2.3"
    assert poetry_to_pep440("^0.2.3") == "<0.3,>=0.2.3"
    assert poetry_to_pep440("~1.2") == "<1.3,>=1.2"
    assert poetry_to_pep440("1.2.3") == "==1.2.3"
    assert poetry_to_pep440("*") == ""
    assert poetry_to_pep440(">=1,<2") == "<2,>=1"


def test_uv_lock_hashes_and_internal_source(project, tmp_path: Path) -> None:
    project("uv.lock", """\
version = 1
requires-python = ">=3.10"

[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }

[[package]]
name = "torch"
version = "2.5.1"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files.pythonhosted.org/t.whl", hash = "sha256:aa", size = 1 }]

[[package]]
name = "acme-models"
version = "1.0.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/a.tar.gz", hash = "sha256:bb", size = 1 }

[[package]]
name = "nohash"
version = "1.0.0"
source = { registry = "https://pypi.org/simple" }
""")
    findings = _audit(tmp_path, "--internal", "acme-models")
    vuln = _by_rule(findings, "deps-vulnerable")
    assert {f["line"] for f in vuln} == {10}
    assert any("CVE-2025-32434" in str(f["message"]) for f in vuln)
    assert [f["line"] for f in _by_rule(findings, "deps-internal-unbound")] == [16]
    assert [f["line"] for f in _by_rule(findings, "deps-missing-hash")] == [22]


def test_poetry_lock_and_pylock(project, tmp_path: Path) -> None:
    project("poetry.lock", """\
[[package]]
name = "joblib"
version = "1.1.0"
files = [{ file = "joblib-1.1.0.whl", hash = "sha256:aa" }]

[[package]]
name = "jeIlyfish"
version = "0.6.1"
files = []
""")
    project("pylock.toml", """\
lock-version = "1.0"
created-by = "tests"

[[packages]]
name = "keras"
version = "3.10.0"
index = "https://pypi.org/simple"
wheels = [{ name = "keras.whl", url = "https://x/keras.whl", hashes = { sha256 = "aa" } }]

[[packages]]
name = "onnx"
version = "1.17.0"
sdist = { name = "onnx.tar.gz", url = "https://x/onnx.tar.gz", hashes = { sha256 = "bb" } }
""")
    findings = _audit(tmp_path)
    poetry = [f for f in findings if f["path"] == "poetry.lock"]
    assert {(f["rule"], f["line"]) for f in poetry} >= {
        ("deps-vulnerable", 2), ("deps-known-malicious", 7), ("deps-missing-hash", 7)}
    pylock = [f for f in findings if f["path"] == "pylock.toml"]
    assert {f["rule"] for f in pylock} == {"deps-vulnerable"}
    assert {f["line"] for f in pylock} == {5}  # keras 3.10.0; onnx 1.17.0 is fixed


def test_pip_conf_and_uv_toml(project, tmp_path: Path) -> None:
    project("pip.conf", "[global]\nindex-url = https://pypi.org/simple\n"
            "extra-index-url =\n    https://a.example/simple\n    https://b.example/simple\n")
    project("sub/uv.toml", 'index-strategy = "unsafe-first-match"\n'
            'extra-index-url = ["http://c.example/simple"]\n')
    findings = _audit(tmp_path)
    extra = sorted((f["path"], f["line"]) for f in _by_rule(findings, "deps-extra-index-url"))
    assert extra == [("pip.conf", 4), ("pip.conf", 5), ("sub/uv.toml", 2)]
    assert [f["path"] for f in _by_rule(findings, "deps-unsafe-index-strategy")] == ["sub/uv.toml"]
    assert [f["path"] for f in _by_rule(findings, "deps-insecure-index")] == ["sub/uv.toml"]


def test_requirements_with_pip_conf_extra_index_unbinds_internal(project, tmp_path: Path) -> None:
    project("pip.conf", "[global]\nindex-url = https://pkgs.internal.example/simple\n")
    project("requirements.txt", "acme-models==1.0 --hash=sha256:aa\n")
    assert not _by_rule(_audit(tmp_path, "--internal", "acme-models"), "deps-internal-unbound")
    project("pip.conf", "[global]\nindex-url = https://pkgs.internal.example/simple\n"
            "extra-index-url = https://pypi.org/simple\n")
    unbound = _by_rule(_audit(tmp_path, "--internal", "acme-models"), "deps-internal-unbound")
    assert [f["path"] for f in unbound] == ["requirements.txt"]


def test_malformed_inputs_are_unscannable_not_clean(project, tmp_path: Path) -> None:
    project("pyproject.toml", "[project\nname = 'x'\n")
    project("pip.ini", "not an ini file\n")
    result = run_cli("deps", str(tmp_path), "--offline", "--format", "json")
    assert result.exit_code == 2
    assert rules_of(result) == {"deps-parse-error"}


def test_installed_environment_from_site_dir(tmp_path: Path) -> None:
    from deps.deps_support import install_into

    site = tmp_path / "site"
    install_into(site, "torch", {"torch/__init__.py": "raise SystemExit('imported!')\n"},
                 version="2.4.0")
    install_into(site, "colourama", {"colourama/__init__.py": ""}, version="0.1")
    result = run_cli("deps", "--site-dir", str(site), "--offline", "--format", "json")
    findings = flat(result)
    assert result.exit_code == 1
    assert {f["rule"] for f in findings} == {"deps-vulnerable", "deps-known-malicious"}
    assert all(str(f["path"]).startswith("installed:") for f in findings)
    assert {str(f.get("detail")) for f in findings} == {"torch", "colourama"}
