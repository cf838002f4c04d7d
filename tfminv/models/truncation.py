"""Truncation of prediction vectors, the authors' formula, as a Keras layer and a NumPy reference.

Probabilities below float32's smallest normal number (~1.18e-38) count as 0 in both the layer
and the reference, so subnormal inputs give the same answer whether or not a device flushes
them to zero. Given probabilities p (length m) and k: keep the top-k values,
v = max(log(v), log_floor) + c,
shift the row so its smallest kept entry is not negative, scatter into zeros of length m.
The same transform is applied when training the inverter and when inverting a victim's
partial prediction, so the inverter always sees inputs of one form.
"""

from __future__ import annotations

import numpy as np

import keras
import tensorflow as tf

from tfminv.errors import ConfigError, DataError


_TINY = float(np.finfo(np.float32).tiny)


def _check_k(k, m=None):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"truncation k must be a positive integer, got {k!r}")
    if m is not None and k > m:
        raise ConfigError(f"truncation k={k} is larger than the prediction vector length m={m}")


def truncate_np(p, k: int, c: float = 50.0, log_floor: float = -1000.0) -> np.ndarray:
    """NumPy reference of the truncation formula on a batch of prediction vectors [n, m].

    Ties are broken toward the lower index (as tf.math.top_k does).
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2:
        raise DataError(f"truncate_np: expected prediction vectors [n, m], got shape {p.shape}")
    n, m = p.shape
    _check_k(k, m)
    if not np.all(np.isfinite(p)):
        raise DataError("truncate_np: prediction vectors contain NaN or infinite values")
    p = np.where(p < _TINY, 0.0, p.astype(np.float32).astype(np.float64))
    idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(p, idx, axis=1)
    with np.errstate(divide="ignore"):
        v = np.maximum(np.log(top), log_floor) + c
    v = v + np.maximum(-v.min(axis=1, keepdims=True), 0.0)
    out = np.zeros((n, m), dtype=np.float64)
    np.put_along_axis(out, idx, v, axis=1)
    return out.astype(np.float32)


def shift_and_scatter(v, idx, m):
    """The formula's last steps: shift each row of kept values v [n, k] so its smallest is not
    negative, then place them at their indices idx [n, k] in a zero vector of length m."""
    v = v + tf.nn.relu(-tf.reduce_min(v, axis=-1, keepdims=True))
    # scatter: one-hot over m for each kept index, weighted by its value
    return tf.reduce_sum(tf.one_hot(idx, m, dtype=v.dtype) * v[..., None], axis=-2)


class _TopKBase(keras.layers.Layer):
    """What `Truncation` and `TopK` share: a checked k, float32 compute, k in the config."""

    def __init__(self, k: int, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        _check_k(k)
        self.k = int(k)

    def build(self, input_shape):
        m = input_shape[-1]
        if m is not None:
            _check_k(self.k, int(m))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"k": self.k})
        config.pop("dtype", None)
        return config


@keras.saving.register_keras_serializable(package="tfminv")
class Truncation(_TopKBase):
    """Keep the top-k entries of a probability vector in the authors' log form, zero the rest.

    Always computes in float32 (log of small probabilities and the +c offset need the range).
    NaN or infinite inputs fail with a readable InvalidArgumentError naming the layer.
    """

    def __init__(self, k: int, c: float = 50.0, log_floor: float = -1000.0, **kwargs):
        super().__init__(k, **kwargs)
        self.c = float(c)
        self.log_floor = float(log_floor)

    def call(self, inputs):
        p = tf.cast(inputs, tf.float32)
        p = tf.debugging.check_numerics(
            p, f"Truncation layer '{self.name}': prediction vector contains NaN or Inf")
        p = tf.where(p < _TINY, tf.zeros_like(p), p)
        m = tf.shape(p)[-1]
        tf.debugging.assert_less_equal(
            tf.constant(self.k), m,
            message=f"Truncation layer '{self.name}': k={self.k} is larger than the vector length")
        top, idx = tf.math.top_k(p, k=self.k, sorted=True)
        return shift_and_scatter(tf.maximum(tf.math.log(top), self.log_floor) + self.c, idx, m)

    def get_config(self):
        config = super().get_config()
        config.update({"c": self.c, "log_floor": self.log_floor})
        return config


@keras.saving.register_keras_serializable(package="tfminv")
class TopK(_TopKBase):
    """What a top-k release puts out: the k largest probabilities kept as they are, the other
    entries 0 (ties toward the lower index, as tf.math.top_k). Float32, like `Truncation`."""

    def call(self, inputs):
        p = tf.cast(inputs, tf.float32)
        top, idx = tf.math.top_k(p, k=self.k, sorted=True)
        return tf.reduce_sum(tf.one_hot(idx, tf.shape(p)[-1], dtype=p.dtype) * top[..., None],
                             axis=-2)
