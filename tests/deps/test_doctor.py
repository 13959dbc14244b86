"""`mlwarden doctor` in controlled environments: env passed explicitly, temp HOME, fake
installed distributions in a temp site dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deps.deps_support import flat, install_into, run_cli
from mlwarden.deps.doctor import DoctorOptions, proxy_target_risk, run_doctor


def _doctor(tmp_path: Path, env: dict[str, str], **kw: object) -> set[tuple[str, str]]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    report = run_doctor(DoctorOptions(env=env, home=home, site_dirs=(str(site),), **kw))
    return {(fr.path, f.rule) for fr in report.files for f in fr.findings
            if f.verdict.value != "clean"}


def test_clean_environment(tmp_path: Path) -> None:
    assert _doctor(tmp_path, {}) == set()


def test_endpoint_http_and_allowlist(tmp_path: Path) -> None:
    got = _doctor(tmp_path, {"HF_ENDPOINT": "http://mirror.corp:8080"})
    assert got == {("env:HF_ENDPOINT", "doctor-hf-endpoint-http"),
                   ("env:HF_ENDPOINT", "doctor-hf-endpoint-unlisted")}
    got = _doctor(tmp_path, {"HF_ENDPOINT": "https://mirror.corp/"},
                  allow_endpoints=("https://mirror.corp",))
    assert got == set()
    assert _doctor(tmp_path, {"HF_ENDPOINT": "https://huggingface.co"}) == set()


@pytest.mark.parametrize("value,risky", [
    ("http://169.254.169.254", True), ("169.254.10.1:3128", True),
    ("http://metadata.google.internal", True), ("http://[fe80::1]:8080", True),
    ("http://[fd00:ec2::254]", True), ("http://proxy.corp:3128", False),
    ("http://10.0.0.5:3128", False), ("not a url", False)])
def test_proxy_targets(value: str, risky: bool) -> None:
    assert (proxy_target_risk(value) is not None) is risky


def test_proxy_variables_and_quirks(tmp_path: Path) -> None:
    got = _doctor(tmp_path, {"HTTPS_PROXY": "http://169.254.169.254:80",
                             "http_proxy": "http://a:1", "HTTP_PROXY": "http://b:1",
                             "CURL_CA_BUNDLE": ""})
    assert got == {("env:HTTPS_PROXY", "doctor-proxy-metadata"),
                   ("env:HTTP_PROXY", "doctor-proxy-mismatch"),
                   ("env:CURL_CA_BUNDLE", "doctor-tls-disabled")}


def test_tokens_implicit_and_production(tmp_path: Path) -> None:
    token = tmp_path / "home" / ".cache" / "huggingface" / "token"
    token.parent.mkdir(parents=True)
    token.write_text("hf_not_a_real_token")
    os.chmod(token, 0o600)
    got = _doctor(tmp_path, {})
    assert got == {("env:HF_HUB_DISABLE_IMPLICIT_TOKEN", "doctor-implicit-token")}
    got = _doctor(tmp_path, {"HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "MLWARDEN_PRODUCTION": "1"})
    assert got == {(str(token), "doctor-token-on-production")}
    os.chmod(token, 0o644)
    got = _doctor(tmp_path, {"HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"})
    assert got == {(str(token), "doctor-token-permissions")}


def test_hf_home_and_token_path_locations(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf"
    hf_home.mkdir()
    (hf_home / "stored_tokens").write_text("[x]\n")
    os.chmod(hf_home / "stored_tokens", 0o600)
    got = _doctor(tmp_path, {"HF_HOME": str(hf_home), "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"},
                  production=True)
    assert got == {(str(hf_home / "stored_tokens"), "doctor-token-on-production")}


def test_transformers_conversion_and_vulnerable_versions(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_into(site, "transformers", {"transformers/__init__.py": "raise SystemExit\n"},
                 version="4.47.0")
    install_into(site, "torch", {"torch/__init__.py": "raise SystemExit\n"}, version="2.5.1")
    install_into(site, "huggingface_hub", {"huggingface_hub/__init__.py": ""},
                 version="1.30.0")
    got = _doctor(tmp_path, {})
    label = f"installed:{site}"
    assert ("env:DISABLE_SAFETENSORS_CONVERSION", "doctor-safetensors-conversion") in got
    assert (label, "deps-vulnerable") in got
    report = run_doctor(DoctorOptions(env={}, home=tmp_path / "home", site_dirs=(str(site),)))
    msgs = [f.message for fr in report.files for f in fr.findings if f.rule == "deps-vulnerable"]
    assert any("torch 2.5.1" in m and "CVE-2025-32434" in m for m in msgs)
    assert any("transformers 4.47.0" in m and "CVE-2024-11392" in m for m in msgs)
    # The endpoint-dependent hub issues are notes unless HF_ENDPOINT is custom.
    assert not any("MLW-2026-0003" in m for m in msgs)
    report = run_doctor(DoctorOptions(env={"HF_ENDPOINT": "https://mirror.corp",
                                           "DISABLE_SAFETENSORS_CONVERSION": "1"},
                                      home=tmp_path / "home", site_dirs=(str(site),),
                                      allow_endpoints=("https://mirror.corp",)))
    msgs = [f.message for fr in report.files for f in fr.findings if f.rule == "deps-vulnerable"]
    assert any("MLW-2026-0003" in m for m in msgs)
    assert not any(f.rule == "doctor-safetensors-conversion" for fr in report.files
                   for f in fr.findings)


def test_doctor_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in list(os.environ):
        if var.upper().startswith(("HF_", "HTTP", "ALL_PROXY", "NO_PROXY", "CURL_", "MLWARDEN",
                                   "XDG_CACHE")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")
    site = tmp_path / "site"
    site.mkdir()
    result = run_cli("doctor", "--site-dir", str(site), "--format", "json")
    assert result.exit_code == 3
    assert {f["rule"] for f in flat(result) if f["verdict"] != "clean"} == {
        "doctor-hf-endpoint-http", "doctor-hf-endpoint-unlisted"}
    sarif = run_cli("doctor", "--site-dir", str(site), "--format", "sarif")
    assert '"ruleId": "doctor-hf-endpoint-http"' in sarif.output
