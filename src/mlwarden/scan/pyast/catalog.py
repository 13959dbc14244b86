"""What the analyser looks for: qualified names of dangerous callables and patterns of
sensitive paths, hosts and environment variables. Data only, so the policy is reviewable."""

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
    "socket.socket", "socket.create_connection", "socket.create_server", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr",
    "socket.fromfd", "socket.getfqdn",
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
})
NATIVE = frozenset({
    "torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline",
    "ctypes.CDLL", "ctypes.PyDLL", "ctypes.WinDLL", "ctypes.cdll.LoadLibrary",
    "ctypes.pydll.LoadLibrary", "ctypes.windll.LoadLibrary", "cffi.FFI().dlopen",
})
DYNAMIC_EXEC = frozenset({
    "exec", "eval", "compile", "execfile", "runpy.run_path", "runpy.run_module",
    "runpy._run_code", "types.FunctionType", "types.CodeType", "code.interact",
    "code.InteractiveInterpreter().runsource", "code.InteractiveConsole().push",
})
# Calls whose result is code: exec'ing them, or unpickling decoded bytes, runs a payload.
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
    "AWS_", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE", "OPENAI", "ANTHROPIC",
    "GITHUB_", "GH_", "AZURE_", "GOOGLE_APPLICATION_CREDENTIALS", "GCP_", "WANDB_API",
    "COHERE", "MISTRAL", "GROQ", "REPLICATE", "SLACK_", "DATABASE_URL", "NPM_", "PYPI",
    "TWINE_", "DOCKER_", "KAGGLE_", "SSH_",
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
    r"(site|dist)-packages(/|$)|\.pth$|(^|/)(sitecustomize|usercustomize)\.py$"
    r"|crontab|/etc/cron|/var/spool/cron|(^|[/~{}])\.(bashrc|bash_profile|bash_login|profile"
    r"|zshrc|zshenv|zprofile|zlogin|cshrc|tcshrc)$|config\.fish$|\.ssh/authorized_keys"
    r"|\.config/autostart|\.config/systemd|/etc/systemd|/etc/rc\.local|/etc/profile"
    r"|\.git/hooks(/|$)|/etc/ld\.so\.preload|launchagents|launchdaemons|/etc/sudoers"
)
HARMLESS_ABSOLUTE = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})

SHELL_PAYLOAD = re.compile(
    r"(curl|wget|fetch)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b|/dev/tcp/|\bnc\b[^|;&]*\s-e\s"
    r"|\bbash\s+-i\b|base64\s+(-d|--decode)[^|;&]*\|\s*(ba|z)?sh|powershell[^|;&]*-enc"
    r"|\biex\s*\(|mkfifo\s",
    re.I,
)


def normalise_path(text: str) -> str:
    return text.replace("\\", "/").lower()


def metadata_host_in(text: str) -> str | None:
    low = text.lower()
    for host in METADATA_HOSTS:
        if host in low:
            return host
    return None


def is_network_call(q: str) -> bool:
    last = q.rsplit(".", 1)[-1]
    if ".exceptions" in q or last.endswith(("Error", "Exception", "Warning")):
        return False
    if q.startswith(SOCKET_NETWORK):
        return True
    if HUB_UPLOAD.search(q):
        return True
    return any(q == m or q.startswith(m + ".") or q.startswith(m + "(") for m in NETWORK_MODULES)


def is_network_module(module: str) -> bool:
    return module == "socket" or any(
        module == m or module.startswith(m + ".") for m in NETWORK_MODULES
    )
