"""Train an inversion model G on an auxiliary set's predictions, then invert victims.

Methods:
- `truncation` (the paper's): G = Truncation(k) -> decoder, trained on auxiliary predictions
  truncated exactly as victims' will be, and fed the victims' raw predictions at attack time.
- `previous` (the earlier training-based inversion, as the authors' code deploys it): the
  inverter is trained on full vectors (its own preprocessing: the same log transform with
  k = m) and then fed what is released: the top-k probability vector with zeros for the
  unreleased classes, which goes through that same preprocessing (log(0) hits the -1000
  floor, and the row shift lifts the kept entries by ~1000).
- `previous_logzero`: the same full-vector decoder fed trunc_k of the victims' vector, i.e.
  the zeros put in after the log transform (the definition tfminv used before; it gives the
  previous approach the truncation layer's scale for free and is reported as a variant).
- `identity`: the truncation inverter trained with, beside pixel MSE, a term that the
  attacker's surrogate of the target (distilled from the same auxiliary releases) finds in
  G(v) what v released (`tfminv.attacks.identity`; its weights: `IdentityOptions`).
- `identity_refine`: the identity inverter (the same trained model), each victim's
  reconstruction then refined through the surrogate at attack time (`tfminv.attacks.refine`,
  run by `tfminv.attacks.core.run_attack`; no query).
- `identity_select`: the same inverter; per victim its image and refinement snapshots are sent
  to the target, and the one whose release is closest to the victim's is kept
  (`tfminv.attacks.select`; `select_candidates` counted queries per victim).
- `aux_match`: no inverter: the auxiliary image whose (already queried) answer is closest to
  the victim's release (`tfminv.attacks.retrieval`; `match_n` averaged), run by
  `tfminv.attacks.core.run_attack` like the others; `train_inverter` refuses it.

G never sees the target's graph or weights: its only inputs are prediction arrays that came
out of an Oracle (see tfminv.attacks.predictions.query_cached).
"""

from __future__ import annotations

import logging

import numpy as np

from tfminv.errors import ConfigError, DataError
from tfminv.settings import setting

log = logging.getLogger(__name__)

#: the methods a scenario compares when none are named (the paper's comparison)
DEFAULT_METHODS = ("truncation", "previous", "previous_logzero")
#: the methods whose inverter is the identity-consistent one (one trained model serves all)
IDENTITY_METHODS = ("identity", "identity_refine", "identity_select")
METHODS = DEFAULT_METHODS + IDENTITY_METHODS
#: the methods that train no inverter (`tfminv.attacks.retrieval`)
RETRIEVAL_METHODS = ("aux_match",)
#: every method an attack door runs (`tfminv.attacks.core.run_attack`)
ATTACK_METHODS = METHODS + RETRIEVAL_METHODS


def method_setting():
    """The dataclass field of the one-method setting (`method`) of the door and the audit."""
    return setting("truncation", "attack method of every policy's inverter (truncation: the "
                   "aligned inverter; identity: the same inverter trained with a surrogate of "
                   "the target from the same auxiliary releases, for the victims' identity; "
                   "identity_refine: its images refined per victim through the surrogate; "
                   "identity_select: the target queried on those images, the closest kept; "
                   "aux_match: no inverter, the auxiliary photo whose answer is closest to "
                   "the victim's release; previous / previous_logzero: the earlier "
                   "training-based inversion)", choices=ATTACK_METHODS)


def _check(preds, images, what):
    preds = np.asarray(preds, dtype=np.float32)
    images = np.asarray(images, dtype=np.float32)
    if preds.ndim != 2 or images.ndim != 4 or len(preds) != len(images):
        raise DataError(f"{what}: expected predictions [N, m] and images [N, H, W, C] with the "
                        f"same N, got {preds.shape} and {images.shape}")
    from tfminv.models.inverter import MIN_SIDE

    if min(images.shape[1:3]) < MIN_SIDE:
        raise DataError(f"{what}: images must be at least {MIN_SIDE}x{MIN_SIDE}, got "
                        f"{images.shape[1:3]}")
    return preds, images


def _check_streamed(preds, images):
    from tfminv.data.streaming import answers

    preds = answers(preds)  # a streaming.Rows stays a view
    if preds.ndim != 2 or len(preds) != len(images):
        raise DataError(f"auxiliary set: expected predictions [N, m] for the {len(images)} "
                        f"streamed images of {images.name}, got {preds.shape}")
    from tfminv.models.inverter import MIN_SIDE

    h, w, _ = images.image_shape
    if min(h, w) < MIN_SIDE:
        raise DataError(f"auxiliary set: images must be at least {MIN_SIDE}x{MIN_SIDE}, got "
                        f"{(h, w)}")
    return preds


def train_inverter(aux_predictions, aux_images, *, k: int, method: str, config, workdir,
                   val=None, width: float = 1.0, reuse: bool = True, callbacks=(),
                   identity=None):
    """Train (or reuse) an inverter and return a Keras model: raw prediction [N, m] -> image.

    The model's `run_dir` attribute names its training folder (run.json, TensorBoard logs).

    aux_images: an image array, or a `tfminv.data.streaming.StreamedImages` (the set is read
    from its records while training, never held in memory; predictions in its order).
    workdir is a base folder; the run goes to a sub-folder named after the training k and a hash
    of the settings and data, so identical requests reuse the trained model: 'previous' and
    'previous_logzero' share one full-vector model for all k, and 'truncation' at k = m is that
    same model (at k = m the three methods coincide).
    val = (predictions, images) for model selection. callbacks: extra Keras callbacks of the
    training (progress lines); they do not enter the cache key.
    identity: the 'identity' method's `tfminv.attacks.identity.IdentityOptions` (None: its
    defaults; any object with those settings as attributes is read by `options_of`); the
    returned model then also has `surrogate` (`tfminv.attacks.surrogate.Surrogate`).
    """
    from tfminv.hashing import short_hash
    from tfminv.models import build_inverter, with_release, with_truncation
    from tfminv.models.truncation import _check_k
    from tfminv.training import fit_cached

    if method in RETRIEVAL_METHODS:
        raise ConfigError(f"method {method!r} trains no inverter; run it through "
                          "tfminv.attacks.core.run_attack (tfminv.attacks.retrieval)")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    streamed = hasattr(aux_images, "iter_chunks")
    if method in IDENTITY_METHODS and streamed:
        raise ConfigError(f"method {method!r} trains its surrogate on in-memory auxiliary "
                          "images; expected an image array, not a stream (--stream_aux)")
    if streamed:  # tfminv.data.streaming.StreamedImages: read from the records while training
        preds, images = _check_streamed(aux_predictions, aux_images), aux_images
        m, shape = preds.shape[1], tuple(images.image_shape)
    else:
        preds, images = _check(aux_predictions, aux_images, "auxiliary set")
        m, shape = preds.shape[1], tuple(images.shape[1:])
    _check_k(k, m)
    if val is not None:
        val = _check(val[0], val[1], "validation set")
    if method in IDENTITY_METHODS:
        from tfminv.attacks.identity import options_of, train_identity_inverter

        return train_identity_inverter(preds, images, k=k, config=config, workdir=workdir,
                                       val=val, width=width, options=options_of(identity),
                                       reuse=reuse, callbacks=callbacks)[0]
    train_k = k if method == "truncation" else m
    # the run depends only on the k it trains with: 'truncation' at k = m is the full model
    meta = {"train_k": int(train_k), "width": float(width), "aux": short_hash(preds, images),
            "val": None if val is None else short_hash(*val)}
    name = "full" if train_k == m else f"truncation_k{k}"
    x, y = preds, images
    if streamed:
        from tfminv.data.streaming import inverter_dataset

        x, y = inverter_dataset(preds, images, config.batch_size, seed=config.seed), None
    model = fit_cached(lambda: build_inverter(m, shape, width, k=train_k, name=f"inverter_{name}"),
                       x, y, config=config, workdir=workdir, name=name, meta=meta,
                       code="inverter", val=val, loss="mse", reuse=reuse,
                       callbacks=list(callbacks))
    run_dir = model.run_dir
    if train_k != k and method == "previous":
        model = with_release(model, m, k, name=f"previous_inverter_k{k}")
    elif train_k != k:
        model = with_truncation(model.get_layer("decoder"), m, k,
                                name=f"previous_logzero_inverter_k{k}")
    model.run_dir = run_dir  # where fit kept the logs, checkpoints and run.json
    return model


def invert(inverter, predictions, batch_size: int = 256) -> np.ndarray:
    """Reconstructions [N, H, W, C] from raw prediction vectors [N, m]."""
    preds = np.asarray(predictions, dtype=np.float32)
    # predict_on_batch skips fit/predict's per-call set-up (0.1-0.9 s on CPU, see BENCHMARKS.md),
    # which dominates the latency of small requests.
    outs = [inverter.predict_on_batch(preds[i:i + batch_size])
            for i in range(0, len(preds), batch_size)]
    if not outs:
        return np.zeros((0, *inverter.output_shape[1:]), np.float32)
    out = np.concatenate([np.asarray(o, np.float32) for o in outs], axis=0)
    return _recompute_nonfinite(inverter, preds, out)


def _nonfinite_rows(images: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isfinite(images.reshape(len(images), -1)).all(axis=1))


def _recompute_nonfinite(inverter, preds, out, tries: int = 2):
    """Run the rows of `out` that came out non-finite again (up to `tries` times).

    On the project's CPU under mixed_bfloat16, one reconstruction in a few thousand came out NaN
    from finite weights and inputs, and the same model gave finite rows on a rerun (20 passes
    over 12,344 inputs: none): an intermittent kernel fault, so a rerun fixes it. Rows that
    stay non-finite mean the model itself is broken: DataError naming how many.
    """
    bad = _nonfinite_rows(out)
    if not len(bad):
        return out
    
    first = len(bad)
    for _ in range(tries):
        out[bad] = np.asarray(inverter.predict_on_batch(preds[bad]), np.float32)
        bad = bad[_nonfinite_rows(out[bad])]
        if not len(bad):
            log.warning(f"{inverter.name}: {first} of {len(out)} reconstructions came out "
                        "non-finite and were recomputed (finite on the rerun)")
            return out
    raise DataError(f"{inverter.name}: {len(bad)} of {len(out)} reconstructions stay non-finite "
                    f"when recomputed (prediction rows {bad[:5].tolist()}...): the inverter is "
                    "broken; retrain it (at --precision=float32 if it recurs)")


def evaluate(inverter, victim_preds, victim_images, victim_labels=None, eval_model=None,
             judge=None) -> tuple:
    """(metrics dict, reconstructions): mse, psnr, ssim and, with an evaluation classifier,
    attack_acc (top-1) and attack_acc_top5 of G(victim predictions) against the victims; with
    a `metrics.IdentityJudge` also nn_acc, nn_acc_top5 and knn_dist (feature-space identity)."""
    from tfminv.attacks import core

    if judge is None and eval_model is not None:
        judge = core.ScoresJudge(lambda x: eval_model.predict(x, batch_size=256, verbose=0))
    recon = invert(inverter, victim_preds)
    return core.score(recon, victim_images, victim_labels, judge), recon
