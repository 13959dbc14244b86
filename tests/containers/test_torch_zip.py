"""PyTorch zip checkpoints and the zip tricks that bypass zipfile-based scanners."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from containers._util import rules_of, scan_bytes
from corpus import containers as c
from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits
from mlwarden.scan.engine import scan_paths, scan_source

torch = pytest.importorskip("torch")


def test_clean_checkpoint(tmp_path: Path, pickles) -> None:
    p = c.torch_zip(tmp_path / "model.pt")
    rep = scan_paths([str(p)])
    (own,) = rep.files
    assert own.format == "pytorch-zip"
    assert own.verdict is Verdict.CLEAN, own.findings
    # data.pkl analysed in place (findings would sit on the archive entry)
    assert "model/data.pkl" in pickles.members


def test_malicious_checkpoint(tmp_path: Path, pickles) -> None:
    marker = tmp_path / "marker"
    p = c.torch_zip(tmp_path / "evil.pt", marker=marker)
    rep = scan_paths([str(p)])
    assert rep.files[0].verdict is Verdict.MALICIOUS
    assert any(f.location and f.location.member == "evil/data.pkl"
               for f in rep.files[0].findings)
    assert not marker.exists()


@pytest.mark.parametrize("trick", ["crc", "name", "lhflag"])
def test_anomaly_on_benign_content_is_not_malicious(tmp_path: Path, pickles, trick: str) -> None:
    raw = c.torch_zip(tmp_path / "m.pt").read_bytes()
    data = c.mutate_zip(raw, "data.pkl", crc=trick == "crc", rename_local=trick == "name",
                        lh_flags=0x1 if trick == "lhflag" else 0)
    # torch loads it (weights_only: nothing executes)
    sd = torch.load(io.BytesIO(data), weights_only=True)
    assert sd["step"] == 3
    results = scan_bytes(data, "m.pt")
    rule = {"crc": "zip-bad-crc", "name": "zip-name-mismatch", "lhflag": "zip-flag-bits"}[trick]
    assert rule in rules_of(results)
    # A bad CRC hides nothing from a scan that reads what torch reads; a renamed local
    # header or odd flag bits are deliberate-looking, so they stay suspicious.
    want = Verdict.CLEAN if trick == "crc" else Verdict.SUSPICIOUS
    assert results[0].verdict is want
    assert "m/data.pkl" in pickles.members


@pytest.mark.parametrize("trick", ["crc", "name"])
def test_anomaly_hides_no_payload(tmp_path: Path, pickles, trick: str) -> None:
    marker = tmp_path / "marker"
    raw = c.torch_zip(tmp_path / "evil.pt", marker=marker).read_bytes()
    data = c.mutate_zip(raw, "data.pkl", crc=trick == "crc", rename_local=trick == "name")
    # The bypass is real: CPython's zipfile refuses the member ...
    with pytest.raises(zipfile.BadZipFile):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            z.read("evil/data.pkl")
    # ... while torch loads it and runs the payload (which only touches the marker).
    torch.load(io.BytesIO(data), weights_only=False)
    assert marker.exists()
    marker.unlink()
    results = scan_bytes(data, "evil.pt")
    assert results[0].verdict is Verdict.MALICIOUS
    assert not marker.exists()


def test_central_directory_flag_bits(tmp_path: Path, pickles) -> None:
    marker = tmp_path / "marker"
    raw = c.torch_zip(tmp_path / "evil.pt", marker=marker).read_bytes()
    for flag in (0x1, 0x20, 0x40):
        data = c.mutate_zip(raw, "data.pkl", cd_flags=flag)
        with pytest.raises((RuntimeError, NotImplementedError)):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                z.read("evil/data.pkl")
        results = scan_bytes(data, "evil.pt")
        assert "zip-flag-bits" in rules_of(results)
        # read as plain data anyway: the payload is still found
        assert results[0].verdict is Verdict.MALICIOUS


def test_storages_are_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 pickles) -> None:
    """Bytes read and peak memory do not depend on tensor bytes."""
    import tracemalloc

    from mlwarden.scan import source as src_mod

    read_counts: list[int] = []

    class Counting(io.RawIOBase):
        def __init__(self, fh) -> None:
            self.fh, self.n = fh, 0

        def read(self, n: int = -1) -> bytes:
            data = self.fh.read(n)
            self.n += len(data)
            return data

        def seek(self, off: int, whence: int = 0) -> int:
            return self.fh.seek(off, whence)

        def tell(self) -> int:
            return self.fh.tell()

        def close(self) -> None:
            read_counts.append(self.n)
            self.fh.close()

    orig_open = src_mod.Source.open
    monkeypatch.setattr(src_mod.Source, "open", lambda self: Counting(orig_open(self)))
    figures = {}
    # The reader alone (the engine may hash small files; that is not the scan's cost).
    for numel in (100_000, 8_000_000):  # 400 KB vs 32 MB of tensor data
        p = c.torch_zip(tmp_path / f"m{numel}.pt", numel=numel)
        read_counts.clear()
        tracemalloc.start()
        results = scan_source(src_mod.Source.from_file(p, p.name), Limits())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert results[0].verdict is Verdict.CLEAN
        figures[numel] = (sum(read_counts), peak)
    small, big = figures[100_000], figures[8_000_000]
    assert big[0] < 32 * 1024, figures
    assert abs(big[0] - small[0]) < 512, figures
    assert abs(big[1] - small[1]) < 256 * 1024, figures


def test_torchscript_archive(tmp_path: Path, pickles) -> None:
    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.lin(x)) * 2

    p = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(M()), str(p))
    results = scan_bytes(p.read_bytes(), "scripted.pt")
    own = results[0]
    assert own.format == "torchscript"
    assert "torchscript-code" in rules_of(results)
    assert any(m and m.endswith("constants.pkl") for m in pickles.members)
    assert any(m and m.endswith("data.pkl") for m in pickles.members)
    assert own.verdict is not Verdict.MALICIOUS
    if pickles.real:
        assert own.verdict is Verdict.CLEAN, own.findings


def test_torchscript_file_op_flagged(tmp_path: Path, pickles) -> None:
    code = b"def forward(self):\n    return torch.from_file(\"/etc/passwd\", False, 10)\n" \
           b"def g(x):\n    return ops.mylib.run(x)\n"
    data = c.zip_of({"a/data.pkl": c.benign_pickle(), "a/constants.pkl": c.benign_pickle(),
                     "a/code/__torch__/m.py": code, "a/version": b"3\n"})
    results = scan_bytes(data, "ts.pt")
    assert results[0].format == "torchscript"
    assert {"torchscript-file-op", "torchscript-custom-op"} <= rules_of(results)
    assert "torchscript-code" not in rules_of(results)


def test_extra_pickles_and_foreign_members_are_scanned(tmp_path: Path, pickles,
                                                       ) -> None:
    marker = tmp_path / "m"
    data = c.zip_of({
        "a/data.pkl": c.benign_pickle(),
        "a/extra/hidden.pkl": c.payload_pickle(marker),  # not data.pkl: still scanned
        "a/data/0": b"\x00" * 64,  # storage: never read
        "b/other.bin": c.payload_pickle(marker),  # outside torch's prefix
    })
    results = scan_bytes(data, "x.pt")
    assert results[0].format == "pytorch-zip"
    assert "a/extra/hidden.pkl" in pickles.members
    assert "a/data/0" not in pickles.members
    assert any(r.path == "x.pt!b/other.bin" and r.verdict is Verdict.MALICIOUS for r in results)
    assert results[0].verdict is Verdict.MALICIOUS


def test_pickle_prefix_polyglot(tmp_path: Path, pickles) -> None:
    marker = tmp_path / "m"
    z = c.build_zip([c.RawEntry("a/data.pkl", c.benign_pickle())],
                    prefix=c.payload_pickle(marker))
    # make it start with a local header so it is sniffed as zip: hidden entry first
    hidden = c.build_zip([c.RawEntry("junk", b"x")])
    hidden_local = hidden[: hidden.find(b"PK\x01\x02")]
    data = c.build_zip([c.RawEntry("a/data.pkl", c.benign_pickle())],
                       prefix=hidden_local + c.payload_pickle(marker))
    results = scan_bytes(data, "poly.pt")
    assert "zip-prefix-data" in rules_of(results)
    # A prefix that is itself a pickle is analysed.
    results = scan_bytes(z, "poly.pt")  # sniffed as pickle by the engine: fine either way
    assert results[0].verdict is Verdict.MALICIOUS
