"""Controlled runs of the face classifier on a paper-scale allocation: which setting costs accuracy.

    python bench/classifier_gap.py --allocation=celeba_ids --epochs=20 --width=0.25 \
        --precision=mixed_bfloat16 --layers=fast --val_fraction=0.1 --out=bench/results/x.jsonl

Trains tfminv's classifier through `tfminv.training.fit` (the library's own loop) with one
setting changed at a time and prints one JSON line per epoch (train/val loss and accuracy,
accuracy on the held-out images) and a summary line: the held-out accuracy of the weights each
selection rule would keep (last epoch, lowest val_loss - tfminv's classifier default before
accuracy selection -, highest val_accuracy, and the best held-out epoch, which is how the
authors' script reports it). Settings: --precision, --init (Keras' or PyTorch's default kernel
initialisation), --layers (fast: tfminv.models.fast_layers;
stock: Keras' own layers), --val_fraction (0: train on every target-training image, as the
authors do), --dropout, --hidden (multiple of m for the hidden Dense; authors 5), --augment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--allocation", default="celeba_ids")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--precision", default="mixed_bfloat16")
    p.add_argument("--layers", choices=("fast", "stock"), default="fast")
    p.add_argument("--val_fraction", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--augment", default="", help="'flip', 'flip+shift' or '' (none)")
    p.add_argument("--init", choices=("keras", "torch"), default="keras",
                   help="kernel init: Keras' glorot_uniform, or PyTorch's default "
                   "(kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)))")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default="runs/bench_classifier_gap")
    p.add_argument("--out", default="")
    a = p.parse_args(argv)

    import common

    common.set_thread_env(int(os.environ.get("BENCH_THREADS", "2")))
    import keras
    import numpy as np

    from tfminv.data import allocations
    from tfminv.models import classifier as clf_mod
    from tfminv.training import TrainConfig, digest, fit

    alloc = allocations.get(a.allocation)
    train = allocations.materialize(alloc.target_train)
    test = allocations.materialize(alloc.target_test)
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(train))
    n_val = int(round(len(order) * a.val_fraction))
    val_idx, tr_idx = order[:n_val], order[n_val:]
    x, y = train.images[tr_idx], train.labels[tr_idx]
    val = (train.images[val_idx], train.labels[val_idx]) if n_val else None
    out = open(a.out, "a") if a.out else sys.stdout
    settings = {k: v for k, v in vars(a).items() if k not in ("out", "workdir")}
    rows = []

    class HeldOut(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logits = self.model.predict(test.images, batch_size=512, verbose=0)
            acc = float((np.argmax(logits, 1) == test.labels).mean())
            row = {"epoch": epoch + 1, "heldout_acc": acc,
                   **{k: float(v) for k, v in (logs or {}).items()}}
            rows.append(row)
            out.write(json.dumps({"bench": "classifier_gap", **settings, **row}) + "\n")
            out.flush()

    def build():
        m = alloc.num_classes
        model = clf_mod.build_classifier(m, alloc.image_size, a.width, name="gap_classifier")
        if a.dropout != 0.5:
            model.get_layer("dropout").rate = a.dropout
        if a.init == "torch":
            init = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform",
                                                      seed=a.seed)
            for layer in model.layers:
                if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                    layer.kernel.assign(init(layer.kernel.shape))
        if not a.augment:
            return model
        layers = [keras.layers.RandomFlip("horizontal")]
        if "shift" in a.augment:
            layers.append(keras.layers.RandomTranslation(0.08, 0.08, fill_mode="reflect"))
        inp = keras.Input(model.input_shape[1:])
        h = inp
        for layer in layers:
            h = layer(h)
        return keras.Model(inp, model(h))

    cfg = TrainConfig(epochs=a.epochs, precision=a.precision, seed=a.seed, verbose=2)
    t0 = time.perf_counter()
    with common.stock_keras_layers(a.layers == "stock"):
        fit(build, x, y, config=cfg, workdir=Path(a.workdir) / digest(settings), val=val,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"], monitor="val_loss" if val else "loss", callbacks=[HeldOut()],
            reuse=False)
    secs = time.perf_counter() - t0
    summ = {"last": rows[-1]["heldout_acc"],
            "best_heldout (authors' report)": max(r["heldout_acc"] for r in rows)}
    if val is not None:
        summ["min_val_loss"] = min(rows, key=lambda r: r["val_loss"])["heldout_acc"]
        summ["max_val_accuracy"] = max(rows, key=lambda r: r["val_accuracy"])["heldout_acc"]
    out.write(json.dumps({"bench": "classifier_gap_summary", **settings, **summ,
                          "seconds": round(secs, 1), "train_size": int(len(x)),
                          "num_classes": alloc.num_classes}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
