"""MNIST: the four official IDX files (gzipped or not), resized from 28x28 to 32x32."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import Found, Loaded, SplitData, find_folder
from tfminv.errors import DataError

NAME = "mnist"
FOLDERS = ("mnist",)
SPLITS = ("train", "test")
DEFAULT_SIZE = 32
LABEL_NAMES = tuple(str(d) for d in range(10))
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED = ("put the four official MNIST IDX files (train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; "
            "gzipped or not) in <data_dir>/mnist/, or add --download to the build command")
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def _locate(folder: Path, stem: str) -> Path:
    for cand in (folder / (stem + ".gz"), folder / stem):
        if cand.is_file():
            return cand
    # common alternative spelling, e.g. train-images.idx3-ubyte
    alt = stem.replace("-idx", ".idx")
    for cand in (folder / (alt + ".gz"), folder / alt):
        if cand.is_file():
            return cand
    raise DataError(f"{folder / stem}(.gz) not found: {EXPECTED}")


def find(data_dir) -> Found:
    folder = find_folder(data_dir, FOLDERS, EXPECTED)
    files = [_locate(folder, stem) for split in SPLITS for stem in FILES[split]]
    return Found(folder=folder, fmt="idx", files=files)


def read_bytes(path: Path) -> bytes:
    """File content, gunzipped when it is gzip (detected by magic bytes, not by name)."""
    raw = Path(path).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: truncated or corrupt gzip ({type(e).__name__}: {e}); "
                        "expected a complete gzip file (re-download it)") from e


def parse_idx(path: Path, magic: int, ndim: int, limit: int | None = None) -> np.ndarray:
    """Parse an IDX uint8 file, checking magic number, dimensions and exact size."""
    data = read_bytes(path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: {len(data)} bytes, too short for an IDX header; expected "
                        f"magic {magic} and {ndim} dimension(s)")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise DataError(f"{path}: IDX magic number {got}, expected {magic} "
                        f"({'images' if magic == IMAGE_MAGIC else 'labels'} file, uint8)")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    need = header + int(np.prod(dims))
    if len(data) != need:
        raise DataError(f"{path}: {len(data)} bytes but the IDX header {dims} needs {need}; "
                        "the file is truncated or not an IDX file")
    arr = np.frombuffer(data, np.uint8, offset=header).reshape(dims)
    return arr[:limit] if limit else arr


def load(found: Found, size: int, *, limit=None, skip_corrupt=False, progress=False) -> Loaded:
    splits = {}
    files = dict(zip([(s, k) for s in SPLITS for k in ("images", "labels")], found.files))
    method = "none"
    for split in SPLITS:
        ipath, lpath = files[(split, "images")], files[(split, "labels")]
        images = parse_idx(ipath, IMAGE_MAGIC, 3)
        labels = parse_idx(lpath, LABEL_MAGIC, 1)
        if len(images) != len(labels):
            raise DataError(f"{lpath}: {len(labels)} labels but {ipath} has {len(images)} images; "
                            "expected one label per image")
        if images.shape[1:] != (28, 28):
            raise DataError(f"{ipath}: images are {images.shape[1:]}, expected 28x28")
        if labels.size and labels.max() > 9:
            raise DataError(f"{lpath}: label value {int(labels.max())}, expected digits 0-9")
        if limit:
            images, labels = images[:limit], labels[:limit]
        images, method = preprocess.resize_stack(images, size, progress, f"mnist {split}")
        splits[split] = SplitData(np.ascontiguousarray(images), labels.astype(np.int64))
    return Loaded(
        splits=splits,
        label_names=LABEL_NAMES,
        preprocessing={"source": "IDX uint8 28x28", "resize": method, "grey": "native"},
    )
