"""Steps the scenario binaries (auxiliary, alignment, class_inference, joint, api) share.

Each is a thin wrapper over library calls that reads the common flags, so the binaries stay
flag wiring only and cache their trained models where the truncation binary does.
"""

from __future__ import annotations

import shlex
import sys
import time

import numpy as np

from tfminv.experiments import common

FLAGS = common.FLAGS


def command(module: str, argv=None) -> str:
    """The command line that regenerates a result (for run.json and REPRODUCTION.md).

    Uses sys.argv: absl strips the flags from the argv it hands to the binary's main."""
    args = sys.argv[1:] if sys.argv and "tfminv" in " ".join(sys.argv[:1]) else list(argv[1:])
    return f"python -m tfminv.experiments.{module} " + " ".join(shlex.quote(a) for a in args)


def inverter_workdir(setup):
    """Where inverters against this target are cached (shared with the truncation binary)."""
    return common.inverter_workdir(setup)


def holdout(n: int, fraction: float | None = None, seed: int | None = None):
    """(train_idx, val_idx): a seeded split of n rows, `fraction` (--aux_val_fraction) held out."""
    fraction = FLAGS.aux_val_fraction if fraction is None else fraction
    order = np.random.default_rng(FLAGS.seed if seed is None else seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    return order[n_val:], order[:n_val]


def reference_mses(setup) -> dict:
    """The reference MSEs printed beside every inversion MSE (see tfminv.metrics.baselines)."""
    from tfminv import metrics

    b = metrics.baselines(setup.victims.images, setup.aux_set.images,
                          train_images=setup.train_set.images,
                          train_labels=setup.train_set.labels,
                          victim_labels=setup.victims.labels)
    return {"mse_mean_aux": b["mean_aux"], "mse_class_mean_oracle": b["class_mean_oracle"],
            "mse_zeros": b["zeros"]}


def blackbox_attack(setup, preds, images, val, *, k: int, method: str = "truncation",
                    epochs: int | None = None, workdir=None):
    """Train (or reuse) a black-box inverter on (preds, images) and evaluate it on the victims.

    Returns (metrics dict with mse/psnr/ssim/attack_acc/attack_acc_top5/train_seconds,
    reconstructions, inverter).
    """
    from tfminv.attacks.inversion import evaluate, train_inverter

    t = time.perf_counter()
    g = train_inverter(preds, images, k=k, method=method, config=common.train_config(epochs),
                       workdir=workdir or inverter_workdir(setup), val=val, width=FLAGS.width)
    seconds = time.perf_counter() - t
    res, recon = evaluate(g, setup.victim_preds, setup.victims.images, setup.victims.labels,
                          setup.eval_model)
    res["train_seconds"] = round(seconds, 1)
    return res, recon, g


def target_model(setup):
    """The target classifier itself (white-box), for attacks that need its gradients.

    Only available for the allocation's own cached classifier, not for a remote --target.
    """
    from tfminv.errors import ConfigError
    from tfminv.training import targets

    if FLAGS.target:
        raise ConfigError(f"--target={FLAGS.target!r}: this attack needs the target's gradients "
                          "(white-box); run it against the allocation's own classifier")
    model, _ = targets.get_or_train_classifier(
        setup.allocation, role="target", width=FLAGS.width,
        config=common.train_config(FLAGS.clf_epochs or FLAGS.epochs), cache_dir=FLAGS.cache_dir,
        data_dir=FLAGS.data_dir, records_dir=FLAGS.records_dir)
    return model


def common_extra(setup, argv, module: str, t_start: float, **more) -> dict:
    """run.json content shared by the binaries: command, target, evaluation classifier, timings."""
    return {"command": command(module, argv), "target": setup.target_info,
            "eval_classifier": setup.eval_info, "oracle_queries": setup.oracle.num_queries,
            **more,
            "seconds": {**{k: round(v, 1) for k, v in setup.seconds.items()},
                        "total": round(time.perf_counter() - t_start, 1)}}
