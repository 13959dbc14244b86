"""Monitor failures the operator must fix (bad options, a second instance): one line."""

from __future__ import annotations


class MonitorError(Exception):
    pass
