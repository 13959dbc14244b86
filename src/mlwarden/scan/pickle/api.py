"""Drive the pickle machine over one stream: stacked pickles, frame views, nested pickles,
and turn what it saw into findings.

``scan_pickle(data, ctx, *, member=None, start=0, stacked=True) -> PickleScanResult``
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from mlwarden.report.model import Location
from mlwarden.report.rules import Rule
from mlwarden.scan.context import ScanContext
from mlwarden.scan.knowledge import exists, lookup, undefined
from mlwarden.scan.pickle import rules as R
from mlwarden.scan.pickle.machine import COMPUTED, Break, Budget, Machine
from mlwarden.scan.pickle.sweep import imports_in
from mlwarden.scan.pickle.values import CALL, NEW, describe

_MAX_VIEWS = 8  # extra interpretations per pickle after a frame-boundary violation
_MAX_NESTED_DEPTH = 4
_SWEEP_BYTES = 64 << 20  # bytes after a break searched for imports


@dataclass(frozen=True)
class PickleScanResult:
    end: int | None  # offset just past the last complete STOP, None if none completed
    count: int  # complete pickles analysed
    first_value: object | None = None  # first pickle's value when it is a scalar
    globals: frozenset[str] = field(default_factory=frozenset)  # every name imported
    broken: bool = False  # the last pickle broke before STOP
    joblib_arrays: int = 0  # raw joblib array buffers skipped
    truncated: bool = False  # it broke because the data ran out


class _Reporter:
    """Deduplicates findings per pickle: one per (rule, subject)."""

    def __init__(self, ctx: ScanContext, member: str | None) -> None:
        self.ctx = ctx
        self.member = member
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, rule: Rule, subject: str, message: str, offset: int | None,
                 detail: str) -> None:
        key = (rule.id, subject)
        if key in self.seen:
            return
        self.seen.add(key)
        self.ctx.report(rule, message, Location(member=self.member, offset=offset,
                                                detail=detail))


_SCALARS = (str, bytes, int, float, bool, type(None))


def scan_pickle(data: bytes | bytearray | memoryview, ctx: ScanContext, *,
                member: str | None = None, start: int = 0, stacked: bool = True,
                max_pickles: int | None = None, first_index: int = 1,
                joblib: bool = False, _depth: int = 0) -> PickleScanResult:
    """Analyse the pickle stream(s) starting at ``start``, reporting into ``ctx``.

    With ``stacked`` the analysis continues after each STOP while the following bytes
    parse as a pickle (legacy PyTorch files hold five). ``max_pickles`` bounds how many.
    ``joblib``: the file is one joblib.load reads (top level): raw array buffers after a
    NumpyArrayWrapper are skipped as joblib skips them, and the same stream is analysed as
    plain pickle.load reads it (the buffer as opcodes) too.
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    report = _Reporter(ctx, member)
    pos, count, end = start, 0, None
    first_value: object = None
    names: set[str] = set()
    broken = False
    truncated = False
    arrays = 0
    index = first_index
    while pos < len(buf):
        detail = f"pickle #{index}"
        m = Machine(buf, pos, ctx.limits.max_pickle_ops, joblib=joblib)
        error: Break | None = None
        try:
            m.run()
        except Break as exc:
            error = exc
        except Budget as exc:
            _classify(m, report, detail, "")
            ctx.limit(f"pickle #{index}: {exc}; the rest was not analysed",
                      Location(member=member, offset=m.op_pos, detail=detail))
            names.update(g.full for g in m.globals)
            broken = True
            break
        except RecursionError:
            error = Break("structure nested too deeply", "syntax")
        arrays += m.joblib_arrays
        if error is not None and index > first_index and not m.globals and not m.calls:
            # Not a further pickle: raw bytes after the last STOP, never unpickled.
            report(R.TRAILING_DATA, "trailing", f"{len(buf) - pos} bytes after the last "
                   "pickle do not parse as a pickle; pickle.load never reads them", pos,
                   detail)
            _sweep(buf, pos, ctx, report, detail, names)
            break
        names.update(g.full for g in m.globals)
        _classify(m, report, detail, "")
        if m.straddles:
            _frame_views(buf, m, ctx, report, detail, names)
        if m.joblib_arrays:
            _plain_view(buf, pos, ctx, report, detail, names)
        _nested(m, ctx, member, report, detail, _depth)
        if error is not None:
            _report_break(m, error, report, detail)
            if not (index == first_index and _certain_first_break(buf, start, m, error)):
                _sweep(buf, m.op_pos, ctx, report, detail, names)
            broken = True
            truncated = error.anomaly == "truncated"
            break
        count += 1
        end = m.pos
        if index == first_index and isinstance(m.value, _SCALARS):
            # Only scalars are wanted (legacy torch's magic number); converting whole
            # containers would cost as much as the analysis itself.
            first_value = m.value
        pos = m.pos
        index += 1
        if not stacked or (max_pickles is not None and count >= max_pickles):
            break
    return PickleScanResult(end, count, first_value, frozenset(names), broken, arrays,
                            truncated)


def _report_break(m: Machine, error: Break, report: _Reporter, detail: str) -> None:
    if error.anomaly == "joblib":
        # joblib skips bytes here that the analysis cannot size: what follows is unseen.
        report.ctx.unscannable(f"joblib array at offset {m.op_pos}: {error}; joblib.load "
                               "would skip bytes the analysis cannot size, so the rest of "
                               "the stream was not analysed",
                               Location(member=report.member, offset=m.op_pos, detail=detail))
    if error.anomaly == "memo":
        report(R.MEMO_ANOMALY, f"break@{m.op_pos}", f"{error} at offset {m.op_pos}",
               m.op_pos, detail)
    seen = f"; {len(m.globals)} imports and {len(m.calls)} calls before it were analysed"
    report(R.BROKEN_STREAM, "break", f"stream breaks at offset {m.op_pos}: {error}"
           f" (a loader raises here after executing what came before{seen})", m.op_pos,
           detail)


def _certain_first_break(buf: bytes, start: int, m: Machine, error: Break) -> bool:
    """The very first opcode takes no argument and needs a stack or MARK it does not have
    (a word list starting ``a``/``the``: APPEND, TUPLE). Nothing was parsed before it, so
    no modelling error can be behind the break: every unpickler raises there, and sweeping
    the rest would read text as imports."""
    import pickletools

    if m.op_pos != start or error.anomaly != "stack" or start >= len(buf):
        return False
    code = chr(buf[start])
    return any(op.code == code and op.arg is None for op in pickletools.opcodes)


def _sweep(buf: bytes, at: int, ctx: ScanContext, report: _Reporter, detail: str,
           names: set[str]) -> None:
    """Imports in the bytes after a break: dangerous ones are malicious (see sweep.py)."""
    if at + 1 >= len(buf):
        return
    if len(buf) - at > _SWEEP_BYTES:
        ctx.limit(f"{len(buf) - at} bytes after the break at offset {at}: only the first "
                  f"{_SWEEP_BYTES >> 20} MiB were searched for imports",
                  Location(member=report.member, offset=at, detail=detail))
    for module, name, off in imports_in(buf, at + 1, _SWEEP_BYTES):
        k = lookup(module, name)
        names.add(k.name)
        if k.danger is not None:
            report(R.IMPORT_AFTER_BREAK, f"after-break:{k.name}",
                   f"{k.name} is imported at offset {off}, after the stream breaks at "
                   f"offset {at}: {k.danger.reason} [{k.danger.category}; {k.danger.ref}]",
                   off, detail)
        elif not k.allows(1):
            report(R.UNKNOWN_GLOBAL, f"after-break:{k.name}",
                   f"{k.name} is imported at offset {off}, after the stream breaks at "
                   f"offset {at}", off, detail)


def _plain_view(buf: bytes, start: int, ctx: ScanContext, report: _Reporter, detail: str,
                names: set[str]) -> None:
    """A joblib file read by pickle.load/torch.load/numpy.load: no buffer is skipped, the
    array bytes are opcodes. What runs before that view breaks is analysed; its break is
    not a finding (those loaders raising there is expected)."""
    v = Machine(buf, start, ctx.limits.max_pickle_ops, joblib=False)
    with contextlib.suppress(Break, Budget, RecursionError):
        v.run()
    names.update(g.full for g in v.globals)
    _classify(v, report, detail, "plain pickle.load view of a joblib file", plain_view=True)


def _uses_text(uses: int) -> str:
    if uses & CALL:
        return "called"
    if uses & NEW:
        return "reconstructed"
    return "referenced"


def _classify(m: Machine, report: _Reporter, detail: str, view: str,
              plain_view: bool = False) -> None:
    """Findings for the globals, calls and anomalies one machine run saw."""
    suffix = f", {view}" if view else ""
    where = detail + suffix
    for g in m.globals:
        if g.module == COMPUTED:
            continue  # reported as a computed-import anomaly
        k = lookup(g.module, g.name)
        uses = g.uses
        if k.danger is None and k.allows(uses):
            continue  # the common case, decided before any message text is built
        how = f"via {g.how}" if g.how not in ("GLOBAL", "STACK_GLOBAL") else g.how
        if g.full in _STATIC_RESOLVERS and not g.unresolved and uses & ~CALL == 1 \
                and g.resolved:
            continue  # every call resolved statically; the targets are classified instead
        if k.danger is not None:
            d = k.danger
            use = _uses_text(uses)
            args = f" with {describe(g.call_args)}" if g.call_offset is not None else ""
            report(R.DANGEROUS_CALLABLE, k.name + suffix,
                   f"{k.name} ({how}, {use}{args}): {d.reason} [{d.category}; {d.ref}]",
                   g.call_offset if g.call_offset is not None else g.offset, where)
        elif k.allows(uses):
            continue
        elif uses & CALL and plain_view and not exists(g.module, g.name):
            # Array bytes read as opcodes often name memoised strings in new pairs; a
            # name no library defines makes find_class raise before any call.
            report(R.UNKNOWN_GLOBAL, k.name + suffix,
                   f"{k.name} ({how}) would be called when pickle.load reads this joblib "
                   "file's array bytes as opcodes, but no installed library defines it "
                   "(find_class raises there)", g.offset, where)
        elif uses & CALL:
            why = ("allowlisted only for reconstruction, not for calls" if k.safe
                   else "not in the allowlist")
            report(R.UNKNOWN_CALL, k.name + suffix,
                   f"{k.name} ({how}) is called with {describe(g.call_args)}: {why}; "
                   "loading runs it", g.call_offset if g.call_offset is not None
                   else g.offset, where)
        elif g.module == "copyreg._extension_registry":
            continue  # reported as an extension-code anomaly
        elif (absent := undefined(g.module, g.name)) is not None:
            # find_class raises here with the installed library; a version that defines
            # the name would run hooks nobody can read: undecided, never clean.
            report(R.UNDEFINED_GLOBAL, k.name + suffix,
                   f"{k.name} ({how}) is {_uses_text(uses)}, but {absent}: loading with it "
                   "raises in find_class before anything of this object runs; another "
                   "version may define it with hooks that cannot be read here: cannot "
                   "analyse", g.offset, where)
        else:
            if uses & NEW:
                msg = (f"{k.name} ({how}) is reconstructed (NEWOBJ/__newobj__ + BUILD): "
                       "loading imports its module and runs its __setstate__. This is a "
                       "whole pickled object rather than plain data (for a model: a full "
                       "nn.Module of a user class, not a state_dict)")
            else:
                msg = (f"{k.name} ({how}) is imported but not called; loading imports "
                       "its module")
            if k.note:
                msg += f"; unvouched: {k.note}"
            report(R.UNKNOWN_GLOBAL, k.name + suffix, msg, g.offset, where)
    for kind, message, off in m.anomalies:
        rule = _ANOMALY_RULES.get(kind)
        if rule is not None:
            report(rule, f"{kind}:{message}{suffix}", message, off, where)


_STATIC_RESOLVERS = frozenset({"builtins.getattr", "dill._dill._get_attr",
                               "numpy.core._ufunc_reconstruct",
                               "numpy._core._ufunc_reconstruct"})
_ANOMALY_RULES: dict[str, Rule] = {
    "memo": R.MEMO_ANOMALY, "mutation": R.GLOBAL_MUTATION, "ext": R.EXTENSION_CODE,
    "buffer": R.OUT_OF_BAND, "call-value": R.CALL_ON_VALUE, "call-attr": R.CALL_ON_VALUE,
    "frame": R.FRAME_DIVERGENCE, "nested": R.NESTED_PICKLE,
    "computed-import": R.COMPUTED_IMPORT, "model": R.EMBEDDED_MODEL_COMPUTED,
}


def _frame_views(buf: bytes, m: Machine, ctx: ScanContext, report: _Reporter, detail: str,
                 names: set[str]) -> None:
    """A read crossed a FRAME end: report it and analyse what other unpicklers execute."""
    first = m.straddles[0]
    report(R.FRAME_DIVERGENCE, "straddle",
           f"a read at offset {first.read_offset} crosses the end of the FRAME "
           f"[{first.frame_start}, {first.frame_end}) ({len(m.straddles)} such reads); "
           "pure-Python pickle raises there, pickle.loads reads on, and the C unpickler "
           "loading a file executes from the frame end", first.op_offset, detail)
    views: list[tuple[int, bool, str]] = [(m.start, True, "C file-load view")]
    for s in m.straddles[:_MAX_VIEWS]:
        # Bytes a static reader takes as data, read as opcodes.
        views.append((s.frame_end, False, f"opcodes hidden after the frame end @{s.frame_end}"))
        after = _payload_start(buf, s)
        if after is not None and after != s.frame_end:
            views.append((after, False, f"opcodes hidden in data @{after}"))
    for start, lossy, label in views[: _MAX_VIEWS + 1]:
        v = Machine(buf, start, ctx.limits.max_pickle_ops, lossy=lossy)
        with contextlib.suppress(Break, Budget, RecursionError):
            v.run()
        names.update(g.full for g in v.globals)
        _classify(v, report, detail, label)


def _payload_start(buf: bytes, s: object) -> int | None:
    """Start of the data of the opcode whose read crossed the frame (after its length)."""
    from mlwarden.scan.pickle.machine import Straddle

    assert isinstance(s, Straddle)
    op = buf[s.op_offset]
    sizes = {0x42: 4, 0x43: 1, 0x8E: 8, 0x96: 8, 0x58: 4, 0x8C: 1, 0x8D: 8, 0x54: 4, 0x55: 1}
    n = sizes.get(op)
    return None if n is None else s.op_offset + 1 + n


def _nested(m: Machine, ctx: ScanContext, member: str | None, report: _Reporter,
            detail: str, depth: int) -> None:
    """Constant bytes handed to a deserialiser are scanned as their own entry."""
    from mlwarden.scan.pickle.machine import MODEL_LOADERS

    for loader, blob, off in m.nested[:16]:
        label = f"nested@{off}"
        model = loader in MODEL_LOADERS
        if model:
            label = f"embedded-model@{off}"
            if ctx.scan_nested is None:
                ctx.unscannable(f"{loader} loads {len(blob)} embedded bytes as a model; they "
                                "need the format readers", Location(member=member, offset=off,
                                                                    detail=detail))
                continue
        elif loader != "torch.storage._load_from_bytes":
            report(R.NESTED_PICKLE, f"{loader}@{off}",
                   f"{loader} deserialises {len(blob)} constant bytes embedded in the stream; "
                   "they are scanned as their own entry", off, detail)
        if ctx.scan_nested is not None:
            from mlwarden.scan.source import Source

            ctx.scan_member(Source.from_bytes(blob, f"{ctx.display_path}!{label}"))
        elif depth < _MAX_NESTED_DEPTH and blob[:1] == b"\x80":
            scan_pickle(blob, ctx, member=f"{member + '!' if member else ''}{label}",
                        _depth=depth + 1)
