"""Small shared helpers (atomic files, locks)."""
