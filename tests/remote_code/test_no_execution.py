"""Scanning malicious repositories must not execute, compile to bytecode or import any of
their code, start processes or open sockets. Checked with a PEP 578 audit hook in a fresh
interpreter that runs the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corpus import repos

AUDIT_SCRIPT = r'''
import json, os, sys

repo, marker, report_path, events_path = sys.argv[1:5]
repo_modules = set()
for _dirpath, _dirs, _files in os.walk(repo):
    repo_modules.update(f[:-3] for f in _files if f.endswith(".py"))
seen = []
FORBIDDEN = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
             "os.fork", "os.forkpty", "pty.spawn", "socket.__new__", "socket.connect",
             "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "urllib.Request",
             "pickle.find_class", "code.__new__"}


def mentions(code, needle, depth=0):
    if depth > 20:
        return False
    for const in getattr(code, "co_consts", ()):
        if isinstance(const, str) and needle in const:
            return True
        if hasattr(const, "co_consts") and mentions(const, needle, depth + 1):
            return True
    return False


def hook(event, args):
    if event == "exec":
        code = args[0]
        fn = getattr(code, "co_filename", "")
        if str(fn).startswith(repo) or mentions(code, marker):
            seen.append(["exec", str(fn)])
    elif event == "compile":
        src, filename = args[0], args[1]
        text = src if isinstance(src, str) else (
            bytes(src).decode("latin-1") if isinstance(src, (bytes, bytearray)) else "")
        if marker in text or str(filename).startswith(repo):
            caller = sys._getframe(1).f_code
            # ast.parse is the one allowed compile: it stops at the syntax tree.
            if not (caller.co_name == "parse" and caller.co_filename.endswith("ast.py")):
                seen.append(["compile", str(filename), caller.co_name])
    elif event == "import":
        module, filename = args[0], args[1]
        if (filename and str(filename).startswith(repo)) or \
                module.rsplit(".", 1)[-1] in repo_modules:
            seen.append(["import", module])
    elif event in FORBIDDEN:
        seen.append([event, repr(args)[:200]])
    elif event == "open" and isinstance(args[0], str) and args[0] == marker:
        seen.append(["open-marker", args[0]])


sys.addaudithook(hook)
from mlwarden.cli.main import main  # noqa: E402

try:
    main(["scan", "--format", "json", "--workers", "1", "-o", report_path, repo])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(events_path, "w") as fh:
    json.dump({"events": seen, "exit": code}, fh)
'''


def build_corpus(root: Path, marker: Path) -> None:
    for name, (builder, _expected) in repos.MALICIOUS.items():
        builder(root / name, marker)
    repos.in_function_exfiltration(root / "in-function")
    repos.evil_template(root / "template")


def test_scanning_malicious_repos_executes_nothing(tmp_path: Path, marker: Path) -> None:
    root = tmp_path / "corpus"
    build_corpus(root, marker)
    report_path, events_path = tmp_path / "report.json", tmp_path / "events.json"
    proc = subprocess.run(
        [sys.executable, "-c", AUDIT_SCRIPT, str(root), str(marker), str(report_path),
         str(events_path)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(events_path.read_text())
    assert result["events"] == []
    assert result["exit"] == 1
    assert not marker.exists()
    report = json.loads(report_path.read_text())
    verdicts = {}
    for f in report["files"]:
        parts = Path(f["path"]).relative_to(root).parts
        if not parts:
            continue  # the directory-level summary
        sub = parts[0]
        verdicts[sub] = max(verdicts.get(sub, 0), ["clean", "suspicious", "unscannable",
                                                   "malicious"].index(f["verdict"]))
    for name in repos.MALICIOUS:
        assert verdicts[name] == 3, name
    assert verdicts["template"] == 3
    assert verdicts["in-function"] == 1


def test_audit_hook_would_see_an_import(tmp_path: Path, marker: Path) -> None:
    """Guard against a vacuous hook: importing a fixture module *is* recorded."""
    root = tmp_path / "corpus"
    repos.evil_base64_exec(root, marker)
    script = AUDIT_SCRIPT.replace(
        "from mlwarden.cli.main import main  # noqa: E402",
        "sys.path.insert(0, repo)\nimport configuration_evil  # noqa: E402\n"
        "from mlwarden.cli.main import main  # noqa: E402")
    events_path = tmp_path / "events.json"
    proc = subprocess.run([sys.executable, "-c", script, str(root), str(marker),
                           str(tmp_path / "r.json"), str(events_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    kinds = {e[0] for e in json.loads(events_path.read_text())["events"]}
    assert "import" in kinds and "exec" in kinds
