"""The Hugging Face model card front matter (YAML between leading ``---`` lines of README.md),
read bounded and with yaml.safe_load; only the keys an ML-BOM needs, type-checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_README_BYTES = 1 << 20
MAX_ITEMS = 1000  # per list: a card naming more datasets or metrics is not a real card


@dataclass(frozen=True)
class Metric:
    type: str
    value: str
    name: str | None = None
    dataset: str | None = None  # the dataset (and split) the value was measured on
    task: str | None = None


@dataclass(frozen=True)
class ModelCard:
    license: str | None = None
    datasets: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    task: str | None = None  # pipeline_tag, else the first model-index task type
    metrics: tuple[str, ...] = ()  # metric names declared in `metrics:`
    results: tuple[Metric, ...] = ()  # model-index results
    library: str | None = None
    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    error: str | None = None  # why the front matter could not be read, if it could not


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, list):
        return tuple(str(v) for v in value[:MAX_ITEMS]
                     if isinstance(v, (str, int, float)) and not isinstance(v, bool))
    return ()


def _str(value: Any) -> str | None:
    s = _strs(value)
    return s[0] if s else None


def front_matter(text: str) -> dict[str, Any] | None:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            doc = yaml.safe_load("\n".join(lines[1:i]))
            return doc if isinstance(doc, dict) else None
    return None


def read_model_card(readme: Path) -> ModelCard:
    try:
        with readme.open("rb") as fh:
            data = fh.read(MAX_README_BYTES)
    except FileNotFoundError:
        return ModelCard()
    except OSError as exc:
        return ModelCard(error=f"cannot read {readme.name}: {exc.strerror}")
    try:
        doc = front_matter(data.decode("utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        return ModelCard(error=f"invalid YAML front matter: {str(exc).splitlines()[0]}")
    if doc is None:
        return ModelCard()
    return parse_card(doc)


def parse_card(doc: dict[str, Any]) -> ModelCard:
    results: list[Metric] = []
    tasks: list[str] = []
    index = doc.get("model-index")
    for entry in index[:MAX_ITEMS] if isinstance(index, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("results"), list):
            continue
        for res in entry["results"][:MAX_ITEMS]:
            if not isinstance(res, dict):
                continue
            task_v, ds_v = res.get("task"), res.get("dataset")
            task: dict[str, Any] = task_v if isinstance(task_v, dict) else {}
            ds: dict[str, Any] = ds_v if isinstance(ds_v, dict) else {}
            task_type = _str(task.get("type"))
            if task_type:
                tasks.append(task_type)
            ds_name = _str(ds.get("name")) or _str(ds.get("type"))
            if ds_name and _str(ds.get("split")):
                ds_name = f"{ds_name} ({ds.get('split')})"
            metrics = res.get("metrics")
            for m in metrics[:MAX_ITEMS] if isinstance(metrics, list) else []:
                if isinstance(m, dict) and _str(m.get("type")) and "value" in m \
                        and _str(m.get("value")) is not None:
                    results.append(Metric(str(_str(m["type"])), str(_str(m["value"])),
                                          _str(m.get("name")), ds_name, task_type))
    return ModelCard(
        license=_str(doc.get("license")) if _str(doc.get("license")) != "other"
        else (_str(doc.get("license_name")) or "other"),
        datasets=_strs(doc.get("datasets")),
        base_models=_strs(doc.get("base_model")),
        task=_str(doc.get("pipeline_tag")) or (tasks[0] if tasks else None),
        metrics=_strs(doc.get("metrics")),
        results=tuple(results),
        library=_str(doc.get("library_name")),
        languages=_strs(doc.get("language")),
        tags=_strs(doc.get("tags")),
    )
