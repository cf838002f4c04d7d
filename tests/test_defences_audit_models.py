"""Several already-trained user models in one audit (`--models`, `tfminv.run_audit` with a
mapping): the same attacker on the same auxiliary images and victims for each, one table with a
'model' column. The models are two tiny Keras models written here (not tfminv builders) on
synthetic 16x16 images of four classes (a bright block in each class's corner): one trained,
one left at its random initialisation, so their rows must differ."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_audit_references import _images  # the same four-corner images

from tfminv.errors import ConfigError


def _model(x=None, y=None):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)])
    if x is not None:
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    y = np.arange(200) % 4
    x = _images(y, 0)
    _model(x, y).save(d / "trained.keras")
    _model().save(d / "untrained.keras")
    np.savez(d / "aux.npz", images=(_images(np.arange(120) % 4, 1) * 255).astype(np.uint8))
    yv = np.arange(24) % 4
    np.savez(d / "victims.npz", images=(_images(yv, 2) * 255).astype(np.uint8), labels=yv)
    return d


def test_models_flag_errors_are_one_line(files):
    from tfminv.scenarios.audit import AuditConfig, model_specs

    m = files / "trained.keras"
    kw = dict(aux=f"npz:{files / 'aux.npz'}", victims=f"npz:{files / 'victims.npz'}")
    for text, words in ((f"a=keras:{m}", "at least 2"), (f"a=keras:{m},a=keras:{m}", "twice"),
                        (f"keras:{m},b=keras:{m}", "is not NAME=TARGET"),
                        (f"a/b=keras:{m},c=keras:{m}", "is not NAME=TARGET"),
                        (f"a=keras:{m},b={files / 'nope.txt'}", "model 'b': --target=")):
        with pytest.raises(ConfigError) as e:
            AuditConfig(models=text, **kw)
        assert words in str(e.value) and "\n" not in str(e.value) and "--models" in str(e.value)
    with pytest.raises(ConfigError, match="--models and --target"):
        AuditConfig(models=f"a=keras:{m},b=keras:{m}", target=f"keras:{m}", **kw)
    assert list(model_specs(f"b={m}, a=keras:{m}")) == ["b", "a"]  # order kept, bare path ok


def test_two_own_models_one_table(files, tmp_path):
    from tfminv.scenarios.audit import AuditConfig, ModelsAuditResult, run_audit

    cfg = AuditConfig(models=(f"trained=keras:{files / 'trained.keras'},"
                              f"untrained=keras:{files / 'untrained.keras'}"),
                      aux=f"npz:{files / 'aux.npz'}", victims=f"npz:{files / 'victims.npz'}",
                      policies="identity;label", epochs=1, width=0.125, batch_size=32,
                      cache_dir=str(tmp_path / "cache"))
    result = run_audit(cfg)
    assert isinstance(result, ModelsAuditResult)
    rows = result.rows
    assert [(r["model"], r["policy"]) for r in rows] == [
        ("trained", "identity"), ("trained", "label"), ("untrained", "identity"),
        ("untrained", "label")]
    assert result.columns[0] == "model" and set(result.columns[1:]) <= set(rows[0])
    by = {(r["model"], r["policy"]): r for r in rows}
    # the same victims for both: the released labels' utility is each model's accuracy on them
    assert by[("trained", "label")]["utility"] > 0.9
    assert by[("untrained", "label")]["utility"] < by[("trained", "label")]["utility"]
    assert by[("trained", "identity")]["mse"] != by[("untrained", "identity")]["mse"]
    # each row is exactly what a single-model audit of that model gives
    single = run_audit(AuditConfig(**{**cfg.__dict__, "models": None,
                                      "target": f"keras:{files / 'untrained.keras'}"}))
    for r in single.rows:  # (its inverters come from the cache: only 'seconds' differs)
        assert {k: v for k, v in by[("untrained", r["policy"])].items() if k != "seconds"} == {
            "model": "untrained", **{k: v for k, v in r.items() if k != "seconds"}}
    written = result.write(tmp_path / "out", command="python -m x")
    assert all(p.exists() for p in written)
    table = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["model"] for r in table] == ["trained", "trained", "untrained", "untrained"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| model |" in md and "untrained/report.html" in md
    assert (tmp_path / "out" / "trained" / "report.html").exists()
    assert (tmp_path / "out" / "untrained" / "results.json").exists()


def test_door_takes_a_mapping_of_models(files):
    import keras

    import tfminv

    models = {name: keras.models.load_model(files / f"{name}.keras")
              for name in ("trained", "untrained")}
    aux = np.load(files / "aux.npz")["images"].astype(np.float32) / 255
    vic = np.load(files / "victims.npz")
    out = tfminv.run_audit(models, aux, vic["images"].astype(np.float32) / 255, vic["labels"],
                           policies="label", epochs=1, width=0.125)
    assert list(out) == ["trained", "untrained"]
    assert out["trained"].row("label").utility > out["untrained"].row("label").utility
    with pytest.raises(ConfigError, match="empty"):
        tfminv.run_audit({}, aux)
