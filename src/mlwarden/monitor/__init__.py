"""Runtime monitoring of deployed models and their Python environment against the approved
deployment's signed ML-BOM (or the manifest): ``mlwarden monitor``."""

from mlwarden.monitor.baseline import Baseline, Sources
from mlwarden.monitor.engine import Monitor, MonitorOptions
from mlwarden.monitor.errors import MonitorError

__all__ = ["Baseline", "Monitor", "MonitorError", "MonitorOptions", "Sources"]
