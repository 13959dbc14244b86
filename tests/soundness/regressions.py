"""Every divergence the differential campaign found, as a generated file.

Each entry builds bytes that make at least one real loader run a payload (checked by the
oracle in test_regressions.py) and that the scanner must call malicious or unscannable.
The payloads only touch the oracle's marker or make a blocked call. Names say the class
of the weakness; the comment says where the campaign found it.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable

from soundness.oracle import MARKER


def _s(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _call(module: str, name: str, *args: object) -> bytes:
    """STACK_GLOBAL module.name, the argument tuple, REDUCE (protocol-2 arguments)."""
    return _s(module) + _s(name) + b"\x93" + pickle.dumps(tuple(args), protocol=2)[2:-1] + b"R"


_MBOX = _call("mailbox", "mbox", MARKER)  # creates the marker; mailbox is not listed
_CODECS_OPEN = ("codecs", "open", MARKER, "w")  # creates the marker; codecs.open unlisted


def _after(prefix: bytes, payload: bytes = _MBOX) -> bytes:
    return b"\x80\x04" + prefix + payload + b"0N."


def _legacy_torch(fifth: bytes) -> bytes:
    parts = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"protocol_version": 1001, "little_endian": True,
                           "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
             pickle.dumps({"w": 1}, protocol=2), fifth]
    return b"".join(parts) + b"\x00" * 16


def _joblib_hidden_in_buffer() -> tuple[str, bytes]:
    """joblib skips the "array bytes"; pickle.load, torch.load and numpy.load run them."""
    hidden = _MBOX + b"0"
    head = (b"\x80\x04(cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}("
            + _s("subclass") + b"cnumpy\nndarray\n" + _s("shape")
            + pickle.dumps((len(hidden),), protocol=2)[2:-1] + _s("order") + _s("C")
            + _s("dtype") + pickle.dumps(__import__("numpy").dtype("u1"), protocol=2)[2:-1]
            + _s("allow_mmap") + b"\x89ub")
    return "model.joblib", head + hidden + b"t."


def _partial_state_swap() -> bytes:
    """partial(len) whose BUILD state swaps in another function, then called."""
    return (b"\x80\x04" + _s("functools") + _s("partial") + b"\x93" + _s("builtins")
            + _s("len") + b"\x93\x85R" + b"(" + _s("codecs") + _s("open") + b"\x93"
            + pickle.dumps((MARKER, "w"), protocol=2)[2:-1] + b"}Nt" + b"b)R0N.")


CASES: dict[str, Callable[[], tuple[str, bytes]]] = {
    # INT through strtol(base 0): 010 is 8 to CPython (the scanner used to stop here).
    "int-octal": lambda: ("m.pkl", _after(b"I010\n0")),
    # strtol stops at NUL: "5\0junk" is 5 (found as int_nul, legacy torch pickle #2).
    "int-nul": lambda: ("m.pkl", _after(b"I5\x00junk\n0")),
    "long-nul": lambda: ("m.pkl", _after(b"L5\x00x\n0")),
    # PyOS_string_to_double stops at NUL too (legacy torch, payload in pickle #5).
    "float-nul-legacy-torch": lambda: ("m.pt", _legacy_torch(_after(b"F2.5\x00x\n0"))),
    "get-nul": lambda: ("m.pkl", _after(b"N\x94g0\x00x\n00")),
    # STACK_GLOBAL with a module name built by builtins.str(b'mailbox', 'ascii').
    "computed-module-name": lambda: ("m.pkl", b"\x80\x04" + _s("builtins") + _s("str")
                                     + b"\x93C\x07mailbox" + _s("ascii") + b"\x86R"
                                     + _s("mbox") + b"\x93" + _s(MARKER) + b"\x85R0N."),
    # An allowlisted helper (calls its first argument) with an argument tuple built by a
    # call: tuple([codecs.open, Tensor, (M, 'w'), {}]).
    "helper-computed-args": lambda: ("m.pkl", b"\x80\x04" + _s("torch._tensor")
                                     + _s("_rebuild_from_type_v2") + b"\x93" + _s("builtins")
                                     + _s("tuple") + b"\x93(" + _s("codecs") + _s("open")
                                     + b"\x93" + _s("torch") + _s("Tensor") + b"\x93"
                                     + pickle.dumps((MARKER, "w"), protocol=2)[2:-1]
                                     + b"}l\x85RR0N."),
    # staticmethod objects are callable (3.10+): staticmethod(codecs.open)(M, 'w').
    "staticmethod-wrapper": lambda: ("m.pkl", b"\x80\x04" + _s("builtins")
                                     + _s("staticmethod") + b"\x93" + _s("codecs")
                                     + _s("open") + b"\x93\x85R"
                                     + pickle.dumps((MARKER, "w"), protocol=2)[2:-1]
                                     + b"R0N."),
    "partial-state-swap": lambda: ("m.pkl", _partial_state_swap()),
    # numpy's RandomState pickling helper calls its second argument.
    "randomstate-ctor-calls-argument": lambda: (
        "m.pkl", b"\x80\x04" + _s("numpy.random._pickle") + _s("__randomstate_ctor")
        + b"\x93" + _s(MARKER) + _s("mailbox") + _s("mbox") + b"\x93\x86R0N."),
    "joblib-payload-in-array-bytes": _joblib_hidden_in_buffer,
    # A FRAME longer than the data: the C unpickler raises, joblib's pure-Python unpickler
    # runs what is there (campaign-final, input 10000202).
    "truncated-frame-pure-python": lambda: ("m.pkl", b"\x80\x05\x95" + struct.pack(
        "<Q", len(_MBOX) + 64) + _MBOX + b"0N."),
    # A FRAME that covers a number spelled the CPython way, then the payload.
    "framed-int-octal": lambda: ("m.pkl", b"\x80\x04\x95" + struct.pack("<Q", 6) + b"I010\n0"
                                 + _MBOX + b"0N."),
}
