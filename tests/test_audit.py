"""Leakage audit: per-policy numbers, the written report, and the command-line binary."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tfminv import audit
from tfminv.errors import ConfigError, DataError
from tfminv.reporting.html_report import external_references
from tfminv.oracles.base import CallableOracle

POLICIES = "identity;label;gaussian:3"


def test_tie_aware_accuracy_and_grid_indices():
    released = np.array([[0.5, 0.5, 0.0], [0.2, 0.7, 0.1], [0.0, 0.0, 0.0], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 2, 0])
    # row 0: tie of 2 incl. label -> 1/2; row 1: hit; row 2: all 3 tied -> 1/3; row 3: miss
    assert audit.tie_aware_accuracy(released, labels) == pytest.approx((0.5 + 1 + 1 / 3) / 4)
    idx = audit.grid_indices(np.array([2, 0, 2, 1, 0, 1]), 4)
    np.testing.assert_array_equal(idx, [1, 3, 0, 2])


@pytest.fixture(scope="module")
def facescrub_small(data_dir):
    """Real FaceScrub slices: target training images, 160 auxiliary images, 24 victims."""
    from tfminv.data import allocations

    alloc = allocations.get("facescrub")
    train = allocations.materialize(alloc.target_train, data_dir=data_dir)
    aux = allocations.materialize(alloc.aux["same"], data_dir=data_dir)
    victims = allocations.materialize(alloc.victims, data_dir=data_dir)
    return alloc, train, aux.subset(np.arange(160)), victims.subset(np.arange(24))


@pytest.fixture(scope="module")
def nearest_mean(facescrub_small):
    """A real (if simple) 12-class target: nearest class mean of the training images, as an
    Oracle (softmax of -distance^2 / tau) and as a Keras evaluation model with the same argmax."""
    import keras

    _, train, _, _ = facescrub_small
    x = train.images.reshape(len(train), -1)
    means = np.stack([x[train.labels == c].mean(0) for c in range(12)])
    tau = 20.0

    def logits(images):
        flat = images.reshape(len(images), -1)
        return -((flat[:, None, :] - means[None]) ** 2).sum(-1) / tau

    def probs(images):
        z = logits(images)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    oracle = CallableOracle(probs, batch_size=64, name="nearest-mean")
    oracle.identity = lambda: "test:nearest-mean-v1"
    eval_model = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(12)])
    eval_model.layers[-1].set_weights([(2 * means.T / tau).astype(np.float32),
                                       (-(means ** 2).sum(1) / tau).astype(np.float32)])
    return oracle, eval_model, logits


@pytest.mark.slow
def test_run_audit_and_report(facescrub_small, nearest_mean, tmp_path):
    from tfminv.training import TrainConfig

    _, train, aux, victims = facescrub_small
    oracle, eval_model, logits = nearest_mean
    # the Keras evaluation model and the oracle agree on the victims
    np.testing.assert_array_equal(
        np.argmax(eval_model.predict(victims.images, verbose=0), 1), np.argmax(logits(victims.images), 1))
    config = TrainConfig(epochs=1, batch_size=32, verbose=0)
    result = audit.audit_sets(oracle, aux, victims, POLICIES, config=config, width=0.0625,
                             eval_model=eval_model, train_set=train, cache_dir=tmp_path / "cache",
                             val_fraction=0.1, seed=0)
    rows = {r["policy"]: r for r in result.row_dicts()}
    assert list(rows) == ["identity", "label", "gaussian:3"]
    assert [rows[p]["k"] for p in rows] == [12, 1, 12]
    ident = rows["identity"]
    assert ident["utility"] == pytest.approx(result.baselines["target_accuracy_on_victims"])
    assert ident["utility"] > 2 / 12, "the nearest-mean target should beat chance on real faces"
    # label-only release keeps the argmax, so it keeps the utility exactly
    assert rows["label"]["utility"] == ident["utility"]
    assert rows["label"]["released_entries"] == 1.0 and ident["released_entries"] == 12.0
    # heavy noise destroys the label for a share of victims
    assert rows["gaussian:3"]["utility"] < ident["utility"]
    assert rows["gaussian:3"]["agreement"] < 1.0 == ident["agreement"]
    for r in result.row_dicts():
        assert 0 < r["mse"] < 0.2 and -1 <= r["ssim"] <= 1 and 0 <= r["attack_acc"] <= 1
        assert r["attack_acc"] <= r["attack_acc_top5"]
    refs = result.baselines
    assert refs["chance_accuracy"] == pytest.approx(1 / 12)
    assert 0 < refs["mse_class_mean"] < refs["mse_zeros"]
    assert refs["class_mean_from"] == "target training images"
    assert refs["judge_accuracy_on_real_victims"] == pytest.approx(ident["utility"], abs=1e-6)
    assert result.settings["judge"]["judge"] == "eval_model"
    assert result.reconstructions["label"].shape == victims.images.shape

    # predictions were cached: a second run does not query the target for them again and reuses
    # the inverters ...
    before = oracle.num_queries
    again = audit.audit_sets(oracle, aux, victims, "label", config=config, width=0.0625,
                            eval_model=None, cache_dir=tmp_path / "cache", seed=0)
    # ... except that, with no evaluation model, the target now judges the reconstructions (and
    # the probe batch is sent once more, uncached, to check that the target is deterministic),
    # and judges the two image references (the zeros image and the mean image, one query each)
    from tfminv.leakage import PROBE

    assert oracle.num_queries == before + len(victims) + PROBE + 2
    assert again.rows[0].mse == pytest.approx(rows["label"]["mse"], abs=1e-6)
    # no evaluation model: the target judges, and the results say so
    assert again.settings["judge"]["judge"] == "target" and "biased upward" in \
        again.settings["judge"]["note"]
    assert 0 <= again.rows[0].attack_acc <= 1

    out = tmp_path / "report"
    files = audit.write_report(result, out, title="Test audit", command="pytest")
    for name, path in files.items():
        assert path.exists() and path.stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert [r["policy"] for r in saved] == list(rows)
    html_text = (out / "report.html").read_text()
    assert external_references(html_text) == []
    assert len(re.findall(r'<img src="data:image/png;base64,', html_text)) == 2
    for spec in rows:
        assert f"<td>{spec}</td>" in html_text
    md = (out / "report.md").read_text()
    assert "(leakage_utility.png)" in md and "(reconstructions.png)" in md
    assert "| gaussian:3 |" in (out / "results.md").read_text()
    import cv2

    grid = cv2.imread(str(out / "reconstructions.png"), cv2.IMREAD_GRAYSCALE)
    assert grid.shape[0] == 4 * (128 + 2) + 2  # ground truth + 3 policies at scale 2


def test_run_audit_rejects_mismatched_inputs(facescrub_small, nearest_mean, tmp_path):
    from tfminv.training import TrainConfig

    _, _, aux, victims = facescrub_small
    oracle, _, _ = nearest_mean
    config = TrainConfig(epochs=1, verbose=0)
    with pytest.raises(ConfigError, match="unknown policy 'topq'"):
        audit.audit_sets(oracle, aux, victims, "identity;topq:3", config=config,
                        cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="val_fraction"):
        audit.audit_sets(oracle, aux, victims, "label", config=config, cache_dir=tmp_path,
                        val_fraction=1.5)
    bad = victims.subset(np.arange(4))
    bad.labels = np.array([0, 1, 2, 40])
    with pytest.raises(DataError, match="answers 12 classes"):
        audit.audit_sets(oracle, aux, bad, "label", config=config, cache_dir=tmp_path)


def _binary(*args, timeout=600):
    """Run the audit binary in a subprocess (its flags would clash with other binaries')."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tfminv.experiments.audit", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_binary_runs_on_the_bundled_allocation(data_dir, tmp_path):
    """The one-command path: bundled target and evaluation classifier trained and cached."""
    out = tmp_path / "audit_out"
    proc = _binary("--width=0.0625", "--epochs=1", "--clf_epochs=1", "--aux=same",
                   "--max_aux=48", "--max_victims=12", "--policies=topk:2|round:1",
                   f"--out_dir={out}", "--batch_size=32", "--verbose=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())
    assert [r["policy"] for r in rows] == ["topk:2|round:1"]
    assert rows[0]["k"] == 2 and rows[0]["released_entries"] <= 2
    run = json.loads((out / "run.json").read_text())
    assert run["victims"] == 12 and run["aux_train"] + run["aux_val"] == 48
    assert run["target"].startswith("bundled facescrub classifier")
    assert "'--policies=topk:2|round:1'" in run["command"] and "--max_aux=48" in run["command"]
    assert external_references((out / "report.html").read_text()) == []


@pytest.mark.parametrize("args, message", [
    (["--policies=identity;topk:"], "item 2 of 2: policy spec 'topk:': policy 'topk': missing"),
    (["--aux=imagenet"], "--aux='imagenet'"),
    (["--target=nosuch:thing"], "--target='nosuch:thing'"),
    (["--select_on=target_train"], "--select_on"),
])
def test_binary_exits_with_the_message_only(args, message, data_dir):
    proc = _binary(*args, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_aux_names_and_target_specs(tmp_path):
    from tfminv.data import allocations
    target_spec = audit.target_spec

    alloc = allocations.get("facescrub")
    assert audit.aux_name(alloc, "celeba") == "generic"
    assert audit.aux_name(alloc, "same") == "same"
    with pytest.raises(ConfigError, match="expected one of"):
        audit.aux_name(alloc, "mnist")
    (tmp_path / "sm").mkdir()
    assert target_spec(str(tmp_path / "sm")) == f"savedmodel:{tmp_path / 'sm'}"
    assert target_spec("rest:http://h:1/v1/models/m") == "rest:http://h:1/v1/models/m"
    assert target_spec("") == ""
    with pytest.raises(ConfigError, match="missing.keras"):
        target_spec(str(tmp_path / "missing.keras"))
