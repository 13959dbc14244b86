"""Suite-wide settings: nothing in the test suite may reach the internet."""

import os

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
