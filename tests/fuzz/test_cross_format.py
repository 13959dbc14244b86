"""Cross-format fuzzing in CI: mutants of real files of every format never make the scan
raise, hang or blow memory. Hypothesis picks the seed, the mutation stream and the wrapping;
the "ci" profile (tests/conftest.py) derandomises it. The long campaign is
tools/fuzz_campaign.py."""

from __future__ import annotations

import random
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import harness, mutate
from fuzz.seeds import LIGHT, Seed

# What each seed must be identified as, so that its mutants exercise the intended reader.
EXPECTED_FORMAT = {
    "pickle_p0": "pickle", "pickle_p2": "pickle", "pickle_p4": "pickle", "pickle_p5": "pickle",
    "npy_numeric": "npy", "npy_object": "npy", "npz": "npz", "safetensors": "safetensors",
    "gguf": "gguf", "onnx": "onnx", "onnx_external": "onnx", "savedmodel": "tf-savedmodel",
    "zip_pickle": "zip", "tar_pickle": "tar", "gzip_pickle": "gzip", "bz2_pickle": "bz2",
    "xz_pickle": "xz", "zlib_pickle": "zlib", "lz4_pickle": "lz4", "zstd_pickle": "zstd",
    "tokenizer_config": "json", "config_auto_map": "json", "modeling_py": "python",
    "chat_template": "jinja", "h5_keras": "keras-h5", "keras_v3": "keras",
}


def _run(seed: Seed, data: bytes, filename: str | None = None) -> harness.Outcome:
    with tempfile.TemporaryDirectory() as d:
        siblings = seed.siblings if filename in (None, seed.filename) else {}
        s = Seed(seed.name, filename or seed.filename, data, siblings)
        # The first lookup of an unknown name in a large package parses that package's
        # import closure once (bounded: up to ~1.3 s for torch, more on a loaded CI
        # machine); the budget still catches any hang or per-input blow-up.
        return harness.run_path(s.write(Path(d), data), budget=harness.TIME_BUDGET + 3.0)


def test_seeds_are_what_they_claim(light_seeds: dict[str, Seed]) -> None:
    from mlwarden.scan.engine import ScanOptions, scan_paths

    assert set(light_seeds) == set(LIGHT) == set(EXPECTED_FORMAT)
    for name, seed in light_seeds.items():
        with tempfile.TemporaryDirectory() as d:
            report = scan_paths([str(seed.write(Path(d)))], ScanOptions(workers=1))
        own = report.files[0]
        assert own.format == EXPECTED_FORMAT[name], (name, own.format, own.findings)
        assert own.verdict.value in ("clean", "suspicious", "malicious"), (name, own.findings)


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.sampled_from(sorted(LIGHT)), stream=st.integers(0, 2**32 - 1),
       wrap=st.integers(0, 9))
def test_mutants_never_break_the_scan(light_seeds: dict[str, Seed], which: str, stream: int,
                                      wrap: int) -> None:
    seed = light_seeds[which]
    rng = random.Random(stream)
    others = [s.data for s in light_seeds.values()]
    data, how = mutate.mutate(seed.data, rng, others)
    filename = None
    if wrap == 0:  # one in ten: inside an archive or a compressed stream
        data, filename = mutate.nest(data, seed.filename, rng)
    out = _run(seed, data, filename)
    assert out.kind is None, (which, how, out.kind, out.detail)


# Binary formats whose headers are mostly lengths and offsets.
# (keras_v3 is left to the random test: its HDF5 member makes each scan fork.)
_LENGTH_SEEDS = ("safetensors", "gguf", "npy_object", "npz", "zip_pickle", "onnx",
                 "savedmodel", "tar_pickle", "xz_pickle", "lz4_pickle", "zstd_pickle",
                 "pickle_p4")


@pytest.mark.parametrize("which", _LENGTH_SEEDS)
def test_every_length_field_at_every_extreme(light_seeds: dict[str, Seed], which: str) -> None:
    """Deterministic sweep: each 4/8-byte little-endian integer that equals a plausible
    length or offset of the file is set to 0, size-1, size+1, 2**31-1 and 2**63-1."""
    seed = light_seeds[which]
    data = seed.data
    size = len(data)
    failures = []
    for fmt, width, values in (("<I", 4, (0, size - 1, size + 1, 2**31 - 1, 2**32 - 1)),
                               ("<Q", 8, (0, size + 1, 2**31 - 1, 2**63 - 1, 2**64 - 1))):
        for pos in _length_positions(data, fmt, width)[:40]:
            for v in values:
                b = bytearray(data)
                struct.pack_into(fmt, b, pos, v)
                out = _run(seed, bytes(b))
                if out.kind is not None:
                    failures.append((fmt, pos, v, out.signature))
    assert not failures, failures[:5]


def _length_positions(data: bytes, fmt: str, width: int) -> list[int]:
    size = len(data)
    out = []
    for pos in range(size - width + 1):
        (v,) = struct.unpack_from(fmt, data, pos)
        if 8 <= v <= size:
            out.append(pos)
    return out
