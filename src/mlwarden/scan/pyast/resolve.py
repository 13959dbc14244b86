"""Name resolution and constant folding over a parsed module, both bounded.

``qualify`` turns an expression into the dotted name it refers to (``o.system`` after
``import os as o`` -> ``os.system``; ``getattr(__import__("o"+"s"), "system")`` too).
``fold`` turns an expression into the string it builds, as far as that is knowable without
running anything: concatenation, f-strings, joins, ``chr`` lists, slicing, path joins and
the usual encodings (base64, hex, rot13, zlib). Unknown pieces become ``{}``.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import codecs
import posixpath
import zlib
from collections.abc import Callable, Iterable

MAX_DEPTH = 24  # nesting of names and calls followed by one qualify/fold
MAX_STR = 1 << 16  # longest string folding builds
MAX_STEPS = 2_000  # nodes visited by one top-level fold
UNKNOWN = "{}"

BUILTIN_NAMES = frozenset(dir(builtins))
# Modules that are aliases of others for our purposes.
_MODULE_ALIASES = {"posix": "os", "nt": "os", "posixpath": "os.path", "ntpath": "os.path",
                   "_io": "io", "_pickle": "pickle", "__builtin__": "builtins"}
_CODEC_ROT13 = frozenset({"rot13", "rot_13", "rot-13"})
_HOME_VARS = frozenset({"HOME", "USERPROFILE"})

Env = dict[str, "ast.expr | None"]  # None marks a local whose value is not tracked


def normalise(q: str) -> str:
    head, _, rest = q.partition(".")
    head = _MODULE_ALIASES.get(head, head)
    q = f"{head}.{rest}" if rest else head
    if q.startswith("builtins.") and q.count(".") == 1:
        return q[len("builtins."):]
    if q in ("io.open", "codecs.open"):
        return q
    return q


def collect_env(body: Iterable[ast.stmt], env: Env) -> None:
    """Record simple assignments of one scope (not descending into nested defs/classes).

    Later assignments win; ``x += y`` composes with the previous value, so strings built
    piecewise still fold."""
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            env[stmt.name] = None
            continue
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                _bind(target, stmt.value, env)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            _bind(stmt.target, stmt.value, env)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            prev = env.get(stmt.target.id)
            if prev is not None:
                env[stmt.target.id] = ast.copy_location(
                    ast.BinOp(left=prev, op=stmt.op, right=stmt.value), stmt)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            _bind_unknown(stmt.target, env)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    _bind(item.optional_vars, item.context_expr, env)
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and not isinstance(stmt, ast.ClassDef):
                collect_env(inner, env)
        if isinstance(stmt, ast.Try):
            for handler in stmt.handlers:
                collect_env(handler.body, env)


def _bind(target: ast.expr, value: ast.expr, env: Env) -> None:
    if isinstance(target, ast.Name):
        env[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            for t, v in zip(target.elts, value.elts, strict=True):
                _bind(t, v, env)
        else:
            _bind_unknown(target, env)


def _bind_unknown(target: ast.expr, env: Env) -> None:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            env[node.id] = None


class Resolver:
    """Per-module tables: import aliases, module-level assignments, defined names."""

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []
        self.module_env: Env = {}
        self.defined: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = normalise(a.name)
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = normalise(top)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mod = normalise(node.module)
                for a in node.names:
                    if a.name == "*":
                        self.star_modules.append(mod)
                    else:
                        self.aliases[a.asname or a.name] = normalise(f"{mod}.{a.name}")
        collect_env(tree.body, self.module_env)
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.add(stmt.name)
        self._steps = 0
        self._active: set[str] = set()  # names being folded (breaks self-reference)

    # ------------------------------------------------------------------ lookup

    def lookup(self, name: str, env: Env | None) -> tuple[bool, ast.expr | None]:
        """(found, value): local scope first, then module scope."""
        if env is not None and name in env:
            return True, env[name]
        if name in self.module_env:
            return True, self.module_env[name]
        return False, None

    # ------------------------------------------------------------------ qualify

    def qualify(self, node: ast.expr, env: Env | None = None, depth: int = 0) -> str | None:
        if depth == 0:
            self._steps = 0
        self._steps += 1
        if depth > MAX_DEPTH or self._steps > MAX_STEPS:
            return None
        if isinstance(node, ast.Name):
            return self._qualify_name(node.id, env, depth)
        if isinstance(node, ast.Attribute):
            base = self.qualify(node.value, env, depth + 1)
            return normalise(f"{base}.{node.attr}") if base else None
        if isinstance(node, ast.Call):
            return self._qualify_call(node, env, depth)
        if isinstance(node, ast.Subscript):
            base = self.qualify(node.value, env, depth + 1)
            key = self.fold(node.slice, env, depth + 1) if base else None
            if base is None or key is None or UNKNOWN in key:
                return None
            if base == "sys.modules":
                return normalise(key)
            if base in ("builtins", "builtins.__dict__", "vars(builtins)"):
                return normalise(f"builtins.{key}")
            if base in ("globals()", "locals()"):
                return self._qualify_name(key, env, depth + 1)
            return None
        if isinstance(node, ast.NamedExpr):
            return self.qualify(node.value, env, depth + 1)
        return None

    def _qualify_name(self, name: str, env: Env | None, depth: int) -> str | None:
        if name == "__builtins__":
            return "builtins"
        found, value = self.lookup(name, env)
        if env is not None and name in env:
            return self.qualify(value, env, depth + 1) if value is not None else None
        if name in self.aliases:
            return self.aliases[name]
        if found:
            return self.qualify(value, None, depth + 1) if value is not None else None
        if name in self.defined:
            return None
        if name in BUILTIN_NAMES:
            return name
        return None

    def _qualify_call(self, node: ast.Call, env: Env | None, depth: int) -> str | None:
        func = self.qualify(node.func, env, depth + 1)
        if func is None:
            return None
        if func in ("__import__", "importlib.import_module", "importlib.__import__"):
            if node.args:
                name = self.fold(node.args[0], env, depth + 1)
                if name and UNKNOWN not in name:
                    return normalise(name)
            return None
        if func == "getattr" and len(node.args) >= 2:
            base = self.qualify(node.args[0], env, depth + 1)
            attr = self.fold(node.args[1], env, depth + 1)
            if base and attr and UNKNOWN not in attr:
                return normalise(f"{base}.{attr}")
            return None
        if func == "vars" and node.args:
            base = self.qualify(node.args[0], env, depth + 1)
            return f"vars({base})" if base else None
        if func in ("globals", "locals"):
            return f"{func}()"
        return f"{func}()"

    # ------------------------------------------------------------------ fold

    def fold(self, node: ast.AST, env: Env | None = None, depth: int = 0) -> str | None:
        """The string ``node`` builds, with ``{}`` for unknown pieces; None if not a string."""
        if depth == 0:
            self._steps = 0
        self._steps += 1
        if depth > MAX_DEPTH or self._steps > MAX_STEPS:
            return None
        out = self._fold(node, env, depth)
        if out is not None and len(out) > MAX_STR:
            out = out[:MAX_STR]
        return out

    def _fold(self, node: ast.AST, env: Env | None, depth: int) -> str | None:
        d = depth + 1
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return node.value
            if isinstance(node.value, bytes):
                return node.value.decode("latin-1")
            return None
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for v in node.values:
                if isinstance(v, ast.FormattedValue):
                    parts.append(self.fold(v.value, env, d) or UNKNOWN)
                else:
                    parts.append(self.fold(v, env, d) or "")
            return "".join(parts)
        if isinstance(node, ast.Name):
            found, value = self.lookup(node.id, env)
            if not found or value is None or node.id in self._active:
                return None  # unknown, or `x = x + y` folding into itself
            self._active.add(node.id)
            try:
                return self.fold(value, env if env is not None and node.id in env else None, d)
            finally:
                self._active.discard(node.id)
        if isinstance(node, ast.BinOp):
            return self._fold_binop(node, env, d)
        if isinstance(node, ast.Subscript):
            return self._fold_subscript(node, env, d)
        if isinstance(node, ast.Call):
            return self._fold_call(node, env, d)
        if isinstance(node, ast.NamedExpr):
            return self.fold(node.value, env, d)
        return None

    def _fold_binop(self, node: ast.BinOp, env: Env | None, d: int) -> str | None:
        left = self.fold(node.left, env, d)
        if isinstance(node.op, ast.Add):
            right = self.fold(node.right, env, d)
            if left is None and right is None:
                return None
            return (left or UNKNOWN) + (right or UNKNOWN)
        if isinstance(node.op, ast.Div):  # pathlib: Path(a) / "b"
            right = self.fold(node.right, env, d)
            if left is None and right is None:
                return None
            return f"{left or UNKNOWN}/{right or UNKNOWN}"
        if isinstance(node.op, ast.Mod) and left is not None:
            return left.replace("%s", UNKNOWN)
        if isinstance(node.op, ast.Mult) and left is not None:
            if isinstance(node.right, ast.Constant) and isinstance(node.right.value, int):
                n = node.right.value
                if n >= 0 and len(left) * n <= MAX_STR:
                    return left * n
            return left
        return None

    def _fold_subscript(self, node: ast.Subscript, env: Env | None, d: int) -> str | None:
        base_q = self.qualify(node.value, env, d)
        if base_q == "os.environ":
            key = self.fold(node.slice, env, d)
            return "~" if key in _HOME_VARS else UNKNOWN
        value = self.fold(node.value, env, d)
        if value is None:
            return None
        sl = node.slice
        if isinstance(sl, ast.Slice):
            try:
                lo, hi, st = (_const_int(sl.lower), _const_int(sl.upper), _const_int(sl.step))
                return value[slice(lo, hi, st)]
            except (TypeError, ValueError):
                return None
        idx = _const_int(sl)
        if idx is not None and -len(value) <= idx < len(value):
            return value[idx]
        return None

    def _fold_call(self, node: ast.Call, env: Env | None, d: int) -> str | None:
        args = node.args
        if isinstance(node.func, ast.Attribute):
            method = node.func.attr
            recv = node.func.value
            if method == "join" and args:
                if isinstance(recv, ast.Attribute) and recv.attr == "path":
                    return self._join_paths(args, env, d)  # os.path.join
                sep = self.fold(recv, env, d)
                if sep is not None and UNKNOWN not in sep:
                    pieces = self._fold_iterable(args[0], env, d)
                    if pieces is not None:
                        return sep.join(pieces)
            if method in ("format", "format_map"):
                fmt = self.fold(recv, env, d)
                if fmt is not None:
                    vals = [self.fold(a, env, d) or UNKNOWN for a in args]
                    try:
                        return fmt.format(*vals, **{k.arg: (self.fold(k.value, env, d)
                                                            or UNKNOWN)
                                                    for k in node.keywords if k.arg})
                    except (IndexError, KeyError, ValueError, AttributeError):
                        return fmt
            if method in ("lower", "upper", "strip", "lstrip", "rstrip", "title", "casefold"):
                s = self.fold(recv, env, d)
                if s is not None:
                    return s if args else str(getattr(s, method)())
            if method == "replace" and len(args) >= 2:
                s = self.fold(recv, env, d)
                a, b = self.fold(args[0], env, d), self.fold(args[1], env, d)
                if s is not None:
                    return s.replace(a, b) if a is not None and b is not None else s
            if method in ("encode", "expanduser", "resolve", "absolute", "as_posix",
                          "__str__", "strip", "joinpath", "with_suffix"):
                s = self.fold(recv, env, d)
                if s is not None and method == "joinpath":
                    return "/".join([s, *(self.fold(a, env, d) or UNKNOWN for a in args)])
                if s is not None:
                    return s
            if method == "decode":
                s = self.fold(recv, env, d)
                enc = self.fold(args[0], env, d) if args else None
                if s is not None and enc is not None and enc.lower() in _CODEC_ROT13:
                    return codecs.decode(s, "rot13")
                if s is not None:
                    return s
        q = self.qualify(node.func, env, d)
        if q is None:
            return None
        first = self.fold(args[0], env, d) if args else None
        if q in ("str", "os.fspath", "os.path.expanduser", "os.path.abspath", "os.path.realpath",
                 "os.path.normpath", "os.path.expandvars", "repr"):
            return first
        if q in ("pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "os.path.join"):
            return self._join_paths(args, env, d) if args else None
        if q == "pathlib.Path.home":
            return "~"
        if q in ("pathlib.Path.cwd", "os.getcwd"):
            return "."
        if q in ("os.getenv", "os.environ.get"):
            return "~" if first in _HOME_VARS else UNKNOWN
        if q in ("tempfile.gettempdir", "tempfile.mkdtemp"):
            return "/tmp"
        if q in ("os.path.dirname", "os.path.basename"):
            if first is None:
                return None
            return (posixpath.dirname if q.endswith("dirname") else posixpath.basename)(first)
        if q == "chr" and args:
            n = _const_int(args[0])
            return chr(n) if n is not None and 0 <= n < 0x110000 else UNKNOWN
        if q in ("bytes", "bytearray") and args:
            pieces = self._fold_iterable(args[0], env, d)
            return "".join(pieces) if pieces is not None else first
        if q in ("bytes.fromhex", "bytearray.fromhex", "binascii.unhexlify", "binascii.a2b_hex"):
            return _decode(lambda s: bytes.fromhex(s), first)
        if q.startswith("base64.") or q.startswith("binascii.a2b_base64"):
            return _decode(lambda s: _b64(q, s), first)
        if q in ("zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress"):
            return _decode(lambda s: _decompress(q, s), first)
        if q == "codecs.decode" and len(args) >= 2:
            enc = (self.fold(args[1], env, d) or "").lower()
            if enc in _CODEC_ROT13:
                return codecs.decode(first, "rot13") if first is not None else None
            if enc in ("hex", "hex_codec"):
                return _decode(lambda s: bytes.fromhex(s), first)
            if enc in ("base64", "base64_codec"):
                return _decode(lambda s: _b64("base64.b64decode", s), first)
            return first
        return None

    def _join_paths(self, args: list[ast.expr], env: Env | None, d: int) -> str | None:
        parts = [self.fold(a, env, d) for a in args]
        if all(p is None for p in parts):
            return None
        out = ""
        for p in parts:
            p = UNKNOWN if p is None else p
            out = p if p.startswith("/") or not out else f"{out.rstrip('/')}/{p}"
        return out

    def _fold_iterable(self, node: ast.AST, env: Env | None, d: int) -> list[str] | None:
        """Pieces of a list/tuple, ``map(chr, [...])`` or ``(chr(c) for c in [...])``."""
        if isinstance(node, ast.Name):
            found, value = self.lookup(node.id, env)
            return self._fold_iterable(value, env, d + 1) if found and value is not None else None
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            out: list[str] = []
            for e in node.elts[:4096]:
                n = _const_int(e)
                if n is not None and 0 <= n < 0x110000:
                    out.append(chr(n))
                else:
                    out.append(self.fold(e, env, d) or UNKNOWN)
            return out
        if isinstance(node, ast.Call) and self.qualify(node.func, env, d) == "map" \
                and len(node.args) == 2 and self.qualify(node.args[0], env, d) == "chr":
            return self._fold_iterable(node.args[1], env, d)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and len(node.generators) == 1:
            gen = node.generators[0]
            elt = node.elt
            if isinstance(elt, ast.Call) and self.qualify(elt.func, env, d) == "chr" \
                    and elt.args and isinstance(elt.args[0], ast.Name) \
                    and isinstance(gen.target, ast.Name) and elt.args[0].id == gen.target.id:
                return self._fold_iterable(gen.iter, env, d)
            if isinstance(elt, ast.Name) and isinstance(gen.target, ast.Name) \
                    and elt.id == gen.target.id:
                return self._fold_iterable(gen.iter, env, d)
        s = self.fold(node, env, d)
        return list(s) if s is not None else None


def _const_int(node: ast.AST | None) -> int | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, int) \
            and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _const_int(node.operand)
        return -v if v is not None else None
    return None


def _decode(fn: Callable[[str], bytes], text: str | None) -> str | None:
    if text is None or UNKNOWN in text:
        return None
    try:
        out = fn(text)
    except (ValueError, TypeError, binascii.Error, zlib.error, OSError, EOFError,
            LookupError):
        return None
    return bytes(out).decode("latin-1")


def _b64(q: str, text: str) -> bytes:
    raw = text.encode("latin-1")
    if "b32" in q:
        return base64.b32decode(raw)
    if "b16" in q:
        return base64.b16decode(raw, casefold=True)
    if "a85" in q:
        return base64.a85decode(raw)
    if "b85" in q:
        return base64.b85decode(raw)
    if "urlsafe" in q:
        return base64.urlsafe_b64decode(raw)
    return base64.b64decode(raw)


def _decompress(q: str, text: str) -> bytes:
    """Decompress constant data without letting a bomb expand past MAX_STR."""
    raw = text.encode("latin-1")
    if q.startswith("zlib"):
        return zlib.decompressobj().decompress(raw, MAX_STR)
    if q.startswith("gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, MAX_STR)
    if q.startswith("bz2"):
        import bz2

        return bz2.BZ2Decompressor().decompress(raw, MAX_STR)
    import lzma

    return lzma.LZMADecompressor().decompress(raw, MAX_STR)
