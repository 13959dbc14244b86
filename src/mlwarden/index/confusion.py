"""The dependency-confusion sweep: which upstream projects carry internal names.

The upstream is never asked about an internal name (that would tell it which names are
internal, and a lookup per name cannot cover patterns such as ``acme-*``). Instead the
upstream's whole project list is read and matched here, against names and patterns alike.
"""

from __future__ import annotations

import time

from mlwarden.index import rules as R
from mlwarden.index.service import IndexService
from mlwarden.report.model import FileResult, Report, Verdict


def sweep(service: IndexService) -> Report:
    """Raises UpstreamError when the list cannot be read (the caller reports it)."""
    started = time.monotonic()
    hits = sorted({n for n in service.upstream.project_names()
                   if service.policy.is_internal(n)})
    new = set(service.storage.record_confusion(hits, service.policy.upstream_url))
    files = []
    for name in hits:
        served = [f.filename for f in service.storage.files(name)]
        if name in new:
            service.audit("pkg-confusion", name, status=0,
                          detail=f"{name} exists on {service.policy.upstream_url}: "
                                 "dependency confusion; never served")
        msg = (f"{name} is in the internal namespace and exists on "
               f"{service.policy.upstream_url}; the index serves only the internal "
               f"project ({len(served)} file(s)) and never the public one")
        files.append(FileResult(name, "project", Verdict.MALICIOUS, None, None,
                                (R.DEPENDENCY_CONFUSION.finding(msg),)))
    return Report("index confusion", tuple(files), time.monotonic() - started,
                  meta={"upstream": service.policy.upstream_url,
                        "internal": service.policy.internal.describe(),
                        "new": sorted(new)})
