"""The Python API: record provenance from inside a training script, with the same capture
and the same record as ``mlwarden attest``::

    from mlwarden.provenance import Recorder

    with Recorder(outputs=["out"]) as rec:      # start before the data is opened
        train()
    rec.write("out/provenance.json", key="signing.pem")

Reads are seen through the same audit hook (this process only: start child processes under
``mlwarden attest`` to see theirs), outputs through the same before/after snapshot.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from mlwarden.provenance.attest import SignOptions, assemble, write_record
from mlwarden.provenance.builder import detect_builder
from mlwarden.provenance.capture import Capture, ProcessInfo, Snapshot, take_snapshot
from mlwarden.provenance.classify import Declared
from mlwarden.provenance.errors import AttestError
from mlwarden.provenance.levels import assess
from mlwarden.provenance.probe import Probe
from mlwarden.provenance.record import BuilderInfo, BuildRecord, to_statement
from mlwarden.provenance.source import SourceInfo, git_source

_probe: Probe | None = None
_lock = threading.Lock()
_owner: Recorder | None = None


def _shared_probe() -> Probe:
    """One audit hook per process (audit hooks cannot be removed): recorders take turns."""
    global _probe
    if _probe is None:
        _probe = Probe()
        _probe.active = False
        sys.addaudithook(_probe.audit)
        _probe.install_native_hooks()
    return _probe


class Recorder:
    def __init__(self, outputs: Sequence[str | os.PathLike[str]] = (), *,
                 cwd: str | os.PathLike[str] | None = None,
                 datasets: Sequence[str | os.PathLike[str]] = (),
                 configs: Sequence[str | os.PathLike[str]] = (),
                 inputs: Sequence[str | os.PathLike[str]] = (),
                 ignore: Sequence[str | os.PathLike[str]] = (), image: str | None = None,
                 builder_id: str | None = None, source_uri: str | None = None,
                 environment: bool = True, command: Sequence[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.roots = [os.path.abspath(os.path.join(self.cwd, o)) for o in outputs] or \
            [self.cwd]
        self.declared = Declared(tuple(map(str, datasets)), tuple(map(str, configs)),
                                 tuple(map(str, inputs)), tuple(map(str, ignore)))
        self.image = image
        self.builder_id = builder_id
        self.source_uri = source_uri
        self.environment = environment
        self.command = tuple(command) if command is not None else \
            (sys.executable, *sys.argv)
        self.env = dict(os.environ if env is None else env)
        self.exclude: list[str] = []
        self._before: Snapshot | None = None
        self._source: SourceInfo | None = None
        self._builder: BuilderInfo | None = None
        self._started = 0.0
        self._record: BuildRecord | None = None
        self.warnings: list[str] = []

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Recorder:
        global _owner
        with _lock:
            if _owner is not None and _owner is not self:
                raise AttestError("another Recorder is already recording in this process")
            _owner = self
        self._source = git_source(self.cwd, self.env)
        self._builder = detect_builder(self.env, self.builder_id)
        self._before = take_snapshot(self.roots, self.exclude)
        probe = _shared_probe()
        probe.reset()
        self._started = time.time()
        probe.active = True
        return self

    def record(self, sign_method: str | None = None) -> BuildRecord:
        """The record of everything so far; recording continues."""
        if self._before is None or self._builder is None:
            raise AttestError("the recorder was not started")
        probe = _shared_probe()
        was = probe.active
        probe.active = True
        probe.busy = True
        probe.scan_maps()
        # Code that ran before start(): the script itself and the modules it imported.
        for m in list(sys.modules.values()):
            f = getattr(m, "__file__", None)
            if isinstance(f, str) and os.path.isfile(f):
                probe.note("r", f, "sys.modules")
        probe.busy = False
        probe.active = was
        reads, writes = probe.paths()
        capture = Capture(reads, writes, (ProcessInfo(
            os.getpid(), sys.executable, tuple(sys.path), sys.prefix, sys.base_prefix,
            sys.version.split()[0], os.getcwd()),))
        after = take_snapshot(self.roots, self.exclude)
        rec, self.warnings = assemble(
            command=self.command, cwd=self.cwd, capture=capture, before=self._before,
            after=after, source=self._source, builder=self._builder, started=self._started,
            finished=time.time(), exit_code=0, declared=self.declared, exclude=self.exclude,
            env=self.env, sign_method=sign_method, image=self.image,
            source_uri=self.source_uri, dists=None if self.environment else [])
        self._record = rec
        return rec

    def stop(self) -> BuildRecord:
        global _owner
        rec = self.record()
        _shared_probe().active = False
        with _lock:
            if _owner is self:
                _owner = None
        return rec

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _owner
        if et is None:
            self.stop()
        else:  # a failed run gets no record
            _shared_probe().active = False
            with _lock:
                if _owner is self:
                    _owner = None

    # -- output -----------------------------------------------------------------------

    def statement(self) -> dict[str, Any]:
        rec = self._record or self.record()
        return to_statement(rec)

    def write(self, output: str | os.PathLike[str], *, key: str | None = None,
              password: str | None = None, certificate: str | None = None,
              chain: Sequence[str] = (), sigstore: bool = False,
              identity_token: str | None = None, use_staging: bool = False,
              trust_config: str | None = None, unsigned: bool = False) -> dict[str, Any]:
        """Validate, sign (key, certificate or Sigstore; or ``unsigned=True``) and write the
        record atomically. The file itself is never one of the subjects."""
        out = os.path.abspath(output)
        if out not in self.exclude:
            self.exclude.append(out)
        sign = None if unsigned else SignOptions(key, password, certificate, tuple(chain),
                                                 sigstore, identity_token, use_staging,
                                                 trust_config)
        if sign is not None:
            sign.precheck()
        rec = self.record(sign.method if sign is not None else None) \
            if self._record is None or _owner is self else self._record
        rec = replace(rec, level=assess(rec.builder, sign.method if sign else None))
        return write_record(rec, Path(out), sign)
