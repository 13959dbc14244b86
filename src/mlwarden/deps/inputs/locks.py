"""Lock files: uv.lock, poetry.lock and PEP 751 pylock.toml. Each entry is an exact version;
its hashes come from the sdist/wheel/file records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlwarden.deps.inputs import find_key_line, load_toml
from mlwarden.deps.inputs.requirements import display
from mlwarden.deps.model import Dep, Parsed


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _lock_dep(parsed: Parsed, lines: list[str], name: Any, version: Any,
              hashes: list[str], url: str | None, start: int,
              index: Any = None) -> Dep | None:
    if not isinstance(name, str):
        return None
    line = find_key_line(lines, "name", name, start)
    return Dep(name=Dep.canonical(name), raw_name=name, path=parsed.path, line=line,
               specifier=f"=={version}" if isinstance(version, str) else "",
               version=version if isinstance(version, str) else None,
               hashes=tuple(hashes), url=url, origin="lock",
               index=index if isinstance(index, str) else None)


def parse_uv_lock(path: Path, root: Path) -> Parsed:
    parsed = Parsed(display(path, root), "uv-lock", deployment=True)
    loaded = load_toml(parsed, path)
    if loaded is None:
        return parsed
    doc, lines = loaded
    cursor = 0
    for pkg in _dicts(doc.get("package")):
        source = _dict(pkg.get("source"))
        hashes = [str(a["hash"]) for a in [pkg.get("sdist"), *_dicts(pkg.get("wheels"))]
                  if isinstance(a, dict) and a.get("hash")]
        url: str | None = None
        if "git" in source:
            url = "git+" + str(source["git"])
        elif "url" in source:
            url = str(source["url"])
        elif any(k in source for k in ("editable", "virtual", "path", "directory")):
            url = str(next(source[k] for k in ("editable", "virtual", "path", "directory")
                           if k in source))
        dep = _lock_dep(parsed, lines, pkg.get("name"), pkg.get("version"), hashes, url,
                        cursor, source.get("registry"))
        if dep is not None:
            cursor = (dep.line or 1) - 1 if dep.line else cursor
            parsed.deps.append(dep)
    return parsed


def parse_poetry_lock(path: Path, root: Path) -> Parsed:
    parsed = Parsed(display(path, root), "poetry-lock", deployment=True)
    loaded = load_toml(parsed, path)
    if loaded is None:
        return parsed
    doc, lines = loaded
    # Poetry < 1.5 kept hashes in [metadata.files] keyed by name.
    legacy = _dict(_dict(doc.get("metadata")).get("files"))
    cursor = 0
    for pkg in _dicts(doc.get("package")):
        name = pkg.get("name")
        files = _dicts(pkg.get("files")) or _dicts(legacy.get(str(name)))
        hashes = [str(f["hash"]) for f in files if f.get("hash")]
        source = _dict(pkg.get("source"))
        url: str | None = None
        if source.get("type") in ("git", "url", "file", "directory"):
            ref = source.get("resolved_reference") or source.get("reference")
            url = (("git+" if source["type"] == "git" else "") + str(source.get("url", ""))
                   + (f"@{ref}" if source["type"] == "git" and ref else ""))
        index = source.get("url") if source.get("type") == "legacy" else None
        dep = _lock_dep(parsed, lines, name, pkg.get("version"), hashes, url, cursor, index)
        if dep is not None:
            cursor = (dep.line or 1) - 1 if dep.line else cursor
            parsed.deps.append(dep)
    return parsed


def parse_pylock(path: Path, root: Path) -> Parsed:
    """PEP 751: [[packages]] with sdist / wheels / archive (hashes tables) or vcs/directory."""
    parsed = Parsed(display(path, root), "pylock", deployment=True)
    loaded = load_toml(parsed, path)
    if loaded is None:
        return parsed
    doc, lines = loaded
    cursor = 0
    for pkg in _dicts(doc.get("packages")):
        hashes: list[str] = []
        for art in [pkg.get("sdist"), pkg.get("archive"), *_dicts(pkg.get("wheels"))]:
            if isinstance(art, dict) and isinstance(art.get("hashes"), dict):
                hashes += [f"{k}:{v}" for k, v in art["hashes"].items()]
        url: str | None = None
        vcs = pkg.get("vcs")
        if isinstance(vcs, dict):
            url = f"{vcs.get('type', 'git')}+{vcs.get('url', vcs.get('path', ''))}"
            if isinstance(vcs.get("commit-id"), str):
                url += "@" + vcs["commit-id"]
        elif isinstance(pkg.get("directory"), dict):
            url = str(pkg["directory"].get("path", "."))
        dep = _lock_dep(parsed, lines, pkg.get("name"), pkg.get("version"), hashes, url,
                        cursor, pkg.get("index"))
        if dep is not None:
            cursor = (dep.line or 1) - 1 if dep.line else cursor
            parsed.deps.append(dep)
    return parsed
