"""Raw-format readers. Each module finds its files under <data_dir>/<folder> and returns uint8 grey
images already at the requested size, integer labels, and a description of the preprocessing.

A source module defines: NAME, FOLDERS (sub-folders of data_dir searched in order), SPLITS,
DEFAULT_SIZE, EXPECTED (one line: what to put where), `find(data_dir) -> Found` and
`load(found, size, *, limit, skip_corrupt, progress) -> Loaded`.
"""

from __future__ import annotations

import dataclasses
import tarfile
from pathlib import Path

import numpy as np

from tfminv.errors import DataError, first_line

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp")


@dataclasses.dataclass
class SplitData:
    images: np.ndarray  # uint8 [N, H, W]
    labels: np.ndarray  # int64 [N]
    attributes: np.ndarray | None = None  # int8 [N, A]


@dataclasses.dataclass
class Found:
    """Where a dataset's raw files are: the format detected and the files that define it."""

    folder: Path
    fmt: str
    files: list  # list[Path]; these are fingerprinted for record reuse
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Loaded:
    splits: dict  # split name -> SplitData
    label_names: tuple = ()
    attribute_names: tuple = ()
    preprocessing: dict = dataclasses.field(default_factory=dict)
    skipped: list = dataclasses.field(default_factory=list)  # [(file, reason)]


def find_folder(data_dir: Path, folders, expected: str) -> Path:
    """First existing <data_dir>/<folder>; DataError saying what to put where otherwise."""
    data_dir = Path(data_dir)
    for f in folders:
        if (data_dir / f).is_dir():
            return data_dir / f
    raise DataError(f"no folder {' or '.join(str(data_dir / f) for f in folders)} (data dir: "
                    f"--data_dir or $TFMINV_DATA_DIR): {expected}")


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode image bytes with OpenCV to an RGB uint8 [h, w, 3] (or grey [h, w]) array.

    The header is read first: an image above `limits.max_image_pixels()` is refused before a
    pixel is decoded; an OpenCV failure is a DataError naming `where`."""
    import cv2

    from tfminv.data.limits import check_image_header

    if data:
        check_image_header(data, where)
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error as e:
        raise DataError(f"{where}: cannot decode image ({first_line(e)}); expected a valid "
                        "JPEG/PNG/PGM file") from None
    if arr is None or arr.size == 0:
        raise DataError(f"{where}: cannot decode image ({len(data)} bytes); expected a valid "
                        "JPEG/PNG/PGM file")
    if arr.dtype != np.uint8:
        if arr.dtype == np.uint16:
            arr = (arr >> 8).astype(np.uint8)
        else:
            raise DataError(f"{where}: unsupported pixel type {arr.dtype}; expected 8-bit images")
    if arr.ndim == 3 and arr.shape[-1] >= 3:
        arr = arr[..., 2::-1] if arr.shape[-1] == 3 else arr[..., [2, 1, 0]]  # BGR(A) -> RGB
    return np.ascontiguousarray(arr)


def read_tar_members(path: Path, progress: bool = False, desc: str = ""):
    """Yield (member name, bytes) for every regular file of a tar/tar.gz, in archive order.

    A truncated or corrupt archive raises DataError naming the file.
    """
    import zlib

    try:
        with tarfile.open(path, "r:*") as tf:
            it = tf
            if progress:
                from tqdm import tqdm

                it = tqdm(tf, desc=desc or path.name, unit="file", mininterval=1.0, leave=False)
            for m in it:
                if not m.isfile():
                    continue
                f = tf.extractfile(m)
                yield m.name, f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated archive ({type(e).__name__}: {e}); "
                        "expected a complete tar or tar.gz file") from e


class Skipper:
    """Collects corrupt single images when skipping is allowed; re-raises otherwise."""

    def __init__(self, allowed: bool):
        self.allowed = allowed
        self.skipped: list = []

    def __call__(self, err: DataError, where: str):
        if not self.allowed:
            raise DataError(f"{err} (pass skip_corrupt=True / --skip_corrupt to skip such images "
                            "and count them)") from err
        reason = str(err)
        if reason.startswith(f"{where}: "):  # the error names the file already: name it once
            reason = reason[len(where) + 2:]
        self.skipped.append((where, reason))


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS)



def int_labels(values, where: str) -> np.ndarray:
    """Labels as int64 [N]; DataError (naming `where`) for non-integer values such as 0.5, which
    a cast would silently truncate, for booleans, strings and non-finite numbers."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64).reshape(-1)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) \
            and np.all(arr == np.round(arr)):
        return arr.astype(np.int64).reshape(-1)
    if arr.dtype.kind == "f" and arr.size == 0:
        return arr.astype(np.int64).reshape(-1)
    bad = ""
    if arr.dtype.kind == "f":
        off = arr[~np.isfinite(arr) | (arr != np.round(arr))]
        bad = f" (e.g. {off.reshape(-1)[0]:g})"
    raise DataError(f"{where}: labels of type {arr.dtype}{bad}; expected whole-number class "
                    "labels (they are never rounded or truncated)")


def read_npz(path, keys, *, what=None, rows=None, row_keys=None) -> dict:
    """The arrays `keys` of a raw npz, headers checked first (`tfminv.data.limits.read_npz`);
    DataError naming the file and the missing keys."""
    from tfminv.data import limits

    out = limits.read_npz(path, keys, rows=rows, what=what, row_keys=row_keys)
    missing = [k for k in keys if k not in out]
    if missing:
        raise DataError(f"{what or path}: missing keys {missing}; has "
                        f"{sorted(limits.npz_keys(path))}")
    return out


def npz_keys(path) -> set:
    """Array names of an npz (read from the zip directory and .npy headers only)."""
    from tfminv.data import limits

    return limits.npz_keys(path)
