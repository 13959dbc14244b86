"""``mlwarden convert``: pickle weights -> safetensors in an isolated subprocess.

The source is scanned first (a malicious file is refused, not converted). The worker runs
as ``python -I`` (no PYTHONPATH, no user site, no current directory on sys.path) with an
environment reduced to an allowlist: no tokens or cloud credentials, HOME and TMPDIR in a
private temporary directory, offline Hugging Face settings and proxies pointing at a
closed port. The output is written next to its destination, re-scanned, hashed and only
then renamed into place; the manifest records its provenance.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT")
NOWHERE = "http://127.0.0.1:9"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


class ConvertError(Exception):
    """The conversion was refused or failed; shown as one line."""


@dataclass(frozen=True)
class Conversion:
    source: Path
    source_sha256: str
    output: Path
    output_sha256: str
    output_size: int
    tensors: int
    verdict: str
    tool: str

    def provenance(self, at: str | None = None) -> dict[str, object]:
        return {"from": {"path": str(self.source), "sha256": self.source_sha256},
                "to": {"path": str(self.output), "sha256": self.output_sha256,
                       "size": self.output_size, "verdict": self.verdict},
                "tensors": self.tensors, "tool": self.tool,
                "method": "torch.load(weights_only=True) in an isolated subprocess",
                "at": at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def isolated_env(base: Mapping[str, str], home: Path) -> dict[str, str]:
    """Only harmless variables survive; everything network-related points nowhere."""
    env = {k: base[k] for k in ENV_ALLOW if k in base}
    env.update({
        "HOME": str(home), "TMPDIR": str(home), "PYTHONNOUSERSITE": "1",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "DISABLE_SAFETENSORS_CONVERSION": "1",
        "HTTP_PROXY": NOWHERE, "HTTPS_PROXY": NOWHERE, "ALL_PROXY": NOWHERE,
        "http_proxy": NOWHERE, "https_proxy": NOWHERE, "all_proxy": NOWHERE,
        "NO_PROXY": "", "no_proxy": "", "OMP_NUM_THREADS": "1",
    })
    return env


def output_name(src: Path) -> str:
    stem = src.name.rsplit(".", 1)[0]
    if stem.startswith("pytorch_model"):
        stem = "model" + stem[len("pytorch_model"):]
    return stem + ".safetensors"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            h.update(block)
    return h.hexdigest()


def _scan_verdict(path: Path) -> str:
    from mlwarden.scan.engine import ScanOptions, scan_paths

    return scan_paths([str(path)], ScanOptions(hash="never")).verdict.value


def convert_file(src: Path, dst: Path | None = None, timeout: float = 900,
                 allow_unscannable: bool = False) -> Conversion:
    if not src.is_file():
        raise ConvertError(f"{src}: not a file")
    dst = dst or src.with_name(output_name(src))
    if dst.exists():
        raise ConvertError(f"{dst} already exists; remove it or choose --out")
    verdict = _scan_verdict(src)
    if verdict == "malicious" or (verdict == "unscannable" and not allow_unscannable):
        raise ConvertError(f"{src}: scan verdict {verdict}; refusing to convert it "
                           "(run `mlwarden scan` for the findings)")
    src_sha = _sha256(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".mlwarden-convert-", dir=dst.parent))
    try:
        out = work / "out.safetensors"
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-m", "mlwarden.convert.worker", str(src.resolve()),
                 str(out)], env=isolated_env(os.environ, work), cwd=work,
                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ConvertError(f"{src}: conversion took longer than {timeout:.0f}s") from None
        lines = proc.stdout.strip().splitlines()
        try:
            info = json.loads(lines[-1]) if lines else {}
        except ValueError:
            info = {}
        if proc.returncode != 0 or "error" in info or not out.is_file():
            why = info.get("error") or (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConvertError(f"{src}: conversion failed: {why}")
        out_verdict = _scan_verdict(out)
        if out_verdict != "clean":
            raise ConvertError(f"{src}: the converted file scans {out_verdict}; not kept")
        out_sha = _sha256(out)
        size = out.stat().st_size
        os.chmod(out, 0o644)
        os.replace(out, dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tool = (f"mlwarden convert; torch {info.get('torch')}; "
            f"safetensors {info.get('safetensors')}")
    return Conversion(src, src_sha, dst, out_sha, size, int(info.get("tensors", 0)),
                      out_verdict, tool)


def find_pickle_weights(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
