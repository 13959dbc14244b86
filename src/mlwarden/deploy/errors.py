"""Deployment failures: one line each."""

from __future__ import annotations


class DeployError(Exception):
    pass
