"""Suite-wide settings: nothing in the test suite may reach the internet."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Property tests: deterministic in CI (a red build must be reproducible), random locally.
try:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


@pytest.fixture(autouse=True, scope="session")
def _approval_log_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Approvals are mirrored into a signed log whose key lives outside every store; keep
    the suite's key in a temporary directory instead of the user's ~/.config."""
    if "MLWARDEN_LOG_KEY" not in os.environ:
        os.environ["MLWARDEN_LOG_KEY"] = str(tmp_path_factory.mktemp("approval-key") / "k.pem")


# CI starts every service the suite uses; there a skip means a service or tool is missing,
# which must fail the build instead of passing quietly. Tests whose skip is legitimate on a
# clean clone (material outside the repository) carry the ``may_skip`` marker.
REQUIRE_SERVICES = os.environ.get("MLWARDEN_REQUIRE_SERVICES") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and item.get_closest_marker("may_skip") is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under MLWARDEN_REQUIRE_SERVICES=1 (CI): {reason}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the server named by MLWARDEN_TEST_POSTGRES,
    dropped afterwards, so parallel workers and parallel suites never share state."""
    base = os.environ.get("MLWARDEN_TEST_POSTGRES")
    if not base:
        pytest.skip("set MLWARDEN_TEST_POSTGRES=postgresql://... to test PostgreSQL")
    import uuid

    import psycopg

    name = f"mlwt_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = base.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
