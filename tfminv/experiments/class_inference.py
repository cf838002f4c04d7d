"""Training-class inference: a representative image per class, three ways.

    python -m tfminv.experiments.class_inference --dataset=facescrub --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.ClassInferenceConfig` -> `run_class_inference` -> results.json,
results.md and class_inference_<dataset>.png in --out_dir. Methods: the truncation inverter and
the previous one fed a one-hot-like vector per class (black-box), and Fredrikson et al.'s
optimisation with the target's gradients (white-box).
"""

from __future__ import annotations

import sys

from absl import flags

from tfminv.experiments import common

common.dataset_flag()
flags.DEFINE_integer("k", 1, "truncation of the inverters' input (paper: keep the top one)")
flags.DEFINE_float("confidence", 1.0, "confidence of the class in the one-hot-like vector")
flags.DEFINE_list("methods", ["truncation", "previous", "fredrikson", "fredrikson_meanaux"],
                  "methods to compare (fredrikson_meanaux: the optimisation started from the "
                  "mean auxiliary image instead of black)")
flags.DEFINE_integer("n_classes_sample", 0, "attack a seeded sample of this many classes "
                     "(0: all)")
flags.DEFINE_integer("mia_steps", 1000, "Fredrikson: most gradient steps per class")
flags.DEFINE_float("mia_lr", 0.1, "Fredrikson: step size")
flags.DEFINE_integer("mia_patience", 100, "Fredrikson: stop a class after this many steps "
                     "without improvement")
flags.DEFINE_enum("mia_objective", "logprob", ["logprob", "prob"], "Fredrikson cost: -log p_c "
                  "or 1 - p_c")
flags.DEFINE_enum("mia_process", "denoise+sharpen", ["none", "denoise", "sharpen",
                                                     "denoise+sharpen"],
                  "Fredrikson post-processing")
flags.DEFINE_integer("mia_process_every", 0, "also post-process every this many steps (0: only "
                     "the result)")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv.scenarios import ClassInferenceConfig, run_class_inference

    config = common.config(
        ClassInferenceConfig, k=FLAGS.k, confidence=FLAGS.confidence,
        methods=tuple(FLAGS.methods), mia_steps=FLAGS.mia_steps, mia_lr=FLAGS.mia_lr,
        mia_patience=FLAGS.mia_patience, mia_objective=FLAGS.mia_objective,
        mia_process=FLAGS.mia_process, mia_process_every=FLAGS.mia_process_every,
        n_classes_sample=FLAGS.n_classes_sample)
    return common.publish(run_class_inference(config), common.command("class_inference", argv))


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
