"""Method 'aux_match' (tfminv.attacks.retrieval): the auxiliary photo whose answer is closest to
the victim's release, through the attack core, the door and the truncation scenario."""

from __future__ import annotations

import numpy as np
import pytest

from tfminv.errors import ConfigError, DataError


def _answers(n, m, seed):
    return np.random.default_rng(seed).dirichlet(np.full(m, 0.3), n).astype(np.float32)


def test_keep_top_k_keeps_the_k_largest_ties_to_the_lower_index():
    from tfminv.policies import keep_top_k as released_top_k

    p = np.array([[0.1, 0.4, 0.1, 0.4], [0.7, 0.1, 0.1, 0.1]], np.float32)
    f = np.float32
    np.testing.assert_array_equal(released_top_k(p, 1), f([[0, 0.4, 0, 0], [0.7, 0, 0, 0]]))
    np.testing.assert_array_equal(released_top_k(p, 3),
                                  f([[0.1, 0.4, 0, 0.4], [0.7, 0.1, 0.1, 0]]))
    np.testing.assert_array_equal(released_top_k(p, 4), p)


def test_the_match_is_the_auxiliary_row_with_the_same_top_k_and_n_averages():
    """A victim whose release is an auxiliary row's answer (its unreleased entries changed)
    is matched to that row at every chunk boundary; n = 2 averages the two closest rows."""
    from tfminv.attacks import retrieval

    m, k = 20, 3
    aux = _answers(300, m, 0)
    images = np.random.default_rng(1).random((300, 8, 8, 1)).astype(np.float32)
    pick = np.random.default_rng(2).choice(300, retrieval.CHUNK + 7, replace=True)
    victims = aux[pick].copy()
    low = np.argsort(victims, axis=1)[:, :m - k]  # entries a top-3 API never shows
    np.put_along_axis(victims, low, 0.0, axis=1)
    r = retrieval.AuxRetriever(aux, images, k=k)
    np.testing.assert_array_equal(r.match(victims)[:, 0], pick)
    np.testing.assert_allclose(r.predict_on_batch(victims), images[pick])
    assert r.run_dir is None and r.output_shape == (None, 8, 8, 1)
    two = retrieval.AuxRetriever(aux, images, k=k, n=2)
    idx = two.match(victims)
    assert idx.shape == (len(pick), 2) and (idx[:, 0] == pick).all() and (idx[:, 1] != pick).all()
    np.testing.assert_allclose(two(victims), images[idx].mean(1), rtol=1e-6)
    # the second closest really is the second most similar row (brute force)
    a = retrieval._unit(retrieval.keep_top_k(aux, k))
    q = retrieval._unit(retrieval.keep_top_k(victims, k))
    np.testing.assert_array_equal(idx[:, 1], np.argsort(-(q @ a.T), axis=1)[:, 1])


def test_bad_input_is_one_line():
    from tfminv.attacks.retrieval import AuxRetriever

    aux, images = _answers(10, 5, 0), np.zeros((10, 8, 8, 1), np.float32)
    for kw, word in ((dict(k=0), "k=0"), (dict(k=6), "k=6"), (dict(k=2, n=0), "match_n"),
                     (dict(k=2, n=11), "match_n")):
        with pytest.raises(ConfigError) as e:
            AuxRetriever(aux, images, **kw)
        assert word in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="same N"):
        AuxRetriever(aux, images[:9], k=2)

    class Stream:  # what a StreamedImages looks like to the retriever
        def iter_chunks(self):
            return iter(())

    with pytest.raises(ConfigError, match="in memory"):
        AuxRetriever(aux, Stream(), k=2)
    with pytest.raises(DataError, match=r"\[N, 5\]"):
        AuxRetriever(aux, images, k=2).match(np.zeros((3, 4), np.float32))


def test_train_inverter_refuses_the_retrieval_method(tmp_path):
    from tfminv.attacks.inversion import train_inverter
    from tfminv.training import TrainConfig

    with pytest.raises(ConfigError, match="trains no inverter"):
        train_inverter(_answers(4, 3, 0), np.zeros((4, 16, 16, 1), np.float32), k=1,
                       method="aux_match", config=TrainConfig(epochs=1), workdir=tmp_path,
                       width=0.125)


def test_the_door_runs_aux_match_on_real_digits(data_dir, tmp_path):
    """`run_inversion(method='aux_match')` on MNIST: a target trained here; the reconstructions
    are auxiliary images (each victim's is one of them), the judge names the victim's digit far
    above chance, nothing is trained for the attack, and match_n is in settings."""
    import keras

    import tfminv
    from tfminv.data import load_split
    from tfminv.leakage import InversionConfig
    from tfminv.models import build_classifier
    from tfminv.training import TrainConfig, fit

    s = load_split("mnist", "test", image_size=32, data_dir=data_dir, limit=2600)
    x, y = s.images.astype(np.float32), s.labels.astype(np.int64)
    target = fit(lambda: build_classifier(10, x.shape[1:], 0.125, name="target"), x[:1500],
                 y[:1500], config=TrainConfig(epochs=3, batch_size=64, verbose=0,
                                              precision="float32"),
                 workdir=tmp_path / "target",
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def probs(images):
        z = np.asarray(target.predict(images, batch_size=256, verbose=0), np.float64)
        e = np.exp(z - z.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    aux, vx, vl = x[1500:2500], x[2500:2600], y[2500:2600]
    cfg = InversionConfig(k=3, method="aux_match", cache_dir=str(tmp_path / "cache"),
                          val_fraction=0.1)
    res = tfminv.run_inversion(probs, tfminv.InversionInputs(aux, vx, vl), config=cfg,
                               eval_model=probs)
    row = res.rows[0]
    assert res.settings["method"] == "aux_match" and res.settings["match_n"] == 1
    recon = res.reconstructions[row.policy]
    # each reconstruction is one of the auxiliary images, never a victim
    flat_aux = aux.reshape(len(aux), -1)
    d = ((recon.reshape(len(recon), 1, -1) - flat_aux[None]) ** 2).mean(-1)
    assert float(d.min(1).max()) < 1e-10
    assert row.attack_acc > 0.5  # the judge's digit of the matched photo (chance 0.1)
    assert row.mse > 0 and row.aux_val_mse > 0
