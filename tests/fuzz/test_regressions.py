"""Minimised inputs found by the fuzzing campaign (tools/fuzz_campaign.py), one per bug.

Each test scans the input through ``scan_paths`` from disk (as the CLI does) and checks two
things: nothing escaped a reader, hung or blew memory (``harness.run_path``), and the file
got the precise finding the fix introduced.
"""

from __future__ import annotations

import lzma
import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from corpus import containers as c
from fuzz import harness
from mlwarden.scan.engine import ScanOptions, scan_paths

CRASHERS = Path(__file__).parent / "crashers"


def _scan(path: Path) -> tuple[harness.Outcome, dict[str, set[str]]]:
    """The harness outcome and, per reported entry, the set of rule ids."""
    # A hang detector, not a speed target: generous enough for a loaded 2-core CI machine.
    out = harness.run_path(path, budget=20.0)
    report = scan_paths([str(path)], ScanOptions(workers=1, hash="never"))
    rules = {f.path: {x.rule for x in f.findings} for f in report.files}
    return out, rules


def _all_rules(rules: dict[str, set[str]]) -> set[str]:
    return set().union(*rules.values())


def _ok(out: harness.Outcome) -> None:
    assert out.kind is None, (out.kind, out.detail)


# ----------------------------------------------------------------- zip


def test_zip_member_declaring_bytes_it_does_not_have(case_dir: Path) -> None:
    """sniff() got an empty head for a member whose directory entry declares 2 bytes
    (IndexError in sniff via zip_file._scan_small)."""
    data = c.build_zip([
        c.RawEntry("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2)),
        c.RawEntry("archive/version", b"3\n", method=0, raw=b"", size=2),
    ])
    p = case_dir / "model.pt"
    p.write_bytes(data)
    out, rules = _scan(p)
    _ok(out)
    assert "archive-corrupt" in _all_rules(rules) or "zip-bad-crc" in _all_rules(rules)


def test_zip_lzma_member_with_huge_dictionary(case_dir: Path) -> None:
    """Zip method 14 (LZMA) builds a raw decoder, which takes no memlimit and allocated the
    dictionary size the member declares (up to 4 GiB)."""
    buf = case_dir / "lz.zip"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_LZMA) as z:
        z.writestr("a.pkl", pickle.dumps([1, 2, 3]))
    data = bytearray(buf.read_bytes())
    # Local header (30 + name), then the 4-byte LZMA header, then props: lc/lp/pb, dict.
    props = 30 + len("a.pkl") + 4
    struct.pack_into("<I", data, props + 1, 0xFFFF0000)
    buf.write_bytes(data)
    out, rules = _scan(buf)
    _ok(out)
    assert out.peak < 64 << 20, out.peak
    assert "archive-corrupt" in _all_rules(rules)


# ----------------------------------------------------------------- compressed streams


def test_lzma_alone_stream_with_huge_dictionary(case_dir: Path) -> None:
    """A .lzma header declaring a 264 MiB dictionary made liblzma reserve it (memlimit
    was 512 MiB); now above 128 MiB the stream is refused."""
    data = bytearray(lzma.compress(b"x" * 100, format=lzma.FORMAT_ALONE))
    struct.pack_into("<I", data, 1, 0x10800000)
    p = case_dir / "model.pkl.lzma"
    p.write_bytes(data)
    out, rules = _scan(p)
    _ok(out)
    assert out.peak < 128 << 20, out.peak
    assert "archive-corrupt" in _all_rules(rules)


# ----------------------------------------------------------------- safetensors


def test_safetensors_duplicate_key_then_invalid_json(case_dir: Path) -> None:
    """The duplicate-key hook stopped the first parse early; the last-wins re-parse then
    raised JSONDecodeError out of the reader."""
    header = b'{"__metadata__":{"a":"1","a":"2"},"x":"unterminated'
    p = case_dir / "model.safetensors"
    p.write_bytes(struct.pack("<Q", len(header)) + header)
    out, rules = _scan(p)
    _ok(out)
    assert {"safetensors-duplicate-key", "safetensors-malformed"} <= _all_rules(rules)


# ----------------------------------------------------------------- HDF5


def test_hdf5_attribute_read_error_is_malformed(case_dir: Path) -> None:
    """HDF5 errors raised while reading (not opening) escaped as RuntimeError."""
    data = bytearray((CRASHERS / "hdf5-sigsegv.h5").read_bytes())
    data[857] = 1  # back to the valid file ...
    good = bytes(data)
    p = case_dir / "model.h5"
    # ... then overwrite the object header of the root group's attribute messages
    bad = bytearray(good)
    idx = good.find(b"model_config")
    assert idx > 0
    bad[idx - 16 : idx - 8] = b"\xff" * 8
    p.write_bytes(bad)
    out, rules = _scan(p)
    _ok(out)
    assert _all_rules(rules) & {"hdf5-malformed", "hdf5-parser-crash", "keras-lambda-bytecode"}


@pytest.mark.parametrize("name", ["hdf5-sigsegv.h5", "hdf5-hang.h5"])
def test_libhdf5_crash_and_hang_are_contained(name: str, case_dir: Path) -> None:
    """One byte changed in an h5py-written Keras file makes libhdf5 2.0 segfault (offset
    857) or loop forever (offset 2680). The sandboxed child absorbs both; a libhdf5 that
    no longer fails on them reports the file as malformed or analyses it."""
    p = case_dir / "model.h5"
    p.write_bytes((CRASHERS / name).read_bytes())
    out, rules = _scan(p)
    _ok(out)
    found = _all_rules(rules)
    assert found & {"hdf5-parser-crash", "hdf5-parser-timeout", "hdf5-malformed",
                    "keras-lambda-bytecode"}, found


def test_hdf5_in_an_archive_member(case_dir: Path) -> None:
    """Archive members reach h5py through the Python file-object driver, whose absurd
    addresses raised OverflowError; inside the sandbox the crash file is contained too."""
    import gzip

    p = case_dir / "model.h5.gz"
    p.write_bytes(gzip.compress((CRASHERS / "hdf5-sigsegv.h5").read_bytes()))
    out, rules = _scan(p)
    _ok(out)
    assert "archive-corrupt" not in _all_rules(rules)


# ----------------------------------------------------------------- chat templates


@pytest.mark.parametrize("body", ["a." * 100_000 + "b", "a ~ " * 100_000 + "b"],
                         ids=["attribute-chain", "concat-chain"])
def test_template_with_too_many_tokens_is_a_limit(body: str, case_dir: Path) -> None:
    """A 200-400 KB template of attribute or ~ chains took 5+ s to parse (linear, but at
    ~30k tokens/s); it is now refused after counting tokens."""
    p = case_dir / "chat_template.jinja"
    p.write_text("{{ " + body + " }}")
    out, rules = _scan(p)
    _ok(out)
    assert out.seconds < 2.5, out.seconds
    assert _all_rules(rules) == {"limit-exceeded"}


def test_thousands_of_templates_in_one_config(case_dir: Path) -> None:
    """20,000 small templates in tokenizer_config.json took 6.5 s and produced 20,000
    findings; a file's templates now share a count and token budget."""
    import json

    doc = {"chat_template": [{"name": f"t{i}", "template": "{{ x }}"} for i in range(20_000)]}
    p = case_dir / "tokenizer_config.json"
    p.write_text(json.dumps(doc))
    out, _ = _scan(p)
    _ok(out)
    report = scan_paths([str(p)], ScanOptions(workers=1, hash="never"))
    findings = report.files[0].findings
    assert len(findings) <= 70
    assert any(f.rule == "limit-exceeded" and "more than 64 chat templates" in f.message
               for f in findings)


def test_gguf_templates_share_the_file_budget(case_dir: Path) -> None:
    import gguf
    import numpy as np

    p = case_dir / "model.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    for i in range(200):
        w.add_string(f"tokenizer.chat_template.t{i}", "{{ messages }}")
    w.add_tensor("w", np.ones(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out, rules = _scan(p)
    _ok(out)
    assert "limit-exceeded" in _all_rules(rules)


# ----------------------------------------------------------------- Python source


def test_token_dense_python_source_is_bounded(case_dir: Path) -> None:
    """8 MB of ``1 + 1 + ...`` made ast.parse take 865 MiB and 6 s before a RecursionError;
    now a regex token count (in slices, so it allocates little) refuses it first."""
    p = case_dir / "modeling_big.py"
    p.write_bytes(b"x = 1" + b" + 1" * 2_000_000)
    out, rules = _scan(p)
    _ok(out)
    assert out.peak < 128 << 20, out.peak  # was 865 MiB
    assert _all_rules(rules) == {"limit-exceeded"}
