"""The live display of a fleet run and its closing summary (text and a matplotlib PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlwarden.fleet.run import FleetStats


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def line(s: FleetStats) -> str:
    v = " ".join(f"{k} {n}" for k, n in sorted(s.verdicts.items())) or "-"
    return (f"{s.done}/{s.total} repos ({s.rate:.1f}/s) | read {human(s.bytes_read)} of "
            f"{human(s.total_bytes)} | cache hits {s.hit_rate:.0%} | {v}")


class LiveProgress:
    """A rich progress bar whose description carries the fleet's figures."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress("[progress.description]{task.description}", BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), transient=False)
        self.task: Any = None

    def __enter__(self) -> LiveProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, s: FleetStats) -> None:
        if self.task is None:
            self.task = self.progress.add_task("fleet", total=s.total)
        self.progress.update(self.task, completed=s.done, total=s.total,
                             description=line(s))


def write_summary_png(s: FleetStats, path: Path) -> None:
    """Verdict counts, and bytes read against the repositories' total size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    order = ["clean", "suspicious", "unscannable", "malicious"]
    colours = ["#4caf50", "#ffb300", "#9e9e9e", "#e53935"]
    counts = [s.verdicts.get(k, 0) for k in order]
    a.bar(order, counts, color=colours)
    a.set_title(f"verdicts ({s.done} repositories)")
    for i, c in enumerate(counts):
        a.text(i, c, str(c), ha="center", va="bottom")
    read, total = s.bytes_read, max(s.total_bytes, 1)
    b.bar(["total size", "bytes read"], [total / 2**30, read / 2**30],
          color=["#90a4ae", "#1e88e5"])
    b.set_ylabel("GiB")
    b.set_title(f"bytes read: {read / total:.4%} of {human(total)} "
                f"(saved {human(total - read)}); cache hits {s.hit_rate:.0%}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    tmp.replace(path)
