"""Inversion latency per image: one forward pass of the trained-inverter attack against the
Fredrikson et al. optimisation attack (tfminv.attacks.fredrikson) on the same classifier.

For each family (face: 64x64, m=12; digit: 32x32, m=5), at the authors' widths:
- the target classifier is briefly trained on the real data (`--train_steps`, batch 128), so the
  optimisation attack meets a classifier with real decision boundaries (an untrained one converges
  differently); the inverter's speed does not depend on its weights;
- inverter: seconds per image at batch 1 and 256, as a compiled call (tf.function, with and
  without XLA), through the library's `tfminv.attacks.inversion.invert` (Keras predict), Keras
  `predict_on_batch` and an eager call;
- Fredrikson, batch 1: complete runs with the library defaults (up to 1000 steps, patience 100,
  stop at confidence 0.99) for `--attack_classes` classes: measured seconds and steps per image;
- Fredrikson, batch 256 (one image per class, classes repeated): per-step time from two capped
  runs (the difference of 1 and 1+`--attack_steps` steps removes tracing), times the mean steps
  of the complete batch-1 runs: an extrapolation, stated as such in its JSON line (a batch runs
  until its slowest image stops, so the mean favours the attack).
The inverter is timed again after the attack and the two medians averaged: on a shared machine
the load drifts between the two measurements.
Prints one JSON line per measurement and one `inversion_ratio` line per family and batch size.

    python bench/inversion_latency.py [--families face,digit] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import common

FAMILIES = {"face": ("facescrub", 12, 64), "digit": ("mnist", 5, 32)}


def _train_data(family, tf, limit):
    """Real training images for the family's target (FaceScrub all; MNIST train digits 0-4)."""
    from tfminv.data import load_split

    if family == "face":
        s = load_split("facescrub", "all")
        x, y = s.images, s.labels
    else:
        s = load_split("mnist", "train", image_size=32, limit=limit)
        keep = s.labels < 5
        x, y = s.images[keep], s.labels[keep]
    return x.astype(np.float32), y.astype(np.int64)


def build_target(family, steps, tf, keras, limit=6000):
    """The family's classifier, trained `steps` steps (batch 128, the authors' Adam) on real data."""
    from tfminv.models import build_classifier

    _, m, size = FAMILIES[family]
    keras.utils.set_random_seed(1)
    model = build_classifier(m, size)
    info = {"train_steps": steps}
    if steps:
        x, y = _train_data(family, tf, limit)
        model.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, amsgrad=True),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        rng = np.random.default_rng(1)
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = rng.choice(len(y), 128, replace=False)
            logs = model.train_on_batch(x[idx], y[idx], return_dict=True)
        info.update(train_s=time.perf_counter() - t0, train_images=int(len(y)),
                    last_batch_accuracy=float(logs["accuracy"]))
    return model, info


def time_calls(fn, arg, reps):
    fn(arg)  # warm-up (tracing / compilation)
    return common.timed(lambda: np.asarray(fn(arg)), reps)


def bench_family(family, a, tf, keras):
    from tfminv.attacks import fredrikson
    from tfminv.attacks.inversion import invert
    from tfminv.models import build_inverter

    _, m, size = FAMILIES[family]
    clf, train_info = build_target(family, a.train_steps if family == "face" else a.digit_train_steps,
                                   tf, keras)
    inv = build_inverter(m, size, k=min(3, m))
    base = {"family": family, "m": m, "image_size": size, "threads": a.threads,
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}
    common.emit({"bench": "inversion_target", **base, **train_info})

    rng = np.random.default_rng(0)
    inv_per_image = {}
    for batch in (1, 256):
        preds = tf.nn.softmax(rng.normal(size=(batch, m)).astype(np.float32) * 3.0)
        reps = a.reps_b1 if batch == 1 else a.reps_b256
        for how, fn in (("call", tf.function(lambda v: inv(v, training=False))),
                        ("call_xla", tf.function(lambda v: inv(v, training=False), jit_compile=True)),
                        ("library_invert", lambda v: invert(inv, v, batch_size=256)),
                        ("predict_on_batch", inv.predict_on_batch),
                        ("eager_call", lambda v: inv(v, training=False))):
            ts = time_calls(fn, preds, reps)
            per = common.median(ts) / batch
            common.emit({"bench": "inverter_latency", **base, "batch": batch, "how": how,
                         "seconds_per_batch_median": common.median(ts), "seconds_per_image": per,
                         "reps": reps})
            inv_per_image[(batch, how)] = per

    # Fredrikson, batch 1: complete runs with the library defaults.
    import dataclasses

    cfg = fredrikson.FredriksonConfig()
    cfg_dict = dataclasses.asdict(cfg)
    full = []
    for c in range(min(a.attack_classes, m)):
        r = fredrikson.invert_classes(clf, [c], (size, size, 1), cfg)
        full.append(r)
        common.emit({"bench": "fredrikson_run", **base, "batch": 1, "class": c,
                     "seconds": r.seconds_total, "steps": int(r.steps[0]),
                     "confidence": float(r.confidence[0]), "config": cfg_dict})
    att1 = common.median([r.seconds_total for r in full])
    mean_steps = float(np.mean([r.steps[0] for r in full]))

    # Per-step time from capped runs (never stopping early): (T(1+K) - T(1)) / K removes the
    # tracing; when load noise makes that difference non-positive, T(1+K) / (1+K) (an upper
    # bound that includes the tracing) is used and labelled.
    def per_step(batch, k):
        classes = np.arange(batch) % m
        capped = lambda s: fredrikson.FredriksonConfig(steps=s, threshold=0.0, patience=10**6)
        t1 = fredrikson.invert_classes(clf, classes, (size, size, 1), capped(1)).seconds_total
        tk = fredrikson.invert_classes(clf, classes, (size, size, 1), capped(1 + k)).seconds_total
        if tk > t1:
            return (tk - t1) / k, t1, "difference"
        return tk / (1 + k), t1, "upper_bound_with_tracing"

    step1, fixed1, how1 = per_step(1, 5 * a.attack_steps)
    step256, fixed256, how256 = per_step(256, a.attack_steps)
    att256 = (fixed256 + mean_steps * step256) / 256
    common.emit({"bench": "fredrikson_step", **base, "batch": 1, "seconds_per_step": step1,
                 "seconds_first_step_with_tracing": fixed1, "method": how1,
                 "seconds_per_step_complete_runs": common.median(
                     [r.seconds_total / max(int(r.steps[0]), 1) for r in full])})
    common.emit({"bench": "fredrikson_step", **base, "batch": 256, "seconds_per_step": step256,
                 "seconds_first_step_with_tracing": fixed256, "method": how256,
                 "seconds_per_image_extrapolated": att256,
                 "extrapolation": f"(first step + {mean_steps:.0f} mean steps of the complete "
                                  "batch-1 runs x per-step time) / 256"})
    # The inverter again, after the attack: load drifts on a shared machine; keep the median.
    for batch in (1, 256):
        preds = tf.nn.softmax(rng.normal(size=(batch, m)).astype(np.float32) * 3.0)
        fn = tf.function(lambda v: inv(v, training=False))
        ts = time_calls(fn, preds, a.reps_b1 if batch == 1 else a.reps_b256)
        before = inv_per_image[(batch, "call")]
        inv_per_image[(batch, "call")] = common.median([before, common.median(ts) / batch])
        common.emit({"bench": "inverter_latency", **base, "batch": batch, "how": "call_after_attack",
                     "seconds_per_image": common.median(ts) / batch,
                     "seconds_per_image_before_attack": before})
    for batch, att in ((1, att1), (256, att256)):
        common.emit({"bench": "inversion_ratio", **base, "batch": batch,
                     "fredrikson_seconds_per_image": att,
                     "fredrikson_measured": batch == 1, "fredrikson_mean_steps": mean_steps,
                     "inverter_seconds_per_image": inv_per_image[(batch, "call")],
                     "inverter_library_seconds_per_image": inv_per_image[(batch, "library_invert")],
                     "speedup": att / inv_per_image[(batch, "call")],
                     "speedup_library_invert": att / inv_per_image[(batch, "library_invert")]})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="face,digit")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--train_steps", type=int, default=8,
                   help="face classifier training steps (batch 128) before the attack")
    p.add_argument("--digit_train_steps", type=int, default=20)
    p.add_argument("--attack_classes", type=int, default=2,
                   help="complete batch-1 Fredrikson runs per family")
    p.add_argument("--attack_steps", type=int, default=2, help="steps of the capped per-step runs")
    p.add_argument("--reps_b1", type=int, default=30)
    p.add_argument("--reps_b256", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="digit family, 5 training steps, 1 attacked class, fewer repetitions")
    a = p.parse_args(argv)
    if a.quick:
        a.families, a.attack_classes, a.reps_b1, a.reps_b256, a.attack_steps = "digit", 1, 10, 2, 1
        a.digit_train_steps = 5
    tf = common.setup_tf(a.threads)
    import keras

    common.emit({"bench": "config", "script": "inversion_latency", "families": a.families,
                 "machine": common.machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for fam in a.families.split(","):
        if fam not in FAMILIES:
            p.error(f"--families: unknown {fam!r}; expected some of {', '.join(FAMILIES)}")
        bench_family(fam, a, tf, keras)


if __name__ == "__main__":
    main()
