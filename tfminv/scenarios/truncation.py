"""Truncation-aligned inversion vs the previous approach, for one or more k.

For each k: train G with Truncation(k) inside ('truncation') and reuse the G trained on full
vectors ('previous'), invert the victims' top-k predictions, and score both against the same
references. Trained classifiers, predictions and inverters are cached and reused.
"""

from __future__ import annotations

from typing import ClassVar

import dataclasses
import time

from tfminv.attacks import identity as _identity
from tfminv.attacks.inversion import (ATTACK_METHODS, DEFAULT_METHODS, IDENTITY_METHODS,
                                     RETRIEVAL_METHODS)
from tfminv.errors import ConfigError
from tfminv.oracles.base import query_counts
from tfminv.scenarios import base
from tfminv.settings import setting

COLUMNS = ["dataset", "k", "method", "mse", "psnr", "ssim", "attack_acc", "attack_acc_top5",
           "eval_acc", "nn_acc", "nn_acc_top5", "knn_dist", "mse_mean_aux",
           "mse_class_mean", "mse_zeros", "selection", "width", "epochs", "n_aux",
           "n_victims", "train_seconds"]

IDENTITY_COLUMNS, IDENTITY_NOTE = base.IDENTITY_COLUMNS, base.IDENTITY_NOTE  # one home: base


@dataclasses.dataclass
class TruncationConfig(_identity.IdentitySettings, base.ScenarioConfig):
    """k: the released top-k sizes to compare; methods: a subset of
    `tfminv.attacks.inversion.ATTACK_METHODS` (default: the paper's comparison, without
    'identity' and 'aux_match');
    identity_weight ... surrogate_epochs: the 'identity' method's settings (the
    `tfminv.attacks.identity.IdentitySettings` base)."""

    reports_judge2: ClassVar[bool] = True

    k: tuple = setting((10,), "size of the released top-k prediction: one value or a list",
                       flag_type="int_list", minimum=1)
    methods: tuple = setting(DEFAULT_METHODS, "methods to compare", flag_type="str_list",
                             choices=ATTACK_METHODS)

    def preflight(self):
        alloc = super().preflight()
        if not self.target and max(self.k) > alloc.num_classes:
            raise ConfigError(f"--k={','.join(map(str, self.k))}: k must be at most the "
                              f"{alloc.num_classes} classes of --dataset={self.dataset}")
        return alloc


def run_truncation(config: TruncationConfig) -> base.ScenarioResult:
    """Rows (one per k and method): mse, psnr, ssim, attack_acc(_top5), the reference MSEs,
    train_seconds (of the session that trained the cached inverter); figure: ground truth, then
    one row per k and method."""

    t_start = time.perf_counter()
    alloc = config.preflight()  # k >= 1, known methods (__post_init__), k <= the classes
    ks = [int(k) for k in config.k]
    k_text = ",".join(map(str, ks))
    n_classes = alloc.num_classes
    n_inv = len({k for k in ks if k < n_classes}) + 1 if "truncation" in config.methods else 1
    if set(IDENTITY_METHODS) & set(config.methods):  # an inverter and a surrogate per k
        n_inv += 2 * len(set(ks))
    s = base.prepare(config, n_inverters=n_inv)
    m = s.num_outputs
    if max(ks) > m:
        raise ConfigError(f"--k={k_text}: k must be at most the target's {m} classes")
    tr_preds, tr_images, val, selection = base.selection_data(s)
    row0 = dict(dataset=config.dataset, aux=s.aux_name, width=config.width, epochs=config.epochs,
                selection=selection, n_aux=len(tr_images), n_victims=len(s.victims))
    rows = []
    refs = base.reference_baselines(s)
    pick = base.figure_victims(s.victims.labels, config.figure_n)
    fig_rows = [("ground truth", s.victims.images[pick])]
    timings = {}
    for k in ks:
        for method in config.methods:
            t = time.perf_counter()
            attack = base.blackbox_attack(s, tr_preds, tr_images, val, k=k, method=method)
            timings[f"{method}_k{k}"] = round(time.perf_counter() - t, 1)
            rows.append({**row0, "k": k, "method": method, **attack.scores,
                         "train_seconds": base.session_seconds(attack), **base.judge_fields(s), **refs.mses()})
            fig_rows.append((f"{method} k={k}", attack.reconstructions[pick]))
    rows += reference_rows(s, row0, refs)
    name = f"truncation_{alloc.name}"
    fig = base.Figure(f"{name}.png", fig_rows)
    extra = {"target": s.target_info, "eval_classifier": s.eval_info,
             "baselines_mse": {**refs.mses(), "class_mean_from": refs.class_mean_from},
             **query_counts(s.oracle), **base.aux_extra(s),
             "seconds": base.seconds_since(t_start, s, **timings), "figure": fig.filename}
    notes = [f"![reconstructions]({fig.filename})",
             "mse is per-pixel MSE on the victims; mse_mean_aux = the mean of the auxiliary "
             "images the inverters train on (free for any attacker), mse_class_mean = per-class "
             "mean of the target's training images (a floor a real attacker cannot compute), "
             "mse_zeros = black image. "
             "attack_acc = top-1 of the independent evaluation classifier on reconstructions"
             + (f" (top-5 is 1.0 by construction with {m} classes)." if m <= 5 else ".")
             + " 'previous' = inverter trained on full vectors (k = m) and fed what is released "
             "(the top-k probabilities, zeros elsewhere, through its own preprocessing); "
             "'previous_logzero' = the same decoder fed trunc_k (zeros put in after the log "
             "transform); at k = m the methods are the same model. eval_acc = the evaluation "
             "classifier's own top-1 on real held-out images (the ceiling of attack_acc). "
             "nn_acc / nn_acc_top5 = the victim's identity is the nearest (among the 5 nearest) "
             "identity of the target's training images in the evaluation classifier's "
             "penultimate features; knn_dist = mean feature distance to the nearest training "
             "image of the victim's identity (lower = closer). Rows with k = 0 are references "
             "scored the same way: the real victim images, the mean auxiliary image, the "
             "per-class mean of the target's training images. train_seconds = wall time of "
             "the training session that produced the (cached) inverter."]
    columns = COLUMNS + base.judge2_columns(s, COLUMNS)
    if s.eval2_info is not None:
        extra["eval_classifier_2"] = s.eval2_info
        notes.append(base.JUDGE2_NOTE)
    if set(IDENTITY_METHODS) & set(config.methods):
        columns = columns + IDENTITY_COLUMNS
        extra["identity"] = _identity.options_of(config).report()
        notes.append(IDENTITY_NOTE)
    if set(RETRIEVAL_METHODS) & set(config.methods):
        columns = columns + ["match_n"]
        extra["match_n"] = int(config.match_n)
        notes.append(base.AUX_MATCH_NOTE)
    return base.ScenarioResult(name, f"Truncation vs previous: {config.dataset}", rows, columns,
                               extra, notes, [fig])


def reference_rows(setup, base_row: dict, refs=None) -> list[dict]:
    """Rows (k = 0) scoring the reference guesses (`base.reference_baselines`: the mean of the
    inverters' auxiliary training rows, the per-class mean of the target's training images) and
    the real victims with the same judge as the inversions."""
    import numpy as np

    from tfminv.attacks import core

    if setup.judge is None:
        return []
    refs = refs or base.reference_baselines(setup)
    v = setup.victims
    guesses = {"real_victims": v.images,
               "mean_aux": np.broadcast_to(refs.mean_aux_image, v.images.shape),
               "class_mean": refs.class_mean_images}
    return [{**base_row, "k": 0, "method": f"reference: {name}",
             **core.score(np.asarray(guess, np.float32), v.images, v.labels, setup.judge),
             **base.judge_fields(setup)} for name, guess in guesses.items()]
