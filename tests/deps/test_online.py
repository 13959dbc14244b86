"""Every online lookup on loopback: public-index existence (JSON API, pypiserver's simple
API) and OSV querybatch, including the fail-closed paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deps.conftest import Loopback, free_port
from deps.deps_support import flat, run_cli
from mlwarden.deps import online


def _reqs(project) -> None:
    project("requirements.txt", "acme-models==1.0 --hash=sha256:aa\n"
            "torch==2.5.1 --hash=sha256:bb\n")


def test_internal_name_on_public_json_index(project, tmp_path: Path, loopback: Loopback) -> None:
    _reqs(project)
    loopback.routes[("GET", "/pypi/acme-models/json")] = (200, {"info": {"name": "acme-models"}},
                                                          0.0)
    result = run_cli("deps", str(tmp_path), "--internal", "acme_models", "--index-url",
                     loopback.url, "--format", "json")
    hits = [f for f in flat(result) if f["rule"] == "deps-internal-public"]
    assert [(f["path"], f["line"]) for f in hits] == [("requirements.txt", 1)]
    assert ("GET", "/pypi/acme-models/json", b"") in loopback.requests


def test_internal_name_absent_is_fine(project, tmp_path: Path, loopback: Loopback) -> None:
    _reqs(project)
    result = run_cli("deps", str(tmp_path), "--internal", "acme-models", "--index-url",
                     loopback.url, "--format", "json")
    rules = {f["rule"] for f in flat(result)}
    assert "deps-internal-public" not in rules and "deps-lookup-failed" not in rules


@pytest.mark.parametrize("route", [(500, {"error": "boom"}, 0.0), (200, b"<html>", 0.0),
                                   (403, {}, 0.0), (200, {"info": {}}, 3.0)])
def test_lookup_failures_fail_closed(project, tmp_path: Path, loopback: Loopback,
                                     route: tuple[int, object, float]) -> None:
    _reqs(project)
    loopback.default = route
    result = run_cli("deps", str(tmp_path), "--internal", "acme-models", "--index-url",
                     loopback.url, "--timeout", "1", "--format", "json")
    failed = [f for f in flat(result) if f["rule"] == "deps-lookup-failed"]
    assert len(failed) == 1 and failed[0]["line"] == 1
    assert result.exit_code == 2


def test_server_down_fails_closed(project, tmp_path: Path) -> None:
    _reqs(project)
    result = run_cli("deps", str(tmp_path), "--internal", "acme-models", "--index-url",
                     f"http://127.0.0.1:{free_port()}", "--format", "json")
    assert [f["rule"] for f in flat(result) if f["verdict"] == "unscannable"] == [
        "deps-lookup-failed"]
    assert result.exit_code == 2


def test_cross_origin_redirect_is_a_failure(loopback: Loopback) -> None:
    loopback.default = (302, "https://pypi.org/pypi/x/json", 0.0)
    with pytest.raises(online.LookupFailed, match="another origin"):
        online.project_exists("x", loopback.url, timeout=2)


def test_offline_skips_lookups(project, tmp_path: Path) -> None:
    _reqs(project)
    result = run_cli("deps", str(tmp_path), "--internal", "acme-models", "--index-url",
                     f"http://127.0.0.1:{free_port()}", "--offline", "--format", "json")
    assert "deps-lookup-failed" not in {f["rule"] for f in flat(result)}


def test_pypiserver_simple_api(pypiserver: str) -> None:
    assert online.project_exists("acme_internal", pypiserver) is True
    assert online.project_exists("not-there-at-all", pypiserver) is False


def test_pypiserver_end_to_end(project, tmp_path: Path, pypiserver: str) -> None:
    project("requirements.txt", "acme-internal==1.0 --hash=sha256:aa\n")
    result = run_cli("deps", str(tmp_path), "--internal", "acme-internal", "--index-url",
                     pypiserver, "--format", "json")
    assert [f["rule"] for f in flat(result) if f["severity"] == "critical"] == [
        "deps-internal-public"]
    assert result.exit_code == 3


def test_osv_querybatch_reports_new_ids(project, tmp_path: Path, loopback: Loopback) -> None:
    _reqs(project)

    def answer(body: bytes) -> dict[str, object]:
        queries = json.loads(body)["queries"]
        return {"results": [
            {"vulns": [{"id": "GHSA-53q9-r3pm-6pq6"}, {"id": "OSV-2099-1"}]}
            if q["package"]["name"] == "torch" else {} for q in queries]}

    loopback.routes[("POST", "/v1/querybatch")] = (200, answer, 0.0)  # type: ignore[assignment]
    result = run_cli("deps", str(tmp_path), "--offline", "--format", "json")
    assert "OSV-2099-1" not in result.output
    result = run_cli("deps", str(tmp_path), "--online", "--osv-url", loopback.url,
                     "--format", "json")
    osv = [f for f in flat(result) if "(OSV)" in str(f["message"])]
    # The GHSA is an alias of the bundled CVE record, so only the new id is added.
    assert [f["message"] for f in osv] == ["torch 2.5.1 is affected by OSV-2099-1 (OSV)"]


@pytest.mark.parametrize("route", [(500, {}, 0.0), (200, {"results": []}, 0.0),
                                   (200, b"not json", 0.0)])
def test_osv_failures_fail_closed(project, tmp_path: Path, loopback: Loopback,
                                  route: tuple[int, object, float]) -> None:
    _reqs(project)
    loopback.routes[("POST", "/v1/querybatch")] = route
    result = run_cli("deps", str(tmp_path), "--online", "--osv-url", loopback.url,
                     "--format", "json")
    assert "deps-lookup-failed" in {f["rule"] for f in flat(result)}
    assert result.exit_code == 2
