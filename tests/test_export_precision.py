"""`python -m tfminv.export` on what the project trains at its CPU default precision
(mixed_bfloat16), on files that are not exportable models, and after a killed export."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_serving")

from tfminv import export  # noqa: E402
from tfminv.io_utils import OWNER_LOCK  # noqa: E402
from tfminv.models import build_classifier  # noqa: E402
from tfminv.training.precision import policy_scope  # noqa: E402

M, SIZE = 10, 32
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_export(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "tfminv.export", *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def bf16_target(tmp_path_factory):
    """A tiny classifier trained (two epochs on 64 random images) under mixed_bfloat16 and
    saved as .keras, as the project's targets are on a CPU; loading it keeps its bf16 policy."""
    d = tmp_path_factory.mktemp("bf16")
    with policy_scope("mixed_bfloat16"):
        keras.utils.set_random_seed(0)
        clf = build_classifier(M, SIZE, width=0.0625, name="target")
        x = np.random.default_rng(0).random((64, SIZE, SIZE, 1), dtype=np.float32)
        clf.compile(optimizer="adam",
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        clf.fit(x, np.arange(64) % M, epochs=2, batch_size=32, verbose=0)
        clf.save(d / "target.keras")
    model = keras.saving.load_model(d / "target.keras", compile=False)
    assert "bfloat16" in export.compute_dtypes(model)
    return d / "target.keras", model


def test_bf16_trained_target_exports_and_serves_in_float32(bf16_target, tmp_path):
    path, model = bf16_target
    base = tmp_path / "serving"
    out = run_export(f"--export_dir={base}", f"--classifier=target={path}")
    assert out.returncode == 0, out.stderr[-3000:]
    sig = tf.saved_model.load(str(base / "target" / "1")).signatures["serving_default"]
    x = np.random.default_rng(1).random((8, SIZE, SIZE, 1), dtype=np.float32)
    got = sig(images=tf.constant(x))["probabilities"].numpy()
    twin = export.float32_model(model)
    assert twin is not model and export.compute_dtypes(twin) == {"float32"}
    want = keras.ops.convert_to_numpy(keras.ops.softmax(twin(x, training=False)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # like with like
    trained = keras.ops.convert_to_numpy(keras.ops.softmax(
        keras.ops.cast(model(x, training=False), "float32")))
    assert np.abs(got - trained).max() < 0.05  # within bf16 rounding of the trained model
    # the served target passes the oracle's output check
    from tfminv.oracles import from_spec

    np.testing.assert_allclose(from_spec(f"savedmodel:{base / 'target'}")(x), got, rtol=1e-6)


def test_float32_models_are_exported_as_they_are():
    m = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    assert export.float32_model(m) is m
    assert export._tolerance({"bfloat16"}, 1e-4, 1e-5) == (0.0625, 0.0625)
    assert export._tolerance({"float32"}, 1e-4, 1e-5) == (1e-4, 1e-5)


def test_cli_refuses_non_models_in_one_line(tmp_path):
    (tmp_path / "notes.keras").write_text("not a model")
    lam = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                            keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(3)])
    lam.save(tmp_path / "lambda.keras")
    for name, needle in (("notes.keras", "not a Keras model archive"),
                         ("lambda.keras", "Lambda")):
        out = run_export(f"--export_dir={tmp_path / 'serving'}",
                         f"--classifier=c={tmp_path / name}")
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2, out.stderr[-2000:]
        assert "Traceback" not in out.stderr and needle in lines[-1], out.stderr[-2000:]
        assert str(tmp_path / name) in lines[-1]
    assert not (tmp_path / "serving" / "c").exists() or not any(
        (tmp_path / "serving" / "c").iterdir())


def test_temp_folders_of_killed_exports_are_removed(tmp_path):
    m = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                          keras.layers.Dense(3, activation="softmax")])
    model_dir = tmp_path / "c"
    dead = model_dir / ".1.k1ll3d_x.tmp"  # what a killed atomic_dir leaves: its lock, unheld
    dead.mkdir(parents=True)
    (dead / OWNER_LOCK).write_text("")
    (dead / "saved_model.pb").write_bytes(b"half")
    old = model_dir / ".3.n0l0ck.tmp"  # older than an hour, without a lock file
    old.mkdir()
    os.utime(old, (1, 1))
    alive = model_dir / ".2.al1ve.tmp"  # a writer still at work holds its lock
    alive.mkdir()
    with open(alive / OWNER_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert export.export_classifier(m, tmp_path, "c").name == "1"
        assert not dead.exists() and not old.exists() and alive.exists()
    assert sorted(p.name for p in model_dir.iterdir()) == [".2.al1ve.tmp", "1"]
