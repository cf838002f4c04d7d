"""Malicious developer: black-box inverter vs jointly trained classifier + inverter.

    python -m tfminv.experiments.joint --dataset=mnist --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.JointConfig` -> `run_joint` -> results.json, results.md and
joint_<dataset>.png in --out_dir. Rows: blackbox (G trained on the target's predictions of its
training data), joint (classifier and G trained together, loss = CE + --recon_weight * MSE),
blackbox_aug (blackbox plus the auxiliary set --aux).
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import JointConfig, run_joint

common.define_flags(JointConfig)


def run(argv):
    config = common.config(JointConfig)  # flags -> config (checked early)
    return common.publish(run_joint(config), "tfminv.experiments.joint")


def main():
    common.main(run, JointConfig)


if __name__ == "__main__":
    sys.exit(main())
