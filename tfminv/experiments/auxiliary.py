"""Inversion quality vs the auxiliary set's distribution: same, generic, distinct.

    python -m tfminv.experiments.auxiliary --dataset=mnist --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.AuxiliaryConfig` -> `run_auxiliary` -> results.json, results.md and
auxiliary_<dataset>.png in --out_dir. FaceScrub target: held-out FaceScrub / CelebA / CIFAR-10;
MNIST target (digits 0-4): held-out 0-4 / digits 5-9 / CIFAR-10.
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import AuxiliaryConfig, run_auxiliary

common.define_flags(AuxiliaryConfig)


def run(argv):
    config = common.config(AuxiliaryConfig)  # flags -> config (checked early)
    return common.publish(run_auxiliary(config), "tfminv.experiments.auxiliary")


def main():
    common.main(run, AuxiliaryConfig)


if __name__ == "__main__":
    sys.exit(main())
