"""AT&T / ORL faces (40 subjects x 10 images, 112x92 grey) at 64x64.

Layouts under <data_dir>/att_faces (or orl_faces): an npz with `images` [N, 112, 92] and `labels`,
or the original tree `s1..s40/<n>.pgm`. The central 92x92 square is kept (faces keep their aspect
ratio) and shrunk to 64x64 with INTER_AREA. Labels = subject number - 1.
"""

from __future__ import annotations

import re

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import (Found, Loaded, Skipper, SplitData, decode_image, find_folder,
                                 int_labels, read_npz)
from tfminv.errors import DataError

NAME = "att_faces"
FOLDERS = ("att_faces", "orl_faces")
SPLITS = ("all",)
DEFAULT_SIZE = 64
EXPECTED = ("put the AT&T/ORL faces in <data_dir>/att_faces/ as the s1..s40/<n>.pgm tree or an npz "
            "with images [N, 112, 92] and labels")
_SUBJ = re.compile(r"^s(\d+)$")


def find(data_dir) -> Found:
    folder = find_folder(data_dir, FOLDERS, EXPECTED)
    npzs = sorted(folder.glob("*.npz"))
    if npzs:
        return Found(folder, "npz", [npzs[0]])
    subj = sorted((int(m.group(1)), d) for d in folder.iterdir()
                  if d.is_dir() and (m := _SUBJ.match(d.name)))
    files = []
    for _, d in subj:
        files += sorted((f for f in d.iterdir() if f.suffix.lower() == ".pgm"),
                        key=lambda f: (int(f.stem) if f.stem.isdigit() else 1 << 30, f.name))
    if not files:
        raise DataError(f"{folder}: no npz and no s<N>/*.pgm files; {EXPECTED}")
    return Found(folder, "pgm_tree", files)


def _prep(img: np.ndarray, size: int) -> np.ndarray:
    return preprocess.resize(preprocess.center_square(img), size)


def load(found: Found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    skip = Skipper(skip_corrupt)
    if found.fmt == "npz":
        p = found.files[0]
        z = read_npz(p, ["images", "labels"])
        images, labels = z["images"], int_labels(z["labels"], f"{p}:labels")
        if len(images) != len(labels):
            raise DataError(f"{p}: {len(labels)} labels but {len(images)} images; expected one "
                            "label per image")
        if images.ndim == 4:
            images = np.stack([preprocess.to_grey(i) for i in images])
        if limit:
            images, labels = images[:limit], labels[:limit]
        out = [_prep(i, size) for i in images]
    else:
        out, labs = [], []
        for f in found.files[:limit] if limit else found.files:
            try:
                out.append(_prep(preprocess.to_grey(decode_image(f.read_bytes(), str(f))), size))
            except DataError as e:
                skip(e, str(f))
                continue
            labs.append(int(_SUBJ.match(f.parent.name).group(1)) - 1)
        labels = np.asarray(labs, np.int64)
    images = np.stack(out) if out else np.zeros((0, size, size), np.uint8)
    n_ids = int(labels.max()) + 1 if len(labels) else 0
    return Loaded(splits={"all": SplitData(images, labels)},
                  label_names=tuple(f"s{i + 1}" for i in range(n_ids)), skipped=skip.skipped,
                  preprocessing={"crop": "central square (92x92 of 112x92)",
                                 "resize": preprocess.RESIZE_DOWN, "grey": "native"})
