"""The identity method's ablation (tfminv.scenarios.ablation): variant names and their checks,
and one tiny run on the real MNIST slice whose rows differ by their terms only."""

from __future__ import annotations

import math

import pytest

from tfminv.errors import ConfigError

TINY = dict(width=0.0625, epochs=1, max_train=120, max_aux=120, max_victims=20, batch_size=64,
            verbose=0)


@pytest.mark.parametrize("kw, flag", [(dict(variants=("kl+gan",)), "kl+gan"),
                                      (dict(variants=("kl+kl",)), "kl+kl"),
                                      (dict(variants=("",)), "variants"),
                                      (dict(variants=()), "variants"),
                                      (dict(variants=("kl+realism",)), "realism_weight"),
                                      (dict(variants=("feature",)), "feature_weight"),
                                      (dict(realism_weight=float("nan")), "realism_weight"),
                                      (dict(realism_weight=-1.0), "realism_weight")])
def test_bad_variants_and_weights_are_one_line_errors(kw, flag):
    from tfminv.scenarios import AblationConfig

    with pytest.raises(ConfigError) as e:
        AblationConfig(dataset="mnist", **kw)
    assert flag in str(e.value) and "\n" not in str(e.value)


def test_variant_weights_keep_the_configs_and_zero_the_rest():
    from tfminv.scenarios.ablation import AblationConfig, variant_terms, weights_of

    c = AblationConfig(dataset="mnist", identity_weight=0.2, feature_weight=0.01,
                       realism_weight=1.5, variants=("mse", "kl+realism"))
    assert variant_terms("mse") == () and variant_terms("realism+kl") == ("realism", "kl")
    assert weights_of(c, "mse") == dict(identity_weight=0, feature_weight=0, realism_weight=0)
    assert weights_of(c, "kl+realism") == dict(identity_weight=0.2, feature_weight=0,
                                               realism_weight=1.5)


def test_ablation_rows_differ_by_their_terms_only(data_dir):
    """'mse' is the truncation inverter itself (the same cached run and scores as the truncation
    scenario's), each variant carries its weights and the prior's residual, and the real
    victims' reference row carries the residual of real faces."""
    from tfminv.scenarios import AblationConfig, TruncationConfig, run_ablation, run_truncation

    cfg = AblationConfig(data_dir=str(data_dir), dataset="mnist", k=2, realism_weight=1.0,
                         variants=("mse", "kl", "kl+realism"), **TINY)
    res = run_ablation(cfg)
    rows = {r["variant"]: r for r in res.rows}
    assert [r["variant"] for r in res.rows][:3] == ["mse", "kl", "kl+realism"]
    assert rows["mse"]["method"] == "truncation" and rows["kl"]["method"] == "identity"
    assert rows["kl"]["realism_weight"] == 0 and rows["kl+realism"]["realism_weight"] == 1.0
    assert rows["kl+realism"]["identity_weight"] == cfg.identity_weight > 0
    for v in ("mse", "kl", "kl+realism", "reference: real_victims"):
        assert math.isfinite(rows[v]["prior_residual"]) and rows[v]["prior_residual"] > 0, v
    assert rows["kl"]["mse"] != rows["kl+realism"]["mse"]
    trunc = run_truncation(TruncationConfig(data_dir=str(data_dir), dataset="mnist", k=(2,),
                                            methods=("truncation", "aux_match"), **TINY))
    assert trunc.rows[0]["mse"] == pytest.approx(rows["mse"]["mse"], rel=1e-6)
    # aux_match beside it: no inverter, a real auxiliary image per victim, its own MSE
    match = next(r for r in trunc.rows if r["method"] == "aux_match")
    assert match["match_n"] == 1 and "match_n" in trunc.columns
    assert math.isfinite(match["mse"]) and match["mse"] != trunc.rows[0]["mse"]
    assert 0 <= match["attack_acc"] <= 1 and match["train_seconds"] < 60
    assert any("'aux_match'" in n for n in trunc.notes)
    assert "prior_residual" in res.columns and res.extra["prior"]
    assert res.figures[0].filename == "ablation_mnist.png" and len(res.figures[0].rows) == 4
