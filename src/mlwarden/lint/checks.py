"""The lint checks proper: given a resolved call site, dict literal, assignment or string,
decide whether it matches a rule. The analyzer does the name resolution."""

from __future__ import annotations

import ast
import ipaddress
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mlwarden.lint import rules as R
from mlwarden.lint.values import UNKNOWN, Const, Instance, LocalPath, Ref, Value, truthy

if TYPE_CHECKING:
    from mlwarden.lint.analyzer import Analyzer, CallSite
    from mlwarden.lint.scope import Scope

# The hub accepts only a full lower-case 40-hex sha as a commit; anything else is a ref name
# that can be moved (hub-protocol.md: REGEX_COMMIT_HASH).
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")

TORCH_LOADS = {"torch.load", "torch.serialization.load"}
PICKLE_CALLS = {
    f"{mod}.{fn}"
    for mod in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
    for fn in ("load", "loads", "Unpickler")
} | {
    "dill.load_session", "joblib.load", "sklearn.externals.joblib.load",
    "pandas.read_pickle", "pandas.io.pickle.read_pickle", "jsonpickle.decode",
}
NUMPY_LOADS = {"numpy.load"}
KERAS_ROOTS = {"keras", "tensorflow", "tf_keras"}
HUB_ROOTS = {
    "huggingface_hub", "transformers", "diffusers", "datasets", "sentence_transformers",
    "peft", "optimum", "setfit", "trl", "accelerate",
}
PIPELINES = {"transformers.pipeline", "transformers.pipelines.pipeline", "pipeline"}
ST_CLASSES = {"SentenceTransformer", "CrossEncoder", "SparseEncoder"}
# load_dataset builders that read local files rather than a Hub dataset repository.
DATASET_BUILDERS = {
    "csv", "json", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder",
    "videofolder", "webdataset", "xml", "sql", "generator", "spark",
}
HUB_ID = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?")
HF_ENDPOINT_IN_TEXT = re.compile(r"\bHF_ENDPOINT\s*=\s*['\"]?(http://[^\s'\";]*)", re.I)
# Keys whose value alone is the problem, wherever it is set: a call keyword, a dict literal
# key, an attribute, a subscript or a config-class field. Reported where it is set, once.
FLAG_KEYS = {"trust_remote_code", "use_safetensors"}


# ---------------------------------------------------------------------------- helpers

def looks_local(s: str) -> bool:
    """A string that names a local path rather than a Hub repository id."""
    if s.startswith(("./", "../", "/", "~", ".\\", "..\\")) or s in (".", ".."):
        return True
    if re.match(r"[A-Za-z]:[\\/]", s) or "\\" in s:
        return True
    return not HUB_ID.fullmatch(s)  # two slashes, spaces...: not a repo id


def _repo_kind(v: Value | None) -> str:
    """"missing", "local", "hub" (a literal repo id), "object" or "unknown"."""
    if v is None:
        return "missing"
    if isinstance(v, LocalPath):
        return "local"
    if isinstance(v, Const):
        if isinstance(v.value, str):
            return "local" if looks_local(v.value) else "hub"
        return "object"
    if isinstance(v, Instance):
        return "object"
    return "unknown"


def _http_url(v: Value, node: ast.expr | None = None) -> str | None:
    """The value, if it is a plain-http URL to a host other than loopback."""
    text: str | None = None
    if isinstance(v, Const) and isinstance(v.value, str):
        text = v.value
    elif isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            text = first.value  # f"http://{host}/": the scheme is all we need
    if text is None or not text.strip().lower().startswith("http://"):
        return None
    return None if _is_loopback(text.strip()) else text.strip()


def _is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _display(site: CallSite) -> str:
    return site.qualname or site.last or "call"


def _is_false(v: Value | None) -> bool:
    """An explicit False (or 0): None usually means "the library default", which is safe."""
    return isinstance(v, Const) and v.value is not None and v.value in (False, 0)


def _flag_key(an: Analyzer, key: str, value: Value, node: ast.AST, where: str) -> None:
    if key == "trust_remote_code" and truthy(value):
        an.report(R.TRUST_REMOTE_CODE, f"trust_remote_code=True {where}", node)
    elif key == "use_safetensors" and _is_false(value):
        an.report(R.USE_SAFETENSORS_FALSE, f"use_safetensors=False {where}", node)


def _endpoint(an: Analyzer, value: Value, expr: ast.expr | None, node: ast.AST,
              where: str) -> None:
    url = _http_url(value, expr)
    if url is not None:
        an.report(R.HF_ENDPOINT_HTTP, f"HF_ENDPOINT set to plain-http {url!r} {where}", node)


# ---------------------------------------------------------------------------- entry points

def check_dict(an: Analyzer, node: ast.Dict, scope: Scope) -> None:
    for k, v in zip(node.keys, node.values, strict=True):
        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
            continue
        if k.value in FLAG_KEYS:
            _flag_key(an, k.value, an.eval(v, scope), k, "in a dict (kwargs or config)")
        elif k.value == "HF_ENDPOINT":
            _endpoint(an, an.eval(v, scope), v, k, "in an environment mapping")


def check_string(an: Analyzer, node: ast.Constant) -> None:
    assert isinstance(node.value, str)
    for m in HF_ENDPOINT_IN_TEXT.finditer(node.value):
        if not _is_loopback(m.group(1)):
            an.report(R.HF_ENDPOINT_HTTP,
                      f"HF_ENDPOINT set to plain-http {m.group(1)!r} in a string", node)


def check_assignment(an: Analyzer, target: ast.expr, value_node: ast.expr, scope: Scope) -> None:
    value = an.eval(value_node, scope)
    if isinstance(target, ast.Attribute):
        if target.attr in FLAG_KEYS:
            _flag_key(an, target.attr, value, target, "set as an attribute")
        base = an.eval(target.value, scope)
        if target.attr == "ENDPOINT" and isinstance(base, Ref) and base.root == "huggingface_hub":
            _endpoint(an, value, value_node, target, "via huggingface_hub.constants")
    elif isinstance(target, ast.Subscript):
        key = an.eval(target.slice, scope)
        if not (isinstance(key, Const) and isinstance(key.value, str)):
            return
        if key.value in FLAG_KEYS:
            _flag_key(an, key.value, value, target, "set as a mapping item")
        elif key.value == "HF_ENDPOINT":
            _endpoint(an, value, value_node, target, "in the environment")
    elif isinstance(target, ast.Name) and scope.kind == "class" and target.id in FLAG_KEYS:
        _flag_key(an, target.id, value, target, "as a configuration default")


def check_call(an: Analyzer, site: CallSite, scope: Scope) -> None:
    node = site.node
    # Keys that are a finding wherever they are written (not through **expansions, which
    # are reported at the dict that defines them).
    for kw in node.keywords:
        if kw.arg in FLAG_KEYS:
            _flag_key(an, kw.arg, an.eval(kw.value, scope), kw, f"in {_display(site)}()")
        elif kw.arg == "HF_ENDPOINT" or (kw.arg == "endpoint"
                                         and site.root == "huggingface_hub"):
            _endpoint(an, an.eval(kw.value, scope), kw.value, kw, f"in {_display(site)}()")
    if site.last == "setattr" and len(node.args) == 3:
        attr = an.eval(node.args[1], scope)
        if isinstance(attr, Const) and attr.value in FLAG_KEYS:
            _flag_key(an, str(attr.value), an.eval(node.args[2], scope), node, "via setattr()")
    if site.last in ("setdefault", "putenv", "setenv", "__setitem__") and len(node.args) >= 2:
        name = an.eval(node.args[0], scope)
        if name == Const("HF_ENDPOINT"):
            _endpoint(an, an.eval(node.args[1], scope), node.args[1], node,
                      f"via {_display(site)}()")
    q = site.qualname
    if q in TORCH_LOADS:
        _check_torch_load(an, site)
    elif q in PICKLE_CALLS:
        an.report(R.PICKLE_LOAD, f"{q}() deserializes a pickle", node)
    elif q in NUMPY_LOADS:
        allow = site.arg(2, "allow_pickle")
        if allow is not None and truthy(allow):
            an.report(R.NUMPY_ALLOW_PICKLE, f"{q}(allow_pickle=True)", node)
    elif q == "torch.hub.load":
        _check_torch_hub(an, site)
    _check_keras(an, site)
    _check_hub_download(an, site)


# ---------------------------------------------------------------------------- call rules

def _check_torch_load(an: Analyzer, site: CallSite) -> None:
    q = site.qualname
    pickle_module = site.arg(2, "pickle_module")
    if pickle_module is not None and pickle_module != Const(None):
        an.report(R.PICKLE_LOAD, f"{q}() with a custom pickle_module", site.node)
    wo = site.keywords.get("weights_only")
    if wo is None or wo == Const(None):
        if not site.open_kwargs:
            an.report(R.TORCH_LOAD_IMPLICIT, f"{q}() without weights_only=True", site.node)
    elif _is_false(wo):
        an.report(R.TORCH_LOAD_UNSAFE, f"{q}() with weights_only=False", site.node)


def _check_keras(an: Analyzer, site: CallSite) -> None:
    keras = site.root in KERAS_ROOTS
    if keras and site.last == "enable_unsafe_deserialization":
        an.report(R.KERAS_UNSAFE, f"{_display(site)}() turns off Keras safe mode", site.node)
        return
    safe = site.keywords.get("safe_mode")
    if _is_false(safe) and (keras or site.last == "load_model"):
        an.report(R.KERAS_UNSAFE, f"{_display(site)}(safe_mode=False)", site.node)


def _check_torch_hub(an: Analyzer, site: CallSite) -> None:
    source = site.keywords.get("source")
    if isinstance(source, Const) and source.value == "local":
        return
    repo = site.arg(0, "repo_or_dir")
    if not (isinstance(repo, Const) and isinstance(repo.value, str)):
        return  # unknown: the pin lives inside the string, so we cannot tell
    _, _, ref = repo.value.partition(":")
    if COMMIT_SHA.fullmatch(ref):
        return
    why = f"ref {ref!r} is a branch or tag" if ref else "no ref (default branch)"
    an.report(R.UNPINNED_REVISION, f"torch.hub.load({repo.value!r}): {why}, not a commit sha",
              site.node)


def _hub_call(site: CallSite) -> tuple[str, Value | None] | None:
    """If the call downloads from the Hub, (kind of call, repo id argument)."""
    last, root, q = site.last, site.root, site.qualname
    from_lib = q is None or root in HUB_ROOTS or "." not in q
    if last == "from_pretrained":
        if root == "peft" or ".Peft" in (q or "") or ".AutoPeft" in (q or ""):
            return "from_pretrained", site.arg(1, "model_id")
        return "from_pretrained", site.arg(0, "pretrained_model_name_or_path")
    if last in ("snapshot_download", "hf_hub_download") and from_lib:
        return last, site.arg(0, "repo_id")
    if last == "load_dataset" and (q is None or root in ("datasets", "load_dataset")):
        return last, site.arg(0, "path")
    if last in ST_CLASSES and from_lib:
        return last, site.arg(0, "model_name_or_path")
    if q in PIPELINES:
        return "pipeline", site.arg(1, "model")
    return None


def _check_hub_download(an: Analyzer, site: CallSite) -> None:
    hit = _hub_call(site)
    if hit is None:
        return
    kind, repo = hit
    rk = _repo_kind(repo)
    if rk in ("missing", "local", "object"):
        return
    if kind == "pipeline" and rk != "hub":
        return  # pipeline(model=...) is often an already-loaded model object
    if kind == "load_dataset" and isinstance(repo, Const) and repo.value in DATASET_BUILDERS:
        return
    if truthy(site.keywords.get("local_files_only", UNKNOWN)):
        return
    repo_txt = f"({repo.value!r})" if isinstance(repo, Const) else "()"
    label = f"{_display(site)}{repo_txt}"
    rev = site.keywords.get("revision")
    if rev is None or rev == Const(None):
        if not site.open_kwargs:
            an.report(R.UNPINNED_REVISION, f"{label} without a revision pinned to a commit sha",
                      site.node)
        return
    if isinstance(rev, Const) and isinstance(rev.value, str) and not COMMIT_SHA.fullmatch(
            rev.value):
        an.report(R.UNPINNED_REVISION,
                  f"{label}: revision {rev.value!r} is a branch, tag or short sha, not a "
                  "40-hex commit sha", site.node)
