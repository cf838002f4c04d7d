"""Inverting a face-attribute API that answers with named features (Rekognition-style).

    python -m tfminv.experiments.api --width=0.25 --epochs=5

The API is tfminv.api.local_api: a CelebA-trained attribute + landmark model answering in
Amazon Rekognition's DetectFaces JSON format (a user with credentials can put the real service
behind the same adapter, tfminv.api.aws). CelebA (seeded shuffle) is split into the API's
training part, the attacker's auxiliary part and held-out images. The attacker queries the API
on the auxiliary faces, maps each response to a feature vector (tfminv.api.rekognition;
landmarks relative to the face box), standardises it with auxiliary statistics and trains G
from features to face, with and without the landmark features. Victims: FaceScrub faces
(individuals unknown to API and attacker) and held-out CelebA images (those whose identity
also appears in the auxiliary set are reported separately as 'known individual').
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
from absl import flags

from tfminv.experiments import common, scenario

flags.DEFINE_float("api_width", 0.25, "width multiplier of the local API's attribute model")
flags.DEFINE_integer("api_epochs", 0, "local API training epochs (0: --clf_epochs, else --epochs)")
flags.DEFINE_integer("max_api_train", 0, "train the local API on at most this many CelebA "
                     "images (0: all of its part)")
flags.DEFINE_list("api_split", ["0.5", "0.9"], "CelebA fractions: [0, a) API training, [a, b) "
                  "attacker's auxiliary set, [b, 1) held-out victims")
flags.DEFINE_list("feature_sets", ["all", "no_landmarks"], "feature sets to invert")
flags.DEFINE_boolean("eval_identity", True, "score FaceScrub reconstructions with the FaceScrub "
                     "evaluation classifier (trained or reused like the other binaries')")
flags.DEFINE_integer("figure_n", 10, "victims shown per group in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS

FEATURE_SETS = ("all", "no_landmarks")


def _split(fractions):
    from tfminv.errors import ConfigError

    try:
        a, b = (float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ConfigError(f"--api_split={','.join(fractions)}: expected two fractions a,b") \
            from None
    if not 0 < a < b < 1:
        raise ConfigError(f"--api_split={','.join(fractions)}: expected 0 < a < b < 1")
    return a, b


def _limit(idx, n):
    return idx[:n] if n and n > 0 else idx


def run(argv):
    from tfminv import metrics, report
    from tfminv.api import local_api, rekognition
    from tfminv.attacks.predictions import query_cached
    from tfminv.data import allocations, load_split
    from tfminv.errors import ConfigError
    from tfminv.figures import image_grid

    t_start = time.perf_counter()
    a, b = _split(FLAGS.api_split)
    bad = [f for f in FLAGS.feature_sets if f not in FEATURE_SETS]
    if bad or not FLAGS.feature_sets:
        raise ConfigError(f"--feature_sets={','.join(FLAGS.feature_sets)}: expected a subset of "
                          f"{list(FEATURE_SETS)}")
    kw = dict(data_dir=FLAGS.data_dir, records_dir=FLAGS.records_dir)
    seconds = {}
    t = time.perf_counter()
    celeba = load_split("celeba", "all", image_size=64, **kw)
    order = np.random.RandomState(666).permutation(len(celeba))
    n = len(order)
    api_idx = _limit(order[:int(a * n)], FLAGS.max_api_train)
    aux_idx = _limit(order[int(a * n):int(b * n)], FLAGS.max_aux)
    held_idx = _limit(order[int(b * n):], FLAGS.max_victims)
    api_train, aux, held = (celeba.subset(i, name=f"celeba[{nm}]") for i, nm in
                            ((api_idx, "api_train"), (aux_idx, "aux"), (held_idx, "heldout")))
    fs_alloc = allocations.get("facescrub")
    fs_alloc = dataclasses.replace(
        fs_alloc, target_train=common.limited(fs_alloc.target_train, FLAGS.max_train),
        victims=common.limited(fs_alloc.victims, FLAGS.max_victims))
    fs_victims = allocations.materialize(fs_alloc.victims, **kw)
    known = np.isin(held.labels, aux.labels) & (held.labels >= 0)
    groups = [("facescrub", fs_victims), ("celeba_heldout", held)]
    if known.sum() >= 2:
        groups.append(("celeba_known_id", held.subset(np.flatnonzero(known))))
    seconds["data"] = time.perf_counter() - t

    t = time.perf_counter()
    api_epochs = FLAGS.api_epochs or FLAGS.clf_epochs or FLAGS.epochs
    api = local_api.train_local_api(api_train, config=common.train_config(api_epochs),
                                    workdir=common.paths_cache() / "local_api",
                                    width=FLAGS.api_width)
    seconds["api"] = time.perf_counter() - t
    field_acc = local_api.attribute_accuracy(api, held)
    field_majority = local_api.majority_rates(api, held)
    schema = local_api.LOCAL_SCHEMA
    oracle = local_api.api_oracle(api, schema)
    t = time.perf_counter()
    aux_feats = query_cached(oracle, aux, FLAGS.cache_dir)
    group_feats = [query_cached(oracle, g, FLAGS.cache_dir) for _, g in groups]
    seconds["queries"] = time.perf_counter() - t

    eval_model = None
    if FLAGS.eval_identity:
        from tfminv.training import targets

        eval_model, eval_info = targets.get_or_train_classifier(
            fs_alloc, role="eval", width=FLAGS.width,
            config=common.train_config(FLAGS.clf_epochs or FLAGS.epochs),
            cache_dir=FLAGS.cache_dir, data_dir=FLAGS.data_dir, records_dir=FLAGS.records_dir)
    names = schema.names()
    tr, va = scenario.holdout(len(aux))
    rows, fig_rows = [], []
    recons = {}
    for fs in FLAGS.feature_sets:
        cols = [i for i, nm in enumerate(names) if fs == "all" or not nm.startswith("Landmark.")]
        std = rekognition.Standardizer.fit(aux_feats[tr][:, cols])
        t = time.perf_counter()
        g = local_api.train_feature_inverter(
            std(aux_feats[tr][:, cols]), aux.images[tr], config=common.train_config(),
            workdir=common.paths_cache() / "api_inverters" / oracle.identity().split("|")[0]
            .replace(":", "_"), val=(std(aux_feats[va][:, cols]), aux.images[va]),
            width=FLAGS.width, name=f"api_{fs}")
        train_seconds = time.perf_counter() - t
        for (gname, gset), feats in zip(groups, group_feats):
            recon = np.asarray(g.predict(std(feats[:, cols]), batch_size=256, verbose=0))
            recons[(fs, gname)] = recon
            row = {"features": fs, "n_features": len(cols), "victims": gname,
                   **metrics.reconstruction_metrics(recon, gset.images),
                   "mse_mean_aux": metrics.baselines(gset.images, aux.images)["mean_aux"],
                   "n_victims": len(gset)}
            if eval_model is not None and gset is fs_victims:
                acc = metrics.attack_accuracy(eval_model, recon, gset.labels)
                row["attack_acc"], row["attack_acc_top5"] = acc["top1"], acc["top5"]
            row.update(n_aux=len(tr), width=FLAGS.width, epochs=FLAGS.epochs,
                       train_seconds=round(train_seconds, 1))
            rows.append(row)
    for (gname, gset) in groups:
        pick = common.figure_victims(np.zeros(len(gset)), FLAGS.figure_n)
        fig_rows.append((f"{gname}", gset.images[pick]))
        for fs in FLAGS.feature_sets:
            fig_rows.append((f"  {fs}", recons[(fs, gname)][pick]))
    out = common.out_dir("api_celeba")
    fig = out / "api_inversion.png"
    image_grid(fig_rows, fig, label_width=170)
    cols = ["features", "n_features", "victims", "mse", "psnr", "ssim", "attack_acc",
            "attack_acc_top5", "mse_mean_aux", "n_victims", "n_aux", "width", "epochs",
            "train_seconds"]
    extra = {"command": scenario.command("api", argv), "api": api.identity(),
             "api_field_accuracy_heldout": field_acc,
             "api_field_majority_heldout": field_majority, "api_epochs": api_epochs,
             "api_width": FLAGS.api_width, "schema": schema.to_dict(), "feature_names": names,
             "sizes": {"api_train": len(api_train), "aux": len(aux), "heldout": len(held),
                       "heldout_known_identity": int(known.sum()),
                       "facescrub_victims": len(fs_victims)},
             "oracle_queries": oracle.num_queries,
             "seconds": {**{k: round(v, 1) for k, v in seconds.items()},
                         "total": round(time.perf_counter() - t_start, 1)},
             "figure": fig.name}
    notes = [f"![reconstructions from API features]({fig.name})",
             "Features: " + ", ".join(names) + ". Landmarks are box-relative ratios; all "
             "features standardised with the auxiliary queries' mean and std. "
             "mse_mean_aux: the mean auxiliary (CelebA) image as the guess. Victims: "
             "facescrub = FaceScrub faces (individuals unknown to API and attacker); "
             "celeba_heldout = CelebA images outside the API's and the attacker's parts; "
             "celeba_known_id = those of them whose identity also has images in the "
             "attacker's auxiliary part (known individual, unseen image)."]
    return report.publish(rows, out, columns=cols, extra=extra, notes=notes,
                          title="Inverting a DetectFaces-format face-attribute API",
                          figures=[fig.name])


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
