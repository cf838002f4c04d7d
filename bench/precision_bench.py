"""Measure float32 vs mixed_bfloat16 training speed and loss on this CPU; one JSON line per case.

Usage: python bench/precision_bench.py [--width=0.25] [--steps=20]
       python bench/precision_bench.py --quality_data_dir=DATA   (validation MSE, real MNIST)
Synthetic inputs of the real shapes (speed does not depend on content); the loss after the
same number of steps shows whether bfloat16 hurts the fit.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def run(kind, size, policy, width, steps, batch):
    import keras

    from tfminv.models import build_classifier, build_inverter
    from tfminv.training import TrainConfig
    from tfminv.training.precision import policy_scope

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    m = 12 if size == 64 else 5
    # smooth targets so the loss is meaningful: blurred noise images
    imgs = rng.random((batch * 4, size // 8, size // 8, 1)).astype(np.float32)
    imgs = np.repeat(np.repeat(imgs, 8, axis=1), 8, axis=2)
    labels = rng.integers(0, m, len(imgs))
    preds = np.eye(m, dtype=np.float32)[labels] * 0.9 + 0.1 / m
    with policy_scope(policy):
        if kind == "inverter":
            model = build_inverter(m, size, width, k=3)
            x, y, loss = preds, imgs, "mse"
        else:
            model = build_classifier(m, size, width)
            x, y = imgs, labels
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer=TrainConfig().optimizer(), loss=loss)
    model.train_on_batch(x[:batch], y[:batch])  # trace
    t = time.perf_counter()
    for i in range(steps):
        j = (i % 4) * batch
        out = model.train_on_batch(x[j:j + batch], y[j:j + batch])
    dt = (time.perf_counter() - t) / steps
    last = float(out if np.isscalar(out) else np.asarray(out).ravel()[0])
    return {"model": kind, "image_size": size, "policy": policy, "width": width,
            "batch": batch, "steps": steps, "ms_per_step": round(dt * 1000, 1),
            "images_per_s": round(batch / dt, 1), "final_loss": round(last, 5)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--quality_data_dir", default="",
                    help="raw data folder: also compare validation MSE on real MNIST")
    a = ap.parse_args()
    if a.quality_data_dir:
        quality(a.quality_data_dir)
        return
    for kind in ("inverter", "classifier"):
        for size in (32, 64):
            for policy in ("float32", "mixed_bfloat16"):
                print(json.dumps(run(kind, size, policy, a.width, a.steps, a.batch)), flush=True)



def quality(data_dir, n=3000, epochs=3, width=0.25):
    """Validation MSE of an inverter (noisy one-hot labels -> real MNIST digits 5-9) per policy."""
    import keras

    from tfminv.data import load_split
    from tfminv.models import build_inverter
    from tfminv.training import TrainConfig
    from tfminv.training.precision import policy_scope

    s = load_split("mnist", "train", image_size=32, data_dir=data_dir)
    x = s.images[s.labels >= 5][:n]
    y = s.labels[s.labels >= 5][:n] - 5
    rng = np.random.default_rng(0)
    p = np.eye(5, dtype=np.float32)[y] * 0.8 + rng.dirichlet(np.ones(5), len(y)).astype(
        np.float32) * 0.2
    out = []
    for policy in ("float32", "mixed_bfloat16"):
        keras.utils.set_random_seed(1)
        with policy_scope(policy):
            model = build_inverter(5, 32, width, k=2)
            model.compile(optimizer=TrainConfig().optimizer(), loss="mse")
        t = time.perf_counter()
        h = model.fit(p[n // 10:], x[n // 10:], batch_size=128, epochs=epochs, verbose=0,
                      validation_data=(p[:n // 10], x[:n // 10]))
        out.append({"quality": "mnist5-9 inverter", "policy": policy, "epochs": epochs,
                    "n": n, "width": width, "seconds": round(time.perf_counter() - t, 1),
                    "val_mse": round(float(h.history["val_loss"][-1]), 5)})
        print(json.dumps(out[-1]), flush=True)
    return out


if __name__ == "__main__":
    main()
