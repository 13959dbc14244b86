"""Container tests: verdict oracle for pickle content.

The container layer decides *which* bytes are analysed; the pickle interpreter decides
what they mean. While the interpreter is still the placeholder (it cannot tell a payload
from a tensor rebuild), the ``pickles`` fixture swaps in a transparent stand-in so the
container behaviour is still tested end to end: it flags ``system`` globals as malicious
and records which streams it was handed. With the real interpreter present, it is used
unchanged (and the recording still works).
"""

from __future__ import annotations

import pickletools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import Limits, ScanContext

_STUB_PAYLOAD = rule("test-stub-payload", Verdict.MALICIOUS, Severity.CRITICAL,
                     "test stand-in: os.system reached")


def _real_interpreter() -> bool:
    import pickle

    from corpus import containers as c
    from mlwarden.scan.pickle import scan_pickle

    ctx = ScanContext("probe", Limits())
    scan_pickle(c.benign_pickle(), ctx)
    if ctx.verdict is not Verdict.CLEAN:
        return False
    ctx = ScanContext("probe", Limits())
    scan_pickle(pickle.dumps(c.Payload(__import__("pathlib").Path("/nonexistent"))), ctx)
    return ctx.verdict is Verdict.MALICIOUS


@dataclass
class PickleSpy:
    real: bool
    members: list[str | None] = field(default_factory=list)


@pytest.fixture(scope="session")
def real_interpreter() -> bool:
    return _real_interpreter()


@pytest.fixture
def pickles(monkeypatch: pytest.MonkeyPatch, real_interpreter: bool) -> Iterator[PickleSpy]:
    import mlwarden.scan.pickle as pk
    import mlwarden.scan.readers.pickle_file as pf
    import mlwarden.scan.readers.zip_file as zf

    spy = PickleSpy(real_interpreter)
    real = pk.scan_pickle

    def stub(data: Any, ctx: ScanContext, *, member: str | None = None, start: int = 0,
             stacked: bool = True, **kwargs: Any) -> Any:
        spy.members.append(member)
        if real_interpreter:
            return real(data, ctx, member=member, start=start, stacked=stacked, **kwargs)
        end = None
        count = 0
        try:
            import io

            stream = io.BytesIO(bytes(data))
            stream.seek(start)
            for op, arg, pos in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST") and "system" in str(arg):
                    ctx.report(_STUB_PAYLOAD, f"{arg}", Location(member=member, offset=pos))
                if op.name == "STOP":
                    end, count = stream.tell(), count + 1
        except Exception:
            pass
        return pk.PickleScanResult(end, count)

    monkeypatch.setattr(zf, "scan_pickle", stub)
    if hasattr(pf, "scan_pickle"):
        monkeypatch.setattr(pf, "scan_pickle", stub)
    yield spy
