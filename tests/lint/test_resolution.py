"""Alias resolution, constant propagation, **kwargs dicts and partials."""

from __future__ import annotations

import json

import pytest

from lint.lint_support import hits, rules_of

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("src", [
    "import torch as T\nT.load('m.pt')\n",
    "from torch import load as l\nl('m.pt')\n",
    "from torch import load\nload('m.pt')\n",
    "import torch.serialization as ser\nser.load('m.pt')\n",
    "from torch import serialization\nserialization.load('m.pt')\n",
    "import torch\nL = torch.load\nL('m.pt')\n",
    "import torch\ngetattr(torch, 'load')('m.pt')\n",
    "import importlib\nimportlib.import_module('torch').load('m.pt')\n",
    "import functools, torch\nloader = functools.partial(torch.load, map_location='cpu')\n"
    "loader('m.pt')\n",
    "from functools import partial\nimport torch\npartial(torch.load)('m.pt')\n",
    "import torch\ndef f(path):\n    return torch.load(path)\n",
    "import torch\nclass M:\n    def load(self, p):\n        return torch.load(p)\n",
    "import torch\nfns = [lambda p: torch.load(p)]\n",
    "import torch\n[torch.load(p) for p in paths]\n",
])
def test_torch_load_aliases_resolve(src: str) -> None:
    assert "lint-torch-load-implicit" in rules_of(src)


@pytest.mark.parametrize("src", [
    "from transformers import AutoModel as AM\nAM.from_pretrained('org/m')\n",
    "import transformers.AutoModel\ntransformers.AutoModel.from_pretrained('org/m')\n",
    "import transformers as tr\ntr.AutoModel.from_pretrained('org/m')\n",
    "from transformers import AutoModel\ncls = AutoModel\ncls.from_pretrained('org/m')\n",
    "from transformers import AutoModel\nREV = 'main'\n"
    "AutoModel.from_pretrained('org/m', revision=REV)\n",
    "from transformers import AutoModel\nkw = {'revision': 'main'}\n"
    "AutoModel.from_pretrained('org/m', **kw)\n",
    f"from transformers import AutoModel\nkw = {{'revision': '{SHA}'}}\nkw['revision'] = 'dev'\n"
    "AutoModel.from_pretrained('org/m', **kw)\n",
    "from functools import partial\nfrom transformers import AutoModel\n"
    "load = partial(AutoModel.from_pretrained, revision='main')\nload('org/m')\n",
    "from huggingface_hub import snapshot_download as sd\nsd('org/m')\n",
    "import huggingface_hub as hh\nhh.hf_hub_download('org/m', 'config.json')\n",
    "from transformers import AutoModel\nORG = 'org'\n"
    "AutoModel.from_pretrained(f'{ORG}/m', revision='v2')\n",
])
def test_unpinned_through_aliases_and_values(src: str) -> None:
    assert "lint-unpinned-revision" in rules_of(src)


@pytest.mark.parametrize("src", [
    # pinned through a module constant, a dict, a partial, an f-string
    f"from transformers import AutoModel\nCOMMIT_SHA = '{SHA}'\n"
    "AutoModel.from_pretrained('org/m', revision=COMMIT_SHA)\n",
    f"from transformers import AutoModel\nkw = {{'revision': '{SHA}'}}\n"
    "AutoModel.from_pretrained('org/m', **kw)\n",
    f"from transformers import AutoModel\nkw = {{}}\nkw.update(revision='{SHA}')\n"
    "AutoModel.from_pretrained('org/m', **kw)\n",
    "from functools import partial\nfrom transformers import AutoModel\n"
    f"load = partial(AutoModel.from_pretrained, revision='{SHA}')\nload('org/m')\n",
    f"from transformers import AutoModel\nSHA = '{SHA}'\n"
    "AutoModel.from_pretrained('org/m', revision=f'{SHA}')\n",
    # a rebinding in a function does not leak: the module constant stays pinned
    f"from transformers import AutoModel\nREV = '{SHA}'\ndef g():\n    REV2 = 'main'\n"
    "def f():\n    return AutoModel.from_pretrained('org/m', revision=REV)\n",
])
def test_pinned_through_values_is_not_flagged(src: str) -> None:
    assert "lint-unpinned-revision" not in rules_of(src)


def test_conflicting_module_bindings_are_unknown_in_functions() -> None:
    # REV is bound twice at module level: inside f() it could be either, so no claim.
    src = (f"from transformers import AutoModel\nREV = '{SHA}'\nREV = compute()\n"
           "def f():\n    return AutoModel.from_pretrained('org/m', revision=REV)\n")
    assert "lint-unpinned-revision" not in rules_of(src)


def test_flow_order_within_a_scope() -> None:
    src = ("import torch\nwo = False\ntorch.load('a', weights_only=wo)\nwo = True\n"
           "torch.load('b', weights_only=wo)\n")
    assert hits(src) == [("lint-torch-load-weights-only-false", 3)]


def test_shadowing_a_name_drops_the_alias() -> None:
    src = "from torch import load\ndef load(p):\n    return p\nload('m.pt')\n"
    assert "lint-torch-load-implicit" not in rules_of(src)


def test_class_body_names_are_not_visible_in_methods() -> None:
    src = ("from transformers import AutoModel\nREV = 'main'\nclass C:\n"
           f"    REV = '{SHA}'\n    def f(self):\n"
           "        return AutoModel.from_pretrained('org/m', revision=REV)\n")
    assert "lint-unpinned-revision" in rules_of(src)


def test_linting_never_executes_or_imports_the_code(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlwarden.lint.engine import lint_paths

    marker = tmp_path / "executed"
    mod = tmp_path / "evil.py"
    mod.write_text(f"open({str(marker)!r}, 'w').close()\nimport torch\ntorch.load('x')\n")
    cell = {"cell_type": "code", "source": [f"open({str(marker)!r}, 'w').close()"]}
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": [cell]}))
    report = lint_paths([str(tmp_path)])
    assert not marker.exists()
    assert {fr.path.rsplit("/", 1)[-1] for fr in report.files} == {"evil.py", "nb.ipynb"}
