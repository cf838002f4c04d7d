"""OpenCV helpers shared by the face-orientation filter (`tfminv.attacks.alignment`) and the
local face API's landmark targets (`tfminv.faceapi.local_api`).

- `load_cascade(filename)`: one of OpenCV's bundled Haar cascades (`cv2.data.haarcascades`),
  with a one-line ConfigError when this OpenCV build lacks it (OpenCV 5 moved the cascades out
  of the main package: `opencv-python-headless<5` is required).
- `to_uint8(images)`: the project's float crops [N, H, W, 1] (or [N, H, W]) in [0, 1] as the
  uint8 [N, H, W] greyscale images the cascades take (rounded, clipped); uint8 passes through.
"""

from __future__ import annotations

import os

import numpy as np

from tfminv.errors import ConfigError


def load_cascade(filename: str):
    """A loaded `cv2.CascadeClassifier` for one of OpenCV's bundled cascade files."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise ConfigError(f"OpenCV {cv2.__version__} has no CascadeClassifier/cv2.data "
                          "(OpenCV 5 moved them out); install opencv-python-headless<5")
    path = os.path.join(cv2.data.haarcascades, filename)
    if not os.path.isfile(path):
        raise ConfigError(f"OpenCV cascade {path} not found; the opencv package should ship it "
                          "(opencv-python-headless<5)")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise ConfigError(f"OpenCV could not load cascade {path}")
    return cascade


def to_uint8(images) -> np.ndarray:
    """Greyscale uint8 [N, H, W] from [N, H, W, 1] / [N, H, W] floats in [0, 1] (or uint8)."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ConfigError(f"expected greyscale images [N, H, W, 1] or [N, H, W], "
                          f"got shape {images.shape}")
    if images.dtype != np.uint8:
        images = (np.clip(images.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    return images
