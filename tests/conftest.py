"""Suite-wide settings: nothing in the test suite may reach the internet."""

from __future__ import annotations

import os

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
