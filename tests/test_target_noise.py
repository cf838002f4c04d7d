"""A target that answers the same images differently twice is refused by default; declared
intended (`target_noise='warn'`, `--target_noise=warn`: a release with noise on the owner's side)
it is audited with one logged warning naming the measured max difference, recorded in
run.json (and a note in results.md).

The target is a tiny Keras model written here (not a tfminv builder) on synthetic 16x16 images
of four classes (a bright block in each class's corner), with a layer that adds Gaussian noise
to its logits on every call, training or not."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import tfminv  # noqa: E402
from tfminv.errors import ConfigError, OracleError  # noqa: E402
from tfminv.leakage import make_target  # noqa: E402

from test_audit_references import _images  # noqa: E402  (a bright block per class corner)

ROOT = Path(__file__).parents[1]


@keras.saving.register_keras_serializable(package="tfminv_tests")
class OwnerNoise(keras.layers.Layer):
    """Gaussian noise on every answer (not only in training, unlike keras.layers.GaussianNoise)."""

    def __init__(self, stddev=0.5, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev
        self.seeds = keras.random.SeedGenerator(0)

    def call(self, x):
        return x + keras.random.normal(keras.ops.shape(x), stddev=self.stddev, seed=self.seeds)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    keras.utils.set_random_seed(0)
    y = np.arange(400) % 4
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4),
                              OwnerNoise(0.5), keras.layers.Softmax()])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(_images(y, 0), y, epochs=3, batch_size=32, verbose=0)
    d = tmp_path_factory.mktemp("noisy")
    model.save(d / "noisy.keras")
    victim_labels = np.arange(24) % 4
    np.savez(d / "aux.npz", images=(_images(np.arange(160) % 4, 1) * 255).astype(np.uint8))
    np.savez(d / "victims.npz", images=(_images(victim_labels, 2) * 255).astype(np.uint8),
             labels=victim_labels)
    return {"model": model, "dir": d, "probe": _images(np.arange(8) % 4, 3)}


def _noise_warnings(caplog):
    return [r for r in caplog.records
            if r.name.startswith("tfminv") and "differently on two queries" in r.getMessage()]


def test_noisy_target_is_refused_by_default_and_warned_once_when_declared(noisy, tmp_path,
                                                                        caplog):
    model, probe = noisy["model"], noisy["probe"]
    with pytest.raises(OracleError) as e:
        make_target(model, probe_images=probe, cache_dir=tmp_path)
    msg = str(e.value)
    assert "differently on two queries (max difference" in msg and "target_noise=warn" in msg
    assert "\n" not in msg
    caplog.set_level(logging.WARNING, logger="tfminv")
    oracle, info = make_target(model, probe_images=probe, cache_dir=tmp_path,
                               target_noise="warn")
    said = _noise_warnings(caplog)
    assert len(said) == 1
    diff = info["noise"]["max_difference"]
    assert info["noise"]["target_noise"] == "warn" and 0.01 < diff <= 1.0
    assert f"max difference {diff:.3g}" in said[0].getMessage()
    assert oracle(probe).shape == (8, 4)
    with pytest.raises(ConfigError, match="target_noise='sometimes'"):
        make_target(model, probe_images=probe, target_noise="sometimes")


def test_deterministic_target_records_no_noise(noisy, tmp_path):
    clean = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(4, activation="softmax")])
    _, info = make_target(clean, probe_images=noisy["probe"], cache_dir=tmp_path,
                          target_noise="warn")
    assert "noise" not in info


def test_noisy_savedmodel_passes_only_when_declared(tmp_path, caplog):
    import tensorflow as tf

    from tfminv.oracles import from_spec

    class Random(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 1], tf.float32)])
        def serve(self, images):
            return {"probabilities": tf.nn.softmax(tf.random.normal([tf.shape(images)[0], 4]))}

    m = Random()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"serving_default": m.serve})
    with pytest.raises(OracleError, match="differently on two queries"):
        from_spec(f"savedmodel:{tmp_path / 'sm'}")
    caplog.set_level(logging.WARNING, logger="tfminv")
    oracle = from_spec(f"savedmodel:{tmp_path / 'sm'}", target_noise="warn")
    assert oracle.noise > 0.01 and len(_noise_warnings(caplog)) == 1
    # the door's probe of the same SavedModel does not say it a second time
    _, info = make_target(str(tmp_path / "sm"), probe_images=np.zeros((4, 16, 16, 1)),
                          cache_dir=tmp_path, target_noise="warn")
    assert len(_noise_warnings(caplog)) == 2  # one at each load, none from the probe itself
    assert info["noise"]["max_difference"] > 0.01


def test_audit_scenario_refuses_then_audits_a_declared_noisy_target(noisy, tmp_path, caplog):
    from tfminv.scenarios.audit import AuditConfig, run_audit

    d = noisy["dir"]
    kw = dict(target=f"keras:{d / 'noisy.keras'}", aux=f"npz:{d / 'aux.npz'}",
              victims=f"npz:{d / 'victims.npz'}", policies="topk:2", epochs=1, width=0.125,
              batch_size=32, verbose=0)
    with pytest.raises(OracleError, match="differently on two queries"):
        run_audit(AuditConfig(**kw, cache_dir=str(tmp_path / "refused")))
    with pytest.raises(ConfigError, match="target_noise"):
        AuditConfig(**kw, target_noise="ignore")
    caplog.set_level(logging.WARNING, logger="tfminv")
    # a fresh cache: the reloaded model's seeded noise would repeat the cached first answer
    res = run_audit(AuditConfig(**kw, target_noise="warn", cache_dir=str(tmp_path / "cache")))
    assert len(_noise_warnings(caplog)) == 1
    files = {p.name: p for p in res.write(tmp_path / "out")}
    run = json.loads(files["run.json"].read_text())
    noise = run.get("settings", run)["target"]["noise"]
    assert noise["target_noise"] == "warn" and noise["max_difference"] > 0.01
    assert f"max difference {noise['max_difference']:.3g}" in files["results.md"].read_text()


def test_audit_binary_has_the_flag_in_its_focused_help():
    out = subprocess.run([sys.executable, "-m", "tfminv.experiments.audit", "--help"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    text = out.stdout + out.stderr
    assert "--target_noise" in text and "refuse" in text and "warn" in text
    bad = subprocess.run([sys.executable, "-m", "tfminv.experiments.audit",
                          "--target_noise=maybe"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "target_noise" in bad.stderr.strip().splitlines()[-1]
