"""The bundled OSV database: regenerated from the reference markdown, OSV range semantics,
and range-admits-vulnerable probing."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from deps.deps_support import run_cli
from mlwarden.deps import advisories as adv
from mlwarden.deps.advisories_build import build, events_from

REFERENCE = Path("/work/shared/reference/ml-advisories.md")


def _adv(*events: tuple[str, str]) -> adv.Advisory:
    return adv.Advisory("X-1", (), "pkg", "s", tuple(events))


def test_osv_event_semantics() -> None:
    a = _adv(("introduced", "0"), ("fixed", "2.6.0"))
    assert a.affects("2.5.1") and a.affects("2.6.0rc1") and not a.affects("2.6.0")
    b = _adv(("introduced", "1.24.0"), ("last_affected", "2.14.1"))
    assert not b.affects("1.23.9") and b.affects("1.24.0") and b.affects("2.14.1")
    assert not b.affects("2.14.2")
    c = _adv(("introduced", "2.0"))
    assert c.affects("9.9") and not c.affects("1.9")
    two = _adv(("introduced", "1.0"), ("fixed", "1.2"), ("introduced", "2.0"), ("fixed", "2.1"))
    assert [two.affects(v) for v in ("0.9", "1.1", "1.5", "2.0.5", "2.1")] == [
        False, True, False, True, False]
    assert not a.affects("not-a-version")


@pytest.mark.parametrize("spec,admits", [
    ("", True), (">=2.0", True), (">=2.6", False), ("~=2.5.0", True), ("==2.6.0", False),
    ("<2", True), (">2.5.1", True), (">=2.5.1,!=2.5.1", True), ("==2.5.*", True),
    (">=3,<4", False)])
def test_range_admits(spec: str, admits: bool) -> None:
    assert _adv(("introduced", "0"), ("fixed", "2.6.0")).admitted_by(spec) is admits


def test_events_from_reference_cells() -> None:
    assert events_from("<4.36.0", "4.36.0") == [{"introduced": "0"}, {"fixed": "4.36.0"}]
    assert events_from("≤2.4.1", "none (vendor)") == [{"introduced": "0"},
                                                       {"last_affected": "2.4.1"}]
    assert events_from("3.0.0..3.10.0", "3.11.0") == [{"introduced": "3.0.0"},
                                                       {"fixed": "3.11.0"}]
    assert events_from("≥1.24.0; last_affected 2.14.1", "no fixed version listed") == [
        {"introduced": "1.24.0"}, {"last_affected": "2.14.1"}]
    assert events_from('"through 5.1.0"', "not stated") == [{"introduced": "0"},
                                                             {"last_affected": "5.1.0"}]
    assert events_from("1.4.2", "none") == [{"introduced": "1.4.2"},
                                            {"last_affected": "1.4.2"}]


@pytest.mark.may_skip
@pytest.mark.skipif(not REFERENCE.exists(), reason="reference markdown not available")
def test_bundled_db_is_regenerated_from_reference() -> None:
    bundled = json.loads(resources.files("mlwarden.deps").joinpath("data/advisories.json")
                         .read_text())
    assert build(REFERENCE.read_text()) == bundled


def test_bundled_db_content() -> None:
    db = adv.bundled()
    assert db.schema_version == 1 and db.db_version
    ids = {a.id for a in db.advisories}
    assert len(ids) == len(db.advisories) >= 70
    no_cve = [a for a in db.advisories if a.id.startswith("MLW-")]
    assert {a.package for a in no_cve} == {"huggingface-hub"} and len(no_cve) == 4
    assert [a.id for a in db.matching("torch", "2.5.1")][:1] == ["CVE-2025-32434"]
    assert not db.matching("torch", "2.13.0+cpu")
    assert {a.id for a in db.matching("huggingface_hub", "0.13.3")} >= {"MLW-2026-0001"}
    disputed = next(a for a in db.advisories if a.id == "CVE-2024-48063")
    assert disputed.disputed and "disputed" in disputed.label()


def test_custom_db_and_bad_db(tmp_path: Path, project) -> None:
    project("requirements.txt", "mypkg==1.0 --hash=sha256:aa\n")
    db = {"schema_version": 1, "db_version": "t", "advisories": [{
        "id": "TEST-1", "summary": "bad", "affected": [{"package": {"ecosystem": "PyPI",
                                                                     "name": "MyPkg"},
                                                         "versions": ["1.0"]}]}]}
    (tmp_path / "db.json").write_text(json.dumps(db))
    result = run_cli("deps", str(tmp_path / "requirements.txt"), "--offline",
                     "--advisory-db", str(tmp_path / "db.json"), "--format", "json")
    assert "TEST-1" in result.output and result.exit_code == 3
    (tmp_path / "db.json").write_text('{"schema_version": 99}')
    result = run_cli("deps", str(tmp_path / "requirements.txt"), "--offline",
                     "--advisory-db", str(tmp_path / "db.json"))
    assert result.exit_code == 4 and "schema" in result.output
