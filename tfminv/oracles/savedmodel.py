"""A SavedModel directory as an oracle: loaded with tf.saved_model.load, queried by signature."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, OracleError, first_line
from tfminv.oracles.base import Oracle
from tfminv.oracles.checks import as_probabilities, check_deterministic


def resolve_savedmodel_dir(path: str | os.PathLike) -> Path:
    """Accept a SavedModel dir or a TF Serving model dir (BASE/NAME: its highest version)."""
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return p
    if p.is_dir():
        vs = sorted((int(c.name) for c in p.iterdir() if c.is_dir() and c.name.isdigit()))
        for v in reversed(vs):
            if (p / str(v) / "saved_model.pb").is_file():
                return p / str(v)
    raise ConfigError(f"{path}: not a SavedModel directory (no saved_model.pb, nor integer "
                      "version sub-directories holding one)")


def content_hash(sm_dir: Path) -> str:
    """Hash of the graph and the variable index (which carries per-tensor checksums)."""
    h = hashlib.sha256()
    for rel in ("saved_model.pb", "variables/variables.index"):
        f = sm_dir / rel
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


class SavedModelOracle(Oracle):
    """Query a SavedModel's signature in process: `savedmodel:DIR`.

    `input_key` defaults to the signature's only input, `output_key` to `probabilities` (or the
    only output). `outputs` (`checks.OUTPUTS`, default 'probabilities'; `softmax=True` is the
    older spelling of 'logits') says what the signature returns; it is checked at load time on
    a seeded probe batch, sent twice: answers that contradict the declaration, or that differ
    between the two sends (dropout or augmentation active in the exported graph), fail there in
    one line, and every later batch is read as declared (`checks.as_probabilities`).
    `target_noise='warn'` (`checks.TARGET_NOISE`) accepts answers that differ on purpose with
    one logged warning; `noise` then holds the measured max difference (else None).

    Loading and querying a SavedModel runs its graph in this process, with whatever ops it
    holds (file reads and writes included): load only models you trust, and audit any other
    through a served endpoint in a sandbox (docs/serving.md).
    """

    def __init__(self, path, *, signature: str = "serving_default", input_key: str | None = None,
                 output_key: str | None = None, softmax: bool = False,
                 outputs: str | None = None, target_noise: str = "refuse", **kwargs):
        import tensorflow as tf

        self.path = resolve_savedmodel_dir(path)
        kwargs.setdefault("name", f"savedmodel:{self.path}")
        outputs = outputs or ("logits" if softmax else "probabilities")
        super().__init__(outputs=outputs, **kwargs)
        try:
            loaded = tf.saved_model.load(str(self.path))
        except Exception as e:  # noqa: BLE001 - TF raises many types for a corrupt model
            raise ConfigError(f"{self.path}: cannot load SavedModel: {e}") from None
        if signature not in loaded.signatures:
            raise ConfigError(f"{self.path}: no signature {signature!r} "
                              f"(has {sorted(loaded.signatures)})")
        self._loaded = loaded  # keeps the variables alive
        self._fn = loaded.signatures[signature]
        self.signature = signature
        inputs = sorted(self._fn.structured_input_signature[1])
        if input_key is None:
            if len(inputs) != 1:
                raise ConfigError(f"{self.path}: signature {signature!r} has inputs {inputs}; "
                                  "pass input_key")
            input_key = inputs[0]
        elif input_key not in inputs:
            raise ConfigError(f"{self.path}: signature {signature!r} has no input {input_key!r} "
                              f"(has {inputs})")
        outputs = sorted(self._fn.structured_outputs)
        if output_key is None:
            output_key = ("probabilities" if "probabilities" in outputs
                          else outputs[0] if len(outputs) == 1 else None)
            if output_key is None:
                raise ConfigError(f"{self.path}: signature {signature!r} has outputs {outputs}; "
                                  "pass output_key")
        elif output_key not in outputs:
            raise ConfigError(f"{self.path}: signature {signature!r} has no output "
                              f"{output_key!r} (has {outputs})")
        self.input_key, self.output_key = input_key, output_key
        in_spec = self._fn.structured_input_signature[1][input_key]
        if in_spec.shape.rank is not None:
            if in_spec.shape.rank != 4:
                raise ConfigError(f"{self.path}: input {input_key!r} has shape {in_spec.shape}; "
                                  "a target takes one image batch [n, H, W, C]")
            self.input_shape = tuple(in_spec.shape.as_list()[1:])
        self.noise = None
        self._probe(in_spec.dtype, target_noise)
        self._hash = content_hash(self.path)

    def _probe(self, dtype, target_noise: str = "refuse") -> None:
        """Run the signature twice on a few seeded random images at load time (not counted as
        queries): outputs that contradict `outputs`, or that change between the two runs, fail
        here in one line."""
        import tensorflow as tf

        if self.input_shape is None or None in self.input_shape:
            return  # no shape to probe with; the first real batch is checked instead
        x = np.random.default_rng(0).random((4,) + self.input_shape)
        answers = []
        for _ in range(2):
            try:
                out = self._fn(**{self.input_key: tf.constant(x, dtype)})[self.output_key]
            except Exception as e:  # noqa: BLE001 - a broken graph fails in many TF error types
                raise ConfigError(f"{self.path}: signature {self.signature!r} fails on a probe "
                                  f"batch of shape {x.shape}: {first_line(e)}") from None
            out = out.numpy()
            answers.append(out.reshape(len(x), -1) if out.ndim != 2 else out)
        what = f"savedmodel:{self.path} (output {self.output_key!r})"
        self.noise = check_deterministic(answers[0], answers[1], what,
                                         target_noise=target_noise)
        as_probabilities(answers[0], self.outputs, what, partial=self.partial_release)

    def identity(self) -> str:
        return f"savedmodel:{self._hash}#{self.signature}/{self.output_key}{self._outputs_tag()}"

    def _predict(self, images):
        import tensorflow as tf

        try:
            out = self._fn(**{self.input_key: tf.constant(images)})[self.output_key]
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            raise OracleError(f"{self.name}: signature call failed: {first_line(e)}") from None
        return np.asarray(out.numpy(), np.float32)
