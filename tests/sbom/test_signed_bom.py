"""`mlwarden sbom --sign` and `mlwarden verify --sbom BOM --signature SIG TARGET`: a signed
ML-BOM verifies a deployment directory, a store commit and a path inside a container image;
one changed byte, an added, missing or linked file, or a BOM changed after signing fail."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from corpus.pki import Pki, make_pki

COMMIT = "a" * 40


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("bom-pki"))


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "mlwarden", *map(str, args)], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def make_model(d: Path) -> Path:
    (d / "tok").mkdir(parents=True)
    (d / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    (d / "model.safetensors").write_bytes(_safetensors())
    (d / "tok" / "tokenizer.json").write_text('{"version": "1.0"}')
    return d


def _safetensors() -> bytes:
    import numpy as np
    from safetensors.numpy import save

    return save({"w": np.arange(64, dtype=np.float32).reshape(8, 8)})


@pytest.fixture
def signed(tmp_path: Path, keys: Pki) -> tuple[Path, Path, Path]:
    model = make_model(tmp_path / "deploy")
    bom = tmp_path / "bom.cdx.json"
    res = cli("sbom", model, "--name", "acme/m", "--revision", COMMIT, "-o", bom, "--sign",
              "--key", keys.key)
    assert res.returncode == 0, res.stderr
    return model, bom, Path(f"{bom}.sig")


def verify(bom: Path, target: str | Path, keys: Pki, *extra: str | Path) -> \
        tuple[int, dict, str]:
    res = cli("verify", "--sbom", bom, "--public-key", keys.pub, "--format", "json", *extra,
              target)
    doc = json.loads(res.stdout) if res.stdout.startswith("{") else {}
    return res.returncode, doc, res.stderr


def bad(doc: dict) -> dict[str, set[str]]:
    return {r["path"]: {f["rule"] for f in r["findings"]} for r in doc["files"]
            if r["verdict"] != "clean"}


def test_model_signing_verifies_the_bom_signature(signed: tuple[Path, Path, Path],
                                                  keys: Pki) -> None:
    _, bom, sig = signed
    exe = shutil.which("model_signing")
    cmd = [exe] if exe else [sys.executable, "-m", "model_signing"]
    done = subprocess.run([*cmd, "verify", "key", str(bom), "--signature", str(sig),
                           "--public_key", str(keys.pub)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    bom.write_text(bom.read_text().replace("acme", "evil"))
    done = subprocess.run([*cmd, "verify", "key", str(bom), "--signature", str(sig),
                           "--public_key", str(keys.pub)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0


def test_signed_bom_verifies_a_deployment_and_one_byte_fails_it(
        signed: tuple[Path, Path, Path], keys: Pki) -> None:
    model, bom, _ = signed
    code, doc, err = verify(bom, model, keys)
    assert code == 0, err
    assert "verified" in err and doc["summary"]["verdict"] == "clean"
    w = model / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[100] ^= 1
    w.write_bytes(bytes(data))
    code, doc, err = verify(bom, model, keys)
    assert code == 1 and "NOT VERIFIED" in err
    assert bad(doc) == {f"{model}/model.safetensors": {"sbom-file-mismatch"}}


def test_extra_missing_and_linked_files(signed: tuple[Path, Path, Path], keys: Pki) -> None:
    model, bom, _ = signed
    (model / "tok" / "tokenizer.json").unlink()
    (model / "extra.pkl").write_bytes(b"\x80\x04K\x01.")
    (model / "link.json").symlink_to(model / "config.json")
    code, doc, _ = verify(bom, model, keys)
    assert code == 1
    assert bad(doc) == {f"{model}/tok/tokenizer.json": {"sbom-file-missing"},
                        f"{model}/extra.pkl": {"sbom-file-extra"},
                        f"{model}/link.json": {"sbom-file-special"}}


def test_untrusted_or_altered_bom_is_not_used(signed: tuple[Path, Path, Path], keys: Pki,
                                              tmp_path: Path) -> None:
    model, bom, _ = signed
    res = cli("verify", "--sbom", bom, "--public-key", keys.other_pub, "--format", "json", model)
    assert res.returncode == 1
    assert bad(json.loads(res.stdout)) == {str(bom): {"sbom-signature"}}
    doc = json.loads(bom.read_text())
    doc["metadata"]["component"]["components"][0]["hashes"][0]["content"] = "0" * 64
    bom.write_text(json.dumps(doc))
    code, out, _ = verify(bom, model, keys)
    assert code == 1 and bad(out) == {str(bom): {"sbom-signature"}}
    res = cli("verify", "--sbom", bom, model)
    assert res.returncode == 4 and "trust anchor" in res.stderr
    res = cli("sbom", model, "--sign", "--key", keys.key)
    assert res.returncode == 4 and "--output" in res.stderr


def test_a_store_commit(signed: tuple[Path, Path, Path], keys: Pki, tmp_path: Path) -> None:
    from mlwarden.registry.importer import import_directory
    from mlwarden.store import Store

    model, bom, _ = signed
    store = Store.open(tmp_path / "store")
    commit = import_directory(store, model, "acme/m", approve=True).commit
    assert commit is not None
    entries = {e.path: e.sha256 for e in store.files("acme/m", commit.id)}
    store.close()
    code, doc, err = verify(bom, "acme/m@main", keys, "--store", tmp_path / "store")
    assert code == 0, err
    blob = next((tmp_path / "store").rglob(entries["config.json"][2:]))  # the stored blob
    os.chmod(blob, 0o644)
    blob.write_text('{"model_type": "evil"}')
    code, doc, _ = verify(bom, "acme/m@main", keys, "--store", tmp_path / "store")
    assert code == 1
    assert bad(doc) == {"acme/m@main/config.json": {"sbom-file-mismatch"}}
    res = cli("verify", "--sbom", bom, "--public-key", keys.pub, "acme/m@main")
    assert res.returncode == 4 and "--store" in res.stderr


# ----------------------------------------------------------------------------- images


def layer(files: dict[str, bytes | None], gz: bool = True) -> bytes:
    """A layer tar: bytes are files, None a whiteout (``.wh.NAME``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        dirs: set[str] = set()
        for name, data in files.items():
            parts = name.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    tf.addfile(info)
            if data is None:
                info = tarfile.TarInfo("/".join([*parts[:-1], ".wh." + parts[-1]]))
                tf.addfile(info, io.BytesIO(b""))
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw) if gz else raw


def oci_layout(root: Path, layers: list[bytes]) -> Path:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return h

    config = put(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}')
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": f"sha256:{config}", "size": 10},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{put(x)}", "size": len(x)} for x in layers]}).encode()
    m = put(manifest)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{m}",
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    return root


def test_a_path_inside_an_oci_image(signed: tuple[Path, Path, Path], keys: Pki,
                                    tmp_path: Path) -> None:
    model, bom, _ = signed
    files = {f"models/m/{p.relative_to(model).as_posix()}": p.read_bytes()
             for p in sorted(model.rglob("*")) if p.is_file()}
    base = layer({"etc/os-release": b"ID=test\n", **files,
                  "models/m/old.bin": b"left over"})
    top = layer({"models/m/old.bin": None, "usr/bin/app": b"#!/bin/sh\n"}, gz=False)
    image = oci_layout(tmp_path / "image", [base, top])
    code, doc, err = verify(bom, f"oci:{image}:v1!/models/m", keys)
    assert code == 0, err
    assert "image sha256:" in json.dumps(doc)
    # A later layer that swaps the weights is caught.
    evil = layer({"models/m/model.safetensors": b"swapped"})
    image2 = oci_layout(tmp_path / "image2", [base, top, evil])
    code, doc, _ = verify(bom, f"oci:{image2}!/models/m", keys)
    assert code == 1 and bad(doc) == {f"oci:{image2}!/models/m/model.safetensors":
                                      {"sbom-file-mismatch"}}
    # A layer blob changed on disk no longer matches its digest: refused as bad input.
    victim = next(p for p in (image / "blobs" / "sha256").iterdir()
                  if p.read_bytes() == top)
    victim.write_bytes(layer({"models/m/x": b"x"}, gz=False))
    res = cli("verify", "--sbom", bom, "--public-key", keys.pub, f"oci:{image}!/models/m")
    assert res.returncode == 4 and "does not match its digest" in res.stderr


def test_a_path_inside_a_docker_archive(signed: tuple[Path, Path, Path], keys: Pki,
                                        tmp_path: Path) -> None:
    model, bom, _ = signed
    files = {f"srv/model/{p.relative_to(model).as_posix()}": p.read_bytes()
             for p in sorted(model.rglob("*")) if p.is_file()}
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tf:
        for name, data in (("l1/layer.tar", layer(files, gz=False)),
                           ("l2/layer.tar", layer({"srv/model/added.py": b"import os\n"},
                                                  gz=False)),
                           ("manifest.json", json.dumps([{
                               "Config": "cfg.json", "RepoTags": ["acme/app:1"],
                               "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode()),
                           ("cfg.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    code, doc, _ = verify(bom, f"docker-archive:{archive}:acme/app:1!/srv/model", keys)
    assert code == 1
    assert bad(doc) == {f"docker-archive:{archive}:acme/app:1!/srv/model/added.py":
                        {"sbom-file-extra"}}
    res = cli("verify", "--sbom", bom, "--public-key", keys.pub,
              f"docker-archive:{archive}!/no/such/path")
    assert res.returncode == 4 and "no such path in the image" in res.stderr
