"""fit: resume after a kill, model selection, reuse, locking; precision and strategy flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tfminv.errors import ConfigError  # noqa: E402
from tfminv.models import build_inverter  # noqa: E402
from tfminv.training import TrainConfig, fit, load_run  # noqa: E402
from tfminv.training import precision, strategy  # noqa: E402


def _data(n=64, m=6, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(m), size=n).astype(np.float32)
    imgs = rng.random((n, 32, 32, 1)).astype(np.float32)
    return p, imgs


def _build():
    return build_inverter(6, 32, width=0.0625, k=3)


class Kill(keras.callbacks.Callback):
    """Simulate a crash at the end of the first epoch (after BackupAndRestore saved it)."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("killed")


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.first_weights, self.first_iter = [], None, None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_weights is None:
            self.first_weights = [w.copy() for w in self.model.get_weights()]
            self.first_iter = int(self.model.optimizer.iterations.numpy())
        self.epochs.append(epoch)


class Snap(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.weights = [w.copy() for w in self.model.get_weights()]
        self.iterations = int(self.model.optimizer.iterations.numpy())


def test_resume_after_kill_continues(tmp_path):
    p, imgs = _data()
    cfg = TrainConfig(epochs=3, batch_size=16, verbose=0, precision="float32")
    snap = Snap()
    with pytest.raises(KeyboardInterrupt):
        fit(_build, p, imgs, config=cfg, workdir=tmp_path, val=(p[:16], imgs[:16]),
            callbacks=[snap, Kill()])
    assert not (tmp_path / "model.keras").exists()
    assert snap.iterations == 4  # 64 / 16 steps in the first epoch
    rec = Recorder()
    model = fit(_build, p, imgs, config=cfg, workdir=tmp_path, val=(p[:16], imgs[:16]),
                callbacks=[rec])
    assert rec.epochs == [1, 2]                      # epoch counter continues
    assert rec.first_iter == 4                        # optimizer state restored
    for a, b in zip(rec.first_weights, snap.weights):  # weights not re-initialised
        np.testing.assert_array_equal(a, b)
    run = load_run(tmp_path)
    assert run["epochs_run"] == 3 and run["best"]["monitor"] == "val_loss"
    assert (tmp_path / "model.keras").exists() and any((tmp_path / "logs").iterdir())
    # a finished workdir is reused, not retrained
    again = fit(_build, p, imgs, config=cfg, workdir=tmp_path, val=(p[:16], imgs[:16]),
                callbacks=[Kill()])
    np.testing.assert_allclose(again.predict(p[:4], verbose=0), model.predict(p[:4], verbose=0),
                               atol=1e-6)
    with pytest.raises(ConfigError, match="different settings"):
        fit(_build, p, imgs, config=cfg.replace(seed=2), workdir=tmp_path)


def test_model_selection_keeps_best_epoch_and_seeded_runs_repeat(tmp_path):
    p, imgs = _data()
    cfg = TrainConfig(epochs=4, batch_size=16, verbose=0, precision="float32",
                      learning_rate=0.05)  # large steps: validation loss is not monotone
    model = fit(_build, p, imgs, config=cfg, workdir=tmp_path / "a", val=(p[:16], imgs[:16]))
    run = load_run(tmp_path / "a")
    got = float(np.mean((model.predict(p[:16], verbose=0) - imgs[:16]) ** 2))
    assert got == pytest.approx(run["best"]["value"], rel=1e-4)
    again = fit(_build, p, imgs, config=cfg, workdir=tmp_path / "b", val=(p[:16], imgs[:16]))
    best_b = load_run(tmp_path / "b")["best"]  # same seed, same run
    assert best_b["epoch"] == run["best"]["epoch"]
    assert best_b["value"] == pytest.approx(run["best"]["value"], rel=1e-4)
    np.testing.assert_allclose(again.predict(p[:4], verbose=0), model.predict(p[:4], verbose=0),
                               atol=1e-5)


def test_concurrent_fit_on_same_workdir_waits(tmp_path):
    import fcntl
    import threading
    import time

    p, imgs = _data(n=16)
    cfg = TrainConfig(epochs=1, batch_size=16, verbose=0, precision="float32")
    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".lock", "w") as held:  # another process is training this run
        fcntl.flock(held, fcntl.LOCK_EX)
        t = threading.Thread(target=fit, args=(_build, p, imgs),
                             kwargs=dict(config=cfg, workdir=tmp_path))
        t.start()
        time.sleep(1.0)
        assert t.is_alive() and not (tmp_path / "history.csv").exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    t.join(timeout=120)
    assert not t.is_alive() and (tmp_path / "model.keras").exists()


def test_classifier_cache_key_depends_on_training_data_only():
    import dataclasses

    from tfminv.data import allocations
    from tfminv.training.targets import classifier_key

    base = allocations.get("mnist")
    fewer_victims = dataclasses.replace(base, victims=dataclasses.replace(base.victims, limit=9))
    fewer_train = dataclasses.replace(
        base, target_train=dataclasses.replace(base.target_train, limit=99))
    cfg = TrainConfig(epochs=3)
    key = classifier_key(base, "target", 0.25, cfg)
    assert classifier_key(fewer_victims, "target", 0.25, cfg) == key
    assert classifier_key(fewer_train, "target", 0.25, cfg) != key
    assert classifier_key(base, "eval", 0.25, cfg) != key
    assert classifier_key(base, "target", 0.5, cfg) != key
    assert classifier_key(base, "target", 0.25, cfg.replace(seed=7)) != key


def test_config_and_flag_errors(monkeypatch):
    assert TrainConfig().batch_size == 128 and TrainConfig().beta_1 == 0.5
    opt = TrainConfig().optimizer()
    assert opt.amsgrad and float(opt.learning_rate.numpy()) == pytest.approx(2e-4)
    with pytest.raises(ConfigError, match="--epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="--precision"):
        precision.resolve("half")
    with pytest.raises(ConfigError, match="--strategy"):
        strategy.get_strategy("tpu")
    # no GPU on the test machine: bf16 where the CPU computes it natively, else float32
    # (the same VM type has come with and without avx512_bf16 in /proc/cpuinfo)
    with open("/proc/cpuinfo") as f:
        native = "avx512_bf16" in (flags := f.read()) or "amx_bf16" in flags
    assert precision.resolve("auto") == (precision.CPU_DEFAULT if native else "float32")
    monkeypatch.setattr(precision, "_cpu_has_bf16", lambda: not native)
    assert precision.resolve("auto") == ("float32" if native else precision.CPU_DEFAULT)
    with precision.policy_scope("mixed_bfloat16"):
        m = _build()
    assert m.get_layer("decoder").get_layer("deconv0").compute_dtype == "bfloat16"
    assert m.output.dtype == "float32" and m.get_layer("truncation").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = textwrap.dedent(f"""
        import json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfminv.models import build_inverter
        from tfminv.training import TrainConfig, fit, strategy
        s = strategy.get_strategy("mirrored")
        rng = np.random.default_rng(0)
        p = rng.dirichlet(np.ones(6), size=32).astype(np.float32)
        x = rng.random((32, 32, 32, 1)).astype(np.float32)
        m = fit(lambda: build_inverter(6, 32, width=0.0625, k=2), p, x,
                config=TrainConfig(epochs=1, batch_size=8, verbose=0, strategy="mirrored",
                                   precision="float32"),
                workdir={str(tmp_path)!r})
        print(json.dumps({{"replicas": s.num_replicas_in_sync,
                          "shape": list(m.predict(p[:2], verbose=0).shape)}}))
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"replicas": 2, "shape": [2, 32, 32, 1]}


def test_accuracy_selection_keeps_highest_and_eta_lines(tmp_path, capsys):
    """monitor='val_accuracy' keeps the epoch with the HIGHEST accuracy (losses: the lowest);
    verbose runs print the time left for the whole run after each epoch."""
    import json

    import keras

    from tfminv.training import format_seconds

    rng = np.random.default_rng(0)
    x = rng.random((64, 8)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)

    def build():
        inp = keras.Input((8,))
        return keras.Model(inp, keras.layers.Dense(2)(inp))

    cfg = TrainConfig(epochs=5, batch_size=16, verbose=2, precision="float32",
                      learning_rate=0.05)
    fit(build, x, y, config=cfg, workdir=tmp_path, val=(x[:32], y[:32]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], monitor="val_accuracy")
    best = json.loads((tmp_path / "best.json").read_text())
    accs = [float(r["val_accuracy"]) for r in
            __import__("csv").DictReader(open(tmp_path / "history.csv"))]
    assert best["value"] == pytest.approx(max(accs)) and best["epoch"] == accs.index(max(accs)) + 1
    err = capsys.readouterr().err
    assert "epoch 5/5, about 0 s left" in err and "epoch 1/5, about" in err
    assert [format_seconds(s) for s in (12, 270, 4 * 3600)] == ["12 s", "4.5 min", "4.0 h"]


class _FlakyLoss(keras.losses.Loss):
    """MSE, except non-finite on the loss calls `bad(count)` picks (a tf.Variable counts the
    calls, validation included), to stand in for an intermittent kernel fault."""

    def __init__(self, bad):
        import tensorflow as tf

        super().__init__(name="flaky_mse")
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.bad = bad

    def call(self, y_true, y_pred):
        import tensorflow as tf

        self.calls.assign_add(1)
        mse = tf.reduce_mean(tf.square(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32)))
        return tf.where(self.bad(self.calls), tf.constant(float("nan")), mse)


def test_nonfinite_loss_resumes_from_last_epoch_then_gives_up(tmp_path, caplog):
    from tfminv.errors import TrainingError

    p, imgs = _data()
    cfg = TrainConfig(epochs=3, batch_size=16, verbose=0, precision="float32")
    val = (p[:16], imgs[:16])
    # 4 training calls and 1 validation call per epoch: call 6 is epoch 2's first batch
    once = _FlakyLoss(lambda n: n == 6)
    model = fit(_build, p, imgs, config=cfg, workdir=tmp_path / "once", val=val, loss=once)
    err = caplog.text
    assert "non-finite" in err and "epoch 2, batch 1" in err and "attempt 2 of 3" in err
    run = load_run(tmp_path / "once")
    assert run["epochs_run"] == 3 and np.isfinite(run["best"]["value"])
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    rows = (tmp_path / "once" / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 4 and "nan" not in "".join(rows).lower()  # header + 3 epochs
    # a real divergence fails every attempt: a clear error and no finished model
    always = _FlakyLoss(lambda n: n >= 6)
    with pytest.raises(TrainingError, match="non-finite .* in 3 attempts in a row.*--precision"):
        fit(_build, p, imgs, config=cfg, workdir=tmp_path / "always", val=val, loss=always)
    assert not (tmp_path / "always" / "model.keras").exists()
    # faults spread over the run are each resumed from: more than 3 in all, never 3 in a row
    # calls 3, 10, 17, 24 are training batches of epochs 1, 2, 3, 4 (each attempt resumes
    # past the epoch that failed before)
    spread = _FlakyLoss(lambda n: (n == 3) | (n == 10) | (n == 17) | (n == 24))
    caplog.clear()
    fit(_build, p, imgs, config=cfg.replace(epochs=4), workdir=tmp_path / "spread", val=val,
        loss=spread)
    assert load_run(tmp_path / "spread")["epochs_run"] == 4
    assert caplog.text.count("training loss non-finite") == 4
    assert [f"at epoch {e}," in caplog.text for e in (1, 2, 3, 4)] == [True] * 4
