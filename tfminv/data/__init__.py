"""Datasets as the paper uses them: raw files -> sharded TFRecords -> tf.data or in-memory arrays.

`load_split("mnist", "train")` builds the records on first use and returns an `ImageSet` of
float32 [N, H, W, 1] images in [0, 1]; `read_records` gives a tf.data pipeline instead.
"""

from __future__ import annotations

from tfminv.data.imageset import ImageSet

__all__ = ["ImageSet", "load_split", "read_records", "make_batches", "DATASETS"]

DATASETS = ("mnist", "cifar10", "celeba", "facescrub", "att_faces")


def load_split(dataset: str, split: str, *, image_size=None, data_dir=None, records_dir=None,
               normalize: str = "unit", limit: int | None = None) -> ImageSet:
    """Build the records if needed, then read one split (or 'all' splits) into memory.

    normalize: 'unit' (x/255) or 'minmax' (per-pixel min-max over the dataset, as the authors).
    limit: use records of only the first `limit` images per split (a separate, small build).
    """
    from tfminv.data import build, records

    path = build.ensure(dataset, image_size, data_dir=data_dir, records_dir=records_dir,
                        limit=limit)
    records._check_normalize(normalize)
    images, labels, attributes, meta = records.read_arrays(path, split)
    return to_imageset(images, labels, attributes, meta, path, f"{dataset}/{split}", normalize)


def to_imageset(images_u8, labels, attributes, meta, path, name, normalize="unit") -> ImageSet:
    """uint8 [N, H, W] rows read from records -> float32 ImageSet (x/255 or per-pixel min-max)."""
    from tfminv.data import preprocess, records

    if normalize == "minmax":
        lo, hi = records.load_minmax(path)
        x = preprocess.apply_minmax(images_u8, lo, hi)
    else:
        x = images_u8.astype("float32")
        x /= 255.0
    return ImageSet(images=x[..., None], labels=labels, label_names=tuple(meta["label_names"]),
                    name=name, attributes=attributes,
                    attribute_names=tuple(meta.get("attribute_names") or ()), metadata=meta)


def read_records(dataset: str, split: str, *, image_size=None, records_dir=None, data_dir=None,
                 normalize: str = "unit", with_attributes: bool = False, limit: int | None = None):
    """tf.data.Dataset of (image [H, W, 1] float32, label int64[, attributes int8 [A]]) elements,
    parsed in vectorised batches; builds the records first if needed."""
    from tfminv.data import build, records

    path = build.ensure(dataset, image_size, data_dir=data_dir, records_dir=records_dir,
                        limit=limit)
    return records.dataset_from_dir(path, split, normalize=normalize,
                                    with_attributes=with_attributes)


def make_batches(ds, batch_size: int, shuffle: bool = True, seed: int | None = None, **kwargs):
    """Shuffle/batch/prefetch helper; see tfminv.data.records.make_batches."""
    from tfminv.data import records

    return records.make_batches(ds, batch_size, shuffle=shuffle, seed=seed, **kwargs)
