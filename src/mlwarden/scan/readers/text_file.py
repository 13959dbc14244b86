"""Text content. Loaders pick code and configs *by file name* (transformers imports the
``<module>.py`` that ``auto_map`` names; torch.hub runs ``hubconf.py``), so once the bytes
are known to be text the name decides the analysis:

- ``*.py`` -> Python analysis (remote code), format ``python``;
- loader-read JSON configs (``config.json``, ``tokenizer_config.json`` ...) -> ``auto_map``,
  ``custom_pipelines``, diffusers custom components and chat templates, format ``json``;
- ``chat_template.jinja`` and ``additional_chat_templates/*.jinja`` -> template analysis;
- anything else is inert text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import NOT_ANALYSED, ScanContext
from mlwarden.scan.source import Source

# Configs that transformers, diffusers, PEFT and sentence-transformers read by name.
LOADER_CONFIGS = frozenset({
    "config.json", "tokenizer_config.json", "processor_config.json",
    "preprocessor_config.json", "video_preprocessor_config.json", "generation_config.json",
    "chat_template.json", "adapter_config.json", "model_index.json", "feature_extractor.json",
    "image_processor_config.json", "audio_tokenizer_config.json", "modular_config.json",
})
TEMPLATE_DIR = "additional_chat_templates"
# Libraries diffusers resolves by import; any other "library" in model_index.json is a
# custom component module shipped in the repository.
DIFFUSERS_LIBRARIES = frozenset({"diffusers", "transformers", "onnxruntime", "flax",
                                 "peft", "torch", None})
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_REFS_LISTED = 40

CONFIG_INVALID = rule(
    "config-invalid-json", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Loader-read config is not valid JSON",
    "transformers/diffusers read this file by name; it does not parse, so what it would "
    "make a loader do is unknown.")
CONFIG_DUPLICATE_KEY = rule(
    "config-duplicate-key", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Config repeats a key",
    "json.loads keeps the last value; other parsers keep the first. A repeated auto_map or "
    "chat_template can show a reviewer one value and the loader another.")
CONFIG_AUTO_MAP = rule(
    "config-auto-map", Verdict.CLEAN, Severity.INFO,
    "Config names custom code that trust_remote_code=True imports",
    "auto_map / custom_pipelines / custom diffusers components: the listed modules are "
    "imported from the repository when a loader is called with trust_remote_code=True.")
CONFIG_CROSS_REPO = rule(
    "config-cross-repo-code", Verdict.SUSPICIOUS, Severity.HIGH,
    "Config loads code from another repository",
    "An auto_map reference 'owner/repo--module.Class' makes trust_remote_code import code "
    "from a different Hub repository, which this scan did not see and whose owner can "
    "change it at any time.")
CONFIG_BAD_REFERENCE = rule(
    "config-bad-code-reference", Verdict.SUSPICIOUS, Severity.HIGH,
    "Code reference that is not a plain module.Class",
    "transformers turns 'module.Class' into the file module.py; names with path separators, "
    "'..' or several dots either break loading or reach files outside the repository.")
CONFIG_ADAPTER_MAPPING = rule(
    "config-adapter-auto-mapping", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "PEFT auto_mapping imports an unusual library",
    "AutoPeftModel imports auto_mapping.parent_library and calls from_pretrained on the "
    "named attribute; anything but transformers/diffusers/peft is unexpected.")
TEMPLATE_NOT_ANALYSED = rule(
    "config-template-not-analysed", Verdict.CLEAN, Severity.INFO,
    "Chat template present but the template analyser is not installed",
    "mlwarden.scan.templates is missing from this installation, so the template was not "
    "checked for sandbox escapes.")


@dataclass(frozen=True)
class CodeRef:
    """One piece of custom code a config makes a loader import."""

    key: str  # auto_map key, "custom_pipelines.<task>", "model_index.<component>" ...
    module: str  # module path inside the repository, without .py ("unet/my_unet")
    cls: str
    repo: str | None = None  # another Hub repository ("owner/name--module.Class")
    valid: bool = True


def read_text(source: Source, ctx: ScanContext) -> None:
    name = source.name
    if name.endswith(".py"):
        from mlwarden.scan.remote_code import analyze_python

        data = source.read_all(ctx.limits.max_text_bytes)
        analyze_python(data, ctx)
        embedded_templates(data, ctx, name)
    elif name in LOADER_CONFIGS:
        analyze_config(name, source.read_all(ctx.limits.max_text_bytes), ctx)
    elif is_template_file(source.display_path):
        ctx.format = "jinja"
        data = source.read_all(ctx.limits.max_text_bytes)
        _template(data.decode("utf-8", errors="replace"), ctx, Location(detail=name))
    else:
        ctx.report(NOT_ANALYSED, "text content: inert data, not parsed further")
        if source.size <= ctx.limits.max_text_bytes:
            embedded_templates(source.read_all(ctx.limits.max_text_bytes), ctx, name)


# Documents parsed to find templates in their values (escapes decoded) stay below this.
MAX_DOCUMENT = 16 << 20


def embedded_templates(data: bytes, ctx: ScanContext, name: str) -> None:
    """Content, not names: a Jinja template that reaches Python internals is malicious in
    any text (``*.j2``, ``*.template``, a YAML or JSON value), not only in files that
    loaders read as chat templates. JSON and YAML are parsed so that escaped values
    (``"\\u005f\\u005fclass..."``) are seen decoded."""
    if b"\\" not in data and b"{{" not in data and b"{%" not in data:
        # No template opener, raw or escaped (UTF-8 decodes only the byte 0x7b to '{';
        # JSON/YAML escapes need a backslash): nothing to find, and Jinja stays unimported.
        return
    try:
        from mlwarden.scan.templates import TemplateBudget, analyze_embedded, analyze_values
    except ImportError:
        return
    text = data.decode("utf-8", errors="replace")
    budget = TemplateBudget()
    where = Location(detail=name)
    doc = _structured(text) if len(data) <= MAX_DOCUMENT else None
    if doc is not None:
        analyze_values(doc, ctx, where, budget)
    else:
        analyze_embedded(text, ctx, where, budget)


def _structured(text: str) -> object | None:
    """The JSON or YAML document ``text`` holds, when it is one with strings in it."""
    import json

    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            doc: object = json.loads(text)
            return doc
        except (ValueError, RecursionError):
            pass
    if "\\" not in text and "{{" not in text and "{%" not in text:
        return None  # no escapes and no template: nothing YAML could hide
    try:
        import yaml

        loaded: object = yaml.safe_load(text)
        return loaded
    except Exception:  # any YAML error: not a YAML document
        return None


def is_template_file(display_path: str) -> bool:
    parts = display_path.rsplit("!", 1)[-1].replace("\\", "/").split("/")
    return parts[-1] == "chat_template.jinja" or (
        parts[-1].endswith(".jinja") and len(parts) >= 2 and parts[-2] == TEMPLATE_DIR)


# ------------------------------------------------------------------------------ JSON


class _Duplicates:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def hook(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen and len(self.keys) < 20:
                self.keys.append(k)
            seen.add(k)
        return dict(pairs)  # last value wins, as in json.loads


def parse_config(data: bytes) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """(config, error, duplicate keys). Parses exactly as loaders do (json, UTF-8)."""
    import json

    dup = _Duplicates()
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=dup.hook)
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: {exc.reason} at byte {exc.start}", []
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} at line {exc.lineno} column {exc.colno}", []
    except (ValueError, RecursionError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:200], []
    if not isinstance(doc, dict):
        return None, f"top level is a JSON {type(doc).__name__}, not an object", []
    return doc, None, dup.keys


def analyze_config(name: str, data: bytes, ctx: ScanContext) -> None:
    ctx.format = "json"
    doc, error, duplicates = parse_config(data)
    if doc is None:
        ctx.report(CONFIG_INVALID, f"{name}: {error}")
        return
    for key in duplicates:
        ctx.report(CONFIG_DUPLICATE_KEY, f"key {key!r} appears more than once; loaders use "
                   "the last value", Location(detail=f"key {key}"))
    refs = list(code_refs(name, doc))
    for ref in refs:
        where = Location(detail=ref.key)
        if not ref.valid:
            ctx.report(CONFIG_BAD_REFERENCE, f"{ref.key} -> {ref.module}.{ref.cls}: not a plain "
                       "module.Class reference", where)
        elif ref.repo is not None:
            ctx.report(CONFIG_CROSS_REPO, f"{ref.key} imports {ref.module}.py from another "
                       f"repository {ref.repo!r}", where)
    local = [r for r in refs if r.valid and r.repo is None]
    if local:
        listed = ", ".join(f"{r.key} -> {r.module}.py:{r.cls}" for r in local[:MAX_REFS_LISTED])
        more = f" (+{len(local) - MAX_REFS_LISTED} more)" if len(local) > MAX_REFS_LISTED else ""
        ctx.report(CONFIG_AUTO_MAP, f"trust_remote_code=True imports {listed}{more}",
                   Location(detail="auto_map"))
    if name == "adapter_config.json":
        _adapter(doc, ctx)
    budget: Any = None  # one token budget for all the templates of the file
    for label, text in chat_templates(doc):
        budget = _template(text, ctx, Location(detail=label), budget)
    if not _has_template_opener(doc):
        return  # no value could be a template: Jinja stays unimported
    try:
        from mlwarden.scan.templates import TemplateBudget, analyze_values
    except ImportError:
        return
    analyze_values(doc, ctx, Location(detail=name), TemplateBudget(),
                   skip=frozenset({"chat_template"}))


def _has_template_opener(doc: object) -> bool:
    """Whether any string in the document (keys too) holds ``{{`` or ``{%``, decoded."""
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "{{" in v or "{%" in v:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def chat_templates(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``chat_template`` as a string or as a list of {name, template} (tokenizer_config)."""
    value = doc.get("chat_template")
    if isinstance(value, str):
        yield "chat_template", value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                label = item.get("name") if isinstance(item.get("name"), str) else str(i)
                yield f"chat_template[{label}]", item["template"]


def code_refs(name: str, doc: dict[str, Any]) -> Iterator[CodeRef]:
    """Every module a loader would import from the repository because of this config."""
    auto_map = doc.get("auto_map")
    if isinstance(auto_map, dict):
        for key, value in auto_map.items():
            # Tokenizers map to [slow, fast]; either may be null.
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if isinstance(v, str):
                    yield parse_class_reference(f"auto_map.{key}", v)
    pipelines = doc.get("custom_pipelines")
    if isinstance(pipelines, dict):
        for task, spec in pipelines.items():
            if isinstance(spec, dict) and isinstance(spec.get("impl"), str):
                yield parse_class_reference(f"custom_pipelines.{task}", spec["impl"])
    if name == "model_index.json":
        yield from _diffusers_refs(doc)


def parse_class_reference(key: str, ref: str) -> CodeRef:
    """Mirror transformers.dynamic_module_utils.get_class_from_dynamic_module."""
    repo: str | None = None
    body = ref
    if "--" in ref:
        parts = ref.split("--")
        if len(parts) != 2:
            return CodeRef(key, ref, "", None, valid=False)
        repo, body = parts
    pieces = body.split(".")
    if len(pieces) != 2 or not _IDENT.match(pieces[0]) or not _IDENT.match(pieces[1]):
        return CodeRef(key, body, "", repo, valid=False)
    return CodeRef(key, pieces[0], pieces[1], repo)


def _diffusers_refs(doc: dict[str, Any]) -> Iterator[CodeRef]:
    cls = doc.get("_class_name")
    if isinstance(cls, list) and len(cls) == 2 and isinstance(cls[0], str) \
            and isinstance(cls[1], str):
        yield _component_ref("model_index._class_name", cls[0], cls[1], folder=None)
    for comp, value in doc.items():
        if comp.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue
        library, klass = value
        if isinstance(library, str) and isinstance(klass, str) \
                and library not in DIFFUSERS_LIBRARIES and "." not in library:
            yield _component_ref(f"model_index.{comp}", library, klass, folder=comp)


def _component_ref(key: str, module: str, cls: str, folder: str | None) -> CodeRef:
    ok = bool(_IDENT.match(module)) and (folder is None or bool(_IDENT.match(folder)))
    path = f"{folder}/{module}" if folder else module
    return CodeRef(key, path, cls, None, valid=ok)


def _adapter(doc: dict[str, Any], ctx: ScanContext) -> None:
    mapping = doc.get("auto_mapping")
    if not isinstance(mapping, dict):
        return
    lib = mapping.get("parent_library")
    if isinstance(lib, str) and lib.split(".")[0] not in ("transformers", "diffusers", "peft"):
        ctx.report(CONFIG_ADAPTER_MAPPING, f"auto_mapping.parent_library {lib!r} is imported "
                   f"and {mapping.get('base_model_class')!r} taken from it",
                   Location(detail="auto_mapping"))


def _template(text: str, ctx: ScanContext, location: Location, budget: Any = None) -> Any:
    """Analyse one template; returns the file's template budget to pass to the next."""
    try:
        from mlwarden.scan.templates import TemplateBudget, analyze_template
    except ImportError:
        ctx.report(TEMPLATE_NOT_ANALYSED, "chat template not analysed", location)
        return None
    budget = budget if budget is not None else TemplateBudget()
    analyze_template(text, ctx, location, budget)
    return budget
