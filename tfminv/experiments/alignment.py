"""Aligning the auxiliary set with the target's data: frontal CelebA faces vs all of them.

    python -m tfminv.experiments.alignment --dataset=facescrub --width=0.25 --epochs=5

OpenCV's frontal and profile Haar cascades label every auxiliary face; G is trained on (a) the
whole auxiliary training part, (b) its frontal faces, and (c) a random subset of the same size
as (b), so a size effect is not mistaken for an alignment effect. All three use the same
held-out auxiliary images for model selection and invert the same victims. The orientation
counts of the auxiliary set and of the target's training data go to run.json.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from absl import flags

from tfminv.experiments import common, scenario

flags.DEFINE_enum("dataset", "facescrub", ["facescrub"], "allocation to attack (faces only)")
flags.DEFINE_integer("k", 0, "size of the released top-k prediction (0: the full vector)")
flags.DEFINE_integer("upsample", 1, "enlarge crops by this factor before detection")
flags.DEFINE_integer("min_neighbors", 8, "frontal cascade minNeighbors (higher: stricter)")
flags.DEFINE_integer("profile_min_neighbors", 3, "profile cascade minNeighbors (lower: vetoes "
                     "more faces)")
flags.DEFINE_float("min_face", 0.4, "smallest accepted face side, as a share of the crop side")
flags.DEFINE_boolean("random_control", True, "also train on a random subset of the frontal "
                     "subset's size")
flags.DEFINE_integer("figure_n", 10, "victims shown in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv import report
    from tfminv.attacks.alignment import (FRONTAL, DetectorConfig, face_orientation,
                                          orientation_counts)
    from tfminv.errors import ConfigError
    from tfminv.figures import image_grid

    t_start = time.perf_counter()
    det = DetectorConfig(upsample=FLAGS.upsample, min_neighbors=FLAGS.min_neighbors,
                         profile_min_neighbors=FLAGS.profile_min_neighbors,
                         min_face=FLAGS.min_face)
    alloc_k = FLAGS.k
    s = common.prepare(FLAGS.dataset)
    m = s.aux_preds.shape[1]
    if alloc_k < 0 or alloc_k > m:
        raise ConfigError(f"--k={alloc_k}: expected 0 (full vector) to {m}")
    k = alloc_k or m
    t = time.perf_counter()
    aux_orient = face_orientation(s.aux_set.images, det)
    target_orient = face_orientation(s.train_set.images, det)
    detect_seconds = time.perf_counter() - t
    tr_idx, val_idx = scenario.holdout(len(s.aux_set))
    val = (s.aux_preds[val_idx], s.aux_set.images[val_idx])
    frontal = tr_idx[aux_orient[tr_idx] == FRONTAL]
    if len(frontal) == 0:
        raise ConfigError("no frontal face in the auxiliary set: lower --min_neighbors or "
                          "raise --upsample")
    subsets = [("all", tr_idx), ("frontal", frontal)]
    if FLAGS.random_control:
        rng = np.random.default_rng(FLAGS.seed + 7)
        subsets.append(("random_same_size", rng.choice(tr_idx, len(frontal), replace=False)))
    pick = common.figure_victims(s.victims.labels, FLAGS.figure_n)
    fig_rows = [("ground truth", s.victims.images[pick])]
    rows = []
    refs = scenario.reference_mses(s)
    for name, idx in subsets:
        res, recon, _ = scenario.blackbox_attack(s, s.aux_preds[idx], s.aux_set.images[idx], val,
                                                 k=k)
        fig_rows.append((f"aux {name}", recon[pick]))
        rows.append({"dataset": FLAGS.dataset, "aux_subset": name, "k": k, **res, **refs,
                     "n_aux": len(idx), "n_victims": len(s.victims), "width": FLAGS.width,
                     "epochs": FLAGS.epochs, "selection": "aux_val (same for all rows)"})
    out = common.out_dir(f"alignment_{FLAGS.dataset}")
    fig = out / f"alignment_{FLAGS.dataset}.png"
    image_grid(fig_rows, fig)
    # what the detector kept and rejected
    rej = tr_idx[aux_orient[tr_idx] != FRONTAL]
    sample = out / "aux_frontal_vs_rejected.png"
    image_grid([("kept (frontal)", s.aux_set.images[frontal[:12]]),
                ("rejected", s.aux_set.images[rej[:12]])], sample)
    counts = {"aux_" + k_: v for k_, v in orientation_counts(aux_orient).items()}
    counts.update({"target_train_" + k_: v for k_, v in orientation_counts(target_orient).items()})
    cols = ["dataset", "aux_subset", "k", "mse", "psnr", "ssim", "attack_acc", "attack_acc_top5",
            "mse_mean_aux", "mse_class_mean_oracle", "n_aux", "n_victims", "width", "epochs",
            "train_seconds"]
    extra = scenario.common_extra(s, argv, "alignment", t_start, detector=vars(det),
                                  orientation_counts=counts,
                                  detect_seconds=round(detect_seconds, 1),
                                  figures=[fig.name, sample.name])
    notes = [f"![reconstructions]({fig.name})", f"![detector output]({sample.name})",
             f"Orientation counts (OpenCV cascades): auxiliary set {counts['aux_frontal']} "
             f"frontal / {counts['aux_profile']} profile / {counts['aux_none']} none of "
             f"{len(aux_orient)}; target training data {counts['target_train_frontal']} / "
             f"{counts['target_train_profile']} / {counts['target_train_none']} of "
             f"{len(target_orient)}."]
    return report.publish(rows, out, columns=cols, extra=extra, notes=notes,
                          title=f"Auxiliary set alignment (frontal faces): {FLAGS.dataset}",
                          figures=[fig.name, sample.name])


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
