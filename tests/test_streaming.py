"""Streamed auxiliary sets: rows read from the records on demand, queried in chunks and trained on
through tf.data, matching the in-memory path's images."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tfminv.attacks import predictions  # noqa: E402
from tfminv.data import allocations  # noqa: E402
from tfminv.data.streaming import Rows, StreamedImages, inverter_dataset  # noqa: E402
from tfminv.errors import DataError  # noqa: E402
from tfminv.oracles.base import CallableOracle  # noqa: E402


def _probs(images):
    m = images.reshape(len(images), -1).mean(axis=1)
    logits = np.stack([m, 3 * m, -m, 0 * m], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def ref():
    # digits 5-9 of MNIST train, shuffled, a fraction: exercises the selection of rows
    return allocations.SplitRef("mnist", "train", 32, classes=(5, 6, 7, 8, 9),
                                fraction=(0.0, 0.01), seed=3)


def test_streamed_rows_are_the_materialized_rows_in_record_order(data_dir, ref):
    s = StreamedImages.from_ref(ref, data_dir=data_dir)
    mem = allocations.materialize(ref, data_dir=data_dir)
    assert len(s) == len(mem) > 200 and s.image_shape == (32, 32, 1)
    chunks = list(s.iter_chunks(100))
    assert [i for i, _ in chunks] == list(range(len(chunks)))
    streamed = np.concatenate([c for _, c in chunks])
    # same rows; the in-memory set is in the ref's shuffled order, the stream in record order
    key = lambda a: np.sort(a.reshape(len(a), -1).sum(axis=1))  # noqa: E731
    np.testing.assert_allclose(key(streamed), key(mem.images), rtol=1e-6)
    assert set(np.unique(mem.labels)) <= {5, 6, 7, 8, 9}
    resumed = np.concatenate([c for _, c in s.iter_chunks(100, start=2)])
    np.testing.assert_array_equal(resumed, streamed[200:])
    assert s.content_hash() == StreamedImages.from_ref(ref, data_dir=data_dir).content_hash()
    other = allocations.SplitRef("mnist", "train", 32, classes=(5, 6, 7, 8, 9),
                                 fraction=(0.0, 0.01), seed=4)
    assert s.content_hash() != StreamedImages.from_ref(other, data_dir=data_dir).content_hash()


def test_streamed_query_is_chunked_and_matches_the_arrays(data_dir, ref, tmp_path):
    s = StreamedImages.from_ref(ref, data_dir=data_dir)
    streamed = np.concatenate([c for _, c in s.iter_chunks(256)])
    o = CallableOracle(_probs, batch_size=64, name="stream")
    got = predictions.query_cached(o, s, tmp_path, chunk_size=128)
    assert o.num_queries == len(s)
    np.testing.assert_allclose(got, _probs(streamed), rtol=1e-6)
    again = CallableOracle(_probs, batch_size=64, name="stream")
    np.testing.assert_array_equal(predictions.query_cached(again, s, tmp_path), got)
    assert again.num_queries == 0


def test_training_batches_pair_each_image_with_its_prediction(data_dir, ref):
    """The pipeline (predictions from a generator, uint8 images shuffled, scaled per batch)
    yields what shuffling the float32 arrays would: the same pairs, in the same order."""
    import tensorflow as tf

    s = StreamedImages.from_ref(ref, data_dir=data_dir)
    images = s.to_array()
    preds = np.random.default_rng(0).random((len(s), 7), dtype=np.float32)
    want = tf.data.Dataset.from_tensor_slices((preds, images)).shuffle(
        len(s), seed=5, reshuffle_each_iteration=True).batch(16)
    got = inverter_dataset(preds, s, 16, seed=5, shuffle_buffer=len(s))
    assert got.cardinality().numpy() == -(-len(s) // 16)
    n = 0
    for (p, x), (wp, wx) in zip(got.as_numpy_iterator(), want.as_numpy_iterator()):
        assert x.dtype == np.float32 and x.max() <= 1.0
        np.testing.assert_array_equal(p, wp)
        np.testing.assert_array_equal(x, wx)
        n += len(p)
    assert n == len(s)
    # each pass is another order (reshuffled each epoch) of the same rows
    first, second = (np.concatenate([p for p, _ in got.as_numpy_iterator()]) for _ in range(2))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(first, axis=0), np.sort(second, axis=0))


def test_inverter_trains_on_a_streamed_set(data_dir, ref, tmp_path):
    from tfminv.attacks.inversion import train_inverter
    from tfminv.training import TrainConfig

    s = StreamedImages.from_ref(ref, data_dir=data_dir)
    preds = predictions.query_cached(CallableOracle(_probs, name="stream"), s, tmp_path)
    ds = inverter_dataset(preds, s, 32, seed=1)
    p, x = next(iter(ds))
    assert p.shape == (32, 4) and x.shape == (32, 32, 32, 1)
    with pytest.raises(DataError, match="prediction vectors"):
        inverter_dataset(preds[:-1], s, 32)
    val_imgs = np.concatenate([c for _, c in s.iter_chunks(64)])[:64]
    g = train_inverter(preds, s, k=2, method="truncation",
                       config=TrainConfig(epochs=1, batch_size=32, verbose=0, precision="float32"),
                       workdir=tmp_path / "inv", val=(_probs(val_imgs), val_imgs), width=0.0625)
    out = g.predict(preds[:5], verbose=0)
    assert out.shape == (5, 32, 32, 1) and np.all(np.isfinite(out))
    import json
    from pathlib import Path

    hist = (Path(g.run_dir) / "history.csv").read_text().splitlines()
    assert len(hist) == 2 and json.loads((Path(g.run_dir) / "run.json").read_text())["epochs_run"] == 1


def test_a_rows_view_trains_like_the_copied_rows(data_dir, ref, tmp_path):
    """selection_data's training answers are a `Rows` view of the answers: the same batches,
    the same content hash, so the same cached inverter as the copy `base[index]`."""
    from tfminv.attacks.inversion import train_inverter
    from tfminv.hashing import content_hash
    from tfminv.training import TrainConfig

    s = StreamedImages.from_ref(ref, data_dir=data_dir)
    rng = np.random.default_rng(1)
    base = rng.random((len(s) + 40, 4), dtype=np.float32)
    index = rng.permutation(len(base))[:len(s)]  # unsorted, some rows left out
    view, copy = Rows(base, index), base[index]
    assert view.shape == copy.shape and len(view) == len(s)
    np.testing.assert_array_equal(np.asarray(view), copy)
    np.testing.assert_array_equal(view[3:9], copy[3:9])
    assert content_hash(view) == content_hash(copy)
    assert content_hash(view) != content_hash(base[index[::-1]])
    for (p, x), (wp, wx) in zip(inverter_dataset(view, s, 16, seed=5).as_numpy_iterator(),
                                inverter_dataset(copy, s, 16, seed=5).as_numpy_iterator()):
        np.testing.assert_array_equal(p, wp)
        np.testing.assert_array_equal(x, wx)
    config = TrainConfig(epochs=1, batch_size=32, verbose=0, precision="float32")
    runs = [train_inverter(p, s, k=2, method="truncation", config=config,
                           workdir=tmp_path / "inv", width=0.0625).run_dir
            for p in (copy, view)]
    assert runs[0] == runs[1]
    with pytest.raises(DataError, match=r"row indices must be in \[0, "):
        Rows(base, [0, len(base)])
    with pytest.raises(DataError, match="expected answers"):
        Rows(base[0], [0])
