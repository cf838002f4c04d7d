"""The data of one inversion, checked before anything else runs (`InversionInputs`).

Images come as NumPy arrays, uint8 0-255 or float 0-1, [N, H, W, C] ([N, H, W] counts as one
channel), and leave as float32 [N, H, W, C] in [0, 1]; labels as integer class indices. A bad
array raises DataError naming the argument and what was expected. NumPy only: no TensorFlow.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfminv.errors import DataError

MIN_SIDE = 11  # SSIM's 11x11 window


def as_unit_images(x, what: str) -> np.ndarray:
    """float32 [N, H, W, C] in [0, 1] from uint8 0-255 or float 0-1 arrays ([N, H, W]: C = 1)."""
    if x is None:
        raise DataError(f"{what}: no images given; expected an array [N, H, W] or [N, H, W, C]")
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise DataError(f"{what}: expected images [N, H, W] or [N, H, W, C], got shape {a.shape}")
    if len(a) == 0:
        raise DataError(f"{what}: no images (shape {a.shape})")
    if min(a.shape[1:3]) < MIN_SIDE or a.shape[3] < 1:
        raise DataError(f"{what}: images of {a.shape[1]}x{a.shape[2]}x{a.shape[3]}; expected "
                        f"height and width >= {MIN_SIDE} (SSIM's window) and >= 1 channel")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{what}: integer images must be 0-255, got values in [{lo}, {hi}]")
        return a.astype(np.float32) / 255.0
    if a.dtype.kind != "f":
        raise DataError(f"{what}: expected uint8 (0-255) or float (0-1) images, got dtype "
                        f"{a.dtype}")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise DataError(f"{what}: images contain NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise DataError(f"{what}: float images must be in [0, 1], got values in [{lo:.4g}, "
                        f"{hi:.4g}] (pass uint8 for 0-255 images; the target's own scale is "
                        "input_range)")
    return np.clip(a, 0.0, 1.0)


def as_labels(y, n: int, what: str) -> np.ndarray | None:
    """int64 class indices [n] (or None for None); DataError names `what` on a bad array."""
    if y is None:
        return None
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or len(a) != n:
        raise DataError(f"{what}: expected {n} integer labels (one per image), got shape "
                        f"{a.shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise DataError(f"{what}: labels must be integers, got non-integer values")
    elif a.dtype.kind not in "iu":
        raise DataError(f"{what}: labels must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.min() < 0:
        raise DataError(f"{what}: labels must be class indices >= 0, got {int(a.min())}")
    return a


@dataclasses.dataclass
class InversionInputs:
    """The data of one inversion, checked and normalised on construction (data only).

    aux_images: the attacker's auxiliary images; victim_images: the images whose released
    predictions are inverted; victim_labels: their class indices (optional: attack accuracy and
    utility need them); train_images/train_labels: the target's training data (optional: the
    class-mean baseline uses them, else the victims' own class means). Images become float32
    [N, H, W, C] in [0, 1]; all must share one (H, W, C). victim_label_names: the names of the
    label indices when the source has them (e.g. class sub-folders); the door then requires
    one name per target class, since a source covering fewer classes shifts the labels.
    """

    aux_images: np.ndarray
    victim_images: np.ndarray
    victim_labels: np.ndarray | None = None
    train_images: np.ndarray | None = None
    train_labels: np.ndarray | None = None
    victim_label_names: tuple = ()

    def __post_init__(self):
        self.victim_label_names = tuple(str(n) for n in (self.victim_label_names or ()))
        self.aux_images = as_unit_images(self.aux_images, "aux_images")
        self.victim_images = as_unit_images(self.victim_images, "victim_images")
        if len(self.aux_images) < 2:
            raise DataError(f"aux_images: {len(self.aux_images)} image(s); the attacker needs "
                            "at least 2 (one is held out for model selection)")
        if self.aux_images.shape[1:] != self.victim_images.shape[1:]:
            raise DataError(f"aux_images are {hwc(self.aux_images)} but victim_images are "
                            f"{hwc(self.victim_images)}: expected one shape")
        self.victim_labels = as_labels(self.victim_labels, len(self.victim_images),
                                       "victim_labels")
        if (self.train_images is None) != (self.train_labels is None):
            raise DataError("train_images and train_labels go together")
        if self.train_images is not None:
            self.train_images = as_unit_images(self.train_images, "train_images")
            if self.train_images.shape[1:] != self.victim_images.shape[1:]:
                raise DataError(f"train_images are {hwc(self.train_images)} but victim_images "
                                f"are {hwc(self.victim_images)}: expected one shape")
            self.train_labels = as_labels(self.train_labels, len(self.train_images),
                                          "train_labels")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.victim_images.shape[1:])


def hwc(images) -> str:
    """"HxWxC" of an image batch, for messages."""
    return "x".join(str(d) for d in images.shape[1:])
