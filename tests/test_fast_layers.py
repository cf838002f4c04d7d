"""tfminv's fast conv / batch-norm layers compute what the stock Keras layers compute."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfminv.models import build_classifier, build_inverter, fast_layers  # noqa: E402


@pytest.fixture
def policy():
    """Restore the global dtype policy after a test that changes it."""
    old = keras.mixed_precision.global_policy()
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy(old)


@pytest.mark.parametrize("shape,k,s,padding,cout", [
    ((3, 8, 8, 5), 3, 1, "same", 4),
    ((2, 7, 7, 3), 3, 2, "valid", 6),
    ((2, 9, 9, 3), 4, 2, "same", 2),
    ((2, 6, 6, 4), 4, 1, "valid", 3),
])
def test_filter_grad_matches_tensorflow(shape, k, s, padding, cout):
    rng = np.random.default_rng(0)
    z = tf.constant(rng.normal(size=shape))
    w = tf.zeros((k, k, shape[-1], cout), tf.float64)
    out_shape = tf.nn.conv2d(z, w, s, padding.upper()).shape
    g = tf.constant(rng.normal(size=out_shape))
    want = tf.compat.v1.nn.conv2d_backprop_filter(z, [k, k, shape[-1], cout], g, [1, s, s, 1],
                                                  padding.upper())
    got = fast_layers.conv_filter_grad(z, g, (k, k), (s, s), padding)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-10)


def _copy_weights(src, dst):
    for a, b in zip(src.weights, dst.weights):
        b.assign(a)


def _train_step(layer, x):
    """Output, input gradient, weight gradients and moving statistics after one training call."""
    r = tf.constant(np.sin(np.arange(np.prod(layer.compute_output_shape(x.shape)))).reshape(
        layer.compute_output_shape(x.shape)), tf.float32)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(layer(x, training=True), tf.float32)
            loss = tf.reduce_sum(y * r + 0.1 * y * y)
        return [y, *tape.gradient(loss, [x, *layer.trainable_variables])]
    out = [np.asarray(tf.cast(t, tf.float32)) for t in step(x)]
    graph_ops = {op.type for op in step.get_concrete_function(x).graph.get_operations()}
    return out + [np.asarray(v) for v in layer.non_trainable_weights], graph_ops


CASES = [
    (keras.layers.Conv2D, fast_layers.Conv2D, dict(filters=6, kernel_size=3, padding="same"),
     (4, 8, 8, 5)),
    (keras.layers.Conv2D, fast_layers.Conv2D,
     dict(filters=3, kernel_size=3, strides=2, padding="valid"), (3, 7, 7, 4)),
    (keras.layers.Conv2DTranspose, fast_layers.Conv2DTranspose,
     dict(filters=8, kernel_size=4, padding="valid"), (3, 1, 1, 12)),
    (keras.layers.Conv2DTranspose, fast_layers.Conv2DTranspose,
     dict(filters=5, kernel_size=4, strides=2, padding="same"), (3, 4, 4, 7)),
    (keras.layers.BatchNormalization, fast_layers.BatchNorm,
     dict(epsilon=1e-5, momentum=0.9), (6, 5, 5, 7)),
]


@pytest.mark.parametrize("stock_cls,fast_cls,kwargs,shape", CASES,
                         ids=["conv_same", "conv_s2_valid", "convT_valid", "convT_s2_same", "bn"])
def test_fast_layer_matches_keras(stock_cls, fast_cls, kwargs, shape, monkeypatch):
    # float32, with the matmul filter gradient forced on (by default Conv2D uses it only in
    # 16-bit compute), so the comparison is tight and the custom gradient is what is checked
    monkeypatch.setattr(fast_layers, "_use_matmul_grad", lambda *a, **k: True)
    stock, fast = stock_cls(**kwargs), fast_cls(**kwargs)
    stock.build(shape)
    fast.build(shape)
    rng = np.random.default_rng(1)
    for v in stock.weights:
        v.assign(np.abs(rng.normal(size=v.shape)) + 0.5 if "variance" in v.path
                 else rng.normal(size=v.shape))
    _copy_weights(stock, fast)
    x = tf.constant(rng.normal(size=shape) + 0.3, tf.float32)
    want, _ = _train_step(stock, x)
    got, ops = _train_step(fast, x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * np.abs(w).max())
    if fast_cls is fast_layers.BatchNorm:
        assert "FusedBatchNormV3" in ops
        np.testing.assert_allclose(fast(x, training=False), stock(x, training=False), atol=1e-5)
    else:
        assert "MatMul" in ops  # the per-tap matmul gradient ran


def test_bf16_path_choice(policy):
    """Matmul filter gradient on small maps in bfloat16; TensorFlow's kernel elsewhere."""
    policy("mixed_bfloat16")

    def grad_ops(layer, shape):
        x = tf.random.uniform(shape)

        @tf.function
        def f(x):
            with tf.GradientTape() as tape:
                y = layer(x)
            return tape.gradient(y, layer.trainable_variables)
        return {op.type for op in f.get_concrete_function(x).graph.get_operations()}

    small = grad_ops(fast_layers.Conv2D(8, 3, padding="same"), (2, 8, 8, 4))
    large = grad_ops(fast_layers.Conv2D(8, 3, padding="same"), (2, 32, 32, 4))
    assert "MatMul" in small and "Conv2DBackpropFilter" not in small
    assert "Conv2DBackpropFilter" in large and "MatMul" not in large
    policy("float32")
    f32 = grad_ops(fast_layers.Conv2D(8, 3, padding="same"), (2, 8, 8, 4))
    assert "Conv2DBackpropFilter" in f32
    convt = grad_ops(fast_layers.Conv2DTranspose(8, 4, strides=2, padding="same"), (2, 4, 4, 4))
    assert "MatMul" in convt  # transposed convs gain in float32 too


def test_models_use_fast_layers_and_round_trip(tmp_path):
    clf = build_classifier(5, 32, width=0.05)
    inv = build_inverter(5, 32, width=0.05, k=2)
    kinds = {type(l).__name__ for l in clf.layers} | {
        type(l).__name__ for l in inv.get_layer("decoder").layers}
    assert {"Conv2D", "BatchNorm", "Conv2DTranspose"} <= kinds
    assert isinstance(clf.get_layer("bn0"), fast_layers.BatchNorm)
    x = np.random.default_rng(0).random((3, 32, 32, 1)).astype("float32")
    clf.save(tmp_path / "clf.keras")
    back = keras.models.load_model(tmp_path / "clf.keras")
    assert isinstance(back.get_layer("conv2"), fast_layers.Conv2D)
    np.testing.assert_allclose(back.predict(x, verbose=0), clf.predict(x, verbose=0), atol=1e-6)
