"""Fredrikson optimisation attack, class inference helpers, joint model, frontal-face selection."""

import numpy as np
import pytest

from tfminv.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def tiny_classifier(data_dir):
    """A digits 0-4 classifier trained for two epochs on 1,000 real MNIST images."""
    import keras

    from tfminv.data import load_split
    from tfminv.models import build_classifier

    ds = load_split("mnist", "test", image_size=32, data_dir=data_dir)
    keep = np.flatnonzero(ds.labels < 5)[:1000]
    keras.utils.set_random_seed(3)
    model = build_classifier(5, 32, width=0.0625)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ds.images[keep], ds.labels[keep], epochs=2, batch_size=64, verbose=0)
    return model


def test_fredrikson_raises_each_class_confidence(tiny_classifier):
    from tfminv.attacks.fredrikson import FredriksonConfig, invert_classes

    classes = [0, 1, 2, 3, 4]
    cfg = FredriksonConfig(steps=60, learning_rate=0.5, patience=20, process="denoise+sharpen",
                           objective="logprob")
    res = invert_classes(tiny_classifier, classes, (32, 32, 1), cfg)
    assert res.images.shape == (5, 32, 32, 1)
    assert res.images.min() >= 0 and res.images.max() <= 1
    blank = np.zeros((5, 32, 32, 1), np.float32)
    logits = tiny_classifier.predict(blank, verbose=0)
    p0 = np.exp(logits - logits.max(1, keepdims=True))
    p0 = (p0 / p0.sum(1, keepdims=True))[np.arange(5), classes]
    assert np.all(res.raw_confidence > p0 + 1e-3), (res.raw_confidence, p0)
    # before post-processing each image is most confidently its own class
    pred = tiny_classifier.predict(res.raw_images, verbose=0).argmax(1)
    assert (pred == np.asarray(classes)).mean() >= 0.8
    assert res.raw_images.std() > 0 and not np.allclose(res.images, res.raw_images)
    assert np.all(res.steps >= 1) and np.all(res.steps <= 60)
    assert res.seconds_per_class == pytest.approx(res.seconds_total / 5)


def test_fredrikson_stops_at_threshold_and_checks_inputs(tiny_classifier):
    from tfminv.attacks.fredrikson import FredriksonConfig, invert_classes

    res = invert_classes(tiny_classifier, [1, 2], (32, 32, 1),
                         FredriksonConfig(steps=50, threshold=1.0))
    assert np.all(res.steps == 1)
    with pytest.raises(ConfigError, match="classes"):
        invert_classes(tiny_classifier, [7], (32, 32, 1), FredriksonConfig(steps=2))
    with pytest.raises(ConfigError, match="process"):
        FredriksonConfig(process="median")


def test_fredrikson_process_filters():
    import tensorflow as tf

    from tfminv.attacks.fredrikson import FredriksonConfig, make_process

    flat = tf.fill((1, 16, 16, 1), 0.4)
    for proc in ("denoise", "sharpen", "denoise+sharpen"):
        out = make_process(FredriksonConfig(process=proc))(flat).numpy()
        np.testing.assert_allclose(out, 0.4, atol=1e-6)
    noisy = np.random.default_rng(0).random((1, 16, 16, 1)).astype(np.float32)
    den = make_process(FredriksonConfig(process="denoise"))(tf.constant(noisy)).numpy()
    sharp = make_process(FredriksonConfig(process="sharpen"))(tf.constant(den)).numpy()
    assert den.std() < noisy.std() and sharp.std() > den.std()


def test_class_vectors_and_one_forward_pass_per_class():
    from tfminv.attacks.class_inference import class_vectors, infer_classes
    from tfminv.models import build_inverter, truncate_np

    v = class_vectors(4, [2, 0], confidence=0.7)
    np.testing.assert_allclose(v.sum(1), 1, atol=1e-6)
    assert v[0].argmax() == 2 and v[1].argmax() == 0
    t = truncate_np(class_vectors(4, [3]), 1)
    np.testing.assert_allclose(t, [[0, 0, 0, 50]])
    inv = build_inverter(4, 32, width=0.0625, k=1)
    imgs, secs = infer_classes(inv, 4, [0, 1, 2, 3])
    assert imgs.shape == (4, 32, 32, 1) and secs > 0
    assert not np.allclose(imgs[0], imgs[1])
    with pytest.raises(ConfigError):
        class_vectors(4, [4])


def test_best_auxiliary_reads_only_what_a_top_k_release_shows():
    """Per class, the auxiliary row whose released top-k gives it the highest score; a class
    that no row's top k holds is -1 (its 0.3 in row 2 is not released at k = 1)."""
    from tfminv.attacks.class_inference import best_auxiliary

    answers = np.array([[0.6, 0.3, 0.1, 0.0],
                        [0.1, 0.8, 0.05, 0.05],
                        [0.5, 0.1, 0.3, 0.1],
                        [0.45, 0.45, 0.05, 0.05]], np.float32)
    np.testing.assert_array_equal(best_auxiliary(answers, [0, 1, 2, 3], k=1), [0, 1, -1, -1])
    # at k = 2 row 2 releases class 2, and row 0's 0.3 for class 1 loses to row 1's 0.8
    np.testing.assert_array_equal(best_auxiliary(answers, [2, 1, 0], k=2), [2, 1, 0])
    with pytest.raises(DataError, match="best auxiliary"):
        best_auxiliary(np.zeros((0, 4)), [0], k=1)


def test_top_auxiliary_ranks_the_rows_that_release_the_class_and_averages_them():
    """n rows per class, highest score first, -1 past the rows that release it; the class
    image is the mean of the found rows (the fallback where none is found)."""
    from tfminv.attacks.class_inference import mean_of_picks, top_auxiliary

    answers = np.array([[0.6, 0.3, 0.1, 0.0],
                        [0.1, 0.8, 0.05, 0.05],
                        [0.5, 0.1, 0.3, 0.1],
                        [0.7, 0.2, 0.05, 0.05]], np.float32)
    picks = top_auxiliary(answers, [0, 1, 2], k=2, n=3)
    np.testing.assert_array_equal(picks, [[3, 0, 2], [1, 0, 3], [2, -1, -1]])
    images = np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1) * np.ones((4, 2, 2, 1))
    out = mean_of_picks(images, np.array([[3, 0, -1], [-1, -1, -1]]), np.full((2, 2, 1), 9.0))
    np.testing.assert_allclose(out[:, 0, 0, 0], [1.5, 9.0])
    with pytest.raises(ConfigError, match="match_n"):
        top_auxiliary(answers, [0], k=1, n=5)


def test_joint_model_trains_and_attack_inverter_matches_training_path(data_dir):
    import keras

    from tfminv.data import load_split
    from tfminv.models import truncate_np
    from tfminv.models.joint import RescaledTruncation, build_joint_model, inverter_of
    from tfminv.training.joint import joint_losses, joint_targets

    p = np.random.default_rng(1).dirichlet(np.ones(6), size=8).astype(np.float32)
    layer = RescaledTruncation(3, from_logits=False)
    np.testing.assert_allclose(layer(p).numpy(), truncate_np(p, 3), rtol=1e-5, atol=1e-4)

    ds = load_split("mnist", "test", image_size=32, data_dir=data_dir)
    keep = np.flatnonzero(ds.labels < 5)[:256]
    x, y = ds.images[keep], ds.labels[keep]
    keras.utils.set_random_seed(1)
    joint = build_joint_model(5, 32, k=2, width=0.0625)
    joint.compile(optimizer=keras.optimizers.Adam(1e-3), loss=joint_losses(10.0))
    hist = joint.fit(x, joint_targets(x, y), epochs=2, batch_size=64, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    out = joint.predict(x[:16], verbose=0)
    assert out["logits"].shape == (16, 5) and out["recon"].shape == (16, 32, 32, 1)
    # the attack-time inverter (released probabilities) reproduces the training-time path
    logits = out["logits"].astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    inv = inverter_of(joint)
    np.testing.assert_allclose(inv.predict(probs.astype(np.float32), verbose=0), out["recon"],
                               atol=2e-3)
    assert float(inv.get_layer("rescaled_truncation").b.numpy()) == pytest.approx(
        float(joint.get_layer("rescaled_truncation").b.numpy()))
    with pytest.raises(ConfigError):
        build_joint_model(5, 32, k=6, width=0.0625)


def test_frontal_selection_on_real_faces(data_dir):
    from tfminv.attacks.alignment import (FRONTAL, DetectorConfig, face_orientation,
                                          orientation_counts, select_frontal)
    from tfminv.data import load_split

    faces = load_split("facescrub", "all", image_size=64, data_dir=data_dir).subset(np.arange(60))
    labels = face_orientation(faces.images)
    counts = orientation_counts(labels)
    assert sum(counts.values()) == 60
    assert counts[FRONTAL] >= 30  # FaceScrub crops are mostly frontal
    # digits are not faces
    digits = load_split("mnist", "test", image_size=32, data_dir=data_dir)
    dl = face_orientation(digits.images[:40], DetectorConfig(upsample=2))
    assert (dl == FRONTAL).sum() <= 2
    sub, c2 = select_frontal(faces)
    assert len(sub) == counts[FRONTAL] and c2 == counts
    stricter = orientation_counts(face_orientation(faces.images, DetectorConfig(min_neighbors=20)))
    assert stricter[FRONTAL] <= counts[FRONTAL]
    with pytest.raises(ConfigError, match="upsample"):
        DetectorConfig(upsample=0)


class _FlakyInverter:
    """Stands in for a Keras inverter: image = mean of the prediction row; rows listed in
    `nan_rows` come out NaN for the first `bad_calls` calls that include them."""

    name = "flaky"
    output_shape = (None, 4, 4, 1)

    def __init__(self, nan_rows, bad_calls):
        self.nan_rows, self.bad_calls, self.calls = set(nan_rows), bad_calls, 0

    def predict_on_batch(self, preds):
        self.calls += 1
        out = np.repeat(preds.mean(axis=1), 16).reshape(len(preds), 4, 4, 1).astype(np.float32)
        if self.calls <= self.bad_calls:
            out[[i for i, row in enumerate(preds) if int(row[0]) in self.nan_rows]] = np.nan
        return out


def test_invert_recomputes_intermittent_nonfinite_rows_and_fails_on_persistent(capsys):
    from tfminv.attacks.inversion import invert
    from tfminv.errors import DataError

    preds = np.zeros((10, 3), np.float32)
    preds[:, 0] = np.arange(10)  # the row id travels in column 0
    once = _FlakyInverter({3, 7}, bad_calls=3)  # the first pass (3 batches) only
    out = invert(once, preds, batch_size=4)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, 0, 0, 0], preds.mean(axis=1))
    assert once.calls == 4  # three batches, then one rerun of rows 3 and 7
    assert "2 of 10 reconstructions came out non-finite" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"flaky: 1 of 10 reconstructions stay non-finite"):
        invert(_FlakyInverter({5}, bad_calls=100), preds, batch_size=4)
