"""model-manifest.yaml (atomic, locked, diff-friendly) and the content-addressed scan cache."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from mlwarden.manifest import Manifest, ManifestError, ManifestFile, ModelEntry, load, update
from mlwarden.report.model import Verdict
from mlwarden.scancache import ScanCache, scan_tree

SHA = "ab" * 32


def entry(commit: str = "c" * 40) -> ModelEntry:
    return ModelEntry(commit=commit, files={"b.json": ManifestFile(SHA, 2, "clean"),
                                            "a.safetensors": ManifestFile(SHA, 1)},
                      ref="main", ref_kind="branch")


def test_round_trip_and_sorted_stable_output(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    update(p, lambda m: m.with_model("z/model", entry()).with_model("a/model", entry()))
    text = p.read_text()
    assert text.index("a/model") < text.index("z/model")
    assert text.index("a.safetensors") < text.index("b.json")
    m = load(p)
    assert m.get("a/model") == entry()
    update(p, lambda m: m)
    assert p.read_text() == text  # rewriting changes nothing: clean diffs
    assert not [x for x in tmp_path.iterdir() if x.name.endswith(".tmp")]


@pytest.mark.parametrize("text,match", [
    ("models: [1, 2]", "models must be a mapping"),
    ("models:\n  a/b:\n    commit: xyz\n", "40 lower-case hex"),
    ("models:\n  a/b:\n    commit: " + "c" * 40 + "\n    files:\n      x:\n        sha256: no\n"
     "        size: 1\n", "64 lower-case hex"),
    ("version: 9\n", "unsupported manifest version"),
    ("models: {a: [\n", "invalid YAML"),
    ("!!python/object/apply:os.system ['true']\n", "invalid YAML"),
])
def test_bad_manifest_is_a_clean_error(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "m.yaml"
    p.write_text(text)
    with pytest.raises(ManifestError, match=match):
        load(p)


def _add(args: tuple[str, int]) -> None:
    path, i = args
    update(path, lambda m: m.with_model(f"org/m{i}", entry()))


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        pool.map(_add, [(str(p), i) for i in range(16)])
    assert sorted(load(p).models) == sorted(f"org/m{i}" for i in range(16))


def test_missing_manifest_is_empty_unless_required(tmp_path: Path) -> None:
    assert load(tmp_path / "none.yaml") == Manifest()
    with pytest.raises(ManifestError, match="not found"):
        load(tmp_path / "none.yaml", missing_ok=False)


# ------------------------------------------------------------------------ scan cache


def _tree(tmp_path: Path) -> tuple[Path, list[tuple[str, str]]]:
    import hashlib

    root = tmp_path / "tree"
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "bert"}')
    (root / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    files = [(p.name, hashlib.sha256(p.read_bytes()).hexdigest())
             for p in sorted(root.iterdir())]
    return root, files


def test_cache_hit_skips_the_scanner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, files = _tree(tmp_path)
    cache = ScanCache(tmp_path / "cache")
    first = scan_tree(root, files, "repo@x", cache)
    assert first.cached == frozenset()
    verdicts = {r.path: r.verdict for r in first.report.files}
    assert verdicts["repo@x/evil.pkl"] is Verdict.MALICIOUS

    import mlwarden.scan.engine as engine

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("scanner called on a cache hit")

    monkeypatch.setattr(engine, "scan_paths", boom)
    second = scan_tree(root, files, "repo@y", cache)
    assert second.cached == {"config.json", "evil.pkl"}
    assert {r.path.replace("@y", "@x"): r.verdict for r in second.report.files} == verdicts
    assert [f.rule for f in second.report.files[1].findings] == \
        [f.rule for f in first.report.files[1].findings]


def test_cache_key_includes_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, files = _tree(tmp_path)
    scan_tree(root, files, "r", ScanCache(tmp_path / "cache"))
    import mlwarden.scancache.cache as c

    monkeypatch.setattr(c, "scanner_version", lambda: "999.0")
    assert scan_tree(root, files, "r", ScanCache(tmp_path / "cache")).cached == frozenset()


def test_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    root, files = _tree(tmp_path)
    cache = ScanCache(tmp_path / "cache")
    scan_tree(root, files, "r", cache)
    cache.db.read("UPDATE scan_verdicts SET results = '{not json' RETURNING sha256")
    again = scan_tree(root, files, "r", cache)
    assert again.cached == frozenset()
    assert any(r.verdict is Verdict.MALICIOUS for r in again.report.files)


def _scan_job(args: tuple[str, str]) -> list[str]:
    root, cache = args
    import hashlib

    files = [(p.name, hashlib.sha256(p.read_bytes()).hexdigest())
             for p in sorted(Path(root).iterdir())]
    return [r.verdict.value for r in scan_tree(Path(root), files, "r", ScanCache(cache))
            .report.files]


def test_concurrent_cache_use_is_safe(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        outs = pool.map(_scan_job, [(str(root), str(tmp_path / "cache"))] * 8)
    assert all(o == outs[0] for o in outs)
    assert not list((tmp_path / "cache").rglob("*.tmp"))
