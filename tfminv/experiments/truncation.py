"""Truncation-aligned inversion vs the previous approach, for one or more k.

    python -m tfminv.experiments.truncation --dataset=mnist --k=1,2,3,5 --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.TruncationConfig` -> `run_truncation` -> results.json, results.md
and truncation_<dataset>.png (ground truth, then one row per k and method) in --out_dir.
Trained classifiers, predictions and inverters are cached and reused.
"""

from __future__ import annotations

import sys

from absl import flags

from tfminv.experiments import common

common.dataset_flag()
flags.DEFINE_string("k", "10", "size of the released top-k prediction: one value or a list")
flags.DEFINE_list("methods", ["truncation", "previous", "previous_logzero"],
                  "methods to compare")
flags.DEFINE_integer("figure_n", 10, "victims shown in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv.scenarios import TruncationConfig, run_truncation

    config = common.config(TruncationConfig, k=tuple(common.parse_ints(FLAGS.k)),
                           methods=tuple(FLAGS.methods))
    return common.publish(run_truncation(config),
                          common.command_line("tfminv.experiments.truncation"))


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
