"""Issue 11, formats half: what the real loaders do with these bytes, the scanner sees.

- every non-pickle file is also read as a pickle from offset 0 (CPython's reading);
- npy headers are parsed as numpy's descr_to_dtype does (checked against numpy itself);
- joblib buffers are skipped only as joblib skips them;
- Jinja templates, TF graphs, ONNX side messages and inert data formats by content.
"""

from __future__ import annotations

import io
import pickle
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from corpus.formats import pb_int, pb_len, saved_model, tf_graph
from formats.fmt_helpers import rules_of, scan_bytes, scan_file
from mlwarden.scan.formats.numpy_dtype import DtypeError, descr_info, pickled_dtype_info

PAYLOAD = b"cos\nsystem\n(S'touch /tmp/mlwarden-marker'\ntR."


def _verdict(data: bytes, name: str = "blob") -> tuple[str, str, set[str]]:
    r = scan_bytes(data, name)
    return r.format, r.verdict.value, rules_of(r)


# --------------------------------------------------------------- the pickle reading


@pytest.mark.parametrize("prefix", [
    b"", b"(", b"N0", b"I1\n0", b"]", b"}",  # other opcodes before the import
])
def test_protocol0_streams_without_proto_are_pickles(prefix: bytes) -> None:
    fmt, verdict, rules = _verdict(prefix + PAYLOAD)
    assert verdict == "malicious", (fmt, rules)


def test_stream_that_breaks_after_exec_is_not_clean_text() -> None:
    data = b"cbuiltins\nexec\n(S'import os'\ntR" + b"\x00 and then prose"
    _fmt, verdict, rules = _verdict(data, "notes.txt")
    assert verdict == "malicious" and "pickle-dangerous-callable" in rules


class _Reached(Exception):
    pass


class _Probe(pickle.Unpickler):
    """CPython's own unpickler that stops at the first import (never imports)."""

    def find_class(self, module: str, name: str) -> object:
        raise _Reached(f"{module}.{name}")


def _reaches_import(data: bytes) -> bool:
    try:
        _Probe(io.BytesIO(data)).load()
    except _Reached:
        return True
    except Exception:
        return False
    return False


@pytest.mark.parametrize("magic", [
    b"GIF89a", b"GIF89a\x00\x00", b"\x89PNG\r\n\x1a\n", b"GGUF\x03\x00\x00\x00",
    b"\x00\x00\x00\x1cTFL3", b"RIFF\x00\x00\x00\x00WAVE", b"MATLAB 5.0 MAT-file",
    b"SR\x00\x04", b"lmgg", b"N", b"]", b"(", b"BM", b"II*\x00", b"\x93NUMPY",
])
def test_magic_of_another_format_hides_no_pickle(magic: bytes) -> None:
    """Whatever the magic claims: when CPython's unpickler reaches the payload's import,
    the scan is malicious."""
    data = magic + PAYLOAD
    if _reaches_import(data):
        assert _verdict(data)[1] == "malicious", magic


def test_gif_that_is_a_pickle_is_caught() -> None:
    # 'G' BINFLOAT eats 8 bytes: "IF89a" + 3 more, then the payload runs.
    data = b"GIF89a\x00\x00\x00" + PAYLOAD
    fmt, verdict, rules = _verdict(data)
    assert fmt == "image" and verdict == "malicious", rules
    assert "polyglot-pickle" in rules


def test_plain_text_that_reads_as_a_reference_is_not_flagged() -> None:
    _fmt, verdict, rules = _verdict(b"cat\ndog\nbird and more words\n", "words.txt")
    assert verdict == "clean" and "pickle-reading-references" in rules


def test_zip_is_never_read_as_a_pickle(tmp_path: Path) -> None:
    import zipfile

    p = tmp_path / "a.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x.txt", "hello")
    assert scan_file(p).verdict.value == "clean"


def test_text_pickle_with_python2_escapes_is_analysed() -> None:
    # Python 2 protocol 0 with escaped non-ASCII: text, and a pickle to CPython.
    data = b"(dp0\nS'caf\\xe9'\np1\nVna\\u00efve\np2\ns."
    r = scan_bytes(data, "old.pkl")
    assert r.format == "pickle" and r.verdict.value == "clean", r.findings
    evil = b"(dp0\nS'caf\\xe9'\np1\n" + PAYLOAD[:-1] + b"\ns."
    assert scan_bytes(evil, "old.pkl").verdict.value == "malicious"


# --------------------------------------------------------------- npy headers


def _npy(header: str, data: bytes = b"", version: int = 1) -> bytes:
    raw = header.encode("latin-1")
    pad = (-(10 + len(raw) + 1)) % 64
    raw = raw + b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<H", len(raw)) + raw + data


DESCRS = [
    "<f8", "O", "|O", ">O8", "object", "object_", "(2,)O", "2O", "i4,O", "O,", "U10",
    "<M8[ns]", "datetime64[s]", "bool", "float64", "str", "V8", "a5",
    ("O", (2,)), ("<f4", (2, 3)), ("U", 10), [("a", "<i4"), ("b", "O")],
    [("a", [("x", "O")])], [("a", "<f8", (2,))], [("", "|V4"), ("b", "<f4")],
    [(("title", "a"), "O")], {"aO": 1}, {"ab": 1}, [("a", "O", (0,))],
]


@pytest.mark.parametrize("descr", DESCRS, ids=repr)
def test_descr_matches_numpy(descr: object) -> None:
    from numpy.lib import format as npformat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dt = npformat.descr_to_dtype(descr)
        except Exception:
            with pytest.raises(DtypeError):
                descr_info(descr)
            return
    info = descr_info(descr)
    assert info.has_object == dt.hasobject, (descr, dt)
    assert info.itemsize in (None, dt.itemsize), (descr, dt, info)


def test_descr_fuzz_against_numpy() -> None:
    """Random descrs: whenever numpy accepts one, object-ness agrees (or we are unsure)."""
    from numpy.lib import format as npformat

    rng = random.Random(11)
    atoms = ["<f8", "O", "|b1", "<U3", "i4", "O8", "V4", "<M8[s]", "S2", "object", "?",
             "float32", "(2,)O", "i4,f8"]

    def gen(depth: int) -> object:
        k = rng.randrange(4 if depth < 3 else 1)
        if k == 0:
            return rng.choice(atoms)
        if k == 1:
            return (gen(depth + 1), rng.choice([(2,), (1, 2), 3, ()]))
        fields = [(f"f{i}", gen(depth + 1)) if rng.random() < 0.7
                  else (f"f{i}", gen(depth + 1), (2,)) for i in range(rng.randrange(1, 4))]
        return fields
    checked = 0
    for _ in range(1500):
        d = gen(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                dt = npformat.descr_to_dtype(d)
            except Exception:
                continue
        info = descr_info(d)
        assert info.has_object in (None, dt.hasobject), (d, dt)
        checked += 1
    assert checked > 500


def test_object_npy_with_python2_long_shape_is_analysed() -> None:
    payload = pickle.dumps(np.array([1, "x"], dtype=object), protocol=2)
    data = _npy("{'descr': '|O', 'fortran_order': False, 'shape': (2L,), }", payload)
    fmt, verdict, rules = _verdict(data, "a.npy")
    assert verdict == "clean"
    assert fmt == "npy" and "npy-bad-header" not in rules and "npy-object-array" in rules
    evil = _npy("{'descr': '|O', 'fortran_order': False, 'shape': (1L,), }", PAYLOAD)
    assert _verdict(evil, "a.npy")[1] == "malicious"


@pytest.mark.parametrize("descr", ["[('a', '<i4'), ('b', [('c', '|O')])]", "'(2,)O'",
                                   "{'xO': 0}", "('O', (2,))", "'i4,O'"])
def test_nested_object_fields_make_the_data_a_pickle(descr: str) -> None:
    data = _npy(f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}", PAYLOAD)
    assert _verdict(data, "a.npy")[1] == "malicious"


def test_real_npy_files_round_trip(tmp_path: Path) -> None:
    for i, arr in enumerate([np.arange(10.0), np.array(["ab", "c"]),
                             np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
                             np.array([{"k": 1}, [1, 2]], dtype=object)]):
        p = tmp_path / f"{i}.npy"
        np.save(p, arr, allow_pickle=True)
        r = scan_file(p)
        assert r.verdict.value == "clean", (arr.dtype, r.findings)


# --------------------------------------------------------------- joblib buffers


@pytest.mark.parametrize("dtype", ["<U7", "S5", "V12", "<f8", "b1", "<M8[ns]", "c16",
                                   [("a", "<i4"), ("b", "<U3", (2,))]], ids=str)
def test_joblib_buffer_then_payload(tmp_path: Path, dtype: object) -> None:
    import joblib

    arr = np.zeros(5, dtype=dtype)
    p = tmp_path / "m.joblib"
    joblib.dump({"a": arr, "b": 1}, p)
    assert scan_file(p).verdict.value == "clean", scan_file(p).findings
    # The same file with a payload appended after the dump is a stacked pickle.
    p.write_bytes(p.read_bytes() + PAYLOAD)
    assert scan_file(p).verdict.value == "malicious"


def test_pickled_dtype_sizes_match_numpy() -> None:
    for d in ["<U7", "S5", "V12", "<f8", "b1", "O", "<M8[ns]",
              np.dtype([("a", "<i4"), ("b", "O")]), np.dtype(("f4", (2, 3)))]:
        dt = np.dtype(d)
        _cls, (code, _a, _c), state = dt.__reduce__()
        info = pickled_dtype_info(code, None if dt.fields else _plain_state(state))
        if dt.fields is None and dt.subdtype is None:
            assert info.itemsize == dt.itemsize and info.has_object == dt.hasobject, d


def _plain_state(state: tuple[object, ...]) -> tuple[object, ...]:
    return state


def test_joblib_unknown_dtype_object_is_unscannable_not_skipped() -> None:
    # joblib reads .itemsize of whatever object is stored as dtype: not a numpy dtype
    # here, so the bytes it would skip cannot be known.
    body = (b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(X\x05\x00\x00\x00shape"
            b"K\x03\x85X\x05\x00\x00\x00dtypecbuiltins\nobject\n)\x81X\x05\x00\x00\x00order"
            b"X\x01\x00\x00\x00Cub" + b"\x00" * 24 + b".")
    r = scan_bytes(body, "w.pkl")
    assert r.verdict.value in ("unscannable", "malicious"), r.findings


def test_object_array_inside_joblib_is_read_by_plain_pickle(tmp_path: Path) -> None:
    import joblib

    p = tmp_path / "o.joblib"
    joblib.dump(np.array([{"a": 1}], dtype=object), p)
    assert scan_file(p).verdict.value == "clean"


def test_old_joblib_zfile() -> None:
    inner = pickle.dumps({"w": [1, 2, 3]}, protocol=2)
    zf = b"ZF" + f"{len(inner):#x}".ljust(19).encode() + zlib.compress(inner)
    fmt, verdict, _ = _verdict(zf, "m.pkl")
    assert fmt == "joblib-zfile" and verdict == "clean"
    evil = b"ZF" + f"{len(PAYLOAD):#x}".ljust(19).encode() + zlib.compress(PAYLOAD)
    assert _verdict(evil, "m.pkl")[1] == "malicious"


# --------------------------------------------------------------- templates by content


@pytest.mark.parametrize(("name", "data"), [
    ("x.j2", b"{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    ("prompt.template", b"Hi {{ cycler.__init__.__globals__.os.popen('id').read() }}"),
    ("cfg.json", b'{"p": "\\u007b\\u007b x.\\u005f\\u005fclass\\u005f\\u005f \\u007d\\u007d"}'),
    ("cfg.yaml", b"a:\n  b: \"{{ ''.__cl\\x61ss__ }}\"\n"),
    ("page.html", b"<p>{% for x in y %}{{ x.__globals__ }}{% endfor %}{% endblock %}</p>"),
    ("t.txt", b"{% set a = '__cla' ~ 'ss__' %}{{ foo|attr(a) }}"),
])
def test_template_internals_are_malicious_in_any_file(name: str, data: bytes) -> None:
    fmt, verdict, rules = _verdict(data, name)
    assert verdict == "malicious" and "template-python-internals" in rules, (fmt, rules)


@pytest.mark.parametrize(("name", "data"), [
    ("site.j2", b"{% include 'header.html' %}{{ user.name|attr('x') }}{{ range(3) }}"),
    ("values.yaml", b"image: {{ .Values.image }}\n"),  # Helm, not Jinja: does not parse
    ("m.py", b"s = '{{' + x + '}}'\n"),
])
def test_ordinary_templates_are_not_flagged(name: str, data: bytes) -> None:
    assert _verdict(data, name)[1] == "clean"


# --------------------------------------------------------------- protobuf messages


def test_savedmodel_fingerprint_is_inert_data() -> None:
    rng = random.Random(3)
    for _ in range(300):
        vals = [rng.getrandbits(rng.choice([6, 20, 64])) for _ in range(5)]
        fp = b"".join(pb_int(i + 1, v) for i, v in enumerate(vals) if v)
        fp += pb_len(6, pb_int(1, 1))
        fmt, verdict, rules = _verdict(fp, "fingerprint.pb")
        assert (fmt, verdict) == ("protobuf", "clean"), (fp.hex(), rules)


def test_onnx_sequence_and_optional_protos_are_not_malformed() -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import helper
    from onnx import numpy_helper as nh

    for dt in (np.float32, np.int64, np.int32):
        for shape in ((0,), (3,), (2, 3)):
            a = np.full(shape, 7, dtype=dt)
            t = nh.from_array(a, "t")
            typed = onnx.TensorProto()
            typed.CopyFrom(t)
            typed.ClearField("raw_data")
            getattr(typed, {np.float32: "float_data", np.int64: "int64_data",
                            np.int32: "int32_data"}[dt]).extend(a.ravel().tolist())
            for msg in (t, typed, nh.from_list([a, a], "s"), nh.from_optional(a, "o"),
                        nh.from_optional(None, "o"), nh.from_optional([a], "o"),
                        helper.make_sequence("s", onnx.SequenceProto.TENSOR, []),
                        helper.make_sequence("s", onnx.SequenceProto.OPTIONAL,
                                             [nh.from_optional(a, "x")])):
                fmt, verdict, rules = _verdict(msg.SerializeToString(), "input_0.pb")
                assert verdict == "clean", (type(msg).__name__, fmt, rules)


# --------------------------------------------------------------- TensorFlow exfiltration


def _attr(key: str, urls: list[str]) -> bytes:
    listval = b"".join(pb_len(2, u) for u in urls)
    return pb_len(5, pb_len(1, key) + pb_len(2, pb_len(1, listval)))


def _node(name: str, op: str, inputs: tuple[str, ...] = (), extra: bytes = b"") -> bytes:
    return pb_len(1, name) + pb_len(2, op) + b"".join(pb_len(3, i) for i in inputs) + extra


def _graph(nodes: list[bytes]) -> bytes:
    return b"".join(pb_len(1, n) for n in nodes) + pb_len(4, pb_int(1, 1987))


def test_reader_plus_network_op_is_exfiltration() -> None:
    g = _graph([_node("files", "MatchingFiles"), _node("ds", "FixedLengthRecordDatasetV2"),
                _node("send", "DistributedSave", ("ds",))])
    _fmt, verdict, rules = _verdict(saved_model(g), "saved_model.pb")
    assert verdict == "malicious" and {"tf-exfiltration", "tf-network-op"} <= rules


def test_debug_urls_decide_what_a_debug_op_does() -> None:
    grpc = _graph([_node("x", "Placeholder"), _node("d", "DebugIdentityV2", ("x",),
                                                   _attr("debug_urls", ["grpc://h:1"]))])
    assert "tf-network-op" in _verdict(saved_model(grpc), "saved_model.pb")[2]
    local = _graph([_node("x", "Placeholder"), _node("d", "DebugIdentity", ("x",))])
    assert _verdict(saved_model(local), "saved_model.pb")[1] == "suspicious"
    leak = _graph([_node("r", "ReadFile"), _node("d", "DebugIdentity", ("r",),
                                                 _attr("debug_urls", ["file:///tmp/x"]))])
    assert "tf-exfiltration" in _verdict(saved_model(leak), "saved_model.pb")[2]


def test_checkpoint_to_a_constant_path_next_to_a_reader() -> None:
    g = _graph([_node("path", "Const"), _node("r", "ReadFile", ("path",)),
                _node("dst", "Const"), _node("save/SaveV2", "SaveV2", ("dst", "r"))])
    assert "tf-exfiltration" in _verdict(saved_model(g), "saved_model.pb")[2]
    # The saver writing where the caller says (a placeholder) is ordinary.
    ok = _graph([_node("p", "Placeholder"), _node("save/SaveV2", "SaveV2", ("p",))])
    assert _verdict(saved_model(ok), "saved_model.pb")[1] == "clean"


def test_benign_saved_model_stays_clean() -> None:
    from corpus.formats import benign_saved_model

    assert _verdict(benign_saved_model(), "saved_model.pb")[1] == "clean"
    assert _verdict(saved_model(tf_graph([("x", "Placeholder")])), "saved_model.pb")[1] \
        == "clean"


# --------------------------------------------------------------- inert formats


def test_scipy_written_data_is_inert(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    from scipy.io import wavfile

    arr = np.arange(12.0).reshape(3, 4)
    written = {}
    for fmt in ("4", "5"):
        p = tmp_path / f"m{fmt}.mat"
        scipy_io.savemat(p, {"a": arr, "s": "text"}, format=fmt)
        written[p] = "matlab-v4" if fmt == "4" else "matlab"
    p = tmp_path / "c.mat"
    scipy_io.savemat(p, {"a": arr, "st": {"x": 1}}, do_compression=True)
    written[p] = "matlab"
    p = tmp_path / "a.wav"
    wavfile.write(p, 8000, (np.sin(np.arange(800)) * 1000).astype(np.int16))
    written[p] = "riff"
    p = tmp_path / "d.nc"
    with scipy_io.netcdf_file(p, "w") as f:
        f.createDimension("x", 3)
        v = f.createVariable("v", "f4", ("x",))
        v[:] = [1, 2, 3]
    written[p] = "netcdf"
    p = tmp_path / "f.dat"
    with scipy_io.FortranFile(p, "w") as ff:
        ff.write_record(arr)
        ff.write_record(np.arange(3, dtype=np.int32))
    written[p] = "fortran-unformatted"
    for path, fmt in written.items():
        r = scan_file(path)
        assert (r.format, r.verdict.value) == (fmt, "clean"), (path.name, r.findings)


def test_matlab_73_is_hdf5_with_a_user_block(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    p = tmp_path / "v73.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        f["a"] = np.arange(3)
    with open(p, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: x HDF5 schema 1.00 .")
    r = scan_file(p)
    assert r.format == "hdf5" and r.verdict.value == "clean", r.findings


def _lodtensor(arr: np.ndarray) -> bytes:
    desc = pb_int(1, 5) + b"".join(pb_int(2, d) for d in arr.shape)
    return (struct.pack("<IQ", 0, 0) + struct.pack("<Ii", 0, len(desc)) + desc
            + arr.astype("<f4").tobytes())


def test_headerless_formats_are_walked() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert _verdict(_lodtensor(a) + _lodtensor(a[0]), "fc_0.w_0")[:2] == \
        ("paddle-params", "clean")
    vecs = b"".join(w + b" " + np.ones(4, "<f4").tobytes() + b"\n" for w in (b"a", b"bc"))
    assert _verdict(b"2 4\n" + vecs, "w2v.bin")[:2] == ("word2vec", "clean")
    assert _verdict(b"2 4\n" + vecs[:-9], "w2v.bin")[1] == "unscannable"
    arr = b"\x93\x92\xa3the\xa2of\x91\xa3and\x90"  # [["the", "of"], ["and"], []]
    assert _verdict(arr, "list.msgpack")[:2] == ("msgpack", "clean")
    assert _verdict(struct.pack("<ii", 793712314, 12) + bytes(64), "m.bin")[:2] == \
        ("fasttext", "clean")
    assert _verdict(b"lmgg" + bytes(64), "ggml-model.bin")[:2] == ("ggml", "clean")
    assert _verdict(b"", "__init__.py")[:2] == ("empty", "clean")


def test_random_bytes_stay_unknown() -> None:
    rng = random.Random(5)
    unknown = 0
    for _ in range(50):
        data = bytes(rng.getrandbits(8) for _ in range(4096))
        fmt, verdict, _ = _verdict(data)
        assert verdict != "clean" or fmt not in ("unknown",)
        unknown += verdict == "unscannable"
    assert unknown >= 40


def test_numpy_and_scipy_shipped_data_files() -> None:
    """The data files numpy and scipy ship come out clean, except deliberately corrupt
    ones, which are unscannable with the reason. Pickle-side causes (legacy spellings,
    library classes) are the pickle interpreter's and are excluded here."""
    import numpy as _np
    import scipy

    roots = [Path(_np.__file__).parent / "lib" / "tests" / "data",
             Path(scipy.__file__).parent / "io" / "tests" / "data",
             Path(scipy.__file__).parent / "io" / "matlab" / "tests" / "data"]
    corrupt = ("malformed", "broken", "bad_", "corrupt", "early-eof", "incomplete",
               "invalid", "debigged", "truncated")
    checked = 0
    for root in roots:
        for p in sorted(root.iterdir()):
            if not p.is_file() or p.suffix in (".py", ".pyc"):
                continue
            r = scan_file(p)
            checked += 1
            mine = {f.rule for f in r.findings if f.verdict.value != "clean"
                    and not f.rule.startswith("pickle-")}
            if any(c in p.name for c in corrupt):
                continue
            assert not mine or (r.verdict.value == "unscannable" and _tolerated(p)), \
                (p.name, r.format, mine)
    assert checked > 100


def _tolerated(p: Path) -> bool:
    """Files of formats without a recognisable structure (documented as unscannable)."""
    return p.suffix in (".dat", ".ani") or "fortran" in p.name


def _nifti1(dims: tuple[int, ...], magic: bytes = b"n+1\x00", e: str = "<",
            extension: bytes = b"") -> bytes:
    """A NIfTI-1 header as the standard lays it out (nibabel reads exactly these fields),
    voxels of int16 after vox_offset."""
    hdr = bytearray(348)
    struct.pack_into(e + "i", hdr, 0, 348)
    struct.pack_into(e + "8h", hdr, 40, len(dims), *dims, *[1] * (7 - len(dims)))
    struct.pack_into(e + "hh", hdr, 70, 4, 16)  # datatype int16, bitpix
    ext = (b"\x01\x00\x00\x00" + extension) if extension else b"\x00" * 4
    struct.pack_into(e + "f", hdr, 108, 348 + len(ext))
    hdr[344:348] = magic
    voxels = int(np.prod(dims)) * 2
    return bytes(hdr) + ext + (bytes(voxels) if magic == b"n+1\x00" else b"")


def _trk(lengths: list[int]) -> bytes:
    hdr = bytearray(1000)
    hdr[:6] = b"TRACK\x00"
    struct.pack_into("<i", hdr, 988, len(lengths))
    struct.pack_into("<i", hdr, 996, 1000)
    return bytes(hdr) + b"".join(struct.pack("<i", n) + bytes(12 * n) for n in lengths)


def test_neuroimaging_formats_are_identified_by_content() -> None:
    """What nibabel ships and reads: NIfTI-1/2 and Analyze headers, TrackVis and MRtrix
    streamlines, Siemens CSA headers. Whole files are walked; a file that does not follow
    its format stays unscannable."""
    ext = struct.pack("<ii", 16, 6) + b"comment\x00"  # esize, ecode, data
    analyze = _nifti1((2, 2), magic=bytes(4))[:348]  # Analyze 7.5: no magic
    for data in (_nifti1((4, 5, 6)), _nifti1((4, 5, 6), e=">"), analyze,
                 _nifti1((3, 3), extension=ext), _nifti1((4, 5, 6), magic=b"ni1\x00")):
        assert _verdict(data, "brain.bin")[:2] == ("nifti", "clean")
    assert _verdict(_nifti1((4, 5, 6))[:-1], "brain.nii")[1] == "unscannable"
    assert _verdict(_nifti1((4, 5, 6)) + PAYLOAD, "brain.nii")[1] != "clean"
    assert _verdict(_trk([3, 0, 5]), "x")[:2] == ("trackvis", "clean")
    assert _verdict(_trk([3, 0, 5])[:-4], "x")[1] == "unscannable"
    tck = b"mrtrix tracks\ncount: 1\ndatatype: Float32LE\nfile: . 67\nEND\n"
    tck = tck.ljust(67, b"\x00") + np.array([0, 1, 2, np.nan, np.nan, np.nan, np.inf, np.inf,
                                              np.inf], "<f4").tobytes()
    assert _verdict(tck, "t")[:2] == ("mrtrix-tck", "clean")
    assert _verdict(tck[:-2], "t")[1] == "unscannable"
    item = struct.pack("<4i", 3, 3, 77, 3) + b"ab\x00\x00"
    tag = b"Name".ljust(64, b"\x00") + struct.pack("<i4s3i", 1, b"LO\x00\x00", 19, 1, 77)
    csa = b"SV10\x04\x03\x02\x01" + struct.pack("<II", 1, 77) + tag + item
    assert _verdict(csa, "csa.bin")[:2] == ("siemens-csa", "clean")
    assert _verdict(csa + b"junk", "csa.bin")[1] == "unscannable"
