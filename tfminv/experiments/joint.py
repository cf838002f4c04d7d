"""Malicious developer: black-box inverter vs jointly trained classifier + inverter.

    python -m tfminv.experiments.joint --dataset=mnist --width=0.25 --epochs=5

Three rows, all inverting the same victims' released top-k predictions:
- blackbox: the normally trained target, G trained afterwards on the target's predictions of
  its own training data (the developer has it);
- joint: classifier and G trained together, loss = CE + --recon_weight * MSE(G(trunc_k(
  log_softmax(logits) + b)), x) (tfminv.models.joint);
- blackbox_aug: as blackbox, with the auxiliary set (--aux, default the generic one) added to
  G's training data.
Reports the classifier's test accuracy and the reconstruction MSE of each.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from absl import flags

from tfminv.experiments import common, scenario

flags.DEFINE_enum("dataset", "facescrub", ["facescrub", "mnist"], "allocation to attack")
flags.DEFINE_integer("k", 0, "size of the released top-k prediction (0: the full vector)")
flags.DEFINE_float("recon_weight", 1.0, "lambda: weight of the reconstruction loss in joint "
                   "training")
flags.DEFINE_integer("joint_epochs", 0, "joint training epochs (0: the larger of --clf_epochs "
                     "and --epochs, so neither the classifier nor the inverter gets less)")
flags.DEFINE_integer("figure_n", 10, "victims shown in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv import metrics, report
    from tfminv.attacks.predictions import query_cached
    from tfminv.data import allocations
    from tfminv.errors import ConfigError
    from tfminv.figures import image_grid
    from tfminv.models import joint as jm

    t_start = time.perf_counter()
    s = common.prepare(FLAGS.dataset)
    m = s.aux_preds.shape[1]
    if FLAGS.k < 0 or FLAGS.k > m:
        raise ConfigError(f"--k={FLAGS.k}: expected 0 (full vector) to {m}")
    if not FLAGS.recon_weight >= 0:
        raise ConfigError(f"--recon_weight={FLAGS.recon_weight}: expected >= 0")
    k = FLAGS.k or m
    test_set = allocations.materialize(s.allocation.target_test, data_dir=FLAGS.data_dir,
                                       records_dir=FLAGS.records_dir)
    train_preds = query_cached(s.oracle, s.train_set, FLAGS.cache_dir)
    tr, va = scenario.holdout(len(s.train_set))
    x = s.train_set.images
    val = (train_preds[va], x[va])
    pick = common.figure_victims(s.victims.labels, FLAGS.figure_n)
    fig_rows = [("ground truth", s.victims.images[pick])]
    refs = scenario.reference_mses(s)
    base = {"dataset": FLAGS.dataset, "k": k}
    rows = []

    res, recon, _ = scenario.blackbox_attack(s, train_preds[tr], x[tr], val, k=k)
    rows.append({**base, "setting": "blackbox", "classifier_acc": s.target_info.get(
        "test_accuracy"), **res, "inverter_data": "target train", "n_inverter": len(tr)})
    fig_rows.append(("blackbox", recon[pick]))

    aug_preds = np.concatenate([train_preds[tr], s.aux_preds])
    aug_images = np.concatenate([x[tr], s.aux_set.images])
    res, recon, _ = scenario.blackbox_attack(s, aug_preds, aug_images, val, k=k)
    rows.append({**base, "setting": "blackbox_aug", "classifier_acc": s.target_info.get(
        "test_accuracy"), **res, "inverter_data": f"target train + aux {s.aux_name}",
        "n_inverter": len(aug_images)})
    fig_rows.append((f"blackbox + {s.aux_name}", recon[pick]))

    t = time.perf_counter()
    epochs = FLAGS.joint_epochs or max(FLAGS.clf_epochs, FLAGS.epochs)
    joint = jm.train_joint(x, s.train_set.labels, num_classes=m, k=k,
                           weight=FLAGS.recon_weight, config=common.train_config(epochs),
                           workdir=common.paths_cache() / "joint" / s.allocation.name,
                           width=FLAGS.width)
    joint_seconds = time.perf_counter() - t
    clf = jm.classifier_of(joint)
    test_logits = clf.predict(test_set.images, batch_size=256, verbose=0)
    joint_acc = float((np.argmax(test_logits, 1) == test_set.labels).mean())
    v_logits = np.asarray(clf.predict(s.victims.images, batch_size=256, verbose=0), np.float64)
    released = np.exp(v_logits - v_logits.max(1, keepdims=True))
    released = (released / released.sum(1, keepdims=True)).astype(np.float32)
    recon = np.asarray(jm.inverter_of(joint, k).predict(released, batch_size=256, verbose=0))
    res = metrics.reconstruction_metrics(recon, s.victims.images)
    acc = metrics.attack_accuracy(s.eval_model, recon, s.victims.labels)
    rows.append({**base, "setting": "joint", "classifier_acc": joint_acc, **res,
                 "attack_acc": acc["top1"], "attack_acc_top5": acc["top5"],
                 "train_seconds": round(joint_seconds, 1), "inverter_data": "target train "
                 "(joint)", "n_inverter": len(x)})
    fig_rows.append(("joint", recon[pick]))
    order = {"blackbox": 0, "joint": 1, "blackbox_aug": 2}
    rows.sort(key=lambda r: order[r["setting"]])
    for r in rows:
        r.update(refs, width=FLAGS.width, epochs=FLAGS.epochs, joint_epochs=epochs,
                 recon_weight=FLAGS.recon_weight, n_victims=len(s.victims))
    out = common.out_dir(f"joint_{FLAGS.dataset}")
    fig = out / f"joint_{FLAGS.dataset}.png"
    image_grid(fig_rows, fig)
    cols = ["dataset", "setting", "classifier_acc", "mse", "psnr", "ssim", "attack_acc",
            "attack_acc_top5", "mse_mean_aux", "mse_class_mean_oracle", "inverter_data",
            "n_inverter", "n_victims", "k", "recon_weight", "width", "epochs", "joint_epochs",
            "train_seconds"]
    extra = scenario.common_extra(
        s, argv, "joint", t_start, figure=fig.name,
        joint_b=float(joint.get_layer("rescaled_truncation").b.numpy()),
        rescale="log_softmax(logits) + b (trainable scalar, starts at 50)")
    notes = [f"![reconstructions]({fig.name})",
             "classifier_acc is on the target's test split; blackbox and blackbox_aug share the "
             "normally trained target. mse is on the victims' released top-k predictions."]
    return report.publish(rows, out, columns=cols, extra=extra, notes=notes,
                          title=f"Joint training vs black-box: {FLAGS.dataset}",
                          figures=[fig.name])


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
