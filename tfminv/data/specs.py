"""User image sets named by one string, for `--aux` / `--victims` and for Python callers.

    folder:DIR            image files (PNG, JPEG, BMP, PGM/PPM, TIFF, WebP) directly in DIR
                          (no labels), or in class sub-folders DIR/<class>/ (labels = sorted
                          sub-folder index, label names = folder names; every sub-folder is a
                          class, empty ones too, so a class without images shifts no label;
                          names that are all integers sort numerically: 2 before 10)
    npz:FILE              a NumPy .npz with `images` ([N, H, W] or [N, H, W, C], uint8 0-255 or
                          float 0-1) and optional `labels` ([N] integers)
    tfds:NAME:SPLIT       an already prepared TensorFlow Datasets dataset (e.g. tfds:mnist:test)
                          read from the TFDS data dir (`tfds_data_dir=`, else $TFDS_DATA_DIR,
                          else ~/tensorflow_datasets) with `tfds.builder_from_directory`: it
                          never downloads, and a dataset that is not prepared fails at once
    records:DIR[:SPLIT]   TFRecords built by `python -m tfminv.data.build` (a folder holding
                          metadata.json; SPLIT defaults to all splits)

Images are kept as stored: no resizing, no colour conversion (the target sees what the user
has). Sizes are checked before decoding (`tfminv.data.limits`: image headers, npz array headers,
the decoded total), and `limit` (the budget caps, e.g. --max_aux) applies before loading: only
the first `limit` files / rows are read. Every problem (empty folder, unreadable file, mixed sizes or channel counts, a missing
key) raises a DataError/ConfigError naming the spec, the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, DataError, first_line

SCHEMES = ("folder", "npz", "tfds", "records")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm", ".tif", ".tiff", ".webp")


@dataclasses.dataclass
class UserImages:
    """images: uint8 [N, H, W, C] (or float32 in [0, 1] from an npz of floats); labels: int64
    [N] or None; label_names: class names when the source has them; source: the spec."""

    images: np.ndarray
    labels: np.ndarray | None
    label_names: tuple = ()
    source: str = ""

    def __len__(self) -> int:
        return len(self.images)


def is_spec(value: str) -> bool:
    """Whether `value` names a user image set (SCHEME:...) rather than e.g. an allocation name."""
    scheme, sep, rest = (value or "").partition(":")
    return bool(sep) and scheme in SCHEMES


def load(spec: str, *, what: str = "images", tfds_data_dir=None,
         limit: int | None = None) -> UserImages:
    """Load the image set `spec` names; `what` (e.g. '--victims') prefixes every error.

    limit: keep only the first `limit` images (file order; None or 0: all), read no others."""
    scheme, sep, rest = (spec or "").partition(":")
    if not sep or scheme not in SCHEMES or not rest:
        raise ConfigError(f"{what}={spec!r}: expected folder:DIR, npz:FILE, tfds:NAME:SPLIT or "
                          "records:DIR[:SPLIT]")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or limit < 0):
        raise ConfigError(f"{what}: limit={limit!r}; expected a non-negative integer (0: all)")
    limit = int(limit) if limit else None
    where = f"{what}={spec}"
    if scheme == "folder":
        out = _folder(Path(rest), where, limit)
    elif scheme == "npz":
        out = _npz(Path(rest), where, limit)
    elif scheme == "tfds":
        out = _tfds(rest, where, tfds_data_dir, limit)
    else:
        out = _records(rest, where, limit)
    out.source = spec
    _check_stack(out.images, where)
    return out


def _check_stack(images, where):
    if images.ndim != 4 or len(images) == 0:
        raise DataError(f"{where}: expected a non-empty stack of images [N, H, W, C], got shape "
                        f"{images.shape}")


def _read_image(path: Path) -> np.ndarray:
    """One image file as stored; its header is checked against the pixel limit first."""
    import cv2

    from tfminv.data.limits import check_image_header

    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    check_image_header(data, str(path))
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error as e:
        raise DataError(f"{path}: cannot decode this image ({first_line(e)})") from None
    if arr is None or arr.size == 0:
        raise DataError(f"{path}: cannot read this image; expected a valid "
                        f"{'/'.join(e[1:] for e in IMAGE_EXTS)} file")
    if arr.dtype != np.uint8:
        raise DataError(f"{path}: {arr.dtype} pixels; expected 8-bit images")
    if arr.ndim == 2:
        return arr[..., None]
    if arr.shape[-1] == 4:
        arr = arr[..., :3]  # alpha dropped
    if arr.shape[-1] == 3:
        arr = arr[..., ::-1]  # OpenCV reads BGR
    return np.ascontiguousarray(arr)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                  and not p.name.startswith("."))


def _folder(root: Path, where: str, limit=None) -> UserImages:
    if not root.is_dir():
        raise DataError(f"{where}: {root} is not a folder")
    top = _image_files(root)
    subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if subs and all(d.name.isdigit() for d in subs):
        subs.sort(key=lambda d: int(d.name))
    # every sub-folder is a class once one holds images: dropping empty ones shifts the labels
    classes = subs if any(_image_files(d) for d in subs) else []
    if top and classes:
        raise DataError(f"{where}: {root} holds both image files and class sub-folders "
                        f"({', '.join(d.name for d in classes[:3])}); expected one or the other")
    if not top and not classes:
        raise DataError(f"{where}: no image files ({', '.join(IMAGE_EXTS)}) in {root} or its "
                        "sub-folders")
    files = [(f, -1) for f in top] if top else [
        (f, i) for i, d in enumerate(classes) for f in _image_files(d)]
    files = files[:limit] if limit else files
    from tfminv.data.limits import DecodeBudget

    budget = DecodeBudget(where)
    images, first = [], None
    for f, _ in files:
        img = _read_image(f)
        budget.add(img.nbytes, str(f))
        if first is None:
            first = (f, img.shape)
        elif img.shape != first[1]:
            raise DataError(f"{where}: {f} is {_hwc(img.shape)} but {first[0]} is "
                            f"{_hwc(first[1])}: expected one image size and channel count "
                            "(images are never resized)")
        images.append(img)
    labels = None if top else np.array([c for _, c in files], np.int64)
    return UserImages(np.stack(images), labels, tuple(d.name for d in classes))


def _hwc(shape) -> str:
    return "x".join(str(d) for d in shape)


def _npz(path: Path, where: str, limit=None) -> UserImages:
    from tfminv.data import limits

    if not path.is_file():
        raise DataError(f"{where}: {path} not found")
    keys = limits.npz_keys(path, what=f"{where}: {path}")
    if "images" not in keys:
        raise DataError(f"{where}: {path} has keys {sorted(keys)}; expected 'images' (and "
                        "optionally 'labels')")
    z = limits.read_npz(path, [k for k in ("images", "labels", "label_names") if k in keys],
                        rows=limit, row_keys=("images", "labels"), what=f"{where}: {path}")
    images = np.asarray(z["images"])
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"{where}: {path} 'images' has shape {images.shape}; expected [N, H, W] "
                        "or [N, H, W, C]")
    labels = None
    if "labels" in keys:
        labels = np.asarray(z["labels"])
        if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
            raise DataError(f"{where}: {path} 'labels' has shape {labels.shape} and dtype "
                            f"{labels.dtype}; expected {len(images)} integers")
        labels = labels.astype(np.int64)
    names = tuple(str(n) for n in z["label_names"]) if "label_names" in keys else ()
    return UserImages(images, labels, names)


def _tfds(rest: str, where: str, tfds_data_dir, limit=None) -> UserImages:
    name, sep, split = rest.partition(":")
    if not sep or not name or not split:
        raise ConfigError(f"{where}: expected tfds:NAME:SPLIT, e.g. tfds:mnist:test")
    root = Path(tfds_data_dir or os.environ.get("TFDS_DATA_DIR")
                or Path.home() / "tensorflow_datasets") / name
    # Find the prepared version folder ourselves: tfds.load/builder would try to download or
    # to fetch dataset code when it is missing, and retry for minutes offline.
    from tfminv.data.sources.tfds_source import _version_key

    versions = sorted((d for d in root.rglob("dataset_info.json")), key=lambda p: (
        len(p.parts), _version_key(p.parent))) if root.is_dir() else []
    if not versions:
        raise DataError(f"{where}: no prepared TFDS dataset in {root} (expected "
                        f"{root}/<version>/dataset_info.json; prepare it with `tfds build {name}` "
                        "where there is network, or pass the data dir holding it); tfminv never "
                        "downloads")
    vdir = max((p.parent for p in versions), key=_version_key)
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder_from_directory(str(vdir))
        info = builder.info
    except Exception as e:  # noqa: BLE001 - a broken prepared folder
        raise DataError(f"{where}: cannot open the prepared dataset in {vdir} "
                        f"({type(e).__name__}: {first_line(e, 200)})") from None
    if split not in info.splits.keys():
        raise DataError(f"{where}: {name} has no split {split!r}; expected one of "
                        f"{sorted(info.splits.keys())}")
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if limit:
        ds = ds.take(limit)
    if "image" not in info.features:
        raise DataError(f"{where}: {name} has no 'image' feature (features: "
                        f"{sorted(info.features.keys())})")
    has_label = "label" in info.features
    images, labels = [], []
    for ex in tfds.as_numpy(ds):
        images.append(np.asarray(ex["image"], np.uint8))
        if has_label:
            labels.append(int(ex["label"]))
    if not images:
        raise DataError(f"{where}: split {split!r} of {vdir} is empty")
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"{where}: images of several sizes {sorted(shapes)[:3]}: expected one "
                        "size (images are never resized)")
    names = tuple(getattr(info.features["label"], "names", ()) or ()) if has_label else ()
    stack = np.stack(images)
    return UserImages(stack if stack.ndim == 4 else stack[..., None],
                      np.array(labels, np.int64) if has_label else None, names)


def _records(rest: str, where: str, limit=None) -> UserImages:
    from tfminv.data import records

    path, _, split = rest.partition(":")
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{where}: {path} is not a folder of records built by "
                        "`python -m tfminv.data.build`")
    meta = records.read_metadata(path)
    images, labels, _, meta = records.read_arrays(path, split or "all")
    if limit:
        images, labels = images[:limit], labels[:limit]
    names = tuple(meta.get("label_names") or ())
    labels = None if len(labels) and labels.min() < 0 else labels  # unlabelled (e.g. CelebA)
    return UserImages(images[..., None], labels, names)
