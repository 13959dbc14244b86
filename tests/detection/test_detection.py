"""The detection benchmark's corpus and mlwarden's side of it (no peer scanner needed).

mlwarden must judge every malicious sample malicious and every benign sample clean, except
the entries the benchmark lists as known gaps (the coordinator's to-do list) and the
documented acceptable-suspicious benign files, which must never be malicious.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "detection.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlwarden_detection_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


det = _load()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, dict]:  # type: ignore[type-arg]
    work = tmp_path_factory.mktemp("detection")
    samples = det.build_corpus(work)
    outcomes = {s.name: det.mlwarden_inprocess(work / "corpus" / s.path) for s in samples}
    return work, samples, outcomes


def test_corpus_covers_every_landscape_family(run) -> None:  # type: ignore[no-untyped-def]
    work, samples, _ = run
    names = {s.name for s in samples}
    classes = {s.cls for s in samples}
    assert set(det.MALICIOUS_CLASSES) <= classes and set(det.BENIGN_CLASSES) <= classes
    for required in (
        "gap-pip.main", "gap-pkgutil.resolve_name", "gap-multiprocessing.util.spawnv_passfds",
        "gap-asyncio.unix_events._UnixSubprocessTransport._start", "nested-pickle-loads",
        "memo-confusion", "stack-global-from-string", "dotted-logging-os-system",
        "obj-call-popped", "frame-divergence-described", "frame-divergence-cpython311",
        "broken-stream-nullifai", "extension-pytorch_model.bin", "extension-weights.model",
        "zip-local-name-mismatch", "zip-flag-0x1-local", "zip-bad-crc",
        "torch-7z-recompressed", "torch-legacy-pickle-1", "torch-legacy-pickle-5",
        "joblib-payload-after-buffer", "joblib-compressed-lz4", "npy-object-array",
        "pickle-in-zip", "pickle-in-tar", "keras-lambda-v3", "h5-lambda",
        "keras-enable-unsafe", "gguf-ssti", "onnx-traversal", "tf-pyfunc",
        "safetensors-overlap", "safetensors-huge-header", "repo-env-exfiltration",
        # benign
        "torchscript", "torch-state-dict-legacy", "transformers-pytorch-model-bin",
        "transformers-model-safetensors", "benign-forest.joblib.z", "sklearn-joblib-xz",
        "benign-strings.npy", "benign-containers_p0.pkl", "benign-containers_p5.pkl",
        "onnx-benign", "gguf-chat-template-llama2", "keras-benign", "h5-benign",
        "torch-zip-bad-crc-jina-style", "torch-full-module-zip", "repo-benign-phi",
    ):
        assert required in names, required
    assert sum(s.malicious for s in samples) >= 150
    assert sum(not s.malicious for s in samples) >= 40
    manifest = json.loads((work / "corpus.json").read_text())
    assert len(manifest) == len(samples)
    assert all((work / "corpus" / s.path).exists() for s in samples)


def test_gap_lists_name_real_samples(run) -> None:  # type: ignore[no-untyped-def]
    _, samples, _ = run
    names = {s.name for s in samples}
    assert set(det.KNOWN_GAPS) <= names
    assert set(det.ACCEPTABLE_SUSPICIOUS) <= names
    benign = {s.name for s in samples if not s.malicious}
    assert set(det.ACCEPTABLE_SUSPICIOUS) <= benign


def test_mlwarden_catches_every_malicious_sample(run) -> None:  # type: ignore[no-untyped-def]
    _, samples, outcomes = run
    missed = {s.name: (outcomes[s.name].result, outcomes[s.name].detail) for s in samples
              if s.malicious and s.name not in det.KNOWN_GAPS
              and outcomes[s.name].result != "alarm"}
    assert not missed


def test_mlwarden_flags_no_benign_sample(run) -> None:  # type: ignore[no-untyped-def]
    _, samples, outcomes = run
    flagged = {}
    for s in samples:
        if s.malicious:
            continue
        o = outcomes[s.name]
        assert o.result != "alarm", (s.name, o.detail)  # never malicious, gap or not
        if s.name in det.ACCEPTABLE_SUSPICIOUS:
            assert o.result in ("clean", "warn"), (s.name, o.detail)
        elif s.name not in det.KNOWN_GAPS and o.result != "clean":
            flagged[s.name] = (o.result, o.detail)
    assert not flagged


def test_nothing_was_executed(run) -> None:  # type: ignore[no-untyped-def]
    work, _, _ = run
    assert not (work / "marker" / "NEVER-CREATED").exists()


def test_cli_runner_agrees_with_the_api(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    work, samples, outcomes = run
    by = {s.name: s for s in samples}
    for name in ("gap-pip.main", "zip-bad-crc", "benign-logreg.pkl", "repo-benign-falcon"):
        o = det.run_mlwarden(work / "corpus" / by[name].path, 60.0, tmp_path)
        assert o.result == outcomes[name].result, (name, o)
        assert o.seconds > 0


def test_peer_output_parsing() -> None:
    out = "x\n----------- SCAN SUMMARY -----------\nScanned files: 1\nInfected files: 1\n" \
          "Suspicious globals: 2\nDangerous globals: 3\n"
    assert det._summary_int(out, "Dangerous globals") == 3
    assert det._summary_int(out, "Scanned files") == 1
    assert det._summary_int(out, "Missing") is None
    text = '{"severity": "LIKELY_SAFE"}\n{\n "severity": "OVERTLY_MALICIOUS"\n}\ngarbage'
    assert [o["severity"] for o in det._json_objects(text)] == ["LIKELY_SAFE",
                                                                "OVERTLY_MALICIOUS"]


def test_report_rates_and_head_to_head() -> None:
    S, Out = det.Sample, det.Outcome
    samples = [S("a", "denylist-gap", True, "a"), S("b", "denylist-gap", True, "b"),
               S("c", "benign-pickle", False, "c"), S("d", "benign-pickle", False, "d")]
    res = {
        "a": {"mlwarden": Out("alarm", 1.0), "fickling": Out("alarm", 2.0)},
        "b": {"mlwarden": Out("alarm", 1.0), "fickling": Out("skipped", 0.0)},
        "c": {"mlwarden": Out("clean", 1.0), "fickling": Out("alarm", 2.0)},
        "d": {"mlwarden": Out("warn", 1.0), "fickling": Out("error", 2.0)},
    }
    t = det.Totals.of(samples, res, "fickling")
    assert (t.ran_malicious, t.caught, t.ran_benign, t.false_alarms, t.errors, t.ran) == (
        1, 1, 2, 1, 1, 3)
    m = det.Totals.of(samples, res, "mlwarden")
    assert (m.caught, m.noise, m.seconds) == (2, 1, 4.0)
    text = det.render(samples, res, ["mlwarden", "fickling"])
    assert "denylist-gap" in text and "2/2" in text and "1/1" in text
    assert "fickling    caught 1/1 vs 1/1" in text  # head to head on what fickling ran
    assert "[NEW] d (benign-pickle, benign): warn" in text
    assert det.stratified(samples)[:2] == [samples[0], samples[2]]
