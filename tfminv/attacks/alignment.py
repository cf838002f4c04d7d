"""Align the auxiliary set with the target's data: keep only frontal faces.

The target's training faces (FaceScrub) are mostly frontal, while a crawled auxiliary set has
faces at all angles; the paper trains the inverter on the frontal subset only. Orientation is
decided with OpenCV's own Haar cascades (`tfminv.cascades`):
`haarcascade_frontalface_default.xml` must find a face covering at least `min_face` of the crop,
and `haarcascade_profileface.xml` (run on the image and its mirror, since it only knows one
side) must find none. Works on the [N, H, W, 1] float crops in [0, 1] the project uses.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfminv.cascades import load_cascade, to_uint8
from tfminv.errors import ConfigError

FRONTAL_CASCADE = "haarcascade_frontalface_default.xml"
PROFILE_CASCADE = "haarcascade_profileface.xml"
FRONTAL, PROFILE, NONE = "frontal", "profile", "none"


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Cascade settings. `upsample` enlarges the crop first (cascades need faces >= 24 px)."""

    upsample: int = 1
    scale_factor: float = 1.1
    min_neighbors: int = 8           # frontal cascade: higher = stricter
    profile_min_neighbors: int = 3   # profile cascade: lower = vetoes more
    min_face: float = 0.4            # smallest face side as a share of the crop side
    equalize: bool = True            # histogram equalisation before detection

    def __post_init__(self):
        if int(self.upsample) < 1:
            raise ConfigError(f"alignment upsample must be >= 1, got {self.upsample}")
        if not float(self.scale_factor) > 1.0:
            raise ConfigError(f"alignment scale_factor must be > 1, got {self.scale_factor}")
        if int(self.min_neighbors) < 0 or int(self.profile_min_neighbors) < 0:
            raise ConfigError("alignment min_neighbors must be >= 0")
        if not 0.0 < float(self.min_face) <= 1.0:
            raise ConfigError(f"alignment min_face must be in (0, 1], got {self.min_face}")


def face_orientation(images, config: DetectorConfig | None = None) -> np.ndarray:
    """Label each image 'frontal', 'profile' or 'none' (no face found by either cascade).

    'frontal' needs a frontal detection and no profile detection.
    """
    import cv2

    config = config or DetectorConfig()
    frontal, profile = load_cascade(FRONTAL_CASCADE), load_cascade(PROFILE_CASCADE)
    out = []
    for img in to_uint8(images):
        if config.upsample > 1:
            img = cv2.resize(img, (img.shape[1] * config.upsample, img.shape[0] * config.upsample),
                             interpolation=cv2.INTER_LINEAR)
        if config.equalize:
            img = cv2.equalizeHist(img)
        side = max(1, int(config.min_face * min(img.shape[:2])))
        kw = dict(scaleFactor=config.scale_factor, minSize=(side, side))
        has_frontal = len(frontal.detectMultiScale(img, minNeighbors=config.min_neighbors,
                                                   **kw)) > 0
        has_profile = any(
            len(profile.detectMultiScale(im, minNeighbors=config.profile_min_neighbors, **kw)) > 0
            for im in (img, cv2.flip(img, 1)))
        if has_frontal and not has_profile:
            out.append(FRONTAL)
        elif has_profile:
            out.append(PROFILE)
        else:
            out.append(NONE)
    return np.asarray(out)


def orientation_counts(labels) -> dict:
    """How many images got each orientation label."""
    labels = np.asarray(labels)
    return {k: int((labels == k).sum()) for k in (FRONTAL, PROFILE, NONE)}


def select_frontal(imageset, config: DetectorConfig | None = None):
    """The frontal subset of an ImageSet and the per-orientation counts of the whole set."""
    labels = face_orientation(imageset.images, config)
    keep = np.flatnonzero(labels == FRONTAL)
    if keep.size == 0:
        raise ConfigError(f"alignment: no frontal face found in {imageset.name or 'the set'} "
                          f"({len(labels)} images); lower min_neighbors or raise upsample")
    name = f"{imageset.name}_frontal" if imageset.name else "frontal"
    return imageset.subset(keep, name=name), orientation_counts(labels)
