"""CelebA aligned faces -> the paper's 108x108 crop at (35, 70), scaled to the copy's width, 64x64 grey.

Under <data_dir>/celeba: images from an `img_align_celeba*/` folder or, failing that, the largest
tar/tar.gz of aligned JPEGs (any scale of 178x218); `list_eval_partition.txt(.gz)` assigns
train/valid/test (without it every image is `train`); `identity_CelebA.txt(.gz)` gives the label
(identity id; -1 without the file); `list_attr_celeba*.txt(.gz)` gives 40 +1/-1 attributes
(0 = not listed for that image). Only images present are used.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import (Found, Loaded, Skipper, SplitData, decode_image, find_folder,
                                 is_image_name, read_tar_members)
from tfminv.errors import DataError

NAME = "celeba"
FOLDERS = ("celeba", "celeb_a", "CelebA")
SPLITS = ("train", "valid", "test")
DEFAULT_SIZE = 64
EXPECTED = ("put CelebA in <data_dir>/celeba/: img_align_celeba/ (a folder, or a tar/tar.gz of it, "
            "any scale of the 178x218 aligned JPEGs) and list_eval_partition.txt; optionally "
            "identity_CelebA.txt and list_attr_celeba.txt (plain or .gz)")
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz)$")


def _annotation(folder: Path, prefix: str):
    cands = sorted(f for f in folder.iterdir() if f.is_file() and f.name.startswith(prefix)
                   and (f.name.endswith(".txt") or f.name.endswith(".txt.gz")))
    return cands[0] if cands else None


def find(data_dir) -> Found:
    folder = find_folder(data_dir, FOLDERS, EXPECTED)
    dirs = sorted(d for d in folder.iterdir() if d.is_dir() and d.name.startswith("img_align_celeba"))
    if dirs:
        fmt, img_files = "folder", sorted(f for f in dirs[0].iterdir()
                                          if f.is_file() and is_image_name(f.name))
    else:
        archives = [f for f in folder.iterdir() if f.is_file() and _ARCHIVE.search(f.name)]
        if not archives:
            raise DataError(f"{folder}: no img_align_celeba/ folder and no tar/tar.gz of aligned "
                            f"images; {EXPECTED}")
        fmt, img_files = "archive", [max(archives, key=lambda f: f.stat().st_size)]
    extra = {k: _annotation(folder, p) for k, p in (("partition", "list_eval_partition"),
                                                    ("identity", "identity_CelebA"),
                                                    ("attributes", "list_attr_celeba"))}
    ann = [f for f in extra.values() if f is not None]
    return Found(folder, fmt, img_files + ann, extra)


def _lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8").splitlines()
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e}); expected a text file "
                        "(optionally gzipped)") from e


def _table(path: Path, what: str) -> dict:
    """`<file> <int>` per line -> {file: int}."""
    out = {}
    for i, line in enumerate(_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            if i == 1:
                continue  # a header line such as "img label"
            raise DataError(f"{path}:{i}: {line!r}; expected '<image>.jpg <{what}>'")
        out[parts[0]] = int(parts[1])
    return out


def _attributes(path: Path) -> tuple[tuple, dict]:
    lines = _lines(path)
    if len(lines) < 2:
        raise DataError(f"{path}: {len(lines)} lines; expected a count line, the attribute names, "
                        "then one row per image")
    names = tuple(lines[1].split())
    rows = {}
    for i, line in enumerate(lines[2:], 3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(f"{path}:{i}: {len(parts) - 1} values; expected {len(names)} (+1/-1)")
        rows[parts[0]] = np.array(parts[1:], np.int8)
    return names, rows


def _iter_images(found: Found, progress: bool):
    if found.fmt == "folder":
        files = [f for f in found.files if is_image_name(f.name)
                 and not f.name.startswith(("list_", "identity_"))]
        for f in preprocess._progress(files, progress and len(files) >= 2000, "celeba"):
            yield f.name, str(f), f
    else:
        arc = found.files[0]
        for name, data in read_tar_members(arc, progress, "celeba"):
            if is_image_name(name):
                yield Path(name).name, f"{arc}:{name}", data


def load(found: Found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    skip = Skipper(skip_corrupt)
    ex = found.extra
    partition = _table(ex["partition"], "0|1|2") if ex.get("partition") else None
    identity = _table(ex["identity"], "identity id") if ex.get("identity") else None
    attr_names, attr_rows = _attributes(ex["attributes"]) if ex.get("attributes") else ((), {})
    buckets = {s: ([], [], []) for s in SPLITS}
    methods, n, no_attr = set(), 0, 0
    seen = set()
    for fname, where, src in _iter_images(found, progress):
        if fname in seen:
            continue
        seen.add(fname)
        if partition is not None and fname not in partition:
            raise DataError(f"{ex['partition']}: no entry for image {fname} ({where}); expected "
                            "the official partition file listing every aligned image")
        if identity is not None and fname not in identity:
            raise DataError(f"{ex['identity']}: no entry for image {fname} ({where}); expected "
                            "one identity per aligned image")
        part = partition[fname] if partition is not None else 0
        if part not in (0, 1, 2):
            raise DataError(f"{ex['partition']}: {fname} has partition {part}; expected 0, 1 or 2")
        if limit and len(buckets[SPLITS[part]][0]) >= limit:
            continue
        try:
            data = src.read_bytes() if isinstance(src, Path) else src
            grey = preprocess.to_grey(decode_image(data, where))
        except DataError as e:
            skip(e, where)
            continue
        img, method = preprocess.celeba_crop(grey, size)
        methods.add(method)
        imgs, labs, atts = buckets[SPLITS[part]]
        imgs.append(img)
        labs.append(identity[fname] if identity is not None else -1)
        if attr_names:
            row = attr_rows.get(fname)
            if row is None:
                no_attr += 1
                row = np.zeros(len(attr_names), np.int8)
            atts.append(row)
        n += 1
    splits = {}
    for s, (imgs, labs, atts) in buckets.items():
        images = np.stack(imgs) if imgs else np.zeros((0, size, size), np.uint8)
        attributes = None
        if attr_names:
            attributes = np.stack(atts) if atts else np.zeros((0, len(attr_names)), np.int8)
        splits[s] = SplitData(images, np.asarray(labs, np.int64), attributes)
    prep = {"crop": "108x108 at (x=35, y=70) of 178x218, scaled by width/178",
            "resize": sorted(methods), "grey": preprocess.GREY,
            "labels": "CelebA identity id" if identity is not None else "-1 (no identity file)",
            "partition": "official" if partition is not None else "none: all images in train"}
    if attr_names:
        prep["attributes_missing"] = no_attr
    return Loaded(splits=splits, label_names=(), attribute_names=attr_names,
                  preprocessing=prep, skipped=skip.skipped)
