"""A symbolic pickle machine that follows CPython's unpickler (Modules/_pickle.c, 3.11).

It models the stack, the mark stack, the memo, frames and every opcode of protocols 0-5,
but never imports or calls anything: globals become :class:`Global` values and calls become
:class:`Call` values that the classifier judges afterwards. Work is bounded by the opcode
budget and by the input itself (a declared length past the end of the data is a break,
never an allocation).
"""

from __future__ import annotations

import codecs
from struct import Struct, unpack_from

from mlwarden.scan.formats.numpy_dtype import DtypeInfo, pickled_dtype_info
from mlwarden.scan.pickle import cnum
from mlwarden.scan.pickle.values import (
    CALL,
    ITEMS,
    NEW,
    REF,
    SETATTR,
    Attr,
    Call,
    Global,
    Persistent,
    SymDict,
    SymSet,
    Unknown,
    describe,
)

HIGHEST_PROTOCOL = 5
JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
RESOLVERS = frozenset({
    "builtins.getattr", "dill._dill._get_attr", "dill._dill._load_type",
    "cloudpickle.cloudpickle._builtin_type",
    # numpy < 2 pickled ufuncs as _ufunc_reconstruct(module, name): an import by name.
    "numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct",
})
_UFUNC_RESOLVERS = frozenset({"numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"})
_ENCODERS = frozenset({"_codecs.encode", "codecs.encode"})
# Model deserialisers a pickle may hand bytes to (Keras models pickle themselves this way):
# the bytes are the archive the loader extracts and loads, judged as such by the readers.
MODEL_LOADERS = frozenset({
    "keras.saving.pickle_utils.deserialize_model_from_bytecode",
    "keras.src.saving.pickle_utils.deserialize_model_from_bytecode",
    "tf_keras.src.saving.pickle_utils.deserialize_model_from_bytecode",
    "tf_keras.saving.pickle_utils.deserialize_model_from_bytecode",
    "tensorflow.python.keras.saving.pickle_utils.deserialize_model_from_bytecode",
    "keras.src.saving.keras_saveable.KerasSaveable._unpickle_model",
    "keras.src.models.model.Model._unpickle_model",
})
NESTED_LOADERS = frozenset({
    "pickle.loads", "_pickle.loads", "pickle._loads", "cPickle.loads", "dill.loads",
    "dill._dill.loads", "cloudpickle.loads", "numpy.loads", "numpy.core.numeric.loads",
    "torch.storage._load_from_bytes", "pickle.load", "_pickle.load",
})


class Break(Exception):
    """The stream stops here: CPython's unpickler raises at this point."""

    def __init__(self, message: str, anomaly: str | None = None) -> None:
        super().__init__(message)
        self.anomaly = anomaly  # "memo", "frame", "truncated", ... for the classifier


class Budget(Exception):
    """The opcode budget ran out."""


_compat: tuple[dict[tuple[str, str], tuple[str, str]], dict[str, str]] | None = None


def _compat_maps() -> tuple[dict[tuple[str, str], tuple[str, str]], dict[str, str]]:
    """Python 2 name mapping applied by find_class for protocol < 3 (fix_imports)."""
    global _compat
    if _compat is None:
        import _compat_pickle

        _compat = (_compat_pickle.NAME_MAPPING, _compat_pickle.IMPORT_MAPPING)
    return _compat


class Straddle:
    """A read that runs past the end of its FRAME (gh-154848)."""

    __slots__ = ("frame_end", "frame_start", "op_offset", "read_offset")

    def __init__(self, op_offset: int, frame_start: int, frame_end: int, read_offset: int):
        self.op_offset = op_offset
        self.frame_start = frame_start
        self.frame_end = frame_end
        self.read_offset = read_offset


class Machine:
    """Interprets one pickle starting at ``start`` in ``data``.

    ``lossy`` selects the C unpickler's file-based behaviour (no ``peek``, or a frame that
    crossed a buffer boundary): after a FRAME, a plain read that crosses the frame's end
    drops the rest of the frame and continues at the frame end (``_Unpickler_ReadImpl``);
    ``readinto`` reads (bytes payloads) stay linear. The default is the in-memory/linear
    view shared by ``pickle.loads`` and pickletools.
    """

    def __init__(self, data: bytes, start: int, max_ops: int, *, lossy: bool = False,
                 joblib: bool = True, depth: int = 0) -> None:
        self.data = data
        self.dlen = len(data)
        self.start = start
        self.pos = start
        self.lim = self.dlen
        self.max_ops = max_ops
        self.lossy = lossy
        self.joblib = joblib
        self.depth = depth
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.ops = 0
        self.op_pos = start
        self.fstart: int | None = None
        self.fend: int | None = None
        self.skip_after_frame = 0
        # What the classifier reads afterwards.
        self.globals: list[Global] = []
        self.calls: list[tuple[object, object, str, int]] = []
        self.anomalies: list[tuple[str, str, int]] = []  # (kind, message, offset)
        self.straddles: list[Straddle] = []
        self.nested: list[tuple[str, bytes, int]] = []  # (loader, bytes, offset)
        self.value: object = None
        self.joblib_arrays = 0
        self.protocols: set[int] = set()

    # ------------------------------------------------------------------ reading
    def read(self, n: int, into: bool = False) -> bytes:
        p = self.pos
        q = p + n
        if q <= self.lim:
            self.pos = q
            return self.data[p:q]
        return self._read_slow(n, into)

    def _read_slow(self, n: int, into: bool) -> bytes:
        p = self.pos
        fend = self.fend
        if fend is not None:
            if p >= fend:  # frame consumed: back to the underlying stream
                self._end_frame()
                return self.read(n, into)
            assert self.fstart is not None
            self.straddles.append(Straddle(self.op_pos, self.fstart, fend, p))
            if self.lossy and not into:
                p = fend + self.skip_after_frame
                self.skip_after_frame = 0
            self._end_frame()
        q = p + n
        if q > self.dlen:
            raise Break(f"pickle data was truncated (needs {n} bytes at offset {p})",
                        "truncated")
        self.pos = q
        return self.data[p:q]

    def _end_frame(self) -> None:
        if self.fend is not None and self.skip_after_frame:
            self.pos = max(self.pos, self.fend) + self.skip_after_frame
            self.skip_after_frame = 0
        self.fend = self.fstart = None
        self.lim = self.dlen

    def readline(self) -> bytes:
        p = self.pos
        i = self.data.find(b"\n", p, self.lim)
        if i >= 0:
            self.pos = i + 1
            return self.data[p:i]
        fend = self.fend
        if fend is not None:
            if p >= fend:
                self._end_frame()
                return self.readline()
            assert self.fstart is not None
            self.straddles.append(Straddle(self.op_pos, self.fstart, fend, p))
            if self.lossy:
                p = fend + self.skip_after_frame
                self.skip_after_frame = 0
            self._end_frame()
            i = self.data.find(b"\n", p)
            if i >= 0:
                self.pos = i + 1
                return self.data[p:i]
        raise Break(f"pickle data was truncated (no end of line after offset {p})",
                    "truncated")

    # ------------------------------------------------------------------ stack
    def pop(self) -> object:
        try:
            return self.stack.pop()
        except IndexError:
            raise Break("unpickling stack underflow", "stack") from None

    def top(self) -> object:
        if not self.stack:
            raise Break("unpickling stack underflow", "stack")
        return self.stack[-1]

    def pop_mark(self) -> list[object]:
        items = self.stack
        try:
            self.stack = self.metastack.pop()
        except IndexError:
            raise Break("could not find MARK", "stack") from None
        return items

    # ------------------------------------------------------------------ main loop
    def run(self) -> bool:
        """Interpret up to STOP. True on STOP; raises Break or Budget otherwise."""
        dispatch = _DISPATCH
        data = self.data
        max_ops = self.max_ops
        while True:
            p = self.pos
            if p >= self.lim:
                if self.fend is not None and p >= self.fend:
                    self._end_frame()
                    p = self.pos
                if p >= self.dlen:
                    raise Break("pickle exhausted before STOP", "truncated")
            self.op_pos = p
            self.pos = p + 1
            ops = self.ops + 1
            self.ops = ops
            if ops > max_ops:
                raise Budget(f"more than {max_ops} opcodes")
            if dispatch[data[p]](self):
                return True

    # ------------------------------------------------------------------ helpers
    def note(self, kind: str, message: str) -> None:
        if len(self.anomalies) < 200:
            self.anomalies.append((kind, message, self.op_pos))

    def make_global(self, module: str, name: str, how: str) -> Global:
        if self.proto < 3:
            names, imports = _compat_maps()
            if (module, name) in names:
                module, name = names[(module, name)]
            elif module in imports:
                module = imports[module]
        g = Global(module, name, self.op_pos, how)
        g.uses |= REF
        self.globals.append(g)
        return g

    def invoke(self, func: object, args: object, kind: str) -> object:
        """REDUCE/OBJ/INST (kind "call") or NEWOBJ (kind "new") of ``func``."""
        off = self.op_pos
        func = _unwrap_persistent_class(func)
        self.calls.append((func, args, kind, off))
        if kind == "call":
            target = _wrapped_callable(func)
            if target is not None:
                # staticmethod(f)(...) and partial(f, ...)(...) call f.
                return self.invoke(target, args, kind)
        if isinstance(func, Global):
            if kind == "new":
                func.uses |= NEW
                return Call(func, args, kind, off)
            func.uses |= CALL
            if func.call_offset is None:
                func.call_offset, func.call_args = off, args
            full = func.full
            if full in _ENCODERS and isinstance(args, tuple) and len(args) == 2 \
                    and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
                # Protocol 0-2 write bytes as _codecs.encode(str, 'latin1'): a constant.
                try:
                    return args[0].encode("latin-1")
                except UnicodeEncodeError:
                    pass
            if full == "builtins.str":
                folded = _fold_str(args)
                if folded is not None:
                    return folded
            if full in RESOLVERS:
                resolved = self._resolve(full, args)
                if resolved is not None:
                    func.resolved += 1
                    return resolved
                func.unresolved += 1
            elif full in NESTED_LOADERS or full in MODEL_LOADERS:
                blob = args[0] if isinstance(args, tuple) and args else None
                blob = _bytesio_value(blob)
                if isinstance(blob, (bytes, bytearray)):
                    self.nested.append((full, bytes(blob), off))
                elif full in MODEL_LOADERS:
                    self.note("model", f"{full} is handed a model built at load time; it "
                                       "cannot be analysed")
                else:
                    self.note("nested", f"{full} is handed data computed at load time")
            self._mark_arguments(func, args)
        elif isinstance(func, Attr):
            self.note("call-attr", f"calls method {func.name!r} of a reconstructed object")
        else:
            self.note("call-value", "calls a value that is not an imported global")
        return Call(func, args, kind, off)

    def _resolve(self, full: str, args: object) -> object:
        if not isinstance(args, tuple):
            return None
        if full in ("builtins.getattr", "dill._dill._get_attr") and len(args) >= 2:
            obj, name = args[0], args[1]
            if not isinstance(name, str):
                return None
            if isinstance(obj, Global):
                g = Global(obj.module, f"{obj.name}.{name}", self.op_pos, "getattr")
                g.uses |= REF
                self.globals.append(g)
                return g
            if isinstance(obj, (Call, Persistent, SymDict, list, tuple, SymSet)):
                return Attr(obj, name)
            return None
        if full in _UFUNC_RESOLVERS:
            if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], str):
                g = Global(args[0], args[1], self.op_pos, "_ufunc_reconstruct")
                g.uses |= REF
                self.globals.append(g)
                return g
            return None
        if len(args) == 1 and isinstance(args[0], str):  # _load_type / _builtin_type
            g = Global("types", args[0], self.op_pos, "type lookup")
            g.uses |= REF
            self.globals.append(g)
            return g
        return None

    def _mark_arguments(self, func: Global, args: object) -> None:
        """Helpers call or instantiate some of their arguments (the knowledge base says
        which): those globals are called or reconstructed too. An argument tuple built by
        a call, or a computed value in such a position, hides what runs."""
        full = func.full
        if full == "torch._utils._set_obj_state" and isinstance(args, tuple) and args:
            self.mutate(args[0], "_set_obj_state (setattr per state item)")
        roles = _helper_roles(func.module, func.name)
        if roles is None:
            return
        invokes, constructs = roles
        if not isinstance(args, tuple):
            self.note("call-value", f"{full} calls or reconstructs arguments built at load "
                                    "time (its argument tuple is not a literal)")
            return
        for i in invokes:
            if i >= len(args):
                continue
            target = _wrapped_callable(args[i]) or args[i]
            if full == "copyreg._reconstructor" and isinstance(target, Global) \
                    and target.full == "builtins.object":
                continue  # base.__init__ runs only for a base other than object
            if isinstance(target, Global):
                target.uses |= CALL
                if target.call_offset is None:
                    target.call_offset, target.call_args = self.op_pos, args
            elif isinstance(target, (Call, Attr, Persistent, Unknown)):
                self.note("call-value", f"{full} calls a computed value (argument {i})")
        for i in constructs:
            if i >= len(args):
                continue
            cls = _unwrap_persistent_class(args[i])
            if isinstance(cls, Global):
                cls.uses |= NEW
            elif isinstance(cls, (Call, Attr, Persistent, Unknown)):
                self.note("call-value", f"{full} reconstructs a computed class")

    def mutate(self, target: object, how: str) -> None:
        if isinstance(target, Call):
            _mark_items(target)
            return
        if isinstance(target, Global):
            self.note("mutation", f"{how} modifies the imported global {target.full}")
        elif isinstance(target, Attr) and isinstance(target.obj, Global):
            self.note("mutation", f"{how} modifies an attribute of {target.obj.full}")

    def memo_get(self, idx: int) -> None:
        try:
            value = self.memo[idx]
        except KeyError:
            raise Break(f"memo value not found at index {idx}", "memo") from None
        self.stack.append(value)

    def memo_put(self, idx: int) -> None:
        if idx < 0:
            raise Break("negative memo index", "memo")
        value = self.top()
        old = self.memo.get(idx)
        if old is not None and isinstance(old, str) and old != value:
            self.note("memo", f"memo slot {idx} is overwritten (was {old[:40]!r})")
        self.memo[idx] = value

    # ------------------------------------------------------------------ joblib
    def joblib_build(self, wrapper: Call, state: object) -> None:
        """Skip the raw array buffer joblib's NumpyArrayWrapper.read_array reads next."""
        if not isinstance(state, SymDict):
            raise Break("joblib array wrapper without a state dict", "joblib")
        shape, dtype = state.get("shape"), state.get("dtype")
        count = 1
        if not isinstance(shape, tuple) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise Break("joblib array wrapper with an unreadable shape", "joblib")
        for d in shape:
            count *= d
        info = _dtype_info(dtype)
        self.joblib_arrays += 1
        if info.has_object is None:
            raise Break("joblib array wrapper whose dtype may or may not hold objects",
                        "joblib")
        if info.has_object:
            # read_array calls a plain pickle.load here: no array wrappers inside.
            sub = Machine(self.data, self._raw_start(), self.max_ops - self.ops,
                          lossy=self.lossy, joblib=False, depth=self.depth + 1)
            if self.depth > 32:
                raise Break("joblib object arrays nested too deeply", "joblib")
            try:
                sub.run()
            finally:
                self.globals.extend(sub.globals)
                self.calls.extend(sub.calls)
                self.anomalies.extend(sub.anomalies)
                self.nested.extend(sub.nested)
                self.straddles.extend(sub.straddles)
                self.ops += sub.ops
            self._raw_skip(sub.pos - self._raw_start())
            return
        itemsize = info.itemsize
        if itemsize is None or itemsize <= 0:
            raise Break("joblib array wrapper with a dtype whose item size is not known "
                        "exactly", "joblib")
        size = count * itemsize
        if state.get("numpy_array_alignment_bytes") is not None:
            start = self._raw_start()
            if start >= self.dlen:
                raise Break("joblib array padding byte missing", "truncated")
            size += 1 + self.data[start]
        self._raw_skip(size)

    def _raw_start(self) -> int:
        if self.fend is not None and self.pos < self.fend:
            return self.fend + self.skip_after_frame
        return self.pos

    def _raw_skip(self, size: int) -> None:
        if self._raw_start() + size > self.dlen:
            raise Break("joblib array buffer runs past the end of the data", "truncated")
        if self.fend is not None and self.pos < self.fend:
            self.note("frame", "a joblib array buffer starts inside an unfinished FRAME")
            self.skip_after_frame += size
        else:
            if self.fend is not None:
                self._end_frame()
            self.pos += size


_DTYPE_CLASSES = frozenset({"numpy.dtype", "numpy.core.multiarray.dtype",
                            "numpy._core.multiarray.dtype"})


def _dtype_info(dtype: object) -> DtypeInfo:
    """What ``wrapper.dtype.hasobject`` / ``.itemsize`` are for a pickled numpy dtype
    (``numpy.dtype(typestr, align, copy)`` + BUILD state); unsure for anything else, since
    joblib reads the attributes of whatever object it finds there."""
    if not isinstance(dtype, Call) or not isinstance(dtype.func, Global) \
            or dtype.func.full not in _DTYPE_CLASSES or not isinstance(dtype.args, tuple) \
            or not dtype.args:
        return DtypeInfo(None, None)
    return pickled_dtype_info(dtype.args[0], dtype.state)


COMPUTED = "<computed>"  # module and name of an import computed at load time
# Callable wrappers: calling the wrapper calls its first argument.
_WRAPPERS = frozenset({"builtins.staticmethod", "builtins.classmethod", "functools.partial",
                       "_functools.partial"})
_SAFE_CODECS = frozenset({"ascii", "latin1", "latin-1", "utf-8", "utf8", "iso-8859-1"})


# Allowlisted callables that return a str (every other allowlisted callable returns its
# own type, which STACK_GLOBAL rejects: it requires an exact str).
_STR_RETURNING = frozenset({"builtins.str", "builtins.format", "builtins.repr",
                            "builtins.ascii", "builtins.chr", "builtins.hex", "builtins.oct",
                            "builtins.bin"})


def _maybe_str(value: object) -> bool:
    """A str now, or a computed value that can be one when the loader runs."""
    if type(value) is str:
        return True
    if isinstance(value, Call):
        func = value.func
        if not isinstance(func, Global):
            return True
        if func.full in _STR_RETURNING:
            return True
        return value.kind != "new" and not _allowlisted(func)
    if isinstance(value, Global):
        return not _allowlisted(value)  # a module constant can be a str (os.name)
    return isinstance(value, (Attr, Persistent, Unknown))


def _allowlisted(g: Global) -> bool:
    from mlwarden.scan.knowledge import lookup

    return lookup(g.module, g.name).safe is not None


def _wrapped_callable(value: object, depth: int = 0) -> object | None:
    """``f`` for ``staticmethod(f)``, ``classmethod(f)``, ``partial(f, ...)``. A partial's
    BUILD state ``(func, args, kwds, dict)`` replaces its function."""
    if not (isinstance(value, Call) and value.kind == "call" and isinstance(value.func, Global)
            and value.func.full in _WRAPPERS) or depth > 16:
        return None
    inner: object
    if value.state is not None and value.func.full.endswith("partial"):
        st = value.state
        inner = st[0] if isinstance(st, tuple) and st else Unknown("partial state")
    elif isinstance(value.args, tuple) and value.args:
        inner = value.args[0]
    else:
        inner = Unknown("wrapped callable")
    return _wrapped_callable(inner, depth + 1) or inner


def _fold_str(args: object) -> str | None:
    """``builtins.str`` of constants, computed without importing anything."""
    if not isinstance(args, tuple) or len(args) > 3:
        return None
    if not args:
        return ""
    if len(args) == 1 and isinstance(args[0], (str, int, float, bytes, type(None))) \
            and not (isinstance(args[0], int) and args[0].bit_length() > 4000):
        return str(args[0])
    if isinstance(args[0], (bytes, bytearray)) and all(isinstance(a, str) for a in args[1:]):
        enc = args[1].lower() if len(args) > 1 else "utf-8"
        errors = args[2] if len(args) > 2 else "strict"
        if enc in _SAFE_CODECS and errors in ("strict", "ignore", "replace"):
            try:
                return bytes(args[0]).decode(enc, errors)
            except UnicodeDecodeError:
                return None
    return None


def _helper_roles(module: str, name: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(argument positions called, positions instantiated) of an allowlisted helper."""
    from mlwarden.scan.knowledge import lookup

    safe = lookup(module, name).safe
    if safe is None or not (safe.invokes or safe.constructs):
        return None
    return safe.invokes, safe.constructs


def _bytesio_value(value: object) -> object:
    """``io.BytesIO(b'...')`` (how Keras 3 hands its archive over) is its bytes."""
    if isinstance(value, Call) and isinstance(value.func, Global) \
            and value.func.full in ("io.BytesIO", "_io.BytesIO") \
            and isinstance(value.args, tuple) and value.args \
            and isinstance(value.args[0], (bytes, bytearray)):
        return value.args[0]
    return value


def _unwrap_persistent_class(value: object) -> object:
    """Legacy torch pickles module classes as persistent id ('module', cls, file, source);
    torch's persistent_load returns ``cls``."""
    if isinstance(value, Persistent):
        pid = value.pid
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module" \
                and isinstance(pid[1], Global):
            return pid[1]
    return value


# ---------------------------------------------------------------------- opcodes
# The hot handlers inline Machine.read's fast path (the read lies inside the current
# frame or, unframed, inside the data) and fall back to read() otherwise, so frame
# boundaries, straddles and truncation behave exactly as through read().
_F8 = Struct(">d").unpack_from
_I4 = Struct("<i").unpack_from
_U2 = Struct("<H").unpack_from
_U4 = Struct("<I").unpack_from
_UNDERFLOW = "unpickling stack underflow"


def op_invalid(m: Machine) -> None:
    p = m.op_pos
    raise Break(f"invalid load key {bytes([m.data[p]])!r} at offset {p}", "opcode")


def _put(m: Machine, idx: int) -> None:
    """Machine.memo_put for a non-negative index, without the method call."""
    stack = m.stack
    if not stack:
        raise Break(_UNDERFLOW, "stack")
    value = stack[-1]
    memo = m.memo
    old = memo.get(idx)
    if old is not None and isinstance(old, str) and old != value:
        m.note("memo", f"memo slot {idx} is overwritten (was {old[:40]!r})")
    memo[idx] = value
def _int_line(m: Machine, what: str) -> int:
    line = m.readline()
    value = cnum.load_index(line)
    if value is None:
        raise Break(f"invalid {what} argument {line[:20]!r}", "syntax")
    return value


def op_mark(m: Machine) -> None:
    m.metastack.append(m.stack)
    m.stack = []


def op_stop(m: Machine) -> bool:
    m.value = m.pop()
    return True


def op_pop(m: Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


def op_pop_mark(m: Machine) -> None:
    m.pop_mark()


def op_dup(m: Machine) -> None:
    m.stack.append(m.top())


def op_float(m: Machine) -> None:
    value = cnum.load_float(m.readline())
    if value is None:
        raise Break("could not convert string to float", "syntax")
    m.stack.append(value)


def op_binfloat(m: Machine) -> None:
    p = m.pos
    q = p + 8
    if q <= m.lim:
        m.pos = q
        m.stack.append(_F8(m.data, p)[0])
    else:
        m.stack.append(_F8(m.read(8))[0])


def op_int(m: Machine) -> None:
    value = cnum.load_int(m.readline())  # strtol base 0: 010 is 8, 12\0x is 12
    if value is None:
        raise Break("invalid INT argument", "syntax")
    m.stack.append(value)


def op_binint(m: Machine) -> None:
    p = m.pos
    q = p + 4
    if q <= m.lim:
        m.pos = q
        m.stack.append(_I4(m.data, p)[0])
    else:
        m.stack.append(_I4(m.read(4))[0])


def op_binint1(m: Machine) -> None:
    p = m.pos
    if p < m.lim:
        m.pos = p + 1
        m.stack.append(m.data[p])
    else:
        m.stack.append(m.read(1)[0])


def op_binint2(m: Machine) -> None:
    p = m.pos
    q = p + 2
    if q <= m.lim:
        m.pos = q
        m.stack.append(_U2(m.data, p)[0])
    else:
        m.stack.append(_U2(m.read(2))[0])


def op_long(m: Machine) -> None:
    value = cnum.load_long(m.readline())
    if value is None:
        raise Break("invalid LONG argument", "syntax")
    m.stack.append(value)


def op_long1(m: Machine) -> None:
    n = m.read(1)[0]
    m.stack.append(int.from_bytes(m.read(n), "little", signed=True))


def op_long4(m: Machine) -> None:
    n = unpack_from("<i", m.read(4))[0]
    if n < 0:
        raise Break("LONG pickle has negative byte count", "syntax")
    m.stack.append(int.from_bytes(m.read(n), "little", signed=True))


def op_none(m: Machine) -> None:
    m.stack.append(None)


def op_true(m: Machine) -> None:
    m.stack.append(True)


def op_false(m: Machine) -> None:
    m.stack.append(False)


def op_persid(m: Machine) -> None:
    line = m.readline()
    try:
        pid = line.decode("ascii")
    except UnicodeDecodeError:
        raise Break("persistent IDs in protocol 0 must be ASCII strings", "syntax") from None
    m.stack.append(Persistent(pid))


def op_binpersid(m: Machine) -> None:
    m.stack.append(Persistent(m.pop()))


def op_reduce(m: Machine) -> None:
    args = m.pop()
    func = m.pop()
    m.stack.append(m.invoke(func, args, "call"))


def _bytes_to_str(raw: bytes) -> str:
    # Protocol 0-2 byte strings load as str (encoding ASCII by default, utf-8 in torch);
    # latin-1 keeps every byte so the name is never lost.
    return raw.decode("latin-1")


def op_string(m: Machine) -> None:
    line = m.readline()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in b"'\"":
        try:
            raw = codecs.escape_decode(line[1:-1])[0]
        except ValueError:
            raise Break("invalid STRING escape", "syntax") from None
        m.stack.append(_bytes_to_str(raw))
    else:
        raise Break("the STRING opcode argument must be quoted", "syntax")


def op_binstring(m: Machine) -> None:
    n = unpack_from("<i", m.read(4))[0]
    if n < 0:
        raise Break("BINSTRING pickle has negative byte count", "syntax")
    m.stack.append(_bytes_to_str(m.read(n)))


def op_short_binstring(m: Machine) -> None:
    m.stack.append(_bytes_to_str(m.read(m.read(1)[0])))


def op_unicode(m: Machine) -> None:
    line = m.readline()
    try:
        m.stack.append(line.decode("raw-unicode-escape"))
    except UnicodeDecodeError:
        raise Break("invalid UNICODE argument", "syntax") from None


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise Break("invalid UTF-8 in a unicode string", "syntax") from None


def op_binunicode(m: Machine) -> None:
    p = m.pos
    lim = m.lim
    if p + 4 <= lim:
        data = m.data
        q = p + 4 + _U4(data, p)[0]
        if q <= lim:
            m.pos = q
            try:
                m.stack.append(data[p + 4:q].decode("utf-8", "surrogatepass"))
            except UnicodeDecodeError:
                raise Break("invalid UTF-8 in a unicode string", "syntax") from None
            return
    m.stack.append(_utf8(m.read(_U4(m.read(4))[0])))


def op_short_binunicode(m: Machine) -> None:
    p = m.pos
    lim = m.lim
    if p < lim:
        data = m.data
        q = p + 1 + data[p]
        if q <= lim:
            m.pos = q
            try:
                m.stack.append(data[p + 1:q].decode("utf-8", "surrogatepass"))
            except UnicodeDecodeError:
                raise Break("invalid UTF-8 in a unicode string", "syntax") from None
            return
    m.stack.append(_utf8(m.read(m.read(1)[0])))


def op_binunicode8(m: Machine) -> None:
    m.stack.append(_utf8(m.read(unpack_from("<Q", m.read(8))[0])))


def op_binbytes(m: Machine) -> None:
    m.stack.append(m.read(unpack_from("<I", m.read(4))[0], True))


def op_short_binbytes(m: Machine) -> None:
    m.stack.append(m.read(m.read(1)[0], True))


def op_binbytes8(m: Machine) -> None:
    m.stack.append(m.read(unpack_from("<Q", m.read(8))[0], True))


def op_bytearray8(m: Machine) -> None:
    m.stack.append(bytearray(m.read(unpack_from("<Q", m.read(8))[0], True)))


def op_next_buffer(m: Machine) -> None:
    m.note("buffer", "refers to an out-of-band buffer (protocol 5 NEXT_BUFFER)")
    m.stack.append(Unknown("out-of-band buffer"))


def op_readonly_buffer(m: Machine) -> None:
    m.top()


def op_append(m: Machine) -> None:
    stack = m.stack
    if len(stack) < 2:
        raise Break(_UNDERFLOW, "stack")
    value = stack.pop()
    target = stack[-1]
    if isinstance(target, list):
        target.append(value)
    else:
        m.mutate(target, "APPEND")


def op_appends(m: Machine) -> None:
    items = m.stack
    try:
        m.stack = stack = m.metastack.pop()
    except IndexError:
        raise Break("could not find MARK", "stack") from None
    if not stack:
        raise Break(_UNDERFLOW, "stack")
    target = stack[-1]
    if isinstance(target, list):
        target.extend(items)
    else:
        m.mutate(target, "APPENDS")


def op_setitem(m: Machine) -> None:
    stack = m.stack
    if len(stack) < 3:
        raise Break(_UNDERFLOW, "stack")
    value = stack.pop()
    key = stack.pop()
    target = stack[-1]
    if isinstance(target, SymDict):
        target.items.append((key, value))
    else:
        m.mutate(target, "SETITEM")


def op_setitems(m: Machine) -> None:
    items = m.stack
    try:
        m.stack = stack = m.metastack.pop()
    except IndexError:
        raise Break("could not find MARK", "stack") from None
    if not stack:
        raise Break(_UNDERFLOW, "stack")
    target = stack[-1]
    if len(items) % 2:
        raise Break("odd number of items for SETITEMS", "syntax")
    if isinstance(target, SymDict):
        target.items.extend(zip(items[::2], items[1::2], strict=False))
    else:
        m.mutate(target, "SETITEMS")


def op_additems(m: Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    if isinstance(target, SymSet) and not target.frozen:
        target.items.extend(items)
    else:
        m.mutate(target, "ADDITEMS")


def op_build(m: Machine) -> None:
    state = m.pop()
    inst = m.top()
    if isinstance(inst, Call):
        inst.state = state
        func = inst.func
        if isinstance(func, Global):
            if type(state) is tuple and len(state) == 2:
                _mark_slot_state(inst, func)
            if m.joblib and func.full == JOBLIB_WRAPPER:
                m.joblib_build(inst, state)
    elif isinstance(inst, (Global, Attr)):
        m.mutate(inst, "BUILD")


_NEWOBJ_HELPERS = frozenset({"copyreg.__newobj__", "copyreg.__newobj_ex__",
                             "copyreg._reconstructor"})


def _instance_class(inst: Call) -> object:
    """The global whose code an item opcode on ``inst`` runs: its class when NEWOBJ or a
    copyreg helper made it, else the callable that returned it."""
    func = inst.func
    if isinstance(func, Global) and inst.kind == "call" and func.full in _NEWOBJ_HELPERS \
            and isinstance(inst.args, tuple) and inst.args:
        return inst.args[0]
    return func


def _mark_items(inst: Call) -> None:
    cls = _instance_class(inst)
    if isinstance(cls, Global):
        cls.uses |= ITEMS


def _mark_slot_state(inst: Call, func: Global) -> None:
    """BUILD with (state, slotstate): without a __setstate__ the unpickler setattr()s each
    slot item, running the class's __setattr__ and descriptors. The class is known when
    the instance came from NEWOBJ or a copyreg reconstruction helper."""
    cls: object = None
    if inst.kind == "new":
        cls = func
    elif func.full in _NEWOBJ_HELPERS and isinstance(inst.args, tuple) and inst.args:
        cls = inst.args[0]
    if isinstance(cls, Global):
        cls.uses |= SETATTR


def op_global(m: Machine) -> None:
    module = _utf8(m.readline())
    name = _utf8(m.readline())
    m.stack.append(m.make_global(module, name, "GLOBAL"))


def op_stack_global(m: Machine) -> None:
    name = m.pop()
    module = m.pop()
    if type(name) is str and type(module) is str:
        m.stack.append(m.make_global(module, name, "STACK_GLOBAL"))
        return
    if _maybe_str(name) and _maybe_str(module):
        # A name computed at load time (str(b'os', 'ascii')): the import is unknown.
        m.note("computed-import", f"STACK_GLOBAL imports a name computed at load time "
               f"({describe(module, 40)}, {describe(name, 40)})")
        g = Global(COMPUTED, COMPUTED, m.op_pos, "STACK_GLOBAL")
        g.uses |= REF
        m.globals.append(g)
        m.stack.append(g)
        return
    raise Break("STACK_GLOBAL operands are not both str (CPython raises "
                "'STACK_GLOBAL requires str')", "memo")


def op_inst(m: Machine) -> None:
    module = _utf8(m.readline())
    name = _utf8(m.readline())
    args = tuple(m.pop_mark())
    g = m.make_global(module, name, "INST")
    m.stack.append(m.invoke(g, args, "call"))


def op_obj(m: Machine) -> None:
    items = m.pop_mark()
    if not items:
        raise Break("unpickling stack underflow", "stack")
    m.stack.append(m.invoke(items[0], tuple(items[1:]), "call"))


def op_newobj(m: Machine) -> None:
    args = m.pop()
    cls = _unwrap_persistent_class(m.pop())
    if not isinstance(cls, Global):
        m.note("call-value", "NEWOBJ of a computed class")
    m.stack.append(m.invoke(cls, args, "new"))


def op_newobj_ex(m: Machine) -> None:
    kwargs = m.pop()
    args = m.pop()
    cls = _unwrap_persistent_class(m.pop())
    if not isinstance(cls, Global):
        m.note("call-value", "NEWOBJ_EX of a computed class")
    m.stack.append(m.invoke(cls, (args, kwargs), "new"))


def _ext(m: Machine, code: int) -> None:
    if code <= 0:
        raise Break("EXT specifies code <= 0", "syntax")
    m.note("ext", f"extension code {code} of the copyreg registry (empty unless the "
                  "loading process registered it)")
    m.stack.append(m.make_global("copyreg._extension_registry", f"code_{code}", "EXT"))


def op_ext1(m: Machine) -> None:
    _ext(m, m.read(1)[0])


def op_ext2(m: Machine) -> None:
    _ext(m, unpack_from("<H", m.read(2))[0])


def op_ext4(m: Machine) -> None:
    _ext(m, unpack_from("<i", m.read(4))[0])


def op_dict(m: Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise Break("odd number of items for DICT", "syntax")
    m.stack.append(SymDict(list(zip(items[::2], items[1::2], strict=False))))


def op_empty_dict(m: Machine) -> None:
    m.stack.append(SymDict())


def op_list(m: Machine) -> None:
    items = m.pop_mark()  # pop_mark replaces m.stack: pop before appending
    m.stack.append(items)


def op_empty_list(m: Machine) -> None:
    m.stack.append([])


def op_tuple(m: Machine) -> None:
    items = tuple(m.pop_mark())
    m.stack.append(items)


def op_empty_tuple(m: Machine) -> None:
    m.stack.append(())


def op_tuple1(m: Machine) -> None:
    stack = m.stack
    if not stack:
        raise Break(_UNDERFLOW, "stack")
    stack[-1] = (stack[-1],)


def op_tuple2(m: Machine) -> None:
    stack = m.stack
    if len(stack) < 2:
        raise Break(_UNDERFLOW, "stack")
    b = stack.pop()
    stack[-1] = (stack[-1], b)


def op_tuple3(m: Machine) -> None:
    stack = m.stack
    if len(stack) < 3:
        raise Break(_UNDERFLOW, "stack")
    c = stack.pop()
    b = stack.pop()
    stack[-1] = (stack[-1], b, c)


def op_empty_set(m: Machine) -> None:
    m.stack.append(SymSet([], False))


def op_frozenset(m: Machine) -> None:
    items = m.pop_mark()
    m.stack.append(SymSet(items, True))


def op_get(m: Machine) -> None:
    m.memo_get(_int_line(m, "GET"))


def op_binget(m: Machine) -> None:
    p = m.pos
    if p < m.lim:
        m.pos = p + 1
        idx = m.data[p]
    else:
        idx = m.read(1)[0]
    try:
        m.stack.append(m.memo[idx])
    except KeyError:
        raise Break(f"memo value not found at index {idx}", "memo") from None


def op_long_binget(m: Machine) -> None:
    m.memo_get(_U4(m.read(4))[0])


def op_put(m: Machine) -> None:
    m.memo_put(_int_line(m, "PUT"))


def op_binput(m: Machine) -> None:
    p = m.pos
    if p < m.lim:
        m.pos = p + 1
        _put(m, m.data[p])
    else:
        _put(m, m.read(1)[0])


def op_long_binput(m: Machine) -> None:
    _put(m, _U4(m.read(4))[0])


def op_memoize(m: Machine) -> None:
    _put(m, len(m.memo))


def op_proto(m: Machine) -> None:
    proto = m.read(1)[0]
    if proto > HIGHEST_PROTOCOL:
        raise Break(f"unsupported pickle protocol: {proto}", "syntax")
    m.proto = proto
    m.protocols.add(proto)


def op_frame(m: Machine) -> None:
    size = unpack_from("<Q", m.read(8))[0]
    if m.fend is not None and m.pos < m.fend:
        m.note("frame", "a FRAME starts before the previous frame ended (the pure-Python "
                        "unpickler raises; the C unpickler continues)")
        m.skip_after_frame = 0
    start = m.pos
    end = start + size
    if end > m.dlen:
        # The C unpickler raises; the pure-Python one (joblib) buffers what is there and
        # runs it: the frame is the rest of the data.
        m.note("frame-short", f"FRAME declares {size} bytes, {m.dlen - start} remain (the "
                        "pure-Python unpickler reads them, the C one raises)")
        end = m.dlen
    m.fstart, m.fend = start, end
    m.lim = m.fend


_DISPATCH: list = [op_invalid] * 256  # type: ignore[type-arg]
for _code, _fn in {
    b"(": op_mark, b".": op_stop, b"0": op_pop, b"1": op_pop_mark, b"2": op_dup,
    b"F": op_float, b"G": op_binfloat, b"I": op_int, b"J": op_binint, b"K": op_binint1,
    b"M": op_binint2,
    b"L": op_long, b"\x8a": op_long1, b"\x8b": op_long4, b"N": op_none,
    b"\x88": op_true, b"\x89": op_false, b"P": op_persid, b"Q": op_binpersid,
    b"R": op_reduce, b"S": op_string, b"T": op_binstring, b"U": op_short_binstring,
    b"V": op_unicode, b"X": op_binunicode, b"\x8c": op_short_binunicode,
    b"\x8d": op_binunicode8, b"B": op_binbytes, b"C": op_short_binbytes,
    b"\x8e": op_binbytes8, b"\x96": op_bytearray8, b"\x97": op_next_buffer,
    b"\x98": op_readonly_buffer, b"a": op_append, b"e": op_appends, b"s": op_setitem,
    b"u": op_setitems, b"\x90": op_additems, b"b": op_build, b"c": op_global,
    b"\x93": op_stack_global, b"i": op_inst, b"o": op_obj, b"\x81": op_newobj,
    b"\x92": op_newobj_ex, b"\x82": op_ext1, b"\x83": op_ext2, b"\x84": op_ext4,
    b"d": op_dict, b"}": op_empty_dict, b"l": op_list, b"]": op_empty_list,
    b"t": op_tuple, b")": op_empty_tuple, b"\x85": op_tuple1, b"\x86": op_tuple2,
    b"\x87": op_tuple3, b"\x8f": op_empty_set, b"\x91": op_frozenset, b"g": op_get,
    b"h": op_binget, b"j": op_long_binget, b"p": op_put, b"q": op_binput,
    b"r": op_long_binput, b"\x94": op_memoize, b"\x80": op_proto, b"\x95": op_frame,
}.items():
    _DISPATCH[_code[0]] = _fn
