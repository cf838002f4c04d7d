"""A finished run is never redone; torn checkpoints and corrupt cached models are recovered from
(kill points simulated by raising at each commit step; files damaged in place)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tfminv.training import commit  # noqa: E402
from tfminv.models import build_inverter  # noqa: E402
from tfminv.training import TrainConfig, fit, load_run  # noqa: E402

CFG = TrainConfig(epochs=2, batch_size=16, verbose=0, precision="float32")


def _data(n=48, m=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.dirichlet(np.ones(m), size=n).astype(np.float32),
            rng.random((n, 32, 32, 1)).astype(np.float32))


def _build():
    return build_inverter(6, 32, width=0.0625, k=3)


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


class KillAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.at = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("killed")


def _fit(workdir, cfg=CFG, callbacks=()):
    p, imgs = _data()
    return fit(_build, p, imgs, config=cfg, workdir=workdir, val=(p[:16], imgs[:16]),
               callbacks=list(callbacks))


def _history_epochs(workdir):
    with open(workdir / "history.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run's outputs on a few inputs."""
    model = _fit(tmp_path_factory.mktemp("ref"))
    return model.predict(_data()[0][:4], verbose=0)


@pytest.mark.parametrize("step", ["trained", "selected", "model.keras", "run.json",
                                  "backup removed"])
def test_kill_at_each_commit_step_resumes_without_redoing_epochs(tmp_path, monkeypatch, step,
                                                                 reference):
    def killed(at):
        if at == step:
            raise KeyboardInterrupt(f"killed after {at}")

    monkeypatch.setattr(commit, "_commit_point", killed)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path)
    monkeypatch.undo()
    seen = Epochs()
    model = _fit(tmp_path, callbacks=[seen])
    assert seen.epochs == []                      # before: [0, 1] (retrained from epoch 1)
    assert _history_epochs(tmp_path) == [0, 1]    # before: 0, 1, 0, 1
    assert load_run(tmp_path)["epochs_run"] == 2  # before: 4
    assert not (tmp_path / "backup").exists()
    np.testing.assert_allclose(model.predict(_data()[0][:4], verbose=0), reference, atol=1e-6)


def test_kill_between_backup_and_history_row_gives_no_duplicate(tmp_path):
    cfg = CFG.replace(epochs=3)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, cfg, callbacks=[KillAt(1)])
    # simulate a kill after the history row of epoch 2 was written but before its backup
    with open(tmp_path / "history.csv") as f:
        rows = f.read().splitlines()
    (tmp_path / "history.csv").write_text("\n".join(rows + [rows[-1].replace("1,", "2,", 1)])
                                          + "\n")
    seen = Epochs()
    _fit(tmp_path, cfg, callbacks=[seen])
    assert seen.epochs == [2]
    assert _history_epochs(tmp_path) == [0, 1, 2]
    assert load_run(tmp_path)["epochs_run"] == 3


def _tear(path):
    b = path.read_bytes()
    path.write_bytes(b[: len(b) // 3])


def test_torn_backup_falls_back_to_previous_then_fresh(tmp_path, caplog):
    cfg = CFG.replace(epochs=3)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, cfg, callbacks=[KillAt(1)])  # backups of epochs 1 (.bkp) and 2 (latest)
    _tear(tmp_path / "backup" / "latest.weights.h5")
    seen = Epochs()
    _fit(tmp_path, cfg, callbacks=[seen])           # before: h5py traceback on every rerun
    err = caplog.text
    assert "latest checkpoint unreadable (latest.weights.h5: " in err
    assert "resuming from the previous one (epoch 1)" in err
    assert seen.epochs == [1, 2] and _history_epochs(tmp_path) == [0, 1, 2]
    assert load_run(tmp_path)["epochs_run"] == 3

    other = tmp_path / "other"
    with pytest.raises(KeyboardInterrupt):
        _fit(other, cfg, callbacks=[KillAt(1)])
    _tear(other / "backup" / "latest.weights.h5")
    _tear(other / "backup" / "latest.weights.h5.bkp")
    seen = Epochs()
    caplog.clear()
    _fit(other, cfg, callbacks=[seen])
    err = caplog.text
    assert "checkpoint unreadable (latest.weights.h5: " in err and "run afresh" in err
    assert seen.epochs == [0, 1, 2] and _history_epochs(other) == [0, 1, 2]
    assert load_run(other)["epochs_run"] == 3


def test_corrupt_cached_model_is_discarded_and_retrained(tmp_path, caplog, reference):
    _fit(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 not a keras zip")
    seen = Epochs()
    model = _fit(tmp_path, callbacks=[seen])       # before: a zipfile/Keras traceback
    assert "model.keras does not load (" in caplog.text
    assert seen.epochs == [0, 1] and _history_epochs(tmp_path) == [0, 1]
    np.testing.assert_allclose(model.predict(_data()[0][:4], verbose=0), reference, atol=1e-6)
    again = Epochs()
    _fit(tmp_path, callbacks=[again])
    assert again.epochs == []                      # the recomputed run is cached again


def test_corrupt_cached_classifier_is_retrained(tmp_path, caplog):
    from test_training_cache import tiny_classifier

    from tfminv.training import targets

    alloc, kw = tiny_classifier(tmp_path)
    imgs = kw["train_set"].images
    model, info = targets.get_or_train_classifier(alloc, **kw)
    path = tmp_path / "classifiers" / f"tiny-target-{info['key']}" / "train" / "model.keras"
    path.write_bytes(b"garbage")
    model2, info2 = targets.get_or_train_classifier(alloc, **kw)
    assert "cached classifier does not load" in caplog.text
    assert info2["key"] == info["key"]
    np.testing.assert_allclose(model2.predict(imgs[:4], verbose=0),
                               model.predict(imgs[:4], verbose=0), atol=1e-6)
    assert keras.models.load_model(path) is not None
