"""UTKFace aligned faces as generic auxiliary faces, 64x64 grey, framed like the paper's CelebA
crop. Two layouts, the user's own first:

- <data_dir>/utkface/ (or UTKFace/): the official "aligned & cropped" 200x200 JPEGs
  (`<age>_<gender>_<race>_<date>.jpg.chip.jpg`) directly in the folder, or a tar/tar.gz of them
  (UTKFace.tar.gz). Cropped with the fixed box of extra_faces_aux's PROVENANCE.md, (x0, y0,
  side) = (-6, -24, 212) on 200x200 (scaled to the image's width), reflect-101 padding where it
  leaves the image, then resized; byte-identical files count once (390 in the official set);
- the `utkface` set of <data_dir>/extra_faces_aux (the same crops as JPEG q90; see
  `extra_faces`).

Labels -1 (UTKFace has no identities, so a pooled set cannot be checked against a target's
people by name; see datasets/README.md). One split, `all`.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import (Found, Loaded, Skipper, SplitData, decode_image, extra_faces,
                                 is_image_name, read_tar_members)
from tfminv.errors import DataError

NAME = "utkface"
USER_FOLDERS = ("utkface", "UTKFace")
FOLDERS = USER_FOLDERS + (extra_faces.FOLDER,)
SPLITS = ("all",)
DEFAULT_SIZE = 64
EXPECTED = ("put UTKFace's aligned 200x200 JPEGs (or UTKFace.tar.gz) in <data_dir>/utkface/, or "
            + extra_faces.EXPECTED)
#: (x0, y0, side) on 200x200: the median Haar box mapped to the paper's CelebA framing
BOX = (-6.0, -24.0, 212.0)
BOX_WIDTH = 200.0
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz)$")


def find(data_dir) -> Found:
    from pathlib import Path

    root = Path(data_dir)
    for f in USER_FOLDERS:
        folder = root / f
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p.name))
        if files:
            return Found(folder, "folder", files)
        archives = sorted(p for p in folder.iterdir() if p.is_file() and _ARCHIVE.search(p.name))
        if archives:
            return Found(folder, "archive", [max(archives, key=lambda p: p.stat().st_size)])
        raise DataError(f"{folder}: no UTKFace JPEGs and no tar/tar.gz of them; {EXPECTED}")
    return extra_faces.find(data_dir, NAME)


def fixed_crop(grey: np.ndarray, size: int, box=BOX, width=BOX_WIDTH) -> np.ndarray:
    """The fixed face box (scaled by the image's width / `width`), reflect-101 padded where
    it leaves the image, resized to size x size."""
    import cv2

    r = grey.shape[1] / width
    x, y, side = (int(round(v * r)) for v in box)
    pad = max(0, -x, -y, x + side - grey.shape[1], y + side - grey.shape[0])
    img = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) if pad else grey
    crop = img[y + pad:y + pad + side, x + pad:x + pad + side]
    return preprocess.resize(np.ascontiguousarray(crop), size)


def load(found: Found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    if found.fmt == "extra_faces_tar":
        return extra_faces.load(found, size, NAME, limit=limit, skip_corrupt=skip_corrupt,
                                progress=progress)
    skip = Skipper(skip_corrupt)
    if found.fmt == "folder":
        items = ((f.name, str(f), f) for f in found.files)
    else:
        arc = found.files[0]
        items = ((n, f"{arc}:{n}", d) for n, d in read_tar_members(arc, progress, NAME)
                 if is_image_name(n))
    seen, imgs, dups = set(), [], 0
    for _, where, src in items:
        data = src if isinstance(src, bytes) else src.read_bytes()
        digest = hashlib.sha256(data).digest()
        if digest in seen:
            dups += 1
            continue
        seen.add(digest)
        try:
            grey = preprocess.to_grey(decode_image(data, where))
        except DataError as e:
            skip(e, where)
            continue
        imgs.append(fixed_crop(grey, size))
        if limit and len(imgs) >= limit:
            break
    images = np.stack(imgs) if imgs else np.zeros((0, size, size), np.uint8)
    prep = {"source": f"user UTKFace ({found.fmt})", "grey": preprocess.GREY,
            "crop": f"fixed box (x0, y0, side) = {BOX} on 200x200 scaled by width/200, "
                    "cv2.BORDER_REFLECT_101 padding",
            "resize": f"{preprocess.RESIZE_DOWN} when shrinking", "duplicates_dropped": dups,
            "labels": "-1 (UTKFace has no identities)"}
    return Loaded(splits={"all": SplitData(images, np.full(len(images), -1, np.int64))},
                  preprocessing=prep, skipped=skip.skipped)
