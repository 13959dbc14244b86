"""Engine behaviour: walking, content sniffing, symlinks, special files, exit codes."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mlwarden.report.model import FileResult, Report, Verdict, exit_code
from mlwarden.scan import sniff
from mlwarden.scan.engine import InputError, ScanOptions, scan_paths


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("proto", range(0, 6))
def test_sniff_pickle_every_protocol(proto: int) -> None:
    data = pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=proto)
    kind = sniff.sniff(data[: sniff.HEAD_BYTES], len(data))
    # Protocol 0 is text: sniffed as text, then judged as a pickle by its pickle reading.
    assert kind == (sniff.TEXT if proto == 0 else sniff.PICKLE)
    from mlwarden.scan.context import Limits
    from mlwarden.scan.engine import scan_source
    from mlwarden.scan.source import Source

    assert scan_source(Source.from_bytes(data, "x"), Limits())[0].format == "pickle"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"PK\x03\x04rest", sniff.ZIP),
        (b"\x1f\x8b\x08\x00", sniff.GZIP),
        (b"BZh91AY&SY", sniff.BZ2),
        (b"\xfd7zXZ\x00\x00", sniff.XZ),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", sniff.SEVENZ),
        (b"\x04\x22\x4d\x18\x64\x40", sniff.LZ4),
        (b"\x93NUMPY\x01\x00", sniff.NPY),
        (b"GGUF\x03\x00\x00\x00", sniff.GGUF),
        (b"\x89HDF\r\n\x1a\n\x00", sniff.HDF5),
        (b"\x7fELF\x02\x01", sniff.NATIVE),
        (b"# Title\nSome prose (with parens) and c words.\n", sniff.TEXT),
        (b'{"architectures": ["BertModel"]}', sniff.TEXT),
        (b"\x00\x01\x02\x03\xff\xfe\x00", sniff.UNKNOWN),
    ],
)
def test_sniff_magic(head: bytes, expected: str) -> None:
    assert sniff.sniff(head, len(head) + 100) == expected


def test_sniff_zlib_and_safetensors() -> None:
    import struct
    import zlib

    z = zlib.compress(b"hello" * 10)
    assert sniff.sniff(z, len(z)) == sniff.ZLIB
    header = b'{"__metadata__":{}}'
    st = struct.pack("<Q", len(header)) + header
    assert sniff.sniff(st, len(st)) == sniff.SAFETENSORS


def test_content_decides_not_extension(tmp_path: Path) -> None:
    (tmp_path / "weights.model").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    (tmp_path / "notes.pkl").write_text("just some notes\n")
    report = scan_paths([str(tmp_path)], ScanOptions(workers=1))
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name["weights.model"].format.startswith("pickle")
    assert by_name["notes.pkl"].format == "text"


def test_every_file_gets_a_verdict_and_paths_keep_argument(tmp_path: Path) -> None:
    d = tmp_path / "repo"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("hi")
    (d / "sub" / "b.bin").write_bytes(bytes([0, 0xFF, 0x13, 0x37]) * 16)
    (d / "empty").write_bytes(b"")
    report = scan_paths([str(d)])
    paths = sorted(f.path for f in report.files if f.parent is None and f.format != "repository")
    assert paths == sorted([str(d / "a.txt"), str(d / "empty"), str(d / "sub" / "b.bin")])
    assert all(isinstance(f.verdict, Verdict) for f in report.files)
    unknown = next(f for f in report.files if f.path.endswith("b.bin"))
    assert unknown.verdict is Verdict.UNSCANNABLE
    assert any("no known format" in x.message
               for x in unknown.findings)


def test_symlink_outside_root_reported_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.pkl"
    secret.write_bytes(pickle.dumps("s"))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "link.bin").symlink_to(secret)
    (repo / "inside.txt").write_text("x")
    (repo / "ok_link").symlink_to(repo / "inside.txt")
    report = scan_paths([str(repo)])
    link = next(f for f in report.files if f.path.endswith("link.bin"))
    assert link.verdict is Verdict.SUSPICIOUS
    assert link.findings[0].rule == "symlink-outside-root"
    assert link.sha256 is None and link.size is None  # never opened
    ok = next(f for f in report.files if f.path.endswith("ok_link"))
    assert ok.verdict is Verdict.CLEAN and ok.format == "text"


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    report = scan_paths([str(tmp_path)])
    (fifo,) = [f for f in report.files if f.path.endswith("pipe")]
    assert fifo.verdict is Verdict.UNSCANNABLE
    assert fifo.findings[0].rule == "not-a-regular-file"


def test_missing_path_is_input_error() -> None:
    with pytest.raises(InputError):
        scan_paths(["/definitely/not/here"])


def test_exit_codes_follow_documented_order() -> None:
    def rep(*verdicts: Verdict) -> Report:
        return Report("scan", tuple(FileResult(f"f{i}", "x", v, 0, None)
                                    for i, v in enumerate(verdicts)))

    assert exit_code(rep(Verdict.CLEAN)) == 0
    assert exit_code(rep(Verdict.SUSPICIOUS, Verdict.CLEAN)) == 3
    assert exit_code(rep(Verdict.SUSPICIOUS, Verdict.UNSCANNABLE)) == 2
    assert exit_code(rep(Verdict.UNSCANNABLE, Verdict.MALICIOUS)) == 1
    assert exit_code(rep(Verdict.SUSPICIOUS), fail_on=Verdict.MALICIOUS) == 0
    assert exit_code(rep(Verdict.UNSCANNABLE), fail_on=Verdict.UNSCANNABLE) == 2


def test_workers_give_same_results(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"f{i}.pkl").write_bytes(pickle.dumps({"i": i}, protocol=i % 6))
    one = scan_paths([str(tmp_path)], ScanOptions(workers=1))
    two = scan_paths([str(tmp_path)], ScanOptions(workers=2))
    assert [f.to_dict() for f in one.files] == [f.to_dict() for f in two.files]


def test_hash_modes(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("abc")
    import hashlib

    want = hashlib.sha256(b"abc").hexdigest()
    assert scan_paths([str(f)]).files[0].sha256 == want
    assert scan_paths([str(f)], ScanOptions(hash="never")).files[0].sha256 is None


def test_cli_json_shape_and_exit(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps([1, 2]))
    out = run_cli("scan", str(tmp_path), "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["tool"]["name"] == "mlwarden"
    assert set(doc["files"][0]) >= {"path", "format", "verdict", "size", "sha256", "findings"}
    assert doc["files"][0]["path"].startswith(str(tmp_path))
    assert doc["summary"]["verdicts"]["clean"] == 1


def test_cli_bad_input_is_clean_error(tmp_path: Path) -> None:
    out = run_cli("scan", str(tmp_path / "nope"))
    assert out.returncode == 4
    assert "Traceback" not in out.stderr
    assert "no such file" in out.stderr
    out = run_cli("scan", "--format", "xml", str(tmp_path))
    assert out.returncode == 4 and "Traceback" not in out.stderr


def test_cli_output_file_written(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_text("x")
    target = tmp_path / "report.sarif"
    out = run_cli("scan", str(tmp_path / "m"), "--format", "sarif", "--output", str(target))
    assert out.returncode == 0, out.stderr
    doc = json.loads(target.read_text())
    assert doc["version"] == "2.1.0"


def test_safetensors_header_that_starts_like_a_pickle_proto(tmp_path: Path) -> None:
    """A 128-byte safetensors header begins 0x80 0x00, like PROTO 0: content, not the first
    two bytes, decides; the pickle reading is still checked and finds nothing to run."""
    import json as _json
    import struct

    header = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    raw = _json.dumps(header).encode()
    raw += b" " * (128 - len(raw))
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(16))
    assert path.read_bytes()[:2] == b"\x80\x00"
    (res,) = scan_paths([str(path)]).files
    assert res.format == "safetensors"
    assert res.verdict is Verdict.CLEAN, res.findings


def _msgpack_map(d: dict) -> bytes:
    out = bytes([0x80 | len(d)])
    for k, v in d.items():
        kb = k.encode()
        out += bytes([0xA0 | len(kb)]) + kb
        out += _msgpack_map(v) if isinstance(v, dict) else b"\xc4" + bytes([len(v)]) + v
    return out


def test_msgpack_needs_structure_not_one_byte() -> None:
    flax = _msgpack_map({"params": {"dense": {"kernel": bytes(16), "bias": bytes(4)}}})
    assert sniff.sniff(flax, len(flax)) == sniff.MSGPACK
    # More objects than the sniffer inspects, whole file within the sniffed head.
    many = _msgpack_map({"params": {f"layer{i}": {"kernel": bytes(200), "bias": bytes(4)}
                                    for i in range(15)}})
    assert sniff.sniff(many[: sniff.HEAD_BYTES], len(many)) == sniff.MSGPACK
    # A map byte followed by junk is not msgpack: it must not pass as inert data.
    junk = b"\x83" + bytes([0x00, 0xFF, 0x13]) * 30
    assert sniff.sniff(junk, len(junk)) == sniff.UNKNOWN
    # An empty map followed by more bytes is not a Flax file either.
    assert sniff.sniff(b"\x80" + b"\xff\x01" * 20, 41) == sniff.UNKNOWN


def test_python_that_parses_as_protocol0_pickle_is_analysed_as_python(tmp_path: Path) -> None:
    """Crafted source can read as a run of protocol-0 opcodes (``import`` starts with the
    INST opcode); the import that runs it reads it as Python, so that reading decides."""
    evil = tmp_path / "modeling_evil.py"
    evil.write_text('import os\ncmd = ["true"]\nos.execvp if False else None\nimport pty\n'
                    "import torch.nn as nn\npty.spawn(cmd)\n")
    (res,) = scan_paths([str(evil)]).files
    assert res.format == "python"
    assert res.verdict is Verdict.MALICIOUS
    assert "pickle-broken-stream" not in {f.rule for f in res.findings}
    # A protocol-0 pickle payload stays a pickle, whatever it is named.
    payload = tmp_path / "weights.pkl"
    payload.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    (res,) = scan_paths([str(payload)]).files
    assert res.format == "pickle" and res.verdict is Verdict.MALICIOUS


def test_proto_like_safetensors_reads_only_a_probe(tmp_path: Path, monkeypatch) -> None:
    """The pickle reading of a safetensors file whose header starts 0x80 0x00 breaks at
    byte 2; checking it must not read the tensor bytes."""
    import io
    import json as _json
    import struct

    from mlwarden.scan import source as source_mod

    raw = _json.dumps({"w": {"dtype": "F32", "shape": [4 << 20],
                             "data_offsets": [0, 16 << 20]}}).encode()
    raw += b" " * (128 - len(raw))
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + (16 << 20))
    read = [0]
    real_open = source_mod.Source.open

    class Counting(io.RawIOBase):
        def __init__(self, inner) -> None:
            self.inner = inner

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            n = self.inner.readinto(b)
            read[0] += n or 0
            return n

        def seekable(self) -> bool:
            return True

        def seek(self, *a):
            return self.inner.seek(*a)

        def tell(self) -> int:
            return self.inner.tell()

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(source_mod.Source, "open",
                        lambda self: io.BufferedReader(Counting(real_open(self))))
    (res,) = scan_paths([str(path)], ScanOptions(hash="never")).files
    assert res.format == "safetensors" and res.verdict is Verdict.CLEAN, res.findings
    assert read[0] < 1 << 20
