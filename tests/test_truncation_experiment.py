"""End-to-end: `tfminv.experiments.truncation` on a small slice of real MNIST, then a re-run
that reuses the cached classifier, predictions and inverters; flag errors exit with code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("keras")

from absl import flags  # noqa: E402

ARGS = ["--dataset=mnist", "--k=1,5", "--width=0.0625", "--epochs=1", "--clf_epochs=1",
        "--max_train=300", "--max_aux=300", "--max_victims=60", "--figure_n=6", "--verbose=0", "--batch_size=64"]


def _run(argv):
    from tfminv.experiments import truncation

    f = flags.FLAGS
    f.unparse_flags()
    f(["truncation", *argv])
    return truncation.run(["truncation", *argv])


@pytest.mark.slow
def test_end_to_end_mnist_slice(data_dir, tmp_path):
    import cv2

    out = tmp_path / "out"
    cache = tmp_path / "cache"  # its own cache: other tests train inverters in the shared one
    argv = [*ARGS, f"--data_dir={data_dir}", f"--cache_dir={cache}", f"--out_dir={out}"]
    assert _run(argv) == 0
    rows = json.loads((out / "results.json").read_text())
    refs = [r for r in rows if r["k"] == 0]
    rows = [r for r in rows if r["k"] > 0]
    assert [(r["k"], r["method"]) for r in rows] == [
        (1, "truncation"), (1, "previous"), (1, "previous_logzero"),
        (5, "truncation"), (5, "previous"), (5, "previous_logzero")]
    # references scored by the same judge; the real victims are the judge's own ceiling
    assert [r["method"] for r in refs] == ["reference: real_victims", "reference: mean_aux",
                                          "reference: class_mean"]
    assert refs[0]["mse"] == 0 and refs[0]["attack_acc"] == pytest.approx(
        refs[0]["eval_acc"], abs=0.2)
    for r in rows + refs:
        assert 0 <= r["nn_acc"] <= r["nn_acc_top5"] <= 1 and r["knn_dist"] > 0
    for r in rows:
        for key in ("mse", "psnr", "ssim", "attack_acc", "attack_acc_top5", "mse_mean_aux",
                    "mse_zeros", "mse_class_mean"):
            assert np.isfinite(r[key]), (key, r)
        assert 0 <= r["attack_acc"] <= 1 and r["dataset"] == "mnist"
        assert r["selection"] == "aux_val" and r["n_victims"] == 60
        # the references do not depend on the method
        assert r["mse_class_mean"] < r["mse_mean_aux"] < r["mse_zeros"]
    # with k = m the three methods are the same model; below m the two 'previous' differ
    assert rows[3]["mse"] == pytest.approx(rows[4]["mse"], rel=1e-6)
    assert rows[3]["mse"] == pytest.approx(rows[5]["mse"], rel=1e-6)
    assert rows[0]["mse"] != rows[1]["mse"] and rows[1]["mse"] != rows[2]["mse"]
    md = (out / "results.md").read_text()
    assert "| mnist | 1 | truncation |" in md and "truncation_mnist.png" in md
    img = cv2.imread(str(out / "truncation_mnist.png"), cv2.IMREAD_GRAYSCALE)
    assert img is not None and img.shape[0] == 2 + 7 * (64 + 2)  # truth + 6 rows, 32px x2
    run1 = json.loads((out / "run.json").read_text())
    assert run1["command"].startswith("python -m tfminv.experiments.truncation ")
    assert "--dataset=mnist" in run1["command"] and "--k=1,5" in run1["command"]
    assert run1["oracle_queries"] == 270 + 30 + 60  # aux (train + held-out) and victims, once
    assert run1["oracle_answers_cached"] == 0
    inv_dirs = list((cache / "inverters").glob("*/*"))
    # previous trained once for all k; truncation at k = m is that same full-vector model
    assert sorted(d.name.split("-")[0] for d in inv_dirs) == ["full", "truncation_k1"]

    out2 = tmp_path / "out2"
    assert _run([*ARGS, f"--data_dir={data_dir}", f"--cache_dir={cache}", f"--out_dir={out2}"]) == 0
    run2 = json.loads((out2 / "run.json").read_text())
    assert run2["oracle_queries"] == 0  # predictions came from the cache
    assert run2["oracle_answers_cached"] == 270 + 30 + 60  # and say what the attack asked
    assert run2["target"] == run1["target"]  # the cached classifiers were reused
    clf_dirs = sorted(d.name.split("-")[1] for d in (cache / "classifiers").iterdir())
    assert clf_dirs == ["eval", "target"]
    ev, tg = run2["eval_classifier"], run2["target"]
    assert ev["seed"] != tg["seed"] and ev["width"] != tg["width"]
    rows2 = json.loads((out2 / "results.json").read_text())
    rows2 = [r for r in rows2 if r["k"] > 0]
    assert [r["mse"] for r in rows2] == pytest.approx([r["mse"] for r in rows], rel=1e-6)


def test_bad_k_exits_with_message(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run([sys.executable, "-m", "tfminv.experiments.truncation",
                          "--dataset=mnist", "--k=7", f"--out_dir={tmp_path}"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "error: --k=7: k must be at most the 5 classes of --dataset=mnist")
    res = subprocess.run([sys.executable, "-m", "tfminv.experiments.truncation",
                          "--dataset=mnist", "--k=a,2"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 2 and "expected comma-separated integers" in res.stderr


def test_query_cached_queries_once_per_images_and_policy(tmp_path):
    from tfminv.attacks.predictions import cached_files, query_cached
    from tfminv.oracles import CallableOracle

    class Halve:
        def get_config(self):
            return {"factor": 0.5}

        def __call__(self, probs, rng=None):
            return probs * 0.5

    rng = np.random.default_rng(0)
    imgs = rng.random((10, 8, 8, 1)).astype(np.float32)
    oracle = CallableOracle(lambda x: np.full((len(x), 3), 1 / 3, np.float32), name="flat")
    a = query_cached(oracle, imgs, tmp_path)
    b = query_cached(oracle, imgs, tmp_path)
    assert oracle.num_queries == 10 and np.array_equal(a, b)
    c = query_cached(oracle, imgs, tmp_path, policy=Halve())
    assert oracle.num_queries == 10 and np.allclose(c, a * 0.5)  # policy on cached answers
    query_cached(oracle, imgs[:5], tmp_path)  # other images: a new query
    assert oracle.num_queries == 15 and len(cached_files(tmp_path)) == 3
    other = CallableOracle(lambda x: np.full((len(x), 3), 1 / 3, np.float32), name="other")
    query_cached(other, imgs, tmp_path)  # other target identity: not served from the cache
    assert other.num_queries == 10
