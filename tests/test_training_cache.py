"""Cache keys carry the code that made the model; damaged or unwritable cache entries are
reported in one line and recomputed (or refused), never trusted and never a traceback."""

from __future__ import annotations

import errno
import json
import types
from pathlib import Path

import numpy as np
import pytest

from tfminv.errors import ConfigError, TrainingError
from tfminv.training import code_version

BUILDER = '''"""A tiny builder (docstring v{doc})."""
import keras


def build():
    # comment v{comment}
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Dense(2, use_bias={bias}, name="out")(inp))
'''


def test_normalised_source_ignores_comments_docstrings_and_layout_only():
    a = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    b = 'def f( x ):\n    """Other doc."""\n    # a comment\n    return (x + 1)\n'
    c = 'def f(x):\n    return x + 2\n'
    assert code_version.normalised_source(a) == code_version.normalised_source(b)
    assert code_version.normalised_source(a) != code_version.normalised_source(c)


def test_every_kind_covers_its_builder_layers_and_the_recipe():
    for kind in code_version.KINDS:
        mods = code_version.modules(kind)
        assert set(code_version.RECIPE) <= set(mods)
        assert "tfminv.models.fast_layers" in mods or kind == "local_api"
    assert "tfminv.models.truncation" in code_version.modules("inverter")
    assert "tfminv.training.targets" in code_version.modules("classifier")
    with pytest.raises(ConfigError, match="unknown model kind 'nope'"):
        code_version.version("nope")


@pytest.fixture
def builder(tmp_path, monkeypatch):
    """A builder module of its own (kind 'tiny') whose source the test rewrites."""
    import importlib

    name = f"tiny_builder_{tmp_path.name.replace('-', '_')}"
    path = tmp_path / f"{name}.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(code_version.KINDS, "tiny", (name,))

    def write(bias=True, doc=1, comment=1):
        path.write_text(BUILDER.format(bias=bias, doc=doc, comment=comment))
        importlib.invalidate_caches()
        mod = importlib.import_module(name)
        return importlib.reload(mod)

    return write


def _epochs_seen():
    import keras

    class Seen(keras.callbacks.Callback):
        epochs: list = []

        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    return Seen()


def test_a_code_change_retrains_and_unchanged_code_reuses(tmp_path, builder):
    pytest.importorskip("keras")
    from tfminv.training import TrainConfig, fit_cached, load_run

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4)).astype(np.float32), rng.random((32, 2)).astype(np.float32)
    cfg = TrainConfig(epochs=1, batch_size=16, verbose=0, precision="float32")

    def run(mod):
        seen = _epochs_seen()
        model = fit_cached(mod.build, x, y, config=cfg, workdir=tmp_path / "runs", name="tiny",
                           meta={"data": "x"}, code="tiny", callbacks=[seen])
        return model.run_dir, seen.epochs

    first, trained = run(builder())
    assert trained == [0]
    again, trained = run(builder())                      # the same code: reused
    assert (again, trained) == (first, [])
    comment, trained = run(builder(doc=2, comment=2))    # docstring and comment only: reused
    assert (comment, trained) == (first, [])
    changed, trained = run(builder(bias=False))
    assert changed != first and trained == [0]           # the builder changed: trained again
    # the recorded code names every module and its hash; the two runs' versions differ
    old, new = load_run(first)["code"], load_run(changed)["code"]
    assert old["kind"] == "tiny" and set(old["modules"]) >= set(code_version.RECIPE)
    assert old["version"] != new["version"] and load_run(changed)["meta"]["code"] == new["version"]
    assert "keras" in new["libraries"]


def test_classifier_key_includes_the_classifier_code(monkeypatch, tmp_path):
    from tfminv.data import allocations
    from tfminv.training.targets import classifier_key

    alloc = allocations.get("mnist")
    key = classifier_key(alloc, "target", 0.25)
    assert classifier_key(alloc, "target", 0.25) == key
    extra = tmp_path / "extra_layer_mod.py"
    extra.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(code_version.KINDS, "classifier",
                        (*code_version.KINDS["classifier"], "extra_layer_mod"))
    with_extra = classifier_key(alloc, "target", 0.25)
    assert with_extra != key
    extra.write_text("X = 2\n")  # a change to one defining module: another key
    assert classifier_key(alloc, "target", 0.25) not in (key, with_extra)


def test_a_defended_classifier_key_includes_the_defence_code(monkeypatch, tmp_path):
    """Every defence but 'none' keys by the code of kind 'defended' (transfer learning too,
    though it trains with the plain recipe): a change there is another target, never a reused
    one. An undefended target's key does not move."""
    from tfminv.data import allocations
    from tfminv.training.targets import classifier_key

    alloc = allocations.get("mnist")
    aux = {"set": "public"}
    before = {d: classifier_key(alloc, "target", 0.25, defence=d, aux_key=aux)
              for d in ("none", "ls:0.1", "tl:1")}
    extra = tmp_path / "extra_defence_mod.py"
    extra.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(code_version.KINDS, "defended",
                        (*code_version.KINDS["defended"], "extra_defence_mod"))
    after = {d: classifier_key(alloc, "target", 0.25, defence=d, aux_key=aux) for d in before}
    assert after["none"] == before["none"]
    assert after["ls:0.1"] != before["ls:0.1"] and after["tl:1"] != before["tl:1"]


def tiny_classifier(tmp_path, **extra):
    """(allocation, keywords of get_or_train_classifier) of a 3-class, 30-image classifier."""
    from tfminv.data import ImageSet
    from tfminv.training import TrainConfig

    rng = np.random.default_rng(0)
    imgs = rng.random((30, 32, 32, 1)).astype(np.float32)
    data = ImageSet(images=imgs, labels=np.arange(30) % 3, label_names=("a", "b", "c"),
                    name="tiny")
    alloc = types.SimpleNamespace(name="tiny", image_size=32, num_classes=3,
                                  target_train="train[:30]", target_test="train[:30]")
    cfg = TrainConfig(epochs=1, batch_size=16, verbose=0, precision="float32")
    return alloc, dict(width=0.0625, config=cfg, cache_dir=tmp_path, train_set=data,
                       test_set=data, **extra)


@pytest.mark.parametrize("damage", [
    lambda info: json.dumps({k: v for k, v in info.items() if k != "identity"}),
    lambda info: "\x00\xff garbage",
    lambda info: json.dumps([1, 2]),
    lambda info: json.dumps({**info, "key": "0123abcd"}),
])
def test_damaged_info_json_is_reported_and_recomputed_without_retraining(tmp_path, caplog,
                                                                         damage):
    pytest.importorskip("keras")
    from tfminv.training import load_run, targets

    alloc, kw = tiny_classifier(tmp_path)
    model, info = targets.get_or_train_classifier(alloc, **kw)
    folder = tmp_path / "classifiers" / f"tiny-target-{info['key']}"
    before = load_run(folder / "train")
    assert info["code"]["version"] == before["code"]["version"]
    (folder / "info.json").write_text(damage(info))
    _, again = targets.get_or_train_classifier(alloc, **kw)   # before: KeyError 'identity'
    assert "info.json" in caplog.text and "recomputing it" in caplog.text
    assert again["identity"] == info["identity"] and again["test_accuracy"] == info["test_accuracy"]
    assert load_run(folder / "train") == before               # the training was reused
    assert json.loads((folder / "info.json").read_text())["identity"] == info["identity"]


def test_damaged_history_csv_restarts_the_run_once(tmp_path, caplog):
    pytest.importorskip("keras")
    import keras

    from tfminv.models import build_inverter
    from tfminv.training import TrainConfig, fit, load_run

    class KillAt1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("killed")

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=32).astype(np.float32)
    imgs = rng.random((32, 32, 32, 1)).astype(np.float32)
    cfg = TrainConfig(epochs=3, batch_size=16, verbose=0, precision="float32")

    def run(callbacks=()):
        return fit(lambda: build_inverter(6, 32, width=0.0625, k=3), p, imgs, config=cfg,
                   workdir=tmp_path, val=(p[:16], imgs[:16]), callbacks=list(callbacks))

    with pytest.raises(KeyboardInterrupt):
        run([KillAt1()])
    (tmp_path / "history.csv").write_bytes(np.random.default_rng(1).bytes(300))
    run()                                  # before: UnicodeDecodeError, and on every rerun
    assert "history.csv: damaged" in caplog.text and "starting the run afresh" in caplog.text
    assert load_run(tmp_path)["epochs_run"] == 3
    # a finished run whose history is damaged is still reused (run.json is the record)
    (tmp_path / "history.csv").write_bytes(b"\xff\xfe\x00junk")
    caplog.clear()
    run()
    assert "damaged" not in caplog.text


def _tiny_inverter():
    """(build, predictions, images, config) of a one-epoch inverter run."""
    from tfminv.models import build_inverter
    from tfminv.training import TrainConfig

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=16).astype(np.float32)
    imgs = rng.random((16, 32, 32, 1)).astype(np.float32)
    cfg = TrainConfig(epochs=1, batch_size=16, verbose=0, precision="float32")
    return (lambda: build_inverter(6, 32, width=0.0625, k=3)), p, imgs, cfg


def test_run_json_that_is_not_a_run_record_is_retrained(tmp_path, caplog):
    pytest.importorskip("keras")
    from tfminv.training import fit, load_run

    build, p, imgs, cfg = _tiny_inverter()
    fit(build, p, imgs, config=cfg, workdir=tmp_path)
    (tmp_path / "run.json").write_text("{}")       # before: 'holds a run with different settings'
    fit(build, p, imgs, config=cfg, workdir=tmp_path)
    assert "run.json is not a run record" in caplog.text
    assert load_run(tmp_path)["epochs_run"] == 1
    (tmp_path / "run.json").unlink()
    with pytest.raises(TrainingError, match=r"run.json does not exist") as e:
        load_run(tmp_path)
    assert "\n" not in str(e.value)


def test_unwritable_or_full_cache_folder_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    from tfminv.training import commit, fit, targets

    build, p, imgs, cfg = _tiny_inverter()
    a_file = tmp_path / "cache"
    a_file.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"cannot write the run folder .*cache/run.*"
                       r"--cache_dir") as e:                 # before: NotADirectoryError
        fit(build, p, imgs, config=cfg, workdir=a_file / "run")
    assert "\n" not in str(e.value)
    alloc, kw = tiny_classifier(a_file)
    with pytest.raises(ConfigError, match="cannot write the run folder"):
        targets.get_or_train_classifier(alloc, **kw)

    def full(step):
        if step == "selected":
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "ok" / "x"))

    monkeypatch.setattr(commit, "_commit_point", full)
    with pytest.raises(ConfigError, match=r"No space left on device.*free some space") as e:
        fit(build, p, imgs, config=cfg, workdir=tmp_path / "ok")
    assert "\n" not in str(e.value)


def test_a_folder_too_full_for_the_run_stops_before_h5py_writes(tmp_path, monkeypatch):
    """Before: on a really full disk HDF5 printed a traceback per open object (its multi-line
    report also made the error line several lines) and the interpreter crashed on exit (SIGSEGV,
    exit 139). Now the backup checks the free space first: one line, no weights file written."""
    pytest.importorskip("keras")
    import collections
    import shutil

    from tfminv.training import checkpoints, fit

    build, p, imgs, cfg = _tiny_inverter()
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, (1 << 30) - 5000, 5000))
    with pytest.raises(ConfigError) as e:
        fit(build, p, imgs, config=cfg, workdir=tmp_path / "run")
    text = str(e.value)
    assert "\n" not in text and "No space left on device: 0.0 MiB free" in text
    assert "free some space" in text and str(tmp_path / "run" / "backup") in text
    assert not list((tmp_path / "run").rglob("*.h5"))
    need = checkpoints.SPACE_PER_WEIGHT_BYTE * checkpoints.weight_bytes(build()) + \
        checkpoints.SPACE_MARGIN
    assert need > 5000


def test_hdf5s_multi_line_error_is_reported_in_the_os_words():
    from tfminv.training.fit import unwritable

    e = OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: time = Wed\n"
                ", filename = 'x.h5', file descriptor = 7, errno = 28, error message = 'No space")
    text = str(unwritable(Path("/c/run"), e))
    assert text == ("/c/run: cannot write the run folder /c/run (No space left on device); free "
                    "some space or choose another --cache_dir")
