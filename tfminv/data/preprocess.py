"""Pixel-level preprocessing shared by all sources: greyscale, resize, crops, min-max stats.

Everything works on uint8 arrays; conversion to float happens when records are read.
"""

from __future__ import annotations

import numpy as np

# Interpolation used by `resize`: INTER_AREA when shrinking (antialiased), INTER_LINEAR when growing.
RESIZE_DOWN = "cv2.INTER_AREA"
RESIZE_UP = "cv2.INTER_LINEAR"
GREY = "ITU-R 601 luma, PIL 'L' fixed point: (19595 R + 38470 G + 7471 B + 32768) >> 16"


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] RGB -> uint8 [...] grey, bit-identical to PIL's `Image.convert('L')`.

    PIL computes L = R*299/1000 + G*587/1000 + B*114/1000 in 16-bit fixed point with rounding.
    """
    rgb = np.asarray(rgb)
    if rgb.shape[-1] != 3:
        raise ValueError(f"expected RGB with last axis 3, got shape {rgb.shape}")
    r = rgb[..., 0].astype(np.uint32)
    g = rgb[..., 1].astype(np.uint32)
    b = rgb[..., 2].astype(np.uint32)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def to_grey(img: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Any uint8 image ([h, w], [h, w, 1], [h, w, 3] RGB or BGR, [h, w, 4]) -> [h, w] grey."""
    if img.ndim == 2:
        return img
    if img.shape[-1] == 1:
        return img[..., 0]
    if img.shape[-1] == 4:
        img = img[..., :3]
    if bgr:
        img = img[..., ::-1]
    return rgb_to_grey(img)


def _interp(src_hw, dst_hw):
    import cv2

    shrink = dst_hw[0] < src_hw[0] or dst_hw[1] < src_hw[1]
    return (cv2.INTER_AREA, RESIZE_DOWN) if shrink else (cv2.INTER_LINEAR, RESIZE_UP)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Resize one grey uint8 image to size x size (INTER_AREA down, INTER_LINEAR up)."""
    import cv2

    if img.shape[:2] == (size, size):
        return img
    flag, _ = _interp(img.shape[:2], (size, size))
    return cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=flag)


def resize_stack(images: np.ndarray, size: int, progress: bool = False, desc: str = "resize"):
    """Resize uint8 [N, h, w] to [N, size, size]; returns (array, method description)."""
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    if (h, w) == (size, size):
        return images, "none"
    _, method = _interp((h, w), (size, size))
    out = np.empty((n, size, size), np.uint8)
    for i in _progress(range(n), progress and n >= 5000, desc):
        out[i] = resize(images[i], size)
    return out, method


def center_square(img: np.ndarray) -> np.ndarray:
    """Central square crop (side = the shorter side); keeps the face's aspect ratio."""
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return img[y0:y0 + s, x0:x0 + s]


# CelebA crop of the paper on the 178x218 aligned images: 108x108 at (x=35, y=70).
CELEBA_CROP = (35, 70, 108)
CELEBA_WIDTH = 178


def celeba_crop(grey: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    """Crop the paper's face box, scaled by width/178, and resize it to size x size.

    Shrinking (box larger than `size`): the box is rounded to whole pixels and resized with
    INTER_AREA. Growing (e.g. the 54x54 box on 89x109 copies): an exact sub-pixel affine
    warp with bilinear sampling, so the fractional offset (17.5, 35) is honoured.
    """
    import cv2

    h, w = grey.shape[:2]
    r = w / CELEBA_WIDTH
    x0, y0, side = CELEBA_CROP[0] * r, CELEBA_CROP[1] * r, CELEBA_CROP[2] * r
    if side > size:
        xi, yi, si = int(round(x0)), int(round(y0)), int(round(side))
        box = grey[yi:yi + si, xi:xi + si]
        return cv2.resize(np.ascontiguousarray(box), (size, size),
                          interpolation=cv2.INTER_AREA), RESIZE_DOWN
    s = side / size
    # output pixel centre (u + 0.5) maps to source x0 + (u + 0.5) * s; cv2 samples at integer
    # coordinates = pixel centres, hence the -0.5 shifts.
    m = np.array([[s, 0, x0 + 0.5 * s - 0.5], [0, s, y0 + 0.5 * s - 0.5]], np.float64)
    out = cv2.warpAffine(grey, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return out, "cv2.warpAffine INTER_LINEAR (sub-pixel crop, upscaling)"


def pixel_minmax(arrays) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel min and max (uint8 [H, W]) over all images of all given uint8 [N, H, W] arrays."""
    lo = hi = None
    for a in arrays:
        if len(a) == 0:
            continue
        amin, amax = a.min(axis=0), a.max(axis=0)
        lo = amin if lo is None else np.minimum(lo, amin)
        hi = amax if hi is None else np.maximum(hi, amax)
    return lo, hi


def apply_minmax(images_u8: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min) per pixel, float32; pixels constant over the dataset become 0."""
    lo = lo.astype(np.float32)
    rng = hi.astype(np.float32) - lo
    rng[rng == 0] = 1.0
    return ((images_u8.astype(np.float32) - lo) / rng).astype(np.float32)


def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=desc, unit="img", mininterval=1.0, leave=False)
