"""``mlwarden doctor``: the environment's ML supply-chain posture. Reads environment
variables, token file metadata (never the token itself) and installed distribution metadata;
imports none of the ML libraries."""

from __future__ import annotations

import ipaddress
import os
import stat
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlwarden.deps import advisories as adv
from mlwarden.deps.inputs.installed import parse_installed
from mlwarden.deps.rules import ADVISORY_NOTE, VULNERABLE
from mlwarden.report.model import FileResult, Finding, Location, Report, Severity, Verdict
from mlwarden.report.rules import rule

OFFICIAL_ENDPOINTS = ("https://huggingface.co",)
_TRUE = {"1", "on", "yes", "true"}
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "metadata.azure.com",
                   "instance-data", "instance-data.ec2.internal", "metadata.packet.net"}
_METADATA_IPS = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254",
                                                   "100.100.100.200", "169.254.170.2")}
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

ENDPOINT_HTTP = rule(
    "doctor-hf-endpoint-http", Verdict.SUSPICIOUS, Severity.HIGH,
    "HF_ENDPOINT uses plain http",
    "The Hub token is sent to HF_ENDPOINT in clear text, and a man in the middle can answer "
    "with path-traversing ETags/shas (hub-protocol §8). Use https.",
)
ENDPOINT_UNLISTED = rule(
    "doctor-hf-endpoint-unlisted", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "HF_ENDPOINT is not on the allowlist",
    "Every Hub download and the stored token go to this host. Allow it explicitly with "
    "--allow-endpoint if it is your mirror.",
)
PROXY_METADATA = rule(
    "doctor-proxy-metadata", Verdict.SUSPICIOUS, Severity.HIGH,
    "Proxy variable points at a link-local or cloud metadata address",
    "Traffic (and tokens in it) would go to the instance metadata service or a link-local "
    "host: a misconfiguration or an SSRF/credential-theft setup.",
)
PROXY_MISMATCH = rule(
    "doctor-proxy-mismatch", Verdict.SUSPICIOUS, Severity.LOW,
    "Lower- and upper-case proxy variables disagree",
    "requests/urllib prefer the lower-case variable, other tools the upper-case one, so "
    "different libraries in the same process use different proxies (or none).",
)
TLS_DISABLED = rule(
    "doctor-tls-disabled", Verdict.SUSPICIOUS, Severity.HIGH,
    "Certificate verification disabled through the environment",
    "CURL_CA_BUNDLE='' makes requests skip verification; PYTHONHTTPSVERIFY=0 disables it "
    "for urllib. Downloads and tokens are then open to interception.",
)
IMPLICIT_TOKEN = rule(
    "doctor-implicit-token", Verdict.SUSPICIOUS, Severity.LOW,
    "HF_HUB_DISABLE_IMPLICIT_TOKEN is unset while a token is available",
    "huggingface_hub then sends the token with every request, including to public repos and "
    "custom endpoints. Set HF_HUB_DISABLE_IMPLICIT_TOKEN=1 and pass tokens explicitly.",
)
SAFETENSORS_CONVERSION = rule(
    "doctor-safetensors-conversion", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "DISABLE_SAFETENSORS_CONVERSION is unset while transformers is installed",
    "Loading a repo with only pytorch_model.bin starts a background thread that POSTs the "
    "token to safetensors-convert.hf.space whatever HF_ENDPOINT says (hub-protocol §8). "
    "Set DISABLE_SAFETENSORS_CONVERSION=1 or run offline.",
)
TOKEN_PRODUCTION = rule(
    "doctor-token-on-production", Verdict.SUSPICIOUS, Severity.HIGH,
    "Cached Hugging Face token on a production host",
    "A login token cached on disk is readable by every process of the user and outlives the "
    "job. Inject a scoped token at run time instead.",
)
TOKEN_PERMISSIONS = rule(
    "doctor-token-permissions", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Token file readable by group or others",
    "chmod 600 the token file.",
)
NOTE = rule("doctor-note", Verdict.CLEAN, Severity.INFO, "Posture check passed or not applicable")


@dataclass(frozen=True)
class DoctorOptions:
    allow_endpoints: tuple[str, ...] = ()
    production: bool = False
    site_dirs: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None  # default: os.environ
    home: Path | None = None  # default: Path.home()
    advisory_db: str | None = None


@dataclass
class _Out:
    entries: dict[str, list[Finding]] = field(default_factory=dict)

    def add(self, path: str, finding: Finding) -> None:
        self.entries.setdefault(path, []).append(finding)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def _norm(url: str) -> str:
    return url.strip().rstrip("/").lower()


def run_doctor(options: DoctorOptions) -> Report:
    started = time.monotonic()
    env = dict(os.environ if options.env is None else options.env)
    home = options.home or Path.home()
    out = _Out()
    installed = parse_installed(list(options.site_dirs) or None)
    names = {d.name for d in installed.deps}
    endpoint = env.get("HF_ENDPOINT", "").strip()
    custom_endpoint = bool(endpoint) and _norm(endpoint) not in OFFICIAL_ENDPOINTS

    _endpoint(out, endpoint, options)
    _proxies(out, env)
    _tls(out, env)
    tokens = _token_files(env, home)
    token_available = bool(tokens) or bool(env.get("HF_TOKEN") or env.get(
        "HUGGING_FACE_HUB_TOKEN"))
    offline = _truthy(env.get("HF_HUB_OFFLINE")) or _truthy(env.get("TRANSFORMERS_OFFLINE"))
    if not _truthy(env.get("HF_HUB_DISABLE_IMPLICIT_TOKEN")):
        if token_available:
            out.add("env:HF_HUB_DISABLE_IMPLICIT_TOKEN", IMPLICIT_TOKEN.finding(
                "a Hub token is available and is sent implicitly with every request"))
        else:
            out.add("env:HF_HUB_DISABLE_IMPLICIT_TOKEN", NOTE.finding(
                "unset, but no Hub token is available"))
    if "transformers" in names and not _truthy(env.get("DISABLE_SAFETENSORS_CONVERSION")) \
            and not offline:
        out.add("env:DISABLE_SAFETENSORS_CONVERSION", SAFETENSORS_CONVERSION.finding(
            "transformers is installed and DISABLE_SAFETENSORS_CONVERSION is not set"))
    production = options.production or _truthy(env.get("MLWARDEN_PRODUCTION"))
    for token in tokens:
        label = str(token)
        if production:
            out.add(label, TOKEN_PRODUCTION.finding("cached Hub token on a host marked "
                                                    "production"))
        try:
            mode = token.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            out.add(label, TOKEN_PERMISSIONS.finding(f"mode {stat.filemode(mode)}"))
        elif not production:
            out.add(label, NOTE.finding("cached token (host not marked production)"))
    db = adv.load(options.advisory_db)
    for d in installed.deps:
        for a in db.matching(d.name, d.version or ""):
            fix = f"; fixed in {a.fixed}" if a.fixed else "; no fixed release"
            msg = f"{d.raw_name} {d.version} is affected by {a.label()}: {a.summary}{fix}"
            if a.condition == "untrusted-endpoint" and not custom_endpoint:
                out.add(installed.path, ADVISORY_NOTE.finding(
                    msg + " (applies only with a custom or intercepted HF_ENDPOINT)",
                    Location(detail=d.raw_name)))
            else:
                out.add(installed.path, VULNERABLE.finding(msg, Location(detail=d.raw_name)))
    out.entries.setdefault(installed.path, [])
    files = tuple(FileResult(path, "environment", Verdict.worst(f.verdict for f in fs), None,
                             None, tuple(fs)) for path, fs in out.entries.items())
    return Report("doctor", files, time.monotonic() - started,
                  meta={"production": production, "advisory_db": db.db_version})


def _endpoint(out: _Out, endpoint: str, options: DoctorOptions) -> None:
    if not endpoint:
        out.add("env:HF_ENDPOINT", NOTE.finding("unset: the official Hub is used"))
        return
    if urllib.parse.urlsplit(endpoint).scheme.lower() == "http":
        out.add("env:HF_ENDPOINT", ENDPOINT_HTTP.finding(f"HF_ENDPOINT={endpoint}"))
    allowed = {_norm(e) for e in (*OFFICIAL_ENDPOINTS, *options.allow_endpoints)}
    if _norm(endpoint) not in allowed:
        out.add("env:HF_ENDPOINT", ENDPOINT_UNLISTED.finding(f"HF_ENDPOINT={endpoint}"))


def proxy_target_risk(value: str) -> str | None:
    """Why a proxy URL's host is dangerous (link-local / metadata), or None."""
    url = value.strip()
    if "://" not in url:
        url = "http://" + url
    try:
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
    except ValueError:
        return None
    if host in _METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip in _METADATA_IPS:
        return f"{host} is a cloud metadata address"
    if ip.is_link_local:
        return f"{host} is link-local"
    return None


def _proxies(out: _Out, env: dict[str, str]) -> None:
    for var in _PROXY_VARS:
        lower, upper = env.get(var), env.get(var.upper())
        if lower is not None and upper is not None and lower.strip() != upper.strip():
            out.add(f"env:{var.upper()}", PROXY_MISMATCH.finding(
                f"{var}={lower!r} but {var.upper()}={upper!r}"))
        if var == "no_proxy":
            continue
        for name, value in ((var, lower), (var.upper(), upper)):
            if value:
                risk = proxy_target_risk(value)
                if risk:
                    out.add(f"env:{name}", PROXY_METADATA.finding(f"{name}={value}: {risk}"))


def _tls(out: _Out, env: dict[str, str]) -> None:
    if "CURL_CA_BUNDLE" in env and env["CURL_CA_BUNDLE"].strip() == "":
        out.add("env:CURL_CA_BUNDLE", TLS_DISABLED.finding(
            "CURL_CA_BUNDLE is set to an empty string"))
    if env.get("PYTHONHTTPSVERIFY", "").strip() == "0":
        out.add("env:PYTHONHTTPSVERIFY", TLS_DISABLED.finding("PYTHONHTTPSVERIFY=0"))


def _token_files(env: dict[str, str], home: Path) -> list[Path]:
    """Existing cached-token files, in huggingface_hub's lookup locations."""
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else home / ".cache"
    hf_home = Path(env["HF_HOME"]).expanduser() if env.get("HF_HOME") else cache / "huggingface"
    candidates = [hf_home / "token", hf_home / "stored_tokens",
                  home / ".cache" / "huggingface" / "token",
                  home / ".cache" / "huggingface" / "stored_tokens",
                  home / ".huggingface" / "token"]
    if env.get("HF_TOKEN_PATH"):
        candidates.insert(0, Path(env["HF_TOKEN_PATH"]).expanduser())
    found: list[Path] = []
    for c in candidates:
        if c not in found and c.is_file():
            found.append(c)
    return found
