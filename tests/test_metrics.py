"""Metrics, baselines, figures and the results table on small hand-checkable inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfminv import metrics
from tfminv.reporting import results as report
from tfminv.errors import DataError


def test_mse_psnr_ssim_known_values():
    truth = np.full((2, 16, 16, 1), 0.5, np.float32)
    recon = truth + 0.1
    assert metrics.mse(recon, truth) == pytest.approx(0.01, rel=1e-4)
    assert metrics.psnr(recon, truth) == pytest.approx(20.0, abs=1e-3)  # 10*log10(1/0.01)
    rng = np.random.default_rng(0)
    img = rng.random((3, 32, 32, 1)).astype(np.float32)
    assert metrics.ssim(img, img) == pytest.approx(1.0, abs=1e-5)
    assert metrics.ssim(rng.random(img.shape).astype(np.float32), img) < 0.2
    with pytest.raises(DataError, match="same shape"):
        metrics.mse(img[:2], img)


def test_psnr_and_ssim_in_blocks_average_every_image(monkeypatch):
    import tensorflow as tf

    rng = np.random.default_rng(2)
    truth = rng.random((7, 16, 16, 1)).astype(np.float32)
    recon = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1).astype(np.float32)
    recon[0] = truth[0] * 0.5  # one image far off, so an unweighted last block would show
    whole_ssim = float(tf.reduce_mean(tf.image.ssim(recon, truth, max_val=1.0)))
    whole_psnr = float(tf.reduce_mean(tf.image.psnr(recon, truth, max_val=1.0)))
    monkeypatch.setattr(metrics, "IMAGE_BLOCK", 3)  # blocks of 3, 3 and 1 images
    assert metrics.ssim(recon, truth) == pytest.approx(whole_ssim, rel=1e-6)
    assert metrics.psnr(recon, truth) == pytest.approx(whole_psnr, rel=1e-6)


def test_a_judge_panel_reports_both_judges_under_their_names():
    first = lambda x, y: {"attack_acc": 0.5, "nn_acc": 0.25}  # noqa: E731
    second = lambda x, y: {"attack_acc": 0.125, "nn_acc": float(len(x))}  # noqa: E731
    panel = metrics.JudgePanel(first, second, suffix="_j2")
    assert panel(np.zeros((3, 2, 2, 1)), [0, 1, 2]) == {
        "attack_acc": 0.5, "nn_acc": 0.25, "attack_acc_j2": 0.125, "nn_acc_j2": 3.0}
    with pytest.raises(ValueError, match="suffix"):
        metrics.JudgePanel(first, second, suffix="")


def test_baselines():
    rng = np.random.default_rng(1)
    victims = rng.random((10, 8, 8, 1)).astype(np.float32)
    aux = rng.random((50, 8, 8, 1)).astype(np.float32)
    labels = np.arange(10) % 2
    train = np.concatenate([victims, victims])
    tl = np.concatenate([labels, labels])
    b = metrics.baselines(victims, aux, train_images=train, train_labels=tl,
                          victim_labels=labels)
    assert b["zeros"] == pytest.approx(float((victims ** 2).mean()), rel=1e-5)
    want = float(((aux.mean(0) - victims) ** 2).mean())
    assert b["mean_aux"] == pytest.approx(want, rel=1e-5)
    cm = np.stack([victims[labels == c].mean(0) for c in labels])
    assert b["class_mean"] == pytest.approx(float(((cm - victims) ** 2).mean()), rel=1e-5)
    with pytest.raises(DataError, match="no training images"):
        metrics.baselines(victims, aux, train_images=train[:2], train_labels=np.zeros(2),
                          victim_labels=labels)


class _FixedModel:
    """Evaluation classifier stub: logits stored per image index (first pixel encodes it)."""

    def __init__(self, logits):
        self.logits = logits

    def predict(self, x, batch_size=None, verbose=0):
        return self.logits[np.asarray(x[:, 0, 0, 0]).astype(int)]


def test_attack_accuracy_top1_top5():
    logits = np.array([[9, 1, 0, 0, 0, 0, 0],    # class 0 first
                       [0, 1, 2, 3, 4, 5, 6],    # true 2: rank 5 -> top5 yes, top1 no
                       [6, 5, 4, 3, 2, 1, 0],    # true 6: last -> no
                       [0, 9, 0, 0, 0, 0, 0]], np.float32)
    x = np.zeros((4, 4, 4, 1), np.float32)
    x[:, 0, 0, 0] = np.arange(4)
    acc = metrics.attack_accuracy(_FixedModel(logits), x, np.array([0, 2, 6, 1]))
    assert acc == {"top1": 0.5, "top5": 0.75}


def test_report_and_figure(tmp_path):
    from tfminv.reporting.figures import image_grid

    rows = [{"dataset": "mnist", "k": 1, "method": "truncation", "mse": 0.01234567},
            {"dataset": "mnist", "k": 1, "method": "previous", "mse": 82.1, "note": "x"}]
    j, md = report.write_results(rows, tmp_path, title="T", extra={"command": "run"})
    assert json.loads(j.read_text()) == rows == report.read_rows(j)
    text = md.read_text()
    assert "| dataset | k | method | mse | note |" in text
    assert "| mnist | 1 | truncation | 0.0123 |  |" in text and "| previous | 82.10 | x |" in text
    assert json.loads((tmp_path / "run.json").read_text()) == {"command": "run"}
    # a long run.json value (a target's whole record) is named in results.md, kept in run.json
    long = {"none": {"path": "x" * 500}, "ls:0.1": {"path": "y"}}
    report.write_results(rows, tmp_path, extra={"command": "run", "targets": long})
    text = (tmp_path / "results.md").read_text()
    assert "- command: `\"run\"`" in text and "x" * 50 not in text
    assert "- targets: 2 entries (none, ls:0.1): see run.json" in text
    assert json.loads((tmp_path / "run.json").read_text())["targets"] == long
    imgs = np.linspace(0, 1, 3 * 8 * 8).reshape(3, 8, 8, 1)
    grid = image_grid([("truth", imgs), ("k=1", imgs[:2])], tmp_path / "g.png", scale=2,
                      label_width=60)  # wider than "truth" needs: exactly 60
    import cv2

    back = cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(back, grid)
    assert grid.shape == (2 + 2 * 18, 60 + 2 + 3 * 18)
    x0 = 60 + 2
    assert back[2, x0] == 0 and back[2 + 15, x0 + 15] == round(255 * imgs[0, 7, 7, 0])
    with pytest.raises(DataError, match="different image sizes"):
        image_grid([("a", imgs), ("b", np.zeros((1, 4, 4)))], tmp_path / "bad.png")


def test_identity_check_known_values():
    # reference features: identity 0 around (0, 0), identity 1 around (10, 0), identity 2 at (0, 10)
    ref = np.array([[0, 0], [1, 0], [10, 0], [11, 0], [0, 10]], np.float32)
    ref_labels = np.array([0, 0, 1, 1, 2])
    q = np.array([[0.5, 0], [9, 0], [0, 9], [10, 0]], np.float32)
    out = metrics.identity_check(q, np.array([0, 1, 2, 0]), ref, ref_labels)
    # last query sits on identity 1 but claims identity 0: nearest wrong, within top-5 (3 ids)
    assert out["nn_acc"] == 0.75 and out["nn_acc_top5"] == 1.0
    assert out["knn_dist"] == pytest.approx((0.5 + 1 + 1 + 9) / 4)
    with pytest.raises(DataError, match=r"identities \[7\] have no reference images"):
        metrics.identity_check(q, np.array([0, 1, 2, 7]), ref, ref_labels)
    with pytest.raises(DataError, match="expected"):
        metrics.identity_check(q[:, :1], np.zeros(4), ref, ref_labels)


def test_identity_check_in_blocks_equals_one_block(monkeypatch):
    """Blocks of queries and references (any size, ragged ends) give the one-block answer."""
    g = np.random.default_rng(0)
    ref_labels, labels = g.integers(0, 9, 50), g.integers(0, 9, 23)
    centres = g.normal(size=(9, 6))
    ref = (centres[ref_labels] + g.normal(size=(50, 6))).astype(np.float32)
    q = (centres[labels] + g.normal(size=(23, 6))).astype(np.float32)
    monkeypatch.setattr(metrics, "ID_BLOCK", 10 ** 6)
    whole = metrics.identity_check(q, labels, ref, ref_labels)
    assert 0.2 < whole["nn_acc"] < 1.0  # neither trivial nor hopeless
    for block in (1, 7, 23):
        monkeypatch.setattr(metrics, "ID_BLOCK", block)
        got = metrics.identity_check(q, labels, ref, ref_labels)
        assert got["nn_acc"] == whole["nn_acc"] and got["nn_acc_top5"] == whole["nn_acc_top5"]
        assert abs(got["knn_dist"] - whole["knn_dist"]) < 1e-9


def test_identity_judge_on_a_real_classifier():
    """The judge's features are the input of the classifier's last Dense layer, and a real
    image of a training identity is nearer its own identity than a flat grey image is."""
    import keras

    from tfminv.models import build_classifier

    keras.utils.set_random_seed(0)
    model = build_classifier(3, 32, width=0.0625)
    rng = np.random.default_rng(0)
    train = rng.random((30, 32, 32, 1)).astype(np.float32)
    labels = np.repeat(np.arange(3), 10)
    judge = metrics.IdentityJudge(model, train, labels)
    fc1 = keras.Model(model.inputs, model.get_layer("fc1").output)
    np.testing.assert_allclose(judge.ref_feats, fc1.predict(train, verbose=0), rtol=1e-4,
                               atol=1e-4)
    own = judge(train[:6], labels[:6])  # the training images themselves: distance 0, nn exact
    assert own["knn_dist"] == pytest.approx(0.0, abs=1e-2) and own["nn_acc"] == 1.0
    grey = judge(np.full((6, 32, 32, 1), 0.5, np.float32), labels[:6])
    assert grey["knn_dist"] > own["knn_dist"]


def test_best_matches_cosine_and_same_label_restriction():
    q = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    r = np.array([[3.0, 0.1], [0.0, 1.0], [1.0, 1.0]], np.float32)
    sim, arg = metrics.best_matches(q, r)
    assert arg.tolist() == [0, 1]
    assert sim[0] == pytest.approx(3.0 / np.hypot(3.0, 0.1), abs=1e-6)
    assert sim[1] == pytest.approx(1.0, abs=1e-6)
    # only references of the query's own label: query 0 (label 1) may match rows 1 and 2 only
    sim, arg = metrics.best_matches(q, r, query_labels=[1, 7], ref_labels=[0, 1, 1])
    assert arg.tolist() == [2, -1]
    assert sim[0] == pytest.approx(1 / np.sqrt(2), abs=1e-6) and sim[1] == -np.inf


def test_pool_overlap_flags_a_source_that_holds_the_victims_people():
    """Victims are 20 people (a direction each, plus noise); a disjoint source has 40 other
    people; a second source hides 30 photos of the victims' people among 970 others. The
    calibrated threshold flags about `rate` of another disjoint set, and far more of the hiding
    set, about as many as its hidden photos times the measured power."""
    rng = np.random.default_rng(0)
    d = 64
    people = rng.normal(size=(20, d))
    others = rng.normal(size=(4000, d))

    def photos(centres, n):
        idx = rng.integers(0, len(centres), n)
        return centres[idx] + 0.6 * rng.normal(size=(n, d)), idx

    victims, v_labels = photos(people, 100)
    known, k_labels = photos(people, 200)
    calib, _ = photos(others[:2000], 2000)
    disjoint, _ = photos(others[2000:3000], 1000)
    hidden, _ = photos(people, 30)
    mixed = np.concatenate([photos(others[3000:], 970)[0], hidden])
    res = metrics.pool_overlap(victims, {"calib": calib, "disjoint": disjoint, "mixed": mixed},
                               calibration="calib", known=(known, k_labels, v_labels),
                               rate=0.01)
    s = res["sources"]
    assert s["calib"]["flagged"] == 20  # the quantile: 1% of 2,000
    assert s["disjoint"]["flagged_share"] < 0.03
    assert res["power"] > 0.9
    assert 25 <= s["mixed"]["flagged"] <= 30 + 3 * 10  # the hidden photos, plus chance
    assert all(i >= 970 for i, _, _ in s["mixed"]["top"])  # the most alike are the hidden ones
    with pytest.raises(DataError, match="calibration='nope'"):
        metrics.pool_overlap(victims, {"calib": calib}, calibration="nope")
