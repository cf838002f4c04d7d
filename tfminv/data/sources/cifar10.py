"""CIFAR-10 as grey images at 32x32 (or 64x64), from any of these under <data_dir>/cifar10:

- the official python batches `cifar-10-batches-py/` (or the `cifar-10-python.tar.gz` holding it);
- an extracted class-folder tree `train/<class>/*.jpg`, `test/<class>/*.jpg`;
- tarballs of such a tree (e.g. `cifar10_jpeg_train_50000.tar.gz`, `cifar10_jpeg_test_10000.tar.gz`).

Grey = PIL 'L' conversion of the RGB pixels. In the folder layouts, images are ordered by
(class, file name); the python batches keep the official order.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import (Found, Loaded, Skipper, SplitData, decode_image, find_folder,
                                 is_image_name, read_tar_members)
from tfminv.errors import DataError

NAME = "cifar10"
FOLDERS = ("cifar10", "cifar-10")
SPLITS = ("train", "test")
DEFAULT_SIZE = 32
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
EXPECTED = ("put CIFAR-10 in <data_dir>/cifar10/ as the official cifar-10-batches-py/ folder (or "
            "cifar-10-python.tar.gz), class folders train/<class>/*.jpg and test/<class>/*.jpg, or "
            "tarballs of them; or add --download to the build command")
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz)$")


def find(data_dir) -> Found:
    folder = find_folder(data_dir, FOLDERS, EXPECTED)
    py = folder / "cifar-10-batches-py"
    if py.is_dir():
        files = [py / b for s in SPLITS for b in BATCHES[s]]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{missing[0]} not found; expected {', '.join(b for s in SPLITS for b in BATCHES[s])} in {py}")
        return Found(folder, "python_batches", files)
    if (folder / "cifar-10-python.tar.gz").is_file():
        return Found(folder, "python_tar", [folder / "cifar-10-python.tar.gz"])
    tree = {s: folder / s for s in SPLITS if (folder / s).is_dir()}
    if tree:
        files = sorted(f for d in tree.values() for f in d.rglob("*")
                       if f.is_file() and is_image_name(f.name))
        return Found(folder, "tree", files)
    archives = sorted(f for f in folder.iterdir() if f.is_file() and _ARCHIVE.search(f.name))
    if archives:
        return Found(folder, "tree_archives", archives)
    raise DataError(f"{folder}: no CIFAR-10 files found; {EXPECTED}")


def _class_of(parts, where: str) -> tuple[str, int]:
    """(split, label) from a path `.../<split>/<class>/<file>`."""
    if len(parts) < 3 or parts[-3] not in SPLITS:
        raise DataError(f"{where}: expected a path <train|test>/<class>/<image>")
    cls = parts[-2]
    if cls not in LABEL_NAMES:
        raise DataError(f"{where}: class folder {cls!r}; expected one of {LABEL_NAMES}")
    return parts[-3], LABEL_NAMES.index(cls)


def _sort_key(name: str):
    stem = Path(name).stem
    return (int(stem) if stem.isdigit() else float("inf"), name)


def _unpickle(data: bytes, where: str):
    try:
        d = pickle.loads(data, encoding="bytes")
        x = np.asarray(d[b"data"], np.uint8)
        y = np.asarray(d[b"labels"], np.int64)
    except Exception as e:  # noqa: BLE001 - any failure means a bad batch file
        raise DataError(f"{where}: not a CIFAR-10 python batch ({type(e).__name__}: {e}); "
                        "expected a pickled dict with b'data' [N, 3072] and b'labels'") from e
    if x.ndim != 2 or x.shape[1] != 3072:
        raise DataError(f"{where}: data of shape {x.shape}; expected [N, 3072]")
    if len(y) != len(x):
        raise DataError(f"{where}: {len(y)} labels but {len(x)} images; expected one per image")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


def _finish(rgb_or_grey: list, size: int) -> np.ndarray:
    out = []
    for img in rgb_or_grey:
        out.append(preprocess.resize(preprocess.to_grey(img), size))
    return np.stack(out) if out else np.zeros((0, size, size), np.uint8)


def load(found: Found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    skip = Skipper(skip_corrupt)
    splits = {}
    if found.fmt in ("python_batches", "python_tar"):
        blobs = {}
        if found.fmt == "python_batches":
            for f in found.files:
                blobs[f.name] = (f.read_bytes(), str(f))
        else:
            for name, data in read_tar_members(found.files[0]):
                blobs[Path(name).name] = (data, f"{found.files[0]}:{name}")
        for split in SPLITS:
            xs, ys = [], []
            for b in BATCHES[split]:
                if b not in blobs:
                    raise DataError(f"{found.files[0]}: batch {b} missing; expected "
                                    f"{BATCHES[split]}")
                x, y = _unpickle(*blobs[b])
                xs.append(x)
                ys.append(y)
            rgb, labels = np.concatenate(xs), np.concatenate(ys)
            if limit:
                rgb, labels = rgb[:limit], labels[:limit]
            grey, method = preprocess.resize_stack(preprocess.rgb_to_grey(rgb), size, progress)
            splits[split] = SplitData(grey, labels)
    else:
        items = {s: [] for s in SPLITS}  # (label, sort key, where, bytes or path)
        if found.fmt == "tree":
            for f in found.files:
                split, label = _class_of(f.parts, str(f))
                items[split].append((label, _sort_key(f.name), str(f), f))
        else:
            for arc in found.files:
                for name, data in read_tar_members(arc, progress, arc.name):
                    if not is_image_name(name):
                        continue
                    where = f"{arc}:{name}"
                    split, label = _class_of(Path(name).parts, where)
                    items[split].append((label, _sort_key(name), where, data))
        for split in SPLITS:
            rows = sorted(items[split], key=lambda r: (r[0], r[1]))
            imgs, labels = [], []
            for label, _, where, src in rows:
                if limit and len(labels) >= limit:
                    break
                try:
                    data = src.read_bytes() if isinstance(src, Path) else src
                    imgs.append(decode_image(data, where))
                except DataError as e:
                    skip(e, where)
                    continue
                labels.append(label)
            splits[split] = SplitData(_finish(imgs, size), np.asarray(labels, np.int64))
        method = (preprocess.RESIZE_UP if size > 32 else preprocess.RESIZE_DOWN if size < 32
                  else "none (32x32 sources)")
    return Loaded(splits=splits, label_names=LABEL_NAMES, skipped=skip.skipped,
                  preprocessing={"grey": preprocess.GREY, "resize": method,
                                 "order": "official" if found.fmt.startswith("python")
                                 else "by (class, file name)"})
