"""Suite-wide settings: nothing in the test suite may reach the internet."""

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")
