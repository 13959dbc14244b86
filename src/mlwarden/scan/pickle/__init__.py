"""Pickle analysis by our own interpreter of the opcode stream (never by unpickling).

Public interface used by every pickle-bearing reader:

``scan_pickle(data, ctx, *, member=None, start=0, stacked=True) -> PickleScanResult``
"""

from mlwarden.scan.pickle.api import PickleScanResult, scan_pickle

__all__ = ["PickleScanResult", "scan_pickle"]
