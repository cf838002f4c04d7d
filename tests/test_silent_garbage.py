"""The three common mistakes that used to run to the end with a normal-looking report are stopped
(or warned about) before any training: a target taking 0-255 input run at the default 0-1
scale, a judge expecting another scale, and class sub-folders covering only some classes.

Every model here is a tiny own Keras model (not a tfminv builder) with fixed weights: class c's
images are bright in quadrant c, and the model sums each quadrant against a bias that only a
0-255 input overcomes (or, for a 0-1 model, no bias)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import tfminv  # noqa: E402
from tfminv.attacks import core  # noqa: E402
from tfminv.errors import ConfigError, DataError  # noqa: E402

M, SIDE = 4, 12


def quadrant_model(bias: float, name: str):
    """Logit c = sum of quadrant c (+ bias for class 0): right at 0-255 for bias 100, at 0-1 for
    bias 0; at 0-1 with bias 100 it answers class 0 for every image (chance)."""
    model = keras.Sequential([keras.Input((SIDE, SIDE, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(M, activation="softmax")], name=name)
    w = np.zeros((SIDE * SIDE, M), np.float32)
    h = SIDE // 2
    for c in range(M):
        mask = np.zeros((SIDE, SIDE), np.float32)
        mask[(c // 2) * h:(c // 2 + 1) * h, (c % 2) * h:(c % 2 + 1) * h] = 1.0 / 36
        w[:, c] = mask.ravel()
    b = np.zeros(M, np.float32)
    b[0] = bias
    model.layers[-1].set_weights([w, b])
    return model


def images(labels, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (len(labels), SIDE, SIDE, 1)).astype(np.uint8)
    h = SIDE // 2
    for i, c in enumerate(labels):
        x[i, (c // 2) * h:(c // 2 + 1) * h, (c % 2) * h:(c % 2 + 1) * h] = 250
    return x


LABELS = np.arange(16) % M
VICTIMS, AUX = images(LABELS, 0), images(np.arange(24) % M, 1)


class Trained(Exception):
    """Raised instead of training: the checks passed."""


@pytest.fixture
def no_training(monkeypatch):
    def stop(*a, **k):
        raise Trained()

    monkeypatch.setattr(core, "run_attack", stop)


def one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def test_a_0_255_target_at_the_default_scale_is_refused(tmp_path, no_training):
    target = quadrant_model(100.0, "t255")
    with pytest.raises(ConfigError) as e:
        tfminv.run_inversion(target, AUX, VICTIMS, LABELS, k=1, cache_dir=tmp_path)
    msg = one_line(e)
    assert "input_range=0,1" in msg and "declare input_range=0,255" in msg, msg
    with pytest.raises(Trained):  # declared right: the checks pass and training starts
        tfminv.run_inversion(target, AUX, VICTIMS, LABELS, k=1, cache_dir=tmp_path,
                             input_range=(0, 255))


def test_warn_proceeds_with_a_loud_line(tmp_path, no_training, caplog):
    with caplog.at_level(logging.WARNING, logger="tfminv"), pytest.raises(Trained):
        tfminv.run_inversion(quadrant_model(100.0, "t255"), AUX, VICTIMS, LABELS, k=1,
                             cache_dir=tmp_path, scale_check="warn")
    assert any(r.levelno == logging.WARNING and r.getMessage().startswith("target:")
               and "input_range=0,255" in r.getMessage() for r in caplog.records)


def test_a_judge_of_another_scale_is_refused_and_can_be_declared(tmp_path, no_training):
    target, judge = quadrant_model(0.0, "t01"), quadrant_model(100.0, "j255")
    with pytest.raises(ConfigError) as e:
        tfminv.run_inversion(target, AUX, VICTIMS, LABELS, k=1, eval_model=judge,
                             cache_dir=tmp_path)
    msg = one_line(e)
    assert msg.startswith("eval_model") and "eval_input_range=0,255" in msg, msg
    with pytest.raises(Trained):
        tfminv.run_inversion(target, AUX, VICTIMS, LABELS, k=1, eval_model=judge,
                             eval_input_range=(0, 255), cache_dir=tmp_path)


def test_near_chance_on_both_scales_warns(tmp_path, no_training, caplog):
    """Labels in another class order: no scale helps; a loud line, never a silent 0.000."""
    shuffled = (LABELS + 1) % M
    with caplog.at_level(logging.WARNING, logger="tfminv"), pytest.raises(Trained):
        tfminv.run_inversion(quadrant_model(0.0, "t01"), AUX, VICTIMS, shuffled, k=1,
                             cache_dir=tmp_path)
    assert any(r.levelno == logging.WARNING and r.getMessage().startswith("target:")
               and "class order" in r.getMessage() for r in caplog.records)


def _folders(root, classes, labels, x):
    import cv2

    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
    for i, (c, img) in enumerate(zip(labels, x)):
        cv2.imwrite(str(root / classes[c] / f"{i:03d}.png"), img[..., 0])


def test_class_folders_covering_some_classes_are_refused(tmp_path, no_training):
    from tfminv.scenarios import AuditConfig, run_audit

    target = tmp_path / "t01.keras"
    quadrant_model(0.0, "t01").save(target)
    keep = LABELS < 3  # no victims of class 3 and no folder for it: labels would still fit
    _folders(tmp_path / "victims", ["0", "1", "2"], LABELS[keep], VICTIMS[keep])
    _folders(tmp_path / "aux", ["x"], np.zeros(len(AUX), int), AUX)
    cfg = dict(target=f"keras:{target}", aux=f"npz:{tmp_path / 'aux.npz'}",
               victims=f"folder:{tmp_path / 'victims'}", policies="topk:1", epochs=1,
               width=0.25, cache_dir=str(tmp_path / "cache"))
    np.savez(tmp_path / "aux.npz", images=AUX)
    with pytest.raises(DataError) as e:
        run_audit(AuditConfig(**cfg))
    msg = one_line(e)
    assert "3 classes (0, 1, 2)" in msg and "the target answers 4" in msg, msg
    (tmp_path / "victims" / "3").mkdir()  # an empty folder for the class without victims
    with pytest.raises(Trained):
        run_audit(AuditConfig(**cfg))


def test_numeric_class_folders_sort_numerically(tmp_path):
    from tfminv.data import specs

    names = [str(i) for i in range(12)]
    _folders(tmp_path / "v", names, np.arange(12), images(np.arange(12) % M, 2))
    got = specs.load(f"folder:{tmp_path / 'v'}")
    assert got.label_names == tuple(names)  # not 0, 1, 10, 11, 2, ...
    assert list(got.labels) == list(range(12))


# ------------------------------------------------------------- defaults, progress, help, logs
def test_the_audit_cli_and_the_python_door_share_one_default_budget():
    import dataclasses

    from tfminv.leakage import InversionConfig
    from tfminv.scenarios import AuditConfig

    audit = {f.name: f.default for f in dataclasses.fields(AuditConfig)}
    door = InversionConfig()
    assert (audit["epochs"], audit["width"]) == (door.epochs, door.width) == (20, 0.25)


def test_topk_above_the_classes_is_refused_not_clamped(tmp_path, no_training):
    with pytest.raises(ConfigError) as e:
        tfminv.run_inversion(quadrant_model(0.0, "t01"), AUX, VICTIMS, LABELS,
                             policies="identity;topk:200", cache_dir=tmp_path)
    assert "topk:200" in one_line(e) and "expected k <= 4" in str(e.value)


def test_the_door_reports_cost_and_whole_run_progress(tmp_path):
    lines = []
    res = tfminv.run_inversion(quadrant_model(0.0, "t01"), AUX, VICTIMS, LABELS,
                               policies="topk:1;label", epochs=2, batch_size=8,
                               cache_dir=tmp_path, progress=lines.append)
    assert len(res.rows) == 2
    text = "\n".join(lines)
    assert "expected cost: about" in text and "2 inverter(s) x 2 epochs" in text, text
    # top-1 and label train the same k=1 model shape but under their own names; the time left
    # is the whole run's
    for name in ("[1/2 topk:1] epoch 1/2", "[1/2 topk:1] epoch 2/2", "[2/2 label] epoch 2/2"):
        assert name in text, text
    assert text.count("left for the whole run") == 4


def test_audit_help_is_focused_and_helpfull_lists_the_rest():
    import subprocess
    import sys

    def flags_of(arg):
        res = subprocess.run([sys.executable, "-m", "tfminv.experiments.audit", arg],
                             capture_output=True, text=True, timeout=120)
        return res.stdout + res.stderr

    short, full = flags_of("--help"), flags_of("--helpfull")
    for flag in ("--target", "--victims", "--input_range", "--eval_input_range", "--epochs"):
        assert flag in short
    for flag in ("--clf_epochs", "--eval_width", "--select_on", "--strategy"):
        assert flag not in short and flag in full, flag


def test_tensorflow_log_level_is_set_unless_the_user_did(monkeypatch):
    import glob

    from tfminv import cli

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    cli.quiet_tensorflow()
    import os

    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == ("2" if glob.glob("/dev/nvidia[0-9]*") else "3")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cli.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
