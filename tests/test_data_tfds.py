"""TFDS data dir as a source: a small `mnist` prepared by TFDS itself from real digits, offline."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from tfminv.data import build, load_split
from tfminv.errors import ConfigError, DataError


def _prepare_tfds_mnist(data_dir, tfds_dir, n_train=30, n_test=20):
    import tensorflow_datasets as tfds

    def read(name, offset, shape):
        raw = gzip.open(data_dir / "mnist" / name).read()
        return np.frombuffer(raw, np.uint8, offset=offset).reshape(shape)

    x_tr = read("train-images-idx3-ubyte.gz", 16, (-1, 28, 28))[:n_train]
    y_tr = read("train-labels-idx1-ubyte.gz", 8, (-1,))[:n_train]
    x_te = read("t10k-images-idx3-ubyte.gz", 16, (-1, 28, 28))[:n_test]
    y_te = read("t10k-labels-idx1-ubyte.gz", 8, (-1,))[:n_test]

    with tfds.core.registered.skip_registration():
        class MNIST(tfds.core.GeneratorBasedBuilder):
            """Same name, version and features as TFDS's mnist; examples from local arrays."""

            VERSION = tfds.core.Version("3.0.1")

            def _info(self):
                return tfds.core.DatasetInfo(
                    builder=self,
                    features=tfds.features.FeaturesDict({
                        "image": tfds.features.Image(shape=(28, 28, 1)),
                        "label": tfds.features.ClassLabel(num_classes=10)}),
                    supervised_keys=("image", "label"))

            def _split_generators(self, dl_manager):
                return {"train": self._generate_examples(x_tr, y_tr),
                        "test": self._generate_examples(x_te, y_te)}

            def _generate_examples(self, x, y):
                for i in range(len(x)):
                    yield i, {"image": x[i][..., None], "label": int(y[i])}

    builder = MNIST(data_dir=str(tfds_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return y_tr, y_te


def test_tfds_source_equals_raw_source(data_dir, tmp_path):
    tfds_dir = tmp_path / "tfds"
    y_tr, y_te = _prepare_tfds_mnist(data_dir, tfds_dir)
    assert (tfds_dir / "mnist" / "3.0.1" / "dataset_info.json").is_file()
    rows = build.build("mnist", source="tfds", tfds_data_dir=tfds_dir, records_dir=tmp_path / "r")
    assert {r["split"]: r["count"] for r in rows} == {"train": 30, "test": 20}
    # load_split reuses the TFDS-built records (source remembered in metadata)
    t = load_split("mnist", "test", records_dir=tmp_path / "r", data_dir=tmp_path / "nowhere")
    raw = load_split("mnist", "test", data_dir=data_dir, records_dir=tmp_path / "raw", limit=20)
    np.testing.assert_array_equal(raw.labels, y_te)

    def rows(s):  # TFDS stores examples in its own (hashed) order: compare as multisets
        return sorted((int(y), x.tobytes()) for x, y in zip(s.images, s.labels))

    assert rows(t) == rows(raw)
    assert t.metadata["settings"]["source"] == "tfds"
    again = build.build("mnist", source="tfds", tfds_data_dir=tfds_dir, records_dir=tmp_path / "r")
    assert all(r["reused"] for r in again)


def test_tfds_source_errors(tmp_path):
    with pytest.raises(DataError, match=r"no prepared TFDS dataset in .*celeb_a.*tfds build celeb_a"):
        build.build("celeba", source="tfds", tfds_data_dir=tmp_path, records_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match="--source=tfds supports"):
        build.build("att_faces", source="tfds", tfds_data_dir=tmp_path, records_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match="needs --tfds_data_dir"):
        build.build("mnist", source="tfds", records_dir=tmp_path / "r")


def test_tfds_celeb_a_crop_attributes_and_split_names(data_dir, tmp_path):
    """A small `celeb_a` prepared by TFDS from the full-size aligned JPEGs and the attribute file."""
    import tarfile

    import tensorflow_datasets as tfds

    from tfminv.data import preprocess
    from tfminv.data.sources import celeba, decode_image

    with tarfile.open(data_dir / "celeba" / "celeba_align_178x218_000001-000032.tar") as tf:
        jpgs = {m.name.rsplit("/", 1)[-1]: tf.extractfile(m).read()
                for m in tf.getmembers() if m.isfile()}
    names = sorted(jpgs)[:9]
    attr_names, rows = celeba._attributes(
        next((data_dir / "celeba").glob("list_attr_celeba*")))
    rgb = {n: decode_image(jpgs[n], n) for n in names}
    split_of = {n: ("train", "validation", "test")[i % 3] for i, n in enumerate(names)}

    with tfds.core.registered.skip_registration():
        class CelebA(tfds.core.GeneratorBasedBuilder):
            """Same name and image/attribute features as TFDS's celeb_a."""

            VERSION = tfds.core.Version("2.1.0")

            def _info(self):
                return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(218, 178, 3), encoding_format="png"),
                    "attributes": {k: tfds.features.Tensor(shape=(), dtype=np.bool_)
                                   for k in attr_names}}))

            def _split_generators(self, dl_manager):
                return {s: self._generate_examples(s) for s in ("train", "validation", "test")}

            def _generate_examples(self, split):
                for n in names:
                    if split_of[n] == split:
                        yield n, {"image": rgb[n],
                                  "attributes": {k: bool(v > 0)
                                                 for k, v in zip(attr_names, rows[n])}}

    CelebA(data_dir=str(tmp_path / "tfds")).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    out = {r["split"]: r["count"] for r in build.build(
        "celeba", source="tfds", tfds_data_dir=tmp_path / "tfds", records_dir=tmp_path / "r")}
    assert out == {"train": 3, "valid": 3, "test": 3}
    v = load_split("celeba", "valid", records_dir=tmp_path / "r", data_dir=tmp_path / "none")
    assert v.attribute_names == attr_names and v.labels.tolist() == [-1] * 3
    expect = {}
    for n in names:
        if split_of[n] == "validation":
            img = celeba.preprocess.celeba_crop(preprocess.to_grey(rgb[n]), 64)[0]
            expect[img.tobytes()] = rows[n].tolist()
    got = {np.round(x[..., 0] * 255).astype(np.uint8).tobytes(): a.tolist()
           for x, a in zip(v.images, v.attributes)}
    assert got == expect
