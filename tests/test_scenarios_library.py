"""The scenario library (tfminv.scenarios) called directly, no flags or subprocess, on small
slices of the real data; and the one-home helpers it rests on (hold-out split, hashing, cached
runs, the custom-object registry). Budgets are the binaries tests' tiny ones, and the session
cache is shared with them, so classifiers and predictions trained there are reused here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfminv.errors import ConfigError

TINY = dict(width=0.0625, epochs=1, max_train=120, max_aux=120, max_victims=20, batch_size=64,
            verbose=0)


def _cfg(cls, data_dir, **kw):
    return cls(data_dir=str(data_dir), **{**TINY, **kw})


def test_holdout_is_the_seeded_split_every_trainer_used():
    from tfminv.data.splits import holdout

    tr, va = holdout(50, 0.1, seed=3)
    order = np.random.default_rng(3).permutation(50)  # the recipe the copies used
    assert list(va) == list(order[:5]) and list(tr) == list(order[5:])
    assert len(holdout(3, 0.1, 0)[1]) == 1  # at least one row held out
    with pytest.raises(ConfigError, match="fraction"):
        holdout(10, 1.0, 0)


def test_short_hash_and_run_dir_key_on_content_and_settings(tmp_path):
    from tfminv.hashing import content_hash, short_hash
    from tfminv.training import TrainConfig, run_dir_for

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert short_hash(a, a.copy()) == content_hash(a)[:16] * 2
    assert content_hash(a) != content_hash(a.reshape(4, 3))  # the shape is part of the key
    cfg = TrainConfig(epochs=2)
    d1 = run_dir_for(tmp_path, "full", cfg, {"aux": short_hash(a)})
    assert d1 == run_dir_for(tmp_path, "full", cfg, {"aux": short_hash(a.copy())})
    assert d1 != run_dir_for(tmp_path, "full", cfg.replace(epochs=3), {"aux": short_hash(a)})
    assert d1.name.startswith("full-") and d1.parent == tmp_path


def test_custom_objects_lists_every_registered_tfminv_object():
    import keras

    import tfminv.faceapi.local_api  # noqa: F401 - every module that defines a custom object
    import tfminv.defences.train  # noqa: F401
    import tfminv.training.joint  # noqa: F401
    from tfminv import custom_objects

    mine = custom_objects.register()
    registered = {k for k in keras.saving.get_custom_objects() if k.startswith("tfminv>")}
    assert registered and registered <= set(mine)
    assert {"tfminv>Truncation", "tfminv>RescaledTruncation", "tfminv>WeightedMSE",
            "tfminv>MaskedMSE"} <= set(mine)


def test_config_errors_before_any_training(data_dir, tmp_path):
    from tfminv.scenarios import (AuxiliaryConfig, FaceAPIConfig, ScenarioConfig,
                                  TruncationConfig, run_auxiliary, run_faceapi, run_truncation)

    with pytest.raises(ConfigError, match="unknown allocation 'imagenet'"):
        run_truncation(_cfg(TruncationConfig, data_dir, dataset="imagenet", k=(1,)))
    with pytest.raises(ConfigError, match="--k=1,7: k must be at most the 5 classes"):
        run_truncation(_cfg(TruncationConfig, data_dir, dataset="mnist", k=(1, 7)))
    with pytest.raises(ConfigError, match="--aux_sets=same,imagenet"):
        run_auxiliary(_cfg(AuxiliaryConfig, data_dir, dataset="mnist",
                           aux_sets=("same", "imagenet")))
    with pytest.raises(ConfigError, match="unknown allocation 'nope'"):
        run_faceapi(_cfg(FaceAPIConfig, data_dir, dataset="nope"))
    with pytest.raises(ConfigError, match="0 < a < b < 1"):
        run_faceapi(_cfg(FaceAPIConfig, data_dir, api_split=(0.9, 0.5)))
    with pytest.raises(ConfigError, match="--select_on='test'"):
        ScenarioConfig(select_on="test")
    with pytest.raises(ConfigError, match="--aux_augment='rotate'"):
        ScenarioConfig(aux_augment="rotate")
    with pytest.raises(ConfigError, match="--aux_augment=flip: .* without --stream_aux"):
        ScenarioConfig(aux_augment="flip", stream_aux=True)
    with pytest.raises(ConfigError, match="--aux_augment: the face-API scenario does not "):
        run_faceapi(_cfg(FaceAPIConfig, data_dir, aux_augment="flip"))


def test_aux_augment_flip_adds_queried_mirror_images(tmp_path):
    import types

    from tfminv.oracles import CallableOracle
    from tfminv.scenarios import ScenarioConfig
    from tfminv.scenarios.base import augmented

    rng = np.random.default_rng(0)
    images = rng.random((6, 8, 10, 1)).astype(np.float32)

    def answer(x):  # depends on the left half only: a mirror gets a different answer
        left = x[:, :, :5].mean(axis=(1, 2, 3))
        return np.stack([left, 1 - left], axis=1).astype(np.float32)

    oracle = CallableOracle(answer, name="left-half")
    setup = types.SimpleNamespace(oracle=oracle, config=ScenarioConfig(
        aux_augment="flip", cache_dir=str(tmp_path)))
    preds = answer(images)
    p2, x2 = augmented(setup, preds, images)
    assert x2.shape == (12, 8, 10, 1) and p2.shape == (12, 2)
    np.testing.assert_array_equal(x2[:6], images)
    np.testing.assert_array_equal(x2[6:], images[:, :, ::-1])
    np.testing.assert_allclose(p2[6:], answer(images[:, :, ::-1]), rtol=1e-6)
    assert not np.allclose(p2[6:], p2[:6]) and oracle.num_queries == 6
    setup.config = ScenarioConfig(cache_dir=str(tmp_path))  # off: unchanged, no query
    p3, x3 = augmented(setup, preds, images)
    assert p3 is preds and x3 is images and oracle.num_queries == 6


@pytest.mark.slow
def test_truncation_function_rows_figure_and_cache_reuse(data_dir, tmp_path):
    import cv2

    from tfminv.scenarios import TruncationConfig, run_truncation

    config = _cfg(TruncationConfig, data_dir, dataset="mnist", k=(1, 5), figure_n=6,
                  methods=("truncation", "previous"))
    result = run_truncation(config)
    assert result.name == "truncation_mnist"
    refs = [r["method"] for r in result.rows if r["k"] == 0]
    assert refs == ["reference: real_victims", "reference: mean_aux",
                    "reference: class_mean"]
    result.rows = [r for r in result.rows if r["k"] > 0]
    assert [(r["k"], r["method"]) for r in result.rows] == [
        (1, "truncation"), (1, "previous"), (5, "truncation"), (5, "previous")]
    for r in result.rows:
        assert 0 <= r["attack_acc"] <= 1 and r["n_victims"] == 20 and r["n_aux"] == 108
        assert r["mse_class_mean"] < r["mse_zeros"]
    assert result.rows[2]["mse"] == pytest.approx(result.rows[3]["mse"], rel=1e-6)  # k = m
    written = result.write(tmp_path / "out", command="python -m x --k=1,5")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert list(run)[0] == "command" and run["figure"] == "truncation_mnist.png"
    assert {p.name for p in written} == {"truncation_mnist.png", "results.json", "results.md"}
    img = cv2.imread(str(tmp_path / "out" / "truncation_mnist.png"), cv2.IMREAD_GRAYSCALE)
    assert img.shape[0] == 2 + 5 * (64 + 2)  # ground truth + 4 rows of 32 px images, x2
    # a second call reuses the cached classifiers, predictions and inverters
    again = run_truncation(config)
    assert again.extra["oracle_queries"] == 0
    # what the attack asked is the same whether it was sent now or read from the cache
    asked = result.extra["oracle_queries"] + result.extra["oracle_answers_cached"]
    assert again.extra["oracle_answers_cached"] == asked == 20 + 108 + 12  # victims, aux
    assert [r["mse"] for r in again.rows if r["k"] > 0] == pytest.approx(
        [r["mse"] for r in result.rows])


def test_a_second_judge_scores_every_row_beside_the_first(data_dir, tmp_path):
    from tfminv.scenarios import TruncationConfig, run_truncation
    from tfminv.scenarios.audit import AuditConfig

    with pytest.raises(ConfigError, match="must differ from the first"):
        _cfg(TruncationConfig, data_dir, dataset="mnist", judge2_width=0.03125)  # = first's
    with pytest.raises(ConfigError, match="reports one judge"):
        _cfg(AuditConfig, data_dir, dataset="mnist", judge2_width=0.125)
    result = run_truncation(_cfg(TruncationConfig, data_dir, dataset="mnist", k=(2,),
                                 methods=("truncation",), judge2_width=0.125))
    judged = ["attack_acc", "attack_acc_top5", "eval_acc", "nn_acc", "nn_acc_top5", "knn_dist"]
    assert [c for c in result.columns if c.endswith("_j2")] == [c + "_j2" for c in judged]
    first, second = result.extra["eval_classifier"], result.extra["eval_classifier_2"]
    assert second["width"] == 0.125 and first["width"] == 0.03125
    assert second["key"] != first["key"]
    assert [r["method"] for r in result.rows][1:] == [
        "reference: real_victims", "reference: mean_aux", "reference: class_mean"]
    for r in result.rows:
        assert r["eval_acc_j2"] == second["test_accuracy"]
        assert r["eval_acc"] == first["test_accuracy"]
        for c in judged[:2] + judged[3:5]:
            assert 0 <= r[c + "_j2"] <= 1
        assert r["knn_dist_j2"] > 0
    assert "_j2" in " ".join(result.notes)


@pytest.mark.slow
def test_auxiliary_and_joint_functions(data_dir):
    from tfminv.scenarios import AuxiliaryConfig, JointConfig, run_auxiliary, run_joint

    res = run_auxiliary(_cfg(AuxiliaryConfig, data_dir, dataset="mnist",
                             aux_sets=("generic", "same")))
    assert [r["aux"] for r in res.rows] == ["generic", "same"]
    assert "classes=[5, 6, 7, 8, 9]" in res.rows[0]["aux_data"]
    for r in res.rows:
        assert r["k"] == 5 and r["n_aux"] == 108 and np.isfinite(r["mse"])
        assert r["mse_class_mean"] < r["mse_zeros"]
    assert len(res.figures[0].rows) == 3

    res = run_joint(_cfg(JointConfig, data_dir, dataset="mnist", k=2))
    rows = res.rows
    assert [r["setting"] for r in rows] == ["blackbox", "joint", "blackbox_aug"]
    assert rows[2]["n_inverter"] == rows[0]["n_inverter"] + 120
    assert rows[0]["classifier_acc"] == rows[2]["classifier_acc"]
    for r in rows:
        assert 0 <= r["classifier_acc"] <= 1 and np.isfinite(r["mse"]) and r["k"] == 2
    assert np.isfinite(res.extra["joint_b"])


@pytest.mark.slow
def test_class_inference_function(data_dir):
    from tfminv.scenarios import ClassInferenceConfig, run_class_inference

    res = run_class_inference(_cfg(ClassInferenceConfig, data_dir, dataset="mnist",
                                   mia_steps=10, methods=("truncation", "fredrikson")))
    rows = {r["method"]: r for r in res.rows}
    assert set(rows) == {"truncation", "fredrikson (denoise+sharpen)", "fredrikson (raw)"}
    for r in rows.values():
        assert r["n_classes"] == 5 and 0 <= r["attack_acc"] <= 1
        assert 0 < r["target_confidence"] <= 1
    assert rows["fredrikson (raw)"]["mean_steps"] <= 10


@pytest.mark.slow
def test_class_inference_with_the_identity_method(data_dir):
    """'identity' is a class-inference method too: its own trained inverter (not the truncation
    one), fed the class vectors, with its surrogate's columns; refused settings are refused."""
    from tfminv.scenarios import ClassInferenceConfig, run_class_inference
    from tfminv.scenarios.class_inference import DEFAULT_METHODS

    assert "identity" not in DEFAULT_METHODS  # the default stays the paper's comparison
    res = run_class_inference(_cfg(ClassInferenceConfig, data_dir, dataset="mnist", k=2,
                                   methods=("truncation", "identity", "identity_refine",
                                            "identity_select", "aux_best", "identity_aux"),
                                   identity_weight=0.1, refine_steps=20, select_candidates=3))
    rows = {r["method"]: r for r in res.rows}
    assert set(rows) == {"truncation", "identity", "identity_refine", "identity_select",
                         "aux_best", "identity_aux"}
    # identity_refine: the same inverter's class images refined through the surrogate
    ref = rows["identity_refine"]
    assert ref["surrogate_kl_start"] == pytest.approx(rows["identity"]["surrogate_kl"], rel=1e-3)
    assert ref["surrogate_kl"] < ref["surrogate_kl_start"] and ref["refine_seconds"] > 0
    assert res.extra["identity"]["refine_steps"] == 20
    # identity_select: the target asked once per candidate (steps 0, 10, 20) and class; the
    # kept image's target KL is no worse than the unrefined one's (candidate 0)
    sel = rows["identity_select"]
    assert sel["queries_per_victim"] == 3 and 0 <= sel["selected_refined"] <= 1
    assert sel["target_kl"] <= sel["target_kl_start"] + 1e-6
    assert sel["surrogate_kl_start"] == pytest.approx(ref["surrogate_kl_start"], rel=1e-3)
    # aux_best: real auxiliary faces, no training; identity_aux: refined from their codes
    best, iaux = rows["aux_best"], rows["identity_aux"]
    assert 0 < best["aux_found"] <= 1 and best["train_seconds"] == 0.0
    assert iaux["aux_found"] == best["aux_found"]
    assert iaux["surrogate_kl"] < iaux["surrogate_kl_start"]
    assert iaux["surrogate_kl_start"] != ref["surrogate_kl_start"]  # another start
    assert "aux_found" in res.columns
    ident, trunc = rows["identity"], rows["truncation"]
    assert 0 <= ident["attack_acc"] <= 1 and 0 < ident["target_confidence"] <= 1
    assert 0 <= ident["surrogate_top1_agreement"] <= 1 and ident["surrogate_k"] == 2
    assert np.isfinite(ident["surrogate_kl"]) and ident["surrogate_kl"] >= 0
    assert "surrogate_kl" not in trunc and "surrogate_kl" in res.columns
    assert ident["mse_to_class_mean"] != trunc["mse_to_class_mean"]  # another inverter
    assert res.extra["identity"]["identity_weight"] == 0.1
    with pytest.raises(ConfigError, match="identity_weight"):
        ClassInferenceConfig(identity_weight=-1.0)


@pytest.mark.slow
def test_a_json_allocation_needs_no_binary_change(data_dir, tmp_path):
    """A user's allocation file (digits 0-2 vs 3-5) runs through the library and the binary's
    --dataset alike."""
    from tfminv.data import allocations
    from tfminv.scenarios import TruncationConfig, run_truncation

    d = allocations.get("mnist").to_dict()
    digits, other = [0, 1, 2], [3, 4, 5]
    d.update(name="digits012", num_classes=3, label_names=["0", "1", "2"], default_aux="generic")
    for part in ("target_train", "target_test", "victims"):
        d[part]["classes"] = digits
    d["aux"] = {"generic": {**d["aux"]["generic"], "classes": other}}
    path = tmp_path / "digits012.json"
    path.write_text(json.dumps(d))
    res = run_truncation(_cfg(TruncationConfig, data_dir, dataset=str(path), k=(1,),
                              methods=("truncation",)))
    assert res.name == "truncation_digits012"
    (row,) = [r for r in res.rows if r["k"] > 0]
    assert row["k"] == 1 and row["n_victims"] == 20 and np.isfinite(row["mse"])
    assert 0 <= row["attack_acc"] <= 1
    with pytest.raises(ConfigError, match="at most the 3 classes"):
        run_truncation(_cfg(TruncationConfig, data_dir, dataset=str(path), k=(4,)))
