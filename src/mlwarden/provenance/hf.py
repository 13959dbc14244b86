"""A transformers ``TrainerCallback`` that writes the same provenance as ``mlwarden attest``::

    from mlwarden.provenance.hf import ProvenanceCallback

    cb = ProvenanceCallback("out/provenance.json", key="signing.pem")
    trainer = Trainer(..., callbacks=[cb])
    trainer.train()            # the record is written at the end of training
    trainer.save_model()
    cb.finalize()              # and rewritten to include what save_model wrote

Only the main process (``state.is_world_process_zero``) records; the outputs are the files
written under ``args.output_dir`` unless ``outputs`` is given. Datasets opened before
``on_train_begin`` (tokenised up front, for example) are not seen: declare them with
``datasets=[...]`` or create the callback's recorder earlier with ``start()``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from mlwarden.provenance.recorder import Recorder


class ProvenanceCallback(TrainerCallback):
    def __init__(self, output: str | os.PathLike[str], *,
                 outputs: Sequence[str | os.PathLike[str]] | None = None,
                 key: str | None = None, password: str | None = None,
                 certificate: str | None = None, chain: Sequence[str] = (),
                 sigstore: bool = False, identity_token: str | None = None,
                 unsigned: bool = False, datasets: Sequence[str | os.PathLike[str]] = (),
                 configs: Sequence[str | os.PathLike[str]] = (),
                 builder_id: str | None = None, image: str | None = None) -> None:
        self.output = os.path.abspath(output)
        self.outputs = list(outputs) if outputs is not None else None
        self.sign: dict[str, Any] = {"key": key, "password": password,
                                     "certificate": certificate, "chain": tuple(chain),
                                     "sigstore": sigstore, "identity_token": identity_token,
                                     "unsigned": unsigned}
        self.datasets, self.configs = datasets, configs
        self.builder_id, self.image = builder_id, image
        self.recorder: Recorder | None = None
        self.statement: dict[str, Any] | None = None

    def start(self, output_dir: str | os.PathLike[str] | None = None) -> Recorder:
        if self.recorder is None:
            roots = self.outputs if self.outputs is not None else \
                [output_dir or os.getcwd()]
            self.recorder = Recorder(roots, datasets=self.datasets, configs=self.configs,
                                     builder_id=self.builder_id, image=self.image)
            self.recorder.exclude.append(self.output)
            self.recorder.start()
        return self.recorder

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.start(args.output_dir)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Nothing saved yet (save_strategy="no"): finalize() writes the record after
        # save_model().
        if state.is_world_process_zero and self.recorder is not None and \
                self.recorder.record().subjects:
            self.statement = self.recorder.write(self.output, **self.sign)

    def finalize(self) -> dict[str, Any]:
        """Stop recording and rewrite the record with everything written so far."""
        if self.recorder is None:
            raise RuntimeError("training has not started: nothing to record")
        self.recorder.stop()
        self.statement = self.recorder.write(self.output, **self.sign)
        return self.statement
