"""`from_spec`: build any oracle from one string, so every experiment takes its target from a flag.

    keras:PATH.keras                          in-process Keras model (softmax added to logits;
                                              a legacy PATH.h5 loads too)
    savedmodel:DIR                            SavedModel dir, or TF Serving model dir (latest)
    rest:http://HOST:PORT/v1/models/NAME[/versions/N]
    grpc:HOST:PORT/NAME[/VERSION]
    http-json:URL#SCHEMA.json                 generic JSON API mapped by a schema file
    http-json:URL#ADAPTER                     a registered adapter (see http_json.register_adapter)
"""

from __future__ import annotations

from pathlib import Path

from tfminv.errors import ConfigError
from tfminv.oracles.base import KerasOracle, Oracle, RetryPolicy
from tfminv.oracles.checks import check_outputs_choice, check_target_noise

SCHEMES = ("keras", "savedmodel", "rest", "grpc", "http-json")
_REMOTE = ("rest", "grpc", "http-json")


def parse_spec(spec: str) -> tuple[str, str]:
    """Split `SCHEME:REST`; names the accepted forms when the scheme is unknown."""
    scheme, sep, rest = (spec or "").partition(":")
    if not sep or scheme not in SCHEMES or not rest:
        raise ConfigError(
            f"target {spec!r}: expected one of keras:PATH.keras, savedmodel:DIR, "
            "rest:http://HOST:PORT/v1/models/NAME[/versions/N], grpc:HOST:PORT/NAME[/VERSION], "
            "http-json:URL#SCHEMA.json")
    return scheme, rest


def from_spec(spec: str, *, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5,
              concurrency: int = 1, rate_limit: float | None = None,
              outputs: str | None = None, target_noise: str = "refuse", **kwargs) -> Oracle:
    """Build the oracle a target string names. `kwargs` go to the oracle (budget, batch_size...).

    `timeout`, `retries`, `backoff`, `concurrency` (requests in flight) and `rate_limit`
    (requests per second, None: unlimited) apply to remote targets only. `outputs`
    (`checks.OUTPUTS`) declares what the target answers; None: 'probabilities' (checked) for
    SavedModels and remote targets, and for a Keras file what its last layer says (a softmax is
    added unless it ends in one; declaring 'logits' on a model ending in softmax is refused).
    A declaration other than the default is part of the oracle's identity (prediction caches).
    `target_noise` (`checks.TARGET_NOISE`) goes to the one oracle that probes its answers at
    load time, a SavedModel; the other forms are probed by `tfminv.target.make_target`.
    """
    scheme, rest = parse_spec(spec)
    check_target_noise(target_noise)
    if outputs is not None:
        check_outputs_choice(outputs, f"target {spec!r}")
        kwargs["outputs"] = outputs
    remote = dict(timeout=timeout, retry=RetryPolicy(retries=retries, backoff=backoff),
                  concurrency=concurrency, rate_limit=rate_limit)
    if scheme == "keras":
        from tfminv.export import ends_in_softmax
        from tfminv.oracles.checks import LEGACY_SUFFIXES, load_keras_model

        p = Path(rest)
        if not p.is_file():
            raise ConfigError(f"target {spec!r}: {rest} is not an existing .keras file")
        if p.suffix not in (".keras",) + LEGACY_SUFFIXES:
            raise ConfigError(f"target {spec!r}: {rest} has suffix {p.suffix or '(none)'!r}; "
                              "expected a Keras 3 .keras archive or a legacy .h5 model")
        model = load_keras_model(p, f"target {spec!r}")
        if isinstance(model.input_shape, list) or len(model.input_shape) != 4:
            raise ConfigError(f"target {spec!r}: {p} takes input {model.input_shape}; a target "
                              "takes one image batch [n, H, W, C]")
        if outputs == "logits" and ends_in_softmax(model):
            raise ConfigError(f"target {spec!r}: declared outputs='logits' but {p} ends in a "
                              "softmax (its outputs are probabilities); declare "
                              "outputs='probabilities' or leave outputs unset")
        kwargs.setdefault("name", f"keras:{p}")
        kwargs.setdefault("identity", f"keras:{_file_hash(p)}"
                          + (f"|outputs={outputs}" if outputs else ""))
        if outputs is None:
            kwargs.setdefault("softmax", not ends_in_softmax(model))
        return KerasOracle(model, **kwargs)
    if scheme == "savedmodel":
        from tfminv.oracles.savedmodel import SavedModelOracle

        return SavedModelOracle(rest, target_noise=target_noise, **kwargs)
    if scheme == "rest":
        from tfminv.oracles.rest import RestOracle

        return RestOracle(rest, **remote, **kwargs)
    if scheme == "grpc":
        from tfminv.oracles.grpc import GrpcOracle

        return GrpcOracle(rest, **remote, **kwargs)
    from tfminv.oracles import http_json

    url, sep, schema = rest.rpartition("#")
    if not sep or not url or not schema:
        raise ConfigError(f"target {spec!r}: expected http-json:URL#SCHEMA.json or "
                          f"http-json:URL#ADAPTER (adapters: {sorted(http_json.adapters())})")
    if schema.endswith(".json"):
        return http_json.HttpJsonOracle(url, schema, **remote, **kwargs)
    factory = http_json.adapters().get(schema)
    if factory is None:
        raise ConfigError(f"target {spec!r}: {schema!r} is neither a .json schema file nor a "
                          f"registered adapter (adapters: {sorted(http_json.adapters())})")
    return factory(url, **remote, **kwargs)


def _file_hash(p: Path) -> str:
    import hashlib

    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]
