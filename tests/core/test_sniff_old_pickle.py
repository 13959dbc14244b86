"""The protocol 0/1 sniff walks opcodes itself; its answer must be the one a walk with
``pickletools.genops`` gives (the reference it replaces for speed), on real pickles,
their truncations and mutations, text and random bytes."""

from __future__ import annotations

import io
import pickle
import pickletools
import random
from collections import OrderedDict

import pytest

from mlwarden.scan import sniff


def _reference(head: bytes, size: int) -> bool:
    stream = io.BytesIO(head)
    count = 0
    try:
        for opcode, _arg, _pos in pickletools.genops(stream):
            count += 1
            if opcode.name == "STOP":
                return count >= 2
            if count >= sniff._OLD_PICKLE_RUN:
                return True
    except Exception:
        return len(head) < size and count >= 16 and stream.tell() >= len(head) - 256
    return False


def _samples(rng: random.Random) -> list[bytes]:
    objs: list[object] = [
        {"a": [1, 2.5, "x"], "b": (None, True)}, list(range(40)), "caf\u00e9 \\ 'q'",
        OrderedDict((f"k{i}", [i] * 3) for i in range(20)), b"\x00\xff" * 10, 10**30,
        {"s": "a\nb", "f": float("inf"), "n": -7},
    ]
    out = [pickle.dumps(o, protocol=p) for o in objs for p in (0, 1)]
    out += [b"(dp0\nS'k'\np1\nS'caf\\xe9'\np2\ns.", b"cos\nsystem\n(S'x'\ntR.",
            b"I010\nI0x1f\nL12L\nF1e3\nV\\u00e9\nP\xff\n.", b"hello world, plain text\n"]
    muts = []
    for data in out:
        for _ in range(60):
            b = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(b))
                b[i] = rng.choice([rng.randrange(256), *b"(.0ISVFLcpgTXU\x8c\n'"])
            muts.append(bytes(b[: rng.randint(1, len(b))] if rng.random() < 0.3 else b))
    muts += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(1000)]
    return out + muts


@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
def test_sniff_matches_pickletools_walk() -> None:
    rng = random.Random(11)
    for data in _samples(rng):
        for size in (len(data), len(data) + 1000):
            assert sniff._looks_like_old_pickle(data, size) == _reference(data, size), data
