"""The target probe: any target form -> an Oracle answering probabilities, after a probe.

`make_target` takes a Keras model, an `Oracle`, a callable returning probabilities or logits,
or an oracle spec string (`keras:model.keras`, a bare .keras file or SavedModel folder), probes
it on a few images and returns an Oracle that takes [0, 1] images: the target sees
lo + x * (hi - lo) for the declared `input_range`, and logits are softmaxed once. Whether the
outputs are probabilities or logits is decided by `read_outputs` (the rule's home is
`tfminv.oracles.checks.outputs_kind`), the one rule every door applies (`tfminv.run_inversion`,
the audit, `tfminv.LeakageCallback`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, DataError, OracleError, TfminvError, first_line
from tfminv.oracles.checks import kind_of as _kind_of  # noqa: F401 - the rule's home
from tfminv.oracles.checks import outputs_kind as read_outputs

OUTPUTS = ("auto", "probabilities", "logits")
PROBE = 8  # images sent to the target before anything else


def parse_input_range(value) -> tuple[float, float]:
    """(lo, hi) of the target's expected inputs: a pair, a number hi (lo = 0), 'hi' or 'lo,hi'."""
    try:
        if isinstance(value, str):
            parts = [float(v) for v in re.split(r"[,:]", value) if v.strip()]
        elif isinstance(value, (int, float)):
            parts = [0.0, float(value)]
        else:
            parts = [float(v) for v in value]
    except (TypeError, ValueError):
        parts = []
    if len(parts) == 1:
        parts = [0.0, parts[0]]
    if len(parts) != 2 or not np.all(np.isfinite(parts)) or not parts[1] > parts[0]:
        raise ConfigError(f"input_range={value!r}: expected (lo, hi) with lo < hi, e.g. (0, 1) "
                          "or (0, 255)")
    return float(parts[0]), float(parts[1])


def _keras_model(obj) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        return False
    return isinstance(obj, keras.Model)


def _weights_hash(model) -> str:
    import hashlib

    h = hashlib.sha256(model.name.encode())
    for w in model.get_weights():
        h.update(str(w.shape).encode())
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def _base_oracle(target, what: str, target_noise: str = "refuse"):
    """(Oracle answering raw outputs, whether the model itself says 'probabilities')."""
    from tfminv.oracles.base import CallableOracle, KerasOracle, Oracle

    if isinstance(target, Oracle):
        return target, None
    if isinstance(target, (str, Path)):
        from tfminv.oracles import from_spec

        base = from_spec(as_spec(str(target), what), outputs="raw",  # make_target reads them
                         target_noise=target_noise)
        return base, getattr(base, "ends_in_softmax", None)
    if _keras_model(target):
        from tfminv.export import ends_in_softmax

        return (KerasOracle(target, softmax=False, identity=f"keras:{_weights_hash(target)}",
                            name=f"{what} {target.name}"), ends_in_softmax(target))
    if callable(target):
        name = getattr(target, "__qualname__", type(target).__name__)
        return CallableOracle(target, name=f"{what} {name}"), None
    raise ConfigError(f"{what}: expected a Keras model, an Oracle, a callable or an oracle spec "
                      f"string, got {type(target).__name__}")


def as_spec(spec: str, what: str = "target", *, empty: str | None = None) -> str:
    """An oracle spec (`tfminv.oracles.from_spec`) from a spec, a bare SavedModel directory or a
    .keras (legacy .h5) file, else ConfigError naming `what`. empty: when given, '' is returned
    unchanged and the error names it as the remaining choice (e.g. 'the bundled target')."""
    from tfminv.oracles.spec import SCHEMES

    if (empty is not None and not spec) or (spec or "").partition(":")[0] in SCHEMES:
        return spec
    p = Path(spec)
    if p.is_dir():
        return f"savedmodel:{p}"
    if p.suffix in (".keras", ".h5", ".hdf5") and p.is_file():  # .h5: legacy Keras
        return f"keras:{p}"
    raise ConfigError(f"{what}={spec!r}: expected an oracle spec "
                      f"({', '.join(s + ':...' for s in SCHEMES)}), a SavedModel directory, a "
                      ".keras file" + (f", or empty for {empty}" if empty is not None else ""))


def _spec(spec: str, what: str) -> str:
    """The earlier private name of `as_spec`."""
    return as_spec(spec, what)


def check_outputs(outputs: str) -> str:
    """`outputs` itself: one of OUTPUTS, else ConfigError."""
    if outputs not in OUTPUTS:
        raise ConfigError(f"outputs={outputs!r}: expected one of {', '.join(OUTPUTS)}")
    return outputs


def check_answers(raw: np.ndarray, n: int, what: str, where: str = "the probe batch") -> None:
    """OracleError naming `what` unless `raw` is n finite vectors of length >= 2."""
    if raw.ndim != 2 or len(raw) != n:
        raise OracleError(f"{what}: answered shape {raw.shape} for {n} images; "
                          f"expected {n} prediction vectors [n, classes]")
    if raw.shape[1] < 2:
        raise OracleError(f"{what}: answered vectors of length {raw.shape[1]}; expected at least "
                          "2 classes")
    if not np.all(np.isfinite(raw)):
        raise OracleError(f"{what}: answered NaN or infinite values on {where}")


def make_target(target, *, probe_images: np.ndarray, outputs: str = "auto",
                input_range=(0.0, 1.0), what: str = "target", scores_only: bool = False,
                cache_dir=None, target_noise: str = "refuse", warn_noise: bool = True):
    """An Oracle that takes [0, 1] images and answers probabilities (or, with scores_only,
    whatever the model answers, for a judge that only needs the argmax), after probing it.

    Returns (oracle, info): info records the identity, the input range, and how the outputs
    were read ('probabilities' or 'logits', and whether declared, from the model or detected).
    The probe's answers are cached like every query (tfminv.attacks.predictions), so a re-run
    costs the target nothing. Raises a TfminvError naming `what` when the target rejects the
    images' shape, answers the wrong number of vectors, vectors shorter than 2, NaN/inf, or
    outputs that must be declared.

    The probe is sent twice; answers that differ are refused (`target_noise='refuse'`) or, with
    'warn' (noise on purpose, `tfminv.oracles.checks.check_deterministic`), logged once and
    recorded as info['noise'] = {'target_noise': 'warn', 'max_difference': ...}; warn_noise=False
    records without logging (a second probe of a target already reported).
    """
    from tfminv.attacks.predictions import query_cached
    from tfminv.oracles.base import Oracle, softmax_np
    from tfminv.oracles.checks import check_deterministic, check_target_noise

    check_outputs(outputs)
    check_target_noise(target_noise)
    lo, hi = parse_input_range(input_range)
    base, says_probs = _base_oracle(target, what, target_noise)
    shape = tuple(probe_images.shape[1:])
    if _keras_model(target):
        expected = tuple(target.input_shape[1:]) if hasattr(target, "input_shape") else None
        if expected and len(expected) == 3 and any(
                e is not None and e != g for e, g in zip(expected, shape)):
            raise DataError(f"{what} expects images of shape {_fmt_shape(expected)} but the "
                            f"images are {_fmt_shape(shape)}"
                            + (" (channel mismatch)" if expected[2] not in (None, shape[2])
                               else "") + "; images are never resized for the target")
    try:
        raw = np.asarray(query_cached(base, lo + probe_images * (hi - lo), cache_dir),
                         np.float32)
        again = np.asarray(base(lo + probe_images * (hi - lo)), np.float32)  # not cached
    except TfminvError as e:
        raise type(e)(f"{what} on a probe batch of {_fmt_shape(shape)} images: {e}") from None
    except Exception as e:  # noqa: BLE001 - any failure here means the target cannot take them
        first = first_line(str(e))
        raise OracleError(f"{what} failed on a probe batch of {len(probe_images)} images of "
                          f"shape {_fmt_shape(shape)} ({type(e).__name__}: {first}); expected a "
                          "target that takes these images") from None
    check_answers(raw, len(probe_images), what)
    loaded = getattr(base, "noise", None)  # measured (and said) at load time, a SavedModel
    noise = check_deterministic(raw, again, what, target_noise=target_noise,
                                warn=warn_noise and loaded is None)
    noise = max(d for d in (noise, loaded, 0.0) if d is not None)
    kind, how = ("scores", "used for the argmax only") if scores_only else read_outputs(
        raw, outputs, says_probs, what)
    softmax = kind == "logits"
    ident = f"{base.identity()}|in={lo:g},{hi:g}|{'softmax' if softmax else 'raw'}"

    class _Target(Oracle):
        def identity(self):
            return ident

        def _predict(self, images):
            out = base(lo + np.asarray(images, np.float32) * (hi - lo))
            return softmax_np(out) if softmax else out

    oracle = _Target(output_dim=int(raw.shape[1]), batch_size=base.batch_size,
                     name=base.name)
    info = {"identity": ident, "name": base.name, "input_range": [lo, hi], "outputs": kind,
            "outputs_from": how, "classes": int(raw.shape[1])}
    if noise:
        info["noise"] = {"target_noise": target_noise, "max_difference": noise}
    return oracle, info


def _fmt_shape(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)
