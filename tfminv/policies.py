"""Release policies: what a prediction API hands out instead of the full probability vector.

A policy maps prediction vectors `[n, m]` to released vectors `[n, m]` (pure NumPy, no
TensorFlow). The same policy object serves both sides of an audit: the target applies it to
what it releases (`PolicyOracle`), and an adaptive attacker applies it to the predictions of
its auxiliary images so that the inverter is trained on inputs that look like the victims'.

Policies compose left to right and have a compact string form, e.g. ``"topk:3|round:2"``
(top-3 then round to 2 decimals). One part is ``name`` or ``name:v1,v2`` (positional
parameters in declared order) or ``name:key=value,...``. `parse` reads it, `Policy.spec`
writes the canonical form; `get_config`/`from_config` give the dict form for JSON.

Built-ins: identity, topk(k), round(decimals), label, gaussian(sigma, seed),
reverse_sigmoid(beta, gamma) (the output perturbation of Lee et al. 2018 as implemented in
IBM ART's ReverseSigmoid postprocessor), temperature(T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from tfminv.errors import ConfigError, DataError
from tfminv.oracles.base import Oracle

__all__ = [
    "Policy", "Identity", "TopK", "Round", "Label", "Gaussian", "ReverseSigmoid", "Temperature",
    "Compose", "PolicyOracle", "parse", "parse_list", "from_config", "registered",
]

_REQUIRED = object()


@dataclass(frozen=True)
class _Param:
    """One policy parameter: how to read it from a string and which values are allowed."""

    name: str
    kind: type  # int or float
    default: Any = _REQUIRED
    check: Callable[[Any], bool] = lambda v: True
    expected: str = ""
    optional_none: bool = False  # the value may be None (e.g. an unset seed)


def _as_rng(rng) -> np.random.Generator | None:
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise ConfigError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def _check_probs(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise DataError(f"prediction vectors must be a 2-D array [n, m] with m >= 1, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise DataError("prediction vectors contain NaN or infinite values")
    return p


class Policy:
    """A release policy. Subclasses set `name`, `params` and implement `_apply`."""

    name: str = ""
    params: tuple[_Param, ...] = ()
    stochastic: bool = False
    # True when the released vector determines the input vector (nothing is removed), so any
    # drop in measured leakage reflects the attacker's training budget, not the policy
    invertible: bool = False

    def __init__(self, **kwargs):
        values = {}
        for prm in self.params:
            if prm.name in kwargs:
                values[prm.name] = self._validate(prm, kwargs.pop(prm.name))
            elif prm.default is _REQUIRED:
                raise ConfigError(f"policy {self.name!r}: missing parameter {prm.name!r} "
                                  f"({prm.expected})")
            else:
                values[prm.name] = prm.default
        if kwargs:
            raise ConfigError(f"policy {self.name!r}: unknown parameter(s) {sorted(kwargs)}; "
                              f"expected {[p.name for p in self.params] or 'none'}")
        self._values = values

    # -- parameters ---------------------------------------------------------------------------
    def _validate(self, prm: _Param, value):
        if value is None and prm.optional_none:
            return None
        try:
            if prm.kind is int:
                if isinstance(value, bool):
                    raise ValueError
                if isinstance(value, str):
                    value = int(value.strip())
                elif isinstance(value, (float, np.floating)):
                    if not float(value).is_integer():
                        raise ValueError
                    value = int(value)
                else:
                    value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"policy {self.name!r}: {prm.name} must be {prm.expected}, "
                              f"got {value!r}") from None
        if not prm.check(value):
            raise ConfigError(f"policy {self.name!r}: {prm.name} must be {prm.expected}, got {value!r}")
        return value

    def __getattr__(self, item):
        values = self.__dict__.get("_values")
        if values is not None and item in values:
            return values[item]
        raise AttributeError(item)

    # -- application --------------------------------------------------------------------------
    def __call__(self, probs, rng=None) -> np.ndarray:
        """Released vectors (float32, same shape) for prediction vectors `probs` [n, m].

        `rng`: None, an int seed or a numpy Generator; only stochastic policies use it (when
        None they fall back to their own `seed` parameter, or fresh entropy if that is unset).
        """
        p = _check_probs(probs)
        out = self._apply(p, _as_rng(rng))
        return np.asarray(out, dtype=np.float32)

    def _apply(self, p: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError

    def support_bound(self, m: int, previous: int | None = None) -> int:
        """Upper bound on the non-zero entries released per vector (input had `previous`)."""
        return m if previous is None else previous

    def released_k(self, m: int) -> int:
        """How many entries of an m-vector can be non-zero after this policy: the `k` an
        attacker should truncate to (1 for label-only, k for top-k, m for a full vector)."""
        return int(self.support_bound(int(m), int(m)))

    def parts(self) -> list["Policy"]:
        return [self]

    # -- serialisation ------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"name": self.name, **self._values}

    @classmethod
    def from_config(cls, config: dict) -> "Policy":
        pol = from_config(config)
        if cls is not Policy and not isinstance(pol, cls):
            raise ConfigError(f"config names policy {config.get('name')!r}, expected {cls.name!r}")
        return pol

    def spec(self) -> str:
        """Canonical compact form, e.g. ``topk:3``; trailing default parameters are omitted."""
        vals = [self._values[p.name] for p in self.params]
        last = len(vals)
        while last > 0 and self.params[last - 1].default is not _REQUIRED \
                and vals[last - 1] == self.params[last - 1].default:
            last -= 1
        if last == 0:
            return self.name
        return self.name + ":" + ",".join(_fmt(v) for v in vals[:last])

    def __str__(self):
        return self.spec()

    def __repr__(self):
        return f"Policy({self.spec()!r})"

    def __eq__(self, other):
        return isinstance(other, Policy) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(self.spec())

    def __or__(self, other: "Policy") -> "Compose":
        return Compose([self, other])


def _fmt(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return repr(v) if not v.is_integer() else str(int(v)) if abs(v) < 1e15 else repr(v)
    return str(v)


class Identity(Policy):
    """Release the full probability vector unchanged."""

    name = "identity"
    invertible = True

    def _apply(self, p, rng):
        return p


def keep_top_k(p: np.ndarray, k: int) -> np.ndarray:
    """The k largest entries of each row of p [n, m] at their positions, zeros elsewhere (p
    itself when k >= m): what a top-k release shows. Stable order, so ties are broken the same
    way every time (the lowest index wins, as `tf.math.top_k` and the Truncation layer)."""
    m = p.shape[1]
    if k >= m:
        return p
    idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(p)
    np.put_along_axis(out, idx, np.take_along_axis(p, idx, axis=1), axis=1)
    return out


class TopK(Policy):
    """Keep the k largest probabilities (their values, at their positions); zero the rest."""

    name = "topk"
    params = (_Param("k", int, check=lambda v: v >= 1, expected="an integer >= 1"),)

    def _apply(self, p, rng):
        return keep_top_k(p, self.k)

    def support_bound(self, m, previous=None):
        return min(self.k, m if previous is None else previous)


class Round(Policy):
    """Round every probability to `decimals` decimal places (what many APIs print)."""

    name = "round"
    params = (_Param("decimals", int, check=lambda v: 0 <= v <= 15, expected="an integer in [0, 15]"),)

    def _apply(self, p, rng):
        return np.round(p, self.decimals)


class Label(Policy):
    """Release only the predicted label, as a one-hot vector."""

    name = "label"

    def _apply(self, p, rng):
        out = np.zeros_like(p)
        out[np.arange(len(p)), np.argmax(p, axis=1)] = 1.0
        return out

    def support_bound(self, m, previous=None):
        return 1


class Gaussian(Policy):
    """Add N(0, sigma^2) noise, clip to [0, 1] and renormalise each row to sum to 1.

    A row whose noisy values all clip to 0 releases the one-hot argmax of the noisy row.
    """

    name = "gaussian"
    stochastic = True
    params = (
        _Param("sigma", float, check=lambda v: v >= 0, expected="a number >= 0"),
        _Param("seed", int, default=None, check=lambda v: v >= 0, expected="an integer >= 0",
               optional_none=True),
    )

    def _apply(self, p, rng):
        if rng is None:
            rng = np.random.default_rng(self.seed)
        noisy = p + rng.normal(0.0, self.sigma, size=p.shape)
        out = np.clip(noisy, 0.0, 1.0)
        sums = out.sum(axis=1, keepdims=True)
        empty = sums[:, 0] <= 0
        if np.any(empty):
            out[empty] = 0.0
            out[empty, np.argmax(noisy[empty], axis=1)] = 1.0
            sums[empty] = 1.0
        return out / sums

    def support_bound(self, m, previous=None):
        return m if self.sigma > 0 else (m if previous is None else previous)


class ReverseSigmoid(Policy):
    """Reverse-sigmoid perturbation (Lee et al. 2018; formula of IBM ART's ReverseSigmoid).

    r = beta * (sigmoid(-gamma * log((1 - p) / p)) - 0.5) with p clipped to [1e-9, 1 - 1e-9];
    release p - r clipped to [0, 1] and renormalised. Needs m >= 2 classes.
    """

    name = "reverse_sigmoid"
    params = (
        _Param("beta", float, default=1.0, check=lambda v: v > 0, expected="a number > 0"),
        _Param("gamma", float, default=0.1, check=lambda v: v > 0, expected="a number > 0"),
    )

    def _apply(self, p, rng):
        if p.shape[1] < 2:
            raise DataError(f"reverse_sigmoid needs at least 2 classes, got vectors of length {p.shape[1]}")
        eps = 1e-9
        pc = np.clip(p, eps, 1.0 - eps)
        z = -self.gamma * np.log((1.0 - pc) / pc)
        r = self.beta * (1.0 / (1.0 + np.exp(-z)) - 0.5)
        out = np.clip(p - r, 0.0, 1.0)
        sums = out.sum(axis=1, keepdims=True)
        # every row has an entry <= 0.5, whose perturbation is >= 0, so sums > 0; guard anyway
        return out / np.maximum(sums, 1e-300)


class Temperature(Policy):
    """Re-softmax of log(p) / T over the released support (entries that are exactly 0 stay 0).

    T > 1 flattens the vector, T < 1 sharpens it; the argmax never changes.
    """

    name = "temperature"
    invertible = True  # log p / T up to a per-row constant: p is recovered by re-softmax with T
    params = (_Param("T", float, check=lambda v: v > 0, expected="a number > 0"),)

    def _apply(self, p, rng):
        support = p > 0
        logits = np.where(support, np.log(np.where(support, p, 1.0)) / self.T, -np.inf)
        logits = logits - np.max(logits, axis=1, keepdims=True)
        e = np.where(support, np.exp(logits), 0.0)
        sums = e.sum(axis=1, keepdims=True)
        # rows with no positive entry (all zero) are released unchanged
        return np.where(sums > 0, e / np.where(sums > 0, sums, 1.0), p)


class Compose(Policy):
    """Apply policies left to right (``a|b`` means b(a(p)))."""

    name = "compose"

    def __init__(self, policies: Sequence[Policy]):
        policies = list(policies)
        flat: list[Policy] = []
        for pol in policies:
            if not isinstance(pol, Policy):
                raise ConfigError(f"compose: expected Policy objects, got {type(pol).__name__}")
            flat.extend(pol.parts())
        # identity parts change nothing; keep one only if nothing else is left
        flat = [p for p in flat if not isinstance(p, Identity)] or [Identity()]
        self.policies = tuple(flat)
        self._values = {}

    @property
    def stochastic(self):  # type: ignore[override]
        return any(p.stochastic for p in self.policies)

    @property
    def invertible(self):  # type: ignore[override]
        return all(p.invertible for p in self.policies)

    def parts(self):
        return list(self.policies)

    def _apply(self, p, rng):
        for pol in self.policies:
            p = pol._apply(p, rng)
        return p

    def support_bound(self, m, previous=None):
        b = m if previous is None else previous
        for pol in self.policies:
            b = pol.support_bound(m, b)
        return b

    def get_config(self):
        return {"name": "compose", "policies": [p.get_config() for p in self.policies]}

    def spec(self):
        return "|".join(p.spec() for p in self.policies)


_REGISTRY: dict[str, type[Policy]] = {
    cls.name: cls for cls in (Identity, TopK, Round, Label, Gaussian, ReverseSigmoid, Temperature)
}


def registered() -> dict[str, str]:
    """Built-in policy names -> their parameter lists (for help texts)."""
    return {name: ",".join(p.name for p in cls.params) for name, cls in _REGISTRY.items()}


def from_config(config: dict) -> Policy:
    """Build a policy from `Policy.get_config()` output (a dict with a 'name')."""
    if isinstance(config, Policy):
        return config
    if not isinstance(config, dict) or "name" not in config:
        raise ConfigError(f"policy config must be a dict with a 'name', got {config!r}")
    config = dict(config)
    name = config.pop("name")
    if name == "compose":
        subs = config.pop("policies", None)
        if not isinstance(subs, list) or not subs or config:
            raise ConfigError("compose config must be {'name': 'compose', 'policies': [non-empty list]}")
        return Compose([from_config(c) for c in subs])
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"unknown policy {name!r}; expected one of {sorted(_REGISTRY)}")
    return cls(**config)


def _parse_part(part: str, whole: str) -> Policy:
    text = part.strip()
    where = f"policy spec {whole!r}, part {text!r}" if text != whole.strip() else f"policy spec {whole!r}"
    if not text:
        raise ConfigError(f"{where}: empty part (expected e.g. 'topk:3')")
    name, _, args = text.partition(":")
    name = name.strip().lower()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"{where}: unknown policy {name!r}; expected one of {sorted(_REGISTRY)}")
    kwargs: dict[str, Any] = {}
    if args.strip():
        items = [a.strip() for a in args.split(",")]
        positional = True
        for i, item in enumerate(items):
            key, eq, val = item.partition("=")
            if eq:
                positional = False
                key = key.strip()
                if key not in {p.name for p in cls.params}:
                    raise ConfigError(f"{where}: unknown parameter {key!r} for {name!r}; "
                                      f"expected {[p.name for p in cls.params] or 'none'}")
            else:
                if not positional:
                    raise ConfigError(f"{where}: positional value {item!r} after key=value")
                if i >= len(cls.params):
                    raise ConfigError(f"{where}: {name!r} takes {len(cls.params)} parameter(s) "
                                      f"({', '.join(p.name for p in cls.params) or 'none'}), got {len(items)}")
                key, val = cls.params[i].name, item
            if key in kwargs:
                raise ConfigError(f"{where}: parameter {key!r} given twice")
            val = val.strip()
            kwargs[key] = None if val.lower() == "none" else val
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def parse(spec: str | Policy | dict) -> Policy:
    """Policy from its compact string form (``"topk:3|round:2"``), a config dict, or a Policy."""
    if isinstance(spec, Policy):
        return spec
    if isinstance(spec, dict):
        return from_config(spec)
    if not isinstance(spec, str):
        raise ConfigError(f"policy spec must be a string, got {type(spec).__name__}")
    if not spec.strip():
        raise ConfigError("policy spec is empty (expected e.g. 'identity' or 'topk:3|round:2')")
    parts = [_parse_part(p, spec) for p in spec.split("|")]
    return parts[0] if len(parts) == 1 else Compose(parts)


def parse_list(specs: str | Iterable[str]) -> list[Policy]:
    """Policies from ``"identity;topk:3;label"`` (or an iterable of specs); no duplicates."""
    if isinstance(specs, str):
        items = [s for s in (x.strip() for x in specs.split(";")) if s]
    else:
        items = [s.strip() if isinstance(s, str) else s for s in specs]
    if not items:
        raise ConfigError("policy list is empty (expected e.g. 'identity;topk:3;label')")
    out, seen = [], {}
    for n, item in enumerate(items, 1):
        try:
            pol = parse(item)
        except ConfigError as e:
            raise ConfigError(f"policy list item {n} of {len(items)}: {e}") from None
        if pol.spec() in seen:
            raise ConfigError(f"policy list: {item!r} repeats {seen[pol.spec()]!r}")
        seen[pol.spec()] = item
        out.append(pol)
    return out


class PolicyOracle(Oracle):
    """An oracle that releases `policy(oracle(images))`: the target as seen through an API.

    Stochastic policies draw from one Generator seeded with `seed`, so a run is reproducible
    and successive queries get fresh noise.
    """

    def __init__(self, oracle: Oracle, policy: Policy | str, seed: int | None = None, **kwargs):
        if not isinstance(oracle, Oracle):
            raise ConfigError(f"PolicyOracle wraps an Oracle, got {type(oracle).__name__}")
        self.policy = parse(policy)
        kwargs.setdefault("name", f"{oracle.name}|{self.policy.spec()}")
        kwargs.setdefault("batch_size", oracle.batch_size)
        kwargs.setdefault("output_dim", oracle.output_dim)
        super().__init__(**kwargs)
        self.oracle = oracle
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def identity(self) -> str:
        ident = f"{self.oracle.identity()}|policy={self.policy.spec()}"
        if self.policy.stochastic:
            ident += f"|seed={self.seed}"
        return ident

    def _predict(self, images):
        return self.policy(self.oracle(images), rng=self._rng)
