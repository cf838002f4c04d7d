"""Release policies: shapes, ranges, sums, serialisation, determinism, composition, bad specs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tfminv import policies as P
from tfminv.errors import ConfigError, DataError
from tfminv.oracles.base import CallableOracle

M = 12
ALL_SPECS = ["identity", "topk:3", "topk:1", "round:1", "round:3", "label", "gaussian:0.1",
             "gaussian:0.05,7", "reverse_sigmoid", "reverse_sigmoid:0.5,0.2", "temperature:2",
             "temperature:0.5", "topk:3|round:2", "topk:3|temperature:4", "gaussian:0.2|topk:2"]


@pytest.fixture
def probs():
    rng = np.random.default_rng(123)
    p = rng.dirichlet(np.full(M, 0.3), size=64)
    p[0] = np.eye(M)[4]  # a fully confident row (zeros elsewhere)
    p[1] = np.full(M, 1.0 / M)  # a uniform row (all ties)
    return p.astype(np.float32)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_shape_range_dtype_and_input_untouched(spec, probs):
    before = probs.copy()
    out = P.parse(spec)(probs, rng=0)
    assert out.shape == probs.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(probs, before)


@pytest.mark.parametrize("spec", ["identity", "label", "gaussian:0.1", "reverse_sigmoid",
                                  "temperature:2", "temperature:0.3", "topk:2|temperature:3"])
def test_renormalising_policies_sum_to_one(spec, probs):
    out = P.parse(spec)(probs, rng=1)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_topk_keeps_the_k_largest_values_in_place(probs):
    out = P.parse("topk:3")(probs)
    assert np.all((out > 0).sum(axis=1) <= 3)
    for row_in, row_out in zip(probs[2:], out[2:]):
        top = np.argsort(-row_in)[:3]
        np.testing.assert_array_equal(row_out[top], row_in[top])
        rest = np.setdiff1d(np.arange(M), top)
        assert np.all(row_out[rest] == 0)
    # ties on the uniform row: exactly k entries survive, the lowest indices
    np.testing.assert_array_equal(np.nonzero(out[1])[0], [0, 1, 2])
    # k >= m is the identity
    np.testing.assert_array_equal(P.parse("topk:50")(probs), probs)


def test_round_and_label(probs):
    out = P.parse("round:1")(probs)
    np.testing.assert_allclose(out * 10, np.round(out * 10), atol=1e-5)
    np.testing.assert_allclose(out, np.round(probs, 1), atol=1e-6)
    lab = P.parse("label")(probs)
    assert set(np.unique(lab)) == {0.0, 1.0}
    np.testing.assert_array_equal(lab.argmax(1), probs.argmax(1))


def test_temperature_keeps_argmax_and_flattens_or_sharpens(probs):
    hot = P.parse("temperature:4")(probs)
    cold = P.parse("temperature:0.25")(probs)
    np.testing.assert_array_equal(hot.argmax(1), probs.argmax(1))
    np.testing.assert_array_equal(cold.argmax(1), probs.argmax(1))
    rows = slice(2, None)
    assert np.all(hot[rows].max(1) <= probs[rows].max(1) + 1e-6)
    assert np.all(cold[rows].max(1) >= probs[rows].max(1) - 1e-6)
    # T=1 is the identity; zeros stay zeros
    np.testing.assert_allclose(P.parse("temperature:1")(probs), probs, atol=1e-6)
    np.testing.assert_array_equal(P.parse("temperature:3")(probs)[0], probs[0])


def test_reverse_sigmoid_matches_formula(probs):
    beta, gamma = 0.7, 0.3
    pc = np.clip(probs.astype(np.float64), 1e-9, 1 - 1e-9)
    r = beta * (1 / (1 + np.exp(gamma * np.log((1 - pc) / pc))) - 0.5)
    expected = np.clip(probs - r, 0, 1)
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(P.parse(f"reverse_sigmoid:{beta},{gamma}")(probs), expected, atol=1e-6)
    with pytest.raises(DataError, match="at least 2 classes"):
        P.parse("reverse_sigmoid")(np.ones((3, 1)))


def test_gaussian_is_deterministic_with_a_seed_and_random_without(probs):
    g = P.parse("gaussian:0.1")
    np.testing.assert_array_equal(g(probs, rng=5), g(probs, rng=5))
    assert not np.array_equal(g(probs, rng=5), g(probs, rng=6))
    seeded = P.parse("gaussian:sigma=0.1,seed=9")
    np.testing.assert_array_equal(seeded(probs), seeded(probs))
    np.testing.assert_array_equal(seeded(probs), g(probs, rng=np.random.default_rng(9)))
    assert not np.array_equal(g(probs), g(probs))  # no seed anywhere: fresh noise
    np.testing.assert_allclose(P.parse("gaussian:0")(probs), probs / probs.sum(1, keepdims=True),
                               atol=1e-6)
    # noise large enough to change the ranking sometimes
    assert (P.parse("gaussian:0.5")(probs, rng=0).argmax(1) != probs.argmax(1)).any()


@pytest.mark.parametrize("spec", ALL_SPECS + ["gaussian:sigma=0.1,seed=none", "TopK:k=2"])
def test_serialisation_round_trip(spec, probs):
    pol = P.parse(spec)
    config = json.loads(json.dumps(pol.get_config()))
    again = P.from_config(config)
    assert again == pol and again.spec() == pol.spec()
    assert P.parse(pol.spec()) == pol
    assert P.Policy.from_config(config) == pol
    np.testing.assert_array_equal(again(probs, rng=3), pol(probs, rng=3))


def test_composition_order_support_and_flattening(probs):
    a = P.parse("topk:3|round:1")
    np.testing.assert_array_equal(a(probs), P.parse("round:1")(P.parse("topk:3")(probs)))
    assert a == P.TopK(k=3) | P.Round(decimals=1)
    nested = P.Compose([P.Compose([P.TopK(k=2), P.Identity()]), P.Label()])
    assert nested.spec() == "topk:2|label"
    assert P.parse("topk:3|label").released_k(M) == 1
    assert P.parse("label|gaussian:0.1").released_k(M) == M
    assert P.parse("gaussian:0.1|topk:4").released_k(M) == 4
    assert P.parse("topk:4|temperature:2|round:2").released_k(M) == 4
    assert P.parse("identity|identity").spec() == "identity"
    assert P.parse("topk:3|gaussian:0.1").stochastic and not P.parse("topk:3").stochastic
    assert P.parse("temperature:2|identity").invertible and not P.parse("temperature:2|topk:3").invertible


def test_temperature_is_invertible(probs):
    """Temperature removes nothing: re-applying 1/T recovers the vector (what `invertible` claims)."""
    back = P.parse("temperature:0.25")(P.parse("temperature:4")(probs))
    np.testing.assert_allclose(back, probs, atol=1e-4)


@pytest.mark.parametrize("spec, fragment", [
    ("topk:0", "k must be an integer >= 1"),
    ("topk:2.5", "'2.5'"),
    ("round:-1", "decimals"),
    ("topk:3|rnd:2", "part 'rnd:2'"),
    ("topk:3|rnd:2", "unknown policy 'rnd'"),
    ("gaussian:-0.1", "sigma"),
    ("gaussian:0.1,seed=-2", "seed"),
    ("reverse_sigmoid:0", "beta must be a number > 0"),
    ("reverse_sigmoid:1,2,3", "takes 2 parameter"),
    ("temperature:0", "T must be a number > 0"),
    ("temperature:nan", "T must be"),
    ("topk", "missing parameter 'k'"),
    ("label:1", "takes 0 parameter"),
    ("topk:j=3", "unknown parameter 'j'"),
    ("topk:k=3,k=4", "given twice"),
    ("reverse_sigmoid:beta=1,0.2", "positional value '0.2' after key=value"),
    ("topk:3||label", "empty part"),
    ("   ", "empty"),
])
def test_bad_specs_name_the_bad_part(spec, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        P.parse(spec)
    assert fragment in str(err.value), str(err.value)


def test_bad_configs_and_lists():
    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        P.from_config({"name": "nope"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        P.from_config({"name": "topk", "k": 3, "extra": 1})
    with pytest.raises(ConfigError, match="expected 'label'"):
        P.Label.from_config({"name": "topk", "k": 3})
    with pytest.raises(ConfigError, match="repeats"):
        P.parse_list("topk:3; topk:k=3")
    with pytest.raises(ConfigError, match="empty"):
        P.parse_list(" ; ")
    assert [p.spec() for p in P.parse_list("identity;topk:3 ;label;")] == ["identity", "topk:3", "label"]
    with pytest.raises(DataError, match="2-D"):
        P.parse("label")(np.ones(4))
    with pytest.raises(DataError, match="NaN"):
        P.parse("label")(np.array([[np.nan, 1.0]]))


def test_policy_oracle_releases_policy_output_with_reproducible_noise(probs):
    def fn(images):
        return probs[images[:, 0, 0, 0].astype(int)]

    images = np.arange(len(probs), dtype=np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 2, 2, 1), np.float32)
    inner = CallableOracle(fn, batch_size=16, name="toy")
    top = P.PolicyOracle(inner, "topk:2")
    np.testing.assert_array_equal(top(images), P.parse("topk:2")(probs))
    assert top.num_queries == len(probs) and top.output_dim == M
    assert "policy=topk:2" in top.identity()
    noisy1 = P.PolicyOracle(CallableOracle(fn, batch_size=16), "gaussian:0.1", seed=4)
    noisy2 = P.PolicyOracle(CallableOracle(fn, batch_size=16), "gaussian:0.1", seed=4)
    a, b = noisy1(images), noisy2(images)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(noisy1(images), a)  # successive queries draw fresh noise
    assert "seed=4" in noisy1.identity()
    with pytest.raises(ConfigError):
        P.PolicyOracle(fn, "label")


def test_import_does_not_load_tensorflow():
    code = "import sys, tfminv.policies; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
