"""What a target answers is read one way whatever door it comes through: a served model answering
logits is refused (or softmaxed when declared) over REST, gRPC and HTTP JSON as for a SavedModel;
a declaration the model contradicts is refused; a target answering the same images differently
is refused; legacy .h5 Keras files load. Servers bind 127.0.0.1 only."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tfminv import export  # noqa: E402
from tfminv.errors import ConfigError, OracleError  # noqa: E402
from tfminv.leakage import make_target  # noqa: E402
from tfminv.oracles import from_spec  # noqa: E402
from tfminv.oracles.base import softmax_np  # noqa: E402

from test_target_checks import M, one_line, tiny  # noqa: E402  (a 3-class 8x8 model)

SIZE = 8


@pytest.fixture
def images():
    return np.random.default_rng(0).random((6, SIZE, SIZE, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("tensorflow_serving")
    from tfminv.serving import ModelServer

    clf = tiny(SIZE)
    base = tmp_path_factory.mktemp("served")
    export.export_classifier(clf, base, "logits", softmax=False)
    export.export_classifier(clf, base, "probs", softmax=True)
    srv = ModelServer({"logits": base / "logits", "probs": base / "probs"}).start()
    yield srv, clf
    srv.stop()


def test_served_logits_are_refused_over_rest_and_grpc_unless_declared(served, images):
    srv, clf = served
    logits = keras.ops.convert_to_numpy(clf(images, training=False))
    for spec in ("rest:" + srv.rest_url("logits"), "grpc:" + srv.grpc_target("logits")):
        o = from_spec(spec, retries=0, timeout=20)
        with pytest.raises(OracleError) as e:
            o(images)
        msg = one_line(e)
        assert spec.partition(":")[2].split("/")[0] in msg or "logits" in msg
        assert "not a probability vector" in msg and "outputs='logits'" in msg
        assert o.num_queries == 0  # nothing was accepted
        declared = from_spec(spec, retries=0, timeout=20, outputs="logits")
        np.testing.assert_allclose(declared(images), softmax_np(logits), rtol=1e-5, atol=1e-6)
        assert declared.identity() != o.identity()  # caches never mix raw and softmaxed
    # probabilities pass; declaring them logits (a second softmax) is refused
    spec = "rest:" + srv.rest_url("probs")
    np.testing.assert_allclose(from_spec(spec, retries=0)(images), softmax_np(logits),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(OracleError, match="declared outputs='logits' but the answers are "
                       "probability vectors"):
        from_spec(spec, retries=0, outputs="logits")(images)


def test_http_json_logits_are_refused(images):
    from test_oracles import FakeServer

    s = FakeServer(lambda b: (200, json.dumps(
        {"scores": (np.asarray(b["x"]).mean() * np.array([3.0, -2.0, 0.5])).tolist()}).encode()))
    try:
        schema = {"request": {"template": {"x": "$image"}}, "response": {"vector": "scores"}}
        from tfminv.oracles.http_json import HttpJsonOracle
        from tfminv.oracles.base import RetryPolicy

        o = HttpJsonOracle(s.url("/api"), schema, retry=RetryPolicy(retries=0))
        with pytest.raises(OracleError, match="not a probability vector"):
            o(images[:2])
        d = HttpJsonOracle(s.url("/api"), schema, retry=RetryPolicy(retries=0), outputs="logits")
        np.testing.assert_allclose(d(images[:2]).sum(1), 1.0, rtol=1e-5)
    finally:
        s.close()


def test_as_probabilities_and_outputs_kind():
    from tfminv.oracles.checks import as_probabilities, outputs_kind

    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    z = np.array([[2.0, -1.0, 0.5], [0.0, 1.0, -3.0]])
    assert as_probabilities(p, "probabilities", "t") is p
    np.testing.assert_allclose(as_probabilities(z, "logits", "t"), softmax_np(z))
    assert as_probabilities(z, "raw", "t") is z
    # an API releasing only some entries: partial rows allowed only where declared so
    top1 = np.array([[0.7, 0.0, 0.0]])
    as_probabilities(top1, "probabilities", "t", partial=True)
    with pytest.raises(OracleError):
        as_probabilities(top1, "probabilities", "t")
    with pytest.raises(ConfigError, match="outputs='nope'"):
        as_probabilities(p, "nope", "t")
    assert outputs_kind(z, "auto", None, "t") == ("logits", "detected on the probe batch")
    assert outputs_kind(z, "auto", False, "t")[0] == "logits"
    assert outputs_kind(p, "auto", True, "t") == ("probabilities",
                                                  "the model's last layer is softmax")
    with pytest.raises(OracleError, match="last layer is softmax"):
        outputs_kind(p, "logits", True, "t")
    with pytest.raises(OracleError, match="probe answers probability vectors"):
        outputs_kind(p, "logits", None, "t")
    with pytest.raises(OracleError, match="declare outputs='logits'"):
        outputs_kind(z, "probabilities", None, "t")


def test_keras_logits_model_is_reported_as_logits(tmp_path, images):
    """A logits model given as a keras: spec (or a bare path) is read raw and reported as
    logits; the softmax make_target adds is then applied once."""
    clf = tiny(SIZE)
    path = tmp_path / "logits.keras"
    clf.save(path)
    want = softmax_np(keras.ops.convert_to_numpy(clf(images, training=False)))
    for target in (f"keras:{path}", str(path), clf):
        oracle, info = make_target(target, probe_images=images, cache_dir=tmp_path / "c")
        assert info["outputs"] == "logits", (target, info)
        np.testing.assert_allclose(oracle(images), want, rtol=1e-4, atol=1e-6)
    probs = tiny(SIZE, softmax=True)
    probs.save(tmp_path / "probs.keras")
    _, info = make_target(f"keras:{tmp_path / 'probs.keras'}", probe_images=images,
                          cache_dir=tmp_path / "c")
    assert (info["outputs"], info["outputs_from"]) == ("probabilities",
                                                       "the model's last layer is softmax")


def test_logits_declared_on_a_softmax_model_is_refused(tmp_path, images):
    probs = tiny(SIZE, softmax=True)
    probs.save(tmp_path / "probs.keras")
    for target in (probs, f"keras:{tmp_path / 'probs.keras'}",
                   lambda x: keras.ops.convert_to_numpy(probs(x))):
        with pytest.raises(OracleError) as e:
            make_target(target, probe_images=images, outputs="logits", cache_dir=tmp_path)
        assert "declared outputs='logits'" in one_line(e)
    with pytest.raises(ConfigError) as e:
        from_spec(f"keras:{tmp_path / 'probs.keras'}", outputs="logits")
    assert "ends in a softmax" in one_line(e)


class NoisyServing(keras.layers.Layer):
    """Dropout that stays on at inference, as an augmentation layer left active in an export."""

    def call(self, x):
        return keras.random.dropout(x, 0.5)


def test_non_deterministic_target_is_refused(tmp_path, images):
    rng = np.random.default_rng(0)

    def noisy(x):
        return softmax_np(np.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x.max((1, 2, 3))], 1)
                          + rng.normal(0, 0.3, (len(x), M)))

    with pytest.raises(OracleError) as e:
        make_target(noisy, probe_images=images, cache_dir=tmp_path)
    msg = one_line(e)
    assert "answered the same 6 probe images differently on two queries" in msg
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Flatten(),
                              NoisyServing(), keras.layers.Dense(M)])
    with pytest.raises(OracleError, match="differently on two queries"):
        make_target(model, probe_images=images, cache_dir=tmp_path)
    # ... and an exported SavedModel with random ops in its graph fails when loaded
    import tensorflow as tf

    class Random(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 1], tf.float32)])
        def serve(self, images):
            return {"probabilities": tf.nn.softmax(tf.random.normal([tf.shape(images)[0], M]))}

    m = Random()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"serving_default": m.serve})
    with pytest.raises(OracleError, match="differently on two queries"):
        from_spec(f"savedmodel:{tmp_path / 'sm'}")
    # a deterministic target passes the same check
    from tfminv.oracles.checks import check_deterministic

    check_deterministic(np.ones((2, 3)), np.ones((2, 3)) + 1e-7, "t")


def test_legacy_h5_keras_files(tmp_path, images):
    pytest.importorskip("h5py")
    clf = tiny(SIZE)
    clf.save(tmp_path / "model.h5")
    want = softmax_np(keras.ops.convert_to_numpy(clf(images, training=False)))
    np.testing.assert_allclose(from_spec(f"keras:{tmp_path / 'model.h5'}")(images), want,
                               rtol=1e-4, atol=1e-6)
    oracle, info = make_target(str(tmp_path / "model.h5"), probe_images=images,
                               cache_dir=tmp_path)
    assert info["outputs"] == "logits"
    (tmp_path / "fake.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ConfigError) as e:
        from_spec(f"keras:{tmp_path / 'fake.h5'}")
    msg = one_line(e)
    assert "not a legacy Keras .h5 model" in msg and "is not an existing" not in msg
    import h5py

    with h5py.File(tmp_path / "weights.h5", "w") as f:
        f["w"] = np.zeros(3)
    with pytest.raises(ConfigError) as e:
        from_spec(f"keras:{tmp_path / 'weights.h5'}")
    msg = one_line(e)
    assert "cannot load" in msg and "re-save it as .keras" in msg
    (tmp_path / "model.pb").write_bytes(b"x")
    with pytest.raises(ConfigError) as e:
        from_spec(f"keras:{tmp_path / 'model.pb'}")
    assert "has suffix '.pb'" in one_line(e)
