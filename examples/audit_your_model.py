"""
Title: Audit your own model for inversion leakage
Description: train (or load) a Keras classifier, then measure how well an attacker who only sees
its predictions can reconstruct the images it was shown.

A classifier's prediction vector says more about its input than the label. tfminv trains an
*inversion model* that maps released predictions back to images (Yang et al., CCS 2019) and
reports how close the reconstructions come to the real inputs, next to the guess any attacker
gets for free (the mean of the public images it holds).

This walk-through uses MNIST at its native 28x28 from `$TFMINV_DATA_DIR/mnist/` (the official
IDX files). Any NumPy images work the same way: uint8 0-255 or float 0-1, any height, width and
channel count your model takes. Set `TFMINV_EXAMPLE_TINY=1` for a seconds-long run (CI does);
`TFMINV_EXAMPLE_OUT` chooses the output folder (default `runs/audit_your_model/`).
"""

import os
from pathlib import Path

import numpy as np

TINY = os.environ.get("TFMINV_EXAMPLE_TINY") == "1"
OUT = Path(os.environ.get("TFMINV_EXAMPLE_OUT", "runs/audit_your_model"))

"""
## Load images

Three disjoint sets: the model's training images, the *victims* (images the model will be
queried on, whose predictions are released) and the attacker's *auxiliary* images (public data
of the same kind, never the victims).
"""

from tfminv.data.sources import mnist  # noqa: E402 - keras-io style: imports where they are used

folder = Path(os.environ.get("TFMINV_DATA_DIR", "datasets/raw")) / "mnist"
n = 2400 if TINY else 20000
images = mnist.parse_idx(folder / "train-images-idx3-ubyte.gz", mnist.IMAGE_MAGIC, 3, n)
labels = mnist.parse_idx(folder / "train-labels-idx1-ubyte.gz", mnist.LABEL_MAGIC, 1, n)
images = images[..., None]  # [N, 28, 28, 1] uint8: keep your data's own shape
labels = labels.astype(np.int64)
third = n // 3
train_x, train_y = images[:third], labels[:third]
aux_x = images[third:2 * third]
n_victims = 40 if TINY else 500
victim_x = images[2 * third:2 * third + n_victims]
victim_y = labels[2 * third:2 * third + n_victims]
print(f"train {train_x.shape}, auxiliary {aux_x.shape}, victims {victim_x.shape}")

"""
## Train (or load) the model to audit

Your own model goes here: `keras.saving.load_model("my_model.keras")` works as well. This one
ends in softmax; tfminv reads that from the last layer and never applies a second softmax (a
model returning logits is detected too, or declare `outputs="logits"`). It takes inputs in
[0, 1]; a model trained on 0-255 inputs would be audited with `input_range=(0, 255)`.
"""

import keras  # noqa: E402

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    keras.layers.Conv2D(16, 3, activation="relu"),
    keras.layers.MaxPooling2D(),
    keras.layers.Flatten(),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train_x / 255.0, train_y, epochs=2 if TINY else 5, batch_size=64, verbose=0)
print("test accuracy on the victims:",
      model.evaluate(victim_x / 255.0, victim_y, verbose=0)[1])

"""
## Run the attack

Suppose the deployed model releases only its top-1 probability. `run_inversion` queries the
model on the auxiliary images (through the same top-1 release), trains an inverter aligned to
that format, and reconstructs every victim from its released vector. Without an independent
`eval_model`, the model itself judges whether a reconstruction shows the victim's class, and
the results label that accuracy as biased upward.
"""

import tfminv  # noqa: E402 - cheap: TensorFlow is loaded only when needed

results = tfminv.run_inversion(
    model, aux_x, victim_x, victim_y, k=1,
    epochs=6 if TINY else 30, width=0.125 if TINY else 0.25, batch_size=32,
    cache_dir=OUT / "cache")
print(results.table())
row = results.row("topk:1")
print(f"reconstruction MSE {row.mse:.4f} vs the mean auxiliary image "
      f"{results.baselines['mse_mean_aux']:.4f}: "
      f"{'leaks' if row.beats_mean_aux else 'no better than the free guess'}")

"""
## Look at the grid and the report

`write_report` writes results.json, results.md, reconstructions.png (victims on top, one row of
reconstructions per release policy) and a self-contained report.html.
"""

files = results.write_report(OUT / "report", title="Audit of a small MNIST model")
print("open", files["reconstructions.png"], "and", files["report.html"])

"""
## Compare release policies

`run_audit` repeats the attack for each release policy (top-k, rounding, label only, noise ...)
and adds each policy's utility, the accuracy of what it releases.
"""

policies = "identity;label" if TINY else "identity;topk:3;topk:1;round:1;label"
audit = tfminv.run_audit(model, aux_x, victim_x, victim_y, policies=policies,
                         epochs=1 if TINY else 30, width=0.125 if TINY else 0.25,
                         batch_size=32, cache_dir=OUT / "cache")
print(audit.table())
audit.write_report(OUT / "audit", title="Release policies of a small MNIST model")

"""
## The same from the command line

Save the model and the images, then run the audit binary on them:

    python -m tfminv.experiments.audit --target=keras:model.keras --aux=npz:aux.npz \\
        --victims=npz:victims.npz --policies='identity;topk:1' --epochs=30 --width=0.25 \\
        --out_dir=out/

`--aux` and `--victims` also take `folder:DIR` (class sub-folders give labels),
`tfds:NAME:SPLIT` (a prepared TFDS dataset; never downloads) and `records:DIR`.
"""

model.save(OUT / "model.keras")
np.savez(OUT / "aux.npz", images=aux_x)
np.savez(OUT / "victims.npz", images=victim_x, labels=victim_y)
print(f"saved {OUT / 'model.keras'}, {OUT / 'aux.npz'}, {OUT / 'victims.npz'}")
