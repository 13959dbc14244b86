"""Scanning the malicious corpus executes nothing: audit hooks in a subprocess see no
exec/compile of payloads, no os.system, subprocess, socket or payload-module import, and the
marker file is never created."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corpus.pickles import DENYLIST_GAPS, malicious_samples

_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[3])
from mlwarden.scan.engine import scan_paths, ScanOptions
import mlwarden.scan.readers.pickle_file, mlwarden.scan.readers.numpy_file
# Warm-up on the same corpus: our own lazy imports happen here (the marker check below
# still covers this run); the audited run must then see no code execution at all.
scan_paths([sys.argv[1]], ScanOptions(workers=1))
events = []
WATCH = {"exec", "compile", "os.system", "subprocess.Popen", "socket.connect",
         "os.exec", "os.spawn", "os.posix_spawn", "ctypes.dlopen", "import", "open",
         "pickle.find_class", "marshal.loads", "webbrowser.open"}
def hook(event, args):
    if event in WATCH:
        if event == "open" and not str(args[0]).endswith("MARKER"):
            return
        events.append([event, str(args[0])[:200] if args else ""])
sys.addaudithook(hook)
report = scan_paths([sys.argv[1]], ScanOptions(workers=1))
verdicts = {f.path: f.verdict.value for f in report.files}
print(json.dumps({"events": events, "verdicts": verdicts}))
"""


def test_scanning_the_corpus_executes_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "w.pkl").write_bytes(b"\x80\x04N.")
    marker = tmp_path / "MARKER"
    for name, data in malicious_samples(str(marker)).items():
        (corpus / f"{name}.bin").write_bytes(data)
    tests_dir = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(corpus), "", str(tests_dir),
                           str(warm)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    payload_modules = {m.split(".")[0] for m, _n, _k in DENYLIST_GAPS} | {"evil_pkg"}
    bad = [e for e in out["events"] if e[0] != "import" or e[1].split(".")[0]
           in payload_modules]
    assert not bad, bad
    assert not marker.exists()
    assert out["verdicts"] and set(out["verdicts"].values()) == {"malicious"}
