"""Malicious developer: black-box inverter vs jointly trained classifier + inverter.

    python -m tfminv.experiments.joint --dataset=mnist --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.JointConfig` -> `run_joint` -> results.json, results.md and
joint_<dataset>.png in --out_dir. Rows: blackbox (G trained on the target's predictions of its
training data), joint (classifier and G trained together, loss = CE + --recon_weight * MSE),
blackbox_aug (blackbox plus the auxiliary set --aux).
"""

from __future__ import annotations

import sys

from absl import flags

from tfminv.experiments import common

common.dataset_flag()
flags.DEFINE_integer("k", 0, "size of the released top-k prediction (0: the full vector)")
flags.DEFINE_float("recon_weight", 1.0, "lambda: weight of the reconstruction loss in joint "
                   "training")
flags.DEFINE_integer("joint_epochs", 0, "joint training epochs (0: the larger of --clf_epochs "
                     "and --epochs, so neither the classifier nor the inverter gets less)")
flags.DEFINE_integer("figure_n", 10, "victims shown in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv.scenarios import JointConfig, run_joint

    config = common.config(JointConfig, k=FLAGS.k, recon_weight=FLAGS.recon_weight,
                           joint_epochs=FLAGS.joint_epochs)
    return common.publish(run_joint(config), common.command("joint", argv))


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
