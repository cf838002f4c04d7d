"""The attacker's surrogate: a differentiable copy S of the target, distilled from what it holds.

    s = train_surrogate(aux_released, aux_images, k=3, config=train_config, workdir=folder,
                        heldout=(val_released, val_images))
    s.model (image -> logits), s.top1_agreement, s.topk_overlap, s.near_chance, s.fields()

S is the project's classifier (`tfminv.models.build_classifier`, at its own width) trained on
the auxiliary images against the target's RELEASED vectors the attacker already has (no query
beyond the auxiliary set), with `tfminv.models.losses.ReleasedKL` as loss: only the k released
entries and the mass left unreleased are compared, so the same code distils from a top-k,
rounded or label-only (one-hot, k = 1) release. The target's graph, weights and gradients are
never used; attacks differentiate through S instead.

Agreement with the target is measured on auxiliary rows S did not train on (the inverter's
held-out selection rows when given, else a seeded 10% hold-out of its own): top-1 agreement
(S's argmax = the released argmax) and top-k overlap (|S's top-k n released top-k| / k). S is
trained for a fixed number of epochs and its last weights kept (no selection on the rows that
measure it). An agreement at or below twice chance (2 / m) is logged as a warning and labelled
in `fields()` (`surrogate_near_chance`): an attack through such an S is not an identity attack.

Cached like every trained model (`tfminv.training.fit_cached`, code kind 'surrogate': a change
to the classifier builder, this module or the losses trains a new S). NumPy at import.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from tfminv.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: share of the auxiliary rows held out to measure agreement when no held-out set is given
HOLDOUT_FRACTION = 0.1


@dataclasses.dataclass
class Surrogate:
    """A trained surrogate and its measured agreement with the target (module docstring)."""

    model: object
    k: int
    num_classes: int
    top1_agreement: float
    topk_overlap: float
    n_heldout: int
    run_dir: str

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes

    @property
    def near_chance(self) -> bool:
        """top-1 agreement at or below twice chance (2 / m)."""
        return not self.top1_agreement > 2.0 * self.chance

    def fields(self) -> dict:
        """The surrogate's columns of a results row."""
        return {"surrogate_top1_agreement": self.top1_agreement,
                "surrogate_topk_overlap": self.topk_overlap, "surrogate_k": self.k,
                "surrogate_heldout": self.n_heldout, "surrogate_chance": self.chance,
                "surrogate_near_chance": self.near_chance}


def agreement(logits, released, k: int) -> tuple[float, float]:
    """(top-1 agreement, top-k overlap) of a surrogate's logits [N, m] with the released
    vectors [N, m] (ties of the released vector toward the lower index, as tf.math.top_k)."""
    s = np.asarray(logits, np.float64)
    v = np.asarray(released, np.float64)
    if s.shape != v.shape or s.ndim != 2 or not len(s):
        raise DataError(f"surrogate agreement: expected two [N, m] arrays, got {s.shape} and "
                        f"{v.shape}")
    top1 = float(np.mean(np.argmax(s, 1) == np.argmax(v, 1)))
    ts = np.argsort(-s, axis=1, kind="stable")[:, :k]
    tv = np.argsort(-v, axis=1, kind="stable")[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(ts, tv)])
    return top1, float(overlap)


def logits_of(model, images, batch_size: int = 256) -> np.ndarray:
    images = np.asarray(images, np.float32)
    outs = [np.asarray(model.predict_on_batch(images[i:i + batch_size]), np.float32)
            for i in range(0, len(images), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, model.output_shape[-1]), np.float32)


def train_surrogate(released, images, *, k: int, config, workdir, width: float = 0.25,
                    heldout=None, reuse: bool = True) -> Surrogate:
    """Train (or reuse) S on (images [N, H, W, C], released vectors [N, m]) and measure its
    agreement on `heldout` = (released, images) rows it does not train on (None: a seeded
    HOLDOUT_FRACTION of the given rows is held out instead). k: the entries the release shows
    (1 for label-only). The run folder is workdir/surrogate_k<k>-<key> (`fit_cached`)."""
    from tfminv.data.splits import holdout
    from tfminv.hashing import short_hash
    from tfminv.models import build_classifier
    from tfminv.models.losses import ReleasedKL
    from tfminv.models.truncation import _check_k
    from tfminv.training import fit_cached

    v = np.asarray(released, np.float32)
    x = np.asarray(images, np.float32)
    if v.ndim != 2 or x.ndim != 4 or len(v) != len(x) or len(v) < 2:
        raise DataError(f"surrogate: expected released vectors [N, m] and images [N, H, W, C] "
                        f"with the same N >= 2, got {v.shape} and {x.shape}")
    if not float(width) > 0:
        raise ConfigError(f"surrogate_width={width!r}: expected a multiplier > 0")
    m = v.shape[1]
    _check_k(k, m)
    if heldout is None:
        tr, va = holdout(len(v), HOLDOUT_FRACTION, config.seed)
        heldout, v, x = (v[va], x[va]), v[tr], x[tr]
    hv, hx = np.asarray(heldout[0], np.float32), np.asarray(heldout[1], np.float32)
    meta = {"k": int(k), "width": float(width), "m": int(m), "aux": short_hash(v, x)}
    model = fit_cached(lambda: build_classifier(m, x.shape[1:], width, name="surrogate"), x, v,
                       config=config, workdir=workdir, name=f"surrogate_k{k}", meta=meta,
                       code="surrogate", loss=ReleasedKL(k), reuse=reuse)
    top1, overlap = agreement(logits_of(model, hx), hv, k)
    s = Surrogate(model, int(k), int(m), top1, overlap, len(hv), model.run_dir)
    if s.near_chance:
        log.warning(f"surrogate {model.run_dir}: top-1 agreement with the target {top1:.3f} on "
                    f"{len(hv)} held-out auxiliary rows is near chance (1/{m} = {s.chance:.3f}); "
                    "attacks through it are not identity attacks (more auxiliary images or "
                    "epochs, or a wider --surrogate_width)")
    return s
