"""pyproject.toml ([project], [dependency-groups], [tool.poetry], [tool.uv],
[tool.mlwarden]) and uv.toml, parsed with tomllib; requirement strings with packaging."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from mlwarden.deps.inputs import find_key_line, find_line, load_toml, loc, table_line
from mlwarden.deps.inputs.requirements import display, exact_version
from mlwarden.deps.model import Dep, IndexSetting, Parsed
from mlwarden.deps.rules import PARSE_ERROR


def parse_pyproject(path: Path, root: Path) -> Parsed:
    parsed = Parsed(display(path, root), "pyproject")
    loaded = load_toml(parsed, path)
    if loaded is None:
        return parsed
    doc, lines = loaded
    project = _table(doc, "project")
    start = table_line(lines, "project")
    for req in _strings(project.get("dependencies")):
        _pep508(parsed, req, lines, start)
    for group in _table(project, "optional-dependencies").values():
        for req in _strings(group):
            _pep508(parsed, req, lines, table_line(lines, "project.optional-dependencies"))
    for group in _table(doc, "dependency-groups").values():
        for req in _strings(group):
            _pep508(parsed, req, lines, table_line(lines, "dependency-groups"))
    tool = _table(doc, "tool")
    _poetry(parsed, _table(tool, "poetry"), lines)
    uv = _table(tool, "uv")
    uv_config(parsed, uv, lines, "tool.uv")
    _uv_sources(parsed, _table(uv, "sources"))
    internal = _table(tool, "mlwarden").get("internal-packages", [])
    parsed.internal.extend(Dep.canonical(n) for n in _strings(internal))
    mlw_index = _table(tool, "mlwarden").get("index-url")
    parsed.mlwarden_index.extend([mlw_index] if isinstance(mlw_index, str) else
                                 _strings(mlw_index))
    return parsed


def parse_uv_toml(path: Path, root: Path) -> Parsed:
    parsed = Parsed(display(path, root), "uv-toml")
    loaded = load_toml(parsed, path)
    if loaded is not None:
        doc, lines = loaded
        uv_config(parsed, doc, lines, "")
    return parsed


def _table(doc: Any, key: str) -> dict[str, Any]:
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _req_line(lines: list[str], text: str, start: int) -> int | None:
    return (find_line(lines, f'"{text}"', start) or find_line(lines, f"'{text}'", start)
            or find_line(lines, f'"{text}"') or find_line(lines, f"'{text}'"))


def _pep508(parsed: Parsed, text: str, lines: list[str], start: int) -> None:
    line = _req_line(lines, text, start)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        parsed.findings.append(PARSE_ERROR.finding(f"invalid requirement {text!r}: {exc}",
                                                   loc(line)))
        return
    spec = str(req.specifier)
    parsed.deps.append(Dep(
        name=Dep.canonical(req.name), raw_name=req.name, path=parsed.path, line=line,
        specifier=spec, version=exact_version(spec), url=req.url,
        marker=str(req.marker) if req.marker else None, origin="pyproject"))


# ----------------------------------------------------------------------------- poetry

_POETRY_VERSION = re.compile(r"^\d+(\.\d+)*$")


def poetry_to_pep440(constraint: str) -> str | None:
    """Translate a poetry constraint (^, ~, *, bare version, PEP 440) to a PEP 440 specifier.
    None when it cannot be translated (it is then not checked against advisories)."""
    parts: list[str] = []
    for raw in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", constraint.strip()):
        c = raw.strip()
        if not c or c == "*":
            continue
        if c.startswith("^") and _POETRY_VERSION.match(c[1:]):
            nums = [int(x) for x in c[1:].split(".")]
            idx = next((i for i, n in enumerate(nums) if n != 0), len(nums) - 1)
            upper = [*nums[:idx], nums[idx] + 1]
            parts += [f">={c[1:]}", "<" + ".".join(map(str, upper))]
        elif c.startswith("~") and not c.startswith("~=") and _POETRY_VERSION.match(c[1:]):
            nums = [int(x) for x in c[1:].split(".")]
            upper = [nums[0] + 1] if len(nums) == 1 else [nums[0], nums[1] + 1]
            parts += [f">={c[1:]}", "<" + ".".join(map(str, upper))]
        elif _POETRY_VERSION.match(c):
            parts.append(f"=={c}")
        else:
            parts.append(c)
    spec = ",".join(parts)
    try:
        return str(SpecifierSet(spec))
    except InvalidSpecifier:
        return None


def _poetry(parsed: Parsed, poetry: dict[str, Any], lines: list[str]) -> None:
    if not poetry:
        return
    tables: list[tuple[str, dict[str, Any]]] = [
        ("tool.poetry.dependencies", _table(poetry, "dependencies")),
        ("tool.poetry.dev-dependencies", _table(poetry, "dev-dependencies"))]
    for gname, group in _table(poetry, "group").items():
        tables.append((f"tool.poetry.group.{gname}.dependencies", _table(group, "dependencies")))
    for header, deps in tables:
        start = table_line(lines, header)
        for raw_name, value in deps.items():
            if raw_name.lower() == "python":
                continue
            line = find_line(lines, f"{raw_name} =", start) or find_line(lines, f"{raw_name}=",
                                                                          start)
            for entry in value if isinstance(value, list) else [value]:
                parsed.deps.append(_poetry_dep(parsed, raw_name, entry, line))
    for source in poetry.get("source", []) if isinstance(poetry.get("source"), list) else []:
        if isinstance(source, dict) and isinstance(source.get("url"), str):
            name = str(source.get("name", ""))
            priority = str(source.get("priority", "primary"))
            parsed.indexes.append(IndexSetting(
                parsed.path, find_key_line(lines, "url", source["url"]), "index",
                source["url"], name=name, explicit=priority == "explicit", priority=priority))


def _poetry_dep(parsed: Parsed, raw_name: str, entry: Any, line: int | None) -> Dep:
    url: str | None = None
    source: str | None = None
    constraint = ""
    if isinstance(entry, str):
        constraint = entry
    elif isinstance(entry, dict):
        constraint = str(entry.get("version", ""))
        source = entry.get("source") if isinstance(entry.get("source"), str) else None
        for key in ("git", "url", "path"):
            if isinstance(entry.get(key), str):
                url = entry[key] if key != "git" else "git+" + entry[key] + (
                    "@" + str(entry["rev"]) if isinstance(entry.get("rev"), str) else "")
    spec = poetry_to_pep440(constraint) if constraint else ""
    return Dep(name=Dep.canonical(raw_name), raw_name=raw_name, path=parsed.path, line=line,
               specifier=spec or "", version=exact_version(spec or ""), url=url,
               index=source, origin="pyproject")


# ----------------------------------------------------------------------------- uv

def uv_config(parsed: Parsed, uv: dict[str, Any], lines: list[str], prefix: str) -> None:
    """Index settings of a [tool.uv] table or a uv.toml document (same keys)."""
    pip = _table(uv, "pip")
    for table in (uv, pip):
        if isinstance(table.get("index-url"), str):
            parsed.indexes.append(IndexSetting(
                parsed.path, find_key_line(lines, "index-url", table["index-url"]),
                "index-url", table["index-url"]))
        extra = table.get("extra-index-url")
        for url in _strings(extra) + ([extra] if isinstance(extra, str) else []):
            parsed.indexes.append(IndexSetting(parsed.path, find_line(lines, url),
                                               "extra-index-url", url))
        if isinstance(table.get("index-strategy"), str):
            parsed.indexes.append(IndexSetting(
                parsed.path, find_key_line(lines, "index-strategy", table["index-strategy"]),
                "index-strategy", table["index-strategy"]))
    for index in uv.get("index", []) if isinstance(uv.get("index"), list) else []:
        if isinstance(index, dict) and isinstance(index.get("url"), str):
            parsed.indexes.append(IndexSetting(
                parsed.path, find_key_line(lines, "url", index["url"]), "index", index["url"],
                name=str(index.get("name", "")) or None, explicit=index.get("explicit") is True,
                priority="default" if index.get("default") is True else None))


def _uv_sources(parsed: Parsed, sources: dict[str, Any]) -> None:
    """Bind dependencies to the index named in [tool.uv.sources]."""
    bound: dict[str, str] = {}
    for raw_name, value in sources.items():
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, dict) and isinstance(entry.get("index"), str):
                bound[Dep.canonical(raw_name)] = entry["index"]
            elif isinstance(entry, dict) and any(k in entry for k in ("git", "url", "path",
                                                                       "workspace")):
                bound[Dep.canonical(raw_name)] = "<direct>"
    if bound:
        parsed.deps[:] = [replace(d, index=bound.get(d.name, d.index)) for d in parsed.deps]
