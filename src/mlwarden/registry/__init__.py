"""The private model registry: import into the store, and a Hub-compatible HTTP server."""
