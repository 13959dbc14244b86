"""Content-addressed verdict cache keyed by sha256 + scanner version + rule version, in the
store's database layer (SQLite by default, PostgreSQL for a cluster)."""

from mlwarden.scancache.cache import (
    VERIFIED,
    CacheStats,
    ScanCache,
    default_root,
    git_key,
    rules_version,
    scanner_key,
    scanner_version,
)
from mlwarden.scancache.scan import CachedScan, scan_tree

__all__ = ["VERIFIED", "CacheStats", "CachedScan", "ScanCache", "default_root", "git_key",
           "rules_version",
           "scan_tree", "scanner_key", "scanner_version"]
