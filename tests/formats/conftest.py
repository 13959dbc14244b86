"""Fixtures of the format tests (helpers live in fmt_helpers)."""

from formats.fmt_helpers import bytes_read

__all__ = ["bytes_read"]
