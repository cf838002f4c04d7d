"""Cost of tfminv.LeakageCallback as a share of training time, per budget: one JSON line each.

    python bench/leakage_callback.py [--budgets=0.1,0.25,0.5] [--epochs=20] [--every=2]
        [--n_train=10000]

A user's small CNN on MNIST at 28x28 (--n_train images) is trained for --epochs with and without
the callback (same seed); the share is measured from outside the callback,
(fit seconds with it - fit seconds without) / fit seconds without (the baseline is timed first
and last, their mean used, both printed), next to the callback's own
account (`overhead()`: its seconds / the training epochs' seconds). Needs $TFMINV_DATA_DIR.
On a shared machine wall times are noisy: run it on an idle one for figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="0.1,0.25,0.5")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--n_train", type=int, default=10000)
    args = ap.parse_args()

    import keras
    import numpy as np

    import tfminv
    from tfminv.data.sources import mnist

    folder = Path(os.environ.get("TFMINV_DATA_DIR", "datasets/raw")) / "mnist"
    n = args.n_train
    x = mnist.parse_idx(folder / "train-images-idx3-ubyte.gz", mnist.IMAGE_MAGIC, 3, n + 1100)
    y = mnist.parse_idx(folder / "train-labels-idx1-ubyte.gz", mnist.LABEL_MAGIC, 1, n + 1100)
    xf, y = x[:n, ..., None] / 255.0, y.astype(np.int64)

    def fit(callbacks):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(), keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(10)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(xf[:64], y[:64], epochs=1, verbose=0)  # trace outside the timing
        t = time.perf_counter()
        model.fit(xf, y[:n], epochs=args.epochs, batch_size=64, verbose=0,
                  callbacks=callbacks)
        return time.perf_counter() - t

    base = fit([])
    lines = []
    for budget in (float(b) for b in args.budgets.split(",")):
        cb = tfminv.LeakageCallback(x[n:n + 1000], x[n + 1000:], y[n + 1000:], every=args.every,
                                    epochs=10, budget=budget)
        with_cb = fit([cb])
        done = [h for h in cb.history if not h["leak_skipped"]]
        lines.append({
            "budget": budget, "epochs": args.epochs, "every": args.every,
            "fit_seconds_with": round(with_cb, 1),
            "callback_share_own_account": round(cb.overhead(), 3),
            "measurements": len(done), "skipped": len(cb.history) - len(done),
            "inverter_epochs": [int(h["leak_inverter_epochs"]) for h in done],
            "last_leak_mse": round(done[-1]["leak_mse"], 4) if done else None,
            "mse_mean_aux": round(cb.mse_mean_aux, 4)})
    # the baseline again at the end: on a shared machine the spread of the two is the noise
    after = fit([])
    ref = (base + after) / 2
    for line in lines:
        print(json.dumps({**line, "fit_seconds_without": [round(base, 1), round(after, 1)],
                          "measured_share": round((line["fit_seconds_with"] - ref) / ref, 3)}),
              flush=True)


if __name__ == "__main__":
    main()
