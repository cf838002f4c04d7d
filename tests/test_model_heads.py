"""The logits head and the features under it have one home (tfminv.models.heads), importable
under their earlier names too (tfminv.metrics.penultimate_model, tfminv.defences.train.head_layer),
each failing with its own typed error on a model without a Dense layer."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tfminv.errors import ConfigError, DataError  # noqa: E402
from tfminv.models import heads  # noqa: E402


def _own():
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(6, activation="relu", name="fc1")(x)
    return keras.Model(inp, keras.layers.Dense(3, name="logits")(x), name="own")


def test_one_home_two_names():
    from tfminv import metrics
    from tfminv.defences import train

    assert train.head_layer is heads.head_layer
    model = _own()
    assert heads.head_layer(model).name == "logits"
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    want = keras.ops.convert_to_numpy(model.get_layer("fc1")(keras.layers.Flatten()(x)))
    for feats in (heads.penultimate_model(model), metrics.penultimate_model(model)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(feats(x)), want, rtol=1e-6)
    conv = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)], name="conv")
    with pytest.raises(ConfigError, match="'conv' has no Dense layer: the defences need"):
        train.head_layer(conv)
    with pytest.raises(DataError, match="'conv' has no Dense layer: expected a logits head"):
        metrics.penultimate_model(conv)
