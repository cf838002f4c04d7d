"""Inversion quality vs the auxiliary set's distribution: same, generic, distinct.

    python -m tfminv.experiments.auxiliary --dataset=mnist --width=0.25 --epochs=5

FaceScrub target: held-out FaceScrub / CelebA / CIFAR-10; MNIST target (digits 0-4): held-out
0-4 / digits 5-9 / CIFAR-10. For each set, train G (truncation form, --k, default the full
vector) on the target's predictions of that set and invert the same victims. Writes
results.json, results.md and auxiliary_<dataset>.png to --out_dir.
"""

from __future__ import annotations

import sys
import time

from absl import flags

from tfminv.experiments import common, scenario

flags.DEFINE_enum("dataset", "facescrub", ["facescrub", "mnist"], "allocation to attack")
flags.DEFINE_list("aux_sets", ["same", "generic", "distinct"], "auxiliary sets to compare")
flags.DEFINE_integer("k", 0, "size of the released top-k prediction (0: the full vector)")
flags.DEFINE_integer("figure_n", 10, "victims shown in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv import report
    from tfminv.data import allocations
    from tfminv.errors import ConfigError
    from tfminv.figures import image_grid

    t_start = time.perf_counter()
    alloc = allocations.get(FLAGS.dataset)
    bad = [a for a in FLAGS.aux_sets if a not in alloc.aux]
    if bad or not FLAGS.aux_sets:
        raise ConfigError(f"--aux_sets={','.join(FLAGS.aux_sets)}: expected names among "
                          f"{sorted(alloc.aux)}")
    if FLAGS.k < 0 or FLAGS.k > alloc.num_classes:
        raise ConfigError(f"--k={FLAGS.k}: expected 0 (full vector) to {alloc.num_classes}")
    k = FLAGS.k or alloc.num_classes
    rows, fig_rows, setups = [], [], {}
    for aux_name in FLAGS.aux_sets:
        s = common.prepare(FLAGS.dataset, aux_name)
        setups[aux_name] = s
        tr_preds, tr_images, val, selection = common.selection_data(s)
        res, recon, _ = scenario.blackbox_attack(s, tr_preds, tr_images, val, k=k)
        if not fig_rows:
            pick = common.figure_victims(s.victims.labels, FLAGS.figure_n)
            fig_rows.append(("ground truth", s.victims.images[pick]))
        fig_rows.append((f"aux {aux_name}", recon[pick]))
        rows.append({"dataset": FLAGS.dataset, "aux": aux_name, "aux_data": s.aux_set.name,
                     "k": k, **res, **scenario.reference_mses(s), "selection": selection,
                     "width": FLAGS.width, "epochs": FLAGS.epochs, "n_aux": len(tr_images),
                     "n_victims": len(s.victims)})
    out = common.out_dir(f"auxiliary_{FLAGS.dataset}")
    fig = out / f"auxiliary_{FLAGS.dataset}.png"
    image_grid(fig_rows, fig)
    cols = ["dataset", "aux", "aux_data", "k", "mse", "psnr", "ssim", "attack_acc",
            "attack_acc_top5", "mse_mean_aux", "mse_class_mean_oracle", "mse_zeros", "n_aux",
            "n_victims", "width", "epochs", "selection", "train_seconds"]
    first = setups[FLAGS.aux_sets[0]]
    extra = scenario.common_extra(first, argv, "auxiliary", t_start, figure=fig.name)
    notes = [f"![reconstructions per auxiliary set]({fig.name})",
             "mse_mean_aux is the mean image of *that row's* auxiliary set; "
             "mse_class_mean_oracle the per-class mean of the target's training images "
             "(unreachable for a real attacker)."]
    return report.publish(rows, out, columns=cols, extra=extra, notes=notes,
                          title=f"Auxiliary set distribution: {FLAGS.dataset}",
                          figures=[fig.name])


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
