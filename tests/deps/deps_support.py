"""Helpers for the deps tests: CLI runner, flat-JSON accessors and package builders."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

from click.testing import CliRunner, Result

from mlwarden.cli.main import cli


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def flat(result: Result) -> list[dict[str, object]]:
    return json.loads(result.output)["findings"]


def rules_of(result: Result) -> set[str]:
    return {str(f["rule"]) for f in flat(result)}


# ----------------------------------------------------------------------------- archives

def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(directory: Path, name: str, files: dict[str, str], version: str = "1.0") -> Path:
    """A valid (pure-Python) wheel written with zipfile: files + dist-info."""
    dist = f"{name.replace('-', '_')}-{version}.dist-info"
    contents = {k: v.encode() for k, v in files.items()}
    contents[f"{dist}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: "
                                    f"{version}\n").encode()
    contents[f"{dist}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: "
                                 b"true\nTag: py3-none-any\n")
    record = [_record_line(k, v) for k, v in contents.items()] + [f"{dist}/RECORD,,"]
    contents[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in contents.items():
            zf.writestr(k, v)
    return path


def make_sdist(directory: Path, name: str, files: dict[str, str], version: str = "1.0") -> Path:
    top = f"{name}-{version}"
    path = directory / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for k, v in {"PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                     **files}.items():
            data = v.encode()
            info = tarfile.TarInfo(f"{top}/{k}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def install_into(site: Path, name: str, files: dict[str, str], version: str = "1.0") -> None:
    """Lay out an installed distribution (files + .dist-info with RECORD) in a site dir."""
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    record: list[str] = []
    for rel, text in files.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        record.append(_record_line(rel, text.encode()))
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    record.append(f"{dist.name}/METADATA,,")
    record.append(f"{dist.name}/RECORD,,")
    (dist / "RECORD").write_text("\n".join(record) + "\n")
