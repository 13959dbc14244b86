"""GGUF: real files (gguf.GGUFWriter) are clean; templates are analysed; hostile headers caught."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from formats.fmt_helpers import rules_of, scan_bytes, scan_file
from mlwarden.report.model import Verdict
from mlwarden.scan.readers.gguf_file import GGML_TYPES

TEMPLATES = Path(__file__).parent / "chat_templates"
LLAMA3 = (TEMPLATES / "meta-llama-Llama-3.2-3B-Instruct.jinja").read_text(encoding="utf-8")
EVIL = "{{ cycler.__init__.__globals__.os.popen('touch /tmp/mlwarden-marker').read() }}"


def write_gguf(path: Path, template: str | list[dict[str, str]] | None = LLAMA3,
               n_floats: int = 64) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "<|eot_id|>"])
    w.add_token_scores([0.0, 0.1, 0.2])
    w.add_array("test.nested", [[1, 2], [3]])
    if template is not None:
        w.add_chat_template(template)
    w.add_tensor("w", np.ones(n_floats, np.float32))
    w.add_tensor("h", np.zeros((2, 8), np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_table_matches_gguf_library() -> None:
    assert {int(k): v for k, v in gguf.GGML_QUANT_SIZES.items()} == GGML_TYPES


def test_real_file_clean(tmp_path: Path) -> None:
    r = scan_file(write_gguf(tmp_path / "m.gguf"))
    assert r.format == "gguf"
    assert r.verdict is Verdict.CLEAN, r.findings
    assert rules_of(r) == {"gguf-summary", "template-analysed"}
    assert "architecture 'llama'" in next(f.message for f in r.findings if f.rule == "gguf-summary")


def test_malicious_template_detected(tmp_path: Path) -> None:
    r = scan_file(write_gguf(tmp_path / "evil.gguf", EVIL))
    assert r.verdict is Verdict.MALICIOUS
    hits = [f for f in r.findings if f.rule == "template-python-internals"]
    assert hits and "tokenizer.chat_template" in str(hits[0].location)


def test_named_templates_all_analysed(tmp_path: Path) -> None:
    """tokenizer.chat_template.<name> variants are analysed too, not just the default."""
    r = scan_file(write_gguf(tmp_path / "named.gguf", [
        {"name": "default", "template": LLAMA3},
        {"name": "tool_use", "template": EVIL},
    ]))
    assert r.verdict is Verdict.MALICIOUS
    assert any("tokenizer.chat_template.tool_use" in str(f.location)
               for f in r.findings if f.rule == "template-python-internals")


def test_scan_reads_no_tensor_data(tmp_path: Path, bytes_read: list[int]) -> None:
    small = write_gguf(tmp_path / "s.gguf", n_floats=16)
    big = write_gguf(tmp_path / "b.gguf", n_floats=8 << 20)  # 32 MiB of tensor data
    assert scan_file(small).verdict is Verdict.CLEAN
    first = bytes_read[0]
    bytes_read[0] = 0
    assert scan_file(big).verdict is Verdict.CLEAN
    assert big.stat().st_size > 32 << 20
    # The cursor reads metadata in 64 KiB windows; tensor bytes are never pulled in.
    assert bytes_read[0] < 160 << 10, (first, bytes_read[0])


# ----------------------------------------------------------------- hand-built headers


def _s(text: bytes | str) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def build(kvs: list[bytes], tensors: list[bytes] = (), version: int = 3,  # type: ignore[assignment]
          data: bytes = b"", n_kv: int | None = None, n_tensors: int | None = None) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version,
                                 len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    pad = -len(body) % 32
    return body + b"\0" * pad + data


def kv_str(key: str, value: str | bytes) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value)


def kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<II", 4, value)


def tensor(name: str, dims: list[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (_s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", ggml_type, offset))


def test_handbuilt_valid_clean() -> None:
    blob = build([kv_str("general.architecture", "x")], [tensor("t", [4])], data=b"\0" * 16)
    r = scan_bytes(blob)
    assert r.verdict is Verdict.CLEAN, r.findings


def test_v1_header_parsed() -> None:
    k = struct.pack("<I", 3) + b"k.a" + struct.pack("<II", 4, 7)
    blob = b"GGUF" + struct.pack("<III", 1, 0, 1) + k
    r = scan_bytes(blob)
    assert r.verdict is Verdict.CLEAN, r.findings
    assert "GGUF v1" in r.findings[0].message


def test_big_endian_header_parsed() -> None:
    key = b"k.a"
    blob = (b"GGUF" + struct.pack(">IQQ", 3, 0, 1) + struct.pack(">Q", len(key)) + key
            + struct.pack(">II", 4, 7))
    r = scan_bytes(blob)
    assert r.verdict is Verdict.CLEAN, r.findings
    assert "big-endian" in r.findings[0].message


EXPLOITS = {
    "huge-string": _s("k") + struct.pack("<I", 8) + struct.pack("<Q", 1 << 62),
    "huge-array": _s("k") + struct.pack("<IIQ", 9, 8, 1 << 60),
    "huge-scalar-array": _s("k") + struct.pack("<IIQ", 9, 4, 1 << 60),
    "deep-arrays": _s("k") + struct.pack("<IIQ", 9, 9, 1) * 12,
}


@pytest.mark.parametrize("kv", EXPLOITS.values(), ids=EXPLOITS.keys())
def test_metadata_exploits_malicious(kv: bytes) -> None:
    r = scan_bytes(build([kv]))
    assert r.verdict is Verdict.MALICIOUS, r.findings
    assert "gguf-reader-exploit" in rules_of(r)


@pytest.mark.parametrize(("blob", "needle"), [
    (build([], n_kv=1 << 40), "metadata count"),
    (build([], n_tensors=1 << 40), "tensor count"),
    (build([], [tensor("t", [1, 1, 1, 1, 1])]), "dimensions"),
    (build([], [tensor("t", [1 << 32, 1 << 32])]), "overflow"),
    (build([], [tensor("t", [4], offset=1 << 50)], data=b"\0" * 16), "2**48"),
    (build([], [tensor("a", [8]), tensor("b", [8], offset=0)], data=b"\0" * 32), "overlaps"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_structure_exploits_malicious(blob: bytes, needle: str) -> None:
    r = scan_bytes(blob)
    assert r.verdict is Verdict.MALICIOUS, r.findings
    assert any(needle in f.message for f in r.findings), r.findings


@pytest.mark.parametrize(("blob", "needle"), [
    (b"GGUF" + struct.pack("<IQQ", 9, 0, 0), "version"),
    (build([kv_str("k", "v")])[:40], "truncated"),
    (build([_s("k") + struct.pack("<I", 77)]), "unknown value type"),
    (build([], [tensor("t", [4], offset=4)], data=b"\0" * 64), "alignment"),
    (build([], [tensor("t", [1024])], data=b"\0" * 16), "truncated"),
    (build([kv_u32("general.alignment", 24)]), "power of two"),
    (build([_s(b"\xff\xfe") + struct.pack("<II", 4, 1)]), "not UTF-8"),
    (build([], [tensor("t", [33], ggml_type=2)], data=b"\0" * 64), "block"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_malformed_unscannable(blob: bytes, needle: str) -> None:
    r = scan_bytes(blob)
    assert r.format == "gguf"
    assert r.verdict is Verdict.UNSCANNABLE, r.findings
    assert rules_of(r) <= {"gguf-malformed", "gguf-summary"}
    assert any(needle in f.message for f in r.findings if f.rule == "gguf-malformed")


def test_duplicate_key_suspicious() -> None:
    r = scan_bytes(build([kv_str("tokenizer.chat_template", "{{ x }}"),
                          kv_str("tokenizer.chat_template", "{{ y }}")]))
    assert r.verdict is Verdict.SUSPICIOUS
    assert "gguf-duplicate-key" in rules_of(r)


def test_invalid_template_unscannable() -> None:
    r = scan_bytes(build([kv_str("tokenizer.chat_template", "{% if %}")]))
    assert r.verdict is Verdict.UNSCANNABLE
    assert "template-syntax-error" in rules_of(r)
