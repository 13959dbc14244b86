"""The lint rule catalogue. ``title`` is the rule's one-line statement, ``help`` the fix.

Severity policy: an explicit opt-out of a safety default (``weights_only=False``,
``use_safetensors=False``, ``safe_mode=False``, ``trust_remote_code=True``) or an http Hub
endpoint is HIGH; a risky default or a deserializer that is only unsafe on untrusted input
is MEDIUM; hygiene of the suppression comments themselves is LOW. Every lint finding is
SUSPICIOUS (the code is risky, not malicious); a file we could not parse is UNSCANNABLE.
"""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import Rule, rule

_S = Verdict.SUSPICIOUS

TRUST_REMOTE_CODE = rule(
    "lint-trust-remote-code", _S, Severity.HIGH,
    "trust_remote_code=True runs Python code from the model repository",
    "Remove trust_remote_code=True and use a model whose architecture ships with the "
    "library, or vendor the reviewed modelling code and pin the revision to a commit sha.",
)
TORCH_LOAD_UNSAFE = rule(
    "lint-torch-load-weights-only-false", _S, Severity.HIGH,
    "torch.load with weights_only=False unpickles arbitrary objects (code execution)",
    "Pass weights_only=True (allowlist extra types with torch.serialization."
    "add_safe_globals), or store weights as safetensors.",
)
TORCH_LOAD_IMPLICIT = rule(
    "lint-torch-load-implicit", _S, Severity.MEDIUM,
    "torch.load without an explicit weights_only=True depends on the torch version",
    "Pass weights_only=True explicitly: before torch 2.6 the default is False, and "
    "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns it off again on newer versions.",
)
UNPINNED_REVISION = rule(
    "lint-unpinned-revision", _S, Severity.MEDIUM,
    "Hub download without a revision pinned to a 40-hex commit sha",
    "Pass revision='<40-hex commit sha>' (a branch or tag can be moved to new content); "
    "for torch.hub use 'owner/repo:<commit sha>'.",
)
USE_SAFETENSORS_FALSE = rule(
    "lint-use-safetensors-false", _S, Severity.HIGH,
    "use_safetensors=False forces pickle-based weight files",
    "Remove use_safetensors=False (or set it to True) so weights load from safetensors.",
)
PICKLE_LOAD = rule(
    "lint-pickle-load", _S, Severity.MEDIUM,
    "Pickle-based deserialization executes code embedded in the data",
    "Load only data you produced, or switch to a data-only format (safetensors, JSON, "
    "numpy without pickles, skops for scikit-learn); scan files with `mlwarden scan` first.",
)
NUMPY_ALLOW_PICKLE = rule(
    "lint-numpy-allow-pickle", _S, Severity.MEDIUM,
    "numpy.load with allow_pickle=True unpickles object arrays",
    "Keep allow_pickle=False (the default) and store object data in a data-only format.",
)
KERAS_UNSAFE = rule(
    "lint-keras-unsafe-mode", _S, Severity.HIGH,
    "Keras safe_mode=False allows Lambda layers to deserialize arbitrary code",
    "Keep safe_mode=True (the default) and do not call enable_unsafe_deserialization().",
)
HF_ENDPOINT_HTTP = rule(
    "lint-hf-endpoint-http", _S, Severity.HIGH,
    "HF_ENDPOINT over plain http lets the network tamper with every download and see tokens",
    "Use an https:// endpoint (loopback http:// mirrors are not flagged).",
)
SUPPRESSION_NO_REASON = rule(
    "lint-suppression-without-reason", _S, Severity.LOW,
    "An inline suppression must give a reason; this one does not suppress anything",
    "Write `# mlwarden: ignore[RULE] why this is safe here`.",
)
SUPPRESSION_INVALID = rule(
    "lint-suppression-invalid", _S, Severity.LOW,
    "Malformed inline suppression (no rule list, or an unknown rule id)",
    "Write `# mlwarden: ignore[RULE] reason` with an existing lint rule id.",
)
UNPARSABLE = rule(
    "lint-unparsable", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "The file could not be parsed, so it was not linted",
    "Fix the syntax or encoding error (lint runs the Python 3 grammar of the running "
    "interpreter).",
)

LINT_RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        TRUST_REMOTE_CODE, TORCH_LOAD_UNSAFE, TORCH_LOAD_IMPLICIT, UNPINNED_REVISION,
        USE_SAFETENSORS_FALSE, PICKLE_LOAD, NUMPY_ALLOW_PICKLE, KERAS_UNSAFE,
        HF_ENDPOINT_HTTP, SUPPRESSION_NO_REASON, SUPPRESSION_INVALID, UNPARSABLE,
    )
}
