"""Inverting a face-attribute API that answers with named features (Rekognition-style).

    python -m tfminv.experiments.api --width=0.25 --epochs=5

Flags -> `tfminv.scenarios.FaceAPIConfig` -> `run_faceapi` -> results.json, results.md and
api_inversion.png in --out_dir (default runs/api_celeba). The API is a CelebA-trained attribute
+ landmark model answering in DetectFaces format (`tfminv.faceapi.local_api`); the attacker
inverts its feature vectors, with and without the landmarks, for the victims of --dataset's
allocation (FaceScrub by default) and held-out CelebA faces.
"""

from __future__ import annotations

import sys

from absl import flags

from tfminv.experiments import common

common.dataset_flag(what="allocation whose victims (and evaluation classifier) the API attack "
                    "is scored on besides held-out CelebA")
flags.DEFINE_float("api_width", 0.25, "width multiplier of the local API's attribute model")
flags.DEFINE_integer("api_epochs", 0, "local API training epochs (0: --clf_epochs, else --epochs)")
flags.DEFINE_integer("max_api_train", 0, "train the local API on at most this many CelebA "
                     "images (0: all of its part)")
flags.DEFINE_list("api_split", ["0.5", "0.9"], "CelebA fractions: [0, a) API training, [a, b) "
                  "attacker's auxiliary set, [b, 1) held-out victims")
flags.DEFINE_list("feature_sets", ["all", "no_landmarks"], "feature sets to invert")
flags.DEFINE_boolean("eval_identity", True, "score FaceScrub reconstructions with the FaceScrub "
                     "evaluation classifier (trained or reused like the other binaries')")
flags.DEFINE_integer("figure_n", 10, "victims shown per group in the figure")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def run(argv):
    from tfminv.scenarios import FaceAPIConfig, run_faceapi

    config = common.config(FaceAPIConfig, api_width=FLAGS.api_width, api_epochs=FLAGS.api_epochs,
                           max_api_train=FLAGS.max_api_train, api_split=tuple(FLAGS.api_split),
                           feature_sets=tuple(FLAGS.feature_sets),
                           eval_identity=FLAGS.eval_identity)
    return common.publish(run_faceapi(config), common.command("api", argv))


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
