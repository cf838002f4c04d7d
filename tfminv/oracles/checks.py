"""Checks on a target before an attack relies on it: each failure is one line (a TfminvError)
naming the target and what was found, instead of a Keras or TensorFlow traceback mid-attack.

    check_keras_archive(path)               a `.keras` (or legacy `.h5`) file is a Keras model
    load_keras_model(path)                  ... and loads it, or says in one line why not
    check_image_shape(expected, got, src)   the target accepts the attack's images
    check_probabilities(preds, src)         an output is a probability vector, not logits
    as_probabilities(out, outputs, src)     an answer read as its declared `outputs` says
    outputs_kind(raw, declared, ...)        probabilities or logits, from a probe batch
    check_deterministic(a, b, src)          two answers to the same images agree (or,
                                            with target_noise='warn', how far they differ)
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, OracleError, first_line

#: What an oracle's answers are declared to be. 'probabilities': checked (entries in [0, 1],
#: rows summing to 1, or to at most 1 for an API that releases only some entries), refused
#: otherwise; 'logits': a softmax is applied (refused when the answers already are probability
#: vectors: a second softmax flattens them towards uniform without any error); 'raw': passed
#: through unchecked, for a caller that checks them itself (`tfminv.leakage.make_target`) or
#: scores that are neither (feature vectors, independent confidences).
OUTPUTS = ("probabilities", "logits", "raw")
#: What the determinism probe does with a target answering the same images differently twice
#: (`check_deterministic`): refuse it (the default), or warn once and go on (noise on purpose).
TARGET_NOISE = ("refuse", "warn")
TARGET_NOISE_HELP = ("a target that answers the same probe images differently on two queries: "
                     "refuse (default; dropout or augmentation left active) or warn (noise on "
                     "purpose, e.g. a release policy adding noise on the owner's side: one "
                     "logged warning with the measured max difference, recorded under "
                     "target.noise in run.json and noted in results.md)")
#: Legacy Keras (HDF5) model files, loaded by Keras 3's `keras.saving.load_model`.
LEGACY_SUFFIXES = (".h5", ".hdf5")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def check_keras_archive(path: str | Path) -> Path:
    """A `.keras` file must be a zip holding `config.json` (Keras 3's format).

    For any other file Keras says "File not found ... Please ensure the file is an accessible
    `.keras` zip file" although the file exists; this names what the file actually is.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file (expected a .keras model)")
    if p.suffix in LEGACY_SUFFIXES:
        with open(p, "rb") as f:
            head = f.read(8)
        if head != _HDF5_MAGIC:
            raise ConfigError(f"{p}: not a legacy Keras .h5 model (not an HDF5 file: starts "
                              f"with {head!r})")
        return p
    if p.suffix != ".keras":
        raise ConfigError(f"{p}: expected a .keras file (Keras 3 model archive) or a legacy "
                          ".h5 model")
    if not zipfile.is_zipfile(p):
        with open(p, "rb") as f:
            head = f.read(8)
        kind = "an HDF5 file (legacy .h5 model?)" if head.startswith(b"\x89HDF") else \
            "empty" if not head else f"not a zip archive (starts with {head!r})"
        raise ConfigError(f"{p}: not a Keras model archive: {kind}")
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise ConfigError(f"{p}: not a readable Keras model archive: {e}") from None
    if "config.json" not in names:
        raise ConfigError(f"{p}: a zip archive but not a Keras model (no config.json; holds "
                          f"{sorted(names)[:5]})")
    return p


def load_keras_model(path: str | Path, what: str | None = None):
    """Load a checked `.keras` (or legacy `.h5`) file without compiling it; any failure is one
    ConfigError naming the file: not a model archive, a Python Lambda (Keras' safe_mode, kept),
    an unknown layer, or a file that holds something other than a Keras model."""
    import keras

    from tfminv import custom_objects

    prefix = f"{what}: " if what else ""
    p = check_keras_archive(path)
    custom_objects.register()  # tfminv's layers (Truncation, ...), for deserialisation
    try:
        model = keras.saving.load_model(str(p), compile=False)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for a bad archive
        hint = " (legacy .h5: re-save it as .keras with Keras 3)" \
            if p.suffix in LEGACY_SUFFIXES else ""
        raise ConfigError(f"{prefix}cannot load {p} as a Keras model{hint}: "
                          f"{first_line(e)}") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"{prefix}{p} holds a {type(model).__name__}, not a Keras model")
    return model


def check_image_shape(expected, got, source: str) -> None:
    """`expected` is the target's input shape without the batch axis (None = any size);
    `got` is the images' shape, with or without the batch axis. Does nothing if unknown."""
    if expected is None:
        return
    expected = tuple(None if d is None else int(d) for d in expected)
    got = tuple(int(d) for d in got)
    if len(got) == len(expected) + 1:
        got = got[1:]
    if len(got) != len(expected) or any(e is not None and e != g
                                        for e, g in zip(expected, got)):
        want = "x".join("?" if d is None else str(d) for d in expected)
        raise OracleError(f"{source}: the target takes images of shape {want}, the attack's "
                          f"images are {'x'.join(map(str, got))}")


def check_probabilities(preds, source: str, *, atol: float = 1e-3,
                        require_sum_one: bool = True) -> None:
    """Raise OracleError unless every row of `preds` [n, m] is a probability vector.

    Entries must lie in [0, 1] (within `atol`) and each row sum to 1 within `atol`; with
    `require_sum_one=False` a row may sum to less (an API that releases only its top-k
    entries). A target that returns logits fails here; declare it as logits to have a softmax
    applied instead. The message names `source` and the values found.
    """
    p = np.asarray(preds, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise OracleError(f"{source}: expected prediction vectors [n, m], got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise OracleError(f"{source}: output contains NaN or infinite values")
    sums = p.sum(axis=1)
    lo, hi = float(p.min()), float(p.max())
    bad_sum = (np.abs(sums - 1) > atol) if require_sum_one else (sums > 1 + atol)
    if lo < -atol or hi > 1 + atol or bad_sum.any():
        raise OracleError(
            f"{source}: output is not a probability vector (values in [{lo:.3g}, {hi:.3g}], "
            f"row sums in [{sums.min():.3g}, {sums.max():.3g}]); if the target returns logits, "
            "declare outputs='logits' so that a softmax is applied")


def softmax_np(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (numerically stable)."""
    out = logits - logits.max(axis=1, keepdims=True)
    out = np.exp(out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def kind_of(out: np.ndarray, atol: float = 1e-3) -> str | None:
    """'probabilities', 'logits' or None (cannot tell) from a batch of output vectors: any
    negative entry or a row summing above 1 means logits, non-negative rows summing to 1 are
    probabilities, non-negative rows summing below 1 (a truncated release?) cannot be told."""
    out = np.asarray(out, np.float64)
    sums = out.sum(axis=1)
    if out.min() < 0 or sums.max() > 1 + atol:
        return "logits"
    if np.all(np.abs(sums - 1) <= atol):
        return "probabilities"
    return None


def check_outputs_choice(outputs: str, source: str) -> str:
    if outputs not in OUTPUTS:
        raise ConfigError(f"{source}: outputs={outputs!r}: expected one of {', '.join(OUTPUTS)}")
    return outputs


def as_probabilities(out: np.ndarray, outputs: str, source: str, *,
                     partial: bool = False) -> np.ndarray:
    """A target's answer [n, m] read as its declared `outputs` says (see OUTPUTS): checked
    probabilities (`partial`: rows may sum to less than 1), softmaxed logits, or raw."""
    if outputs == "raw":
        return out
    if outputs == "logits":
        if len(out) and kind_of(out) == "probabilities":
            raise OracleError(f"{source}: declared outputs='logits' but the answers are "
                              "probability vectors (non-negative rows summing to 1): the target "
                              "already applies a softmax; declare outputs='probabilities'")
        return softmax_np(out)
    if outputs != "probabilities":
        check_outputs_choice(outputs, source)
    check_probabilities(out, source, require_sum_one=not partial)
    return out


def outputs_kind(raw: np.ndarray, declared: str, says_probs: bool | None,
                 what: str) -> tuple[str, str]:
    """(kind, how) of a target's probe answers `raw`: kind 'probabilities' or 'logits', how
    'declared', "the model's last layer is softmax" or 'detected on the probe batch'.

    `declared` is 'auto', 'probabilities' or 'logits'; `says_probs` is what the model's own
    structure says (True: ends in softmax, False: does not, None: unknown, e.g. a remote
    target). A declaration the answers or the model contradict is refused in one line: declared
    probabilities answering negative entries or rows summing above 1; declared logits on a model
    ending in softmax, or answering probability vectors (a second softmax would flatten them).
    """
    if declared == "probabilities":
        if kind_of(raw) == "logits":
            raise OracleError(f"{what}: declared outputs='probabilities' but the probe answers "
                              "negative entries or rows summing above 1; declare "
                              "outputs='logits'")
        return "probabilities", "declared"
    if declared == "logits":
        if says_probs:
            raise OracleError(f"{what}: declared outputs='logits' but the model's last layer is "
                              "softmax (its outputs are probabilities); declare "
                              "outputs='probabilities' or leave outputs='auto'")
        if kind_of(raw) == "probabilities":
            raise OracleError(f"{what}: declared outputs='logits' but the probe answers "
                              "probability vectors (non-negative rows summing to 1); a second "
                              "softmax would flatten them: declare outputs='probabilities'")
        return "logits", "declared"
    if says_probs:
        return "probabilities", "the model's last layer is softmax"
    kind = kind_of(raw)
    if kind is None:
        raise OracleError(f"{what}: cannot tell probabilities from logits (rows are "
                          f"non-negative but sum to {raw.sum(1).min():.3g}-"
                          f"{raw.sum(1).max():.3g}, not 1); declare outputs='probabilities' "
                          "or outputs='logits'")
    return kind, "detected on the probe batch"


def check_target_noise(target_noise: str) -> str:
    """`target_noise` itself: one of TARGET_NOISE, else ConfigError."""
    if target_noise not in TARGET_NOISE:
        raise ConfigError(f"target_noise={target_noise!r}: expected one of "
                          f"{', '.join(TARGET_NOISE)}")
    return target_noise


def check_deterministic(first: np.ndarray, second: np.ndarray, what: str, *,
                        target_noise: str = "refuse", rtol: float = 1e-3, atol: float = 1e-4,
                        warn: bool = True) -> float | None:
    """Two answers to the same images must agree (within float noise), unless the target's
    noise is declared intended (`target_noise='warn'`).

    A target whose answers change from one query to the next (dropout or augmentation layers
    left active in an exported graph, a randomised API) makes every cached query and every
    reconstruction score depend on the draw; the attack and its numbers assume one answer per
    image. Measured: identical batches on one CPU give bit-identical answers; dropout 0.5 moves
    probabilities by ~0.1.

    target_noise (`TARGET_NOISE`): 'refuse' raises OracleError naming `what` and the measured
    max difference; 'warn' (a release that is noisy on purpose, e.g. an API adding noise on the
    owner's side) logs that once on the `tfminv` logger (unless `warn` is False: the caller has
    said it already) and returns the max difference. Returns None when the answers agree.
    """
    check_target_noise(target_noise)
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if a.shape != b.shape:
        raise OracleError(f"{what}: answered shapes {a.shape} and {b.shape} to the same images")
    if np.allclose(a, b, rtol=rtol, atol=atol):
        return None
    diff = float(np.max(np.abs(a - b)))
    if target_noise == "warn":
        if warn:
            logging.getLogger("tfminv").warning(
                "%s: answered the same %d probe images differently on two queries (max "
                "difference %.3g); proceeding as target_noise=warn declares: each image's first "
                "answer is cached and reused, so the audit measures one draw of the noise",
                what, len(a), diff)
        return diff
    raise OracleError(
        f"{what}: answered the same {len(a)} probe images differently on two queries (max "
        f"difference {diff:.3g}); a non-deterministic target (dropout or augmentation active "
        "at inference, a randomised API) cannot be attacked reproducibly: export it in "
        "inference mode (training=False), give a randomised release (a noise defence) as a "
        "seeded policy instead, declare the noise intended (target_noise=warn, command line "
        "--target_noise=warn), or clear a cache made by another model")
