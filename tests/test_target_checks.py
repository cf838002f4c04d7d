"""Targets are checked before an attack relies on them: a file that is not a model, a model that
takes other images, a SavedModel answering logits each fail in one line naming the file."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tfminv import export  # noqa: E402
from tfminv.errors import ConfigError, OracleError  # noqa: E402
from tfminv.oracles import from_spec  # noqa: E402
from tfminv.oracles.checks import (check_image_shape, check_keras_archive,  # noqa: E402
                                   check_probabilities)

M = 3


def tiny(size=8, softmax=False, name="tiny"):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((size, size, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(M, activation="softmax" if softmax else None)],
                            name=name)


def one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


@pytest.mark.parametrize("content,found", [
    (b"this is a README, not a model\n", "not a zip archive"),
    (b"", "empty"),
    (b"\x89HDF\r\n\x1a\n" + bytes(64), "HDF5"),
])
def test_keras_file_that_is_not_a_model(tmp_path, content, found):
    p = tmp_path / "target.keras"
    p.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        from_spec(f"keras:{p}")
    msg = one_line(e)
    assert str(p) in msg and "not a Keras model archive" in msg and found in msg


def test_keras_zip_without_config(tmp_path):
    p = tmp_path / "target.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("weights.txt", "1 2 3")
    with pytest.raises(ConfigError) as e:
        from_spec(f"keras:{p}")
    assert "no config.json" in one_line(e) and str(p) in str(e.value)
    # a real model archive passes the check
    tiny().save(tmp_path / "ok.keras")
    assert check_keras_archive(tmp_path / "ok.keras") == tmp_path / "ok.keras"


def test_keras_archive_with_a_python_lambda_is_refused(tmp_path):
    """safe_mode (Keras' default, kept here) refuses marshalled Python code in a Lambda layer;
    the refusal is one line naming the file."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(M)])
    p = tmp_path / "lambda.keras"
    model.save(p)
    with pytest.raises(ConfigError) as e:
        from_spec(f"keras:{p}")
    msg = one_line(e)
    assert f"cannot load {p} as a Keras model" in msg and "Lambda" in msg


def test_keras_target_with_other_image_shape(tmp_path):
    p = tmp_path / "t28.keras"
    tiny(28).save(p)
    o = from_spec(f"keras:{p}")
    assert o.input_shape == (28, 28, 1)
    with pytest.raises(OracleError) as e:
        o(np.zeros((2, 32, 32, 1), np.float32))
    msg = one_line(e)
    assert str(p) in msg and "28x28x1" in msg and "32x32x1" in msg
    assert o.num_queries == 0
    assert o(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, M)


def test_savedmodel_answering_logits_is_refused_unless_declared(tmp_path):
    export.export_classifier(tiny(8), tmp_path, "logits", softmax=False)
    export.export_classifier(tiny(8), tmp_path, "probs", softmax=True)
    with pytest.raises(OracleError) as e:
        from_spec(f"savedmodel:{tmp_path / 'logits'}")
    msg = one_line(e)
    assert str(tmp_path / "logits") in msg and "not a probability vector" in msg
    declared = from_spec(f"savedmodel:{tmp_path / 'logits'}", softmax=True)
    x = np.random.default_rng(1).random((5, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(declared(x).sum(1), 1.0, rtol=1e-5)
    probs = from_spec(f"savedmodel:{tmp_path / 'probs'}")
    np.testing.assert_allclose(probs(x), declared(x), rtol=1e-5, atol=1e-6)
    assert probs.input_shape == (8, 8, 1) and probs.num_queries == 5  # the probe is not counted
    with pytest.raises(OracleError, match="takes images of shape 8x8x1, the attack's images "
                       "are 32x32x1"):
        probs(np.zeros((1, 32, 32, 1), np.float32))


def test_savedmodel_target_runs_its_ops_in_process(tmp_path):
    """What docs/serving.md warns of: a SavedModel's graph runs in the loading process with all
    its ops, here a file write, as soon as tfminv loads it (the load-time probe) or queries it."""
    import tensorflow as tf

    marker = tmp_path / "written_by_the_model.txt"

    class Hostile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
        def serve(self, images):
            tf.io.write_file(str(marker), "the model ran this op")
            n = tf.shape(images)[0]
            return {"probabilities": tf.fill([n, M], 1.0 / M)}

    m = Hostile()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"serving_default": m.serve})
    assert not marker.exists()
    o = from_spec(f"savedmodel:{tmp_path / 'sm'}")
    assert marker.read_text() == "the model ran this op"
    marker.unlink()
    o(np.zeros((1, 8, 8, 1), np.float32))
    assert marker.exists()


def test_check_probabilities():
    p = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]], np.float32)
    check_probabilities(p, "t")
    top1 = np.array([[0.7, 0.0, 0.0]], np.float32)  # a top-1 release sums to less than 1
    check_probabilities(top1, "t", require_sum_one=False)
    with pytest.raises(OracleError, match="row sums in"):
        check_probabilities(top1, "t")
    with pytest.raises(OracleError, match=r"t: output is not a probability vector \(values in "
                       r"\[-1.5, 2\]"):
        check_probabilities(np.array([[2.0, -1.5, 0.5]]), "t")
    with pytest.raises(OracleError, match="NaN"):
        check_probabilities(np.array([[np.nan, 0.5, 0.5]]), "t")
    with pytest.raises(OracleError, match="expected prediction vectors"):
        check_probabilities(np.zeros((3,)), "t")


def test_check_image_shape():
    check_image_shape(None, (5, 32, 32, 1), "t")
    check_image_shape((None, None, 1), (5, 32, 32, 1), "t")
    check_image_shape((32, 32, 1), (32, 32, 1), "t")
    with pytest.raises(OracleError, match=re.escape("t: the target takes images of shape ?x?x3, the attack's images are 32x32x1")):
        check_image_shape((None, None, 3), (5, 32, 32, 1), "t")
