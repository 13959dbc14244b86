"""Keras model configs: ``config.json`` of ``.keras`` v3 zips and the legacy ``model_config``
attribute of ``.h5`` files. Nothing is imported or deserialised; the JSON is walked.

Keras turns a config into objects by importing ``module`` and looking up ``class_name`` /
``registered_name`` (Keras 3), or by unmarshalling Lambda bytecode (``function_type:
lambda``, ``__lambda__``). Published attacks use exactly those doors: Lambda bytecode
(CVE-2024-3660, CVE-2025-9905 for .h5 in safe mode), module/registered_name injection
(CVE-2025-1550), Keras' own dangerous helpers named as functions (``keras.utils.get_file``,
CVE-2025-8747; ``keras.config.enable_unsafe_deserialization``, CVE-2025-9906).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import Rule, rule
from mlwarden.scan.context import ScanContext

MAX_OBJECTS = 2_000_000  # JSON values walked per config

KERAS_LAMBDA = rule(
    "keras-lambda-bytecode",
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "Keras Lambda layer carries marshalled Python bytecode",
    "Loading a Lambda layer with function_type 'lambda' (Keras 2 / .h5) or a '__lambda__' "
    "function (Keras 3) unmarshals and runs arbitrary bytecode (CVE-2024-3660); .h5 files "
    "ignore safe_mode (CVE-2025-9905). Real models replace Lambda layers with registered "
    "custom layers.",
)
KERAS_DANGEROUS_MODULE = rule(
    "keras-dangerous-module",
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "Keras config references a dangerous module or function",
    "Keras imports the 'module' of a serialized object and calls what it names "
    "(CVE-2025-1550). os, subprocess, builtins.exec, importlib ... or Keras' own "
    "get_file/load_model/enable_unsafe_deserialization (CVE-2025-8747, CVE-2025-9906) "
    "in a config run code or touch files at load time.",
)
KERAS_UNKNOWN_MODULE = rule(
    "keras-unknown-module",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Keras config references a module outside Keras/TensorFlow",
    "Custom objects from other packages are imported at load time. Legitimate for "
    "custom layers you installed yourself; otherwise the package decides what runs.",
)
KERAS_FUNCTION_REF = rule(
    "keras-function-by-name",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Keras Lambda layer calls a function referenced by name",
    "A Lambda layer with function_type 'function' looks the function up by module and "
    "name at load time; review that it is a Keras/TensorFlow function.",
)
KERAS_UNSAFE_SETTING = rule(
    "keras-unsafe-setting",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Keras config tries to turn off safe deserialization",
    "A 'safe_mode': false entry has no business in a saved model; it targets loaders "
    "that pass config values through to deserialize_keras_object.",
)
KERAS_TF_OP = rule(
    "keras-dangerous-tf-op",
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "Keras TFOpLambda layer calls a file or Python-function TensorFlow op",
    "TFOpLambda/SlicingOpLambda layers replay tf.* calls at load time; tf.io.write_file, "
    "tf.py_function, tf.numpy_function, tf.io.read_file ... read or write files or run "
    "Python.",
)
KERAS_OK = rule(
    "keras-config-analysed",
    Verdict.CLEAN,
    Severity.INFO,
    "Keras model config analysed",
    "Every object the config would instantiate comes from Keras/TensorFlow and no Lambda "
    "bytecode was found.",
)

_ALLOWED_ROOTS = frozenset({
    "keras", "keras_core", "keras_hub", "keras_nlp", "keras_cv", "tf_keras", "tensorflow",
    "tensorflow_hub", "tensorflow_text", "tensorflow_addons",
})
# Importing these from a model config is never legitimate.
_DANGEROUS_ROOTS = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "sys", "importlib", "runpy",
    "shutil", "socket", "pty", "ctypes", "pickle", "_pickle", "marshal", "code", "codeop",
    "webbrowser", "urllib", "urllib3", "http", "requests", "httpx", "io", "_io", "pathlib",
    "tempfile", "multiprocessing", "asyncio", "commands", "pdb", "bdb", "timeit",
    "cProfile", "profile", "trace", "pydoc", "shelve", "dill", "cloudpickle", "joblib",
    "types", "functools", "operator", "pkgutil", "zipimport", "smtplib", "ftplib",
    "telnetlib", "platform", "signal", "glob", "fileinput", "linecache", "torch", "numpy",
    "pip", "setuptools", "distutils", "venv", "ensurepip", "__main__", "__builtin__",
})
_SAFE_BUILTINS = frozenset({
    "tuple", "list", "dict", "set", "frozenset", "int", "float", "complex", "bool", "str",
    "bytes", "slice", "range", "abs", "min", "max", "sum", "round", "len", "pow", "divmod",
    "any", "all", "sorted", "reversed", "enumerate", "zip",
})
# Helpers inside Keras/TensorFlow that load code, fetch URLs or touch files.
_DANGEROUS_FUNCTIONS = frozenset({
    "enable_unsafe_deserialization", "get_file", "load_model", "load_weights", "save_model",
    "save_weights", "func_load", "func_dump", "deserialize_keras_object", "load_op_library",
    "load_library", "py_function", "numpy_function", "py_func", "eager_py_func",
    "read_file", "write_file", "create_file_writer", "enable_dump_debug_info", "load",
    "exec", "eval", "system", "popen",
})
# tf.* paths that TFOpLambda layers may replay and that read/write files or run Python.
_DANGEROUS_TF_OPS = re.compile(
    r"(^|\.)(io\.(read_file|write_file|gfile\.\w+|matching_files)|read_file|write_file|"
    r"py_function|numpy_function|py_func|compat\.v1\.py_func|load_op_library|load_library|"
    r"saved_model\.load|summary\.create_file_writer|debugging\.experimental\.\w+|"
    r"raw_ops\.(ReadFile|WriteFile|PyFunc\w*|EagerPyFunc|MatchingFiles|ImmutableConst))$"
)
# Keras 3 internal tags ("__tuple__", "__numpy__", ...) that are not imports.
_SPECIAL_CLASSES = frozenset({
    "__tuple__", "__numpy__", "__bytes__", "__tensor__", "__ellipsis__", "__slice__",
    "__typespec__", "__keras_tensor__", "__tensorshape__", "__dtype__", "__set__",
})
_B64 = re.compile(r"^[A-Za-z0-9+/=\s]{24,}$")


@dataclass
class _State:
    ctx: ScanContext
    base: Location
    objects: int = 0
    layers: int = 0
    findings_before: int = 0


def analyze_keras_archive_config(config_bytes: bytes, ctx: ScanContext, member: str) -> None:
    """Analyse ``config.json`` of a ``.keras`` v3 zip; findings name ``member``."""
    analyze_keras_config_bytes(config_bytes, ctx, Location(member=member))


def analyze_keras_config_bytes(data: bytes | str, ctx: ScanContext, location: Location) -> None:
    """Parse a Keras JSON config (never deserialise it) and report code-loading constructs."""
    if len(data) > ctx.limits.max_text_bytes:
        ctx.limit(f"Keras config of {len(data)} bytes exceeds the "
                  f"{ctx.limits.max_text_bytes}-byte bound; not analysed", location)
        return
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.unscannable(f"Keras config is not valid JSON: {exc}", location)
        return
    except RecursionError:
        ctx.unscannable("Keras config nests too deeply to parse", location)
        return
    analyze_keras_config(obj, ctx, location)


def analyze_keras_config(obj: object, ctx: ScanContext, location: Location,
                         report_ok: bool = True) -> None:
    """Walk a parsed Keras config (``{"class_name": ..., "config": ...}`` tree)."""
    st = _State(ctx, location, findings_before=len(ctx.findings))
    for value, path in _walk(obj):
        st.objects += 1
        if st.objects > MAX_OBJECTS:
            ctx.limit(f"Keras config has more than {MAX_OBJECTS} values; analysis stopped",
                      location)
            return
        if isinstance(value, dict):
            _check_object(value, path, st)
        elif isinstance(value, str) and value == "enable_unsafe_deserialization":
            _report(st, KERAS_DANGEROUS_MODULE, path,
                    "names keras.config.enable_unsafe_deserialization (CVE-2025-9906)")
    if report_ok and len(ctx.findings) == st.findings_before:
        ctx.report(KERAS_OK, f"Keras config: {st.layers} layer(s), no code-loading "
                   "construct", location)


def _walk(root: object) -> Iterator[tuple[object, str]]:
    stack: list[tuple[object, str]] = [(root, "$")]
    while stack:
        value, path = stack.pop()
        yield value, path
        if isinstance(value, dict):
            for k, v in reversed(list(value.items())):
                if isinstance(v, dict | list) or v == "enable_unsafe_deserialization":
                    stack.append((v, f"{path}.{k}"))
        elif isinstance(value, list):
            for i in range(len(value) - 1, -1, -1):
                v = value[i]
                if isinstance(v, dict | list) or v == "enable_unsafe_deserialization":
                    stack.append((v, f"{path}[{i}]"))


def _report(st: _State, r: Rule, path: str, message: str) -> None:
    loc = Location(member=st.base.member, detail=_detail(st.base, path))
    st.ctx.report(r, message, loc)


def _detail(base: Location, path: str) -> str:
    where = f"config {path}"
    return f"{base.detail}, {where}" if base.detail else where


def _check_object(d: dict[str, object], path: str, st: _State) -> None:
    class_name = d.get("class_name")
    module = d.get("module")
    config = d.get("config")
    registered = d.get("registered_name")
    if d.get("safe_mode") is False:
        _report(st, KERAS_UNSAFE_SETTING, path, "'safe_mode': false in the saved config")
    if not isinstance(class_name, str):
        return
    if isinstance(config, dict) and ("name" in config or "trainable" in config):
        st.layers += 1
    if class_name == "__lambda__":
        _report(st, KERAS_LAMBDA, path, "'__lambda__' function: marshalled bytecode that "
                "Keras unmarshals and runs on load")
        return
    if class_name in ("Lambda",) and isinstance(config, dict):
        _check_lambda(config, path, st)
    if class_name in ("TFOpLambda", "SlicingOpLambda") and isinstance(config, dict):
        fn = config.get("function")
        if isinstance(fn, str) and _DANGEROUS_TF_OPS.search(fn):
            _report(st, KERAS_TF_OP, path, f"{class_name} replays tf.{fn}")
    if isinstance(module, str) and module:
        name = config if class_name == "function" and isinstance(config, str) else class_name
        _check_reference(module, name, path, st)
        if isinstance(registered, str) and registered and registered != name \
                and ">" not in registered:
            _check_reference(module, registered, path, st)
    elif class_name == "function" and isinstance(config, str):
        _check_name_only(config, path, st)


def _check_lambda(config: dict[str, object], path: str, st: _State) -> None:
    for key, type_key in (("function", "function_type"), ("output_shape", "output_shape_type")):
        fn = config.get(key)
        ftype = config.get(type_key)
        code = fn[0] if isinstance(fn, list | tuple) and fn else fn
        if ftype == "lambda" or (isinstance(code, str) and _is_marshalled_code(code)):
            _report(st, KERAS_LAMBDA, f"{path}.config.{key}",
                    f"Lambda layer {key} is marshalled bytecode "
                    f"({type_key}={ftype!r}); it runs when the model loads")
        elif ftype == "function" and isinstance(fn, str):
            mod = config.get("module")
            if isinstance(mod, str) and mod:
                _check_reference(mod, fn, f"{path}.config.{key}", st)
                if _root(mod) in _ALLOWED_ROOTS and fn not in _DANGEROUS_FUNCTIONS:
                    continue
            _report(st, KERAS_FUNCTION_REF, f"{path}.config.{key}",
                    f"Lambda layer calls {mod if isinstance(mod, str) else '?'}.{fn} by name")


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def _check_reference(module: str, name: object, path: str, st: _State) -> None:
    root = _root(module)
    label = f"{module}.{name}" if isinstance(name, str) else module
    if isinstance(name, str) and name in _SPECIAL_CLASSES:
        return
    if root == "builtins":
        if isinstance(name, str) and name in _SAFE_BUILTINS:
            return
        _report(st, KERAS_DANGEROUS_MODULE, path, f"references {label}: builtins other than "
                "plain data types run code")
    elif root in _DANGEROUS_ROOTS:
        _report(st, KERAS_DANGEROUS_MODULE, path,
                f"references {label}; Keras imports {module!r} while loading")
    elif root in _ALLOWED_ROOTS:
        if isinstance(name, str) and name in _DANGEROUS_FUNCTIONS:
            _report(st, KERAS_DANGEROUS_MODULE, path,
                    f"references {label}, which loads code or touches files "
                    "(safe_mode bypass, CVE-2025-8747/CVE-2025-9906)")
    else:
        _report(st, KERAS_UNKNOWN_MODULE, path,
                f"references {label}; the package {root!r} is imported at load time")


def _check_name_only(name: str, path: str, st: _State) -> None:
    if name in _DANGEROUS_FUNCTIONS:
        _report(st, KERAS_DANGEROUS_MODULE, path, f"function {name!r} loads code or touches "
                "files")


def _is_marshalled_code(text: str) -> bool:
    """base64 of ``marshal.dumps(code)``: TYPE_CODE ('c', maybe with FLAG_REF 0x80)."""
    if len(text) > 64 * 1024 * 1024 or not _B64.match(text[:4096]):
        return False
    try:
        head = base64.b64decode(text[:64] + "=" * (-len(text[:64]) % 4), validate=False)
    except (binascii.Error, ValueError):
        return False
    return len(head) > 16 and head[0] & 0x7F == ord("c")
