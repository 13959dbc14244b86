"""The import sweep after a break, and the one break it is not needed for.

A word list whose first line is ``a`` or ``the`` reads as APPEND or TUPLE on an empty
stack: every unpickler raises at offset 0 before parsing anything, so lines further down
such as ``cos`` + ``cosine`` are not a GLOBAL of ``os``. Any other break keeps the sweep
(the scanner's model may break earlier than CPython)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from mlwarden.report.model import Verdict
from mlwarden.scan.engine import ScanOptions, scan_paths


def _verdict(tmp_path: Path, name: str, data: bytes) -> Verdict:
    p = tmp_path / name
    p.write_bytes(data)
    return scan_paths([str(p)], ScanOptions(hash="never")).files[0].verdict


@pytest.mark.parametrize("first", [b"a", b"the", b"s", b"R", b"."])
def test_word_list_breaking_at_its_first_opcode_is_not_swept(tmp_path: Path,
                                                             first: bytes) -> None:
    words = first + b"\nof\ncos\ncosine\nsubprocess\ncheck_output\nzebra\n"
    with pytest.raises(pickle.UnpicklingError):  # CPython raises on it at once
        pickle.loads(first[:1] + b".")
    assert _verdict(tmp_path, "words.txt", words) is Verdict.CLEAN


@pytest.mark.parametrize("data", [
    b"\x80\x02a\ncos\nsystem\n",  # the break is not at the first opcode
    b"I01x\ncos\nsystem\n",  # the first opcode has an argument the model parses
    b"(a\ncos\nsystem\n",  # a MARK came first
])
def test_other_breaks_are_still_swept(tmp_path: Path, data: bytes) -> None:
    assert _verdict(tmp_path, "model.pkl", data) is Verdict.MALICIOUS
