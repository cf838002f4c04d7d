"""Do tfminv's fast layers keep the fit? A small real attack trained twice: stock Keras layers, tfminv's.

FaceScrub-12 face classifier (90/10 split of its images), then a top-3 truncation inverter
trained on CelebA images labelled by that classifier; same seeds, same data, same policy. Prints
one JSON line per variant: classifier held-out accuracy, inverter validation MSE on FaceScrub
victims, seconds per epoch.

    python bench/layers_quality.py --data_dir ../shared/data [--width 0.5] [--policy mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import common  # noqa: E402


def run(variant, faces, celeba, a):
    import keras

    from tfminv.models import build_classifier, build_inverter
    from tfminv.training import TrainConfig
    from tfminv.training.precision import policy_scope

    keras.utils.set_random_seed(a.seed)
    x, y = faces
    n_val = len(x) // 10
    with common.stock_keras_layers(variant == "keras"), policy_scope(a.policy):
        clf = build_classifier(12, 64, a.width)
        inv = build_inverter(12, 64, a.width, k=3)
    clf.compile(optimizer=TrainConfig().optimizer(), metrics=["accuracy"],
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    t = time.perf_counter()
    h = clf.fit(x[n_val:], y[n_val:], batch_size=128, epochs=a.clf_epochs, verbose=0,
                validation_data=(x[:n_val], y[:n_val]))
    clf_s = (time.perf_counter() - t) / a.clf_epochs

    def softmax(imgs):
        return keras.ops.convert_to_numpy(
            keras.ops.softmax(clf.predict(imgs, batch_size=256, verbose=0)))

    aux_p, vic_p = softmax(celeba), softmax(x[:n_val])
    inv.compile(optimizer=TrainConfig().optimizer(), loss="mse")
    t = time.perf_counter()
    g = inv.fit(aux_p, celeba, batch_size=128, epochs=a.inv_epochs, verbose=0,
                validation_data=(vic_p, x[:n_val]))
    inv_s = (time.perf_counter() - t) / a.inv_epochs
    return {"bench": "layers_quality", "layers": variant, "policy": a.policy, "width": a.width,
            "clf_epochs": a.clf_epochs, "inv_epochs": a.inv_epochs,
            "seed": a.seed, "clf_val_accuracy": round(float(h.history["val_accuracy"][-1]), 4),
            "clf_val_accuracy_last3": round(float(np.mean(h.history["val_accuracy"][-3:])), 4),
            "inv_val_mse": round(float(g.history["val_loss"][-1]), 5),
            "inv_val_mse_last3": round(float(np.mean(g.history["val_loss"][-3:])), 5),
            "clf_s_per_epoch": round(clf_s, 2), "inv_s_per_epoch": round(inv_s, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data_dir", default=os.environ.get("TFMINV_DATA_DIR", ""))
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--policy", default="mixed_bfloat16")
    ap.add_argument("--clf_epochs", type=int, default=15)
    ap.add_argument("--inv_epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1, help="model init / dropout / shuffle seed")
    ap.add_argument("--aux", type=int, default=4000, help="CelebA auxiliary images")
    a = ap.parse_args()
    from tfminv.data import load_split

    fs = load_split("facescrub", "all", image_size=64, data_dir=a.data_dir or None)
    order = np.random.default_rng(0).permutation(len(fs.images))
    faces = (fs.images[order], fs.labels[order])
    celeba = load_split("celeba", "train", image_size=64, data_dir=a.data_dir or None).images[:a.aux]
    for variant in ("keras", "tfminv"):
        print(json.dumps(run(variant, faces, celeba, a)), flush=True)


if __name__ == "__main__":
    main()
