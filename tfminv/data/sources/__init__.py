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

from tfminv.errors import DataError

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
    """Decode image bytes with OpenCV to an RGB uint8 [h, w, 3] (or grey [h, w]) array."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
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
        self.skipped.append((where, str(err)))


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS)

