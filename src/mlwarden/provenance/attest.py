"""``mlwarden attest -- CMD``: run a training command and write its signed provenance.

The command runs with the attest bootstrap first on PYTHONPATH (every Python process of the
run records its reads and writes). Meanwhile this process indexes the Python environment, so
little is left for after the run: diff the output roots, hash outputs and inputs, assemble
the statement, validate it, sign it, write it atomically. A failed command gets no record.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden.provenance.capture import Capture, Snapshot, changed_files, read_logs, take_snapshot
from mlwarden.provenance.errors import AttestError
from mlwarden.provenance.probe import ENV_LOG_DIR

if TYPE_CHECKING:  # imported when needed: the command starts before they load
    from mlwarden.provenance.classify import Declared, Hasher
    from mlwarden.provenance.record import BuilderInfo, BuildRecord, Dependency
    from mlwarden.provenance.source import SourceInfo

BOOTSTRAP_DIR = Path(__file__).parent / "bootstrap"
CAPTURE_METHODS = ("audit-hook:open", "native:safetensors,pyarrow,transformers-resolve",
                   "proc-maps-at-exit", "output-snapshot-diff")


@dataclass(frozen=True)
class SignOptions:
    key: str | None = None
    password: str | None = None
    certificate: str | None = None
    chain: tuple[str, ...] = ()
    sigstore: bool = False
    identity_token: str | None = None
    use_staging: bool = False
    trust_config: str | None = None

    @property
    def method(self) -> str:
        if self.sigstore:
            return "sigstore"
        return "certificate" if self.certificate else "key"

    def quick_check(self) -> None:
        """What can be checked without the crypto stack (23 ms to import), before the
        command starts: the key file is a readable PEM private key, a Sigstore token is at
        hand. ``precheck`` (the key parses, the password is right, the curve is supported)
        runs while the command starts and stops it if it fails."""
        if self.sigstore:
            if not (self.identity_token or os.environ.get("SIGSTORE_ID_TOKEN")):
                self.precheck()  # ambient credentials: detect them now
            return
        if self.key is None:
            raise AttestError("no signer: give --key or --sigstore (or --unsigned)")
        try:
            head = Path(self.key).read_bytes()[:1 << 20]
        except FileNotFoundError:
            raise AttestError(f"{self.key}: no such key file") from None
        except OSError as exc:
            raise AttestError(f"{self.key}: cannot read key: {exc.strerror}") from None
        if b"-----BEGIN" not in head or b"PRIVATE KEY-----" not in head:
            raise AttestError(f"{self.key}: not a PEM private key")
        for f in (self.certificate, *self.chain):
            if f is not None and not os.access(f, os.R_OK):
                raise AttestError(f"cannot read {f}")

    def precheck(self) -> None:
        """Fail at the start of a long training run, not after it."""
        from mlwarden.signing.errors import SigningError
        from mlwarden.signing.statement import identity_token_from_env, load_ec_private_key

        try:
            if self.sigstore:
                identity_token_from_env(self.identity_token)
            elif self.key is not None:
                load_ec_private_key(self.key, self.password)
            else:
                raise AttestError("no signer: give --key or --sigstore (or --unsigned)")
        except SigningError as exc:
            raise AttestError(str(exc)) from exc

    def sign(self, statement: Mapping[str, Any]) -> bytes:
        from mlwarden.signing.errors import SigningError
        from mlwarden.signing.statement import sign_statement

        try:
            return sign_statement(statement, key=self.key, password=self.password,
                                  certificate=self.certificate, chain=self.chain,
                                  sigstore=self.sigstore, identity_token=self.identity_token,
                                  use_staging=self.use_staging, trust_config=self.trust_config)
        except SigningError as exc:
            raise AttestError(f"signing failed: {exc}") from exc


@dataclass(frozen=True)
class AttestOptions:
    command: tuple[str, ...]
    output: Path
    cwd: Path = field(default_factory=Path.cwd)
    outputs: tuple[Path, ...] = ()  # roots whose new/changed files are subjects; default cwd
    declared: Declared | None = None  # None: nothing declared
    image: str | None = None
    builder_id: str | None = None
    source_uri: str | None = None
    sign: SignOptions | None = None  # None: an unsigned statement
    environment: bool = True  # list the installed distributions
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class AttestResult:
    exit_code: int
    record: BuildRecord | None = None
    statement: dict[str, Any] | None = None
    output: Path | None = None
    warnings: tuple[str, ...] = ()
    # Seconds spent before starting the command, running it, and after it (the overhead).
    timings: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- assembling


def source_dependency(source: SourceInfo | None, env: Mapping[str, str],
                      override_uri: str | None, dirty_code: Sequence[str]) -> \
        tuple[Dependency | None, str | None]:
    """(the source dependency, the source URI for externalParameters)."""
    from mlwarden.provenance.builder import ci_source
    from mlwarden.provenance.record import Dependency

    repo, ci_commit, ci_ref = ci_source(env)
    if source is None and ci_commit is None:
        return None, override_uri
    commit = source.commit if source is not None else ci_commit
    ref = (source.ref if source is not None else None) or ci_ref
    repository = (source.repository if source is not None else None) or repo
    uri: str | None
    if override_uri:
        uri = override_uri
    elif repository:
        uri = f"git+{repository}" + (f"@{ref}" if ref else "")
    else:
        uri = f"git+file://{source.root}" if source is not None else None
    ann: dict[str, Any] = {"dirty": bool((source.modified if source else ()) or dirty_code)}
    if source is not None and source.modified:
        ann["modified"] = list(source.modified)
    if dirty_code:
        ann["codeOutsideCommit"] = sorted(dirty_code)
    if ref:
        ann["ref"] = ref
    return Dependency("source", None, uri, {"gitCommit": str(commit)} if commit else {},
                      ann), uri


def assemble(*, command: Sequence[str], cwd: str, capture: Capture, before: Snapshot,
             after: Snapshot, source: SourceInfo | None, builder: BuilderInfo,
             started: float, finished: float, exit_code: int, declared: Declared,
             exclude: Sequence[str], env: Mapping[str, str], sign_method: str | None,
             image: str | None = None, source_uri: str | None = None,
             dists: list[Dependency] | None = None, hasher: Hasher | None = None,
             extra_outputs: Sequence[str] = (),
             listed: Sequence[Any] | None = None) -> tuple[BuildRecord, list[str]]:
    """The BuildRecord of a finished run, plus warnings for the user."""
    from mlwarden.provenance.classify import (
        Hasher,
        classify,
        distributions,
        hash_outputs,
        image_dependency,
        interpreter,
    )
    from mlwarden.provenance.levels import assess
    from mlwarden.provenance.record import Artifact, BuildRecord

    warnings: list[str] = []
    h = hasher or Hasher()
    roots = after.roots
    excluded = [os.path.abspath(e) for e in exclude]

    def wanted(p: str) -> bool:
        return any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots) and \
            not any(p == e or p.startswith(e + "/") for e in excluded)

    written = {p for p in capture.writes if wanted(p)}
    outputs = [p for p in dict.fromkeys([*changed_files(before, after), *written,
                                         *extra_outputs]) if wanted(p)]
    subjects = tuple(Artifact(n, s, z) for n, s, z in hash_outputs(outputs, cwd, h))
    if not subjects:
        warnings.append("the command wrote no files under the output roots: the record has "
                        "no subjects")
    env_roots = capture.site_dirs()
    cls = classify(capture, cwd=cwd, outputs=outputs, source=source, declared=declared,
                   exclude=excluded, env_roots=env_roots, hasher=h)
    deps: list[Dependency] = list(cls.dependencies)
    src_dep, src_uri = source_dependency(source, env, source_uri, cls.dirty_code)
    if src_dep is not None:
        deps.insert(0, src_dep)
    else:
        warnings.append("the working directory is not a git checkout: no source commit is "
                        "recorded")
    interp = interpreter(capture)
    if interp is not None:
        deps.append(interp)
    if dists is None and capture.main is not None:
        dists = distributions(list(capture.main.sys_path), cls.env_reads, listed)
    deps.extend(dists or [])
    if image:
        deps.append(image_dependency(image))
    if not capture.processes:
        warnings.append("no Python process of the command was recorded (not Python, or run "
                        "with -I/-S): what it read is unknown; declare inputs with --dataset "
                        "/ --config / --input")
    if src_dep is not None and src_dep.annotations.get("dirty"):
        warnings.append("the source tree was dirty: code outside the commit is listed with "
                        "its sha256")
    rel_cwd = os.path.relpath(cwd, source.root) if source is not None and \
        (cwd == str(source.root) or cwd.startswith(str(source.root) + "/")) else cwd
    capture_notes: dict[str, Any] = {
        "methods": list(CAPTURE_METHODS), "processes": len(capture.processes),
        "complete": bool(capture.processes), "ignoredReads": dict(sorted(cls.ignored.items())),
        "outputRoots": [os.path.relpath(r, cwd) if r.startswith(cwd) else r for r in roots]}
    if capture.damaged_lines:
        capture_notes["damagedLogLines"] = capture.damaged_lines
    record = BuildRecord(
        command=tuple(command), working_directory=rel_cwd.replace(os.sep, "/"),
        subjects=subjects, dependencies=tuple(deps), builder=builder, started=started,
        finished=finished, exit_code=exit_code, source_uri=src_uri,
        level=assess(builder, sign_method), capture=capture_notes)
    return record, warnings


def render_record(record: BuildRecord, sign: SignOptions | None) -> \
        tuple[dict[str, Any], bytes]:
    """Validate and sign (or not): (the statement, the bytes to write)."""
    import json

    from mlwarden.provenance.record import to_statement, validate_statement

    if not record.subjects:
        raise AttestError("the run wrote no output files under the output roots: there is "
                          "nothing to attest (see --outputs)")
    stmt = to_statement(record)
    try:
        validate_statement(stmt)
    except ValueError as exc:
        raise AttestError(f"internal error: the generated statement is invalid: {exc}") \
            from exc
    data = sign.sign(stmt) if sign is not None else \
        (json.dumps(stmt, indent=2, sort_keys=True) + "\n").encode()
    return stmt, data


def _write(output: Path, data: bytes) -> None:
    from mlwarden.util.fs import atomic_write_bytes

    try:
        atomic_write_bytes(output, data)
    except OSError as exc:
        raise AttestError(f"cannot write {output}: {exc.strerror or exc}") from exc


def write_record(record: BuildRecord, output: Path, sign: SignOptions | None) -> dict[str, Any]:
    """Validate, sign (or not), write atomically; returns the statement."""
    stmt, data = render_record(record, sign)
    _write(output, data)
    return stmt


# ----------------------------------------------------------------------------- running


@contextlib.contextmanager
def _forward_signals(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Ctrl-C and SIGTERM go to the training command; we wait for it to finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Prepare(threading.Thread):
    """Everything that need not precede the command, done while its interpreter starts (an
    otherwise idle core): check the signer and the image reference, detect the builder,
    load what assembling and signing need, then list the environment's distributions (the
    first process's sys.path is in its start record). A bad signer or image stops the
    command at once instead of failing after a long run."""

    def __init__(self, opts: AttestOptions, env: Mapping[str, str], logdir: Path,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True, name="attest-prepare")
        self.opts, self.env, self.logdir, self.stop = opts, env, logdir, stop
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: AttestError | None = None
        self.builder: BuilderInfo | None = None
        self.checked = threading.Event()
        self.paths: list[str] | None = None
        self.listed: list[Any] | None = None
        # Set by attest(): assembles and signs the record of what is on disk now.
        self.finish: Callable[[float], _Finished] | None = None
        self.speculated: _Finished | None = None

    def check(self) -> None:
        from mlwarden.provenance.builder import detect_builder
        from mlwarden.provenance.classify import image_dependency

        try:
            if self.opts.sign is not None:
                self.opts.sign.precheck()
            if self.opts.image:
                try:
                    image_dependency(self.opts.image)
                except ValueError as exc:
                    raise AttestError(f"--image-digest: {exc}") from None
            self.builder = detect_builder(self.env, self.opts.builder_id)
        except AttestError as exc:
            self.error = exc
        finally:
            self.checked.set()

    def run(self) -> None:
        self.check()
        if self.error is not None:
            if self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()
            return
        _warm_imports()
        if self.opts.environment:
            self._index()
        self._speculate()

    def _index(self) -> None:
        from mlwarden.provenance.environment import scan

        while not self.stop.wait(0.05):
            cap = read_logs(self.logdir)
            if cap.main is not None:
                self.paths = list(cap.main.sys_path)
                break
        if self.paths is not None:
            with contextlib.suppress(Exception):
                self.listed = scan(self.paths)

    def _speculate(self) -> None:
        """A Python command ends with interpreter teardown (0.46 s for the toy Trainer run:
        torch's finalisers) after the probe's last exit handler has run and marked the
        log. The record is put together and signed meanwhile; attest() uses it only if,
        once the command has exited, neither the logs nor the output roots changed since.
        A Sigstore signature is never made speculatively: it would leave a
        transparency-log entry behind."""
        if self.proc is None or self.finish is None or \
                (self.opts.sign is not None and self.opts.sign.sigstore):
            return
        marker = os.path.join(self.logdir, f"{self.proc.pid}.exit")
        while not self.stop.wait(0.01):
            if os.path.exists(marker):
                with contextlib.suppress(Exception):  # any doubt: done again after exit
                    self.speculated = self.finish(time.time())
                return


@dataclass(frozen=True)
class _Finished:
    logs: tuple[tuple[str, int, int], ...]
    outputs: dict[str, Any]
    record: BuildRecord
    warnings: list[str]
    statement: dict[str, Any]
    data: bytes


def _log_state(logdir: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for e in os.scandir(logdir):
        with contextlib.suppress(OSError):
            st = e.stat()
            out.append((e.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def _warm_imports() -> None:
    """What validating and signing will need, loaded while the command still runs (on an
    otherwise idle core), not after it."""
    with contextlib.suppress(ImportError):
        import cryptography.hazmat.primitives.asymmetric.ec
        import cryptography.hazmat.primitives.serialization  # noqa: F401
        import google.protobuf.json_format  # noqa: F401
        import in_toto_attestation.predicates.provenance.v1.provenance_pb2
        import in_toto_attestation.v1.resource_descriptor
        import in_toto_attestation.v1.statement  # noqa: F401

        import mlwarden.provenance.classify
        import mlwarden.provenance.levels
        import mlwarden.provenance.record
        import mlwarden.scan.sniff
        import mlwarden.util.fs  # noqa: F401


def child_environment(base: Mapping[str, str], logdir: Path) -> dict[str, str]:
    env = dict(base)
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(BOOTSTRAP_DIR) + (os.pathsep + old if old else "")
    env[ENV_LOG_DIR] = str(logdir)
    return env


def attest(opts: AttestOptions) -> AttestResult:
    t_enter = time.perf_counter()
    if not opts.command:
        raise AttestError("no command to run: mlwarden attest --output FILE -- CMD ...")
    env = dict(os.environ if opts.env is None else opts.env)
    out = opts.output.resolve()
    if out.parent.exists() and not out.parent.is_dir():
        raise AttestError(f"cannot write {opts.output}: {out.parent} is not a directory")
    if opts.sign is not None:
        opts.sign.quick_check()
    cwd = str(opts.cwd.resolve())
    # The tree is read by git while the command starts (its interpreter takes longer to
    # come up than git takes): a tracked file the command changes at once can only make the
    # record say "dirty", never hide a change.
    git_result: list[SourceInfo | None] = []

    def read_git() -> None:
        from mlwarden.provenance.source import git_source

        git_result.append(git_source(cwd, env))

    git_thread = threading.Thread(target=read_git, name="attest-git", daemon=True)
    roots = [str(r.resolve()) for r in opts.outputs] or [cwd]
    logdir = Path(tempfile.mkdtemp(prefix="mlwarden-attest-"))
    exclude = [str(logdir), str(out)]
    try:
        before = take_snapshot(roots, exclude)
        stop = threading.Event()
        prep = _Prepare(opts, env, logdir, stop)
        started = time.time()
        t_start = time.perf_counter()
        try:
            proc = subprocess.Popen(list(opts.command), cwd=cwd,
                                    env=child_environment(env, logdir))
        except FileNotFoundError:
            raise AttestError(f"{opts.command[0]}: command not found") from None
        except OSError as exc:
            raise AttestError(f"cannot run {opts.command[0]}: {exc.strerror}") from None
        prep.proc = proc

        def finish(finished: float) -> _Finished:
            from mlwarden.provenance.classify import Declared

            git_thread.join()
            logs = _log_state(logdir)
            capture = read_logs(logdir)
            after = take_snapshot(roots, exclude)
            dists: list[Dependency] | None = [] if not opts.environment else None
            listed = prep.listed if opts.environment and capture.main is not None and \
                prep.paths == list(capture.main.sys_path) else None
            assert prep.builder is not None
            record, warnings = assemble(
                command=opts.command, cwd=cwd, capture=capture, before=before, after=after,
                source=git_result[0] if git_result else None, builder=prep.builder,
                started=started, finished=finished, exit_code=0,
                declared=opts.declared or Declared(), exclude=exclude, env=env,
                sign_method=opts.sign.method if opts.sign is not None else None,
                image=opts.image, source_uri=opts.source_uri, dists=dists, listed=listed)
            stmt, data = render_record(record, opts.sign)
            return _Finished(logs, after.files, record, warnings, stmt, data)

        prep.finish = finish
        prep.start()
        git_thread.start()
        with _forward_signals(proc):
            code = proc.wait()
        finished = time.time()
        t_end = time.perf_counter()
        prep.checked.wait()
        if prep.error is not None:
            raise AttestError(f"{prep.error}; the command was stopped") from None
        stop.set()
        prep.join()
        git_thread.join()
        if code != 0:
            return AttestResult(code, warnings=(f"the command exited with status {code}: no "
                                                "provenance is written for a failed run",))
        done = prep.speculated
        if done is None or done.logs != _log_state(logdir) or \
                done.outputs != take_snapshot(roots, exclude).files:
            done = finish(finished)
        _write(out, done.data)
        return AttestResult(0, done.record, done.statement, out, tuple(done.warnings), {
            "before": round(t_start - t_enter, 4), "command": round(t_end - t_start, 4),
            "after": round(time.perf_counter() - t_end, 4),
            "speculated": float(done is prep.speculated)})
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
