"""FER2013 faces (48x48 grey, registered) as generic auxiliary faces at 64x64. Two layouts, the
user's own first:

- <data_dir>/fer2013/fer2013.csv (any .csv there): Kaggle's `emotion,pixels,Usage` rows, 2,304
  grey levels per face. Upsampled to the size asked for (the fixed box of extra_faces_aux's
  PROVENANCE.md is the whole 48x48 image to within a pixel); NOT histogram-equalised, unlike
  the shared copy below;
- the `fer2013` set of <data_dir>/extra_faces_aux: 11,800 faces, histogram-equalised, JPEG q90
  (see `extra_faces`).

Labels: the emotion index (angry, disgust, fear, happy, neutral, sad, surprise); no identities.
One split, `all`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import Found, Loaded, SplitData, extra_faces
from tfminv.errors import DataError

NAME = "fer2013"
USER_FOLDERS = ("fer2013", "FER2013")
FOLDERS = USER_FOLDERS + (extra_faces.FOLDER,)
SPLITS = ("all",)
DEFAULT_SIZE = 64
EXPECTED = ("put Kaggle's fer2013.csv (emotion,pixels,Usage) in <data_dir>/fer2013/, or "
            + extra_faces.EXPECTED)
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
#: Kaggle's emotion codes: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
_KAGGLE_TO_INDEX = {0: 0, 1: 1, 2: 2, 3: 3, 4: 5, 5: 6, 6: 4}
SIDE = 48


def find(data_dir) -> Found:
    root = Path(data_dir)
    for f in USER_FOLDERS:
        folder = root / f
        if folder.is_dir():
            csvs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".csv")
            if not csvs:
                raise DataError(f"{folder}: no .csv file; {EXPECTED}")
            return Found(folder, "csv", [max(csvs, key=lambda p: p.stat().st_size)])
    return extra_faces.find(data_dir, NAME)


def read_csv(path: Path, limit=None):
    """(uint8 [N, 48, 48], emotion index [N]) from Kaggle's fer2013.csv; DataError naming the
    file and line of a malformed row."""
    import csv

    images, labels = [], []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or [h.strip().lower() for h in header[:2]] != ["emotion", "pixels"]:
                raise DataError(f"{path}:1: header {header!r}; expected emotion,pixels[,Usage]")
            for line, row in enumerate(reader, 2):
                if not row:
                    continue
                try:
                    emotion = int(row[0])
                    px = np.array(row[1].split(), dtype=np.int64)
                except (ValueError, IndexError):
                    raise DataError(f"{path}:{line}: expected an integer emotion and "
                                    f"{SIDE * SIDE} space-separated grey levels") from None
                if emotion not in _KAGGLE_TO_INDEX or px.size != SIDE * SIDE or \
                        px.min() < 0 or px.max() > 255:
                    raise DataError(f"{path}:{line}: emotion {emotion}, {px.size} values in "
                                    f"{px.min() if px.size else 0}..{px.max() if px.size else 0}; "
                                    f"expected emotion 0-6 and {SIDE * SIDE} grey levels 0-255")
                images.append(px.astype(np.uint8).reshape(SIDE, SIDE))
                labels.append(_KAGGLE_TO_INDEX[emotion])
                if limit and len(images) >= limit:
                    break
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e}); expected Kaggle's "
                        "fer2013.csv") from None
    stack = np.stack(images) if images else np.zeros((0, SIDE, SIDE), np.uint8)
    return stack, np.asarray(labels, np.int64)


def load(found: Found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    if found.fmt == "extra_faces_tar":
        return extra_faces.load(found, size, NAME, limit=limit, skip_corrupt=skip_corrupt,
                                progress=progress)
    faces, labels = read_csv(found.files[0], limit)
    images, method = preprocess.resize_stack(faces, size, progress, NAME)
    prep = {"source": "user fer2013.csv (not histogram-equalised)", "grey": "native",
            "crop": "whole 48x48 face", "resize": method,
            "labels": "emotion index (label_names; Kaggle's codes reordered)"}
    return Loaded(splits={"all": SplitData(images, labels)}, label_names=EMOTIONS,
                  preprocessing=prep)
