"""Incident response: ``mlwarden trace`` (what contains, was built from, or depends on this?)
and ``mlwarden restore`` (back to the last commit whose signed BOM and provenance verify).
The runbook is docs/incident-response.md."""

from mlwarden.incident.errors import IncidentError, RestoreError, TraceInputError
from mlwarden.incident.restore import RestoreResult, restore_deployment, restore_tag
from mlwarden.incident.trace import Query, TraceResult, TraceSources, parse_query, trace

__all__ = ["IncidentError", "Query", "RestoreError", "RestoreResult", "TraceInputError",
           "TraceResult", "TraceSources", "parse_query", "restore_deployment", "restore_tag",
           "trace"]
