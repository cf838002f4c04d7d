"""The defence comparison: its 'none' row is the truncation scenario's (same cache, same
numbers), each defence gets its own target, bad lists fail in one line before any work, and
the privacy-utility figure and tables are written."""

from __future__ import annotations

import json

import pytest

from tfminv.errors import ConfigError

TINY = dict(dataset="mnist", width=0.0625, epochs=1, max_train=120, max_aux=120,
            max_victims=20, batch_size=64, verbose=0, k=3)


def test_bad_defence_lists_fail_before_any_work():
    from tfminv.scenarios import DefencesConfig

    with pytest.raises(ConfigError, match="--defences"):
        DefencesConfig(defences=" ; ")
    with pytest.raises(ConfigError, match="given twice"):
        DefencesConfig(defences="none;ls:0.1;ls:0.10")
    with pytest.raises(ConfigError, match="outside"):
        DefencesConfig(defences="none;ls:-1")
    with pytest.raises(ConfigError, match="--k=11"):
        DefencesConfig(dataset="mnist", k=11).preflight()


@pytest.mark.slow
def test_none_row_is_the_truncation_row_and_defences_get_their_own_target(data_dir,
                                                                          tmp_path):
    import matplotlib.image

    from tfminv.scenarios import (DefencesConfig, TruncationConfig, run_defences,
                                  run_truncation)

    kw = dict(TINY, data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"))
    result = run_defences(DefencesConfig(defences="none;ls:0.1", **kw))
    none, ls, ref = result.rows
    assert [none["defence"], ls["defence"], ref["status"]] == ["none", "ls:0.1", "reference"]
    assert none["target_key"] != ls["target_key"]
    trunc_kw = {k: v for k, v in kw.items() if k != "k"}
    trunc = run_truncation(TruncationConfig(k=(3,), methods=("truncation",), **trunc_kw))
    row = next(r for r in trunc.rows if r["method"] == "truncation")
    assert trunc.extra["oracle_queries"] == 0  # the defence run's cache answered every query
    assert trunc.extra["target"]["key"] == none["target_key"]
    for col in ("mse", "attack_acc", "attack_acc_top5"):
        assert row[col] == none[col], col
    assert none["mse_rel_mean_aux"] == pytest.approx(row["mse"] / row["mse_mean_aux"])
    for r in (none, ls):
        assert 0 <= r["test_accuracy"] <= 1 and r["epsilon"] is None
        twice_chance = 2 * result.extra["chance_accuracy"]
        assert r["status"] == ("utility destroyed" if r["test_accuracy"] <= twice_chance
                               else "ok")
    written = result.write(tmp_path / "out", command="python -m x")
    md = (tmp_path / "out" / "results.md").read_text()
    assert md.count("ls:0.1") >= 1 and "reference: mean_aux image" in md
    names = {p.name for p in written}
    assert names >= {"defences_mnist_privacy_utility.png", "results.json", "results.md"}
    img = matplotlib.image.imread(tmp_path / "out" / "defences_mnist_privacy_utility.png")
    assert img.shape[0] > 300 and img.shape[1] > 600
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["defences"] == ["none", "ls:0.1"] and run["targets"]["ls:0.1"]["defence"]


def test_destroyed_utility_is_labelled_never_dropped(tmp_path):
    from tfminv.scenarios.defences import plot_privacy_utility

    rows = [{"defence": "none", "status": "ok", "test_accuracy": 0.9, "attack_acc_top5": 0.8,
             "mse_rel_mean_aux": 0.7, "epsilon": None},
            {"defence": "dpsgd:5.0,1.0", "status": "utility destroyed", "test_accuracy": 0.1,
             "attack_acc_top5": 0.4, "mse_rel_mean_aux": 1.0, "epsilon": 0.5},
            {"defence": "reference: mean_aux image", "status": "reference",
             "test_accuracy": None, "attack_acc_top5": 0.42, "mse_rel_mean_aux": 1.0}]
    plot_privacy_utility(rows, tmp_path / "p.png", title="t")
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_data_errors_of_any_listed_defence_come_before_the_first_target(data_dir, tmp_path):
    """120 rows less the 10% hold-out leave N = 108: batch 64 does not divide them, and
    delta 0.05 is not below 1/108; both fail in one line while nothing is trained yet, even
    though 'none' and 'ls:0.1' come first in the list."""
    from tfminv.scenarios import DefencesConfig, run_defences

    kw = dict(TINY, data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ConfigError) as e:
        run_defences(DefencesConfig(defences="none;ls:0.1;dpsgd:1,1", **kw))
    assert "--batch_size=64 does not divide the 108 training" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"delta=0.05 must be below 1/N = 0.00926"):
        run_defences(DefencesConfig(defences="none;dpsgd:1,1,0.05", **{**kw,
                                                                       "batch_size": 54}))
    assert not (tmp_path / "cache" / "classifiers").exists()


@pytest.mark.slow
def test_transfer_learning_row(data_dir, tmp_path):
    """tl:1 through the scenario: pre-trained on the labelled auxiliary images the attacker
    also uses, only the last layer fine-tuned, its own target, a scored row."""
    from tfminv.scenarios import DefencesConfig, run_defences

    kw = dict(TINY, data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"))
    result = run_defences(DefencesConfig(defences="none;tl:1", **kw))
    none, tl, _ = result.rows
    assert tl["defence"] == "tl:1" and tl["target_key"] != none["target_key"]
    info = result.extra["targets"]["tl:1"]["defence"]
    assert info["tuned_layers"] == ["logits"]
    assert info["public_images"] == TINY["max_aux"]
    assert info["public_classes"] >= 2 and 0 <= info["pretrain_val_accuracy"] <= 1
    assert tl["status"] in ("ok", "utility destroyed") and 0 <= tl["test_accuracy"] <= 1
    assert tl["mse"] > 0 and tl["attack_acc_top5"] is not None
    folder = tmp_path / "cache" / "classifiers" / f"mnist-target-{tl['target_key']}" / "train"
    assert (folder / "pretrain").is_dir()
