# ruff: noqa: E501 - one payload per line reads best
"""Remote code against the real loader: transformers' from_pretrained(trust_remote_code=True)
runs each repository in the sandboxed oracle (tests/soundness/oracle.py); whatever it finds
malicious, the scanner must call malicious too (issue 11, remote code), and the benign
repository must load clean and scan clean."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from soundness.oracle import MARKER, Oracle, compare

_CONFIG = "from transformers import PretrainedConfig\n\nclass XConfig(PretrainedConfig):\n    model_type = 'x-remote'\n"
_TOUCH = f"touch {MARKER}"

CASES = {
    "methodcaller": f"import operator, os\noperator.methodcaller('system', '{_TOUCH}')(os)\n",
    "resolve-name": f"import pkgutil\npkgutil.resolve_name('os:system')('{_TOUCH}')\n",
    "logging-factory": f"import logging.config\ntry:\n    logging.config.dictConfig({{'version': 1, 'handlers': {{'h': {{'()': 'subprocess.call', 'args': ['touch', '{MARKER}']}}}}}})\nexcept Exception:\n    pass\n",
    "type-hints": f"import typing\nclass A:\n    x: \"__import__('os').system('{_TOUCH}')\"\ntyping.get_type_hints(A)\n",
    "timeit": f"import timeit\ntimeit.timeit(\"__import__('os').system('{_TOUCH}')\", number=1)\n",
    "interpreter": f"import code\ncode.InteractiveInterpreter().runsource(\"__import__('os').system('{_TOUCH}')\")\n",
    "namespace-walk": f"import os\nfor n in dir(os):\n    if n.startswith('sys') and n.endswith('tem'):\n        getattr(os, n)('{_TOUCH}')\n",
    "libc": f"import ctypes\nctypes.CDLL(None).system(b'{_TOUCH}')\n",
    "exec-constant": f"exec(\"open('{MARKER}', 'w').close()\")\n",
    "nested-pickle": f"import pickle\npickle.loads(b\"cos\\nsystem\\n(S'{_TOUCH}'\\ntR.\")\n",
    "popen-wrapper": f"import os\nos.popen('{_TOUCH}').read()\n",
    "obfuscated-dict": f"import os\nos.__dict__['sys' + 'tem']('{_TOUCH}')\n",
}


# Each load costs a transformers import in the sandbox (~10-30 s on 2 cores): CI runs a
# slice covering each class; MLWARDEN_FULL_DIFF=1 runs every case.
_CI = ("methodcaller", "type-hints", "namespace-walk", "libc", "exec-constant", "nested-pickle")
_RUN = sorted(CASES) if os.environ.get("MLWARDEN_FULL_DIFF") else list(_CI)


def _repo(root: Path, payload: str) -> Path:
    root.mkdir(parents=True)
    (root / "configuration_x.py").write_text(payload + "\n" + _CONFIG)
    (root / "config.json").write_text(json.dumps({
        "model_type": "x-remote", "auto_map": {"AutoConfig": "configuration_x.XConfig"}}))
    return root


@pytest.fixture(scope="module")
def remote_oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    with Oracle(loaders=("transformers",), scratch=tmp_path_factory.mktemp("oracle"),
                timeout=180) as o:
        yield o


@pytest.mark.parametrize("case", _RUN)
def test_loader_runs_it_and_the_scanner_says_malicious(tmp_path: Path, remote_oracle: Oracle,
                                                       case: str) -> None:
    repo = _repo(tmp_path / case, CASES[case])
    result = compare(repo, oracle=remote_oracle)
    assert result.malicious_loaders, f"{case}: the real loader ran nothing bad: {result.oracle}"
    assert result.divergence is None, (case, result.scanner)
    assert result.scanner.verdict == "malicious", (case, result.scanner)


def test_benign_remote_code_loads_and_scans_clean(tmp_path: Path, remote_oracle: Oracle) -> None:
    repo = _repo(tmp_path / "benign", "import math\nSCALE = math.sqrt(2)\n")
    result = compare(repo, oracle=remote_oracle)
    assert not result.malicious_loaders and result.oracle[0].status == "ok", result.oracle
    assert result.scanner.verdict == "clean", result.scanner
