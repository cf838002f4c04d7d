"""Pooled auxiliary sets through a scenario (per-source counts in run.json, with --stream_aux
and --max_aux), and a target whose class count differs from the allocation's, refused before
any training; on small slices of the real MNIST."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tfminv.errors import ConfigError  # noqa: E402

TINY = dict(width=0.0625, epochs=1, max_train=120, max_aux=200, max_victims=20, batch_size=32,
            verbose=0, dataset="mnist", k=(2,), methods=("truncation",), precision="float32")


def test_truncation_on_a_union_streamed_records_sources(data_dir, tmp_path):
    from tfminv.data import allocations
    from tfminv.scenarios import TruncationConfig, run_truncation

    cfg = TruncationConfig(data_dir=str(data_dir), cache_dir=str(tmp_path), stream_aux=True,
                           aux="generic + same", **TINY)
    res = run_truncation(cfg)
    res.write(tmp_path / "out")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    aux = run["aux_set"]
    assert aux["name"] == "generic + same" and aux["images"] == 200  # --max_aux before use
    names = [p["set"] for p in aux["parts"]]
    assert names == ["mnist/train[classes=[5, 6, 7, 8, 9]]", "mnist/train[classes=[0, 1, 2, 3, 4]]"
                     "[0.8:1]"]
    # the cap takes rows of both sources (the pool is shuffled before the cap), about in
    # proportion to their sizes (29,404 and 6,119 images)
    assert sum(aux["sources"].values()) == 200 and all(v > 10 for v in aux["sources"].values())
    assert res.extra["oracle_queries"] == 200 + 20
    # the union's rows hold none of the target's training images
    alloc = allocations.get("mnist")
    ref = alloc.aux_ref("generic + same")
    pooled = allocations.materialize(ref, data_dir=str(data_dir))
    target = {x.tobytes() for x in allocations.materialize(alloc.target_train,
                                                           data_dir=str(data_dir)).images}
    assert not any(x.tobytes() in target for x in pooled.images)


def test_target_with_other_class_count_refused_before_training(data_dir, tmp_path):
    import keras

    from tfminv.scenarios import TruncationConfig, base

    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "ten.keras"
    model.save(path)
    cfg = TruncationConfig(data_dir=str(data_dir), cache_dir=str(tmp_path / "c"),
                           target=f"keras:{path}", **TINY)
    with pytest.raises(ConfigError, match=r"answers 10 scores per image but allocation 'mnist' "
                                          r"has 5 classes"):
        base.prepare(cfg)
    assert not (tmp_path / "c" / "classifiers").exists()  # refused before any training


def test_auxiliary_scenario_takes_unions_and_refuses_unknown_sets(data_dir, tmp_path):
    from tfminv.scenarios import AuxiliaryConfig, run_auxiliary

    cfg = AuxiliaryConfig(data_dir=str(data_dir), cache_dir=str(tmp_path), dataset="mnist",
                          aux_sets=("generic", "generic+lfw"))
    with pytest.raises(ConfigError, match=r"--aux_sets=generic,generic\+lfw: .*unknown set "
                                          r"'lfw'"):
        run_auxiliary(cfg)
    assert not (tmp_path / "classifiers").exists()  # before any work
