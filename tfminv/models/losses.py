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
