"""tar, compressed streams, 7z, npz, Keras zips, nesting and traversal names."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from pathlib import Path

import pytest

from containers._util import rules_of, scan_bytes
from corpus import containers as c
from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits
from mlwarden.scan.readers import get_reader

COMPRESSORS = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
    "lz4": lambda d: __import__("lz4.frame").frame.compress(d),
    "zstd": lambda d: __import__("zstandard").ZstdCompressor().compress(d),
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_pickle(tmp_path: Path, pickles, kind: str) -> None:
    benign = scan_bytes(COMPRESSORS[kind](c.benign_pickle()), f"cfg.pkl.{kind}")
    assert benign[0].format == kind
    assert [r.verdict for r in benign] == [Verdict.CLEAN, Verdict.CLEAN]
    evil = scan_bytes(COMPRESSORS[kind](c.payload_pickle(tmp_path / "m")), "x")
    assert evil[1].path == "x!<decompressed>"
    assert evil[0].verdict is Verdict.MALICIOUS


def test_inner_name_follows_suffix(pickles) -> None:
    res = scan_bytes(gzip.compress(c.benign_pickle()), "dir/model.pkl.gz")
    assert res[1].path == "dir/model.pkl.gz!model.pkl"


def test_truncated_stream_still_analysed(tmp_path: Path, pickles) -> None:
    """nullifAI-style: the payload decompresses before the break; a loader runs it."""
    data = gzip.compress(c.payload_pickle(tmp_path / "m") + bytes(100_000))
    res = scan_bytes(data[: len(data) // 2 + 40], "x.gz")
    assert "archive-corrupt" in rules_of(res)
    assert res[0].verdict is Verdict.MALICIOUS


def test_tar_members_and_names(tmp_path: Path, pickles) -> None:
    link = tarfile.TarInfo("evil-link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    data = c.tar_of({"ok/cfg.pkl": c.benign_pickle(), "../escape.txt": b"hi\n",
                     "/abs/x": b"x"}, extra=[link, dev])
    res = scan_bytes(data, "a.tar")
    assert res[0].format == "tar"
    assert {"archive-path-traversal", "archive-link-escape",
            "archive-special-member"} <= rules_of(res)
    assert any(r.path == "a.tar!ok/cfg.pkl" and r.verdict is Verdict.CLEAN for r in res)
    assert res[0].verdict is Verdict.SUSPICIOUS


def test_tar_pickle_payload(tmp_path: Path, pickles) -> None:
    data = c.tar_of({"model.bin": c.payload_pickle(tmp_path / "m")})
    assert scan_bytes(data, "a.tar")[0].verdict is Verdict.MALICIOUS


def test_nested_archives(tmp_path: Path, pickles) -> None:
    """pickle in zip in tar in gzip in 7z."""
    py7zr = pytest.importorskip("py7zr")
    z = c.zip_of({"inner/model.bin": c.payload_pickle(tmp_path / "m")})
    t = gzip.compress(c.tar_of({"bundle.zip": z}))
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as s:
        s.writestr(t, "bundle.tar.gz")
    res = scan_bytes(buf.getvalue(), "top.7z")
    assert res[0].format == "7z"
    paths = [r.path for r in res]
    assert "top.7z!bundle.tar.gz!bundle.tar!bundle.zip!inner/model.bin" in paths
    assert res[0].verdict is Verdict.MALICIOUS
    # the same tree with a depth bound of 2 stops with a reason
    shallow = scan_bytes(buf.getvalue(), "top.7z", Limits(max_depth=2))
    assert "limit-exceeded" in rules_of(shallow)
    assert shallow[0].verdict is Verdict.UNSCANNABLE


def test_7z_recompressed_torch(tmp_path: Path, pickles) -> None:
    py7zr = pytest.importorskip("py7zr")
    p = c.torch_zip(tmp_path / "evil.pt", marker=tmp_path / "m")
    out = tmp_path / "evil.7z"
    with py7zr.SevenZipFile(out, "w") as s:
        s.write(p, "evil.pt")
    res = scan_bytes(out.read_bytes(), "evil.7z")
    assert any(r.format == "pytorch-zip" for r in res)
    assert res[0].verdict is Verdict.MALICIOUS


def test_zip_members_and_anomalies(tmp_path: Path, pickles) -> None:
    marker = tmp_path / "m"
    data = c.build_zip([
        c.RawEntry("a.pkl", c.benign_pickle()),
        c.RawEntry("a.pkl", c.payload_pickle(marker)),  # duplicate name, second copy evil
        c.RawEntry("../../up.txt", b"hello\n"),
        c.RawEntry("C:/win.txt", b"hello\n", method=0),
    ])
    res = scan_bytes(data, "x.zip")
    assert {"zip-duplicate-name", "archive-path-traversal"} <= rules_of(res)
    assert res[0].verdict is Verdict.MALICIOUS  # every copy is scanned


def test_encrypted_member(pickles) -> None:
    e = c.RawEntry("secret.pkl", b"", method=0, raw=b"\x8f\x12" * 50, crc=0, size=100)
    data = bytearray(c.build_zip([e]))
    # set the encryption flag in both headers
    data[6] |= 1
    cd = data.find(b"PK\x01\x02")
    data[cd + 8] |= 1
    res = scan_bytes(bytes(data), "x.zip")
    assert "zip-flag-bits" in rules_of(res)
    assert res[0].verdict in (Verdict.UNSCANNABLE, Verdict.SUSPICIOUS)
    assert res[0].verdict is not Verdict.CLEAN


@pytest.mark.parametrize("method", [0, 8, 12, 14])
def test_zip_compression_methods(pickles, method: int) -> None:
    import zipfile

    comp = {0: zipfile.ZIP_STORED, 8: zipfile.ZIP_DEFLATED, 12: zipfile.ZIP_BZIP2,
            14: zipfile.ZIP_LZMA}[method]
    res = scan_bytes(c.zip_of({"cfg.pkl": c.benign_pickle()}, comp), "x.zip")
    assert [r.verdict for r in res] == [Verdict.CLEAN, Verdict.CLEAN]
    assert "zip-bad-crc" not in rules_of(res)


def test_npz_members(tmp_path: Path, pickles) -> None:
    np = pytest.importorskip("numpy")
    p = tmp_path / "a.npz"
    np.savez(p, a=np.arange(5), s=np.array(["x", "y"], dtype=object))
    res = scan_bytes(p.read_bytes(), "a.npz")
    assert res[0].format == "npz"
    assert {r.path for r in res[1:]} == {"a.npz!a.npy", "a.npz!s.npy"}
    if get_reader("npy") is None:
        pytest.skip("npy reader not installed yet")
    assert res[0].verdict is Verdict.CLEAN, res
    evil = tmp_path / "e.npz"
    np.savez(evil, p=np.array([c.Payload(tmp_path / "m")], dtype=object))
    assert scan_bytes(evil.read_bytes(), "e.npz")[0].verdict is Verdict.MALICIOUS


def test_keras_zip_routes_config(pickles) -> None:
    config = b'{"class_name": "Sequential", "config": {"layers": []}}'
    data = c.zip_of({"metadata.json": b'{"keras_version": "3.5.0"}', "config.json": config,
                     "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(64)})
    res = scan_bytes(data, "m.keras")
    assert res[0].format == "keras"
    paths = {r.path for r in res}
    assert "m.keras!model.weights.h5" in paths


@pytest.mark.parametrize("kind", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_compressed_joblib(tmp_path: Path, pickles, kind: str) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    p = tmp_path / "m.joblib"
    joblib.dump({"coef": np.arange(1000.0), "name": "m"}, p, compress=(kind, 3))
    res = scan_bytes(p.read_bytes(), "m.joblib")
    assert res[0].format == {"gzip": "gzip", "zlib": "zlib", "bz2": "bz2", "xz": "xz",
                             "lzma": "lzma", "lz4": "lz4"}[kind]
    if not pickles.real:
        pytest.skip("joblib array buffers need the real pickle interpreter")
    assert res[1].format == "joblib"
    assert res[0].verdict is Verdict.CLEAN, res
    e = tmp_path / "e.joblib"
    joblib.dump([np.arange(1000.0), c.Payload(tmp_path / "marker")], e, compress=(kind, 3))
    assert scan_bytes(e.read_bytes(), "e.joblib")[0].verdict is Verdict.MALICIOUS


def test_trailing_data_and_concatenated_gzip(pickles) -> None:
    res = scan_bytes(zlib.compress(c.benign_pickle()) + b"EXTRA-BYTES", "t.z")
    assert "archive-trailing-data" in rules_of(res)
    assert res[0].verdict is Verdict.SUSPICIOUS
    first = c.benign_pickle()
    res = scan_bytes(gzip.compress(first) + gzip.compress(b"second"), "t.gz")
    assert res[1].size == len(first) + len(b"second")  # both members, like GzipFile
    assert "archive-trailing-data" not in rules_of(res)
