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

from tfminv.experiments import common
from tfminv.scenarios import FaceAPIConfig, run_faceapi

common.define_flags(FaceAPIConfig)


def run(argv):
    config = common.config(FaceAPIConfig)  # flags -> config (checked early)
    return common.publish(run_faceapi(config), "tfminv.experiments.api")


def main():
    common.main(run, FaceAPIConfig)


if __name__ == "__main__":
    sys.exit(main())
