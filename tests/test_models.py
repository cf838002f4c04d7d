"""Truncation layer against its NumPy reference; classifier and inverter shapes; serialisation."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import tensorflow as tf  # noqa: E402

from tfminv.errors import ConfigError, DataError  # noqa: E402
from tfminv.models import (Truncation, build_classifier, build_inverter,  # noqa: E402
                           truncate_np, with_truncation)


def _layer(p, k):
    return Truncation(k)(tf.constant(p, tf.float32)).numpy()


def _manual(row, k, c=50.0):
    """Straight from the formula, one row, written independently of truncate_np.

    Values below float32's smallest normal count as 0 (the documented subnormal rule)."""
    row = [float(v) if abs(v) >= np.finfo(np.float32).tiny else 0.0 for v in row]
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
    vals = [max(np.log(row[i]) if row[i] > 0 else -np.inf, -1000.0) + c for i in order]
    shift = max(-min(vals), 0.0)
    out = np.zeros(len(row))
    for i, v in zip(order, vals):
        out[i] = v + shift
    return out


@pytest.mark.parametrize("k", [1, 2, 5, 17, 40])
def test_layer_matches_reference_random(k):
    rng = np.random.default_rng(k)
    p = rng.dirichlet(np.full(40, 0.2), size=64).astype(np.float32)
    ref = truncate_np(p, k)
    np.testing.assert_allclose(_layer(p, k), ref, rtol=1e-5, atol=1e-4)
    for row, r in zip(p[:5], ref[:5]):
        np.testing.assert_allclose(r, _manual(row.astype(np.float64), k), rtol=1e-5, atol=1e-4)
    assert ((ref != 0).sum(axis=1) <= k).all()


def test_adversarial_inputs_ties_zeros_extremes():
    p = np.array([
        [0.25, 0.25, 0.25, 0.25, 0.0, 0.0],      # ties: lower indices win
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],          # one-hot: log(0) clamps at -1000
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],          # all zeros
        [1e-30, 1e-38, 0.5, 0.5 - 1e-30, 0, 0],  # tiny values
        [0.1, 0.2, 0.2, 0.2, 0.2, 0.1],
    ], np.float32)
    for k in range(1, 7):
        ref = truncate_np(p, k)
        np.testing.assert_allclose(_layer(p, k), ref, rtol=1e-5, atol=1e-3)
        for row, r in zip(p.astype(np.float64), ref):
            np.testing.assert_allclose(r, _manual(row, k), rtol=1e-5, atol=1e-3)
    # ties broken toward lower index, values equal
    out = truncate_np(p[:1], 2)
    assert out[0, 0] == out[0, 1] > 0 and out[0, 2] == 0
    # one-hot with k=3: zeros clamp to -950, shifted up to 0, top becomes 50 + 950
    np.testing.assert_allclose(_layer(p[1:2], 3)[0, :3], [1000.0, 0.0, 0.0])
    # all zeros, k=1: -950 shifted to 0 everywhere
    np.testing.assert_allclose(_layer(p[2:3], 1), np.zeros((1, 6)))


def test_k1_and_k_equal_m():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=8).astype(np.float32)
    k1 = _layer(p, 1)
    assert ((k1 != 0).sum(axis=1) == 1).all()
    np.testing.assert_array_equal(np.argmax(k1, axis=1), np.argmax(p, axis=1))
    full = _layer(p, 10)
    np.testing.assert_allclose(full, truncate_np(p, 10), rtol=1e-5, atol=1e-4)
    # k = m keeps the ranking of every entry
    np.testing.assert_array_equal(np.argsort(-full, axis=1, kind="stable"),
                                  np.argsort(-p, axis=1, kind="stable"))


def test_errors_k_too_large_and_nan():
    with pytest.raises(ConfigError, match="k=11 is larger"):
        build_inverter(10, 32, width=0.125, k=11)
    with pytest.raises(ConfigError, match="k=4 is larger"):
        truncate_np(np.full((1, 3), 1 / 3), 4)
    with pytest.raises(ConfigError, match="positive integer"):
        Truncation(0)
    with pytest.raises(ConfigError):
        keras.Sequential([keras.Input((3,)), Truncation(5)])
    bad = np.array([[0.5, np.nan, 0.5]], np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        Truncation(2)(bad)
    with pytest.raises(DataError, match="NaN"):
        truncate_np(bad, 2)


def test_layer_inside_tf_function_and_savedmodel(tmp_path):
    inv = build_inverter(6, 32, width=0.0625, k=2)
    assert isinstance(inv.layers[1], Truncation)
    p = np.random.default_rng(1).dirichlet(np.ones(6), size=4).astype(np.float32)
    want = inv.predict(p, verbose=0)
    path = tmp_path / "inv.keras"
    inv.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(p, verbose=0), want, atol=1e-6)
    assert again.layers[1].get_config()["k"] == 2
    inv.export(str(tmp_path / "sm"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(served.serve(tf.constant(p)).numpy(), want, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        served.serve(tf.constant(np.full((1, 6), np.nan, np.float32)))


def test_classifier_and_inverter_shapes():
    face = build_classifier(12, 64, width=0.0625)
    assert face.output_shape == (None, 12)
    assert [layer.filters for layer in face.layers if hasattr(layer, "filters")] == [8, 16, 32, 64]
    assert face.get_layer("fc1").units == 60
    digit = build_classifier(5, 32, width=0.0625)
    assert digit.output_shape == (None, 5) and digit.get_layer("fc1").units == 50
    for size in (32, 64):
        inv = build_inverter(12, size, width=0.0625)
        assert inv.output_shape == (None, size, size, 1)
        out = inv.predict(np.random.default_rng(0).random((2, 12), np.float32), verbose=0)
        assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ConfigError, match="image shape"):
        build_classifier(10, 4)


def test_first_deconv_reduces_in_float32_where_bf16_kernels_fault():
    """Under mixed_bfloat16 the layer that reduces over the m entries of the prediction vector
    computes in float32 when m > 32 and m % 32 != 0 (see fast_layers.safe_reduction_dtype);
    every other layer, and that one for other m, follows the policy."""
    from tfminv.training import precision

    with precision.policy_scope("mixed_bfloat16"):
        for m, want in ((471, "float32"), (480, "mixed_bfloat16"), (12, "mixed_bfloat16")):
            dec = build_inverter(m, 64, width=0.0625, k=1).get_layer("decoder")
            assert dec.get_layer("deconv0").dtype_policy.name == want, m
            assert dec.get_layer("deconv1").dtype_policy.name == "mixed_bfloat16"
        out = build_inverter(471, 64, width=0.0625, k=1).predict(
            np.random.default_rng(0).dirichlet(np.ones(471), 4).astype(np.float32), verbose=0)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (112, 92, 1), (48, 40, 1)])
def test_any_image_shape(shape):
    """The decoder derives its layers from the image shape (canvas 4 * 2**n, centre crop) and
    the classifier takes any (H, W, C): the output is exactly the images' shape."""
    from tfminv.models.inverter import decoder_plan

    inv = build_inverter(7, shape, width=0.0625, k=3)
    assert inv.output_shape == (None, *shape)
    out = inv.predict(np.random.default_rng(0).random((2, 7), np.float32), verbose=0)
    assert out.shape == (2, *shape) and 0 <= out.min() and out.max() <= 1
    channels, canvas = decoder_plan(shape)
    assert canvas[0] >= max(shape[:2]) > canvas[0] // 2
    assert channels[-1] == 128 and len(channels) == {28: 3, 32: 3, 112: 5, 48: 4}[shape[0]]
    clf = build_classifier(4, shape, width=0.0625)
    assert clf.input_shape == (None, *shape) and clf.output_shape == (None, 4)
    # the paper's sizes keep the authors' layers: no crop layer
    assert "crop" not in [layer.name for layer in build_inverter(7, 32, 0.0625).get_layer(
        "decoder").layers]


def test_with_truncation_shares_decoder_weights():
    full = build_inverter(8, 32, width=0.0625, k=8)
    dec = full.get_layer("decoder")
    trunc = with_truncation(dec, 8, 3)
    p = np.random.default_rng(2).dirichlet(np.ones(8), size=3).astype(np.float32)
    want = dec.predict(truncate_np(p, 3), verbose=0)
    np.testing.assert_allclose(trunc.predict(p, verbose=0), want, atol=1e-5)


def test_previous_fed_the_release_vs_zeros_after_the_log():
    """'previous' feeds a full-vector inverter the released top-k probabilities (zeros elsewhere)
    through its own Truncation(m); 'previous_logzero' puts the zeros in after the log."""
    import keras

    from tfminv.models import TopK, build_inverter, truncate_np, with_release, with_truncation

    m, k = 12, 3
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(m), size=5).astype(np.float32)
    released = TopK(k)(p).numpy()
    keep = np.argsort(-p, axis=1)[:, :k]
    want = np.zeros_like(p)
    np.put_along_axis(want, keep, np.take_along_axis(p, keep, 1), 1)
    np.testing.assert_array_equal(released, want)
    full = build_inverter(m, 32, width=0.0625, k=m)
    prev = with_release(full, m, k)
    np.testing.assert_allclose(prev.predict(p, verbose=0), full.predict(want, verbose=0),
                               rtol=1e-5, atol=1e-6)
    # what the full model's Truncation(m) makes of the release: log(0) hits the -1000 floor,
    # the shift lifts the kept entries by ~1000 - far from trunc_k's scale
    seen = full.get_layer("truncation")(want).numpy()
    np.testing.assert_allclose(seen, truncate_np(want, m), rtol=1e-5)
    assert seen.max() > 900 and truncate_np(p, k).max() < 60
    logzero = with_truncation(full.get_layer("decoder"), m, k)
    assert not np.allclose(prev.predict(p, verbose=0), logzero.predict(p, verbose=0))
    restored = keras.models.clone_model(prev)
    assert restored.get_layer("release_topk").k == k


def test_classifier_torch_init_bounds():
    """init='torch' draws kernels from U(+-1/sqrt(fan_in)) (PyTorch's default), 'keras' from
    glorot_uniform; bad names are a ConfigError."""
    import keras

    from tfminv.errors import ConfigError
    from tfminv.models import build_classifier

    keras.utils.set_random_seed(0)
    t = build_classifier(40, 64, width=0.125, init="torch")
    k = build_classifier(40, 64, width=0.125)
    for name in ("fc1", "logits", "conv2"):
        wt = t.get_layer(name).kernel.numpy()
        fan_in = int(np.prod(wt.shape[:-1]))
        bound = 1.0 / np.sqrt(fan_in)
        assert np.abs(wt).max() <= bound + 1e-6 and np.abs(wt).max() > 0.9 * bound
        wk = k.get_layer(name).kernel.numpy()
        glorot = np.sqrt(6.0 / (fan_in + int(np.prod(wk.shape[:-2])) * wk.shape[-1]))
        assert np.abs(wk).max() == pytest.approx(glorot, rel=0.1)
    with pytest.raises(ConfigError, match="init='x'"):
        build_classifier(4, 64, init="x")
