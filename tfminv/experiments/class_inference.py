"""Training-class inference: a representative image per class, three ways.

    python -m tfminv.experiments.class_inference --dataset=facescrub --width=0.25 --epochs=5

- truncation: G trained black-box on auxiliary predictions truncated to --k (default 1: only
  the top confidence), fed a one-hot-like vector per class (one forward pass);
- previous: G trained on full vectors, fed the same vector;
- fredrikson: Fredrikson et al.'s optimisation on the input with the target's gradients
  (white-box), with Gaussian denoising + sharpening of the result (raw result also scored).
Scores: top-1/top-5 of the independent evaluation classifier, the target's confidence in the
class, MSE to the class's mean training image, and time per class.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from absl import flags

from tfminv.experiments import common, scenario

flags.DEFINE_enum("dataset", "facescrub", ["facescrub", "mnist"], "allocation to attack")
flags.DEFINE_integer("k", 1, "truncation of the inverters' input (paper: keep the top one)")
flags.DEFINE_float("confidence", 1.0, "confidence of the class in the one-hot-like vector")
flags.DEFINE_list("methods", ["truncation", "previous", "fredrikson"], "methods to compare")
flags.DEFINE_integer("mia_steps", 1000, "Fredrikson: most gradient steps per class")
flags.DEFINE_float("mia_lr", 0.1, "Fredrikson: step size")
flags.DEFINE_integer("mia_patience", 100, "Fredrikson: stop a class after this many steps "
                     "without improvement")
flags.DEFINE_enum("mia_objective", "logprob", ["logprob", "prob"], "Fredrikson cost: -log p_c "
                  "or 1 - p_c")
flags.DEFINE_enum("mia_process", "denoise+sharpen", ["none", "denoise", "sharpen",
                                                     "denoise+sharpen"],
                  "Fredrikson post-processing")
flags.DEFINE_integer("mia_process_every", 0, "also post-process every this many steps (0: only "
                     "the result)")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS

METHODS = ("truncation", "previous", "fredrikson")


def run(argv):
    from tfminv import report
    from tfminv.attacks import class_inference as ci
    from tfminv.attacks.fredrikson import FredriksonConfig, invert_classes
    from tfminv.errors import ConfigError
    from tfminv.figures import image_grid

    t_start = time.perf_counter()
    bad = [m for m in FLAGS.methods if m not in METHODS]
    if bad or not FLAGS.methods:
        raise ConfigError(f"--methods={','.join(FLAGS.methods)}: expected a subset of "
                          f"{list(METHODS)}")
    mia_cfg = FredriksonConfig(steps=FLAGS.mia_steps, learning_rate=FLAGS.mia_lr,
                               patience=FLAGS.mia_patience, objective=FLAGS.mia_objective,
                               process=FLAGS.mia_process, process_every=FLAGS.mia_process_every)
    s = common.prepare(FLAGS.dataset)
    m = s.aux_preds.shape[1]
    if not 1 <= FLAGS.k <= m:
        raise ConfigError(f"--k={FLAGS.k}: expected 1 to {m}")
    classes = np.arange(m)
    means = ci.class_means(s.train_set.images, s.train_set.labels, classes)
    target = scenario.target_model(s)
    tr_preds, tr_images, val, selection = common.selection_data(s)
    base = {"dataset": FLAGS.dataset, "k": FLAGS.k, "n_classes": m}
    rows, fig_rows = [], [("class mean (train)", means)]
    for method in FLAGS.methods:
        if method == "fredrikson":
            res = invert_classes(target, classes, s.train_set.images.shape[1:], mia_cfg)
            for label, images in ((f"fredrikson ({FLAGS.mia_process})", res.images),
                                  ("fredrikson (raw)", res.raw_images)):
                score = ci.score_class_images(images, classes, eval_model=s.eval_model,
                                              target_model=target, means=means)
                rows.append({**base, "method": label, **score,
                             "seconds_per_class": res.seconds_per_class,
                             "train_seconds": 0.0, "access": "white-box (gradients)",
                             "mean_steps": float(res.steps.mean())})
                fig_rows.append((label, images))
            continue
        t = time.perf_counter()
        from tfminv.attacks.inversion import train_inverter

        g = train_inverter(tr_preds, tr_images, k=FLAGS.k, method=method,
                           config=common.train_config(), workdir=scenario.inverter_workdir(s),
                           val=val, width=FLAGS.width)
        train_seconds = time.perf_counter() - t
        images, per_class = ci.infer_classes(g, m, classes, FLAGS.confidence)
        score = ci.score_class_images(images, classes, eval_model=s.eval_model,
                                      target_model=target, means=means)
        rows.append({**base, "method": method, **score, "seconds_per_class": per_class,
                     "train_seconds": round(train_seconds, 1),
                     "access": "black-box (predictions)", "mean_steps": 1.0})
        fig_rows.append((method, images))
    out = common.out_dir(f"class_inference_{FLAGS.dataset}")
    fig = out / f"class_inference_{FLAGS.dataset}.png"
    image_grid(fig_rows, fig, label_width=230)
    cols = ["dataset", "method", "attack_top1", "attack_top5", "target_confidence",
            "mse_to_class_mean", "seconds_per_class", "train_seconds", "mean_steps", "access",
            "k", "n_classes"]
    extra = scenario.common_extra(s, argv, "class_inference", t_start, fredrikson=vars(mia_cfg),
                                  selection=selection, n_aux=len(tr_images), figure=fig.name,
                                  width=FLAGS.width, epochs=FLAGS.epochs)
    notes = [f"![one image per class]({fig.name})",
             "Columns of the figure are the classes in label order; the first row is the mean "
             "training image of each class (a reference, not an attack). seconds_per_class: "
             "one forward pass per class for the trained inverters (train_seconds is their "
             "one-off training, 0 when reused from the cache), the whole optimisation divided "
             "by the number of classes (all classes optimised in one batch) for Fredrikson."]
    return report.publish(rows, out, columns=cols, extra=extra, notes=notes,
                          title=f"Training-class inference: {FLAGS.dataset}",
                          figures=[fig.name])


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
