"""What the analyser looks for: qualified names of dangerous callables and patterns of
sensitive paths, hosts, endpoints and environment variables. Data only, so the policy is
reviewable; the reasons and public references live in the rules (``behaviour/rules.py``)
and in ``data/endpoints.tsv``."""

from __future__ import annotations

import re

# Modules (or module prefixes) whose calls open network connections or resolve names.
NETWORK_MODULES = (
    "urllib.request", "urllib2", "urllib3", "http.client", "httplib", "requests", "httpx",
    "aiohttp", "ftplib", "smtplib", "poplib", "imaplib", "nntplib", "telnetlib", "paramiko",
    "fabric", "websocket", "websockets", "pycurl", "xmlrpc.client", "dns.resolver",
    "tornado.httpclient", "scapy", "asyncio.open_connection", "asyncio.start_server",
)
# socket is only network when it opens or resolves; gethostname() is local.
SOCKET_NETWORK = (
    "socket.create_connection", "socket.create_server", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr",
    "socket.getfqdn", "socket.socket().connect", "socket.socket().connect_ex",
    "socket.socket().send", "socket.socket().sendall", "socket.socket().sendto",
    "socket.socket().listen",  # bind() alone is a local probe (urllib3's IPv6 check)
)
DNS_LOOKUPS = ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.getaddrinfo",
               "dns.resolver.resolve", "dns.resolver.query")
# Hub uploads are an exfiltration channel that needs no raw socket.
HUB_UPLOAD = re.compile(r"^huggingface_hub\..*(upload|create_commit)", re.I)

# Host facts that exfiltration payloads collect along with secrets.
RECON = frozenset({
    "socket.gethostname", "platform.node", "platform.uname", "getpass.getuser", "os.getlogin",
    "os.uname", "uuid.getnode",
})

PROCESS = frozenset({
    "subprocess.Popen", "subprocess.run", "subprocess.call", "subprocess.check_call",
    "subprocess.check_output", "subprocess.getoutput", "subprocess.getstatusoutput",
    "os.system", "os.popen", "os.popen2", "os.popen3", "os.execl", "os.execle", "os.execlp",
    "os.execlpe", "os.execv", "os.execve", "os.execvp", "os.execvpe", "os.spawnl",
    "os.spawnle", "os.spawnlp", "os.spawnlpe", "os.spawnv", "os.spawnve", "os.spawnvp",
    "os.spawnvpe", "os.posix_spawn", "os.posix_spawnp", "os.fork", "os.forkpty",
    "os.startfile", "pty.spawn", "commands.getoutput", "commands.getstatusoutput",
    "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell", "pexpect.spawn",
    "pexpect.run", "platform.popen",
    # stdlib and third-party wrappers that spawn processes
    "pexpect.spawnu", "pexpect.popen_spawn.PopenSpawn", "ptyprocess.PtyProcess.spawn",
    "distutils.spawn.spawn", "setuptools._distutils.spawn.spawn", "popen2.popen2",
    "popen2.popen3", "popen2.popen4", "popen2.Popen3", "subprocess32.Popen",
    "subprocess32.call", "subprocess32.check_output", "sh.Command", "plumbum.local",
    "invoke.run", "delegator.run", "envoy.run", "IPython.utils.process.system",
    "IPython.utils.process.getoutput", "webbrowser.open", "webbrowser.open_new",
    "webbrowser.open_new_tab", "multiprocessing.util.spawnv_passfds",
    "_posixsubprocess.fork_exec", "_winapi.CreateProcess", "win32process.CreateProcess",
    "win32api.ShellExecute", "win32api.WinExec", "fabric.Connection().run",
    "fabric.Connection().local", "paramiko.SSHClient().exec_command",
})
# Modules whose every call is a command (sh.ls(), plumbum.cmd.curl ...).
PROCESS_MODULES = ("sh.", "plumbum.cmd.")
# Calls that resolve a string to a callable and call it: dispatch by name hides the target.
STRING_DISPATCH = frozenset({
    "operator.methodcaller", "operator.attrgetter", "pkgutil.resolve_name", "pydoc.locate",
    "logging.config.dictConfig", "logging.config.fileConfig", "logging.config.listen",
    "importlib.util.spec_from_file_location", "importlib.machinery.SourceFileLoader",
    "zipimport.zipimporter", "imp.load_source", "imp.load_module", "imp.load_compiled",
})
# Evaluation in disguise: these evaluate strings as Python.
EVAL_DISGUISE = frozenset({
    "typing.get_type_hints", "typing_extensions.get_type_hints", "inspect.get_annotations",
    "timeit.timeit", "timeit.repeat", "timeit.Timer", "code.InteractiveInterpreter",
    "code.InteractiveConsole", "code.interact", "code.compile_command",
    "codeop.compile_command", "codeop.Compile", "pdb.run", "pdb.runeval", "pdb.runcall",
    "bdb.Bdb().run", "cProfile.run", "cProfile.runctx", "profile.run", "profile.runctx",
    "trace.Trace().run", "trace.Trace().runctx", "doctest.run_docstring_examples",
    "doctest.testsource", "rlcompleter.Completer", "pydoc.pipepager", "pydoc.tempfilepager",
    "string.Formatter().vformat", "ctypes.pythonapi.PyRun_SimpleString",
    "ctypes.pythonapi.PyRun_String",
})
# Modules whose namespace is a toolbox of execution: walking it or indexing it by an
# unknown name reaches system/exec without naming them.
DANGEROUS_MODULES = frozenset({
    "builtins", "os", "subprocess", "pty", "socket", "ctypes", "shutil", "importlib",
    "runpy", "code", "codeop", "marshal", "pickle", "commands", "posix", "nt",
    "asyncio.subprocess", "webbrowser",
})
# Loading the C library (or the Python C API) reaches system(), exec and memory directly.
LIBC_NAMES = re.compile(r"(^|/)(libc|msvcrt|ucrtbase|libSystem|libpython|python3)[\w.\-]*$"
                        r"|^c$|^msvcrt|^kernel32|^ntdll", re.I)
# Windows process injection and shellcode loaders, by the API names ctypes reaches.
INJECTION_APIS = frozenset({
    "WriteProcessMemory", "CreateRemoteThread", "CreateRemoteThreadEx", "VirtualAllocEx",
    "NtWriteVirtualMemory", "ZwWriteVirtualMemory", "NtCreateThreadEx", "RtlCreateUserThread",
    "QueueUserAPC", "NtQueueApcThread", "SetThreadContext", "NtUnmapViewOfSection",
    "ZwUnmapViewOfSection", "NtMapViewOfSection", "VirtualProtectEx",
})  # not RtlMoveMemory: memcpy (paramiko's shared-memory map); runners are SHELLCODE_APIS
# A shellcode runner: executable memory plus a thread or a cast to a function pointer.
SHELLCODE_APIS = frozenset({"VirtualAlloc", "VirtualProtect", "CreateThread", "HeapCreate",
                            "EnumSystemLocalesA", "EnumWindows", "CallWindowProcA"})
# Infostealer capabilities reached through calls.
CLIPBOARD = frozenset({
    "pyperclip.paste", "pyperclip.copy", "clipboard.paste", "clipboard.copy",
    "win32clipboard.GetClipboardData", "win32clipboard.SetClipboardText",
    "win32clipboard.OpenClipboard", "win32clipboard.SetClipboardData",
    "tkinter.Tk().clipboard_get", "tkinter.Tk().clipboard_append", "pandas.read_clipboard",
    "klembord.get", "xerox.paste", "pyclip.paste",
})
SCREENSHOT = frozenset({
    "PIL.ImageGrab.grab", "PIL.ImageGrab.grabclipboard", "pyautogui.screenshot",
    "pyscreenshot.grab", "mss.mss", "mss.mss().shot", "mss.mss().grab", "d3dshot.create",
    "pyscreeze.screenshot", "dxcam.create",
})
KEYLOGGER = frozenset({
    "pynput.keyboard.Listener", "pynput.keyboard.Events", "keyboard.on_press",
    "keyboard.on_release", "keyboard.hook", "keyboard.read_key", "keyboard.record",
    "keyboard.start_recording", "pyHook.HookManager", "pyxhook.HookManager",
})
# Not CryptUnprotectData alone: DPAPI is how msal_extensions and keyring protect their own
# caches; stealers are caught by the browser files they decrypt (STEALER_PATH).
STEALER_APIS = frozenset({"GetClipboardData", "OpenClipboard",
                          "GetAsyncKeyState", "SetWindowsHookExA", "SetWindowsHookExW",
                          "GetKeyState", "BitBlt", "GetDC"})
# Files and places infostealers read, matched on folded, lower-cased, '/'-separated text.
STEALER_PATH = re.compile(
    r"(?P<browser>/user data/|(^|/)(login data|local state|web data)$|/cookies(\.sqlite)?$"
    r"|logins\.json|key[34]\.db|cookies\.sqlite|mozilla/firefox/profiles|google/chrome|bravesoftware"
    r"|opera software|yandex/yandexbrowser|microsoft/edge/user data|chromium/user data)"
    r"|(?P<wallet>exodus|electrum/wallets|atomic/local storage|wallet\.dat|ethereum/keystore"
    r"|nkbihfbeogaeaoehlefnkodbefgpgknn|coinomi|armory|guarda/local|jaxx|monero/wallets"
    r"|bitcoin/wallets|zcash|metamask|phantom.*wallet)"
    r"|(?P<discord>discord(canary|ptb)?/local storage|/leveldb|lightcord|discord_backup_codes)"
    r"|(?P<telegram>telegram desktop/tdata|/tdata(/|$)|telegram/tdata)"
    r"|(?P<gaming>steam/config/loginusers\.vdf|/ssfn|\.minecraft/launcher_accounts"
    r"|filezilla/recentservers\.xml|winscp\.ini)"
)
# Token formats infostealers grep for (Discord tokens, mfa tokens, Chrome's encrypted key).
STEALER_TOKEN_PATTERN = re.compile(
    r"\[\\w-\]\{24(,26)?\}\\\.\[\\w-\]\{6\}\\\.\[\\w-\]\{2[57]|mfa\\\.\[\\w-\]\{84\}"
    r"|dQw4w9WgXcQ:"
)
# Commands that install persistence or turn off defences.
PERSISTENCE_COMMAND = re.compile(
    r"schtasks\b.*/create|\breg(\.exe)?\s+add\b.*\\run\b|crontab\s+(-\s*$|-l.*\|)|@reboot"
    r"|launchctl\s+(load|bootstrap)|systemctl\s+(--user\s+)?enable|update-rc\.d|chkconfig"
    r"|add-mppreference|set-mppreference|netsh\s+advfirewall",
    re.I,
)
RUN_KEY = re.compile(r"currentversion\\+(run|runonce|policies\\+explorer\\+run)\b", re.I)
# File types a dropper writes and then runs or loads.
EXECUTABLE_SUFFIXES = (".exe", ".dll", ".scr", ".bat", ".cmd", ".ps1", ".vbs", ".vbe", ".js",
                       ".jse", ".hta", ".msi", ".com", ".pif", ".sys", ".so", ".dylib",
                       ".sh", ".elf", ".bin", ".apk", ".jar", ".lnk")
# Code packers and obfuscator runtimes: the code they carry cannot be read statically.
PACKER_NAMES = frozenset({"__pyarmor__", "pyarmor_runtime", "__armor_enter__",
                          "__armor_exit__", "__armor_wrap__", "pytransform", "__pyarmor_enter__",
                          "_pyarmor", "pyarmor", "sourcedefender", "pyconcrete"})
PACKER_PREFIXES = ("pyarmor_runtime_", "pytransform")
# Deserialisers whose input is a program (a pickle): constant bytes handed to them are
# scanned with the pickle scanner.
PICKLE_LOADERS = frozenset({
    "pickle.loads", "pickle.load", "_pickle.loads", "cPickle.loads", "dill.loads",
    "cloudpickle.loads", "joblib.load", "torch.load", "numpy.load", "pandas.read_pickle",
    "pickle.Unpickler", "shelve.open",
})
NATIVE = frozenset({
    "torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline",
    "ctypes.CDLL", "ctypes.PyDLL", "ctypes.WinDLL", "ctypes.cdll.LoadLibrary",
    "ctypes.pydll.LoadLibrary", "ctypes.windll.LoadLibrary", "cffi.FFI().dlopen",
    "ctypes.OleDLL", "ctypes.oledll.LoadLibrary", "ctypes.LibraryLoader", "_ctypes.dlopen",
    "ctypes.cdll", "ctypes.windll", "ctypes.oledll", "ctypes.pythonapi",
})
DYNAMIC_EXEC = frozenset({
    "exec", "eval", "compile", "execfile", "runpy.run_path", "runpy.run_module",
    "runpy._run_code", "types.FunctionType", "types.CodeType", "code.interact",
    "code.InteractiveInterpreter().runsource", "code.InteractiveConsole().push",
    "builtins.exec", "builtins.eval", "builtins.compile", "breakpoint",
})
# Calls whose result is code: exec'ing them, or unpickling decoded bytes, runs a payload.
# Of the PICKLE_LOADERS, those whose first argument is the data itself (the others take a
# file or a path: a constant string there is a file name).
LOADS_FROM_BYTES = frozenset({"pickle.loads", "_pickle.loads", "cPickle.loads", "dill.loads",
                              "cloudpickle.loads"})
LOADERS_OF_CODE = frozenset({"marshal.loads", "pickle.loads", "dill.loads", "cloudpickle.loads",
                             "_pickle.loads", "joblib.load", "torch.load"})
DECODERS = frozenset({
    "base64.b64decode", "base64.b32decode", "base64.b16decode", "base64.a85decode",
    "base64.b85decode", "base64.decodebytes", "base64.decodestring", "base64.urlsafe_b64decode",
    "base64.standard_b64decode", "binascii.a2b_base64", "binascii.a2b_hex", "binascii.unhexlify",
    "binascii.a2b_uu", "zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress",
    "marshal.loads", "codecs.decode", "bytes.fromhex", "bytearray.fromhex",
})
IMPORTERS = frozenset({"__import__", "importlib.import_module", "importlib.__import__"})
OPENERS = frozenset({"open", "io.open", "codecs.open", "os.fdopen"})
# (qualified name, index of the destination argument) for calls that write to a path.
WRITE_DEST = {
    "shutil.copy": 1, "shutil.copy2": 1, "shutil.copyfile": 1, "shutil.copytree": 1,
    "shutil.move": 1, "os.rename": 1, "os.replace": 1, "os.renames": 1, "os.symlink": 1,
    "os.link": 1, "os.remove": 0, "os.unlink": 0, "os.rmdir": 0, "shutil.rmtree": 0,
    "os.truncate": 0, "os.chmod": 0, "os.makedirs": 0, "os.mkdir": 0,
}
PATH_WRITE_METHODS = frozenset({
    "write_text", "write_bytes", "touch", "symlink_to", "hardlink_to", "unlink", "rmdir",
    "chmod", "mkdir",
})

_SECRET_WORDS = frozenset({
    "TOKEN", "TOKENS", "KEY", "KEYS", "APIKEY", "SECRET", "SECRETS", "PASSWORD", "PASSWD",
    "PASS", "CREDENTIAL", "CREDENTIALS", "CREDS", "AUTH", "PRIVATE", "SESSION",
})
_SECRET_PREFIXES = (
    "AWS_SECRET", "AWS_SESSION", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API",
    "ANTHROPIC_API", "GOOGLE_APPLICATION_CREDENTIALS", "WANDB_API", "COHERE_API",
    "MISTRAL_API", "GROQ_API", "REPLICATE_API", "DATABASE_URL", "TWINE_PASSWORD",
    "KAGGLE_KEY", "SSH_AUTH_SOCK",
)


def is_secret_env_name(name: str) -> bool:
    """TOKEN/KEY/SECRET... as a whole word of an env var name; TOKENIZERS_PARALLELISM is not."""
    upper = name.upper()
    if upper.startswith(_SECRET_PREFIXES):
        return True
    return any(word in _SECRET_WORDS for word in re.split(r"[^A-Z0-9]+", upper))


# Matched against folded strings, lower-cased with forward slashes.
CREDENTIAL_PATH = re.compile(
    r"(^|[/~{}])\.ssh(/|$)|id_rsa|id_ed25519|id_ecdsa|\.aws/credentials|\.aws/config"
    r"|(^|[/~{}])\.netrc\b|\.git-credentials|huggingface/token|/etc/passwd|/etc/shadow"
    r"|\.docker/config\.json|\.kube/config|\.pypirc|\.npmrc|gcloud/credentials"
    r"|application_default_credentials\.json|\.config/gh/hosts\.yml|\.bash_history"
    r"|\.zsh_history|keychains?/|\.gnupg(/|$)"
)
METADATA_HOSTS = (
    "169.254.169.254", "metadata.google.internal", "fd00:ec2::254", "100.100.100.200",
    "169.254.170.2", "2852039166", "0xa9fea9fe", "metadata.azure.internal",
)
METADATA_INT = 0xA9FEA9FE  # 169.254.169.254 as an integer

AGENT_MEMORY_PATH = re.compile(
    r"(^|[/{}])(claude\.md|claude\.local\.md|agents\.md|gemini\.md|\.cursorrules"
    r"|\.windsurfrules|memory\.md|\.mcp\.json|copilot-instructions\.md)$"
    r"|(^|[/~{}])\.(claude|cursor/rules|gemini|codex|windsurf|continue)(/|$)"
)
PERSISTENCE_PATH = re.compile(
    r"(site|dist)-packages(/|$)|^[/~].*\.pth$|(^|/)(sitecustomize|usercustomize)\.py$"
    r"|crontab|/etc/cron|/var/spool/cron|(^|[/~{}])\.(bashrc|bash_profile|bash_login|profile"
    r"|zshrc|zshenv|zprofile|zlogin|cshrc|tcshrc)$|config\.fish$|\.ssh/authorized_keys"
    r"|\.config/autostart|\.config/systemd|/etc/systemd|/etc/rc\.local|/etc/profile"
    r"|\.git/hooks(/|$)|/etc/ld\.so\.preload|launchagents|launchdaemons|/etc/sudoers"
)
# the temporary directory itself too (ipython: os.makedirs(tempfile.mkdtemp()) folds to /tmp)
HARMLESS_ABSOLUTE = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/tmp",
                               "/var/tmp", "/dev/shm"})
HARMLESS_PREFIXES = ("/tmp/", "/var/tmp/", "/dev/shm/")

SHELL_PAYLOAD = re.compile(
    r"(curl|wget|fetch)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b|/dev/tcp/|\bnc\b[^|;&]*\s-e\s"
    r"|\bbash\s+-i\b|base64\s+(-d|--decode)[^|;&]*\|\s*(ba|z)?sh|powershell[^|;&]*-enc"
    r"|\biex\s*\(|mkfifo\s",
    re.I,
)


def stealer_target(text: str) -> str | None:
    """The infostealer target category a string names (browser, wallet, discord ...)."""
    low = normalise_path(text)
    m = STEALER_PATH.search(low)
    if m:
        return next(k for k, v in m.groupdict().items() if v)
    if STEALER_TOKEN_PATTERN.search(text):
        return "token pattern"
    return None


def normalise_path(text: str) -> str:
    return text.replace("\\", "/").lower()


def metadata_host_in(text: str) -> str | None:
    low = text.lower()
    for host in METADATA_HOSTS:
        if host in low:
            return host
    return None


# Calls into a network library that do I/O: a verb, or building a client/connection.
# (urllib3.util.make_headers, requests.structures.LookupDict, inject_into_urllib3 do not.)
NETWORK_VERBS = frozenset({
    "get", "post", "put", "patch", "delete", "head", "options", "request", "urlopen",
    "urlretrieve", "send", "sendall", "sendto", "sendmsg", "connect", "connect_ex", "stream",
    "fetch", "sendmail", "send_message", "login", "retrbinary", "retrlines", "storbinary",
    "storlines", "exec_command", "open_connection", "start_server", "resolve", "query",
    "create_connection", "request_encode_url", "request_encode_body",
    "connection_from_url", "ws_connect", "run_forever", "open_sftp", "putfo", "getfo",
})
# Clients whose methods do I/O (requests.Session().get). Building one is not I/O.
NETWORK_CLIENTS = frozenset({
    "requests.Session", "requests.session", "httpx.Client", "httpx.AsyncClient",
    "aiohttp.ClientSession", "urllib3.PoolManager", "urllib3.ProxyManager",
    "urllib3.HTTPConnectionPool", "urllib3.HTTPSConnectionPool",
    "urllib3.connectionpool.HTTPConnectionPool", "http.client.HTTPConnection",
    "http.client.HTTPSConnection", "httplib.HTTPConnection", "httplib.HTTPSConnection",
    "ftplib.FTP", "ftplib.FTP_TLS", "smtplib.SMTP", "smtplib.SMTP_SSL", "smtplib.LMTP",
    "poplib.POP3", "poplib.POP3_SSL", "imaplib.IMAP4", "imaplib.IMAP4_SSL",
    "nntplib.NNTP", "telnetlib.Telnet", "paramiko.SSHClient", "paramiko.Transport",
    "websocket.WebSocket", "websocket.WebSocketApp", "xmlrpc.client.ServerProxy",
    "pycurl.Curl", "urllib.request.build_opener", "tornado.httpclient.HTTPClient",
    "tornado.httpclient.AsyncHTTPClient",
})
# Constructors that connect when given a host.
CONNECTING_CTORS = frozenset({
    "ftplib.FTP", "ftplib.FTP_TLS", "smtplib.SMTP", "smtplib.SMTP_SSL", "poplib.POP3",
    "poplib.POP3_SSL", "imaplib.IMAP4", "imaplib.IMAP4_SSL", "nntplib.NNTP",
    "telnetlib.Telnet", "websocket.create_connection", "websockets.connect",
    "paramiko.Transport",
})


_NETWORK_TOPS = frozenset(m.split(".")[0] for m in NETWORK_MODULES)


def is_network_call(q: str) -> bool:
    last = q.rsplit(".", 1)[-1]
    if ".exceptions" in q or last.endswith(("Error", "Exception", "Warning")):
        return False
    if q.startswith(SOCKET_NETWORK):
        return True
    if HUB_UPLOAD.search(q):
        return True
    if q.split(".", 1)[0].split("(", 1)[0] not in _NETWORK_TOPS or not any(
            q == m or q.startswith(m + ".") or q.startswith(m + "(") for m in NETWORK_MODULES):
        return False
    bare = q.replace("()", "")
    if bare in CONNECTING_CTORS:
        return True
    if last not in NETWORK_VERBS:
        return False
    if "()" in q:  # a method of a client: requests.Session().get, PoolManager().request
        return any(bare.startswith(cl + ".") for cl in NETWORK_CLIENTS)
    return bare.count(".") <= 3  # requests.get, urllib.request.urlopen, requests.api.post


def is_network_module(module: str) -> bool:
    return module == "socket" or any(
        module == m or module.startswith(m + ".") for m in NETWORK_MODULES
    )


# Calls that call the function handed to them (so it runs when they run).
CALLS_ARGUMENT = frozenset({
    "threading.Thread", "threading.Timer", "atexit.register", "map", "filter", "sorted",
    "min", "max", "functools.reduce", "multiprocessing.Process", "asyncio.run",
    "list", "tuple", "set", "any", "all", "sum", "dict", "functools.partial",
    "contextlib.ExitStack().callback", "signal.signal", "sys.settrace", "sys.setprofile",
    "threading.settrace", "_thread.start_new_thread", "thread.start_new_thread",
    "concurrent.futures.ThreadPoolExecutor().submit", "os.register_at_fork",
    "sys.excepthook", "apply", "eval", "exec", "timeit.timeit", "cProfile.run",
})
CALLS_ARGUMENT_PREFIXES = ("asyncio.", "concurrent.futures.", "multiprocessing.Pool",
                           "loop.", "trio.run", "anyio.run")
