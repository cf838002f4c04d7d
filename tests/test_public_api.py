"""The public door: tfminv.run_inversion / run_audit on a user's own model and images, the data
specs of --aux / --victims, the leakage callback, bad input, and the walk-through example.

Own models are trained here on slices of real data in shapes the bundled allocations never use
(MNIST at its native 28x28, cropped to 28x24; CIFAR-10 in colour at 32x32x3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfminv
from tfminv.errors import ConfigError, DataError, OracleError, TfminvError


@pytest.fixture(scope="module")
def mnist28(data_dir):
    from tfminv.data.sources import mnist

    folder = Path(data_dir) / "mnist"
    x = mnist.parse_idx(folder / "train-images-idx3-ubyte.gz", mnist.IMAGE_MAGIC, 3, 3000)
    y = mnist.parse_idx(folder / "train-labels-idx1-ubyte.gz", mnist.LABEL_MAGIC, 1, 3000)
    return x, y.astype(np.int64)


def _train(shape, x, y, *, softmax=True, scale=1 / 255.0, epochs=4, seed=0):
    """A small Keras classifier of the user's own (not tfminv's builders)."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input(shape)]
    if scale != 1 / 255.0:  # a model that takes 0-255 inputs
        layers.append(keras.layers.Rescaling(1 / 255.0))
    layers += [keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
               keras.layers.Dense(10, activation="softmax" if softmax else None)]
    model = keras.Sequential(layers)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax))
    model.fit(x * scale, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def mnist_model(mnist28):
    x, y = mnist28
    return _train((28, 28, 1), x[:1000, ..., None].astype(np.float32), y[:1000])


def test_import_is_cheap():
    code = ("import sys, tfminv; f = tfminv.run_inversion; r = tfminv.InversionResults; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "
            "[m for m in sys.modules if m.startswith(('tensorflow', 'keras'))][:3]")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_own_28x28_model_leaks_and_report(mnist28, mnist_model, tmp_path):
    """A user's MNIST model at 28x28 (ending in softmax): the top-3 aligned attacker beats the
    mean auxiliary image; results follow one schema; the report is written."""
    x, y = mnist28
    aux, victims, labels = x[1000:2500], x[2500:2560], y[2500:2560]  # uint8 [N, 28, 28]
    res = tfminv.run_inversion(mnist_model, aux, victims, labels, k=3, epochs=10, width=0.125,
                               batch_size=32, cache_dir=tmp_path / "cache")
    row = res.row("topk:3")
    assert row.k == 3 and row.released_entries == 3.0
    assert row.mse < res.baselines["mse_mean_aux"] and row.beats_mean_aux
    assert res.baselines["mse_class_mean"] < res.baselines["mse_zeros"]
    assert res.reconstructions["topk:3"].shape == (60, 28, 28, 1)
    t = res.settings["target"]
    assert t["outputs"] == "probabilities" and "softmax" in t["outputs_from"]
    assert t["input_range"] == [0.0, 1.0] and t["classes"] == 10
    assert res.settings["judge"]["judge"] == "target"
    assert "biased upward" in res.settings["judge"]["note"]
    assert 0 <= row.attack_acc <= row.attack_acc_top5 <= 1 and 0 < row.utility <= 1
    saved = json.loads(res.to_json())
    assert saved["rows"][0]["attack_acc"] == row.attack_acc
    assert "attack_top1" not in saved["rows"][0]

    files = res.write_report(tmp_path / "out", title="own model")
    assert {"results.json", "results.md", "reconstructions.png", "report.html",
            "leakage_utility.png"} <= set(files)
    assert json.loads((tmp_path / "out" / "results.json").read_text())[0]["policy"] == "topk:3"
    import cv2

    grid = cv2.imread(str(files["reconstructions.png"]), cv2.IMREAD_UNCHANGED)
    assert grid.ndim == 2 and grid.shape[0] == 2 * (56 + 2) + 2  # ground truth + 1 row

    # a judge given as a plain callable (any target form), reusing the cached inverter
    def judge(images):
        return mnist_model.predict_on_batch(images)

    again = tfminv.run_inversion(mnist_model, aux, victims, labels, k=3, epochs=10,
                                 width=0.125, batch_size=32, cache_dir=tmp_path / "cache",
                                 eval_model=judge)
    assert again.row("topk:3").mse == pytest.approx(row.mse, abs=1e-6)
    assert again.settings["judge"]["judge"] == "eval_model"
    assert again.baselines["judge_accuracy_on_real_victims"] > 0.5


@pytest.mark.slow
def test_own_rgb_model_0_255_logits(data_dir, tmp_path):
    """CIFAR-10 in colour, a model taking 0-255 inputs and answering logits: the input range
    is declared, logits are detected and softmaxed once, reconstructions are 32x32x3."""
    z = np.load(Path(data_dir) / "cifar10" / "cifar10_data_batch_1_first4000_lossless.npz")
    x, y = z["images"], z["labels"].astype(np.int64)
    model = _train((32, 32, 3), x[:1500].astype(np.float32), y[:1500], softmax=False,
                   scale=1.0, epochs=3)
    res = tfminv.run_inversion(model, x[1500:2700], x[2700:2740], y[2700:2740],
                               input_range=(0, 255), epochs=6, width=0.0625, batch_size=32,
                               cache_dir=tmp_path / "cache")
    t = res.settings["target"]
    assert t["input_range"] == [0.0, 255.0]
    assert t["outputs"] == "logits" and t["outputs_from"] == "detected on the probe batch"
    row = res.row("identity")
    assert res.reconstructions["identity"].shape == (40, 32, 32, 3)
    assert np.isfinite(row.mse) and row.mse < res.baselines["mse_zeros"]
    grid = res.write_report(tmp_path / "out")["reconstructions.png"]
    import cv2

    assert cv2.imread(str(grid), cv2.IMREAD_UNCHANGED).shape[-1] == 3  # a colour grid


@pytest.mark.slow
def test_command_line_on_own_non_square_data(mnist28, tmp_path):
    """The audit binary on a user's 28x24 model with --aux=folder:DIR (PNG files) and
    --victims=npz:FILE: the aligned attacker beats the mean auxiliary image."""
    import cv2

    x, y = mnist28
    x = x[:, :, 2:26]  # 28x24: a shape no bundled allocation has
    model = _train((28, 24, 1), x[:1000, ..., None].astype(np.float32), y[:1000])
    model.save(tmp_path / "model.keras")
    aux_dir = tmp_path / "aux"
    aux_dir.mkdir()
    for i, img in enumerate(x[1000:2500]):
        cv2.imwrite(str(aux_dir / f"{i:04d}.png"), img)
    np.savez(tmp_path / "victims.npz", images=x[2500:2560], labels=y[2500:2560])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tfminv.experiments.audit", f"--target=keras:{tmp_path}/model.keras",
         f"--aux=folder:{aux_dir}", f"--victims=npz:{tmp_path}/victims.npz",
         "--policies=topk:3", "--epochs=10", "--width=0.125", "--batch_size=32", "--verbose=0",
         f"--cache_dir={tmp_path}/cache", f"--out_dir={out}"],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert rows[0]["policy"] == "topk:3" and rows[0]["mse"] < run["baselines"]["mse_mean_aux"]
    assert run["image_shape"] == [28, 24, 1] and run["victims"] == 60
    assert "--victims=npz:" in run["command"]
    assert (out / "reconstructions.png").exists() and (out / "report.html").exists()


# ----------------------------------------------------------------------------- bad input
def _probs(n_classes=10):
    def fn(images):
        z = images.reshape(len(images), -1)[:, :n_classes].astype(np.float64)
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return fn


def _imgs(n, shape=(28, 28, 1), seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


BAD = {
    "aux not images": (dict(aux_images=np.zeros((10, 28))), DataError,
                       "aux_images: expected images"),
    "shapes differ": (dict(victim_images=_imgs(4, (32, 32, 1))), DataError,
                      "aux_images are 28x28x1 but victim_images are 32x32x1"),
    "float out of range": (dict(aux_images=_imgs(10) * 255), DataError, "must be in [0, 1]"),
    "labels out of range": (dict(victim_labels=[0, 1, 2, 10]), DataError,
                            "answers 10 classes: expected labels in [0, 9]"),
    "labels wrong count": (dict(victim_labels=[0, 1]), DataError, "expected 4 integer labels"),
    "nan predictions": (dict(target=lambda im: np.full((len(im), 10), np.nan)), OracleError,
                        "NaN"),
    "wrong row count": (dict(target=lambda im: _probs()(im)[:-1]), OracleError,
                        "expected 8 prediction vectors"),
    "one class": (dict(target=lambda im: np.ones((len(im), 1))), OracleError, "at least 2"),
    "undeclared partial": (dict(target=lambda im: _probs()(im) * 0.5), OracleError,
                           "declare outputs="),
    "k too large": (dict(k=11), ConfigError, "k=11: the target answers 10 classes"),
    "k and policies": (dict(k=1, policies="label"), ConfigError, "not both"),
    "bad policy": (dict(policies="identity;topq:3"), ConfigError, "unknown policy 'topq'"),
    "bad input range": (dict(input_range=(255, 0)), ConfigError, "input_range"),
    "judge length": (dict(eval_model=_probs(5)), DataError, "eval_model answers 5 classes"),
    "not a target": (dict(target=42), ConfigError, "expected a Keras model"),
    "missing keras file": (dict(target="missing.keras"), ConfigError, "missing.keras"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_before_training(case, tmp_path):
    change, error, message = BAD[case]
    args = dict(target=_probs(), aux_images=_imgs(10), victim_images=_imgs(4, seed=1),
                victim_labels=[0, 1, 2, 3])
    args.update(change)
    with pytest.raises(error, match=_re(message)):
        tfminv.run_inversion(args.pop("target"), args.pop("aux_images"),
                             args.pop("victim_images"), args.pop("victim_labels"),
                             cache_dir=tmp_path / "cache", epochs=1, **args)
    assert not (tmp_path / "cache" / "inverters").exists()  # nothing trained, nothing left


def _re(text):
    import re

    return re.escape(text)


def test_inputs_dataclass_checks_itself():
    inputs = tfminv.InversionInputs(np.zeros((6, 20, 16), np.uint8),
                                    np.full((3, 20, 16, 1), 255, np.uint8), [0, 1, 1])
    assert inputs.aux_images.dtype == np.float32 and inputs.aux_images.shape == (6, 20, 16, 1)
    assert inputs.victim_images.max() == 1.0 and inputs.image_shape == (20, 16, 1)
    with pytest.raises(DataError, match="victim_labels: labels must be integers"):
        tfminv.InversionInputs(np.zeros((6, 20, 16)), np.zeros((3, 20, 16)), [0.5, 1, 1])
    with pytest.raises(ConfigError, match="give no separate victim"):
        tfminv.run_inversion(_probs(), inputs, np.zeros((3, 20, 16)))


def test_channel_mismatch_with_a_keras_target(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    with pytest.raises(DataError, match=r"expects images of shape 28x28x1 but the images are "
                                        r"28x28x3 \(channel mismatch\)"):
        tfminv.run_inversion(model, _imgs(10, (28, 28, 3)), _imgs(4, (28, 28, 3)),
                             cache_dir=tmp_path)


def test_callable_that_rejects_the_shape(tmp_path):
    def target(images):
        return images.reshape(len(images), 7, -1).sum(-1)  # fails unless H*W*C divides by 7

    with pytest.raises(OracleError, match=r"target failed on a probe batch of 8 images of "
                                          r"shape 30x30x1 \(ValueError"):
        tfminv.run_inversion(target, _imgs(10, (30, 30, 1)), _imgs(4, (30, 30, 1)),
                             cache_dir=tmp_path)


def test_keras_oracle_never_softmaxes_twice():
    import keras

    from tfminv.oracles import KerasOracle

    x = _imgs(5, (12, 12, 1))
    probs = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(4, activation="softmax")])
    np.testing.assert_allclose(KerasOracle(probs)(x), probs.predict(x, verbose=0), atol=1e-6)
    logits = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(4)])
    z = logits.predict(x, verbose=0)
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(KerasOracle(logits)(x), e / e.sum(1, keepdims=True), atol=1e-6)


# ----------------------------------------------------------------------------- data specs
def test_folder_and_npz_specs(tmp_path):
    import cv2

    from tfminv.data import specs

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "lab" / cls).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "lab" / cls / f"{i}.png"),
                        rng.integers(0, 255, (20, 16, 3), dtype=np.uint8))
    got = specs.load(f"folder:{tmp_path / 'lab'}", what="--aux")
    assert got.images.shape == (6, 20, 16, 3) and got.images.dtype == np.uint8
    assert got.labels.tolist() == [0, 0, 0, 1, 1, 1] and got.label_names == ("cat", "dog")
    # colour order is RGB (OpenCV reads BGR)
    first = cv2.imread(str(tmp_path / "lab" / "cat" / "0.png"))
    np.testing.assert_array_equal(got.images[0], first[..., ::-1])

    np.savez(tmp_path / "v.npz", images=rng.random((5, 20, 16)).astype(np.float32),
             labels=np.arange(5))
    got = specs.load(f"npz:{tmp_path / 'v.npz'}")
    assert got.images.shape == (5, 20, 16, 1) and got.labels.tolist() == [0, 1, 2, 3, 4]
    assert specs.is_spec("npz:x") and not specs.is_spec("celeba")


SPEC_ERRORS = {
    "empty folder": ("folder:{d}/empty", "no image files"),
    "unreadable": ("folder:{d}/broken", "broken/b.png: cannot read this image"),
    "mixed sizes": ("folder:{d}/mixed", "mixed/b.png is 10x12x1 but"),
    "npz key": ("npz:{d}/nokey.npz", "expected 'images'"),
    "npz labels": ("npz:{d}/badlabels.npz", "expected 3 integers"),
    "missing npz": ("npz:{d}/none.npz", "none.npz not found"),
    "scheme": ("zip:{d}", "expected folder:DIR, npz:FILE"),
    "tfds not prepared": ("tfds:mnist:test", "no prepared TFDS dataset"),
    "records": ("records:{d}/empty", "metadata.json not found"),
}


@pytest.mark.parametrize("case", sorted(SPEC_ERRORS))
def test_spec_errors_name_the_file(case, tmp_path, monkeypatch):
    import cv2

    from tfminv.data import specs

    d = tmp_path
    (d / "empty").mkdir()
    (d / "broken").mkdir()
    cv2.imwrite(str(d / "broken" / "a.png"), np.zeros((10, 10), np.uint8))
    (d / "broken" / "b.png").write_bytes(b"not a png")
    (d / "mixed").mkdir()
    cv2.imwrite(str(d / "mixed" / "a.png"), np.zeros((10, 10), np.uint8))
    cv2.imwrite(str(d / "mixed" / "b.png"), np.zeros((10, 12), np.uint8))
    np.savez(d / "nokey.npz", x=np.zeros((3, 10, 10)))
    np.savez(d / "badlabels.npz", images=np.zeros((3, 10, 10)), labels=np.zeros(2))
    monkeypatch.setenv("TFDS_DATA_DIR", str(d / "tfds"))
    spec, message = SPEC_ERRORS[case]
    with pytest.raises(TfminvError, match=_re(message)):
        specs.load(spec.format(d=d), what="--victims")


def test_tfds_and_records_specs(data_dir, tmp_path):
    """tfds:NAME:SPLIT reads an already prepared dataset (built here offline, as in
    test_data_tfds); records:DIR reads what tfminv.data.build wrote."""
    from test_data_tfds import _prepare_tfds_mnist

    from tfminv.data import build, specs

    _prepare_tfds_mnist(data_dir, tmp_path / "tfds", n_train=12, n_test=7)
    got = specs.load("tfds:mnist:test", tfds_data_dir=tmp_path / "tfds")
    assert got.images.shape == (7, 28, 28, 1) and len(got.labels) == 7
    with pytest.raises(DataError, match="no split 'valid'"):
        specs.load("tfds:mnist:valid", tfds_data_dir=tmp_path / "tfds")
    path = build.ensure("mnist", data_dir=data_dir, records_dir=tmp_path / "rec", limit=20)
    got = specs.load(f"records:{path}:test")
    assert got.images.shape == (20, 32, 32, 1) and got.labels.max() <= 9


def test_binary_user_data_errors(tmp_path):
    """The binary prints the library's one-line error and exits 2, before loading TF models."""
    (tmp_path / "aux").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "tfminv.experiments.audit", "--target=keras:m.keras",
         f"--aux=folder:{tmp_path}/aux", f"--victims=npz:{tmp_path}/v.npz",
         f"--out_dir={tmp_path}/out"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: --aux=folder:" in proc.stderr and "no image files" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "tfminv.experiments.audit", "--aux_val_fraction=1.5"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--aux_val_fraction=1.5: expected a share in (0, 1)" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- callback
@pytest.mark.slow
def test_leakage_callback_logs_and_respects_the_budget(mnist28, tmp_path):
    import keras

    x, y = mnist28
    xf = x[:400, ..., None] / 255.0
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = tfminv.LeakageCallback(x[1000:1200], x[2500:2530], y[2500:2530], every=1, epochs=1,
                                width=0.0625, budget=1e-9, log_dir=tmp_path / "tb")
    hist = model.fit(xf, y[:400], epochs=3, batch_size=64, verbose=0, callbacks=[cb])
    # the first measurement always runs (to learn the cost); with a budget of ~0 every later
    # one is skipped
    assert [h["leak_skipped"] for h in cb.history] == [0.0, 1.0, 1.0]
    first = cb.history[0]
    assert np.isfinite(first["leak_mse"]) and 0 <= first["leak_attack_acc"] <= 1
    expected = float(np.mean((x[2500:2530] / 255.0 - (x[1000:1200] / 255.0).mean(0)) ** 2))
    assert first["leak_mse_mean_aux"] == pytest.approx(expected, rel=1e-4)
    assert hist.history["leak_mse"][0] == first["leak_mse"]  # in the epoch logs
    assert cb.overhead() > 0 and cb.train_seconds > 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))

    generous = tfminv.LeakageCallback(x[1000:1200], x[2500:2530], every=2, epochs=2,
                                      width=0.0625, budget=100)
    model.fit(xf, y[:400], epochs=4, batch_size=64, verbose=0, callbacks=[generous])
    assert [h["epoch"] for h in generous.history] == [2, 4]
    assert [h["leak_inverter_epochs"] for h in generous.history] == [2.0, 2.0]
    assert "leak_attack_acc" not in generous.history[0]  # no labels, no accuracy


# ----------------------------------------------------------------------------- example
@pytest.mark.slow
def test_walkthrough_example_runs(tmp_path, monkeypatch, data_dir):
    import runpy

    monkeypatch.setenv("TFMINV_EXAMPLE_TINY", "1")
    monkeypatch.setenv("TFMINV_EXAMPLE_OUT", str(tmp_path / "ex"))
    root = Path(__file__).resolve().parents[1]
    runpy.run_path(str(root / "examples" / "audit_your_model.py"), run_name="__main__")
    assert (tmp_path / "ex" / "report" / "reconstructions.png").exists()
    assert (tmp_path / "ex" / "report" / "report.html").exists()
    rows = json.loads((tmp_path / "ex" / "audit" / "results.json").read_text())
    assert [r["policy"] for r in rows] == ["identity", "label"]
    assert (tmp_path / "ex" / "model.keras").exists()


def test_class_mean_floor_never_contains_the_victim():
    from tfminv.leakage import _loo_class_means

    x = np.random.default_rng(0).random((5, 12, 12, 1)).astype(np.float32)
    labels = np.array([0, 0, 0, 1, 2])
    guess = _loo_class_means(x, labels)
    np.testing.assert_allclose(guess[0], (x[1] + x[2]) / 2, atol=1e-6)
    np.testing.assert_allclose(guess[3], (x[0] + x[1] + x[2] + x[4]) / 4, atol=1e-6)


def test_aux_augment_flip_releases_mirrors_through_each_policy(tmp_path):
    """aux_augment='flip': every auxiliary training image's mirror is queried through each
    policy (the held-out ones are not); a bad value fails before any query."""
    from tfminv.errors import ConfigError

    rng = np.random.default_rng(0)
    aux, victims = rng.random((40, 12, 12, 1)), rng.random((6, 12, 12, 1))
    labels = np.arange(6) % 3

    def target(x):  # left half decides: a mirror gets another answer
        left = np.asarray(x, np.float32)[:, :, :6].mean(axis=(1, 2, 3))
        z = np.stack([left, 1 - left, 0.5 * np.ones_like(left)], axis=1) * 4
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    with pytest.raises(ConfigError, match="aux_augment='rotate'"):
        tfminv.run_inversion(target, aux, victims, labels, aux_augment="rotate",
                             cache_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    kw = dict(policies="identity;topk:1", epochs=1, width=0.0625, batch_size=16)
    plain = tfminv.run_inversion(target, aux, victims, labels, cache_dir=tmp_path / "a", **kw)
    flip = tfminv.run_inversion(target, aux, victims, labels, cache_dir=tmp_path / "b",
                                aux_augment="flip", **kw)
    assert plain.settings["aux_augment"] == "" and flip.settings["aux_augment"] == "flip"
    n_train = plain.settings["aux_train"]  # 36 of 40 (val_fraction 0.1)
    # raw answers are queried once per image set; the mirrors add n_train raw queries
    assert flip.settings["oracle_queries"] - plain.settings["oracle_queries"] == n_train
    assert [r.policy for r in flip.rows] == ["identity", "topk:1"]
    assert all(np.isfinite(r.mse) for r in flip.rows)
