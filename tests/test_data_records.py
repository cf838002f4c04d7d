"""tf.data reader, batching helper, normalisation options, allocations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfminv.data import allocations, load_split, make_batches, read_records
from tfminv.data.imageset import ImageSet
from tfminv.errors import ConfigError


@pytest.fixture(scope="module")
def mnist_small(data_dir, records_dir):
    return load_split("mnist", "test", data_dir=data_dir, records_dir=records_dir, limit=300)


def test_read_records_matches_load_split(mnist_small, data_dir, records_dir):
    ds = read_records("mnist", "test", data_dir=data_dir, records_dir=records_dir, limit=300)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    assert xs[0].shape == (32, 32, 1) and xs[0].dtype == np.float32
    np.testing.assert_array_equal(np.stack(xs), mnist_small.images)
    np.testing.assert_array_equal(np.array(ys), mnist_small.labels)


def test_make_batches_seeded_shuffle(mnist_small, data_dir, records_dir):
    ds = read_records("mnist", "test", data_dir=data_dir, records_dir=records_dir, limit=300)
    a = [y.numpy() for _, y in make_batches(ds, 64, shuffle=True, seed=3)]
    b = [y.numpy() for _, y in make_batches(ds, 64, shuffle=True, seed=3)]
    c = [y.numpy() for _, y in make_batches(ds, 64, shuffle=False)]
    assert [len(x) for x in a] == [64, 64, 64, 64, 44]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    assert not np.array_equal(np.concatenate(a), np.concatenate(c))
    assert sorted(np.concatenate(a).tolist()) == sorted(mnist_small.labels.tolist())
    np.testing.assert_array_equal(np.concatenate(c), mnist_small.labels)
    with pytest.raises(ConfigError, match="batch_size"):
        make_batches(ds, 0)


def test_minmax_normalisation(data_dir, records_dir):
    unit = load_split("att_faces", "all", data_dir=data_dir, records_dir=records_dir)
    mm = load_split("att_faces", "all", data_dir=data_dir, records_dir=records_dir,
                    normalize="minmax")
    u8 = np.round(unit.images * 255)
    lo, hi = u8.min(axis=0), u8.max(axis=0)
    ref = (u8 - lo) / np.where(hi > lo, hi - lo, 1)
    np.testing.assert_allclose(mm.images, ref, atol=1e-6)
    assert mm.images.min() == 0.0 and mm.images.max() == 1.0
    ds = read_records("att_faces", "all", data_dir=data_dir, records_dir=records_dir,
                      normalize="minmax")
    first = np.stack([x.numpy() for x, _ in ds.take(5)])
    np.testing.assert_allclose(first, mm.images[:5], atol=1e-6)
    with pytest.raises(ConfigError, match="normalize='zscore'"):
        load_split("att_faces", "all", data_dir=data_dir, records_dir=records_dir,
                   normalize="zscore")


def test_imageset_subset_and_unknown_split(mnist_small, data_dir, records_dir):
    sub = mnist_small.subset(mnist_small.labels == 3)
    assert isinstance(sub, ImageSet) and set(sub.labels.tolist()) == {3}
    assert len(sub) == int((mnist_small.labels == 3).sum())
    with pytest.raises(ConfigError, match="split 'validation'"):
        load_split("mnist", "validation", data_dir=data_dir, records_dir=records_dir, limit=300)
    both = load_split("mnist", "all", data_dir=data_dir, records_dir=records_dir, limit=300)
    assert len(both) == 600


def test_celeba_attributes_through_reader(data_dir, records_dir):
    ds = read_records("celeba", "train", data_dir=data_dir, records_dir=records_dir, limit=40,
                      with_attributes=True)
    x, y, a = next(iter(ds))
    assert x.shape == (64, 64, 1) and a.shape == (40,)
    assert set(np.unique(a.numpy())) <= {-1, 1}


def test_builtin_allocations_match_the_paper(data_dir, records_dir):
    fs = allocations.get("facescrub")
    parts = {k: allocations.select(1851, np.zeros(1851), getattr(fs, k))
             for k in ("target_train", "target_test", "victims")}
    same = allocations.select(1851, np.zeros(1851), fs.aux["same"])
    assert len(parts["target_train"]) == 1481 and len(parts["target_test"]) == 370
    assert not set(parts["target_train"]) & set(parts["target_test"])
    assert set(same) | set(parts["victims"]) == set(parts["target_test"])
    assert not set(same) & set(parts["victims"])
    assert (fs.aux["generic"].dataset, fs.aux["distinct"].dataset,
            fs.aux["distinct"].image_size) == ("celeba", "cifar10", 64)
    m = allocations.get("mnist")
    assert m.num_classes == 5 and m.aux["distinct"].image_size == 32
    train = allocations.materialize(m.target_train, data_dir=data_dir, records_dir=records_dir)
    held = allocations.materialize(m.aux["same"], data_dir=data_dir, records_dir=records_dir)
    gen = allocations.materialize(m.aux["generic"], data_dir=data_dir, records_dir=records_dir)
    assert set(train.labels.tolist()) == set(held.labels.tolist()) == {0, 1, 2, 3, 4}
    assert set(gen.labels.tolist()) == {5, 6, 7, 8, 9}
    n04 = len(train) + len(held)
    assert n04 == 5923 + 6742 + 5958 + 6131 + 5842
    assert abs(len(train) - 0.8 * n04) <= 1
    # held-out images are not training images
    tr = {x.tobytes() for x in (train.images[:2000] * 255).astype(np.uint8)}
    assert not tr & {x.tobytes() for x in (held.images * 255).astype(np.uint8)}


def test_user_defined_allocation_from_json(tmp_path, data_dir, records_dir):
    alloc = allocations.MNIST.to_dict()
    alloc.update(name="digits-even", num_classes=3, label_names=["0", "2", "4"])
    ref = dict(dataset="mnist", split="test", image_size=32, classes=[0, 2, 4], relabel=True,
               fraction=[0, 0.5], limit=None)
    alloc["target_train"] = ref
    p = tmp_path / "alloc.json"
    p.write_text(json.dumps(alloc))
    a = allocations.get(str(p))
    assert a.name == "digits-even" and a.target_train.classes == (0, 2, 4)
    s = allocations.materialize(a.target_train, data_dir=data_dir, records_dir=records_dir)
    assert set(s.labels.tolist()) == {0, 1, 2} and s.label_names == ("0", "2", "4")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x"}))
    with pytest.raises(ConfigError, match="missing keys"):
        allocations.get(str(bad))
    with pytest.raises(ConfigError, match="unknown allocation 'cifar'"):
        allocations.get("cifar")
    with pytest.raises(ConfigError, match="fraction"):
        allocations.SplitRef("mnist", "train", fraction=(0.5, 0.2))
