"""The serving stand-in itself: `ModelServer` loads SavedModels (TF Serving's layout), runs
their signatures for both protocols (`predict`) and starts REST (`tfminv.serving.rest`) and gRPC
(`tfminv.serving.grpc`) on 127.0.0.1; `main`/`run` are its binary, whose limit flags are
generated from `ServerLimits` (`tfminv.serving.limits`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from tfminv.errors import ConfigError
from tfminv.serving.limits import (ServerLimits, ServingError, batch_message, limit_settings,
                                   names)
from tfminv.serving.rest import RestServer


class _Model:
    def __init__(self, name: str, base: Path):
        import tensorflow as tf

        base = Path(base)
        if (base / "saved_model.pb").is_file():
            dirs = {1: base}
        else:
            dirs = {int(p.name): p for p in base.iterdir()
                    if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file()} \
                if base.is_dir() else {}
        if not dirs:
            raise ConfigError(f"model {name!r}: no SavedModel versions under {base}")
        self.name = name
        self.loaded = {v: tf.saved_model.load(str(d)) for v, d in dirs.items()}

    def signature(self, version, signature_name):
        if version is None:
            version = max(self.loaded)
        if version not in self.loaded:
            raise ServingError("NOT_FOUND", f"Servable not found for request: "
                               f"Specific({self.name}, {version})")
        sigs = self.loaded[version].signatures
        sig_name = signature_name or "serving_default"
        if sig_name not in sigs:
            raise ServingError("FAILED_PRECONDITION",
                               f"Serving signature key \"{sig_name}\" not found.")
        return version, sig_name, sigs[sig_name]


class ModelServer:
    """Serve SavedModels over REST and gRPC on 127.0.0.1 (ephemeral ports by default).

    `models` maps a model name to its TF Serving base path (BASE/NAME with version dirs) or to
    a SavedModel dir; `model_config_file` reads a models.config instead. `limits` bounds what a
    request may cost (`ServerLimits`). `hook(protocol, name)` runs before each predict and may
    raise ServingError (fault injection in tests).

    Serving a model runs its graph in this process: serve only models you trust (an untrusted
    one belongs in `tensorflow_model_server` inside a sandbox; docs/serving.md).
    """

    def __init__(self, models: dict | None = None, *, model_config_file=None,
                 host: str = "127.0.0.1", rest_port: int = 0, grpc_port: int = 0,
                 rest: bool = True, grpc: bool = True,
                 hook: Callable[[str, str], None] | None = None,
                 limits: ServerLimits | None = None):
        models = dict(models or {})
        if model_config_file:
            from tfminv.export import read_models_config

            models.update(read_models_config(model_config_file))
        if not models:
            raise ConfigError("ModelServer: no models (pass models={name: path} or "
                              "model_config_file)")
        self.models = {n: _Model(n, p) for n, p in models.items()}
        self.host = host
        self.hook = hook
        self.limits = limits if limits is not None else ServerLimits()
        self._want = (rest, rest_port, grpc, grpc_port)
        self._http = self._grpc = None
        self.rest_port = self.grpc_port = None

    # -- the model runtime shared by both protocols --------------------------------------
    def predict(self, name: str, version: int | None, signature_name: str | None,
                inputs: dict[str, np.ndarray] | np.ndarray, protocol: str = "api"):
        """Run a signature; returns (version, signature name, {output: array})."""
        import tensorflow as tf

        if self.hook is not None:
            self.hook(protocol, name)
        if name not in self.models:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
        version, sig_name, fn = self.models[name].signature(version, signature_name)
        spec = fn.structured_input_signature[1]
        if not isinstance(inputs, dict):
            if len(spec) != 1:
                raise ServingError("INVALID_ARGUMENT",
                                   f"signature has inputs {names(spec)}; name them")
            inputs = {next(iter(spec)): inputs}
        if set(inputs) != set(spec):
            raise ServingError("INVALID_ARGUMENT", f"input keys {names(inputs)} do not match "
                               f"the signature's {names(spec)}")
        args = {}
        for k, v in inputs.items():
            try:
                arr = np.asarray(v, dtype=spec[k].dtype.as_numpy_dtype)
            except (ValueError, TypeError):
                raise ServingError("INVALID_ARGUMENT", f"input {k!r} is not a numeric "
                                   "tensor") from None
            if not spec[k].shape.is_compatible_with(arr.shape):
                raise ServingError("INVALID_ARGUMENT", f"input {k!r} has shape {arr.shape}, "
                                   f"expected {spec[k].shape}")
            if arr.ndim and arr.shape[0] > self.limits.max_batch_size:
                raise ServingError("INVALID_ARGUMENT", batch_message(k, arr.shape[0],
                                                                     self.limits))
            if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                raise ServingError("INVALID_ARGUMENT",
                                   f"input {k!r} contains NaN or infinite values")
            args[k] = tf.constant(arr)
        try:
            out = fn(**args)
        except tf.errors.InvalidArgumentError as e:
            raise ServingError("INVALID_ARGUMENT", e.message) from None
        except tf.errors.ResourceExhaustedError as e:
            raise ServingError("RESOURCE_EXHAUSTED", e.message) from None
        except tf.errors.OpError as e:
            raise ServingError("INTERNAL", f"{type(e).__name__}: {e.message}") from None
        return version, sig_name, {k: v.numpy() for k, v in out.items()}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "ModelServer":
        rest, rest_port, grpc_on, grpc_port = self._want
        if rest:
            try:
                self._http = RestServer((self.host, rest_port), self, self.limits)
            except OSError as e:
                raise ConfigError(f"cannot serve REST on {self.host}:{rest_port}: {e}") from None
            self.rest_port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, daemon=True,
                             name="tfminv-rest").start()
        if grpc_on:
            from tfminv.serving.grpc import grpc_server

            self._grpc = grpc_server(self, grpc_port)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait()
            self._grpc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def rest_url(self, name: str, version: int | None = None) -> str:
        v = f"/versions/{version}" if version is not None else ""
        return f"http://{self.host}:{self.rest_port}/v1/models/{name}{v}"

    def grpc_target(self, name: str, version: int | None = None) -> str:
        v = f"/{version}" if version is not None else ""
        return f"{self.host}:{self.grpc_port}/{name}{v}"


def main(argv):
    from absl import flags

    F = flags.FLAGS
    models = {}
    if F.model_name or F.model_base_path:
        if not (F.model_name and F.model_base_path):
            raise ConfigError("--model_name and --model_base_path go together")
        models[F.model_name] = Path(F.model_base_path)
    limits = ServerLimits(rest_api_timeout_s=F.rest_api_timeout_in_ms / 1000,
                          **{name: getattr(F, name) for name, (_, s) in limit_settings().items()
                             if s.flag})
    srv = ModelServer(models, model_config_file=F.model_config_file, host=F.host,
                      rest_port=F.rest_api_port, grpc_port=F.port, limits=limits).start()
    print(f"gRPC on {F.host}:{srv.grpc_port}, REST on http://{F.host}:{srv.rest_port}; "
          f"models: {sorted(srv.models)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


def run():
    from absl import flags

    flags.DEFINE_string("model_config_file", None, "A models.config (ModelServerConfig).")
    flags.DEFINE_string("model_name", None, "Serve one model under this name ...")
    flags.DEFINE_string("model_base_path", None, "... from this BASE/NAME folder.")
    flags.DEFINE_integer("port", 8500, "gRPC port.")
    flags.DEFINE_integer("rest_api_port", 8501, "REST port.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind.")
    for name, (field, s) in limit_settings().items():  # one definition: ServerLimits
        if s.flag:
            define = flags.DEFINE_float if isinstance(field.default, float) \
                else flags.DEFINE_integer
            define(name, field.default, s.help)
    flags.DEFINE_integer("rest_api_timeout_in_ms", int(ServerLimits().rest_api_timeout_s * 1000),
                         "A REST connection idle or stalled this long is closed (TF Serving's "
                         "flag).")

    from tfminv import cli

    cli.run(main)
