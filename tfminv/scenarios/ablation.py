"""What each term of the identity method buys: one k, one row per combination of terms.

    run_ablation(AblationConfig(dataset="facescrub", k=3, feature_weight=0.01,
                                realism_weight=1.0))

Each variant names the terms of `tfminv.attacks.identity`'s loss it keeps beside pixel MSE:
'mse' (none: the truncation inverter itself), 'kl' (the surrogate's KL on the released
entries, `identity_weight`), 'feature' (the surrogate's penultimate features,
`feature_weight`), 'realism' (the image prior's residual, `realism_weight`), joined by '+'
('kl+realism'). A kept term takes the config's weight, a dropped one 0; a variant that keeps a
term whose weight is 0 is a ConfigError naming the flag (it would train the variant without
it under its name). Every variant trains on the same auxiliary rows against the same cached
target, surrogate and judges, so the rows differ by their terms only.

Beside the judges' scores each row carries `prior_residual`: the mean ||x - P(x)||^2 of its
reconstructions under the attacker's image prior P (`tfminv.attacks.realism`; trained once on
the auxiliary images, whichever variants run), so what the realism term changes is measured on
every row, and the real victims' row gives the value of real faces.
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

from tfminv.attacks import identity as _identity
from tfminv.errors import ConfigError
from tfminv.scenarios import base
from tfminv.settings import setting

#: term -> the setting holding its weight
TERMS = {"kl": "identity_weight", "feature": "feature_weight", "realism": "realism_weight"}
DEFAULT_VARIANTS = ("mse", "kl", "kl+feature", "kl+realism", "kl+feature+realism")

COLUMNS = ["dataset", "k", "variant", "identity_weight", "feature_weight", "realism_weight",
           "mse", "ssim", "attack_acc", "attack_acc_top5", "nn_acc", "nn_acc_top5", "knn_dist",
           "prior_residual", "surrogate_kl", "surrogate_top1_agreement", "eval_acc",
           "n_victims", "train_seconds"]


def variant_terms(variant: str) -> tuple[str, ...]:
    """The terms of a variant name ('mse' -> (), 'kl+realism' -> ('kl', 'realism')); an unknown
    or repeated term is a ConfigError naming the variant and the known terms."""
    v = str(variant).strip()
    if v == "mse":
        return ()
    terms = tuple(t.strip() for t in v.split("+"))
    bad = [t for t in terms if t not in TERMS]
    if not v or bad or len(set(terms)) != len(terms):
        raise ConfigError(f"--variants: {variant!r} is not a variant; expected 'mse' or terms "
                          f"of {sorted(TERMS)} joined by '+' (each once), e.g. 'kl+realism'")
    return terms


@dataclasses.dataclass
class AblationConfig(_identity.IdentitySettings, base.ScenarioConfig):
    """k: the released top-k size; variants: the term combinations to train (module
    docstring); identity_weight / feature_weight / realism_weight: the weight each kept term
    takes (the `tfminv.attacks.identity.IdentitySettings` base)."""

    reports_judge2: ClassVar[bool] = True

    k: int = setting(10, "size of the released top-k prediction", minimum=1)
    variants: tuple = setting(DEFAULT_VARIANTS, "term combinations to train: 'mse' or terms of "
                              "kl, feature, realism joined by '+'", flag_type="str_list")

    def __post_init__(self):
        super().__post_init__()
        if not self.variants:
            raise ConfigError("--variants: expected at least one variant")
        for v in self.variants:
            for t in variant_terms(v):
                if not getattr(self, TERMS[t]) > 0:
                    raise ConfigError(f"--variants={v}: keeps the {t!r} term, but "
                                      f"--{TERMS[t]}={getattr(self, TERMS[t])}; give it a "
                                      "weight > 0 or drop the term")

    def preflight(self):
        alloc = super().preflight()
        if not self.target and self.k > alloc.num_classes:
            raise ConfigError(f"--k={self.k}: k must be at most the {alloc.num_classes} "
                              f"classes of --dataset={self.dataset}")
        return alloc


def weights_of(config: AblationConfig, variant: str) -> dict:
    """The three weights a variant trains with: the config's for its terms, 0 for the rest."""
    kept = variant_terms(variant)
    return {name: float(getattr(config, name)) if t in kept else 0.0 for t, name in TERMS.items()}


def run_ablation(config: AblationConfig) -> base.ScenarioResult:
    """Rows (one per variant, then the references at k = 0): the judges' scores, MSE/SSIM,
    prior_residual, the surrogate's KL and agreement, train_seconds; figure: ground truth, then
    one row per variant."""
    import numpy as np

    from tfminv.attacks.realism import prior_residual, train_prior
    from tfminv.scenarios.truncation import reference_rows

    t_start = time.perf_counter()
    alloc = config.preflight()
    k = int(config.k)
    s = base.prepare(config, n_inverters=2 * len(config.variants) + 1)
    if k > s.num_outputs:
        raise ConfigError(f"--k={k}: k must be at most the target's {s.num_outputs} classes")
    tr_preds, tr_images, val, selection = base.selection_data(s)
    if not isinstance(tr_images, np.ndarray):
        raise ConfigError("--stream_aux: the identity method's variants train on in-memory "
                          "auxiliary images; run the ablation without --stream_aux")
    t = time.perf_counter()
    prior = train_prior(tr_images, config=config.train_config(), workdir=base.inverter_workdir(s),
                        width=config.width, val=val[1], epochs=int(config.prior_epochs))
    timings = {"prior": round(time.perf_counter() - t, 1)}
    row0 = dict(dataset=config.dataset, k=k, width=config.width, epochs=config.epochs,
                selection=selection, n_aux=len(tr_images), n_victims=len(s.victims))
    pick = base.figure_victims(s.victims.labels, config.figure_n)
    fig_rows = [("ground truth", s.victims.images[pick])]
    rows = []
    for variant in config.variants:
        weights = weights_of(config, variant)
        options = dataclasses.replace(_identity.options_of(config), **weights)
        method = "identity" if variant_terms(variant) else "truncation"
        t = time.perf_counter()
        attack = base.blackbox_attack(s, tr_preds, tr_images, val, k=k, method=method,
                                      identity=options)
        timings[variant] = round(time.perf_counter() - t, 1)
        rows.append({**row0, "variant": variant, **weights, "method": method, **attack.scores,
                     "prior_residual": prior_residual(prior, attack.reconstructions),
                     "train_seconds": base.session_seconds(attack), **base.judge_fields(s)})
        fig_rows.append((variant, attack.reconstructions[pick]))
    refs = reference_rows(s, {**row0, "k": 0})
    guesses = {"reference: real_victims": s.victims.images}
    for r in refs:
        r["variant"] = r["method"]
        if r["method"] in guesses:
            r["prior_residual"] = prior_residual(prior, guesses[r["method"]])
    rows += refs
    name = f"ablation_{alloc.name}"
    fig = base.Figure(f"{name}.png", fig_rows)
    extra = base.setup_extra(s, t_start, identity=_identity.options_of(config).report(),
                             prior=str(prior.run_dir), timings=timings, figure=fig.filename)
    columns = COLUMNS + base.judge2_columns(s, COLUMNS)
    notes = [f"![reconstructions]({fig.filename})",
             "variant = the terms kept beside pixel MSE ('mse': the truncation inverter; 'kl': "
             "the surrogate's KL on the released entries; 'feature': its penultimate features; "
             "'realism': the image prior's residual), each at the weight in its column. "
             "prior_residual = mean per-pixel ||x - P(x)||^2 of the row's images under the "
             "attacker's image prior P (a denoising autoencoder of the auxiliary images, "
             "trained once; lower = more like the auxiliary faces); the real victims' row is the "
             "value of real faces. attack_acc / attack_acc_top5 = the independent judge's "
             "top-1 / top-5 on the reconstructions; nn_acc = the victim's identity is the "
             "nearest in the judge's features; train_seconds = wall time of the training "
             "session that produced the variant's (cached) inverter."]
    if s.eval2_info is not None:
        notes.append(base.JUDGE2_NOTE)
    return base.ScenarioResult(name, f"Identity method ablation: {config.dataset}, k = {k}",
                               rows, columns, extra, notes, [fig])
