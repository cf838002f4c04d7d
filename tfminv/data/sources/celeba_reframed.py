"""CelebA aligned faces re-framed like the `celeba_identities` crops: the OpenCV Haar face box
(FaceScrub-like framing) instead of the paper's fixed 108x108 crop at (35, 70).

Same raw files as `celeba` (<data_dir>/celeba). Per image: `haarcascade_frontalface_default.xml`
(scaleFactor 1.08, minNeighbors 4, minSize 24, on the image scaled to at most 120 px per side,
the settings that cut `celeba_identities`); among the detections the box maximising
width / min side - 2 x (centre offset / min side), accepted when the offset is < 0.2 and the
width >= 0.25 of the min side; made square, cropped (edge-replicated past the border), resized to
64. Images with no accepted box fall back to the paper's fixed crop (counted in the metadata).
Splits as `celeba` (official partition); labels the CelebA identity id.
"""

from __future__ import annotations

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import Loaded, Skipper, SplitData, decode_image
from tfminv.data.sources import celeba as _celeba
from tfminv.errors import DataError

NAME = "celeba_reframed"
FOLDERS = _celeba.FOLDERS
SPLITS = _celeba.SPLITS
DEFAULT_SIZE = 64
EXPECTED = _celeba.EXPECTED
find = _celeba.find

DETECT = {"max_side": 120, "scaleFactor": 1.08, "minNeighbors": 4, "minSize": 24,
          "max_offset": 0.2, "min_width": 0.25}


def face_box(grey: np.ndarray, cascade) -> tuple | None:
    """(x, y, side) of the chosen square face box in `grey`'s pixels, or None."""
    import cv2

    h, w = grey.shape
    s = min(1.0, DETECT["max_side"] / max(h, w))
    small = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA) if s < 1 else grey
    ms = DETECT["minSize"]
    boxes = cascade.detectMultiScale(small, scaleFactor=DETECT["scaleFactor"],
                                     minNeighbors=DETECT["minNeighbors"], minSize=(ms, ms))
    side = min(small.shape)
    best, best_score = None, -np.inf
    for (x, y, bw, bh) in boxes:
        off = np.hypot(x + bw / 2 - small.shape[1] / 2, y + bh / 2 - small.shape[0] / 2) / side
        if off >= DETECT["max_offset"] or bw < DETECT["min_width"] * side:
            continue
        score = bw / side - 2 * off
        if score > best_score:
            best, best_score = (x, y, bw, bh), score
    if best is None:
        return None
    x, y, bw, bh = best
    sq = max(bw, bh)
    cx, cy = x + bw / 2, y + bh / 2
    return ((cx - sq / 2) / s, (cy - sq / 2) / s, sq / s)


def reframe(grey: np.ndarray, box, size: int) -> np.ndarray:
    """Crop the square box (edge-replicated where it leaves the image), resize to size."""
    import cv2

    x, y, side = (int(round(v)) for v in box)
    pad = max(0, -x, -y, x + side - grey.shape[1], y + side - grey.shape[0])
    img = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else grey
    crop = img[y + pad:y + pad + side, x + pad:x + pad + side]
    return preprocess.resize(np.ascontiguousarray(crop), size)


def load(found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    from tfminv.cascades import load_cascade

    cascade = load_cascade("haarcascade_frontalface_default.xml")
    skip = Skipper(skip_corrupt)
    ex = found.extra
    partition = _celeba._table(ex["partition"], "0|1|2") if ex.get("partition") else None
    identity = _celeba._table(ex["identity"], "identity id") if ex.get("identity") else None
    buckets = {s: ([], []) for s in SPLITS}
    detected = fallback = 0
    seen = set()
    for fname, where, src in _celeba._iter_images(found, progress):
        if fname in seen:
            continue
        seen.add(fname)
        part = partition.get(fname, 0) if partition is not None else 0
        if part not in (0, 1, 2):
            raise DataError(f"{ex['partition']}: {fname} has partition {part}; expected 0-2")
        if limit and len(buckets[SPLITS[part]][0]) >= limit:
            continue
        try:
            data = src.read_bytes() if not isinstance(src, bytes) else src
            grey = preprocess.to_grey(decode_image(data, where))
        except DataError as e:
            skip(e, where)
            continue
        box = face_box(grey, cascade)
        if box is None:
            fallback += 1
            img, _ = preprocess.celeba_crop(grey, size)
        else:
            detected += 1
            img = reframe(grey, box, size)
        imgs, labs = buckets[SPLITS[part]]
        imgs.append(img)
        labs.append(identity.get(fname, -1) if identity is not None else -1)
    splits = {s: SplitData(np.stack(i) if i else np.zeros((0, size, size), np.uint8),
                           np.asarray(l, np.int64)) for s, (i, l) in buckets.items()}
    prep = {"crop": f"Haar face box framed like celeba_identities ({DETECT}); fallback: "
                    "108x108 at (35, 70) of 178x218 scaled by width/178",
            "face_detected": detected, "fallback_fixed_crop": fallback,
            "grey": preprocess.GREY, "labels": "CelebA identity id"}
    return Loaded(splits=splits, preprocessing=prep, skipped=skip.skipped)
