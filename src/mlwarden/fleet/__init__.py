"""Fleet scanning: many repositories, local processes or Ray, a shared verdict cache,
resumable results (Parquet or PostgreSQL)."""

from mlwarden.fleet.inputs import FleetInputError, RepoTask, from_file, from_hub, from_prefix
from mlwarden.fleet.run import FleetOptions, FleetStats, run_fleet
from mlwarden.fleet.sinks import SinkError, open_sink, read_parquet

__all__ = ["FleetInputError", "FleetOptions", "FleetStats", "RepoTask", "SinkError",
           "from_file", "from_hub", "from_prefix", "open_sink", "read_parquet", "run_fleet"]
