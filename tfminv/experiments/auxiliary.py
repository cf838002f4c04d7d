"""Inversion quality vs the auxiliary set's distribution: same, generic, distinct.

    python -m tfminv.experiments.auxiliary --dataset=mnist --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.AuxiliaryConfig` -> `run_auxiliary` -> results.json, results.md and
auxiliary_<dataset>.png in --out_dir. FaceScrub target: held-out FaceScrub / CelebA / CIFAR-10;
MNIST target (digits 0-4): held-out 0-4 / digits 5-9 / CIFAR-10.
"""

from __future__ import annotations

import sys

from absl import flags

from tfminv.experiments import common

common.dataset_flag()
flags.DEFINE_list("aux_sets", ["same", "generic", "distinct"], "auxiliary sets to compare")
flags.DEFINE_integer("k", 0, "size of the released top-k prediction (0: the full vector)")
flags.DEFINE_integer("figure_n", 10, "victims shown in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv.scenarios import AuxiliaryConfig, run_auxiliary

    config = common.config(AuxiliaryConfig, aux_sets=tuple(FLAGS.aux_sets), k=FLAGS.k)
    return common.publish(run_auxiliary(config), common.command("auxiliary", argv))


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
