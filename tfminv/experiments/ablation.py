"""What each term of the identity method buys: one row per combination of terms at one k.

    python -m tfminv.experiments.ablation --dataset=facescrub --k=3 --width=0.25 --epochs=5 \
        --feature_weight=0.01 --realism_weight=1

Flags -> `tfminv.scenarios.AblationConfig` -> `run_ablation` -> results.json, results.md and
ablation_<dataset>.png in --out_dir. Variants (--variants): 'mse' (the truncation inverter) or
the kept terms kl, feature, realism joined by '+'; a kept term needs its weight flag > 0.
Trained classifiers, surrogate, image prior and inverters are cached and reused.
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import AblationConfig, run_ablation

common.define_flags(AblationConfig)


def run(argv):
    config = common.config(AblationConfig)  # flags -> config (checked early)
    return common.publish(run_ablation(config), "tfminv.experiments.ablation")


def main():
    common.main(run, AblationConfig)


if __name__ == "__main__":
    sys.exit(main())
