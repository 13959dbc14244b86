"""pip requirements files: requirement lines (PEP 508 via packaging), per-line options
(--hash), global options (-r/-c includes, index URLs) and editable/URL requirements.

Follows pip's file syntax (comments, line continuations, options split at the first token
that starts with '-') without using pip internals."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from mlwarden.deps.inputs import InputTooLarge, loc, read_text
from mlwarden.deps.model import Dep, IndexSetting, Parsed
from mlwarden.deps.rules import PARSE_ERROR

MAX_INCLUDE_DEPTH = 10
_COMMENT = re.compile(r"(^|\s+)#.*$")
# Files whose name says they are not what gets deployed (pins and hashes are not expected).
_NON_DEPLOY = re.compile(r"(^|[-_.])(dev|devel|test|tests|testing|doc|docs|lint|typing|"
                         r"ci|bench|benchmarks?|style|local)([-_.]|$)")
_EGG = re.compile(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_COMMIT = re.compile(r"@[0-9a-f]{40}(?:[#&]|$)")
_URL_HASH = re.compile(r"#(sha256|sha384|sha512)=[0-9a-f]+", re.I)

_INDEX_OPTS = {"-i": "index-url", "--index-url": "index-url",
               "--extra-index-url": "extra-index-url", "-f": "find-links",
               "--find-links": "find-links", "--trusted-host": "trusted-host"}
_VALUE_OPTS = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "--hash",
               "--config-settings", "--global-option", "--install-option", "--no-binary",
               "--only-binary", "--use-feature", "--progress-bar", *_INDEX_OPTS}


def is_deployment_name(path: Path) -> bool:
    return not _NON_DEPLOY.search(path.stem.lower().removeprefix("requirements"))


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first physical line number, joined line) with comments and continuations resolved."""
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buf:
            start = number
        line = raw
        if not line.startswith("#") and line.endswith("\\") and not line.endswith("\\\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = _COMMENT.sub("", "".join(buf)).strip()
        buf = []
        if joined:
            yield start, joined
    if buf:
        joined = _COMMENT.sub("", "".join(buf)).strip()
        if joined:
            yield start, joined


def _split_options(line: str) -> tuple[str, list[str]]:
    """pip's rule: the requirement is every space-separated token before the first '-' one."""
    tokens = line.split(" ")
    for i, tok in enumerate(tokens):
        if tok.startswith("-"):
            rest = " ".join(tokens[i:])
            return " ".join(tokens[:i]).strip(), shlex.split(rest)
    return line.strip(), []


def _options(tokens: list[str]) -> list[tuple[str, str | None]]:
    """[(option, value)] from shlex tokens: --opt=value, --opt value, -rfile."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--") and "=" in tok:
            key, value = tok.split("=", 1)
            out.append((key, value))
        elif tok in _VALUE_OPTS:
            out.append((tok, tokens[i + 1] if i + 1 < len(tokens) else None))
            i += 1
        elif len(tok) > 2 and tok[:2] in ("-r", "-c", "-e", "-i", "-f") and tok[1] != "-":
            out.append((tok[:2], tok[2:]))
        else:
            out.append((tok, None))
        i += 1
    return out


class _State:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: set[Path] = set()
        self.results: list[Parsed] = []


def display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def parse_requirements(path: Path, root: Path, constraint: bool = False) -> list[Parsed]:
    """Parse ``path`` and every file it includes (each included file once, as its own input)."""
    state = _State(root)
    _parse(path, state, depth=0, constraint=constraint)
    return state.results


def _parse(path: Path, state: _State, depth: int, constraint: bool) -> Parsed | None:
    real = path.resolve()
    if real in state.seen:
        return None
    state.seen.add(real)
    parsed = Parsed(display(path, state.root), "constraints" if constraint else "requirements")
    parsed.deployment = is_deployment_name(path) and not constraint
    state.results.append(parsed)
    try:
        text = read_text(path)
    except (OSError, InputTooLarge) as exc:
        parsed.findings.append(PARSE_ERROR.finding(f"cannot read: {exc}"))
        return parsed
    for number, line in logical_lines(text):
        try:
            _line(parsed, path, number, line, state, depth, constraint)
        except ValueError as exc:  # shlex: unbalanced quotes
            parsed.findings.append(PARSE_ERROR.finding(f"unparsable line: {exc}", loc(number)))
    if any(d.hashes for d in parsed.deps) or parsed.require_hashes:
        # pip's hash-checking mode: once one requirement has a hash, all must.
        parsed.deployment = not constraint
    return parsed


def _line(parsed: Parsed, path: Path, number: int, line: str, state: _State, depth: int,
          constraint: bool) -> None:
    origin = "constraint" if constraint else "requirement"
    req_text, opt_tokens = _split_options(line)
    hashes: list[str] = []
    editable: str | None = None
    for key, value in _options(opt_tokens):
        if key in ("-r", "--requirement", "-c", "--constraint"):
            if not value:
                parsed.findings.append(PARSE_ERROR.finding(f"{key} without a file", loc(number)))
                continue
            _include(parsed, path, number, value, state, depth,
                     constraint or key in ("-c", "--constraint"))
        elif key in _INDEX_OPTS and value:
            parsed.indexes.append(IndexSetting(parsed.path, number, _INDEX_OPTS[key], value))
        elif key == "--hash" and value:
            hashes.append(value)
        elif key == "--require-hashes":
            parsed.require_hashes = True
        elif key in ("-e", "--editable") and value:
            editable = value
    if editable is not None:
        parsed.deps.append(_url_dep(parsed, editable, number, tuple(hashes), True, origin))
        return
    if not req_text:
        return
    try:
        req = Requirement(req_text)
    except InvalidRequirement as exc:
        if "://" in req_text or req_text.startswith(("git+", "hg+", "svn+", "bzr+", ".", "/")) \
                or req_text.endswith((".whl", ".tar.gz", ".zip")):
            parsed.deps.append(_url_dep(parsed, req_text, number, tuple(hashes), False, origin))
        else:
            parsed.findings.append(PARSE_ERROR.finding(f"invalid requirement: {exc}",
                                                       loc(number)))
        return
    spec = str(req.specifier)
    parsed.deps.append(Dep(
        name=Dep.canonical(req.name), raw_name=req.name, path=parsed.path, line=number,
        specifier=spec, version=exact_version(spec), hashes=tuple(hashes), url=req.url,
        marker=str(req.marker) if req.marker else None, origin=origin))


def _include(parsed: Parsed, path: Path, number: int, target: str, state: _State,
             depth: int, constraint: bool) -> None:
    if "://" in target:
        parsed.findings.append(PARSE_ERROR.finding(
            f"remote include {target} is not fetched; its requirements were not checked",
            loc(number)))
        return
    inc = (path.parent / target)
    if depth >= MAX_INCLUDE_DEPTH:
        parsed.findings.append(PARSE_ERROR.finding(
            f"includes nested deeper than {MAX_INCLUDE_DEPTH}", loc(number)))
    elif not inc.is_file():
        parsed.findings.append(PARSE_ERROR.finding(f"included file {target} not found",
                                                   loc(number)))
    else:
        _parse(inc, state, depth + 1, constraint)


def _url_dep(parsed: Parsed, target: str, number: int, hashes: tuple[str, ...],
             editable: bool, origin: str) -> Dep:
    m = _EGG.search(target)
    raw = m.group(1) if m else target
    return Dep(name=Dep.canonical(raw) if m else raw, raw_name=raw, path=parsed.path,
               line=number, hashes=hashes, url=target, editable=editable, origin=origin)


def exact_version(spec: str) -> str | None:
    """The version an exact pin (``==1.2`` / ``===1.2``) selects, else None."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    for p in parts:
        if p.startswith("===") or (p.startswith("==") and not p.endswith(".*")):
            return p.lstrip("=").strip()
    return None


def url_is_pinned(url: str, hashes: tuple[str, ...]) -> bool:
    """A VCS URL pinned to a full commit, or an archive URL pinned by hash."""
    return bool(hashes) or bool(_COMMIT.search(url)) or bool(_URL_HASH.search(url))


def is_local(url: str) -> bool:
    return url.startswith((".", "/", "file:")) or ("://" not in url and not url.startswith(
        ("git+", "hg+", "svn+", "bzr+")))
