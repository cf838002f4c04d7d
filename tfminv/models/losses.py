"""The custom Keras losses tfminv trains with (registered for .keras files under 'tfminv>').

- `WeightedMSE`: lambda * per-pixel MSE, the reconstruction term of the joint loss
  (`tfminv.training.joint`).
- `MaskedMSE`: MSE over the finite entries of y_true (NaN = no target), the landmark loss of
  the local face API (`tfminv.faceapi.local_api`).

Both stay importable from `tfminv.training.losses`, their earlier home.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfminv")
class WeightedMSE(keras.losses.Loss):
    """lambda * per-pixel MSE (the reconstruction term of the joint loss)."""

    def __init__(self, weight: float = 1.0, name: str = "weighted_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weight = float(weight)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        err = tf.square(y_true - y_pred)
        return self.weight * tf.reduce_mean(tf.reshape(err, [tf.shape(err)[0], -1]), axis=-1)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="tfminv")
class MaskedMSE(keras.losses.Loss):
    """MSE over the finite entries of y_true (NaN = no landmark target for that crop)."""

    def __init__(self, name="masked_mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        mask = tf.math.is_finite(y_true)
        err = tf.where(mask, tf.square(tf.where(mask, y_true, 0.0) - y_pred), 0.0)
        return tf.reduce_sum(err, axis=-1) / tf.maximum(
            tf.reduce_sum(tf.cast(mask, y_pred.dtype), axis=-1), 1.0)


def released_kl(released, logits, k: int):
    """Per-row KL(P || Q) [N] on what a top-k release shows: P = the k largest entries of the
    released vector `released` [N, m] and the mass it leaves unreleased (1 - their sum, at
    least 0), renormalised; Q = the same k classes of softmax(logits) [N, m] and the softmax
    mass of every other class.

    Why the extra bucket: renormalising over the k released entries alone makes the term
    vanish at k = 1 (one entry always renormalises to 1); with the rest bucket a top-1 or
    label-only (one-hot) release is the cross-entropy of the released class, a rounded release
    compares its rounded entries, and a full release (k = m) is the plain KL. Float32 whatever
    the dtype policy; the unreleased mass is a log-sum-exp, so no log of a difference."""
    v = tf.cast(released, tf.float32)
    z = tf.cast(logits, tf.float32)
    top, idx = tf.math.top_k(v, k=int(k), sorted=True)
    top = tf.nn.relu(top)
    p = tf.concat([top, tf.nn.relu(1.0 - tf.reduce_sum(top, -1, keepdims=True))], -1)
    p = p / tf.maximum(tf.reduce_sum(p, -1, keepdims=True), 1e-12)
    log_z = tf.reduce_logsumexp(z, -1, keepdims=True)
    shown = tf.reduce_sum(tf.one_hot(idx, tf.shape(z)[-1], dtype=z.dtype), -2) > 0
    # -1e9, not -inf: at k = m the rest bucket is empty and must stay finite (0 * finite = 0)
    log_rest = tf.reduce_logsumexp(tf.where(shown, -1e9, z), -1, keepdims=True)
    log_q = tf.concat([tf.gather(z, idx, batch_dims=1), log_rest], -1) - log_z
    return tf.reduce_sum(p * (tf.math.log(tf.maximum(p, 1e-30)) - log_q), -1)


@keras.saving.register_keras_serializable(package="tfminv")
class ReleasedKL(keras.losses.Loss):
    """weight * `released_kl(y_true, y_pred, k)`: y_true the released vectors [N, m], y_pred a
    classifier's logits [N, m] (the surrogate's distillation loss and the identity term of the
    identity-consistent inverter, `tfminv.attacks.surrogate` / `tfminv.attacks.identity`)."""

    def __init__(self, k: int = 1, weight: float = 1.0, name: str = "released_kl", **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = int(k)
        self.weight = float(weight)

    def call(self, y_true, y_pred):
        return self.weight * released_kl(y_true, y_pred, self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k, "weight": self.weight}
