"""The review console at ``/ui``: server-rendered pages (Starlette + Jinja2) for the people
who approve what the registry serves. No asset comes from the network; see
``security.py`` for sessions, CSRF and the Content-Security-Policy."""

from mlwarden.registry.console.app import create_console

__all__ = ["create_console"]
