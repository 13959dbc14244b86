"""Verify on load with signatures: before the first file of a model is opened, the guard
checks that the model carries a valid OpenSSF model-signing signature from an identity the
configuration trusts for that model (``[guard.signing]``), once per model directory.

What is verified is exactly what the manifest pins: every pinned file is placed in a private
directory (a hard link, or a copy where a link is impossible), hashed there against the
manifest, and that directory is handed to ``mlwarden.signing.verify_model_signature``. So
the signature vouches for the pinned bytes, and the guard's per-open sha256 check ties every
later open to them. A private directory is needed anyway: the view of the store and the
Hugging Face cache are trees of symlinks, which model_signing refuses to hash.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlwarden.guard import rules as G
from mlwarden.manifest import ModelEntry
from mlwarden.policy.config import PolicyError, load_table
from mlwarden.report.rules import Rule
from mlwarden.signing import SignaturePolicy, SigningError, verify_model_signature

ENV_CONFIG = "MLWARDEN_GUARD_SIGNING_CONFIG"
ENV_REQUIRE = "MLWARDEN_GUARD_REQUIRE_SIGNATURE"
ENV_KEYS = "MLWARDEN_GUARD_SIGNING_KEYS"
TABLE = ("guard", "signing")
DEFAULT_SIGNATURE = "model.sig"
_ANCHORS = ("public-keys", "certificate-chain", "identities", "trust-root")
_PLACEHOLDERS = {"repo": "org/name", "org": "org", "name": "name", "commit": "0" * 40}


@dataclass(frozen=True)
class ModelTrust:
    """Who may sign the models whose id matches ``match`` (a glob on ORG/NAME)."""

    match: str
    policy: SignaturePolicy
    signature: str = DEFAULT_SIGNATURE  # inside the model dir, or absolute with placeholders

    @property
    def checks(self) -> bool:
        p = self.policy
        return p.require or bool(p.public_keys or p.certificate_chain or p.identities)

    def signature_for(self, repo: str, commit: str) -> str:
        org, _, name = repo.partition("/")
        return self.signature.format_map({"repo": repo, "org": org, "name": name,
                                          "commit": commit})


@dataclass(frozen=True)
class GuardSigning:
    """The guard's signing configuration: per-model entries (first match wins), then the
    table's own settings for every other model."""

    default: ModelTrust
    models: tuple[ModelTrust, ...] = ()
    source: str = "<mapping>"

    def for_model(self, repo: str) -> ModelTrust:
        for m in self.models:
            if fnmatch.fnmatchcase(repo, m.match):
                return m
        return self.default


def _trust(data: Mapping[str, Any], base: Path, where: str, match: str,
           inherited: Mapping[str, Any]) -> ModelTrust:
    own = {k: v for k, v in data.items() if k not in ("match", "signature")}
    if not any(k in own for k in _ANCHORS):  # an entry without anchors inherits them
        own.update({k: v for k, v in inherited.items() if k in _ANCHORS})
    elif "identities" in own:  # who may sign these models, under the table's CA / root
        own.update({k: v for k, v in inherited.items()
                    if k in ("certificate-chain", "trust-root") and k not in own})
    own.setdefault("require", inherited.get("require", True))
    if not isinstance(own["require"], bool):
        raise PolicyError(f"{where}.require: expected true or false")
    sig = data.get("signature", inherited.get("signature", DEFAULT_SIGNATURE))
    if not isinstance(sig, str) or not sig:
        raise PolicyError(f"{where}.signature: expected a path")
    try:
        sig.format_map(_PLACEHOLDERS)
    except (KeyError, ValueError, IndexError) as exc:
        raise PolicyError(f"{where}.signature: only {{repo}}, {{org}}, {{name}} and "
                          f"{{commit}} may be substituted ({exc})") from None
    if not os.path.isabs(sig) and ("{" in sig or sig.startswith("..")):
        raise PolicyError(f"{where}.signature: a relative signature path names a file of the "
                          "model (no placeholders, no ..); use an absolute path for "
                          "signatures kept elsewhere")
    try:
        policy = SignaturePolicy.from_mapping(own, base=base)
    except SigningError as exc:
        raise PolicyError(f"{where}: {exc}".replace("signing: signing.", "signing.")) \
            from None
    for p in (*policy.public_keys, *policy.certificate_chain,
              *([policy.trust_root] if policy.trust_root else [])):
        if not p.is_file():
            raise PolicyError(f"{where}: {p}: no such file")
    return ModelTrust(match, policy, sig)


def _anchored(t: ModelTrust) -> bool:
    p = t.policy
    return bool(p.public_keys or p.certificate_chain or any(i.issuer for i in p.identities))


def signing_from_mapping(data: Mapping[str, Any], base: str | os.PathLike[str] = ".",
                         source: str = "<mapping>", require: bool | None = None,
                         public_keys: Sequence[str | os.PathLike[str]] = ()) -> GuardSigning:
    """Build from a ``[guard.signing]`` table. ``require=True`` (``--require-signature``)
    forces signatures for every model; ``public_keys`` are trusted for every model without
    its own anchors. Any problem is a PolicyError (one line)."""
    root = Path(base)
    top = dict(data)
    unknown = set(top) - {"require", "signature", "models", *_ANCHORS}
    if unknown:
        raise PolicyError(f"{source}: unknown guard.signing keys {', '.join(sorted(unknown))}")
    models = top.pop("models", [])
    if not isinstance(models, list):
        raise PolicyError(f"{source}: guard.signing.models must be an array of tables")
    if public_keys:
        listed = top.get("public-keys", [])
        listed = [listed] if isinstance(listed, str) else list(listed)
        top["public-keys"] = [*listed, *(os.path.abspath(k) for k in public_keys)]
    if require is not None:
        top["require"] = require
    entries = []
    for i, m in enumerate(models):
        where = f"guard.signing.models[{i}]"
        if not isinstance(m, Mapping) or not isinstance(m.get("match"), str) or \
                not m["match"]:
            raise PolicyError(f"{where}: needs match = \"ORG/NAME glob\"")
        if require is not None:
            m = {**m, "require": require}
        entries.append(_trust(m, root, where, m["match"], top))
    signing = GuardSigning(_trust(top, root, "guard.signing", "*", {}), tuple(entries), source)
    every = (signing.default, *signing.models)
    if any(t.policy.require for t in every) and not any(_anchored(t) for t in every):
        # A model entry may leave the rest unanchored (only its models can load), but
        # requiring signatures while trusting nobody is a mistake, not a policy.
        raise PolicyError(f"{source}: signatures are required but no public key, "
                          "certificate chain or Sigstore identity (with issuer) is configured")
    return signing


def load_guard_signing(path: str | os.PathLike[str] | None = None,
                       search_dir: str | os.PathLike[str] | None = None, *,
                       require: bool | None = None,
                       public_keys: Sequence[str | os.PathLike[str]] = (),
                       search: bool = True) -> tuple[GuardSigning | None, Path | None]:
    """``[guard.signing]`` from ``path``, else (with ``search``) mlwarden.toml /
    pyproject.toml in ``search_dir``; overridden by ``require`` and extra ``public_keys``.
    Returns (None, None) when nothing asks for signatures."""
    table, found = (None, None)
    if path is not None or search:
        table, found = load_table(TABLE, path, search_dir)
    if table is None and not require and not public_keys:
        return None, found
    base = found.parent if found is not None else Path(".")
    signing = signing_from_mapping(table or {}, base, str(found or "--require-signature"),
                                   require, public_keys)
    return signing, found


def signing_env(config: Path | None, require: bool,
                public_keys: Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    """What ``mlwarden run`` passes to the bootstrap (absolute paths)."""
    env: dict[str, str] = {}
    if config is not None:
        env[ENV_CONFIG] = str(config.resolve())
    if require:
        env[ENV_REQUIRE] = "1"
    if public_keys:
        env[ENV_KEYS] = os.pathsep.join(os.path.abspath(k) for k in public_keys)
    return env


def signing_from_env(env: Mapping[str, str]) -> GuardSigning | None:
    keys = [k for k in env.get(ENV_KEYS, "").split(os.pathsep) if k]
    signing, _ = load_guard_signing(env.get(ENV_CONFIG) or None, require=True
                                    if env.get(ENV_REQUIRE) == "1" else None,
                                    public_keys=keys, search=False)
    return signing


# ----------------------------------------------------------------------------- checking


Failure = tuple[Rule, str]


def _place(src: Path, dst: Path) -> bool:
    """Hard-link the real file (no bytes copied); copy where that is impossible (another
    filesystem, protected_hardlinks). Returns True for a link."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    real = os.path.realpath(src)
    try:
        os.link(real, dst)
        return True
    except OSError:
        shutil.copyfile(real, dst)
        return False


@dataclass
class SignatureGate:
    """Verifies each model once (per repo, commit and directory) and remembers the outcome.

    ``hash_linked`` may cache by inode (a link shares the original's, so the later opens of
    the model's files hit that cache); ``hash_plain`` is used for private copies."""

    signing: GuardSigning
    hash_linked: Callable[[str], str]
    hash_plain: Callable[[str], str]
    outcomes: dict[tuple[str, str, str], Failure | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    verified: int = 0

    def check(self, repo: str, entry: ModelEntry, model_dir: Path,
              fetch: Callable[[str], Path] | None = None) -> None:
        """Raise GuardViolation unless ``repo`` at the pinned commit is signed as
        configured. ``fetch(rel)`` completes a partially downloaded HF cache snapshot."""
        from mlwarden.guard.core import GuardViolation

        trust = self.signing.for_model(repo)
        if not trust.checks:
            return
        key = (repo, entry.commit, os.path.abspath(model_dir))
        with self.lock:
            if key in self.outcomes:
                outcome = self.outcomes[key]
            else:
                outcome, final = self._verify(repo, entry, model_dir, trust, fetch)
                if final:
                    self.outcomes[key] = outcome
        if outcome is not None:
            raise GuardViolation(*outcome)

    def _verify(self, repo: str, entry: ModelEntry, model_dir: Path, trust: ModelTrust,
                fetch: Callable[[str], Path] | None) -> tuple[Failure | None, bool]:
        """(failure or None, whether the outcome may be cached)."""
        who = f"{repo}@{entry.commit[:12]}"
        tmp = Path(tempfile.mkdtemp(prefix="mlwarden-sigcheck-"))
        try:
            tree = tmp / "model"
            tree.mkdir()
            for rel, mf in sorted(entry.files.items()):
                src = model_dir / rel
                if not os.path.lexists(src) and fetch is not None:
                    try:
                        src = fetch(rel)
                    except Exception as exc:  # network: not cached, a retry may succeed
                        return (G.SIGNATURE, f"{who}: cannot fetch {rel} to verify the "
                                f"model signature: {exc}"), False
                dst = tree / rel
                try:
                    got = self.hash_linked(str(dst)) if _place(src, dst) \
                        else self.hash_plain(str(dst))
                except OSError as exc:
                    return (G.HASH_MISMATCH, f"{who}: cannot read {rel} to verify the "
                            f"model signature: {exc.strerror or exc}"), True
                if got != mf.sha256:
                    return (G.HASH_MISMATCH, f"{who}: {rel}: sha256 {got} does not match "
                            f"the pinned {mf.sha256}"), True
            sig_text = trust.signature_for(repo, entry.commit)
            sig = Path(sig_text) if os.path.isabs(sig_text) else tree / sig_text
            if not sig.is_file():
                if not trust.policy.require:
                    return None, True
                where = sig_text if os.path.isabs(sig_text) else \
                    f"{sig_text} in the model (pinned files: {len(entry.files)})"
                return (G.SIGNATURE_MISSING, f"{who} has no signature ({where}) and "
                        f"{self.signing.source} requires one"), True
            result = verify_model_signature(tree, replace(trust.policy, signature=str(sig)))
            self.verified += 1
            if result.ok:
                return None, True
            tried = "; ".join(result.tried)
            return (G.SIGNATURE, f"{who}: no trusted signature: {result.error}"
                    + (f" ({tried})" if tried else "")), True
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
