"""Each rule, positive and negative, on small snippets."""

from __future__ import annotations

import pytest

from lint.lint_support import hits, rules_of

SHA = "0123456789abcdef0123456789abcdef01234567"

TRC = "lint-trust-remote-code"
IMPLICIT = "lint-torch-load-implicit"
WO_FALSE = "lint-torch-load-weights-only-false"
UNPINNED = "lint-unpinned-revision"
NO_ST = "lint-use-safetensors-false"
PICKLE = "lint-pickle-load"
NP = "lint-numpy-allow-pickle"
KERAS = "lint-keras-unsafe-mode"
HTTP = "lint-hf-endpoint-http"


@pytest.mark.parametrize("src,rule,line", [
    # trust_remote_code
    ("from transformers import AutoModel\n"
     f"AutoModel.from_pretrained('a/b', revision='{SHA}', trust_remote_code=True)", TRC, 2),
    ("kw = {'trust_remote_code': True}\n", TRC, 1),
    ("kw = dict(trust_remote_code=True)\n", TRC, 1),
    ("import functools\nfrom transformers import AutoModel\n"
     "p = functools.partial(AutoModel.from_pretrained, trust_remote_code=True)\n", TRC, 3),
    ("trc = True\nfrom vllm import LLM\nLLM('a/b', trust_remote_code=trc)\n", TRC, 3),
    ("cfg.trust_remote_code = True\n", TRC, 1),
    ("cfg['trust_remote_code'] = 1\n", TRC, 1),
    ("setattr(cfg, 'trust_remote_code', True)\n", TRC, 1),
    ("class Args:\n    trust_remote_code: bool = True\n", TRC, 2),
    ("from transformers import pipeline\n"
     "pipeline('t', model_kwargs={'trust_remote_code': True})\n", TRC, 2),
    # torch.load
    ("import torch\ntorch.load('m.pt')\n", IMPLICIT, 2),
    ("import torch\ntorch.load('m.pt', weights_only=None)\n", IMPLICIT, 2),
    ("import torch\ntorch.load('m.pt', weights_only=False)\n", WO_FALSE, 2),
    ("import torch\ntorch.serialization.load('m.pt')\n", IMPLICIT, 2),
    ("import torch\nWO = False\ntorch.load('m.pt', weights_only=WO)\n", WO_FALSE, 3),
    ("import torch\nopts = {'weights_only': False}\ntorch.load('m.pt', **opts)\n", WO_FALSE, 3),
    # unpinned revision
    ("from transformers import AutoModel\nAutoModel.from_pretrained('org/m')\n", UNPINNED, 2),
    ("from transformers import AutoTokenizer\n"
     "AutoTokenizer.from_pretrained('org/m', revision='main')\n", UNPINNED, 2),
    ("from transformers import AutoModel\n"
     "AutoModel.from_pretrained('org/m', revision='deadbeef')\n", UNPINNED, 2),
    ("from transformers import AutoModel\n"
     f"AutoModel.from_pretrained('org/m', revision='{SHA.upper()}')\n", UNPINNED, 2),
    ("from transformers import pipeline\npipeline('text-classification', model='org/m')\n",
     UNPINNED, 2),
    ("from transformers import pipeline\npipeline('text-classification', 'org/m')\n",
     UNPINNED, 2),
    ("from huggingface_hub import snapshot_download\nsnapshot_download('org/m')\n", UNPINNED, 2),
    ("from huggingface_hub import hf_hub_download\n"
     "hf_hub_download(repo_id='org/m', filename='f', revision='v1.0')\n", UNPINNED, 2),
    ("from huggingface_hub import HfApi\napi = HfApi()\napi.snapshot_download('org/m')\n",
     UNPINNED, 3),
    ("from datasets import load_dataset\nload_dataset('org/d', revision='refs/pr/1')\n",
     UNPINNED, 2),
    ("from sentence_transformers import SentenceTransformer\nSentenceTransformer('org/m')\n",
     UNPINNED, 2),
    ("from diffusers import DiffusionPipeline\nDiffusionPipeline.from_pretrained('org/m')\n",
     UNPINNED, 2),
    ("import torch\ntorch.hub.load('pytorch/vision', 'resnet18')\n", UNPINNED, 2),
    ("import torch\ntorch.hub.load('pytorch/vision:v0.10.0', 'resnet18')\n", UNPINNED, 2),
    ("from peft import PeftModel\nPeftModel.from_pretrained(base, 'org/adapter')\n",
     UNPINNED, 2),
    ("def load(name):\n    from transformers import AutoModel\n"
     "    return AutoModel.from_pretrained(name)\n", UNPINNED, 3),
    # use_safetensors
    ("from transformers import AutoModel\n"
     f"AutoModel.from_pretrained('a/b', revision='{SHA}', use_safetensors=False)\n", NO_ST, 2),
    # pickle family
    ("import pickle\npickle.load(open('f', 'rb'))\n", PICKLE, 2),
    ("import pickle\npickle.loads(b'')\n", PICKLE, 2),
    ("import dill\ndill.load(fh)\n", PICKLE, 2),
    ("import cloudpickle\ncloudpickle.loads(b'')\n", PICKLE, 2),
    ("import joblib\njoblib.load('m.joblib')\n", PICKLE, 2),
    ("import pandas as pd\npd.read_pickle('df.pkl')\n", PICKLE, 2),
    ("import torch, dill\ntorch.load('m.pt', weights_only=True, pickle_module=dill)\n",
     PICKLE, 2),
    ("import numpy as np\nnp.load('a.npy', allow_pickle=True)\n", NP, 2),
    ("import numpy as np\nAP = True\nnp.load('a.npy', None, AP)\n", NP, 3),
    ("from tensorflow import keras\nkeras.models.load_model('m.keras', safe_mode=False)\n",
     KERAS, 2),
    ("import keras\nkeras.config.enable_unsafe_deserialization()\n", KERAS, 2),
    # HF_ENDPOINT
    ("import os\nos.environ['HF_ENDPOINT'] = 'http://mirror.corp'\n", HTTP, 2),
    ("import os\nos.environ.setdefault('HF_ENDPOINT', 'http://mirror.corp')\n", HTTP, 2),
    ("import os\nos.putenv('HF_ENDPOINT', 'http://mirror.corp')\n", HTTP, 2),
    ("from os import environ\nURL = 'http://10.0.0.5:8080'\nenviron['HF_ENDPOINT'] = URL\n",
     HTTP, 3),
    ("import subprocess\nsubprocess.run('HF_ENDPOINT=http://mirror python t.py', shell=True)\n",
     HTTP, 2),
    ("import os, subprocess\nsubprocess.run(['x'], env={'HF_ENDPOINT': 'http://m.corp'})\n",
     HTTP, 2),
    ("import os\nos.environ.update(HF_ENDPOINT='http://m.corp')\n", HTTP, 2),
    ("from huggingface_hub import HfApi\nHfApi(endpoint='http://m.corp')\n", HTTP, 2),
])
def test_positive(src: str, rule: str, line: int) -> None:
    assert (rule, line) in hits(src)


@pytest.mark.parametrize("src,rule", [
    ("from transformers import AutoModel\n"
     "AutoModel.from_pretrained('./m', trust_remote_code=False)", TRC),
    ("trc = False\nf(trust_remote_code=trc)\n", TRC),
    ("f(trust_remote_code=args.trust_remote_code)\n", TRC),
    ("import torch\ntorch.load('m.pt', weights_only=True)\n", IMPLICIT),
    ("import torch\nSAFE = True\ntorch.load('m.pt', weights_only=SAFE)\n", IMPLICIT),
    ("import torch\ntorch.load('m.pt', **{'weights_only': True})\n", IMPLICIT),
    ("import torch\nkw = dict(weights_only=True)\ntorch.load('m.pt', **kw)\n", IMPLICIT),
    ("import torch\ntorch.load('m.pt', **get_opts())\n", IMPLICIT),  # unknown: no claim
    ("import torch\ntorch.jit.load('m.pt')\n", IMPLICIT),
    ("from safetensors.torch import load_file\nload_file('m.safetensors')\n", IMPLICIT),
    ("import mylib\nmylib.load('x')\n", IMPLICIT),
    ("def load(x):\n    pass\nload('m.pt')\n", IMPLICIT),
    ("from transformers import AutoModel\n"
     f"AutoModel.from_pretrained('org/m', revision='{SHA}')\n", UNPINNED),
    ("from transformers import AutoModel\nREV = '" + SHA + "'\n"
     "def f():\n    return AutoModel.from_pretrained('org/m', revision=REV)\n", UNPINNED),
    ("from transformers import AutoModel\nAutoModel.from_pretrained('./ckpt')\n", UNPINNED),
    ("from transformers import AutoModel\nAutoModel.from_pretrained('/abs/ckpt')\n", UNPINNED),
    ("from transformers import AutoModel\nD = '../ckpt'\nAutoModel.from_pretrained(D)\n",
     UNPINNED),
    ("from pathlib import Path\nfrom transformers import AutoModel\n"
     "AutoModel.from_pretrained(Path(__file__).parent / 'm')\n", UNPINNED),
    ("import os\nfrom transformers import AutoModel\n"
     "AutoModel.from_pretrained(os.path.join(base, 'm'))\n", UNPINNED),
    ("from huggingface_hub import snapshot_download\nfrom transformers import AutoModel\n"
     f"p = snapshot_download('org/m', revision='{SHA}')\nAutoModel.from_pretrained(p)\n",
     UNPINNED),
    ("from transformers import AutoModel\n"
     "AutoModel.from_pretrained('org/m', local_files_only=True)\n", UNPINNED),
    ("from transformers import AutoModel\n"
     "AutoModel.from_pretrained('org/m', revision=args.revision)\n", UNPINNED),
    ("from transformers import AutoModel\nAutoModel.from_pretrained('org/m', **cfg)\n",
     UNPINNED),
    ("from datasets import load_dataset\nload_dataset('csv', data_files='t.csv')\n", UNPINNED),
    ("from transformers import pipeline\npipeline('text-classification', model=model)\n",
     UNPINNED),
    ("from transformers import pipeline\npipeline('sentiment-analysis')\n", UNPINNED),
    ("import torch\ntorch.hub.load('./hubrepo', 'm', source='local')\n", UNPINNED),
    (f"import torch\ntorch.hub.load('pytorch/vision:{SHA}', 'resnet18')\n", UNPINNED),
    ("import tempfile\nfrom transformers import AutoModel\n"
     "with tempfile.TemporaryDirectory() as d:\n    AutoModel.from_pretrained(d)\n", UNPINNED),
    ("from transformers import AutoModel\n"
     f"AutoModel.from_pretrained('a/b', revision='{SHA}', use_safetensors=True)\n", NO_ST),
    ("class LoadConfig:\n    use_safetensors: bool | None = None\n", NO_ST),
    ("f(use_safetensors=None)\n", NO_ST),
    ("import keras\nkeras.models.load_model('m.keras', safe_mode=None)\n", KERAS),
    ("import numpy as np\nnp.load('a.npy')\n", NP),
    ("import numpy as np\nnp.load('a.npy', allow_pickle=False)\n", NP),
    ("import keras\nkeras.models.load_model('m.keras')\n", KERAS),
    ("import keras\nkeras.models.load_model('m.keras', safe_mode=True)\n", KERAS),
    ("import os\nos.environ['HF_ENDPOINT'] = 'https://mirror.corp'\n", HTTP),
    ("import os\nos.environ['HF_ENDPOINT'] = 'http://127.0.0.1:8080'\n", HTTP),
    ("import os\nos.environ['HF_ENDPOINT'] = 'http://localhost:8080'\n", HTTP),
    ("import os\nos.environ['OTHER'] = 'http://mirror.corp'\n", HTTP),
    ('"""Docs: never set HF_ENDPOINT=http://mirror in production."""\n', HTTP),
    ("import json\njson.loads('{}')\n", PICKLE),
])
def test_negative(src: str, rule: str) -> None:
    assert rule not in rules_of(src)


def test_trust_remote_code_via_kwargs_is_reported_once_at_the_dict() -> None:
    src = f"""\
    from transformers import AutoModel
    kw = {{"trust_remote_code": True, "revision": "{SHA}"}}
    AutoModel.from_pretrained("org/m", **kw)
    """
    assert hits(src) == [(TRC, 2)]


def test_each_rule_has_fix_text_and_severity() -> None:
    from mlwarden.lint.rules import LINT_RULES

    for rid, r in LINT_RULES.items():
        assert rid.startswith("lint-") and rid == rid.lower()
        assert r.help and r.title
