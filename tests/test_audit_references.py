"""The audit's reference rows (zeros, mean image, majority class, class-mean floor only with the
target's training images) scored like a policy, the judge's-calls details (majority-class rate,
per-class attack accuracy) in results.json, and findings that carry their uncertainty (paired
bootstrap intervals, "not distinguishable" where an interval contains 0).

The target is a tiny Keras model written here (not a tfminv builder) on synthetic 16x16 images
of four classes, each class a bright block in its own corner; the victims are imbalanced (half
of them class 0) so that the majority class differs from chance."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfminv
from tfminv.attacks import core
from tfminv.reporting import inversion
from tfminv.results import InversionResults, InversionRow


def _images(labels, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((len(labels), 16, 16, 1)).astype(np.float32) * 0.3
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 2)
        x[i, r * 8:(r + 1) * 8, q * 8:(q + 1) * 8] += 0.6
    return np.clip(x, 0, 1)


@pytest.fixture(scope="module")
def own():
    import keras

    keras.utils.set_random_seed(0)
    y = np.arange(400) % 4
    x = _images(y, 0)
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    victim_labels = np.array([0] * 20 + [1, 2, 3] * 7)[:40]
    return {"model": model, "train": (x, y), "aux": _images(np.arange(200) % 4, 1),
            "victims": _images(victim_labels, 2), "labels": victim_labels}


def _audit(own, tmp_path, **kw):
    return tfminv.run_audit(own["model"], own["aux"], own["victims"], own["labels"],
                            policies="identity;label", epochs=2, width=0.125, batch_size=32,
                            cache_dir=tmp_path / "cache", **kw)


def test_reference_rows_details_and_report(own, tmp_path):
    res = _audit(own, tmp_path)
    refs = {r["reference"]: r for r in res.references}
    # no training images: no class-mean floor row (leave-one-out victim means are no floor)
    assert set(refs) == {"zeros", "mean image", "majority class"}
    for name in ("zeros", "mean image"):
        r = refs[name]
        assert r["mse"] > 0 and -1 <= r["ssim"] <= 1 and 0 <= r["attack_acc"] <= 1
    assert refs["mean image"]["mse"] == pytest.approx(res.baselines["mse_mean_aux"], rel=1e-5)
    assert refs["majority class"]["attack_acc"] == pytest.approx(0.5)  # 20 of 40 are class 0
    d = res.details["label"]
    assert set(d["per_class_attack_acc"]) == {0, 1, 2, 3}
    hits = res.per_victim["label"]["hit"]
    assert np.mean(hits) == pytest.approx(res.row("label").attack_acc)
    assert d["majority_rate"] == pytest.approx(
        np.mean(core.ScoresJudge(own["model"].predict).calls(res.reconstructions["label"])
                == d["majority_class"]), abs=1e-9)

    files = res.write_report(tmp_path / "out")
    rows = json.loads(files["results.json"].read_text())
    assert all("per_class_attack_acc" in r and "majority_rate" in r for r in rows)
    run = json.loads(files["run.json"].read_text())
    assert {r["reference"] for r in run["references"]} == set(refs)
    html = files["report.html"].read_text()
    assert "majority-class rate" in html and "References scored like a policy" in html
    assert "95% CI" in html and "within sampling noise" not in html


def test_class_mean_floor_only_with_training_images(own, tmp_path):
    x, y = own["train"]
    res = _audit(own, tmp_path, train_images=x, train_labels=y)
    refs = {r["reference"]: r for r in res.references}
    assert refs["class-mean floor"]["mse"] == pytest.approx(res.baselines["mse_class_mean"])
    assert refs["class-mean floor"]["attack_acc"] is not None


def test_audit_config_takes_target_train(own, tmp_path):
    from tfminv.scenarios.audit import AuditConfig, run_audit

    x, y = own["train"]
    np.savez(tmp_path / "train.npz", images=(x * 255).astype(np.uint8), labels=y)
    np.savez(tmp_path / "aux.npz", images=(own["aux"] * 255).astype(np.uint8))
    np.savez(tmp_path / "victims.npz", images=(own["victims"] * 255).astype(np.uint8),
             labels=own["labels"])
    own["model"].save(tmp_path / "m.keras")
    cfg = AuditConfig(target=f"keras:{tmp_path / 'm.keras'}", aux=f"npz:{tmp_path / 'aux.npz'}",
                      victims=f"npz:{tmp_path / 'victims.npz'}", policies="label", epochs=1,
                      width=0.125, batch_size=32, cache_dir=str(tmp_path / "cache"),
                      target_train=f"npz:{tmp_path / 'train.npz'}")
    res = run_audit(cfg).inversion
    assert "class-mean floor" in {r["reference"] for r in res.references}
    assert res.baselines["class_mean_from"] == core.CLASS_MEAN_FROM_TRAIN


def _hand_results(hits_b, n=200):
    """Two policies on n victims with given per-victim hits; everything else fixed."""
    rng = np.random.default_rng(0)
    hits_a = rng.random(n) < 0.3
    mse_a = rng.random(n) * 0.01 + 0.03
    util = np.ones(n)
    rows = [InversionRow(policy=p, k=4, released_entries=1.0, mse=float(m.mean()), psnr=15.0,
                         ssim=0.3, beats_mean_aux=True, attack_acc=float(h.mean()),
                         attack_acc_top5=None, utility=float(u.mean()), agreement=1.0,
                         aux_val_mse=0.03, seconds=1.0)
            for p, h, m, u in (("identity", hits_a, mse_a, util),
                               ("label", hits_b(hits_a), mse_a + 0.002, util - 0.02))]
    per = {"identity": {"hit": hits_a, "mse": mse_a, "utility": util},
           "label": {"hit": hits_b(hits_a), "mse": mse_a + 0.002, "utility": util - 0.02},
           "mean image": {"mse": mse_a + 0.001}}
    victims = np.zeros((n, 16, 16, 1), np.float32)
    return InversionResults(rows=rows, reconstructions={}, baselines={"mse_mean_aux": 0.035},
                            settings={"victims": n}, victim_images=victims,
                            victim_labels=np.zeros(n, np.int64), per_victim=per)


def test_findings_carry_intervals_and_say_not_distinguishable():
    # one victim of 200 flips: a -0.005 accuracy change is not distinguishable
    def flip_one(h):
        h = h.copy()
        h[np.flatnonzero(h)[0]] = False
        return h

    text = "\n".join(inversion._findings(_hand_results(flip_one)))
    line = next(f for f in text.splitlines() if f.startswith("`label` vs `identity`"))
    assert "attack accuracy -0.005 (95% CI" in line and "not distinguishable" in line
    assert "lowers attack accuracy" not in line
    assert "MSE rises" in line and "utility cost" in line  # constant shifts: distinguishable
    assert "within sampling noise" not in text

    # every hit lost: a clear drop, no "not distinguishable" on accuracy
    text = "\n".join(inversion._findings(_hand_results(lambda h: np.zeros_like(h))))
    line = next(f for f in text.splitlines() if f.startswith("`label` vs `identity`"))
    assert "lowers attack accuracy" in line
    assert line.split("; ")[0].count("not distinguishable") == 0


def test_paired_interval_and_mse_lines():
    d, lo, hi = core.paired_interval(np.ones(50), np.zeros(50))
    assert d == lo == hi == 1.0
    d, lo, hi = core.paired_interval(np.r_[np.ones(5), np.zeros(45)], seed=1)
    assert lo < d < hi and lo >= 0
    assert core.paired_interval(np.arange(9.0), seed=3) == core.paired_interval(np.arange(9.0),
                                                                                seed=3)
    # a class-mean guess worse than the mean image is not drawn as a floor
    res = InversionResults(rows=[], reconstructions={}, baselines={"mse_mean_aux": 0.0368},
                           settings={}, victim_images=np.zeros((1, 2, 2, 1)),
                           references=[{"reference": "class-mean floor", "mse": 0.0395,
                                        "ssim": 0.4, "attack_acc": 0.1}])
    labels = dict((t, v) for v, t in inversion._mse_lines(res.references, res.baselines))
    assert "class-mean floor" not in labels
    assert labels["class-mean guess (worse than mean image)"] == 0.0395
