"""`mlwarden monitor` against a real deployment (`mlwarden deploy` from a store, signed
ML-BOM) and a generated site-packages: alerts within 5 s of a modified weight file or a new
.pth file, a JSON webhook to a loopback receiver, syslog and journald datagrams, Prometheus
metrics and /healthz, quiet across a restart, never about its own state files, and an exit
status for sidecars."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import py_compile
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corpus.pki import Pki, make_pki
from monitor.support import Receiver, Running, env, start_monitor


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("mon-pki"))


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", *map(str, args)], env=env(),
                          capture_output=True, text=True, timeout=300)


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}\n"


def make_dist(site: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    record = ""
    for rel, data in {**files, f"{info.name}/METADATA": meta}.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        record += _record_line(rel, data)
    record += f"{info.name}/RECORD,,\n"
    (info / "RECORD").write_text(record)


@dataclass
class World:
    store: Path
    deployment: Path
    site: Path
    env_bom: Path
    env_sig: Path
    keys: Pki


@pytest.fixture
def world(tmp_path: Path, keys: Pki) -> World:
    import numpy as np
    from safetensors.numpy import save

    from mlwarden.registry.importer import import_directory
    from mlwarden.sbom.cyclonedx import to_cyclonedx
    from mlwarden.sbom.environment import installed
    from mlwarden.sbom.inventory import from_directory
    from mlwarden.sbom.sign import sign_bom
    from mlwarden.store import Store

    model = tmp_path / "src-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    (model / "model.safetensors").write_bytes(save({"w": np.ones((16, 16), np.float32)}))
    store = Store.open(tmp_path / "store")
    assert import_directory(store, model, "acme/served", approve=True).commit is not None
    store.close()
    dep = tmp_path / "deploy" / "svc"
    res = cli("deploy", "acme/served@main", "--store", tmp_path / "store", "--to", dep,
              "--key", keys.key)
    assert res.returncode == 0, res.stderr
    site = tmp_path / "site-packages"
    make_dist(site, "pkga", "1.0", {"pkga/__init__.py": b"VALUE = 1\n",
                                    "pkga/util.py": b"def f():\n    return 2\n"})
    make_dist(site, "pkgb", "2.0", {"pkgb.py": b"X = 3\n", "pkgb-init.pth": b"import pkgb\n"})
    py_compile.compile(str(site / "pkga" / "util.py"), doraise=True)  # a legitimate .pyc
    bom = tmp_path / "env.cdx.json"
    bom.write_text(to_cyclonedx(from_directory(model, name="acme/env"), installed([str(site)])))
    sig = sign_bom(bom, key=str(keys.key))
    return World(tmp_path / "store", dep, site, bom, sig, keys)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def start(world: World, state: Path, *extra: str | Path) -> Running:
    return start_monitor(["--deployment", world.deployment, "--site-packages", world.site,
                          "--env-sbom", world.env_bom, world.env_sig, "--public-key",
                          world.keys.pub, "--state-dir", state, *extra],
                         world.store.parent / "logs")  # logs outside every watched tree


def weights(world: World) -> Path:
    return world.deployment / "model" / "model.safetensors"


def tamper(p: Path) -> bytes:
    old = p.read_bytes()
    os.chmod(p, 0o644)
    data = bytearray(old)
    data[-1] ^= 0x01
    p.write_bytes(bytes(data))
    return old


def get(port: int, path: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_alerts_in_seconds_quiet_across_restart(world: World, receiver: Receiver,
                                                tmp_path: Path) -> None:
    state = world.site / ".monitor-state"  # inside a watched tree on purpose
    args = ("--webhook", receiver.url, "--metrics-port", "0", "--interval", "30")
    mon = start(world, state, *args)
    try:
        assert receiver.alerts() == []  # the approved state is clean
        status, body = get(mon.metrics or 0, "/healthz")
        assert status == 200 and json.loads(body)["ok"] is True
        # A modified weight file.
        w = weights(world)
        t0 = time.monotonic()
        original = tamper(w)
        t, alert = receiver.wait(lambda e: e.get("event") == "alert" and
                                 e["path"].endswith("model.safetensors"))
        assert t - t0 < 5.0, f"alert after {t - t0:.1f}s"
        assert alert["rule"] == "monitor-file-modified"
        assert alert["expected"] == hashlib.sha256(original).hexdigest()
        assert alert["observed"] == hashlib.sha256(w.read_bytes()).hexdigest()
        assert "acme/served@" in alert["baseline"]
        # A new .pth file in site-packages.
        t0 = time.monotonic()
        (world.site / "zz-persist.pth").write_text("import os; os.system('id')\n")
        t, alert = receiver.wait(lambda e: e.get("event") == "alert" and
                                 e["path"].endswith("zz-persist.pth"))
        assert t - t0 < 5.0 and alert["rule"] == "monitor-pth-added"
        time.sleep(1.0)
        # Its own state file (written inside the watched site-packages) never alerts.
        assert not any(".monitor-state" in a["path"] for a in receiver.alerts())
        assert list(state.glob("monitor-*.json"))
        status, metrics = get(mon.metrics or 0, "/metrics")
        text = metrics.decode()
        assert 'mlwarden_monitor_alerts_total{rule="monitor-file-modified"} 1.0' in text
        assert "mlwarden_monitor_outstanding_changes 2.0" in text
        status, body = get(mon.metrics or 0, "/healthz")
        assert status == 503 and len(json.loads(body)["outstanding"]) == 2
    finally:
        assert mon.stop() == 0
    n = len(receiver.alerts())
    # Restart: the same changes are still there, and nothing is alerted again.
    mon = start(world, state, *args)
    try:
        time.sleep(2.5)
        assert len(receiver.alerts()) == n
        status, body = get(mon.metrics or 0, "/healthz")
        assert status == 503  # still outstanding, just not re-alerted
        # Putting the weights back resolves that change...
        os.chmod(w, 0o644)
        w.write_bytes(original)
        receiver.wait(lambda e: e.get("event") == "resolved" and
                      e["path"].endswith("model.safetensors"))
        # ...and a new change after the restart alerts again.
        (world.deployment / "model" / "extra.py").write_text("import os\n")
        _, alert = receiver.wait(lambda e: e.get("event") == "alert" and
                                 e["path"].endswith("extra.py"))
        assert alert["rule"] == "monitor-file-added"
    finally:
        mon.stop()


def recv_until(sock: socket.socket, needle: str) -> str:
    """Datagrams until one contains ``needle`` (the start-up message comes first)."""
    while True:
        data = sock.recv(65536).decode("utf-8", "replace")
        if needle in data:
            return data


def test_sidecar_exit_syslog_and_journald(world: World, tmp_path: Path) -> None:
    """--exit-on-alert: the sidecar exits 1 once it has reported; the sweep (no inotify
    here) finds the change; syslog and journald receive it."""
    socks = {}
    for name in ("syslog", "journal"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(str(tmp_path / f"{name}.sock"))
        s.settimeout(10)
        socks[name] = s
    mon = start(world, tmp_path / "state", "--exit-on-alert", "--no-events", "--interval",
                "0.5", "--syslog", tmp_path / "syslog.sock", "--journald",
                tmp_path / "journal.sock")
    try:
        t0 = time.monotonic()
        tamper(weights(world))
        assert mon.proc.wait(10) == 1
        assert time.monotonic() - t0 < 5.0
        line = recv_until(socks["syslog"], "ALERT")
        assert line.startswith("<") and "mlwarden-monitor: ALERT monitor-file-modified" in line
        fields = recv_until(socks["journal"], "MLWARDEN_EVENT=alert")
        assert "MLWARDEN_RULE=monitor-file-modified" in fields and "PRIORITY=2" in fields
        assert f"MLWARDEN_PATH={weights(world).resolve()}" in fields
    finally:
        mon.stop()
        for s in socks.values():
            s.close()


def test_site_packages_checks_once(world: World, tmp_path: Path) -> None:
    """`--once`: bytecode that is not its source's compilation, a distribution installed or
    changed after approval, a deleted approved file."""
    base = ["monitor", "--once", "--site-packages", world.site, "--env-sbom", world.env_bom,
            world.env_sig, "--public-key", world.keys.pub, "--state-dir", tmp_path / "st"]
    res = cli(*base)
    assert res.returncode == 0, res.stderr
    # Bytecode with a header matching util.py but other code inside.
    util = world.site / "pkga" / "util.py"
    pyc = next((world.site / "pkga" / "__pycache__").glob("util.*.pyc"))
    evil = world.site / "evil_src.py"
    evil.write_text("def f():\n    return 666\n")
    import marshal

    code = compile(evil.read_bytes(), str(util), "exec")
    header = pyc.read_bytes()[:16]
    pyc.write_bytes(header + marshal.dumps(code))
    evil.unlink()
    make_dist(world.site, "pkgc", "0.1", {"pkgc.py": b"Y = 1\n"})
    (world.site / "pkgb.py").unlink()
    res = cli(*base)
    assert res.returncode == 1
    alerts = {(e["rule"], Path(e["path"]).name) for e in map(json.loads,
              res.stderr.splitlines()) if e.get("event") == "alert"}
    assert ("monitor-bytecode-mismatch", pyc.name) in alerts
    assert ("monitor-package-added", "pkgc-0.1.dist-info") in alerts
    assert ("monitor-file-deleted", "pkgb.py") in alerts
    assert not any(name == "pkgc.py" for _, name in alerts)  # reported once, as the package


def test_bad_input_is_one_line(world: World, tmp_path: Path) -> None:
    res = cli("monitor", "--state-dir", tmp_path)
    assert res.returncode == 4 and "nothing to watch" in res.stderr
    res = cli("monitor", "--deployment", world.deployment, "--state-dir", tmp_path)
    assert res.returncode == 4 and "trust anchor" in res.stderr
    # A deployment whose signed BOM was replaced: the approval itself is alerted.
    rec = json.loads((world.deployment / "deployment.json").read_text())
    bom = world.deployment / rec["sbom"]
    os.chmod(bom, 0o644)
    bom.write_text(bom.read_text().replace("acme", "evil"))
    res = cli("monitor", "--once", "--deployment", world.deployment, "--public-key",
              world.keys.pub, "--state-dir", tmp_path / "s")
    assert res.returncode == 1 and "monitor-baseline-invalid" in res.stderr
    assert "Traceback" not in res.stderr


def test_manifest_pins_as_the_approval(tmp_path: Path) -> None:
    """Models pulled through the airlock: the manifest's pins are the approved state."""
    from mlwarden.manifest import Manifest, ManifestFile, ModelEntry, update

    d = tmp_path / "served" / "acme-bert"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    files = {p.name: ManifestFile(hashlib.sha256(p.read_bytes()).hexdigest(),
                                  p.stat().st_size) for p in d.iterdir()}
    manifest = tmp_path / "model-manifest.yaml"

    def change(m: Manifest) -> Manifest:
        return m.with_model("acme/bert", ModelEntry(commit="c" * 40, files=files))

    update(manifest, change)
    args = ("monitor", "--once", "--manifest", manifest, "--model", f"acme/bert={d}",
            "--state-dir", tmp_path / "state")
    assert cli(*args).returncode == 0
    (d / "config.json").write_text('{"evil": 1}')
    res = cli(*args)
    assert res.returncode == 1
    alerts = [json.loads(x) for x in res.stderr.splitlines() if '"event":"alert"' in x]
    assert [(a["rule"], Path(a["path"]).name) for a in alerts] == \
        [("monitor-file-modified", "config.json")]
    assert "acme/bert@cccccccccccc pinned in" in alerts[0]["message"]
