"""Truncation-aligned inversion vs the previous approach, for one or more k.

    python -m tfminv.experiments.truncation --dataset=mnist --k=1,2,3,5 --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.TruncationConfig` -> `run_truncation` -> results.json, results.md
and truncation_<dataset>.png (ground truth, then one row per k and method) in --out_dir.
Trained classifiers, predictions and inverters are cached and reused.
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import TruncationConfig, run_truncation

common.define_flags(TruncationConfig)


def run(argv):
    config = common.config(TruncationConfig)  # flags -> config (checked early)
    return common.publish(run_truncation(config), "tfminv.experiments.truncation")


def main():
    common.main(run, TruncationConfig)


if __name__ == "__main__":
    sys.exit(main())
