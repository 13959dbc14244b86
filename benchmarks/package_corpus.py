"""Rebuild the package-inspection corpora (kept out of git under ``bench-work/packages``).

    python benchmarks/package_corpus.py benign [--top 300]   # latest wheel + sdist from PyPI
    python benchmarks/package_corpus.py malicious            # harmless re-creations, generated

Benign: the ``--top`` most downloaded projects of ``deps/data/top-pypi-packages.tsv``. The
wheel (this interpreter's platform, else any) is fetched with ``pip download --no-deps
--only-binary :all:``. ``pip download`` of an sdist runs the sdist's build backend to prepare
metadata (and fails for maturin/meson projects without their toolchains), so the sdist of
the same latest version is taken from the same index's PEP 691 JSON page instead and checked
against the sha256 the index publishes. Nothing downloaded is built, installed or imported.

Malicious: ``benchmarks/malicious_packages.py`` writes each re-created technique as an sdist
or wheel; no live malware is fetched or run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-work" / "packages"
TOP = ROOT / "src" / "mlwarden" / "deps" / "data" / "top-pypi-packages.tsv"
INDEX = "https://pypi.org/simple"


def top_names(n: int) -> list[str]:
    names: list[str] = []
    for line in TOP.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        names.append(line.split("\t")[-1].strip())
        if len(names) >= n:
            break
    return names


def _pip_wheel(name: str, dest: Path) -> str | None:
    before = set(dest.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--no-cache-dir", "--disable-pip-version-check", "-q", "-d", str(dest),
           "--index-url", INDEX, name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    new = sorted(p.name for p in set(dest.iterdir()) - before)
    if proc.returncode != 0 or not new:
        return None
    return new[0]


def _json_page(name: str) -> dict[str, object]:
    req = urllib.request.Request(f"{INDEX}/{name}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        data: dict[str, object] = json.load(resp)
    return data


def _sdist(name: str, dest: Path, version: str | None) -> str | None:
    page = _json_page(name)
    files = [f for f in page.get("files", []) if isinstance(f, dict)]  # type: ignore[union-attr]
    sdists = [f for f in files if str(f["filename"]).endswith((".tar.gz", ".zip"))
              and not f.get("yanked")]
    if version is not None:
        sdists = [f for f in sdists if _sdist_version(str(f["filename"])) == version]
    if not sdists:
        return None
    f = sdists[-1]
    target = dest / str(f["filename"])
    if not target.exists():
        with urllib.request.urlopen(str(f["url"]), timeout=600) as resp:
            data = resp.read()
        want = dict(f.get("hashes", {})).get("sha256")
        if want and hashlib.sha256(data).hexdigest() != want:
            raise RuntimeError(f"{name}: sha256 mismatch for {target.name}")
        tmp = target.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target.name


def _sdist_version(filename: str) -> str | None:
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename

    try:
        return str(parse_sdist_filename(filename)[1])
    except (InvalidSdistFilename, ValueError):
        return None


def _version_of(wheel: str | None) -> str | None:
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        return str(parse_wheel_filename(wheel)[1]) if wheel else None
    except (InvalidWheelFilename, ValueError):
        return None


def fetch_benign(n: int, jobs: int) -> None:
    wheels, sdists = WORK / "benign" / "wheel", WORK / "benign" / "sdist"
    wheels.mkdir(parents=True, exist_ok=True)
    sdists.mkdir(parents=True, exist_ok=True)
    manifest_path = WORK / "benign" / "manifest.json"
    manifest: dict[str, dict[str, str | None]] = (
        json.loads(manifest_path.read_text()) if manifest_path.exists() else {})

    def one(name: str) -> tuple[str, dict[str, str | None]]:
        if name in manifest and (manifest[name].get("wheel") or manifest[name].get("sdist")):
            return name, manifest[name]
        wdir = wheels / name
        wdir.mkdir(exist_ok=True)
        wheel = _pip_wheel(name, wdir)
        sdir = sdists / name
        sdir.mkdir(exist_ok=True)
        try:
            sdist = _sdist(name, sdir, _version_of(wheel))
        except (OSError, RuntimeError, ValueError) as exc:
            print(f"{name}: sdist: {exc}", file=sys.stderr)
            sdist = None
        print(f"{name}: wheel={wheel} sdist={sdist}", flush=True)
        return name, {"wheel": wheel, "sdist": sdist}

    with ThreadPoolExecutor(jobs) as pool:
        for name, entry in pool.map(one, top_names(n)):
            manifest[name] = entry
            manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    b = sub.add_parser("benign")
    b.add_argument("--top", type=int, default=300)
    b.add_argument("--jobs", type=int, default=4)
    sub.add_parser("malicious")
    args = ap.parse_args()
    if args.what == "benign":
        fetch_benign(args.top, args.jobs)
    else:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from malicious_packages import build_all

        out = build_all(WORK / "malicious")
        print(f"{len(out)} malicious packages in {WORK / 'malicious'}")


if __name__ == "__main__":
    main()
