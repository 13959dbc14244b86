"""The package airlock: a private Python index (PEP 503/691/658/700) over the model store.

Layers, devpi-style, each depending only on the ones above it:

- ``names``, ``rules``, ``model``: filenames, namespace patterns, rules, frozen records;
- ``policy``: the policy file and the decisions it makes (admit, hold, refuse);
- ``storage``: the index's own tables plus the store's blobs (no index logic in it);
- ``upstream``: reading a public index's simple API (PEP 691 JSON or PEP 503 HTML);
- ``inspection``: what happens to a file in quarantine (hash, deps inspect, lists);
- ``service``: the index logic shared by the HTTP app and the CLI (listing, pull-through
  admission, uploads, review decisions);
- ``simple``: rendering the simple API; ``app``: the ASGI application; ``lock``,
  ``confusion``: the lock writer and the dependency-confusion sweep.
"""
