"""Sharded TFRecords of uint8 grey images: writing, tf.data reading with batched parsing.

Each record holds `image` (raw uint8 bytes, H*W, row-major), `label` (int64) and, for datasets
with attributes, `attributes` (raw int8 bytes). Images are stored as uint8 after resizing (4x
smaller than float32, exact); conversion to float32 happens on read: `normalize='unit'` divides
by 255, `normalize='minmax'` applies the per-pixel min-max over the whole dataset (all splits;
the authors' normalisation) from `pixel_minmax.npz`, saved beside the shards.

Nothing damaged is trusted: metadata.json lists each shard's size and SHA-256 (`shard_sha256`),
checked before a folder is reused or read (`verify`; digests are cached by path, size and mtime so
unchanged shards are hashed once), and a read that still meets a damaged record (TensorFlow's
per-record CRC) raises a DataError naming the folder and its damaged shards, not a traceback.
A metadata.json that is not a records description (wrong JSON type, no shards) is a DataError,
so builders treat it as absent.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, DataError, first_line

FORMAT_VERSION = 2  # 2: shards carry SHA-256 checksums in metadata.json
METADATA = "metadata.json"
MINMAX = "pixel_minmax.npz"
SHARD_SIZE = 10000
NORMALIZATIONS = ("unit", "minmax")


def shard_names(split: str, count: int, shard_size: int = SHARD_SIZE) -> list[str]:
    n = max(1, math.ceil(count / shard_size))
    return [f"{split}-{i:05d}-of-{n:05d}.tfrecord" for i in range(n)]


def write_split(out_dir: Path, split: str, images: np.ndarray, labels: np.ndarray,
                attributes: np.ndarray | None = None, shard_size: int = SHARD_SIZE,
                progress: bool = False) -> list[str]:
    """Write one split as shards in out_dir; returns the shard file names."""
    import tensorflow as tf

    names = shard_names(split, len(labels), shard_size)
    feature = tf.train.Feature
    it = range(len(labels))
    if progress and len(labels) >= 5000:
        from tqdm import tqdm

        it = tqdm(it, desc=f"write {split}", unit="img", mininterval=1.0, leave=False)
    writer = None
    for i in it:
        if i % shard_size == 0:
            if writer is not None:
                writer.close()
            writer = tf.io.TFRecordWriter(str(out_dir / names[i // shard_size]))
        feats = {
            "image": feature(bytes_list=tf.train.BytesList(value=[images[i].tobytes()])),
            "label": feature(int64_list=tf.train.Int64List(value=[int(labels[i])])),
        }
        if attributes is not None:
            feats["attributes"] = feature(bytes_list=tf.train.BytesList(
                value=[attributes[i].astype(np.int8).tobytes()]))
        writer.write(tf.train.Example(features=tf.train.Features(feature=feats))
                     .SerializeToString())
    if writer is not None:
        writer.close()
    else:  # empty split: one empty shard, so the split still exists
        tf.io.TFRecordWriter(str(out_dir / names[0])).close()
    return names


def shard_digests(out_dir: Path, names) -> dict[str, dict]:
    """{shard name: {"size", "sha256"}} of written shards (stored in metadata.json)."""
    return {n: {"size": (Path(out_dir) / n).stat().st_size,
                "sha256": _file_sha256(Path(out_dir) / n)} for n in names}


_VERIFIED: dict[tuple, str] = {}  # (real path, size, mtime_ns, inode) -> sha256, this process


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _VERIFIED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _VERIFIED[key] = h.hexdigest()
    return _VERIFIED[key]


def damaged_shards(path: Path, meta: dict, split: str = "all") -> list[str]:
    """Shards of `split` that are missing or whose size or SHA-256 differs from metadata.json."""
    bad = []
    for s in (list(meta["splits"]) if split == "all" else [split]):
        info = meta["splits"][s]
        sums = info.get("shard_sha256") or {}
        for name in info["shards"]:
            f = Path(path) / name
            want = sums.get(name)
            try:
                if want is None or f.stat().st_size != want["size"] or \
                        _file_sha256(f) != want["sha256"]:
                    bad.append(name)
            except OSError:
                bad.append(name)
    return bad


def verify(path: Path, meta: dict, split: str = "all") -> None:
    """DataError naming the damaged shards when any shard of `split` fails its checksum."""
    bad = damaged_shards(path, meta, split)
    if bad:
        raise DataError(_damaged_message(path, meta, bad))


def _damaged_message(path, meta, bad) -> str:
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return (f"{path}: damaged records ({', '.join(bad[:3])}{more} missing, truncated or not "
            f"matching their checksum); rebuild with `python -m tfminv.data.build "
            f"--dataset={meta.get('dataset', 'NAME')} --force`")


def read_metadata(path: Path) -> dict:
    """metadata.json of a records folder, or DataError when the folder is not complete or its
    metadata is not a records description (wrong JSON type, splits without shards)."""
    meta = Path(path) / METADATA
    if not meta.is_file():
        raise DataError(f"{meta} not found: records in {path} are missing or incomplete; build them "
                        "with `python -m tfminv.data.build --dataset=NAME`")
    try:
        obj = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{meta}: not valid JSON ({e}); rebuild with --force") from e
    except OSError as e:
        raise DataError(f"{meta}: cannot be read ({e.strerror or e})") from e
    problem = _shape_problem(obj)
    if problem:
        raise DataError(f"{meta}: {problem}; expected the metadata written by "
                        "`python -m tfminv.data.build` (rebuild with --force)")
    return obj


def _shape_problem(obj) -> str | None:
    """What is wrong with the JSON shape of a metadata.json (None when usable)."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    for key, kind in (("dataset", str), ("height", int), ("width", int), ("splits", dict)):
        if not isinstance(obj.get(key), kind) or isinstance(obj.get(key), bool):
            return f"{key!r} missing or not a {kind.__name__}"
    for key in ("settings", "sources"):
        if key in obj and not isinstance(obj[key], (dict if key == "settings" else list)):
            return f"{key!r} is {json.dumps(obj[key])[:40]}"
    for key in ("label_names", "attribute_names"):
        if not isinstance(obj.get(key, []), list):
            return f"{key!r} is not a list"
    for name, info in obj["splits"].items():
        if not isinstance(info, dict) or not isinstance(info.get("shards"), list) or \
                not all(isinstance(f, str) and f and os.sep not in f and f not in (".", "..")
                        for f in info["shards"]) or \
                not isinstance(info.get("count"), int) or \
                not isinstance(info.get("shard_sha256", {}), dict):
            return f"split {name!r} has no valid 'shards' list and 'count'"
    return None


def split_files(path: Path, meta: dict, split: str) -> list[str]:
    splits = meta["splits"]
    names = list(splits) if split == "all" else [split]
    for s in names:
        if s not in splits:
            raise ConfigError(f"split {split!r} of {meta['dataset']}: expected one of "
                              f"{sorted(splits) + ['all']}")
    files = [str(Path(path) / f) for s in names for f in splits[s]["shards"]]
    for f in files:
        if not Path(f).is_file():
            raise DataError(f"{f} missing: records in {path} are incomplete; rebuild with --force")
    return files


def split_count(meta: dict, split: str) -> int:
    splits = meta["splits"]
    return sum(v["count"] for k, v in splits.items() if split in ("all", k))


def load_minmax(path: Path) -> tuple[np.ndarray, np.ndarray]:
    f = Path(path) / MINMAX
    if not f.is_file():
        raise DataError(f"{f} not found; expected per-pixel min/max beside the records; rebuild "
                        "with --force")
    with np.load(f) as z:
        return z["min"], z["max"]


def _check_normalize(normalize: str):
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"normalize={normalize!r}; expected one of {NORMALIZATIONS}")


def make_normalizer(meta: dict, path: Path, normalize: str = "unit"):
    """A function uint8 images [..., H, W, 1] -> float32 in the records' `normalize` scale
    ('unit': / 255; 'minmax': per-pixel min-max of the records' training images)."""
    import tensorflow as tf

    _check_normalize(normalize)
    if normalize != "minmax":
        return lambda img: tf.cast(img, tf.float32) / 255.0
    lo, hi = load_minmax(path)
    lo_t = tf.constant(lo.astype(np.float32)[..., None])
    rng = hi.astype(np.float32) - lo.astype(np.float32)
    rng[rng == 0] = 1.0
    rng_t = tf.constant(rng[..., None])
    return lambda img: (tf.cast(img, tf.float32) - lo_t) / rng_t


def make_parser(meta: dict, path: Path, normalize: str | None = "unit",
                with_attributes: bool = False):
    """A function parsing a batch of serialized records -> (images [n,H,W,1] float32, labels[, attrs]).

    normalize=None keeps the images as stored (uint8), for pipelines that hold many images
    before use (`tfminv.data.streaming.inverter_dataset` shuffles them at 1 byte a pixel and
    scales each batch with `make_normalizer`)."""
    import tensorflow as tf

    h, w = meta["height"], meta["width"]
    n_attr = len(meta.get("attribute_names") or ())
    if with_attributes and not n_attr:
        raise ConfigError(f"{meta['dataset']} records in {path} carry no attributes")
    spec = {"image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64)}
    if with_attributes:
        spec["attributes"] = tf.io.FixedLenFeature([], tf.string)
    scale = (lambda img: img) if normalize is None else make_normalizer(meta, path, normalize)

    def parse_batch(serialized):
        ex = tf.io.parse_example(serialized, spec)
        img = scale(tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), [-1, h, w, 1]))
        if with_attributes:
            attrs = tf.reshape(tf.io.decode_raw(ex["attributes"], tf.int8), [-1, n_attr])
            return img, ex["label"], attrs
        return img, ex["label"]

    return parse_batch


def dataset_from_dir(path: Path, split: str, *, normalize: str = "unit",
                     with_attributes: bool = False, parse_batch_size: int = 1024):
    """tf.data.Dataset of single (image [H,W,1] float32, label int64[, attributes]) elements.

    Records are read in file order (deterministic), parsed `parse_batch_size` at a time.
    """
    import tensorflow as tf

    meta = read_metadata(path)
    files = split_files(path, meta, split)
    verify(path, meta, split)
    parse = make_parser(meta, path, normalize, with_attributes)
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=None)
    ds = ds.batch(parse_batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                                        deterministic=True)
    return ds.unbatch()


def read_arrays(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """All records of a split as uint8 images [N,H,W], labels, attributes (or None), metadata."""
    import tensorflow as tf

    meta = read_metadata(path)
    files = split_files(path, meta, split)
    verify(path, meta, split)
    h, w = meta["height"], meta["width"]
    n_attr = len(meta.get("attribute_names") or ())
    spec = {"image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64)}
    if n_attr:
        spec["attributes"] = tf.io.FixedLenFeature([], tf.string)

    def parse(serialized):
        ex = tf.io.parse_example(serialized, spec)
        out = {"image": tf.io.decode_raw(ex["image"], tf.uint8), "label": ex["label"]}
        if n_attr:
            out["attributes"] = tf.io.decode_raw(ex["attributes"], tf.int8)
        return out

    ds = tf.data.TFRecordDataset(files).batch(8192).map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                                                        deterministic=True)
    imgs, labs, attrs = [], [], []
    try:
        for b in ds.as_numpy_iterator():
            imgs.append(b["image"])
            labs.append(b["label"])
            if n_attr:
                attrs.append(b["attributes"])
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        # damaged after the checksum check (or a shard whose checksum was forged): name it
        bad = damaged_shards(path, meta, split) or [Path(f).name for f in files]
        first = first_line(e.message)
        raise DataError(_damaged_message(path, meta, bad) + f" [{first}]") \
            from None
    count = split_count(meta, split)
    images = (np.concatenate(imgs) if imgs else np.zeros((0, h * w), np.uint8)).reshape(-1, h, w)
    labels = np.concatenate(labs) if labs else np.zeros((0,), np.int64)
    if len(labels) != count:
        raise DataError(f"{path}: {len(labels)} records for split {split!r} but metadata says "
                        f"{count}; rebuild with --force")
    attributes = None
    if n_attr:
        attributes = (np.concatenate(attrs) if attrs else np.zeros((0, n_attr), np.int8))
        attributes = attributes.reshape(-1, n_attr)
    return images, labels.astype(np.int64), attributes, meta


def make_batches(ds, batch_size: int, shuffle: bool = True, seed: int | None = None,
                 buffer_size: int = 10000, drop_remainder: bool = False, repeat: bool = False,
                 cache: bool = False):
    """Shuffle (seeded, reshuffled each epoch), batch and prefetch a dataset of single elements."""
    import tensorflow as tf

    if batch_size <= 0:
        raise ConfigError(f"batch_size={batch_size}; expected a positive integer")
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
