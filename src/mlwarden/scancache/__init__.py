"""Content-addressed scan cache keyed by sha256 + scanner version + rule version."""

from mlwarden.scancache.cache import ScanCache, default_root, rules_version, scanner_version
from mlwarden.scancache.scan import CachedScan, scan_tree

__all__ = ["CachedScan", "ScanCache", "default_root", "rules_version", "scan_tree",
           "scanner_version"]
