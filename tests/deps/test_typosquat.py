"""Typosquat scoring: each technique, the popular-name exemption, and the labelled
benchmark's precision/recall thresholds against the naive baseline."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mlwarden.deps import malicious, typosquat

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "typosquat.py"


@pytest.mark.parametrize("name,target,technique", [
    ("reqeusts", "requests", "transposition"),
    ("colourama", "colorama", "edit"),
    ("python3-dateutil", "python-dateutil", "affix"),
    ("python-requests", "requests", "affix"),
    ("jeIlyfish", "jellyfish", "homoglyph"),
    ("pi11ow", "pillow", "homoglyph"),
    ("setup-tools", "setuptools", "separator"),
    ("huggingfacehub", "huggingface-hub", "separator"),
    ("tranformers", "transformers", "edit"),
])
def test_techniques(name: str, target: str, technique: str) -> None:
    squat = typosquat.check(name)
    assert squat is not None and (squat.target, squat.technique) == (target, technique)
    assert target in squat.describe()


@pytest.mark.parametrize("name", [
    "numba", "scapy", "attr", "jwt", "boto", "pyaml", "torchx", "httpie",  # popular neighbours
    "Python_DateUtil", "typing_extensions",  # PEP 503 spellings of popular names
    "x-transformers", "pytorch-triton", "pillow-simd", "niquests", "requests3", "six",
])
def test_legitimate_names(name: str) -> None:
    assert typosquat.check(name) is None


def test_known_malicious_names_and_releases() -> None:
    assert malicious.lookup("torchtriton") is not None
    assert malicious.lookup("JeIlyfish") is not None
    ultra = malicious.lookup("ultralytics")
    assert ultra is not None
    assert ultra.matches("8.3.41") is True and ultra.matches("8.3.40") is False
    assert ultra.matches(None) is None
    assert malicious.lookup("requests") is None


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_typosquat", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_thresholds(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    full, only, naive = bench.run()
    assert full.precision >= 0.95 and full.recall >= 0.95
    assert only.precision >= 0.95 and only.recall >= 0.85
    assert naive.precision < 0.6  # the contrast: edit distance alone flags popular neighbours
    assert full.precision > naive.precision
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "naive Levenshtein" in out
