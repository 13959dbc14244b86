"""Verify on load with signatures: the guard requires a valid OpenSSF model signature from
the identities configured for each model ([guard.signing], `mlwarden run
--require-signature`), once per model and before any of its files is opened.

End to end: tiny models signed with locally generated EC keys (mlwarden's signer), served by
the real registry, pulled through the airlock, then loaded with transformers under `mlwarden
run`: the signed ones load; unsigned, signed by a key not trusted for that model, or
tampered after signing are refused. The gate and its configuration are also tested
directly (symlinked trees, as in the offline view)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from airlock.support import isolated_env, run_cli, serve_registry
from mlwarden.cli.main import cli
from mlwarden.guard import run_environment
from mlwarden.guard.signatures import (
    SignatureGate,
    load_guard_signing,
    signing_env,
    signing_from_mapping,
)
from mlwarden.manifest import ManifestFile, ModelEntry, load
from mlwarden.policy import PolicyError
from mlwarden.registry.importer import import_directory
from mlwarden.signing import sign_model
from mlwarden.store import Store

SIGNED = "acme/tiny-signed"
UNSIGNED = "acme/tiny-unsigned"
WRONG_KEY = "acme/tiny-wrongkey"  # signed with the partner key, trusted only for partner/*
TAMPERED = "acme/tiny-tampered"  # README changed after signing
PARTNER = "partner/tiny-model"  # signed with the partner key
MODELS = (SIGNED, UNSIGNED, WRONG_KEY, TAMPERED, PARTNER)


@dataclass(frozen=True)
class Keys:
    release: Path  # private
    release_pub: Path
    partner: Path
    partner_pub: Path


def _key(dirpath: Path, name: str) -> tuple[Path, Path]:
    k = ec.generate_private_key(ec.SECP256R1())
    priv, pub = dirpath / f"{name}.pem", dirpath / f"{name}.pub.pem"
    priv.write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    pub.write_bytes(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("keys")
    return Keys(*_key(d, "release"), *_key(d, "partner"))


def _policy(path: Path, keys: Keys, **extra: str) -> Path:
    lines = [f"{k} = {v}" for k, v in extra.items()]
    path.write_text("\n".join([
        "[guard.signing]", "require = true", f"public-keys = [{str(keys.release_pub)!r}]",
        *lines, "[[guard.signing.models]]", 'match = "partner/*"',
        f"public-keys = [{str(keys.partner_pub)!r}]", ""]))
    return path


# ----------------------------------------------------------------------------- the gate


def _tree(src: Path, dst: Path) -> tuple[Path, ModelEntry]:
    """An HF-cache-shaped snapshot of symlinks (like the offline view) and its entry."""
    import hashlib

    dst.mkdir(parents=True)
    files = {}
    for p in sorted(src.iterdir()):
        (dst / p.name).symlink_to(p)
        files[p.name] = ManifestFile(hashlib.sha256(p.read_bytes()).hexdigest(),
                                     p.stat().st_size, "clean")
    return dst, ModelEntry(commit="c" * 40, files=files)


def _gate(data: Mapping[str, object], base: Path) -> SignatureGate:
    from mlwarden.guard.core import _sha256

    return SignatureGate(signing_from_mapping(data, base), _sha256, _sha256)


def _refusal(gate: SignatureGate, repo: str, entry: ModelEntry, model_dir: Path) -> str:
    from mlwarden.guard import GuardViolation

    with pytest.raises(GuardViolation) as info:
        gate.check(repo, entry, model_dir)
    return str(info.value)


@pytest.fixture
def small(tmp_path: Path, keys: Keys) -> Path:
    model = tmp_path / "src"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    (model / "weights.bin").write_bytes(bytes(range(256)) * 64)
    sign_model(model, model / "model.sig", key=keys.release)
    return model


def test_gate_verifies_once_through_symlinks(small: Path, keys: Keys, tmp_path: Path) -> None:
    snap, entry = _tree(small, tmp_path / "view" / "snap")
    gate = _gate({"public-keys": [str(keys.release_pub)]}, tmp_path)
    gate.check(SIGNED, entry, snap)
    gate.check(SIGNED, entry, snap)  # cached: verified once
    assert gate.verified == 1
    # The partner key is trusted only for partner/*: acme is refused, partner accepted.
    gate = _gate({"public-keys": [str(keys.partner_pub)],
                  "models": [{"match": "acme/*", "public-keys": [str(keys.partner_pub)]},
                             {"match": "partner/*", "public-keys": [str(keys.release_pub)]}]},
                 tmp_path)
    assert _refusal(gate, SIGNED, entry, snap).startswith("guard-signature: ")
    gate.check(PARTNER, entry, snap)


def test_gate_refuses_missing_tampered_and_wrong_signatures(small: Path, keys: Keys,
                                                            tmp_path: Path) -> None:
    trusted = {"public-keys": [str(keys.release_pub)]}
    snap, entry = _tree(small, tmp_path / "a")
    # Tampered content that the manifest also pins: only the signature can tell.
    (small / "weights.bin").write_bytes(b"\xff" + (small / "weights.bin").read_bytes()[1:])
    snap2, entry2 = _tree(small, tmp_path / "b")
    msg = _refusal(_gate(trusted, tmp_path), SIGNED, entry2, snap2)
    assert msg.startswith("guard-signature: ") and "weights.bin" in msg
    # Pinned content differs from what is on disk: refused before verifying anything.
    assert _refusal(_gate(trusted, tmp_path), SIGNED, entry, snap).startswith(
        "guard-hash-mismatch: ")
    # Not required: a bad signature is still refused...
    assert _refusal(_gate({**trusted, "require": False}, tmp_path), SIGNED, entry2,
                    snap2).startswith("guard-signature: ")
    # ... and no signature file is refused only when required.
    (small / "model.sig").unlink()
    snap3, entry3 = _tree(small, tmp_path / "c")
    assert _refusal(_gate(trusted, tmp_path), SIGNED, entry3, snap3).startswith(
        "guard-signature-missing: ")
    _gate({**trusted, "require": False}, tmp_path).check(SIGNED, entry3, snap3)


def test_signature_kept_outside_the_model(small: Path, keys: Keys, tmp_path: Path) -> None:
    sigdir = tmp_path / "sigs" / "acme" / "tiny-signed"
    sigdir.mkdir(parents=True)
    shutil.move(small / "model.sig", sigdir / ("c" * 40 + ".sig"))
    snap, entry = _tree(small, tmp_path / "snap")
    gate = _gate({"public-keys": [str(keys.release_pub)],
                  "signature": str(tmp_path / "sigs" / "{repo}" / "{commit}.sig")}, tmp_path)
    gate.check(SIGNED, entry, snap)
    assert gate.verified == 1


def test_configuration(tmp_path: Path, keys: Keys) -> None:
    with pytest.raises(PolicyError, match=r"unknown guard\.signing keys"):
        signing_from_mapping({"requires": True})
    with pytest.raises(PolicyError, match="no public key"):
        signing_from_mapping({"require": True})
    with pytest.raises(PolicyError, match="no such file"):
        signing_from_mapping({"public-keys": ["missing.pem"]}, tmp_path)
    with pytest.raises(PolicyError, match="needs match"):
        signing_from_mapping({"public-keys": [str(keys.release_pub)], "models": [{}]})
    with pytest.raises(PolicyError, match="substituted"):
        signing_from_mapping({"public-keys": [str(keys.release_pub)],
                              "signature": "/sigs/{user}.sig"})
    # pyproject [tool.mlwarden.guard.signing], paths relative to the file.
    shutil.copy(keys.release_pub, tmp_path / "k.pem")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mlwarden.guard.signing]\nrequire = false\npublic-keys = ["k.pem"]\n'
        '[[tool.mlwarden.guard.signing.models]]\nmatch = "acme/*"\nrequire = true\n')
    signing, found = load_guard_signing(search_dir=tmp_path)
    assert signing is not None and found == tmp_path / "pyproject.toml"
    assert not signing.default.policy.require
    acme = signing.for_model("acme/x")
    assert acme.policy.require and acme.policy.public_keys == (tmp_path / "k.pem",)
    # --require-signature forces every model; --public-key adds a trusted key.
    forced, _ = load_guard_signing(search_dir=tmp_path, require=True,
                                   public_keys=[str(keys.partner_pub)])
    assert forced is not None and forced.for_model("other/x").policy.require
    assert forced.for_model("other/x").policy.public_keys[-1] == keys.partner_pub
    # Per-model identities are checked under the table's CA; its keys are not inherited.
    shutil.copy(keys.release_pub, tmp_path / "ca.pem")
    ids = signing_from_mapping({"public-keys": ["k.pem"], "certificate-chain": ["ca.pem"],
                                "models": [{"match": "acme/*", "identities": [
                                    {"identity": "ml@acme.example"}]}]}, tmp_path)
    scoped = ids.for_model("acme/x").policy
    assert scoped.certificate_chain == (tmp_path / "ca.pem",) and not scoped.public_keys
    assert [i.identity for i in scoped.identities] == ["ml@acme.example"]
    # Nothing configured: no signing at all.
    assert load_guard_signing(search_dir=tmp_path / "nowhere") == (None, None)


def test_cli_and_bootstrap_fail_closed(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("version: 1\nmodels: {}\n")
    r = CliRunner().invoke(cli, ["run", "--manifest", str(tmp_path / "m.yaml"),
                                 "--require-signature", "--", "true"])
    assert r.exit_code == 4 and "no public key" in r.stderr and "Traceback" not in r.stderr
    # A signing configuration the process cannot use stops it before any user code runs.
    bad = tmp_path / "bad.toml"
    bad.write_text("[guard.signing]\nrequire = true\n")
    env = run_environment(isolated_env(tmp_path), tmp_path / "m.yaml", None, None, None,
                          signing=signing_env(bad, False, []))
    proc = subprocess.run([sys.executable, "-c", "print('ran')"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 70 and "ran" not in proc.stdout
    assert "no public key" in proc.stderr


# ----------------------------------------------------------------------------- end to end


CHILD = r"""
import json, sys
out = {}
def outcome(fn):
    try:
        return fn()
    except Exception as exc:
        return f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:400]}"
from transformers import AutoConfig, AutoModel, AutoTokenizer
for repo in sys.argv[1:]:
    out[repo] = {
        "config": outcome(lambda: AutoConfig.from_pretrained(repo).model_type),
        "tokenizer": outcome(
            lambda: len(AutoTokenizer.from_pretrained(repo)("hello")["input_ids"])),
        "model": outcome(lambda: type(AutoModel.from_pretrained(repo)).__name__)}
import mlwarden.guard as g
st = g.state()
out["verified"] = st.signatures.verified if st and st.signatures else None
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Pulled:
    store: Path
    manifest: Path


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
           keys: Keys) -> Iterator[Pulled]:
    """Five variants of the tiny model in the real registry, pulled through the airlock."""
    root = tmp_path_factory.mktemp("signed")
    upstream = Store.open(root / "upstream")
    for repo in MODELS:
        d = root / "models" / repo
        shutil.copytree(tiny_model, d)
        if repo != UNSIGNED:
            key = keys.partner if repo in (WRONG_KEY, PARTNER) else keys.release
            sign_model(d, d / "model.sig", key=key)
        if repo == TAMPERED:
            (d / "README.md").write_text("# changed after signing\n")
        assert import_directory(upstream, d, repo, approve=True).commit is not None
    live = serve_registry(upstream)
    try:
        out = Pulled(root / "store", root / "model-manifest.yaml")
        for repo in MODELS:
            r = CliRunner().invoke(cli, ["pull", repo, "--endpoint", live.url, "--store",
                                         str(out.store), "--manifest", str(out.manifest),
                                         "--scan-cache", str(root / "cache")])
            assert r.exit_code == 0, r.stderr
        yield out
    finally:
        live.stop()
        upstream.close()


def test_guard_requires_trusted_signatures(pulled: Pulled, keys: Keys, tmp_path: Path) -> None:
    manifest = load(pulled.manifest)
    assert "model.sig" in manifest.models[SIGNED].files  # pulled and pinned with the model
    policy = _policy(tmp_path / "mlwarden.toml", keys)
    proc = run_cli(["run", "--require-signature", "--policy", str(policy), "--manifest",
                    str(pulled.manifest), "--store", str(pulled.store), "--hf-cache",
                    str(tmp_path / "view"), "--", sys.executable, "-c", CHILD, *MODELS],
                   isolated_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for repo in (SIGNED, PARTNER):
        assert out[repo] == {"config": "bert", "tokenizer": 3, "model": "BertModel"}, repo
    for repo, rule in ((UNSIGNED, "guard-signature-missing"), (WRONG_KEY, "guard-signature"),
                       (TAMPERED, "guard-signature")):
        for what in ("config", "tokenizer", "model"):  # refused before any file is opened
            assert out[repo][what].startswith(f"raised GuardViolation: {rule}: "), \
                (repo, what, out[repo][what])
    assert "README.md" in out[TAMPERED]["config"]  # model_signing names the changed file
    # One verification per signed model, however many files and loads.
    assert out["verified"] == 4


def test_public_key_flag_without_configuration(pulled: Pulled, keys: Keys,
                                               tmp_path: Path) -> None:
    """`--require-signature --public-key`: the signed model loads, an unsigned one does not;
    the partner-signed model is refused too (its key is not trusted here)."""
    proc = run_cli(["run", "--require-signature", "--public-key", str(keys.release_pub),
                    "--manifest", str(pulled.manifest), "--store", str(pulled.store),
                    "--hf-cache", str(tmp_path / "view"), "--", sys.executable, "-c", CHILD,
                    SIGNED, UNSIGNED, PARTNER], isolated_env(tmp_path), cwd=tmp_path,
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out[SIGNED]["model"] == "BertModel"
    assert out[UNSIGNED]["model"].startswith("raised GuardViolation: guard-signature-missing")
    assert out[PARTNER]["model"].startswith("raised GuardViolation: guard-signature: ")


def test_registry_mode_completes_the_cache_to_verify(pulled: Pulled, keys: Keys,
                                                     tmp_path: Path) -> None:
    """At `--endpoint` the HF cache fills file by file: the guard downloads the pinned files
    it still lacks, then verifies the whole model before the first one is opened."""
    store = Store.open(pulled.store, create=False)
    live = serve_registry(store)
    try:
        proc = run_cli(["run", "--require-signature", "--public-key", str(keys.release_pub),
                        "--manifest", str(pulled.manifest), "--endpoint", live.url, "--",
                        sys.executable, "-c", CHILD, SIGNED, TAMPERED],
                       isolated_env(tmp_path), cwd=tmp_path, timeout=300)
    finally:
        live.stop()
        store.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out[SIGNED] == {"config": "bert", "tokenizer": 3, "model": "BertModel"}
    assert out[TAMPERED]["config"].startswith("raised GuardViolation: guard-signature: ")
    assert out["verified"] == 2
