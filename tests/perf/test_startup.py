"""`mlwarden scan` start-up: what a plain scan imports, and that output is unchanged.

Issue 2 measures whole processes; on a sharded checkpoint almost all of the time is
imports. These tests pin the lazy imports (rich only for terminals and colour, tarfile
only for tar content, the Python analysis only for repositories with code) and check
that the rich-free table is what rich draws, through the real CLI.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mlwarden.scan.engine import ScanOptions, scan_paths

# Runs the CLI, then records which modules the run imported.
_RUN = """
import json, sys
from mlwarden.cli.main import main
modules_file = sys.argv.pop(1)
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
with open(modules_file, "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""

# Imported only when a scan meets content that needs them.
_LAZY = ("rich", "tarfile", "mlwarden.scan.remote_code", "mlwarden.behaviour", "py7zr",
         "zstandard", "lz4", "multiprocessing", "concurrent.futures")


def _cli(tmp_path: Path, args: list[str], cwd: Path | None = None, **env: str
         ) -> tuple[int, str, set[str]]:
    modules_file = tmp_path / "modules.json"
    environ = {k: v for k, v in os.environ.items()
               if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "UNICODE_VERSION")}
    proc = subprocess.run([sys.executable, "-c", _RUN, str(modules_file), *args],
                          capture_output=True, text=True, env={**environ, **env}, timeout=120,
                          cwd=cwd)
    assert proc.stderr == ""
    record = json.loads(modules_file.read_text())
    return record["code"], proc.stdout, set(record["modules"])


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sharded PyTorch checkpoint written by torch itself, with its index."""
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("sharded")
    weight_map = {}
    for s in range(3):
        name = f"pytorch_model-{s + 1:05d}-of-00003.bin"
        torch.save({f"layers.{s}.weight": torch.zeros(16)}, d / name)
        weight_map[f"layers.{s}.weight"] = name
    (d / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))
    return d


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_piped_scan_of_a_checkpoint_imports_only_what_it_needs(tmp_path: Path,
                                                               sharded: Path) -> None:
    code, out, modules = _cli(tmp_path, ["scan", "--verbose", str(sharded)])
    assert code == 0
    assert out.count("pytorch-zip") == 3 and "4 files: 4 clean" in out
    assert "┏━━" in out and "\x1b[" not in out
    assert "mlwarden.scan.readers.zip_file" in modules  # the scan did run
    loaded = [name for name in _LAZY if _loaded(modules, name)]
    assert loaded == []


def test_rich_free_table_matches_rich_through_the_cli(tmp_path: Path, sharded: Path) -> None:
    """TTY_COMPATIBLE=0: rich still draws without colour, but plain_table stands aside."""
    mal = tmp_path / "m"  # scanned as "m": short paths keep the table within 200 columns
    mal.mkdir()
    # An unknown class that is only referenced: suspicious, with a finding that fits.
    (mal / "ref.pkl").write_bytes(b"\x80\x02cmypkg.models\nNet\nq\x00.")
    (mal / "ok.pkl").write_bytes(pickle.dumps({"a": [1.0, 2.0]}))
    for target in (sharded, mal):
        name = "m" if target == mal else str(target)
        code_p, plain, plain_modules = _cli(tmp_path, ["scan", name, "-v"], tmp_path)
        code_r, drawn, rich_modules = _cli(tmp_path, ["scan", name, "-v"], tmp_path,
                                           TTY_COMPATIBLE="0")
        assert not _loaded(plain_modules, "rich") and _loaded(rich_modules, "rich")
        assert code_p == code_r
        elapsed = re.compile(r"in \d+\.\d\ds\n\Z")
        assert elapsed.sub("", plain) == elapsed.sub("", drawn)
    assert code_p == 3 and "pickle-unknown-global mypkg.models.Net" in plain


def test_repository_code_and_tar_content_still_load_their_analysers(tmp_path: Path) -> None:
    """The lazily imported modules still run when content needs them."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "hubconf.py").write_text("from .model import build\n")
    (repo / "model.py").write_text("def build():\n    return 1\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = pickle.dumps([1, 2, 3])
        info = tarfile.TarInfo("inner/data.pkl")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (repo / "bundle.tar").write_bytes(buf.getvalue())

    report = scan_paths([str(repo)], ScanOptions(hash="never"))
    by_path = {f.path: f for f in report.files}
    assert by_path[f"{repo}/bundle.tar"].format == "tar"
    assert by_path[f"{repo}/bundle.tar!inner/data.pkl"].format == "pickle"
    rules = {f.rule for fr in report.files for f in fr.findings}
    assert "repo-remote-code" in rules  # hubconf.py and its relative import were followed
    summary = next(f.message for fr in report.files for f in fr.findings
                   if f.rule == "repo-remote-code")
    assert "hubconf.py" in summary and "model.py" in summary
