"""The attack core (tfminv.attacks.core): one reference rule, one probabilities/logits rule, one
run-folder recipe and one settings object, shared by the door, the scenarios and the callback."""

from __future__ import annotations

import numpy as np
import pytest

import tfminv
from tfminv.errors import ConfigError, OracleError


def _imgs(n, shape=(12, 12, 1), seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def _softmax_of_pixels(images):
    z = np.asarray(images, np.float64).reshape(len(images), -1)[:, :4] * 4
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_baselines_rule_training_rows_and_the_floor():
    from tfminv.attacks import core

    aux, victims = _imgs(20), _imgs(6, seed=1)
    labels = np.array([0, 0, 1, 1, 2, 2])
    b = core.baselines(victims, aux[:15], victim_labels=labels)
    assert b.mean_aux == pytest.approx(float(((victims - aux[:15].mean(0)) ** 2).mean()), rel=1e-5)
    assert b.zeros == pytest.approx(float((victims ** 2).mean()), rel=1e-5)
    assert b.class_mean_from == core.CLASS_MEAN_FROM_VICTIMS
    np.testing.assert_allclose(b.class_mean_images[0], victims[1], atol=1e-6)  # leave-one-out
    train, tl = _imgs(9, seed=2), np.array([0, 1, 2] * 3)
    b2 = core.baselines(victims, aux[:15], victim_labels=labels, train_images=train,
                        train_labels=tl)
    assert b2.class_mean_from == core.CLASS_MEAN_FROM_TRAIN
    np.testing.assert_allclose(b2.class_mean_images[0], train[tl == 0].mean(0), atol=1e-6)
    # one name for the floor, the same in the door, the scenarios and metrics.baselines
    assert set(b2.mses()) == {"mse_zeros", "mse_mean_aux", "mse_class_mean"}
    from tfminv import metrics

    legacy = metrics.baselines(victims, aux[:15], train_images=train, train_labels=tl,
                               victim_labels=labels)
    assert legacy == {"zeros": b2.zeros, "mean_aux": b2.mean_aux, "class_mean": b2.class_mean}
    assert core.baselines(victims, aux).class_mean is None  # no labels, no floor


def test_door_and_scenario_give_the_same_baselines(tmp_path):
    """The same auxiliary set, victims, training data, hold-out fraction and seed: the door's
    InversionResults.baselines and a scenario's reference_baselines agree (before, the
    scenarios averaged every auxiliary image and the door only its training rows)."""
    import types

    from tfminv.data.imageset import ImageSet
    from tfminv.scenarios import ScenarioConfig
    from tfminv.scenarios import base

    aux, victims, train = _imgs(40), _imgs(6, seed=1), _imgs(12, seed=2)
    labels, tl = np.arange(6) % 4, np.arange(12) % 4
    res = tfminv.run_inversion(_softmax_of_pixels, aux, victims, labels, train_images=train,
                               train_labels=tl, epochs=1, width=0.0625, batch_size=16, seed=3,
                               val_fraction=0.2, cache_dir=tmp_path / "cache")
    setup = types.SimpleNamespace(
        config=ScenarioConfig(seed=3, aux_val_fraction=0.2),
        aux_set=ImageSet(aux, np.zeros(40, np.int64), name="aux"),
        victims=ImageSet(victims, labels, name="victims"),
        train_set=ImageSet(train, tl, name="train"))
    refs = base.reference_baselines(setup)
    for name, value in refs.mses().items():
        assert res.baselines[name] == pytest.approx(value, rel=1e-6), name
    assert res.baselines["class_mean_from"] == refs.class_mean_from
    # the mean is over the training rows, not the whole set: the two differ here
    assert refs.mean_aux != pytest.approx(
        float(((victims - aux.mean(0)) ** 2).mean()), rel=1e-6)
    # the door's inverters live in the one run-folder recipe's folder
    from tfminv.attacks import core

    folder = core.run_folder(tmp_path / "cache", "inverters",
                             res.settings["target"]["identity"])
    assert folder.is_dir() and any(folder.iterdir())


def test_run_folder_one_character_rule(tmp_path):
    import types

    from tfminv.attacks import core
    from tfminv.scenarios import ScenarioConfig
    from tfminv.scenarios.base import inverter_workdir

    ident = "keras:/models/my model.keras|in=0,255|softmax"
    assert core.run_folder(tmp_path, "inverters", ident) == (
        tmp_path / "inverters" / "keras_models_my_model.keras_in=0,255_softmax")
    assert len(core.run_folder(tmp_path, "x", "a" * 300).name) == 100
    setup = types.SimpleNamespace(config=ScenarioConfig(cache_dir=str(tmp_path)),
                                  target_info={"identity": ident})
    assert inverter_workdir(setup) == core.run_folder(tmp_path, "inverters", ident)


def test_inversion_config_never_overrides_silently(tmp_path):
    from tfminv.leakage import InversionConfig, inversion_config
    from tfminv.training import TrainConfig

    train = TrainConfig(epochs=3, batch_size=16, verbose=0)
    cfg = inversion_config(train)  # epochs / batch_size taken from it when not given
    assert (cfg.epochs, cfg.batch_size, cfg.train_config()) == (3, 16, train)
    assert inversion_config(train, epochs=3).epochs == 3  # the same value is no conflict
    with pytest.raises(ConfigError, match=r"epochs=5 but config \(TrainConfig\) has epochs=3"):
        inversion_config(train, epochs=5)
    with pytest.raises(ConfigError, match=r"batch_size=64 but config \(TrainConfig\) has "
                                          r"batch_size=16"):
        tfminv.run_inversion(_softmax_of_pixels, _imgs(10), _imgs(4, seed=1), config=train,
                             batch_size=64, cache_dir=tmp_path)
    typed = InversionConfig(k=1, epochs=2)
    assert inversion_config(typed) is typed
    with pytest.raises(ConfigError, match="config=InversionConfig and k, width given"):
        inversion_config(typed, k=2, width=0.5)
    # a keyword equal to its default is still a keyword the typed config would ignore
    with pytest.raises(ConfigError, match="config=InversionConfig and width given"):
        tfminv.run_inversion(_softmax_of_pixels, _imgs(10), _imgs(4, seed=1), config=typed,
                             width=0.25)
    with pytest.raises(ConfigError, match="config=InversionConfig and seed given"):
        inversion_config(typed, seed=InversionConfig().seed)
    assert inversion_config(None).width == InversionConfig().width  # defaults declared once
    with pytest.raises(ConfigError, match="width=0"):
        InversionConfig(width=0)
    with pytest.raises(ConfigError, match="outputs='soft'"):
        InversionConfig(outputs="soft")
    from tfminv.settings import settings_of

    assert {"k", "policies", "epochs", "width", "batch_size", "outputs", "input_range", "seed",
            "val_fraction", "aux_augment"} <= set(settings_of(InversionConfig))


def test_typed_door_matches_the_keyword_door(tmp_path):
    from tfminv.leakage import InversionConfig

    aux, victims, labels = _imgs(30), _imgs(5, seed=1), np.arange(5) % 4
    kw = dict(k=2, epochs=1, width=0.0625, batch_size=16, cache_dir=str(tmp_path))
    by_keywords = tfminv.run_inversion(_softmax_of_pixels, aux, victims, labels, **kw)
    typed = tfminv.run_inversion(_softmax_of_pixels,
                                 tfminv.InversionInputs(aux, victims, labels),
                                 config=InversionConfig(**kw))
    assert typed.rows[0].mse == pytest.approx(by_keywords.rows[0].mse, abs=1e-7)
    assert typed.baselines == by_keywords.baselines


def _half_softmax_model(shape=(12, 12, 1)):
    """Non-negative rows summing to 0.5 (an API that already scales or truncates): neither
    probabilities nor logits by the rule."""
    import keras

    return keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                             keras.layers.Dense(4, activation="softmax"),
                             keras.layers.Rescaling(0.5)])


def test_callback_refuses_what_the_door_refuses(tmp_path):
    model = _half_softmax_model()
    aux, probe, labels = _imgs(24), _imgs(6, seed=1), np.arange(6) % 4
    with pytest.raises(OracleError, match="cannot tell probabilities from logits"):
        tfminv.run_inversion(model, aux, probe, labels, epochs=1, cache_dir=tmp_path)
    model.compile("adam", "mse")
    y = np.full((24, 4), 0.125, np.float32)
    cb = tfminv.LeakageCallback(aux, probe, labels, epochs=1, width=0.0625, budget=100)
    with pytest.raises(OracleError, match="LeakageCallback: the model being trained: cannot "
                                          "tell probabilities from logits"):
        model.fit(aux, y, epochs=1, verbose=0, callbacks=[cb])
    # declared, both accept it and read it the same way
    ok = tfminv.LeakageCallback(aux, probe, labels, epochs=1, width=0.0625, budget=100,
                                outputs="probabilities")
    model.fit(aux, y, epochs=1, verbose=0, callbacks=[ok])
    assert ok.outputs_read == ("probabilities", "declared")
    assert np.isfinite(ok.history[0]["leak_mse"])


def test_public_names_stay_importable_from_the_door():
    import tfminv.leakage as door

    for name in ("run_inversion", "run_audit", "InversionInputs", "InversionConfig",
                 "make_target", "parse_input_range", "as_unit_images", "as_labels",
                 "split_holdout", "tie_aware_accuracy", "DEFAULT_POLICIES", "OUTPUTS", "PROBE",
                 "_loo_class_means", "_policies", "_kind_of"):
        assert hasattr(door, name), name
    from tfminv.inputs import InversionInputs
    from tfminv.target import make_target

    assert door.InversionInputs is InversionInputs and door.make_target is make_target
    assert tfminv.InversionInputs is InversionInputs
    assert tfminv.InversionConfig is door.InversionConfig
