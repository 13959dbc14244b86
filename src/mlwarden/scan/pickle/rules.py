"""Rules emitted by the pickle analyser. Each fixes its verdict and severity."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

DANGEROUS_CALLABLE = rule(
    "pickle-dangerous-callable", Verdict.MALICIOUS, Severity.CRITICAL,
    "Pickle reaches a dangerous callable",
    "The stream imports a callable that executes code, spawns processes, imports modules, "
    "touches files or the network, or is a known gadget (knowledge base, with references). "
    "Loading the file with pickle/torch.load/joblib.load can run it.",
)
UNKNOWN_CALL = rule(
    "pickle-unknown-call", Verdict.MALICIOUS, Severity.HIGH,
    "Pickle invokes a callable outside the allowlist",
    "REDUCE, OBJ or INST calls a callable that is neither allowlisted for calls nor plain "
    "object reconstruction (NEWOBJ/copyreg.__newobj__/_reconstructor + BUILD). Ordinary "
    "model files only call known rebuild functions.",
)
UNKNOWN_GLOBAL = rule(
    "pickle-unknown-global", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Pickle imports a module outside the allowlist",
    "The name is only referenced or its instances only reconstructed (no call with "
    "arguments). Loading still imports its module and runs its __setstate__; a whole "
    "pickled object (for example a full nn.Module of a user class) looks like this.",
)
FRAME_DIVERGENCE = rule(
    "pickle-frame-divergence", Verdict.MALICIOUS, Severity.HIGH,
    "A read crosses the end of a FRAME (parser divergence, gh-154848)",
    "No pickler writes this. The pure-Python unpickler raises, pickle.loads reads "
    "linearly, and the C unpickler reading a file drops the rest of the frame, so bytes "
    "that static readers take as data can run as opcodes. Every interpretation was analysed.",
)
BROKEN_STREAM = rule(
    "pickle-broken-stream", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "The pickle stream breaks before STOP",
    "CPython raises at this point, after executing everything before it (nullifAI). "
    "Everything up to the break was analysed and is reported.",
)
MEMO_ANOMALY = rule(
    "pickle-memo-anomaly", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Memo misuse: missing key, overwrite or type confusion",
    "Scanners that track the memo loosely resolve the wrong names here; mlwarden follows "
    "CPython's memo exactly. Ordinary picklers never produce it.",
)
GLOBAL_MUTATION = rule(
    "pickle-global-mutation", Verdict.MALICIOUS, Severity.HIGH,
    "Pickle modifies an imported module or class",
    "BUILD/SETITEM/APPEND applied to an imported global changes interpreter state (for "
    "example replaces a function of a library) when the file is loaded.",
)
NESTED_PICKLE = rule(
    "pickle-nested-pickle", Verdict.MALICIOUS, Severity.HIGH,
    "Pickle deserialises a nested pickle",
    "The stream hands bytes to pickle.loads or a similar loader; constant nested bytes are "
    "scanned as their own entry as well.",
)
EXTENSION_CODE = rule(
    "pickle-extension-code", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "Pickle uses the copyreg extension registry (EXT1/2/4)",
    "The registry is empty unless the loading process registered codes, so a normal load "
    "fails; which callable the code names cannot be known from the file.",
)
OUT_OF_BAND = rule(
    "pickle-out-of-band-buffer", Verdict.SUSPICIOUS, Severity.LOW,
    "Pickle refers to out-of-band buffers",
    "Protocol 5 NEXT_BUFFER needs buffers supplied by the loader; a model file does not "
    "carry them.",
)
CALL_ON_VALUE = rule(
    "pickle-computed-call", Verdict.MALICIOUS, Severity.HIGH,
    "Pickle calls a computed value",
    "A call whose callable is not an imported global (a method fetched with getattr, the "
    "result of another call, a computed class) hides what runs from name-based scanners.",
)
COMPUTED_IMPORT = rule(
    "pickle-computed-import", Verdict.MALICIOUS, Severity.HIGH,
    "Pickle imports a name computed at load time",
    "STACK_GLOBAL takes its module or name from a value built while loading (for example "
    "str(b'os', 'ascii')) instead of a constant: what is imported cannot be known "
    "statically, so any module and callable can be reached.",
)
IMPORT_AFTER_BREAK = rule(
    "pickle-import-after-break", Verdict.MALICIOUS, Severity.HIGH,
    "A dangerous import follows the point where the stream breaks",
    "The bytes after the break hold an import of a dangerous callable. CPython stops at "
    "the break only if the break is real; a parser that disagrees with the scanner about "
    "where the stream breaks (a number spelling, an opcode argument) runs it.",
)
UNDEFINED_GLOBAL = rule(
    "pickle-undefined-global", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Pickle names a class the installed library does not define",
    "The name is only referenced or reconstructed, and the installed library's source "
    "proves it does not exist there (the module lacks it, or the package has no such "
    "module): with this library, loading raises in find_class before anything of the file "
    "runs. Another version of the library may define it with a __setstate__ that cannot be "
    "read here, so the object cannot be analysed.",
)
EMBEDDED_MODEL_COMPUTED = rule(
    "pickle-embedded-model-computed", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Pickle hands a model deserialiser bytes built at load time",
    "A Keras model pickles itself as its saved archive passed to a deserialiser; the "
    "archive is analysed as its own entry when it is constant. Built at load time, it "
    "cannot be analysed.",
)
TRAILING_DATA = rule(
    "pickle-trailing-data", Verdict.CLEAN, Severity.INFO,
    "Bytes after the last pickle",
    "pickle.load stops at STOP and never reads them; they do not parse as a further pickle.",
)
