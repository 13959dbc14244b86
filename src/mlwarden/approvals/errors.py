"""Failures of the approval log that are the caller's to fix (key, store, arguments)."""

from __future__ import annotations


class ApprovalLogError(Exception):
    pass
