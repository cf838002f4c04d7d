"""Checks of the benchmark machinery: the PyTorch reference matches tfminv's models, the FLOP
counts match a hand count, and the throughput script's worker protocol runs end to end.

    python -m pytest -q bench/tests
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402


def _keras_model(kind, m, size, width):
    from tfminv.models import build_classifier, build_inverter

    return (build_classifier if kind == "classifier" else build_inverter)(m, size, width)


@pytest.mark.parametrize("name", sorted(common.MODELS))
def test_torch_reference_has_the_same_layers_as_tfminv(name):
    torch = pytest.importorskip("torch")
    import torch_reference as tr

    kind, m, size = common.MODELS[name]
    width = 0.125
    km, tm = _keras_model(kind, m, size, width), tr.build(kind, m, size, width)
    assert tr.count_params(tm) == km.count_params()
    example = torch.zeros((1, 1, size, size) if kind == "classifier" else (1, m))
    assert common.torch_forward_flops(tm, example) == common.keras_forward_flops(km)
    tm.eval()
    with torch.no_grad():
        out = tm(example)
    assert tuple(out.shape[1:]) == ((m,) if kind == "classifier" else (1, size, size))


def test_face_classifier_flops_match_a_hand_count():
    m = 12
    convs = [(64, 1, 128), (32, 128, 256), (16, 256, 512), (8, 512, 1024)]  # (out side, cin, cout)
    hand = sum(2 * s * s * 9 * cin * cout for s, cin, cout in convs)
    hand += 2 * (4 * 4 * 1024) * (5 * m) + 2 * (5 * m) * m
    assert common.keras_forward_flops(_keras_model("classifier", m, 64, 1.0)) == hand


def test_face_inverter_flops_match_a_hand_count():
    m = 12
    # transpose convs: (input side, cin, cout), kernel 4x4
    deconvs = [(1, m, 1024), (4, 1024, 512), (8, 512, 256), (16, 256, 128), (32, 128, 1)]
    hand = sum(2 * s * s * 16 * cin * cout for s, cin, cout in deconvs)
    assert common.keras_forward_flops(_keras_model("inverter", m, 64, 1.0)) == hand


def _run(args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(BENCH / "train_throughput.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_train_throughput_runs_a_pair_end_to_end():
    pytest.importorskip("torch")
    r = _run(["--models", "digit_inverter", "--pairs", "float32:plain", "--rounds", "2",
              "--warmup", "0", "--batch", "4", "--width", "0.0625", "--threads", "1",
              "--matmul_n", "128"])
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    steps = {x["framework"]: x for x in lines if x["bench"] == "train_step"}
    assert set(steps) == {"tfminv", "pytorch"}
    for s in steps.values():
        assert s["steps_timed"] == 2 and s["images_per_s"] > 0
        assert s["peak_rss_mb"] >= s["rss_after_build_mb"] > 0
        expected = 3 * 4 * common.keras_forward_flops(_keras_model("inverter", 5, 32, 0.0625)) / 1e9
        assert s["gflop_per_step"] == pytest.approx(expected)
        assert 0 < s["efficiency"] < 10
    assert steps["tfminv"]["gflop_per_step"] == steps["pytorch"]["gflop_per_step"]
    ratio = [x for x in lines if x["bench"] == "train_ratio"]
    assert len(ratio) == 1 and ratio[0]["ratio_float32_vs_plain"] > 0
    assert ratio[0]["ratio_best_source"] == "pair"
    peaks = {x["dtype"]: x for x in lines if x["bench"] == "matmul_peak"}
    assert set(peaks) == {"float32", "bfloat16"} and peaks["float32"]["samples"] == 4
    import summarize

    md = summarize.summarize(lines)
    assert "Same-pair ratios" in md and "| digit_inverter | float32 | plain |" in md


def test_train_throughput_rejects_an_unknown_variant():
    r = _run(["--pairs", "float64:plain"], timeout=60)
    assert r.returncode != 0
    assert "--pairs" in r.stderr and "float64" in r.stderr


def test_stock_keras_layers_swaps_and_restores():
    import keras
    from tfminv.models import fast_layers

    with common.stock_keras_layers():
        stock = _keras_model("classifier", 5, 32, 0.125)
    fast = _keras_model("classifier", 5, 32, 0.125)
    assert type(stock.get_layer("bn0")) is keras.layers.BatchNormalization
    assert type(fast.get_layer("bn0")) is fast_layers.BatchNorm
    assert stock.count_params() == fast.count_params()


def test_profile_step_reports_op_categories():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, str(BENCH / "profile_step.py"), "--model",
                          "digit_inverter", "--width", "0.125", "--batch", "16", "--steps", "1"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert rows and all(r["bench"] == "profile_step" and r["layers"] == "tfminv" for r in rows)
    assert abs(sum(r["share"] for r in rows) - 1.0) < 0.01
    assert any("deconv" in r["category"] or "matmul" in r["category"] for r in rows)


def test_gpu_check_without_a_gpu_says_so_and_exits_3():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: the check would run for minutes")
    env = dict(os.environ, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--epochs=1"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "gpu_check: no GPU found" in res.stderr and "--cpu-dry-run" in res.stderr
