"""Training-time defences of the target compared under one truncation attacker.

    python -m tfminv.experiments.defences --dataset=facescrub --k=10 \
        --defences='none;ls:0.1;ls:-0.05;mid:0.01;dpsgd:1.1,1.0' --width=0.25 --epochs=3

Flags -> `tfminv.scenarios.DefencesConfig` -> `run_defences` -> results.json, results.md,
run.json and defences_<dataset>_privacy_utility.png (test accuracy vs leakage) in --out_dir.
Defended targets, predictions and inverters are cached and reused.
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import DefencesConfig, run_defences

common.define_flags(DefencesConfig)


def run(argv):
    config = common.config(DefencesConfig)  # flags -> config (checked early)
    return common.publish(run_defences(config), "tfminv.experiments.defences")


def main():
    common.main(run, DefencesConfig)


if __name__ == "__main__":
    sys.exit(main())
