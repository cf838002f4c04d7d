"""CelebA's official test split as a face-identity set (998 identities, 64x64 face crops framed
like FaceScrub's bounding boxes), from <data_dir>/celeba_identities/ in either of two layouts:

- `npz` (preferred, lossless): `images_grey` uint8 [N, 64, 64], `labels` (index into
  `identity_ids`), `identity_ids` (the official CelebA identity ids); `celeba_identity` and
  `filenames` are cross-checked when present;
- `tar`: a tar/tar.gz of the same crops as RGB JPEGs named `<celeba file>.jpg` (e.g.
  `faces64_rgb_q95/182638.jpg`), labelled from the official `identity_CelebA.txt(.gz)` found
  next to it or in <data_dir>/celeba/. Grey = PIL's 'L' conversion of the decoded RGB (the npz's
  convention), so the two layouts differ only by the JPEG loss.

One split, `all`; label i is the i-th smallest CelebA identity id present, label name
`celeba_<id>` (CelebA identities are anonymous).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import (Found, Loaded, Skipper, SplitData, decode_image, find_folder,
                                 int_labels, is_image_name, npz_keys, read_npz, read_tar_members)
from tfminv.errors import DataError

NAME = "celeba_identities"
FOLDERS = ("celeba_identities",)
SPLITS = ("all",)
DEFAULT_SIZE = 64
EXPECTED = ("put the CelebA identity crops in <data_dir>/celeba_identities/: an npz with "
            "images_grey/labels/identity_ids, or a tar/tar.gz of <celeba file>.jpg face crops plus "
            "identity_CelebA.txt(.gz) (there or in <data_dir>/celeba/)")
NPZ_KEYS = ("images_grey", "labels", "identity_ids")
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz)$")


_npz_keys = npz_keys


def _identity_file(folder: Path):
    for d in (folder, folder.parent / "celeba"):
        if d.is_dir():
            for f in sorted(d.iterdir()):
                if f.is_file() and f.name.startswith("identity_CelebA") and \
                        (f.name.endswith(".txt") or f.name.endswith(".txt.gz")):
                    return f
    return None


def find(data_dir) -> Found:
    folder = find_folder(data_dir, FOLDERS, EXPECTED)
    npzs = sorted(folder.glob("*.npz"))
    for p in npzs:
        keys = _npz_keys(p)
        if set(NPZ_KEYS) <= keys:
            return Found(folder, "npz", [p])
    if npzs:
        raise DataError(f"{npzs[0]}: keys {sorted(_npz_keys(npzs[0]))}; expected "
                        f"{', '.join(NPZ_KEYS)}")
    archives = sorted(f for f in folder.iterdir() if f.is_file() and _ARCHIVE.search(f.name))
    if archives:
        ident = _identity_file(folder)
        if ident is None:
            raise DataError(f"{archives[0]}: no identity_CelebA.txt(.gz) in {folder} or "
                            f"{folder.parent / 'celeba'}; expected the official identity file to "
                            "label the JPEG crops")
        arc = max(archives, key=lambda f: f.stat().st_size)
        return Found(folder, "tar", [arc, ident], {"identity": ident})
    raise DataError(f"{folder}: no npz and no tar/tar.gz of face crops; {EXPECTED}")


def _label_names(ids) -> tuple:
    return tuple(f"celeba_{int(i)}" for i in ids)


def _load_npz(p: Path, limit):
    keys = list(NPZ_KEYS) + (["celeba_identity"] if "celeba_identity" in _npz_keys(p) else [])
    z = read_npz(p, keys)
    images = z["images_grey"]
    labels = int_labels(z["labels"], f"{p}:labels")
    ids = int_labels(z["identity_ids"], f"{p}:identity_ids")
    official = z.get("celeba_identity")
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{p}:images_grey is {images.dtype} {images.shape}; expected uint8 "
                        "[N, H, W] grey")
    if len(images) != len(labels):
        raise DataError(f"{p}: {len(labels)} labels but {len(images)} images; expected one label "
                        "per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(ids)):
        raise DataError(f"{p}: label values {labels.min()}..{labels.max()} but {len(ids)} "
                        f"identity_ids; expected labels in 0..{len(ids) - 1}")
    if len(ids) > 1 and np.any(np.diff(ids) <= 0):
        raise DataError(f"{p}: identity_ids are not strictly increasing; expected the sorted "
                        "unique CelebA identity ids")
    if official is not None and (len(official) != len(labels)
                                 or np.any(ids[labels] != official)):
        raise DataError(f"{p}: celeba_identity disagrees with identity_ids[labels]; expected "
                        "the same official id both ways")
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, labels, ids


def _load_tar(found: Found, size, limit, skip, progress):
    from tfminv.data.sources.celeba import _table

    arc, ident_file = found.files[0], found.extra["identity"]
    identity = _table(ident_file, "identity id")
    names, imgs = [], []
    for name, data in read_tar_members(arc, progress, NAME):
        if not is_image_name(name):
            continue
        fname = Path(name).name
        where = f"{arc}:{name}"
        if fname not in identity:
            raise DataError(f"{ident_file}: no entry for image {fname} ({where}); expected one "
                            "identity per CelebA file name")
        try:
            grey = preprocess.to_grey(decode_image(data, where))
        except DataError as e:
            skip(e, where)
            continue
        names.append(fname)
        imgs.append(preprocess.resize(grey, size))
        if limit and len(names) >= limit:
            break
    order = np.argsort(names, kind="stable")  # file-name order, like the npz
    names = [names[i] for i in order]
    images = np.stack([imgs[i] for i in order]) if imgs else np.zeros((0, size, size), np.uint8)
    official = np.array([identity[n] for n in names], np.int64)
    ids, labels = np.unique(official, return_inverse=True)
    return images, labels.astype(np.int64), ids


def load(found: Found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    skip = Skipper(skip_corrupt)
    prep = {"grey": preprocess.GREY,
            "crop": "Haar-cascade face box framed like FaceScrub's bounding boxes (PROVENANCE.md)",
            "labels": "index of the official CelebA identity id among the ids present "
                      "(label name celeba_<id>)"}
    if found.fmt == "npz":
        images, labels, ids = _load_npz(found.files[0], limit)
        images, method = preprocess.resize_stack(images, size, progress, NAME)
        prep["source"] = "lossless grey npz"
    else:
        images, labels, ids = _load_tar(found, size, limit, skip, progress)
        method = f"{preprocess.RESIZE_DOWN} when shrinking, {preprocess.RESIZE_UP} when growing"
        prep["source"] = "RGB JPEG crops (tar), grey by PIL 'L' conversion"
    prep["resize"] = method
    return Loaded(splits={"all": SplitData(np.ascontiguousarray(images), labels)},
                  label_names=_label_names(ids), preprocessing=prep, skipped=skip.skipped)


def identity_counts(data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """(CelebA ids, images per id), indexed by label (the sorted ids present), read from the raw
    files without decoding images; allocations use it to count the identities above a cut-off."""
    from tfminv import paths

    found = find(paths.data_dir(data_dir))
    if found.fmt == "npz":
        p = found.files[0]
        z = read_npz(p, ["labels", "identity_ids"])
        labels = int_labels(z["labels"], f"{p}:labels")
        ids = int_labels(z["identity_ids"], f"{p}:identity_ids")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(ids)):
            raise DataError(f"{p}: label values {labels.min()}..{labels.max()} but {len(ids)} "
                            f"identity_ids; expected labels in 0..{len(ids) - 1}")
        return ids, np.bincount(labels, minlength=len(ids))
    from tfminv.data.sources.celeba import _table

    import tarfile

    identity = _table(found.extra["identity"], "identity id")
    try:
        with tarfile.open(found.files[0], "r:*") as tf:
            names = [Path(m.name).name for m in tf if m.isfile() and is_image_name(m.name)]
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{found.files[0]}: corrupt or truncated archive ({e}); expected a "
                        "complete tar or tar.gz file") from e
    missing = [n for n in names if n not in identity]
    if missing:
        raise DataError(f"{found.extra['identity']}: no entry for image {missing[0]}; expected "
                        "one identity per CelebA file name")
    ids, labels = np.unique([identity[n] for n in names], return_inverse=True)
    return ids.astype(np.int64), np.bincount(labels, minlength=len(ids))
