"""Training the malicious developer's joint classifier + inverter (the model is built by
`tfminv.models.joint.build_joint_model`).

loss = CE(y, F(x)) + lambda * MSE(G(trunc_k(rescale(F(x)))), x); a seeded share of the
developer's training data is held out for model selection, and the run is cached by
`tfminv.training.fit_cached` (keyed by the settings and a hash of the images).
"""

from __future__ import annotations

import keras
import numpy as np

from tfminv.errors import ConfigError
from tfminv.models.joint import LOGITS, RECON, build_joint_model
from tfminv.models.truncation import _check_k
from tfminv.training.losses import WeightedMSE


def joint_losses(weight: float) -> dict:
    """Loss dict for `fit`: cross-entropy on the logits + weight * MSE on the reconstruction."""
    if not float(weight) >= 0:
        raise ConfigError(f"joint reconstruction weight (lambda) must be >= 0, got {weight}")
    return {LOGITS: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            RECON: WeightedMSE(weight)}


def joint_targets(images, labels) -> dict:
    """Targets dict matching the joint model's outputs."""
    return {LOGITS: labels, RECON: images}


def train_joint(images, labels, *, num_classes: int, k: int | None, weight: float, config,
                workdir, width: float = 1.0, val_fraction: float = 0.1, reuse: bool = True):
    """Train (or reuse) the joint model on the developer's training data with tfminv's `fit`.

    A seeded `val_fraction` of the rows is held out for model selection (lowest joint loss).
    The run goes to a sub-folder of workdir named after a hash of the settings and the data.
    """
    from tfminv.data.splits import holdout
    from tfminv.hashing import short_hash
    from tfminv.training import fit_cached

    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int64)
    if images.ndim != 4 or len(images) != len(labels) or len(images) < 2:
        raise ConfigError(f"joint training: expected images [N, H, W, 1] and N labels (N >= 2), "
                          f"got {images.shape} and {labels.shape}")
    m = int(num_classes)
    k = m if k is None else int(k)
    _check_k(k, m)
    tr, va = holdout(len(images), val_fraction, config.seed)
    size = int(images.shape[1])
    meta = {"k": k, "weight": float(weight), "width": float(width), "m": m,
            "data": short_hash(images), "val_fraction": float(val_fraction)}
    return fit_cached(lambda: build_joint_model(m, size, k=k, width=width), images[tr],
                      joint_targets(images[tr], labels[tr]), config=config, workdir=workdir,
                      name=f"joint_k{k}", meta=meta, code="joint",
                      val=(images[va], joint_targets(images[va], labels[va])),
                      loss=joint_losses(weight), metrics={LOGITS: ["accuracy"]}, reuse=reuse)
