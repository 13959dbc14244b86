"""Rules of the Python behaviour analyser. One rule set serves remote code (``scan``),
``deps inspect`` and the package index; a rule fixes its verdict, and the phase the
behaviour runs in (install, start-up, import, load, or only when a function is called)
picks the rule (``behaviour/policy.py``). Each help text gives the reason, and for the
techniques taken from public malicious-package reports, the reference."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

_M, _S, _U, _C = Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.UNSCANNABLE, Verdict.CLEAN

CODE_UNPARSEABLE = rule(
    "code-unparseable", _U, Severity.MEDIUM, "Python source does not parse",
    "The file is not valid Python for this interpreter, so it was not analysed. Another "
    "Python version might still import it.")
EXFILTRATION = rule(
    "code-exfiltration", _M, Severity.CRITICAL,
    "Secrets or host data sent over the network at import or load time",
    "Code that runs on import (module level, or same-file functions it calls) or on load "
    "(__init__/post_init/_init_weights/from_pretrained of the classes from_pretrained "
    "instantiates, hubconf entry points) both reads secrets (secret-named environment "
    "variables, the whole environment, credential files, host facts) and opens a network "
    "connection. trust_remote_code=True / torch.hub.load runs it on load.")
POSSIBLE_EXFILTRATION = rule(
    "code-possible-exfiltration", _S, Severity.HIGH,
    "A function reads secrets and uses the network",
    "Not run on import, but a forward pass or helper may call it; review what it sends.")
METADATA_ACCESS = rule(
    "code-metadata-access", _M, Severity.CRITICAL,
    "Cloud metadata service contacted (credential theft)",
    "169.254.169.254, metadata.google.internal, fd00:ec2::254 and 100.100.100.200 serve "
    "cloud credentials to anything on the host. Model code that uses such an address in "
    "code that also makes network calls (at import time or in the same function) is "
    "stealing instance credentials. Addresses built by concatenation or encodings count.")
METADATA_ADDRESS = rule(
    "code-metadata-address", _S, Severity.HIGH,
    "Cloud metadata address in code",
    "The address appears, but no network call was seen next to it (for example a "
    "blocklist). Model code has no reason to name it.")
IMPORT_PROCESS = rule(
    "code-import-process", _M, Severity.CRITICAL, "Starts a process at import or load time",
    "subprocess, os.system, os.popen, os.exec*, os.spawn*, pty.spawn reached on import, or "
    "from the construction of the classes from_pretrained instantiates, or from a hubconf "
    "entry point: loading the model runs a command.")
PROCESS = rule(
    "code-process", _S, Severity.HIGH, "Starts a process",
    "A function starts a command (subprocess, os.system, ...). Kernel builds do this; "
    "review the command.")
SHELL_PAYLOAD = rule(
    "code-shell-payload", _M, Severity.CRITICAL, "Runs a download-and-execute shell payload",
    "A command pipes a download into a shell (curl|sh), opens a reverse shell (/dev/tcp, "
    "nc -e, bash -i) or runs encoded PowerShell. Malicious wherever it appears.")
EXEC_PAYLOAD = rule(
    "code-exec-payload", _M, Severity.CRITICAL,
    "Executes decoded, unmarshalled or downloaded code",
    "exec/eval/compile/FunctionType/pickle.loads applied to base64, hex, zlib, rot13, "
    "marshal or network data hides code from review. Malicious wherever it appears.")
DYNAMIC_EXEC = rule(
    "code-dynamic-exec", _S, Severity.MEDIUM, "Executes code built at run time",
    "exec, eval, compile, runpy or exec_module of something that is not visible source.")
DYNAMIC_IMPORT = rule(
    "code-dynamic-import", _S, Severity.LOW, "Imports a module by a computed or hidden name",
    "__import__/importlib.import_module with a name built at run time or spelled "
    "indirectly ('o'+'s').")
BUILTINS_ACCESS = rule(
    "code-builtins-access", _S, Severity.MEDIUM, "Reaches into __builtins__",
    "Looking exec/eval/open up through __builtins__ or builtins.__dict__ is how code hides "
    "which builtin it calls.")
UNMARSHAL = rule(
    "code-unmarshal", _S, Severity.HIGH, "Unmarshals data into code objects",
    "marshal.loads builds code objects; model code has no use for it.")
NATIVE = rule(
    "code-native-extension", _S, Severity.MEDIUM, "Loads or compiles native code",
    "ctypes libraries and torch.utils.cpp_extension builds run native code outside any "
    "Python-level review.")
IMPORT_NETWORK = rule(
    "code-import-network", _S, Severity.HIGH, "Network access at import or load time",
    "Loading the model (import, or constructing the classes it loads) opens a connection "
    "or resolves a name, with nothing sensitive seen in the same code. Model code does not "
    "need the network to import.")
NETWORK = rule(
    "code-network", _S, Severity.MEDIUM, "Network access in a function",
    "A function opens connections (requests, urllib, sockets, Hub uploads ...). Image "
    "processors sometimes fetch URLs; anything else deserves review.")
SECRET_READ = rule(
    "code-secret-read", _S, Severity.MEDIUM, "Reads secrets or credential files",
    "Secret-named environment variables (TOKEN, KEY, SECRET, PASSWORD, AWS_*, HF_TOKEN, "
    "OPENAI ...), the whole environment, or paths such as ~/.ssh, ~/.aws/credentials, "
    "~/.netrc, ~/.cache/huggingface/token, /etc/passwd.")
WRITE_OUTSIDE = rule(
    "code-write-outside", _S, Severity.MEDIUM, "Writes outside the repository",
    "A write to an absolute path, the home directory or a '..' path. Loaders run remote "
    "code with the user's working directory and permissions.")
PERSISTENCE_WRITE = rule(
    "code-persistence-write", _M, Severity.CRITICAL,
    "Writes to a persistence location",
    "site-packages, .pth files, sitecustomize, shell rc files, crontab, authorized_keys, "
    "autostart/systemd units or git hooks: code that survives the model and runs later. "
    "Malicious wherever it appears.")
AGENT_MEMORY_WRITE = rule(
    "code-agent-memory-write", _M, Severity.CRITICAL,
    "Writes to AI agent memory or instruction files",
    "CLAUDE.md, AGENTS.md, GEMINI.md, .cursorrules, .cursor/rules, .windsurfrules, "
    ".github/copilot-instructions.md, memory.md, .mcp.json, ~/.claude: instructions that "
    "coding agents obey later (prompt-injection persistence). Malicious wherever it appears.")
NETWORK_MODULE = rule(
    "code-network-module", _C, Severity.INFO, "Imports a network module",
    "Context only: no network call through it was recognised.")
IMPORT_SIDE_EFFECT = rule(
    "code-import-side-effect", _C, Severity.INFO, "Statement with effects runs at import",
    "Module-level code other than imports, definitions, constants, logging setup and "
    "registration. Dangerous effects get their own findings; this lists the rest.")

LOAD_EXEC = rule(
    "code-load-exec", _M, Severity.CRITICAL,
    "Evaluates a string as code at import, load or install time",
    "exec/eval/compile of any string, and evaluation in disguise (typing.get_type_hints or "
    "inspect.get_annotations(eval_str=True) on string annotations, timeit, "
    "code.InteractiveInterpreter, pdb/cProfile.run), reached when remote code is imported or "
    "loaded. Model code has no reason to evaluate strings while it loads (issue 11's "
    "allowlist stance); the constant code itself is analysed too and reported at this line.")
LOAD_DISPATCH = rule(
    "code-load-dispatch", _M, Severity.CRITICAL,
    "Calls something chosen by a string at import or load time",
    "operator.methodcaller/attrgetter, pkgutil.resolve_name, pydoc.locate, logging.config "
    "factories, spec_from_file_location, or getattr with an unknown name / iteration over "
    "the namespace of os, subprocess, builtins, ctypes ... reached on import or load of "
    "remote code: the call target is hidden from review.")
LOAD_NATIVE = rule(
    "code-load-native", _M, Severity.CRITICAL,
    "Reaches the C library or the Python C API at import or load time",
    "ctypes.CDLL(None), CDLL('libc.so.6'), find_library('c'), ctypes.pythonapi: system(), "
    "exec and raw memory without any Python-level call to review.")
STRING_DISPATCH = rule(
    "code-string-dispatch", _S, Severity.MEDIUM, "Calls something chosen by a string",
    "operator.methodcaller, pkgutil.resolve_name, logging.config factories and friends "
    "turn a string into a call target.")
EVAL_DISGUISE = rule(
    "code-eval-disguise", _S, Severity.MEDIUM, "Evaluates strings through a disguised API",
    "typing.get_type_hints on string annotations, timeit, code.InteractiveInterpreter, "
    "pdb.run and cProfile.run evaluate strings as Python.")
NAMESPACE_WALK = rule(
    "code-namespace-walk", _S, Severity.HIGH,
    "Walks or indexes a dangerous module's namespace by an unknown name",
    "getattr(os, name), vars(builtins).items(), dir(subprocess) reach system/exec without "
    "naming them (GuardDog api-obfuscation).")
INFOSTEALER = rule(
    "code-infostealer", _M, Severity.CRITICAL, "Infostealer behaviour",
    "Reads browser profiles (Login Data, Cookies, Local State, logins.json, key4.db), "
    "crypto wallets, Discord or Telegram tokens, the clipboard, the screen or keystrokes at "
    "install, import or load time, or together with a network send. References: Checkmarx "
    "'W4SP stealer' (2022), Phylum reports of Discord token grabbers (2023), colourama "
    "clipboard hijacker (Checkmarx, 2022).")
STEALER_TARGET = rule(
    "code-stealer-target", _S, Severity.HIGH, "Names an infostealer target",
    "A function reads the clipboard, captures the screen or keystrokes, or names browser, "
    "wallet, Discord or Telegram credential stores; nothing sends it on and nothing runs it "
    "on load.")
INJECTION = rule(
    "code-injection", _M, Severity.CRITICAL,
    "Windows process injection or shellcode loader through ctypes",
    "WriteProcessMemory, CreateRemoteThread, VirtualAllocEx, NtUnmapViewOfSection, "
    "QueueUserAPC, SetThreadContext, or executable memory with VirtualAlloc/RtlMoveMemory/"
    "CreateThread. No library on PyPI needs these to run its own code. References: Phylum "
    "and ReversingLabs reports of PyPI packages injecting shellcode (2023).")
DROPPER = rule(
    "code-dropper", _M, Severity.CRITICAL, "Downloads or drops an executable and runs it",
    "An executable (.exe, .dll, .scr, .bat, .ps1, .sh ...) is downloaded or written at "
    "install, import or load time together with a network fetch. References: GuardDog "
    "download-executable; Checkmarx reports of PyPI droppers (2022-2023).")
DROP_EXECUTABLE = rule(
    "code-drop-executable", _S, Severity.HIGH, "Writes an executable file",
    "A write to a path ending in .exe/.dll/.scr/.bat/.ps1/.vbs/.sh ... Review where its "
    "content comes from and what runs it.")
EXFIL_ENDPOINT = rule(
    "code-exfil-endpoint", _M, Severity.CRITICAL,
    "Sends data to a webhook, paste, tunnel or out-of-band service",
    "A Discord/Slack webhook, Telegram bot, paste site, file drop, ngrok/cloudflared "
    "tunnel or interactsh/Burp Collaborator domain (behaviour/data/endpoints.tsv) is used "
    "with a network call at install, import or load time, or in the same code. These "
    "services are how malicious packages exfiltrate and stage payloads.")
ENDPOINT = rule(
    "code-endpoint", _S, Severity.HIGH,
    "Names a webhook, paste, tunnel or out-of-band service",
    "The code names an exfiltration or staging endpoint from behaviour/data/endpoints.tsv "
    "but no network call was seen with it.")
DNS_EXFILTRATION = rule(
    "code-dns-exfiltration", _M, Severity.CRITICAL,
    "Resolves host names built from data (DNS exfiltration)",
    "gethostbyname/getaddrinfo/dns.resolver of an f-string or concatenation whose data part "
    "sits in the host name, at install, import or load time: the DNS query carries the data "
    "out even where HTTP is blocked. Reference: dependency-confusion packages beaconing "
    "through DNS (Birsan 2021; Snyk 2021).")
PACKED = rule(
    "code-packed", _U, Severity.HIGH, "Packed or encrypted code that cannot be analysed",
    "pyarmor/pytransform runtimes, sourcedefender, or marshal blobs that do not decode: "
    "the code that runs is not in the file, so no verdict can vouch for it. Reference: "
    "GuardDog pyarmor rule; Checkmarx reports of pyarmor-packed PyPI malware (2023).")
OBFUSCATED = rule(
    "code-obfuscated", _S, Severity.HIGH, "Obfuscated names",
    "Identifiers written with look-alike Unicode characters that Python folds (NFKC) to "
    "other names, or imports of a module spelled indirectly. Reference: GuardDog unicode "
    "rule; Phylum, PyPI packages using NFKC-folded 'exec' (2023).")
BUILD_STEP = rule(
    "code-build-step", _C, Severity.INFO, "Ordinary build step at install time",
    "setup.py runs a build tool (cmake, make, pkg-config, git describe, compilers, "
    "twine in a release command ...). Context, not an alarm.")
EXEC_FILE = rule(
    "code-exec-file", _C, Severity.INFO, "Executes the contents of a file of the package",
    "exec(open('pkg/version.py').read()) and friends in setup.py: the file is analysed as "
    "install-time code in its own right when it is in the package.")
OBFUSCATED_CALL = rule(
    "code-obfuscated-call", _M, Severity.CRITICAL,
    "Hides a process or exec call behind computed names",
    "os.__dict__['start'+'file'], os.__getattribute__('sys'+'tem'), vars(__builtins__)"
    "['ex'+'ec'], globals()['\\x65val'], operator.methodcaller('system', ...)(os), getattr "
    "with a built name: the call is resolved anyway, and only code that hides what it runs "
    "is written like this. Reference: GuardDog api-obfuscation; issue 17's labelled cases.")
