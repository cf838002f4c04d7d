"""Aligning the auxiliary set with the target's data: frontal faces vs all of them.

OpenCV's frontal and profile Haar cascades (`tfminv.attacks.alignment`) label every auxiliary
face; G is trained on (a) the whole auxiliary training part, (b) its frontal faces, and (c) a
random subset of the same size as (b), so a size effect is not mistaken for an alignment effect.
All three use the same held-out auxiliary images for model selection and invert the same
victims. The orientation counts of the auxiliary set and of the target's training data go to
run.json.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tfminv.errors import ConfigError
from tfminv.scenarios import base
from tfminv.settings import setting

COLUMNS = ["dataset", "aux_subset", "k", "mse", "psnr", "ssim", "attack_acc", "attack_acc_top5",
           "mse_mean_aux", "mse_class_mean", "n_aux", "n_victims", "width", "epochs",
           "train_seconds"]


@dataclasses.dataclass
class AlignmentConfig(base.ScenarioConfig):
    """k: released top-k (0: full vector); the detector settings of
    `tfminv.attacks.alignment.DetectorConfig`; random_control: also train on a random subset of
    the frontal subset's size."""

    dataset: str = setting("facescrub", "allocation to attack (face images): an allocation name "
                           "(built-in: facescrub, mnist, ...) or a JSON allocation file")
    k: int = setting(0, "size of the released top-k prediction (0: the full vector)", minimum=0)
    upsample: int = setting(1, "enlarge crops by this factor before detection")
    min_neighbors: int = setting(8, "frontal cascade minNeighbors (higher: stricter)")
    profile_min_neighbors: int = setting(3, "profile cascade minNeighbors (lower: vetoes more "
                                         "faces)")
    min_face: float = setting(0.4, "smallest accepted face side, as a share of the crop side")
    random_control: bool = setting(True, "also train on a random subset of the frontal "
                                   "subset's size")


def run_alignment(config: AlignmentConfig) -> base.ScenarioResult:
    """Rows: all / frontal / random_same_size; figures: reconstructions and what the detector
    kept and rejected."""
    from tfminv.attacks.alignment import (FRONTAL, DetectorConfig, face_orientation,
                                          orientation_counts)
    from tfminv.data.splits import holdout

    t_start = time.perf_counter()
    det = DetectorConfig(upsample=config.upsample, min_neighbors=config.min_neighbors,
                         profile_min_neighbors=config.profile_min_neighbors,
                         min_face=config.min_face)
    base.require_in_memory_aux(config, "alignment", "runs a face detector over every "
                               "auxiliary image (in memory)")
    s = base.prepare(config)
    m = s.num_outputs
    k = base.full_or_k(config.k, m)
    t = time.perf_counter()
    aux_orient = face_orientation(s.aux_set.images, det)
    target_orient = face_orientation(s.train_set.images, det)
    detect_seconds = time.perf_counter() - t
    tr_idx, val_idx = holdout(len(s.aux_set), config.aux_val_fraction, config.seed)
    val = (s.aux_preds[val_idx], s.aux_set.images[val_idx])
    frontal = tr_idx[aux_orient[tr_idx] == FRONTAL]
    if len(frontal) == 0:
        raise ConfigError("no frontal face in the auxiliary set: lower --min_neighbors or "
                          "raise --upsample")
    subsets = [("all", tr_idx), ("frontal", frontal)]
    if config.random_control:
        rng = np.random.default_rng(config.seed + 7)
        subsets.append(("random_same_size", rng.choice(tr_idx, len(frontal), replace=False)))
    pick = base.figure_victims(s.victims.labels, config.figure_n)
    fig_rows = [("ground truth", s.victims.images[pick])]
    rows = []
    # one reference for every row: the mean of the whole training part ('all'), which the
    # frontal and random attackers are drawn from
    refs = base.reference_mses(s, s.aux_set.images[tr_idx])
    for subset, idx in subsets:
        attack = base.blackbox_attack(s, s.aux_preds[idx], s.aux_set.images[idx], val, k=k)
        fig_rows.append((f"aux {subset}", attack.reconstructions[pick]))
        rows.append({"dataset": config.dataset, "aux_subset": subset, "k": k,
                     **base.attack_row(attack), **refs,
                     "n_aux": len(idx), "n_victims": len(s.victims), "width": config.width,
                     "epochs": config.epochs, "selection": "aux_val (same for all rows)"})
    name = f"alignment_{s.allocation.name}"
    fig = base.Figure(f"{name}.png", fig_rows)
    rej = tr_idx[aux_orient[tr_idx] != FRONTAL]
    sample = base.Figure("aux_frontal_vs_rejected.png",
                         [("kept (frontal)", s.aux_set.images[frontal[:12]]),
                          ("rejected", s.aux_set.images[rej[:12]])])
    counts = {"aux_" + k_: v for k_, v in orientation_counts(aux_orient).items()}
    counts.update({"target_train_" + k_: v for k_, v in orientation_counts(target_orient).items()})
    extra = base.setup_extra(s, t_start, detector=vars(det), orientation_counts=counts,
                             detect_seconds=round(detect_seconds, 1),
                             figures=[fig.filename, sample.filename])
    notes = [f"![reconstructions]({fig.filename})", f"![detector output]({sample.filename})",
             f"Orientation counts (OpenCV cascades): auxiliary set {counts['aux_frontal']} "
             f"frontal / {counts['aux_profile']} profile / {counts['aux_none']} none of "
             f"{len(aux_orient)}; target training data {counts['target_train_frontal']} / "
             f"{counts['target_train_profile']} / {counts['target_train_none']} of "
             f"{len(target_orient)}."]
    return base.ScenarioResult(name, f"Auxiliary set alignment (frontal faces): {config.dataset}",
                               rows, COLUMNS, extra, notes, [fig, sample])
