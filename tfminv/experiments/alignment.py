"""Aligning the auxiliary set with the target's data: frontal CelebA faces vs all of them.

    python -m tfminv.experiments.alignment --dataset=facescrub --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.AlignmentConfig` -> `run_alignment` -> results.json, results.md,
alignment_<dataset>.png and aux_frontal_vs_rejected.png in --out_dir. G is trained on the
whole auxiliary training part, its frontal faces (OpenCV cascades), and a random subset of the
frontal subset's size; orientation counts go to run.json.
"""

from __future__ import annotations

import sys

from absl import flags

from tfminv.experiments import common

common.dataset_flag(what="allocation to attack (face images)")
flags.DEFINE_integer("k", 0, "size of the released top-k prediction (0: the full vector)")
flags.DEFINE_integer("upsample", 1, "enlarge crops by this factor before detection")
flags.DEFINE_integer("min_neighbors", 8, "frontal cascade minNeighbors (higher: stricter)")
flags.DEFINE_integer("profile_min_neighbors", 3, "profile cascade minNeighbors (lower: vetoes "
                     "more faces)")
flags.DEFINE_float("min_face", 0.4, "smallest accepted face side, as a share of the crop side")
flags.DEFINE_boolean("random_control", True, "also train on a random subset of the frontal "
                     "subset's size")
flags.DEFINE_integer("figure_n", 10, "victims shown in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv.scenarios import AlignmentConfig, run_alignment

    config = common.config(AlignmentConfig, k=FLAGS.k, upsample=FLAGS.upsample,
                           min_neighbors=FLAGS.min_neighbors,
                           profile_min_neighbors=FLAGS.profile_min_neighbors,
                           min_face=FLAGS.min_face, random_control=FLAGS.random_control)
    return common.publish(run_alignment(config), common.command("alignment", argv))


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
