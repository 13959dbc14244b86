"""mlwarden and the real ``model_signing`` CLI verify each other's signatures."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mlwarden.cli.main import cli

ISSUER = "https://accounts.example.com"
SIGNER = "release@example.com"


def mw(*args: object) -> tuple[int, str]:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output


def test_key_mode_both_directions(model: Path, pki, ms_cli, tmp_path: Path) -> None:
    ours = tmp_path / "ours.sig"
    code, out = mw("sign", model, "--key", pki.key, "--signature", ours)
    assert code == 0, out
    r = ms_cli("verify", "key", model, "--signature", ours, "--public_key", pki.pub)
    assert r.returncode == 0, r.stderr
    assert "Verification succeeded" in r.stdout

    theirs = tmp_path / "theirs.sig"
    r = ms_cli("sign", "key", model, "--private_key", pki.key, "--signature", theirs)
    assert r.returncode == 0, r.stderr
    code, out = mw("verify-signature", model, "--signature", theirs, "--public-key", pki.pub)
    assert code == 0, out
    assert "verified" in out

    # Tampering is caught by both tools.
    (model / "model.safetensors").write_bytes(b"\xff" + (model / "model.safetensors")
                                              .read_bytes()[1:])
    code, out = mw("verify-signature", model, "--signature", theirs, "--public-key", pki.pub)
    assert code == 1 and "model.safetensors" in out
    r = ms_cli("verify", "key", model, "--signature", ours, "--public_key", pki.pub)
    assert r.returncode != 0


def test_certificate_mode_both_directions(model: Path, pki, ms_cli, tmp_path: Path) -> None:
    ours = tmp_path / "ours.sig"
    code, out = mw("sign", model, "--key", pki.leaf_key, "--cert", pki.leaf,
                   "--cert-chain", pki.intermediate, "--signature", ours)
    assert code == 0, out
    r = ms_cli("verify", "certificate", model, "--signature", ours,
               "--certificate_chain", pki.root)
    assert r.returncode == 0, r.stderr

    theirs = tmp_path / "theirs.sig"
    r = ms_cli("sign", "certificate", model, "--private_key", pki.leaf_key,
               "--signing_certificate", pki.leaf, "--certificate_chain", pki.intermediate,
               "--signature", theirs)
    assert r.returncode == 0, r.stderr
    code, out = mw("verify-signature", model, "--signature", theirs, "--cert-chain", pki.root,
                   "--identity", SIGNER, "--issuer", ISSUER)
    assert code == 0, out
    assert SIGNER in out and ISSUER in out


def test_signature_inside_model_is_excluded_like_model_signing(model: Path, pki, ms_cli) -> None:
    sig = model / "model.sig"
    r = ms_cli("sign", "key", model, "--private_key", pki.key, "--signature", sig)
    assert r.returncode == 0, r.stderr
    code, out = mw("verify-signature", model, "--signature", sig, "--public-key", pki.pub)
    assert code == 0, out
    # ...and the other way round, re-signing in place.
    code, out = mw("sign", model, "--key", pki.key, "--signature", sig)
    assert code == 0, out
    r = ms_cli("verify", "key", model, "--signature", sig, "--public_key", pki.pub)
    assert r.returncode == 0, r.stderr


def test_default_signature_is_model_sig_beside_the_model(model: Path, pki, ms_cli) -> None:
    code, out = mw("sign", model, "--key", pki.key)
    assert code == 0, out
    sig = model.parent / "model.sig"
    assert sig.is_file()
    # model_signing run from the model's parent uses the same default path.
    r = ms_cli("verify", "key", model.name, "--public_key", pki.pub, "--signature", "model.sig",
               cwd=model.parent)
    assert r.returncode == 0, r.stderr
    code, out = mw("verify-signature", model, "--public-key", pki.pub)
    assert code == 0, out
