"""SavedModel export in TF Serving's layout: signatures, truncation in the graph, warm-up, config."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfminv import export  # noqa: E402
from tfminv.errors import ConfigError  # noqa: E402
from tfminv.models import build_classifier, build_inverter, truncate_np  # noqa: E402

M, SIZE, K = 5, 32, 2


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    clf = build_classifier(M, SIZE, width=0.0625, name="clf")
    inv = build_inverter(M, SIZE, width=0.0625, k=K, name="inv")
    return clf, inv


@pytest.fixture(scope="module")
def base(tmp_path_factory, models):
    clf, inv = models
    b = tmp_path_factory.mktemp("export")
    export.export_classifier(clf, b, "classifier")
    export.export_inverter(inv, b, "inverter")
    export.write_models_config(b)
    return b


def probs(n, seed=1):
    z = np.random.default_rng(seed).normal(size=(n, M)) * 3
    return (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(np.float32)


def test_layout(base):
    for name in ("classifier", "inverter"):
        v = base / name / "1"
        assert (v / "saved_model.pb").is_file() and (v / "variables").is_dir()
        assert (v / export.WARMUP_FILE).is_file()
    assert not [p for p in base.rglob(".*") if p.name.endswith(".tmp")]


def test_classifier_signature_reproduces_keras_softmax(base, models):
    clf, _ = models
    sig = tf.saved_model.load(str(base / "classifier" / "1")).signatures["serving_default"]
    assert list(sig.structured_input_signature[1]) == ["images"]
    assert list(sig.structured_outputs) == ["probabilities"]
    x = np.random.default_rng(2).random((6, SIZE, SIZE, 1), dtype=np.float32)
    got = sig(images=tf.constant(x))["probabilities"].numpy()
    want = keras.ops.convert_to_numpy(keras.ops.softmax(clf(x, training=False)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)


def test_inverter_truncates_inside_the_graph(base, models):
    _, inv = models
    sig = tf.saved_model.load(str(base / "inverter" / "1")).signatures["serving_default"]
    assert list(sig.structured_input_signature[1]) == ["predictions"]
    assert list(sig.structured_outputs) == ["images"]
    p = probs(4)
    got = sig(predictions=tf.constant(p))["images"].numpy()
    assert got.shape == (4, SIZE, SIZE, 1)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(inv(p, training=False)),
                               rtol=1e-5, atol=1e-6)
    # Changing entries outside the top-k must not change the reconstruction ...
    q = p.copy()
    low = np.argsort(-q, axis=1)[:, K:]
    np.put_along_axis(q, low, np.take_along_axis(q, low, 1) * 0.5, 1)
    np.testing.assert_allclose(truncate_np(q, K), truncate_np(p, K))
    got_q = sig(predictions=tf.constant(q))["images"].numpy()
    np.testing.assert_allclose(got_q, got, rtol=1e-6, atol=1e-7)
    # ... while changing a top-k entry does.
    r = p.copy()
    r[np.arange(4), np.argmax(r, 1)] *= 0.5
    assert np.abs(sig(predictions=tf.constant(r))["images"].numpy() - got).max() > 1e-4


def test_saved_model_cli_lists_the_documented_signature(base):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "show", "--all", "--dir", str(base / "inverter" / "1")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "signature_def['serving_default']" in text
    assert "inputs['predictions'] tensor_info" in text and "shape: (-1, 5)" in text
    assert "outputs['images'] tensor_info" in text and "shape: (-1, 32, 32, 1)" in text
    assert "Method name is: tensorflow/serving/predict" in text
    assert "TopKV2" in text  # the truncation is part of the served graph


def test_warmup_requests_parse(base):
    logs = export.read_warmup(base / "inverter" / "1" / export.WARMUP_FILE)
    assert len(logs) == 2
    req = logs[0].predict_log.request
    assert req.model_spec.name == "inverter"
    assert req.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(req.inputs["predictions"]).shape == (1, M)
    logs = export.read_warmup(base / "classifier" / "1" / export.WARMUP_FILE)
    assert tf.make_ndarray(logs[1].predict_log.request.inputs["images"]).shape == (1, SIZE, SIZE, 1)


def test_models_config(base):
    cfg = export.read_models_config(base / "models.config")
    assert cfg == {"classifier": (base / "classifier").resolve(),
                   "inverter": (base / "inverter").resolve()}
    docker = export.read_models_config(base / "models.docker.config")
    assert {k: str(v) for k, v in docker.items()} == {"classifier": "/models/classifier",
                                                      "inverter": "/models/inverter"}
    bad = base / "bad.config"
    bad.write_text("model_config_list { nonsense")
    with pytest.raises(ConfigError, match="bad.config: not a readable ModelServerConfig"):
        export.read_models_config(bad)


def test_versions_and_atomic_failure(tmp_path):
    m = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                          keras.layers.Dense(3, activation="softmax")])
    assert export.ends_in_softmax(m)
    assert export.export_classifier(m, tmp_path, "c").name == "1"
    assert export.export_classifier(m, tmp_path, "c").name == "2"
    with pytest.raises(ConfigError, match="already exists"):
        export.export_classifier(m, tmp_path, "c", version=2)
    with pytest.raises(ConfigError, match="warm-up inputs have shape"):
        export.export_classifier(m, tmp_path, "c", version=3,
                                 warmup_inputs=np.zeros((1, 5, 5, 1), np.float32))
    assert export.versions(tmp_path / "c") == [1, 2]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["1", "2"]  # no temp dirs
    with pytest.raises(ConfigError, match="model name 'a/b'"):
        export.export_classifier(m, tmp_path, "a/b")
    # the softmax model is not softmaxed twice
    sig = tf.saved_model.load(str(tmp_path / "c" / "1")).signatures["serving_default"]
    x = np.random.default_rng(0).random((2, 4, 4, 1), dtype=np.float32)
    np.testing.assert_allclose(sig(images=tf.constant(x))["probabilities"].numpy(),
                               keras.ops.convert_to_numpy(m(x)), rtol=1e-5)


def test_cli_exports_keras_files(tmp_path, models):
    clf, inv = models
    clf.save(tmp_path / "clf.keras")
    inv.save(tmp_path / "inv.keras")
    base = tmp_path / "serving"
    cmd = [sys.executable, "-m", "tfminv.export", f"--export_dir={base}",
           f"--classifier=target={tmp_path / 'clf.keras'}",
           f"--inverter=inv_top{K}={tmp_path / 'inv.keras'}", "--version=7"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (base / "target" / "7" / "saved_model.pb").is_file()
    assert (base / f"inv_top{K}" / "7" / "saved_model.pb").is_file()
    # the command prints what the library's export_files returns, one line each
    lines = out.stdout.splitlines()
    assert lines[:2] == [f"classifier target: {base / 'target' / '7'}",
                         f"inverter inv_top{K}: {base / f'inv_top{K}' / '7'}"]
    assert lines[2:] == [f"config: {base / 'models.config'}",
                         f"config: {base / 'models.docker.config'}"]
    assert set(export.read_models_config(base / "models.config")) == {"target", f"inv_top{K}"}
    sig = tf.saved_model.load(str(base / f"inv_top{K}" / "7")).signatures["serving_default"]
    p = probs(3)
    np.testing.assert_allclose(sig(predictions=tf.constant(p))["images"].numpy(),
                               keras.ops.convert_to_numpy(inv(p, training=False)),
                               rtol=1e-5, atol=1e-6)
    bad = subprocess.run([sys.executable, "-m", "tfminv.export", f"--export_dir={base}",
                          f"--classifier={tmp_path / 'nope.keras'}"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode != 0 and "nope.keras: expected an existing .keras model file" in bad.stderr
