"""Inverting a face-attribute API that answers with named features (Rekognition-style).

The API is `tfminv.faceapi.local_api`: a CelebA-trained attribute + landmark model answering
in Amazon Rekognition's DetectFaces JSON format (a user with credentials can put the real
service behind the same adapter, `tfminv.faceapi.aws`). CelebA (seeded shuffle) is split into
the API's training part, the attacker's auxiliary part and held-out images. The attacker
queries the API on the auxiliary faces, maps each response to a feature vector
(`tfminv.faceapi.rekognition`; landmarks relative to the face box), standardises it with
auxiliary statistics and trains G from features to face, with and without the landmark
features. Victims: the victims of `dataset`'s allocation (FaceScrub faces: individuals unknown
to API and attacker) and held-out CelebA images (those whose identity also appears in the
auxiliary set are reported separately as 'known individual').
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tfminv.errors import ConfigError
from tfminv.oracles.base import query_counts
from tfminv.scenarios import base
from tfminv.settings import setting

FEATURE_SETS = ("all", "no_landmarks")
COLUMNS = ["features", "n_features", "victims", "mse", "psnr", "ssim", "attack_acc",
           "attack_acc_top5", "mse_mean_aux", "n_victims", "n_aux", "width", "epochs",
           "train_seconds"]
CELEBA_SEED = 666


@dataclasses.dataclass
class FaceAPIConfig(base.ScenarioConfig):
    """api_width / api_epochs (0: clf_epochs, else epochs) / max_api_train: the local API's
    model; api_split (a, b): CelebA fractions [0, a) API training, [a, b) the attacker's
    auxiliary set, [b, 1) held-out victims; feature_sets: a subset of FEATURE_SETS;
    eval_identity: score the allocation's victims with its evaluation classifier."""

    dataset: str = setting("facescrub", "allocation whose victims (and evaluation classifier) "
                           "the API attack is scored on besides held-out CelebA: an allocation "
                           "name (built-in: facescrub, mnist, ...) or a JSON allocation file")
    figure_n: int = setting(10, "victims shown per group in the figure", minimum=0)
    api_width: float = setting(0.25, "width multiplier of the local API's attribute model")
    api_epochs: int = setting(0, "local API training epochs (0: --clf_epochs, else --epochs)",
                              minimum=0)
    max_api_train: int = setting(0, "train the local API on at most this many CelebA images "
                                 "(0: all of its part)", minimum=0)
    api_split: tuple = setting((0.5, 0.9), "CelebA fractions: [0, a) API training, [a, b) "
                               "attacker's auxiliary set, [b, 1) held-out victims",
                               flag_type="float_list")
    feature_sets: tuple = setting(FEATURE_SETS, "feature sets to invert", flag_type="str_list",
                                  choices=FEATURE_SETS)
    eval_identity: bool = setting(True, "score FaceScrub reconstructions with the FaceScrub "
                                  "evaluation classifier (trained or reused like the other "
                                  "binaries')")

    def __post_init__(self):
        super().__post_init__()
        _split(self.api_split)


def _split(fractions):
    text = ",".join(map(str, fractions))
    try:
        a, b = (float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ConfigError(f"--api_split={text}: expected two fractions a,b") from None
    if not 0 < a < b < 1:
        raise ConfigError(f"--api_split={text}: expected 0 < a < b < 1")
    return a, b


def _limit(idx, n):
    return idx[:n] if n and n > 0 else idx


def run_faceapi(config: FaceAPIConfig) -> base.ScenarioResult:
    """One row per feature set and victim group; figure: each group's faces, then their
    reconstructions per feature set."""
    from tfminv.attacks import core
    from tfminv.attacks.predictions import query_cached
    from tfminv.data import allocations, load_split
    from tfminv.data.splits import holdout
    from tfminv.faceapi import local_api, rekognition

    t_start = time.perf_counter()
    base.require_in_memory_aux(config, "face-API", "maps every auxiliary response to "
                               "features with in-memory statistics")
    a, b = _split(config.api_split)
    bad = [f for f in config.feature_sets if f not in FEATURE_SETS]
    if bad or not config.feature_sets:
        raise ConfigError(f"--feature_sets={','.join(config.feature_sets)}: expected a subset "
                          f"of {list(FEATURE_SETS)}")
    fs_alloc = base.budgeted_allocation(config)  # an unknown allocation fails before any work
    kw = config.data_kwargs()
    seconds = {}
    t = time.perf_counter()
    celeba = load_split("celeba", "all", image_size=64, **kw)
    order = np.random.RandomState(CELEBA_SEED).permutation(len(celeba))
    n = len(order)
    api_idx = _limit(order[:int(a * n)], config.max_api_train)
    aux_idx = _limit(order[int(a * n):int(b * n)], config.max_aux)
    held_idx = _limit(order[int(b * n):], config.max_victims)
    api_train, aux, held = (celeba.subset(i, name=f"celeba[{nm}]") for i, nm in
                            ((api_idx, "api_train"), (aux_idx, "aux"), (held_idx, "heldout")))
    fs_victims = allocations.materialize(fs_alloc.victims, **kw)
    known = np.isin(held.labels, aux.labels) & (held.labels >= 0)
    groups = [(fs_alloc.name, fs_victims), ("celeba_heldout", held)]
    if known.sum() >= 2:
        groups.append(("celeba_known_id", held.subset(np.flatnonzero(known))))
    seconds["data"] = time.perf_counter() - t

    t = time.perf_counter()
    api_epochs = config.api_epochs or config.clf_epochs or config.epochs
    api = local_api.train_local_api(api_train, config=config.train_config(api_epochs),
                                    workdir=config.cache() / "local_api", width=config.api_width)
    seconds["api"] = time.perf_counter() - t
    field_acc = local_api.attribute_accuracy(api, held)
    field_majority = local_api.majority_rates(api, held)
    schema = local_api.LOCAL_SCHEMA
    oracle = local_api.api_oracle(api, schema)
    t = time.perf_counter()
    aux_feats = query_cached(oracle, aux, config.cache_dir)
    group_feats = [query_cached(oracle, g, config.cache_dir) for _, g in groups]
    seconds["queries"] = time.perf_counter() - t

    judge = None
    if config.eval_identity:
        from tfminv.training import targets

        eval_model, _ = targets.get_or_train_classifier(
            fs_alloc, role="eval", width=config.width, config=config.classifier_config(),
            cache_dir=config.cache_dir, **kw)
        judge = core.ScoresJudge(lambda x: eval_model.predict(x, batch_size=256, verbose=0))
    names = schema.names()
    tr, va = holdout(len(aux), config.aux_val_fraction, config.seed)
    workdir = core.run_folder(config.cache(), "api_inverters", oracle.identity())
    rows, fig_rows, recons = [], [], {}
    for fs in config.feature_sets:
        cols = [i for i, nm in enumerate(names) if fs == "all" or not nm.startswith("Landmark.")]
        std = rekognition.Standardizer.fit(aux_feats[tr][:, cols])
        t = time.perf_counter()
        g = local_api.train_feature_inverter(
            std(aux_feats[tr][:, cols]), aux.images[tr], config=config.train_config(),
            workdir=workdir, val=(std(aux_feats[va][:, cols]), aux.images[va]),
            width=config.width, name=f"api_{fs}")
        train_seconds = time.perf_counter() - t
        for (gname, gset), feats in zip(groups, group_feats):
            recon = np.asarray(g.predict(std(feats[:, cols]), batch_size=256, verbose=0))
            recons[(fs, gname)] = recon
            # only the allocation's victims have identities the evaluation classifier knows
            labels = gset.labels if gset is fs_victims else None
            row = {"features": fs, "n_features": len(cols), "victims": gname,
                   **core.score(recon, gset.images, labels, judge),
                   "mse_mean_aux": core.baselines(gset.images, aux.images[tr]).mean_aux,
                   "n_victims": len(gset)}
            row.update(n_aux=len(tr), width=config.width, epochs=config.epochs,
                       train_seconds=round(train_seconds, 1))
            rows.append(row)
    for gname, gset in groups:
        pick = base.figure_victims(np.zeros(len(gset)), config.figure_n)
        fig_rows.append((f"{gname}", gset.images[pick]))
        for fs in config.feature_sets:
            fig_rows.append((f"  {fs}", recons[(fs, gname)][pick]))
    fig = base.Figure("api_inversion.png", fig_rows, label_width=170)
    extra = {"api": api.identity(), "api_field_accuracy_heldout": field_acc,
             "api_field_majority_heldout": field_majority, "api_epochs": api_epochs,
             "api_width": config.api_width, "schema": schema.to_dict(), "feature_names": names,
             "sizes": {"api_train": len(api_train), "aux": len(aux), "heldout": len(held),
                       "heldout_known_identity": int(known.sum()),
                       f"{fs_alloc.name}_victims": len(fs_victims)},
             **query_counts(oracle),
             "seconds": base.seconds_since(t_start, None, **{k: round(v, 1)
                                                              for k, v in seconds.items()}),
             "figure": fig.filename}
    notes = [f"![reconstructions from API features]({fig.filename})",
             "Features: " + ", ".join(names) + ". Landmarks are box-relative ratios; all "
             "features standardised with the auxiliary queries' mean and std. "
             "mse_mean_aux: the mean of the auxiliary (CelebA) training images as the guess. "
             "Victims: "
             f"{fs_alloc.name} = the {fs_alloc.name} allocation's victims (individuals unknown "
             "to API and attacker); celeba_heldout = CelebA images outside the API's and the "
             "attacker's parts; celeba_known_id = those of them whose identity also has images "
             "in the attacker's auxiliary part (known individual, unseen image)."]
    return base.ScenarioResult("api_celeba", "Inverting a DetectFaces-format face-attribute API",
                               rows, COLUMNS, extra, notes, [fig])
