"""Size limits checked BEFORE anything is decoded, and the readers that check them.

A hostile or broken file must cost a header read, not the memory it claims: an 875 kB PNG that
declares 30000x30000 pixels decodes to 1.76 GB, a 1.49 MB npz "zip bomb" to 2.3 GB. So:

- images: `image_header_size` reads the width and height from the PNG / JPEG / BMP / GIF /
  PNM / WebP header (no pixel is decoded) and `check_image_header` refuses an image of more
  than `max_image_pixels()` pixels (default 64 megapixels, $TFMINV_MAX_IMAGE_PIXELS);
- npz: `read_npz` reads each member's .npy header first (`numpy.lib.format`), refuses object
  (pickled) arrays, a header that declares more bytes than the member holds, and arrays above
  `max_decode_bytes()` in total (default 2 GiB per file, $TFMINV_MAX_DECODE_BYTES), then reads
  only the rows asked for; damaged members (bad CRC, truncated deflate stream) are DataErrors;
- a set of images read one by one counts its decoded bytes against the same byte limit
  (`DecodeBudget`).

Every refusal is one line naming the file, the size and the limit with the variable to raise it.
No TensorFlow here.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tfminv.errors import DataError, first_line

PIXELS_ENV = "TFMINV_MAX_IMAGE_PIXELS"
BYTES_ENV = "TFMINV_MAX_DECODE_BYTES"
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
DEFAULT_MAX_DECODE_BYTES = 2 << 30


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise DataError(f"${name}={raw!r}: expected a positive integer")
    return value


def max_image_pixels() -> int:
    """Largest image (width x height) decoded: $TFMINV_MAX_IMAGE_PIXELS, default 64 million."""
    return _env_int(PIXELS_ENV, DEFAULT_MAX_IMAGE_PIXELS)


def max_decode_bytes() -> int:
    """Largest decoded size of one npz file or one image set read file by file:
    $TFMINV_MAX_DECODE_BYTES, default 2 GiB."""
    return _env_int(BYTES_ENV, DEFAULT_MAX_DECODE_BYTES)


def _fmt_bytes(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


# --- image headers ---------------------------------------------------------------------------

def image_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared by an image's header, or None for a format not parsed here.

    PNG (IHDR), JPEG (first SOFn marker), GIF, BMP, PNM (P1-P6) and WebP (VP8/VP8L/VP8X)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:1] == b"P" and data[1:2] in b"123456" and len(data) > 2:
            return _pnm_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
    except (struct.error, ValueError, IndexError):
        return None
    return None


def _jpeg_size(data: bytes):
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _pnm_size(data: bytes):
    tokens, i, head = [], 2, data[:4096]
    while len(tokens) < 2 and i < len(head):
        c = head[i:i + 1]
        if c == b"#":
            while i < len(head) and head[i:i + 1] not in (b"\n", b"\r"):
                i += 1
        elif c.isdigit():
            j = i
            while j < len(head) and head[j:j + 1].isdigit():
                j += 1
            tokens.append(int(head[i:j]))
            i = j
            continue
        i += 1
    return (tokens[0], tokens[1]) if len(tokens) == 2 else None


def _webp_size(data: bytes):
    kind = data[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if kind == b"VP8L":
        b = int.from_bytes(data[21:25], "little")
        return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def check_image_header(data: bytes, where: str) -> tuple[int, int] | None:
    """The declared (width, height), after refusing (DataError) an image above the pixel limit."""
    size = image_header_size(data)
    if size is not None:
        limit = max_image_pixels()
        w, h = size
        if w * h > limit:
            raise DataError(f"{where}: header declares {w}x{h} pixels ({w * h:,}), over the limit "
                            f"of {limit:,} pixels per image (raise it with ${PIXELS_ENV})")
    return size


class DecodeBudget:
    """Counts the decoded bytes of a set read image by image; DataError past max_decode_bytes."""

    def __init__(self, what: str):
        self.what, self.used, self.limit = what, 0, max_decode_bytes()

    def add(self, nbytes: int, where: str) -> None:
        self.used += int(nbytes)
        if self.used > self.limit:
            raise DataError(f"{self.what}: decoded images pass {_fmt_bytes(self.limit)} at {where} "
                            f"(the limit of ${BYTES_ENV}; raise it, or cap the set, e.g. "
                            "--max_aux)")


# --- npz -------------------------------------------------------------------------------------

def _member_header(fp, where: str):
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            shape, fortran, dtype = fmt._read_array_header(fp, version)  # 3.0: utf-8 names
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, SyntaxError) as e:
        raise DataError(f"{where}: unreadable .npy header ({type(e).__name__}: "
                        f"{first_line(str(e), 200)}); expected a complete "
                        "numpy .npz") from None
    return shape, fortran, dtype


def npz_headers(path, *, what: str | None = None) -> dict:
    """{key: (shape, dtype)} of every array in an npz, read from the headers only."""
    out = {}
    with _open_zip(path, what) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            where = f"{what or path}:{info.filename[:-4]}"
            with _guard(where):
                with zf.open(info) as fp:
                    shape, _, dtype = _member_header(fp, where)
            out[info.filename[:-4]] = (tuple(shape), dtype)
    return out


def npz_keys(path, *, what: str | None = None) -> set:
    return set(npz_headers(path, what=what))


class _guard:
    """Turn zip/zlib/OS errors met while reading a member into one-line DataErrors."""

    def __init__(self, where):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, DataError):
            return False
        if isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
                            NotImplementedError, RuntimeError)):
            text = first_line(str(exc), 200)
            raise DataError(f"{self.where}: damaged npz member ({type(exc).__name__}: {text}); "
                            "expected a complete numpy .npz") from None
        return False


def _open_zip(path, what):
    path = Path(path)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        text = first_line(str(e), 200)
        raise DataError(f"{what or path}: cannot read npz ({type(e).__name__}: {text}); "
                        "expected a complete numpy .npz archive") from None


def read_npz(path, keys=None, *, rows: int | None = None, what: str | None = None,
             row_keys=None) -> dict:
    """The arrays `keys` (None: all) of an npz, checked from their headers before any is read.

    rows: read only the first `rows` rows of the arrays in `row_keys` (default: all keys), so a
    cap costs only what it keeps. Missing keys are simply absent from the result. DataError
    (one line naming the file and key) for object arrays, a header that declares more bytes
    than the member holds, a total above max_decode_bytes(), or a damaged member.
    """
    path = Path(path)
    limit = max_decode_bytes()
    want = None if keys is None else set(keys)
    row_keys = None if row_keys is None else set(row_keys)
    plan = []
    with _open_zip(path, what) as zf:
        total = 0
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key is None or (want is not None and key not in want):
                continue
            where = f"{what or path}:{key}"
            with _guard(where):
                with zf.open(info) as fp:
                    shape, fortran, dtype = _member_header(fp, where)
                    header_len = fp.tell()
            if dtype.hasobject:
                raise DataError(f"{where}: an object (pickled) array of {dtype}; expected plain "
                                "numeric arrays (pickles are never loaded)")
            shape = tuple(int(s) for s in shape)
            n_rows = shape[0] if shape else None
            if rows is not None and shape and (row_keys is None or key in row_keys) \
                    and not fortran:
                n_rows = min(shape[0], int(rows))
            full = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if full + header_len > info.file_size:
                raise DataError(f"{where}: header declares shape {shape} {dtype} "
                                f"({_fmt_bytes(full)}) but the member holds "
                                f"{info.file_size - header_len:,} bytes; damaged or forged npz")
            take = full if n_rows is None or not shape else \
                n_rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            total += take
            if total > limit:
                raise DataError(f"{where}: header declares shape {shape} {dtype}: "
                                f"{_fmt_bytes(total)} to decode, over the limit of "
                                f"{_fmt_bytes(limit)} (raise it with ${BYTES_ENV})")
            plan.append((info, key, shape, fortran, dtype, n_rows, take, where))
        out = {}
        for info, key, shape, fortran, dtype, n_rows, take, where in plan:
            with _guard(where):
                with zf.open(info) as fp:
                    _member_header(fp, where)
                    buf = _read_exact(fp, take, where)
                    if n_rows is None or n_rows == (shape[0] if shape else None):
                        fp.read()  # to the end: zipfile checks the CRC there
            arr = np.frombuffer(buf, dtype=dtype)
            if fortran:
                arr = arr.reshape(shape[::-1]).transpose()
            else:
                arr = arr.reshape((n_rows,) + shape[1:] if shape else shape)
            out[key] = arr
    return out


def _read_exact(fp, n: int, where: str) -> bytearray:
    """n bytes into one preallocated bytearray (the array over it is writable, no copy)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = fp.readinto(view[got:got + (1 << 24)])
        if not k:
            raise DataError(f"{where}: member ends after {got:,} of {n:,} bytes; damaged npz")
        got += k
    return buf
