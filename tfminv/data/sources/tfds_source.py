"""A TensorFlow Datasets data dir as the source: prepared `mnist`, `cifar10` or `celeb_a`.

The prepared files are read with `tfds.builder_from_directory` (no dataset code, no download):
the same preprocessing as the raw readers is applied (grey, resize, CelebA crop). TFDS CelebA
has attributes but no identities, so CelebA labels are -1.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import Found, Loaded, SplitData
from tfminv.errors import ConfigError, DataError

TFDS_NAMES = {"mnist": "mnist", "cifar10": "cifar10", "celeba": "celeb_a"}
SPLIT_NAMES = {"validation": "valid"}


def _version_key(p: Path):
    return tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[.]", p.name))


def find(dataset: str, tfds_data_dir) -> Found:
    if dataset not in TFDS_NAMES:
        raise ConfigError(f"--source=tfds supports {sorted(TFDS_NAMES)}, not {dataset!r}")
    if not tfds_data_dir:
        raise ConfigError("--source=tfds needs --tfds_data_dir (the folder holding "
                          f"{TFDS_NAMES[dataset]}/<version>/)")
    name = TFDS_NAMES[dataset]
    root = Path(tfds_data_dir) / name
    versions = sorted((d for d in root.glob("*") if (d / "dataset_info.json").is_file()),
                      key=_version_key) if root.is_dir() else []
    if not versions:
        raise DataError(f"no prepared TFDS dataset in {root}: expected {root}/<version>/"
                        f"dataset_info.json (prepare it with `tfds build {name} "
                        f"--data_dir={tfds_data_dir}`)")
    vdir = versions[-1]
    files = sorted(f for f in vdir.rglob("*") if f.is_file())
    return Found(vdir, f"tfds:{name}/{vdir.name}", files)


def load(found: Found, size: int, *, dataset: str, limit=None, skip_corrupt=False,
         progress=False) -> Loaded:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder_from_directory(str(found.folder))
    except Exception as e:  # noqa: BLE001 - any failure means an unusable prepared dataset
        raise DataError(f"{found.folder}: cannot open prepared TFDS dataset "
                        f"({type(e).__name__}: {e})") from e
    info = builder.info
    label_names, attr_names = (), ()
    if "label" in info.features and hasattr(info.features["label"], "names"):
        label_names = tuple(info.features["label"].names)
    if dataset == "celeba":
        attr_names = tuple(sorted(info.features["attributes"].keys()))
    splits, methods = {}, set()
    for tsplit in info.splits.keys():
        split = SPLIT_NAMES.get(tsplit, tsplit)
        ds = builder.as_dataset(split=tsplit, shuffle_files=False)
        if limit:
            ds = ds.take(limit)
        imgs, labs, atts = [], [], []
        for ex in preprocess._progress(tfds.as_numpy(ds), progress, f"tfds {split}"):
            grey = preprocess.to_grey(np.asarray(ex["image"], np.uint8))
            if dataset == "celeba":
                img, m = preprocess.celeba_crop(grey, size)
                methods.add(m)
                atts.append(np.array([1 if ex["attributes"][k] else -1 for k in attr_names],
                                     np.int8))
                labs.append(-1)
            else:
                img = preprocess.resize(grey, size)
                labs.append(int(ex["label"]))
            imgs.append(img)
        images = np.stack(imgs) if imgs else np.zeros((0, size, size), np.uint8)
        attributes = None
        if attr_names:
            attributes = np.stack(atts) if atts else np.zeros((0, len(attr_names)), np.int8)
        splits[split] = SplitData(images, np.asarray(labs, np.int64), attributes)
    if dataset != "celeba":
        methods.add(preprocess.RESIZE_UP if size > info.features["image"].shape[0]
                    else preprocess.RESIZE_DOWN if size < info.features["image"].shape[0]
                    else "none")
    return Loaded(splits=splits, label_names=label_names, attribute_names=attr_names,
                  preprocessing={"source": f"TFDS {info.name} {info.version}",
                                 "grey": preprocess.GREY, "resize": sorted(methods)})
