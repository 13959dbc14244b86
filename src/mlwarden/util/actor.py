"""Who is acting, for logs and approvals, when no identity was given."""

from __future__ import annotations

import getpass
import os


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid:{os.getuid()}"
