"""Training-class inference: a representative image per class, three ways.

- truncation: G trained black-box on auxiliary predictions truncated to `k` (default 1: only
  the top confidence), fed a one-hot-like vector per class (one forward pass);
- previous: G trained on full vectors, fed the same vector;
- identity: the truncation inverter trained identity-consistent through the attacker's own
  surrogate of the target (`tfminv.attacks.identity`; black-box, no query beyond the auxiliary
  set), fed the same vector; not in the default comparison (about 4x a truncation inverter);
- aux_best: no inverter: per class, the auxiliary image whose top-k answer (already queried)
  gives the class its highest score, the public face the target reads most as that class (the
  mean of the `match_n` highest; the mean auxiliary image where no auxiliary answer releases
  the class: `aux_found`);
- aux_select: aux_best's `aux_candidates` best-scored images per class re-ranked by the
  target's mean released score on fixed views of each (`tfminv.attacks.views`; 7 counted
  queries per candidate), the `match_n` best kept;
- identity_aux: the identity inverter's image of that auxiliary answer, refined through the
  surrogate toward the class vector (`refine_*` settings; the class vector's own code where no
  auxiliary answer releases the class); no query beyond the auxiliary set;
- fredrikson: Fredrikson et al.'s optimisation on the input with the target's gradients
  (white-box), with Gaussian denoising + sharpening of the result (raw result also scored).
Scores: top-1/top-5 of the independent evaluation classifier, the target's confidence in the
class, MSE to the class's mean training image, and time per class.
"""

from __future__ import annotations

from typing import ClassVar

import dataclasses
import time

import numpy as np

from tfminv.attacks import identity as _identity
from tfminv.attacks import views
from tfminv.attacks.inversion import IDENTITY_METHODS
from tfminv.errors import ConfigError
from tfminv.scenarios import base
from tfminv.settings import setting

#: class inference only: start from the public face the target scores highest for the class
#: of those, the ones whose image is the public photo itself (or the mean of a few): no inverter
PHOTO_METHODS = ("aux_best", "aux_select")
AUX_METHODS = (*PHOTO_METHODS, "identity_aux")
METHODS = ("truncation", "previous", *IDENTITY_METHODS, *AUX_METHODS, "fredrikson",
           "fredrikson_meanaux")
#: what a run compares unless told: the paper's comparison (no 'identity')
DEFAULT_METHODS = ("truncation", "previous", "fredrikson", "fredrikson_meanaux")
FIGURE_CLASSES = 20  # columns of the figure (the first attacked classes)
COLUMNS = ["dataset", "method", "attack_acc", "attack_acc_top5", "eval_acc", "nn_acc",
           "nn_acc_top5", "knn_dist", "target_confidence", "mse_to_class_mean",
           "seconds_per_class", "train_seconds", "mean_steps", "access", "k", "n_classes",
           "n_attacked"]


@dataclasses.dataclass
class ClassInferenceConfig(_identity.IdentitySettings, base.ScenarioConfig):
    """k: truncation of the inverters' input; confidence: of the class in the one-hot-like
    vector; methods: a subset of METHODS (default DEFAULT_METHODS); mia_*:
    `tfminv.attacks.fredrikson.FredriksonConfig`; identity_weight ... surrogate_epochs: the
    'identity' method's settings (the `tfminv.attacks.identity.IdentitySettings` base)."""

    reports_judge2: ClassVar[bool] = True

    figure_n: int = setting(10, "not used: the figure shows one image per attacked class (at "
                            "most FIGURE_CLASSES)", flag=False)
    k: int = setting(1, "truncation of the inverters' input (paper: keep the top one)",
                     minimum=1)
    confidence: float = setting(1.0, "confidence of the class in the one-hot-like vector")
    methods: tuple = setting(DEFAULT_METHODS, "methods to compare (fredrikson_meanaux: the "
                             "optimisation started from the mean auxiliary image instead of "
                             "black; identity: the identity-consistent inverter; aux_best: the "
                             "auxiliary image the target scores highest for the class; "
                             "aux_select: the same re-ranked by the target's answers on "
                             "views of the candidates (counted queries); identity_aux: "
                             "that image's code refined through the surrogate)",
                             flag_type="str_list", choices=METHODS)
    mia_steps: int = setting(1000, "Fredrikson: most gradient steps per class", minimum=1)
    mia_lr: float = setting(0.1, "Fredrikson: step size")
    mia_patience: int = setting(100, "Fredrikson: stop a class after this many steps without "
                                "improvement", minimum=1)
    mia_objective: str = setting("logprob", "Fredrikson cost: -log p_c or 1 - p_c",
                                 choices=("logprob", "prob"))
    mia_process: str = setting("denoise+sharpen", "Fredrikson post-processing",
                               choices=("none", "denoise", "sharpen", "denoise+sharpen"))
    mia_process_every: int = setting(0, "also post-process every this many steps (0: only the "
                                     "result)", minimum=0)
    n_classes_sample: int = setting(0, "attack a seeded sample of this many classes (0: all)",
                                    minimum=0)
    # 14 x 7 views = 98 queries per class: within the 100 per victim of the query budget
    aux_candidates: int = setting(14, "aux_select method: per class, this many auxiliary "
                                  "images the target reads most as the class are re-ranked by "
                                  "its mean released score over 7 fixed views of each (mirror, "
                                  "shifts, zooms: 7 counted queries per image); the match_n "
                                  "best are kept", minimum=1)

    def __post_init__(self):
        super().__post_init__()
        # before any training: the images kept per class are chosen among the candidates
        if "aux_select" in self.methods and self.aux_candidates < self.match_n:
            raise ConfigError(f"--aux_candidates={self.aux_candidates}: expected at least "
                              f"--match_n={self.match_n} (aux_select keeps the match_n best "
                              "of the candidates)")


AUX_NOTE = ("'aux_best' = per class, the auxiliary image whose top-k answer (already queried) "
            "gives the class its highest score: a real public face, another person, that the "
            "target reads most as the class (with match_n > 1 the mean of the match_n "
            "highest-scoring images that release the class); 'identity_aux' = the identity "
            "inverter's image of that answer refined through the surrogate toward the class "
            "vector. aux_found: the share of attacked classes that some auxiliary answer "
            "releases (the others start from the mean auxiliary image / the class vector's own "
            "code).")

AUX_SELECT_NOTE = ("'aux_select' = aux_best's aux_candidates highest-scoring images per class "
                   "re-ranked by the target's released score for the class averaged over the "
                   "image and 7 fixed views of it (mirror, shifts of 5% of the side, zooms of "
                   "1.11 and 1.25; `tfminv.attacks.views`), the match_n best kept: "
                   "queries_per_class counted queries (7 per candidate that releases the "
                   "class); seconds_per_class includes them.")


def run_class_inference(config: ClassInferenceConfig) -> base.ScenarioResult:
    """One row per method (Fredrikson: processed and raw); figure: the class means, then one
    image per class for each method."""
    from tfminv import metrics
    from tfminv.attacks import class_inference as ci
    from tfminv.attacks.fredrikson import FredriksonConfig, invert_classes
    from tfminv.attacks.core import ATTACK_TIME, reconstruct
    from tfminv.attacks.inversion import train_inverter

    t_start = time.perf_counter()
    bad = [m for m in config.methods if m not in METHODS]
    if bad or not config.methods:
        raise ConfigError(f"--methods={','.join(config.methods)}: expected a subset of "
                          f"{list(METHODS)}")
    mia_cfg = FredriksonConfig(steps=config.mia_steps, learning_rate=config.mia_lr,
                               patience=config.mia_patience, objective=config.mia_objective,
                               process=config.mia_process, process_every=config.mia_process_every)
    inverters = [mt for mt in config.methods
                 if not mt.startswith("fredrikson") and mt not in PHOTO_METHODS]
    # one identity inverter and its surrogate serve every identity method
    identity_methods = {*IDENTITY_METHODS, "identity_aux"}
    n_identity = len(identity_methods & set(inverters))
    s = base.prepare(config, n_inverters=len(inverters) - n_identity + 3 * (n_identity > 0))
    m = s.num_outputs
    if not 1 <= config.k <= m:
        raise ConfigError(f"--k={config.k}: expected 1 to {m}")
    classes = np.arange(m)
    if 0 < config.n_classes_sample < m:
        classes = np.sort(np.random.default_rng(config.seed).choice(
            m, config.n_classes_sample, replace=False))
    means = ci.class_means(s.train_set.images, s.train_set.labels, classes)
    target = base.target_model(s)
    tr_preds, tr_images, val, selection = base.selection_data(s)
    row0 = {"dataset": config.dataset, "k": config.k, "n_classes": m,
            "n_attacked": int(len(classes)), **base.judge_fields(s)}
    score_kw = dict(eval_model=s.eval_model, target_model=target, means=means, judge=s.judge)
    rows, fig_rows = [], [("class mean (train)", means)]
    if set(AUX_METHODS) & set(config.methods):
        if not isinstance(tr_images, np.ndarray):
            raise ConfigError(f"--methods={','.join(config.methods)}: aux_best and "
                              "identity_aux pick auxiliary images by index and need the "
                              "auxiliary set in memory, not streamed")
        t = time.perf_counter()
        aux_picks = ci.top_auxiliary(tr_preds, classes, config.k, int(config.match_n))
        aux_pick = aux_picks[:, 0]
        aux_found = round(float(np.mean(aux_pick >= 0)), 4)
        aux_seconds = (time.perf_counter() - t) / len(classes)
    for method in config.methods:
        if method in PHOTO_METHODS:  # real public faces: the mean one where
            picks, facts, per_class = aux_picks, {}, aux_seconds  # none releases c
            if method == "aux_select":  # the candidates re-ranked by the target's answers
                t = time.perf_counter()  # on views of them (counted queries)
                picks, sent = views.rerank_for_classes(
                    tr_preds, tr_images, classes, k=config.k, n=int(config.match_n),
                    candidates=int(config.aux_candidates), query=base.target_query(s))
                per_class = (time.perf_counter() - t) / len(classes)
                facts = {"aux_candidates": int(config.aux_candidates),
                         "queries_per_class": round(sent / len(classes), 1)}
            images = ci.mean_of_picks(tr_images, picks, metrics.mean_image(base.aux_images(s)))
            score = ci.score_class_images(images, classes, **score_kw)
            rows.append({**row0, "method": method, **score, "aux_found": aux_found,
                         "match_n": int(config.match_n), **facts,
                         "seconds_per_class": per_class, "train_seconds": 0.0,
                         "access": "black-box (predictions)", "mean_steps": 0.0})
            fig_rows.append((method, images))
            continue
        if method.startswith("fredrikson"):
            start = (metrics.mean_image(base.aux_images(s)) if method == "fredrikson_meanaux"
                     else None)
            res = invert_classes(target, classes, s.train_set.images.shape[1:], mia_cfg,
                                 init_image=start)
            mname = "fredrikson" + (" from mean aux" if start is not None else "")
            for label, images in ((f"{mname} ({config.mia_process})", res.images),
                                  (f"{mname} (raw)", res.raw_images)):
                score = ci.score_class_images(images, classes, **score_kw)
                rows.append({**row0, "method": label, **score,
                             "seconds_per_class": res.seconds_per_class,
                             "train_seconds": 0.0, "access": "white-box (gradients)",
                             "mean_steps": float(res.steps.mean())})
                fig_rows.append((label, images))
            continue
        t = time.perf_counter()
        g = train_inverter(tr_preds, tr_images, k=config.k,
                           method="identity" if method == "identity_aux" else method,
                           config=config.train_config(), workdir=base.inverter_workdir(s),
                           val=val, width=config.width, identity=config)
        train_seconds = time.perf_counter() - t
        images, per_class = ci.infer_classes(g, m, classes, config.confidence)
        facts = {}
        if method in ATTACK_TIME:  # the class vectors' images refined through S (and
            # for identity_select the target asked which refinement it finds closest)
            vectors = ci.class_vectors(m, classes, config.confidence)
            images, facts = reconstruct(g, vectors, k=config.k, method=method, identity=config,
                                        query=base.target_query(s))
            per_class += facts["refine_seconds"] / len(classes)
        elif method == "identity_aux":  # from the best auxiliary answer's code toward c
            vectors = ci.class_vectors(m, classes, config.confidence)
            start = np.where((aux_pick >= 0)[:, None], tr_preds[np.maximum(aux_pick, 0)],
                             vectors)
            images, facts = reconstruct(g, vectors, k=config.k, method="identity_refine",
                                        identity=config, start=start)
            facts["aux_found"] = aux_found
            per_class += facts["refine_seconds"] / len(classes) + aux_seconds
        score = ci.score_class_images(images, classes, **score_kw)
        sur = getattr(g, "surrogate", None)
        if sur is not None:  # the identity methods: the surrogate's agreement and KL
            score.update(sur.fields(), **facts, surrogate_kl=_identity.identity_kl(
                sur.model, g, ci.class_vectors(m, classes, config.confidence), config.k,
                images))
        rows.append({**row0, "method": method, **score, "seconds_per_class": per_class,
                     "train_seconds": round(train_seconds, 1),
                     "access": "black-box (predictions)", "mean_steps": 1.0})
        fig_rows.append((method, images))
    name = f"class_inference_{s.allocation.name}"
    fig = base.Figure(f"{name}.png", [(label, imgs[:FIGURE_CLASSES]) for label, imgs in fig_rows],
                      label_width=230)
    extra = base.setup_extra(s, t_start, fredrikson=vars(mia_cfg), selection=selection,
                             n_aux=len(tr_images), figure=fig.filename, width=config.width,
                             epochs=config.epochs)
    notes = [f"![one image per class]({fig.filename})",
             f"Columns of the figure are the (first {FIGURE_CLASSES}) attacked classes in label "
             "order; the first row is the mean "
             "training image of each class (a reference, not an attack). seconds_per_class: "
             "one forward pass per class for the trained inverters (train_seconds is their "
             "one-off training, 0 when reused from the cache), the whole optimisation divided "
             "by the number of classes (all classes optimised in one batch) for Fredrikson."]
    columns = COLUMNS + base.judge2_columns(s, COLUMNS)
    if s.eval2_info is not None:
        notes.append(base.JUDGE2_NOTE)
    if set(AUX_METHODS) & set(config.methods):
        columns += ["aux_found", "match_n"]
        notes.append(AUX_NOTE)
    if "aux_select" in config.methods:
        columns += ["aux_candidates", "queries_per_class"]
        notes.append(AUX_SELECT_NOTE)
    if identity_methods & set(config.methods):
        columns += base.IDENTITY_COLUMNS
        extra["identity"] = _identity.options_of(config).report()
        notes.append(base.IDENTITY_NOTE)
    return base.ScenarioResult(name, f"Training-class inference: {config.dataset}", rows,
                               columns, extra, notes, [fig])
