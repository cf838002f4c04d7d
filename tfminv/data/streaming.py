"""Image sets read from their TFRecords on demand, for auxiliary sets larger than memory.

`StreamedImages` stands where an image array would (querying a target with
`tfminv.attacks.predictions.query_cached`, training an inverter with
`tfminv.attacks.inversion.train_inverter`): it knows its length, image shape and a content key,
and yields its images as a tf.data pipeline (vectorised parsing, prefetching) or as NumPy
chunks, in one fixed order (record order of the selected rows), so cached predictions line up
with the images. Memory stays flat as the set grows: what is held is a selection mask (1 byte
per record), the prediction vectors (m floats per image, once) and tf.data's shuffle buffer
(images as stored, uint8).

`inverter_dataset(preds, images, batch_size)` is the training input: predictions zipped with the
streamed images, shuffled in a bounded buffer, batched and prefetched; under a tf.distribute
strategy Keras shards it across workers (AutoShardPolicy.DATA: every worker reads the records
and keeps its share of each global batch, since one zipped stream cannot be split by file).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, DataError

#: elements in the training shuffle buffer (64x64 uint8 images and 471-score vectors: ~60 MB
#: at 10,000)
SHUFFLE_BUFFER = 10000
#: prediction rows handed to the training pipeline at a time
PRED_CHUNK = 4096


class StreamedImages:
    """The images of some records, selected by a mask, read on demand (float32 [H, W, 1])."""

    def __init__(self, path, split: str, *, mask: np.ndarray | None = None, repeat: int = 1,
                 normalize: str = "unit", name: str | None = None):
        from tfminv.data import records

        self.path = Path(path)
        self.meta = records.read_metadata(self.path)
        self.split = split
        self.files = records.split_files(self.path, self.meta, split)
        if int(repeat) < 1:
            raise ConfigError(f"repeat must be >= 1, got {repeat}")
        self.repeat = int(repeat)
        self.count = records.split_count(self.meta, split) * self.repeat
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.count,):
                raise DataError(f"{self.path} {split}: selection mask of {mask.shape[0]} rows for "
                                f"{self.count} records")
        self.mask = mask
        records._check_normalize(normalize)
        self.normalize = normalize
        self.name = name or f"{self.meta['dataset']}/{split}" + (
            f"x{self.repeat}" if self.repeat > 1 else "")
        self._len = int(mask.sum()) if mask is not None else self.count

    @classmethod
    def from_ref(cls, ref, *, data_dir=None, records_dir=None, repeat: int = 1,
                 normalize: str = "unit") -> "StreamedImages":
        """The rows a `tfminv.data.allocations.SplitRef` names, in record order (the in-memory
        `materialize` returns the same rows in the ref's shuffled order). Reads only the labels
        to select them; `repeat` > 1 repeats the records (for benchmarks at larger sizes)."""
        from tfminv.data import allocations, records

        path = allocations.records_for(ref, data_dir=data_dir, records_dir=records_dir)
        meta = records.read_metadata(path)
        labels = _labels(path, meta, ref.split)
        labels = np.tile(labels, repeat)
        idx = allocations.select(len(labels), labels, ref)
        allocations.check_selected(ref, labels, idx, f"SplitRef {ref.label}/{ref.split}")
        mask = np.zeros(len(labels), bool)
        mask[idx] = True
        name = f"{ref.dataset}/{ref.split}" if ref.parts is None else f"pool({ref.label})"
        return cls(path, ref.split, mask=mask, repeat=repeat, normalize=normalize,
                   name=f"{name}(streamed)")

    def __len__(self) -> int:
        return self._len

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (int(self.meta["height"]), int(self.meta["width"]), 1)

    def content_hash(self) -> str:
        """Key of these images for caches: the records' metadata (source checksums, counts,
        preprocessing), the shard names, the selection and the normalisation."""
        h = hashlib.sha256(json.dumps(self.meta, sort_keys=True, default=str).encode())
        h.update(json.dumps([Path(f).name for f in self.files]).encode())
        h.update(f"{self.split}|{self.repeat}|{self.normalize}|{self._len}".encode())
        if self.mask is not None:
            h.update(np.packbits(self.mask).tobytes())
        return h.hexdigest()

    def dataset(self, parse_batch: int = 1024, *, raw: bool = False):
        """tf.data.Dataset of single images [H, W, 1], in record order: float32 in this set's
        normalisation, or with raw=True uint8 as stored (`normalizer()` scales them)."""
        import tensorflow as tf

        from tfminv.data import records

        parse = records.make_parser(self.meta, self.path, None if raw else self.normalize)
        ds = tf.data.TFRecordDataset(self.files * self.repeat)
        ds = ds.batch(parse_batch).map(lambda s: parse(s)[0], num_parallel_calls=tf.data.AUTOTUNE,
                                       deterministic=True).unbatch()
        if self.mask is not None:
            keep = tf.constant(self.mask)
            # distinct argument names: AutoGraph cannot tell same-signature lambdas apart
            ds = ds.enumerate().filter(lambda row, _img: keep[row]).map(lambda _row, img: img)
        return ds

    def normalizer(self):
        """uint8 images (of `dataset(raw=True)`) -> float32 in this set's normalisation."""
        from tfminv.data import records

        return records.make_normalizer(self.meta, self.path, self.normalize)

    def subset(self, positions) -> "StreamedImages":
        """The rows at `positions` (indices into this set's rows) as a stream of their own,
        yielded in record order (sorted positions; a repeated position counts once)."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise DataError(f"{self.name}: row positions must be in [0, {len(self)}), got "
                            f"{positions.min()}..{positions.max()}")
        rows = np.flatnonzero(self.mask) if self.mask is not None else np.arange(self.count)
        mask = np.zeros(self.count, bool)
        mask[rows[positions]] = True
        return StreamedImages(self.path, self.split, mask=mask, repeat=self.repeat,
                              normalize=self.normalize, name=self.name)

    def to_array(self, chunk: int = 4096) -> np.ndarray:
        """All the images as one float32 array [N, H, W, 1] (for small subsets only)."""
        parts = [c for _, c in self.iter_chunks(chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.image_shape), np.float32)

    def mean_image(self, chunk: int = 4096) -> np.ndarray:
        """The mean image [H, W, 1] (float32), summed chunk by chunk in float64."""
        if len(self) == 0:
            raise DataError(f"{self.name}: no images to average")
        total = np.zeros(self.image_shape, np.float64)
        for _, c in self.iter_chunks(chunk):
            total += c.sum(axis=0, dtype=np.float64)
        return (total / len(self)).astype(np.float32)

    def iter_chunks(self, chunk: int, start: int = 0):
        """(index, float32 images [<= chunk, H, W, 1]) for chunks index >= start, read in turn.

        The next chunk is read ahead as stored (uint8) and scaled when it is taken."""
        ds = self.dataset(raw=True).skip(start * chunk).batch(chunk).prefetch(1)
        ds = ds.map(self.normalizer())
        for i, batch in enumerate(ds.as_numpy_iterator(), start=start):
            yield i, batch


class Rows:
    """Rows `index` of a 2-D float32 array, gathered a slice at a time: stands where the array
    `base[index]` would as the training answers of a streamed inverter (`inverter_dataset`,
    `tfminv.attacks.inversion.train_inverter`), without the copy.

    Why: `tfminv.scenarios.base.selection_data` holds out at most STREAM_VAL_MAX rows, so the
    training rows are nearly all of them, and their copy (100 MB for 53,210 x 471 answers of
    the pooled public faces) sat beside the answers for the whole run. `content_hash()` equals
    `hashing.content_hash(base[index])` (cache keys do not change); NumPy functions get the
    copy (`__array__`), so every other use stays correct.
    """

    def __init__(self, base, index):
        self.base = np.asarray(base, dtype=np.float32)
        self.index = np.asarray(index, dtype=np.int64).reshape(-1)
        if self.base.ndim != 2:
            raise DataError(f"expected answers [N, m], got shape {self.base.shape}")
        if self.index.size and (self.index.min() < 0 or self.index.max() >= len(self.base)):
            raise DataError(f"row indices must be in [0, {len(self.base)}), got "
                            f"{self.index.min()}..{self.index.max()}")

    ndim = 2
    dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple:
        return (int(self.index.size), int(self.base.shape[1]))

    def __len__(self) -> int:
        return int(self.index.size)

    def __getitem__(self, key):
        return self.base[self.index[key]]

    def __array__(self, dtype=None, copy=None):
        a = self.base[self.index]
        return a if dtype is None else a.astype(dtype, copy=False)

    def content_hash(self, chunk: int = PRED_CHUNK) -> str:
        h = hashlib.sha256(str(self.shape).encode())
        for i in range(0, len(self), chunk):
            h.update(np.ascontiguousarray(self[i:i + chunk]))
        return h.hexdigest()


def answers(preds):
    """`preds` as training answers: a `Rows` as it is, anything else as a float32 array."""
    return preds if isinstance(preds, Rows) else np.asarray(preds, np.float32)


def _labels(path: Path, meta: dict, split: str) -> np.ndarray:
    import tensorflow as tf

    from tfminv.data import records

    spec = {"label": tf.io.FixedLenFeature([], tf.int64)}
    ds = tf.data.TFRecordDataset(records.split_files(path, meta, split)).batch(8192).map(
        lambda s: tf.io.parse_example(s, spec)["label"])
    parts = list(ds.as_numpy_iterator())
    return np.concatenate(parts) if parts else np.zeros((0,), np.int64)


def inverter_dataset(preds, images: StreamedImages, batch_size: int, *,
                     seed: int | None = None, shuffle_buffer: int = SHUFFLE_BUFFER):
    """(prediction, image) batches for training: predictions (an array or a `Rows` view) zipped
    with the streamed images, shuffled in a bounded buffer (reshuffled each epoch), batched and prefetched.

    Memory: the predictions enter the pipeline from the NumPy array in chunks (a generator),
    not as one graph constant (`from_tensor_slices` copied them: 100 MB for 53,210 x 471),
    and the shuffle buffer holds the images as stored (uint8), scaled to float32 per batch.
    Measured on 60,000 streamed faces x 471 classes, 100 training steps of a width-0.25
    inverter: peak RSS 1,216 MB against 1,629 MB with float32 images and the constant
    (`bench/stream_memory.py` for the scenario layer). The batches are the same: the shuffle
    permutes the same zipped elements with the same seed, and scaling commutes with batching.
    """
    import tensorflow as tf

    preds = answers(preds)
    if len(preds) != len(images):
        raise DataError(f"{len(preds)} prediction vectors for the {len(images)} images of "
                        f"{images.name}")
    n, m = preds.shape[0], preds.shape[1]

    def chunks():
        for i in range(0, n, PRED_CHUNK):
            yield preds[i:i + PRED_CHUNK]

    vectors = tf.data.Dataset.from_generator(
        chunks, output_signature=tf.TensorSpec([None, m], tf.float32)).unbatch()
    ds = tf.data.Dataset.zip((vectors, images.dataset(raw=True)))
    ds = ds.shuffle(min(shuffle_buffer, max(1, n)), seed=seed, reshuffle_each_iteration=True)
    scale = images.normalizer()
    ds = ds.batch(int(batch_size)).map(lambda p, x: (p, scale(x)))
    # the generator and the row filter hide the length; stating it lets Keras size the epochs
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-n // int(batch_size))))
    ds = ds.prefetch(tf.data.AUTOTUNE)
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)
