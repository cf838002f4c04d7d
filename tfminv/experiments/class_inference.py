"""Training-class inference: a representative image per class, three ways.

    python -m tfminv.experiments.class_inference --dataset=facescrub --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.ClassInferenceConfig` -> `run_class_inference` -> results.json,
results.md and class_inference_<dataset>.png in --out_dir. Methods: the truncation inverter and
the previous one fed a one-hot-like vector per class (black-box), and Fredrikson et al.'s
optimisation with the target's gradients (white-box).
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import ClassInferenceConfig, run_class_inference

common.define_flags(ClassInferenceConfig)


def run(argv):
    config = common.config(ClassInferenceConfig)  # flags -> config (checked early)
    return common.publish(run_class_inference(config), "tfminv.experiments.class_inference")


def main():
    common.main(run, ClassInferenceConfig)


if __name__ == "__main__":
    sys.exit(main())
