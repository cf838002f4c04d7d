"""Truncation-aligned inversion vs the previous approach, for one or more k.

    python -m tfminv.experiments.truncation --dataset=mnist --k=1,2,3,5 --width=0.25 --epochs=5

For each k: train G with Truncation(k) inside ('truncation') and reuse the G trained on full
vectors ('previous'), invert the victims' top-k predictions, and write results.json,
results.md and truncation_<dataset>.png (ground truth, then one row per k and method) to
--out_dir. Trained classifiers, predictions and inverters are cached and reused.
"""

from __future__ import annotations

import sys
import time

from absl import flags

from tfminv.experiments import common

flags.DEFINE_enum("dataset", "facescrub", ["facescrub", "mnist"], "allocation to attack")
flags.DEFINE_string("k", "10", "size of the released top-k prediction: one value or a list")
flags.DEFINE_list("methods", ["truncation", "previous"], "methods to compare")
flags.DEFINE_integer("figure_n", 10, "victims shown in the figure")
FLAGS = flags.FLAGS


def run(argv):
    from tfminv import metrics, report
    from tfminv.attacks.inversion import METHODS, evaluate, train_inverter
    from tfminv.errors import ConfigError
    from tfminv.figures import image_grid
    from tfminv.training import load_run

    t_start = time.perf_counter()
    ks = common.parse_ints(FLAGS.k)
    bad = [m for m in FLAGS.methods if m not in METHODS]
    if bad:
        raise ConfigError(f"--methods: unknown {bad}; expected a subset of {list(METHODS)}")
    from tfminv.data import allocations

    n_classes = allocations.get(FLAGS.dataset).num_classes
    if not FLAGS.target and max(ks) > n_classes:
        raise ConfigError(f"--k={FLAGS.k}: k must be at most the {n_classes} classes of "
                          f"--dataset={FLAGS.dataset}")
    s = common.prepare(FLAGS.dataset)
    m = s.aux_preds.shape[1]
    if max(ks) > m:
        raise ConfigError(f"--k={FLAGS.k}: k must be at most the target's {m} classes")
    tr_preds, tr_images, val, selection = common.selection_data(s)
    cfg = common.train_config()
    base = dict(dataset=FLAGS.dataset, aux=s.aux_name, width=FLAGS.width, epochs=FLAGS.epochs,
                selection=selection, n_aux=len(tr_images), n_victims=len(s.victims))
    rows = []
    b = metrics.baselines(s.victims.images, s.aux_set.images, train_images=s.train_set.images,
                          train_labels=s.train_set.labels, victim_labels=s.victims.labels)
    pick = common.figure_victims(s.victims.labels, FLAGS.figure_n)
    fig_rows = [("ground truth", s.victims.images[pick])]
    timings = {}
    for k in ks:
        for method in FLAGS.methods:
            t = time.perf_counter()
            g = train_inverter(tr_preds, tr_images, k=k, method=method, config=cfg,
                               workdir=common.inverter_workdir(s), val=val, width=FLAGS.width)
            res, recon = evaluate(g, s.victim_preds, s.victims.images, s.victims.labels,
                                  s.eval_model)
            timings[f"{method}_k{k}"] = round(time.perf_counter() - t, 1)
            train_s = load_run(g.run_dir).get("train_seconds")
            rows.append({**base, "k": k, "method": method, **res, "train_seconds": train_s,
                         "mse_mean_aux": b["mean_aux"], "mse_zeros": b["zeros"],
                         "mse_class_mean_oracle": b["class_mean_oracle"]})
            fig_rows.append((f"{method} k={k}", recon[pick]))
    out = common.out_dir(f"truncation_{FLAGS.dataset}")
    fig = out / f"truncation_{FLAGS.dataset}.png"
    image_grid(fig_rows, fig)
    cols = ["dataset", "k", "method", "mse", "psnr", "ssim", "attack_acc", "attack_acc_top5",
            "mse_mean_aux", "mse_class_mean_oracle", "mse_zeros", "selection", "width",
            "epochs", "n_aux", "n_victims", "train_seconds"]
    extra = {"command": common.command_line("tfminv.experiments.truncation"),
             "target": s.target_info, "eval_classifier": s.eval_info,
             "baselines_mse": b, "oracle_queries": s.oracle.num_queries,
             "seconds": {**{k: round(v, 1) for k, v in s.seconds.items()}, **timings,
                         "total": round(time.perf_counter() - t_start, 1)},
             "figure": fig.name}
    notes = [f"![reconstructions]({fig.name})",
             "mse is per-pixel MSE on the victims; mse_mean_aux = the mean auxiliary image "
             "(free for any attacker), mse_class_mean_oracle = per-class mean of the target's "
             "training images (a floor a real attacker cannot compute), mse_zeros = black image. "
             "attack_acc = top-1 of the independent evaluation classifier on reconstructions"
             + (f" (top-5 is 1.0 by construction with {m} classes)." if m <= 5 else ".")
             + " 'previous' = inverter trained on full vectors (k = m) and fed the top-k "
             "vector; at k = m both methods are the same model. train_seconds = wall time of "
             "the training session that produced the (cached) inverter."]
    return report.publish(rows, out, columns=cols, extra=extra, notes=notes,
                          title=f"Truncation vs previous: {FLAGS.dataset}",
                          figures=[fig.name])


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
