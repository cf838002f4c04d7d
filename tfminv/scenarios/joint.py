"""Malicious developer: black-box inverter vs jointly trained classifier + inverter.

Three rows, all inverting the same victims' released top-k predictions:
- blackbox: the normally trained target, G trained afterwards on the target's predictions of
  its own training data (the developer has it);
- joint: classifier and G trained together, loss = CE + recon_weight * MSE(G(trunc_k(
  log_softmax(logits) + b)), x) (`tfminv.training.joint`);
- blackbox_aug: as blackbox, with the auxiliary set (`aux`, default the generic one) added to
  G's training data.
Reports the classifier's test accuracy and the reconstruction MSE of each.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tfminv.errors import ConfigError
from tfminv.scenarios import base
from tfminv.settings import setting

COLUMNS = ["dataset", "setting", "classifier_acc", "mse", "psnr", "ssim", "attack_acc",
           "attack_acc_top5", "mse_mean_aux", "mse_class_mean", "inverter_data",
           "n_inverter", "n_victims", "k", "recon_weight", "width", "epochs", "joint_epochs",
           "train_seconds"]


@dataclasses.dataclass
class JointConfig(base.ScenarioConfig):
    """k: released top-k (0: full vector); recon_weight: lambda of the joint loss;
    joint_epochs: 0 means the larger of clf_epochs and epochs."""

    k: int = setting(0, "size of the released top-k prediction (0: the full vector)", minimum=0)
    recon_weight: float = setting(1.0, "lambda: weight of the reconstruction loss in joint "
                                  "training")
    joint_epochs: int = setting(0, "joint training epochs (0: the larger of --clf_epochs and "
                                "--epochs, so neither the classifier nor the inverter gets "
                                "less)", minimum=0)


def run_joint(config: JointConfig) -> base.ScenarioResult:
    """Rows blackbox, joint, blackbox_aug; figure: ground truth then one row per setting."""
    from tfminv.attacks import core
    from tfminv.attacks.predictions import query_cached
    from tfminv.data import allocations
    from tfminv.data.splits import holdout
    from tfminv.models import joint as jm
    from tfminv.training.joint import train_joint

    t_start = time.perf_counter()
    base.require_in_memory_aux(config, "joint", "trains on the auxiliary images together "
                               "with the target's own (in memory)")
    s = base.prepare(config)
    m = s.num_outputs
    k = base.full_or_k(config.k, m)
    if not config.recon_weight >= 0:
        raise ConfigError(f"--recon_weight={config.recon_weight}: expected >= 0")
    test_set = allocations.materialize(s.allocation.target_test, **config.data_kwargs())
    train_preds = query_cached(s.oracle, s.train_set, config.cache_dir)
    tr, va = holdout(len(s.train_set), config.aux_val_fraction, config.seed)
    x = s.train_set.images
    val = (train_preds[va], x[va])
    pick = base.figure_victims(s.victims.labels, config.figure_n)
    fig_rows = [("ground truth", s.victims.images[pick])]
    refs = base.reference_mses(s, base.aux_images(s))  # blackbox_aug trains on every aux image
    row0 = {"dataset": config.dataset, "k": k}
    clf_acc = s.target_info.get("test_accuracy")
    rows = []

    attack = base.blackbox_attack(s, train_preds[tr], x[tr], val, k=k)
    rows.append({**row0, "setting": "blackbox", "classifier_acc": clf_acc,
                 **base.attack_row(attack), "inverter_data": "target train",
                 "n_inverter": len(tr)})
    fig_rows.append(("blackbox", attack.reconstructions[pick]))

    aug_preds = np.concatenate([train_preds[tr], s.aux_preds])
    aug_images = np.concatenate([x[tr], s.aux_set.images])
    attack = base.blackbox_attack(s, aug_preds, aug_images, val, k=k)
    rows.append({**row0, "setting": "blackbox_aug", "classifier_acc": clf_acc,
                 **base.attack_row(attack), "inverter_data": f"target train + aux {s.aux_name}",
                 "n_inverter": len(aug_images)})
    fig_rows.append((f"blackbox + {s.aux_name}", attack.reconstructions[pick]))

    t = time.perf_counter()
    epochs = config.joint_epochs or max(config.clf_epochs, config.epochs)
    joint = train_joint(x, s.train_set.labels, num_classes=m, k=k, weight=config.recon_weight,
                        config=config.train_config(epochs),
                        workdir=config.cache() / "joint" / s.allocation.name, width=config.width)
    joint_seconds = time.perf_counter() - t
    clf = jm.classifier_of(joint)
    test_logits = clf.predict(test_set.images, batch_size=256, verbose=0)
    joint_acc = float((np.argmax(test_logits, 1) == test_set.labels).mean())
    v_logits = np.asarray(clf.predict(s.victims.images, batch_size=256, verbose=0), np.float64)
    released = np.exp(v_logits - v_logits.max(1, keepdims=True))
    released = (released / released.sum(1, keepdims=True)).astype(np.float32)
    recon = np.asarray(jm.inverter_of(joint, k).predict(released, batch_size=256, verbose=0))
    res = core.score(recon, s.victims.images, s.victims.labels, s.judge)
    rows.append({**row0, "setting": "joint", "classifier_acc": joint_acc, **res,
                 "train_seconds": round(joint_seconds, 1), "inverter_data": "target train "
                 "(joint)", "n_inverter": len(x)})
    fig_rows.append(("joint", recon[pick]))
    order = {"blackbox": 0, "joint": 1, "blackbox_aug": 2}
    rows.sort(key=lambda r: order[r["setting"]])
    for r in rows:
        r.update(refs, width=config.width, epochs=config.epochs, joint_epochs=epochs,
                 recon_weight=config.recon_weight, n_victims=len(s.victims))
    name = f"joint_{s.allocation.name}"
    fig = base.Figure(f"{name}.png", fig_rows)
    extra = base.setup_extra(
        s, t_start, figure=fig.filename,
        joint_b=float(joint.get_layer("rescaled_truncation").b.numpy()),
        rescale="log_softmax(logits) + b (trainable scalar, starts at 50)")
    notes = [f"![reconstructions]({fig.filename})",
             "classifier_acc is on the target's test split; blackbox and blackbox_aug share the "
             "normally trained target. mse is on the victims' released top-k predictions."]
    return base.ScenarioResult(name, f"Joint training vs black-box: {config.dataset}", rows,
                               COLUMNS, extra, notes, [fig])
