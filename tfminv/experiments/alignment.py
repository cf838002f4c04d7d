"""Aligning the auxiliary set with the target's data: frontal CelebA faces vs all of them.

    python -m tfminv.experiments.alignment --dataset=facescrub --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.AlignmentConfig` -> `run_alignment` -> results.json, results.md,
alignment_<dataset>.png and aux_frontal_vs_rejected.png in --out_dir. G is trained on the
whole auxiliary training part, its frontal faces (OpenCV cascades), and a random subset of the
frontal subset's size; orientation counts go to run.json.
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import AlignmentConfig, run_alignment

common.define_flags(AlignmentConfig)


def run(argv):
    config = common.config(AlignmentConfig)  # flags -> config (checked early)
    return common.publish(run_alignment(config), "tfminv.experiments.alignment")


def main():
    common.main(run, AlignmentConfig)


if __name__ == "__main__":
    sys.exit(main())
