"""FaceScrub faces at 64x64 grey, from any of three layouts found under <data_dir>/facescrub_subset12
(or <data_dir>/facescrub):

- the project's npz (`images_rgb` uint8 [N, 64, 64, 3], `labels`, `names`);
- the authors' npz (`actor_images`, `actor_labels`, `actress_images`, `actress_labels`);
- an image-folder tree `<identity>/<image>` (labels = identities in sorted order).

Grey = PIL's 'L' conversion (ITU-R 601, see preprocess.rgb_to_grey); one split, `all`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import (Found, Loaded, Skipper, SplitData, decode_image, find_folder,
                                 int_labels, is_image_name, npz_keys, read_npz)
from tfminv.errors import DataError

NAME = "facescrub"
FOLDERS = ("facescrub_subset12", "facescrub")
SPLITS = ("all",)
DEFAULT_SIZE = 64
EXPECTED = ("put FaceScrub in <data_dir>/facescrub_subset12/ (or <data_dir>/facescrub/) as an npz "
            "with images_rgb/labels/names, the authors' npz with actor_images/actor_labels/"
            "actress_images/actress_labels, or a folder tree <identity>/<image>.jpg")
AUTHORS_KEYS = ("actor_images", "actor_labels", "actress_images", "actress_labels")


def find(data_dir) -> Found:
    folder = find_folder(data_dir, FOLDERS, EXPECTED)
    npzs = sorted(folder.glob("*.npz"))
    for p in npzs:
        keys = _npz_keys(p)
        if {"images_rgb", "labels"} <= keys or {"images", "labels"} <= keys:
            return Found(folder, "npz", [p])
        if set(AUTHORS_KEYS) <= keys:
            return Found(folder, "authors_npz", [p])
    ids = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [f for d in ids for f in sorted(d.iterdir()) if f.is_file() and is_image_name(f.name)]
    if files:
        return Found(folder, "tree", files, {"identities": [d.name for d in ids]})
    if npzs:
        raise DataError(f"{npzs[0]}: keys {sorted(_npz_keys(npzs[0]))}; expected images_rgb+labels "
                        f"or {', '.join(AUTHORS_KEYS)}")
    raise DataError(f"{folder}: no FaceScrub npz and no <identity>/<image> folders; {EXPECTED}")


_npz_keys = npz_keys


def _grey_stack(images: np.ndarray, where: str) -> np.ndarray:
    """[N, h, w] or [N, h, w, 1|3] uint8/float -> uint8 [N, h, w] grey."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        if images.size and images.max() <= 1.0 + 1e-6:
            images = np.round(images * 255.0)
        images = np.clip(images, 0, 255).astype(np.uint8)
    if images.ndim == 4:
        if images.shape[-1] not in (1, 3):
            raise DataError(f"{where}: images of shape {images.shape}; expected [N, H, W, 3] RGB "
                            "or [N, H, W] grey")
        return images[..., 0] if images.shape[-1] == 1 else preprocess.rgb_to_grey(images)
    if images.ndim != 3:
        raise DataError(f"{where}: images of shape {images.shape}; expected [N, H, W(, 3)]")
    return images


def load(found: Found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    skip = Skipper(skip_corrupt)
    prep = {"grey": preprocess.GREY}
    if found.fmt in ("npz", "authors_npz"):
        p = found.files[0]
        keys = _npz_keys(p)
        if found.fmt == "npz":
            key = "images_rgb" if "images_rgb" in keys else "images"
            z = read_npz(p, [key, "labels"] + (["names"] if "names" in keys else []),
                         rows=limit, row_keys=[key, "labels"])
            images = _grey_stack(z[key], f"{p}:{key}")
            labels = int_labels(z["labels"], f"{p}:labels")
            names = tuple(str(n) for n in z["names"]) if "names" in z else ()
            where = f"{p}:labels"
        else:
            z = read_npz(p, AUTHORS_KEYS)
            a_img = _grey_stack(z["actor_images"], f"{p}:actor_images")
            b_img = _grey_stack(z["actress_images"], f"{p}:actress_images")
            a_lab = int_labels(z["actor_labels"], f"{p}:actor_labels")
            b_lab = int_labels(z["actress_labels"], f"{p}:actress_labels")
            for img, lab, k in ((a_img, a_lab, "actor"), (b_img, b_lab, "actress")):
                if len(img) != len(lab):
                    raise DataError(f"{p}: {len(lab)} {k}_labels but {len(img)} {k}_images; "
                                    "expected one label per image")
            if len(a_lab) and len(b_lab) and b_lab.min() <= a_lab.max():
                b_lab = b_lab + a_lab.max() + 1  # keep actress identities distinct
                prep["labels"] = "actress labels offset by max(actor_labels)+1"
            images = np.concatenate([a_img, b_img])
            labels = np.concatenate([a_lab, b_lab])
            names = ()
            where = f"{p}:actor_labels/actress_labels"
        if len(images) != len(labels):
            raise DataError(f"{where}: {len(labels)} labels but {len(images)} images; expected "
                            "one label per image")
        if limit:
            images, labels = images[:limit], labels[:limit]
        images, method = preprocess.resize_stack(images, size, progress, "facescrub")
    else:
        ids = found.extra["identities"]
        index = {n: i for i, n in enumerate(ids)}
        files = found.files[:limit] if limit else found.files
        imgs, labs = [], []
        it = preprocess._progress(files, progress and len(files) >= 2000, "facescrub")
        for f in it:
            try:
                g = preprocess.to_grey(decode_image(f.read_bytes(), str(f)))
            except DataError as e:
                skip(e, str(f))
                continue
            imgs.append(preprocess.resize(g, size))
            labs.append(index[f.parent.name])
        images = np.stack(imgs) if imgs else np.zeros((0, size, size), np.uint8)
        labels = np.asarray(labs, np.int64)
        names = tuple(ids)
        method = f"{preprocess.RESIZE_DOWN} when shrinking, {preprocess.RESIZE_UP} when growing"
    if names and len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise DataError(f"{found.files[0]}: label values {labels.min()}..{labels.max()} but "
                        f"{len(names)} names; expected labels in 0..{len(names) - 1}")
    if not names and len(labels):
        names = tuple(str(i) for i in range(int(labels.max()) + 1))
    prep["resize"] = method
    return Loaded(splits={"all": SplitData(np.ascontiguousarray(images), labels)},
                  label_names=names, preprocessing=prep, skipped=skip.skipped)
