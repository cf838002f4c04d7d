"""The attacker's surrogate and the identity-consistent inverter (tfminv.attacks.surrogate,
tfminv.attacks.identity) on a small real MNIST slice: a target trained here, released top-k
vectors, the surrogate distilled from them, method 'identity' through the attack core."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfminv.errors import ConfigError

K = 3
#: the surrogate's epochs here: at 3 epochs its agreement on 900 images was still erratic
#: (0.12 to 0.51 top-1 between widths), at 8 about 0.8
SUR_EPOCHS = 8
#: the image prior's epochs here: its residual on held-out digits was worse than their mean
#: image after 3 epochs, 0.030 after 10 (shuffled pixels: 0.077)
PRIOR_EPOCHS = 10


@pytest.fixture(scope="module")
def mnist(data_dir, tmp_path_factory):
    """A target (10 digits, tiny width) trained on 2,000 MNIST test images; the attacker's
    1,000 auxiliary images (900 train + 100 held out) and 100 victims, all disjoint, with the
    target's probability vectors (the releases are their top-k)."""
    import keras

    from tfminv.data import load_split
    from tfminv.models import build_classifier
    from tfminv.training import TrainConfig, fit

    s = load_split("mnist", "test", image_size=32, data_dir=data_dir, limit=3100)
    x, y = s.images.astype(np.float32), s.labels.astype(np.int64)
    base = tmp_path_factory.mktemp("identity")
    cfg = TrainConfig(epochs=3, batch_size=64, verbose=0, precision="float32")
    target = fit(lambda: build_classifier(10, x.shape[1:], 0.125, name="target"), x[:2000],
                 y[:2000], config=cfg, workdir=base / "target",
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def probs(images):
        z = np.asarray(target.predict(images, batch_size=256, verbose=0), np.float64)
        e = np.exp(z - z.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    aux, vic = x[2000:3000], x[3000:3100]
    return dict(probs=probs, aux=aux, aux_tr=(probs(aux[:900]), aux[:900]), aux_val=(probs(aux[900:]), aux[900:]),
                victims=(probs(vic), vic, y[3000:3100]), base=base,
                target_acc=float(np.mean(np.argmax(probs(vic), 1) == y[3000:3100])),
                config=TrainConfig(epochs=3, batch_size=64, learning_rate=1e-3, verbose=0,
                                   precision="float32"))


def test_surrogate_agrees_with_the_target_well_above_chance(mnist, caplog):
    from tfminv.attacks.surrogate import train_surrogate

    p, x = mnist["aux_tr"]
    s = train_surrogate(p, x, k=K, config=mnist["config"].replace(epochs=SUR_EPOCHS),
                        workdir=mnist["base"] / "sur", width=0.125, heldout=mnist["aux_val"])
    assert s.n_heldout == 100 and s.chance == pytest.approx(0.1)
    assert mnist["target_acc"] > 0.8
    assert s.top1_agreement > 0.6, s.fields()  # chance 0.1
    assert s.topk_overlap > 0.5
    assert not s.near_chance and s.fields()["surrogate_near_chance"] is False
    # label-only (one-hot, k = 1) trains through the same loss
    onehot = np.eye(10, dtype=np.float32)[np.argmax(p, 1)]
    s1 = train_surrogate(onehot, x, k=1, config=mnist["config"].replace(epochs=SUR_EPOCHS),
                         workdir=mnist["base"] / "sur", width=0.125, heldout=mnist["aux_val"])
    assert s1.top1_agreement > 0.5


def test_surrogate_near_chance_is_warned_and_labelled(mnist, caplog):
    from tfminv.attacks.surrogate import train_surrogate

    p, x = mnist["aux_tr"]
    rng = np.random.default_rng(0)
    noise = rng.dirichlet(np.ones(10), size=len(p)).astype(np.float32)  # unrelated to images
    one = mnist["config"].replace(epochs=1)
    with caplog.at_level("WARNING", logger="tfminv"):
        s = train_surrogate(noise[:200], x[:200], k=K, config=one,
                            workdir=mnist["base"] / "noise", width=0.0625,
                            heldout=(rng.dirichlet(np.ones(10), 100).astype(np.float32),
                                     mnist["aux_val"][1]))
    assert s.near_chance and s.fields()["surrogate_near_chance"] is True
    assert any("near chance" in r.getMessage() for r in caplog.records)


def test_identity_inverter_is_more_consistent_with_the_surrogate_and_cached(mnist):
    """Through the attack core: the identity inverter's reconstructions are closer (for the
    surrogate) to what the victims released than the plain truncation inverter's, trained on
    the same data; a second call reuses the cached run."""
    from tfminv.attacks import core
    from tfminv.attacks.identity import IdentityOptions, identity_kl

    (p, x), val = mnist["aux_tr"], mnist["aux_val"]
    vp, vx, vl = mnist["victims"]
    opts = IdentityOptions(identity_weight=0.1, surrogate_width=0.125,
                           surrogate_epochs=SUR_EPOCHS)
    kw = dict(k=K, config=mnist["config"], workdir=mnist["base"] / "inv", width=0.125, val=val,
              victim_labels=vl)
    ident = core.run_attack(p, x, vp, vx, method="identity", identity=opts, **kw)
    trunc = core.run_attack(p, x, vp, vx, method="truncation", **kw)
    sc = ident.scores
    assert sc["surrogate_top1_agreement"] > 0.6 and sc["surrogate_near_chance"] is False
    sur = ident.inverter.surrogate.model
    kl_ident = identity_kl(sur, ident.inverter, vp, K)
    kl_trunc = identity_kl(sur, trunc.inverter, vp, K)
    assert sc["surrogate_kl"] == pytest.approx(kl_ident, rel=1e-4)
    assert kl_ident < 0.8 * kl_trunc, (kl_ident, kl_trunc)
    assert math.isfinite(sc["mse"]) and sc["mse"] < 0.2
    # cached: the same request trains nothing and gives the same reconstructions
    again = core.run_attack(p, x, vp, vx, method="identity", identity=opts, **kw)
    assert again.inverter.run_dir == ident.inverter.run_dir
    assert again.train_seconds < max(2.0, 0.3 * ident.train_seconds)
    np.testing.assert_allclose(again.reconstructions, ident.reconstructions, atol=1e-5)
    # another weight is another run


def test_refinement_moves_images_toward_the_release_through_the_surrogate(mnist):
    """Method 'identity_refine': the identity inverter's own run (trained once for both
    methods), each victim's image refined through the surrogate: the surrogate's KL to the
    release falls well below the unrefined images', the images change, stay images, and a
    proximity weight keeps them nearer to where they started."""
    from tfminv.attacks import core
    from tfminv.attacks.identity import IdentityOptions

    (p, x), val = mnist["aux_tr"], mnist["aux_val"]
    vp, vx, vl = mnist["victims"]
    train = dict(identity_weight=0.1, surrogate_width=0.125, surrogate_epochs=SUR_EPOCHS)
    kw = dict(k=K, config=mnist["config"], workdir=mnist["base"] / "inv", width=0.125, val=val,
              victim_labels=vl)
    ident = core.run_attack(p, x, vp, vx, method="identity", identity=IdentityOptions(**train),
                            **kw)
    free = core.run_attack(p, x, vp, vx, method="identity_refine",
                           identity=IdentityOptions(**train, refine_steps=40, refine_lr=0.1),
                           **kw)
    held = core.run_attack(p, x, vp, vx, method="identity_refine",
                           identity=IdentityOptions(**train, refine_steps=40, refine_lr=0.1,
                                                    refine_prox=100.0), **kw)
    assert free.inverter.run_dir == ident.inverter.run_dir  # one trained model, two methods
    sc = free.scores
    assert sc["surrogate_kl_start"] == pytest.approx(ident.scores["surrogate_kl"], rel=1e-3)
    # 40 steps on this 3-epoch inverter: 0.530 -> 0.378
    assert sc["surrogate_kl"] < 0.8 * sc["surrogate_kl_start"], sc
    assert sc["refine_seconds"] > 0 and math.isfinite(sc["mse"])
    assert sc["mse"] < ident.scores["mse"] + 0.05
    r = free.reconstructions
    assert r.shape == ident.reconstructions.shape and np.isfinite(r).all()
    assert r.min() >= 0.0 and r.max() <= 1.0
    moved = np.abs(r - ident.reconstructions).mean()
    assert moved > 1e-3
    assert np.abs(held.reconstructions - ident.reconstructions).mean() < 0.5 * moved


def test_selection_keeps_the_candidate_the_target_finds_closest(mnist):
    """Method 'identity_select': the same trained inverter; per victim select_candidates
    images (the unrefined one, then refinement snapshots) are sent to the target through the
    given query, each counted, and the kept one is, per victim, the candidate of the lowest
    target KL to the victim's release; with no query function it is a one-line error."""
    from tfminv.attacks import core
    from tfminv.attacks.identity import IdentityOptions
    from tfminv.attacks.select import candidate_steps
    from tfminv.models.losses import released_kl
    from tfminv.oracles import CallableOracle

    (p, x), val = mnist["aux_tr"], mnist["aux_val"]
    vp, vx, vl = mnist["victims"]
    train = dict(identity_weight=0.1, surrogate_width=0.125, surrogate_epochs=SUR_EPOCHS)
    kw = dict(k=K, config=mnist["config"], workdir=mnist["base"] / "inv", width=0.125, val=val,
              victim_labels=vl)
    opts = IdentityOptions(**train, refine_steps=40, refine_lr=0.1, select_candidates=5)
    ident = core.run_attack(p, x, vp, vx, method="identity", identity=IdentityOptions(**train),
                            **kw)
    refined = core.run_attack(p, x, vp, vx, method="identity_refine", identity=opts, **kw)
    oracle = CallableOracle(mnist["probs"])
    sel = core.run_attack(p, x, vp, vx, method="identity_select", identity=opts,
                          query=oracle, **kw)
    assert sel.inverter.run_dir == ident.inverter.run_dir  # one trained model
    sc = sel.scores
    assert candidate_steps(40, 5) == (0, 10, 20, 30, 40)
    assert sc["queries_per_victim"] == 5 and oracle.num_queries == 5 * len(vp)

    def target_kl(images):
        z = np.log(np.maximum(mnist["probs"](images), 1e-12))
        return released_kl(vp, z, K).numpy()

    kept, first, last = (target_kl(i) for i in (sel.reconstructions, ident.reconstructions,
                                                refined.reconstructions))
    # per victim never further for the target than the unrefined or the fully refined image
    assert np.all(kept <= first + 1e-4) and np.all(kept <= last + 1e-4)
    assert sc["target_kl"] == pytest.approx(float(kept.mean()), rel=1e-3)
    assert sc["target_kl_start"] == pytest.approx(float(first.mean()), rel=1e-3)
    assert sc["target_kl"] < sc["target_kl_start"] and 0 < sc["selected_refined"] <= 1
    with pytest.raises(ConfigError) as e:
        core.run_attack(p, x, vp, vx, method="identity_select", identity=opts, **kw)
    assert "identity_select" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("values", [dict(refine_steps=0), dict(refine_lr=0.0),
                                    dict(refine_prox=-1.0), dict(refine_lr=float("nan")),
                                    dict(select_candidates=1),
                                    dict(select_candidates=12, refine_steps=10)])
def test_bad_refinement_settings_are_one_line_errors(values):
    from tfminv.attacks.identity import IdentityOptions
    from tfminv.scenarios.truncation import TruncationConfig

    field = list(values)[0]
    for cls in (IdentityOptions, TruncationConfig):
        with pytest.raises(ConfigError) as e:
            cls(**values)
        assert field in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("field, value", [("identity_weight", -0.1),
                                          ("identity_weight", float("nan")),
                                          ("feature_weight", -1.0),
                                          ("surrogate_width", 0.0),
                                          ("surrogate_epochs", -1)])
def test_bad_identity_settings_are_one_line_errors(field, value):
    from tfminv.attacks.identity import IdentityOptions

    with pytest.raises(ConfigError) as e:
        IdentityOptions(**{field: value})
    assert field in str(e.value) and "\n" not in str(e.value)


def test_unknown_method_names_the_allowed_ones(tmp_path):
    from tfminv.attacks.inversion import train_inverter
    from tfminv.training import TrainConfig

    p = np.full((4, 10), 0.1, np.float32)
    with pytest.raises(ConfigError) as e:
        train_inverter(p, np.zeros((4, 32, 32, 1), np.float32), k=1, method="gmi",
                       config=TrainConfig(epochs=1), workdir=tmp_path)
    msg = str(e.value)
    assert "identity" in msg and "truncation" in msg and "'gmi'" in msg and "\n" not in msg


def test_scenario_offers_the_method_and_its_weights():
    from tfminv.scenarios.truncation import TruncationConfig

    c = TruncationConfig(dataset="mnist", methods=("truncation", "identity"),
                         identity_weight=0.2)
    from tfminv.attacks.identity import options_of

    assert options_of(c).identity_weight == 0.2
    assert "identity" not in TruncationConfig().methods  # not run unless asked
    with pytest.raises(ConfigError, match="identity_weight"):
        TruncationConfig(dataset="mnist", identity_weight=float("nan"))
    with pytest.raises(ConfigError, match="methods"):
        TruncationConfig(dataset="mnist", methods=("gmi",))


def test_the_door_runs_the_identity_method(mnist, tmp_path):
    """`run_inversion` with InversionConfig(method='identity'): the rows are the policy's, the
    surrogate's agreement is in settings, labelled; a bad method or weight is one line."""
    import tfminv
    from tfminv.leakage import InversionConfig

    vp, vx, vl = mnist["victims"]
    cfg = InversionConfig(k=K, epochs=2, width=0.125, batch_size=64, method="identity",
                          identity_weight=0.1, surrogate_width=0.125,
                          surrogate_epochs=SUR_EPOCHS, cache_dir=str(tmp_path / "cache"))
    res = tfminv.run_inversion(mnist["probs"], tfminv.InversionInputs(mnist["aux"], vx, vl),
                               config=cfg)
    assert res.settings["method"] == "identity"
    sur = res.settings["surrogate"][f"topk:{K}"]
    assert sur["surrogate_top1_agreement"] > 0.5 and sur["surrogate_near_chance"] is False
    assert res.settings["identity"]["identity_weight"] == 0.1
    assert np.isfinite(res.rows[0].mse)
    for bad in (dict(method="gmi"), dict(identity_weight=-1.0),
                dict(feature_weight=float("nan"))):
        with pytest.raises(ConfigError) as e:
            InversionConfig(k=1, **bad)
        assert next(iter(bad)) in str(e.value) and "\n" not in str(e.value)


def test_feature_term_trains_its_own_run(mnist):
    """feature_weight > 0 adds the surrogate's penultimate-feature term (its loss is in the
    run's history) and is another cached run than the same request without it."""
    import csv
    from pathlib import Path

    from tfminv.attacks.identity import IdentityOptions
    from tfminv.attacks.inversion import train_inverter

    (p, x), val = mnist["aux_tr"], mnist["aux_val"]
    kw = dict(k=K, method="identity", config=mnist["config"].replace(epochs=1),
              workdir=mnist["base"] / "feat", val=val, width=0.125)
    base = dict(identity_weight=0.1, surrogate_width=0.125, surrogate_epochs=SUR_EPOCHS)
    plain = train_inverter(p, x, identity=IdentityOptions(**base), **kw)
    feat = train_inverter(p, x, identity=IdentityOptions(feature_weight=0.5, **base), **kw)
    assert plain.run_dir != feat.run_dir
    assert plain.surrogate.run_dir == feat.surrogate.run_dir  # one surrogate, trained once
    with open(Path(feat.run_dir) / "history.csv") as f:
        header = next(csv.reader(f))
    assert "feature_loss" in header and "released_loss" in header
    with open(Path(plain.run_dir) / "history.csv") as f:
        assert "feature_loss" not in next(csv.reader(f))


def test_image_prior_tells_real_digits_from_noise_and_is_cached(mnist):
    """The attacker's image prior (a denoising autoencoder of its auxiliary images) moves real
    held-out digits far less than noise images of the same mean; a second call reuses it."""
    from tfminv.attacks.realism import prior_residual, train_prior

    aux = mnist["aux"]
    kw = dict(config=mnist["config"], workdir=mnist["base"] / "prior", width=0.125,
              val=aux[900:], epochs=PRIOR_EPOCHS)
    prior = train_prior(aux[:900], **kw)
    vx = mnist["victims"][1]
    rng = np.random.default_rng(0)
    noise = rng.permutation(vx.reshape(-1)).reshape(vx.shape)  # the same pixels, no digit
    real, fake = prior_residual(prior, vx), prior_residual(prior, noise)
    assert 0 < real < 0.5 * fake, (real, fake)
    again = train_prior(aux[:900], **kw)
    assert again.run_dir == prior.run_dir
    assert prior_residual(again, vx) == pytest.approx(real, rel=1e-5)
    with pytest.raises(Exception, match=r"\[N, H, W, C\]"):
        train_prior(aux[:1, 0], **kw)


def test_realism_term_trains_its_own_run_and_lowers_the_prior_residual(mnist):
    """realism_weight > 0 adds ||G(v) - P(G(v))||^2 (its loss is in the run's history), is
    another cached run, and its reconstructions are closer to the prior's images than those of
    the same request without the term."""
    import csv
    from pathlib import Path

    from tfminv.attacks.identity import IdentityOptions
    from tfminv.attacks.inversion import invert, train_inverter
    from tfminv.attacks.realism import prior_residual

    (p, x), val = mnist["aux_tr"], mnist["aux_val"]
    kw = dict(k=K, method="identity", config=mnist["config"], workdir=mnist["base"] / "real",
              val=val, width=0.125)
    base = dict(identity_weight=0.1, surrogate_width=0.125, surrogate_epochs=SUR_EPOCHS)
    plain = train_inverter(p, x, identity=IdentityOptions(**base), **kw)
    real = train_inverter(p, x, identity=IdentityOptions(realism_weight=5.0,
                                                         prior_epochs=PRIOR_EPOCHS, **base), **kw)
    assert plain.run_dir != real.run_dir and plain.prior is None
    with open(Path(real.run_dir) / "history.csv") as f:
        assert "realism_loss" in next(csv.reader(f))
    vp = mnist["victims"][0]
    r_real = prior_residual(real.prior, invert(real, vp))
    r_plain = prior_residual(real.prior, invert(plain, vp))
    assert r_real < 0.8 * r_plain, (r_real, r_plain)


def test_prior_epochs_keys_the_inverter_only_with_the_realism_term():
    from tfminv.attacks.identity import IdentityOptions

    assert IdentityOptions(prior_epochs=10).key() == IdentityOptions().key()
    assert "prior_epochs" not in IdentityOptions().key()
    with_term = IdentityOptions(realism_weight=1.0, prior_epochs=10).key()
    assert with_term != IdentityOptions(realism_weight=1.0).key()
    assert with_term["prior_epochs"] == 10 and with_term["realism_weight"] == 1.0
