"""A defended target is cached under its own key and records its defence; 'none' keeps the keys
of undefended classifiers; the evaluation classifier is never defended."""

from __future__ import annotations

import json

import pytest

from tfminv.errors import ConfigError
from tests.test_training_cache import tiny_classifier


def test_none_keeps_todays_keys_and_a_defence_gets_its_own():
    from tfminv.data import allocations
    from tfminv.training.targets import classifier_key

    alloc = allocations.get("mnist")
    today = classifier_key(alloc, "target", 0.25)
    assert classifier_key(alloc, "target", 0.25, defence="none") == today
    assert classifier_key(alloc, "target", 0.25, defence="") == today
    ls = classifier_key(alloc, "target", 0.25, defence="ls:0.1")
    assert ls != today and ls == classifier_key(alloc, "target", 0.25, defence=" ls:0.10 ")
    assert classifier_key(alloc, "target", 0.25, defence="ls:-0.1") not in (today, ls)
    # the judge of every attack stays the same classifier whatever the target's defence
    ev = classifier_key(alloc, "eval", 0.25)
    assert classifier_key(alloc, "eval", 0.25, defence="ls:0.1") == ev


def test_defended_target_trains_in_its_own_folder_and_records_the_defence(tmp_path):
    from tfminv.training.targets import get_or_train_classifier

    alloc, kw = tiny_classifier(tmp_path)
    kw["config"] = kw["config"].replace(batch_size=9)  # DP-SGD: equal batches of the 27 rows
    _, plain = get_or_train_classifier(alloc, **kw)
    _, none = get_or_train_classifier(alloc, defence="none", **kw)
    assert none["key"] == plain["key"] and "defence" not in plain
    _, dp = get_or_train_classifier(alloc, defence="dpsgd:1.1,1.0", **kw)
    assert dp["key"] != plain["key"] and dp["path"] != plain["path"]
    assert dp["defence"]["defence"] == "dpsgd:1.1,1.0"
    assert dp["defence"]["epsilon"] > 0 and dp["defence"]["delta"] < 1 / 27
    saved = json.loads((tmp_path / "classifiers" / f"tiny-target-{dp['key']}" / "info.json")
                       .read_text())
    assert saved["defence"] == dp["defence"]
    _, again = get_or_train_classifier(alloc, defence="dpsgd:1.1,1.0", **kw)  # cached
    assert again == dp


def test_defence_setting_is_checked_before_any_work():
    from tfminv.scenarios import ScenarioConfig

    assert ScenarioConfig().defence == "none"
    with pytest.raises(ConfigError, match="unknown name 'foo'"):
        ScenarioConfig(defence="foo:1")
    with pytest.raises(ConfigError, match="outside"):
        ScenarioConfig(defence="ls:1.5")
    with pytest.raises(ConfigError, match="--target"):
        ScenarioConfig(defence="ls:0.1", target="keras:/x.keras").preflight()
