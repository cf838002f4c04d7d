"""An in-process stand-in for `tensorflow_model_server`: TF Serving's REST predict contract and
its gRPC PredictionService (tensorflow-serving-api's own protos and servicer), serving SavedModels.

For tests, and for users without the model server binary:

    python -m tfminv.serving.testing_server --model_config_file=BASE/models.config \
        --port=8500 --rest_api_port=8501

It implements what the clients here use: `POST /v1/models/NAME[/versions/N]:predict`
(row "instances" and columnar "inputs" formats), `GET /v1/models/NAME[/versions/N]` (status),
and gRPC `Predict`. The latest version is served unless a request names one.
"""

from __future__ import annotations

import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np

from tfminv.errors import ConfigError

_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(?:/labels/[^/:]+)?:predict$")
_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/?$")
_HTTP = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "FAILED_PRECONDITION": 400,
         "UNAVAILABLE": 503, "INTERNAL": 500, "RESOURCE_EXHAUSTED": 429}


class ServingError(Exception):
    """A request failure with a gRPC status code name (mapped to an HTTP status for REST)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


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
    a SavedModel dir; `model_config_file` reads a models.config instead. `hook(protocol, name)`
    runs before each predict and may raise ServingError (fault injection in tests).
    """

    def __init__(self, models: dict | None = None, *, model_config_file=None,
                 host: str = "127.0.0.1", rest_port: int = 0, grpc_port: int = 0,
                 rest: bool = True, grpc: bool = True,
                 hook: Callable[[str, str], None] | None = None):
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
                                   f"signature has inputs {sorted(spec)}; name them")
            inputs = {next(iter(spec)): inputs}
        if set(inputs) != set(spec):
            raise ServingError("INVALID_ARGUMENT", f"input keys {sorted(inputs)} do not match "
                               f"the signature's {sorted(spec)}")
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
            args[k] = tf.constant(arr)
        try:
            out = fn(**args)
        except tf.errors.InvalidArgumentError as e:
            raise ServingError("INVALID_ARGUMENT", e.message) from None
        return version, sig_name, {k: v.numpy() for k, v in out.items()}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "ModelServer":
        rest, rest_port, grpc_on, grpc_port = self._want
        if rest:
            self._http = ThreadingHTTPServer((self.host, rest_port), _rest_handler(self))
            self._http.daemon_threads = True
            self.rest_port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, daemon=True,
                             name="tfminv-rest").start()
        if grpc_on:
            self._grpc = _grpc_server(self, grpc_port)
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


def _rest_handler(server: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: tests run many requests
            pass

        def _send(self, status: int, obj) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            m = _STATUS.match(self.path)
            if not m or m.group(1) not in server.models:
                return self._send(404, {"error": f"Could not find model at {self.path}"})
            versions = sorted(server.models[m.group(1)].loaded)
            if m.group(2):
                versions = [int(m.group(2))] if int(m.group(2)) in versions else []
                if not versions:
                    return self._send(404, {"error": f"Could not find version {m.group(2)}"})
            self._send(200, {"model_version_status": [
                {"version": str(v), "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}} for v in versions]})

        def do_POST(self):
            m = _PREDICT.match(self.path)
            if not m:
                return self._send(404, {"error": f"Malformed request: POST {self.path}"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if not isinstance(body, dict):
                    raise ValueError("body is not a JSON object")
            except ValueError as e:
                return self._send(400, {"error": f"JSON Parse error: {e}"})
            try:
                self._send(200, self._predict(m.group(1), m.group(2), body))
            except ServingError as e:
                self._send(_HTTP.get(e.code, 500), {"error": str(e)})

        def _predict(self, name, version, body):
            row = "instances" in body
            if row == ("inputs" in body):
                raise ServingError("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key"
                                   if not row else "Both 'inputs' and 'instances' given")
            if row:
                inst = body["instances"]
                if not isinstance(inst, list):
                    raise ServingError("INVALID_ARGUMENT", "'instances' must be a list")
                if inst and all(isinstance(i, dict) for i in inst):
                    inputs = {k: [i.get(k) for i in inst] for k in inst[0]}
                else:
                    inputs = inst
            else:
                inputs = body["inputs"]
            _, _, outs = server.predict(name, int(version) if version else None,
                                        body.get("signature_name"), inputs, "rest")
            if not row:
                if len(outs) == 1:
                    return {"outputs": next(iter(outs.values())).tolist()}
                return {"outputs": {k: v.tolist() for k, v in outs.items()}}
            if len(outs) == 1:
                return {"predictions": next(iter(outs.values())).tolist()}
            n = len(next(iter(outs.values())))
            return {"predictions": [{k: v[i].tolist() for k, v in outs.items()}
                                    for i in range(n)]}

    return Handler


def _grpc_server(server: ModelServer, port: int):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                version, sig_name, outs = server.predict(spec.name, version,
                                                         spec.signature_name, inputs, "grpc")
            except ServingError as e:
                context.abort(getattr(grpc.StatusCode, e.code, grpc.StatusCode.INTERNAL), str(e))
            except (TypeError, ValueError) as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad input tensor: {e}")
            resp = predict_pb2.PredictResponse()
            resp.model_spec.name = spec.name
            resp.model_spec.version.value = version
            resp.model_spec.signature_name = sig_name
            wanted = set(request.output_filter) or set(outs)
            for k in wanted:
                if k not in outs:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output {k!r} not found")
                resp.outputs[k].CopyFrom(tf.make_tensor_proto(outs[k]))
            return resp

    from tfminv.oracles.grpc import MAX_MESSAGE_BYTES

    g = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), g)
    server.grpc_port = g.add_insecure_port(f"{server.host}:{port}")
    if not server.grpc_port:
        raise ConfigError(f"cannot bind gRPC to {server.host}:{port}")
    g.start()
    return g


def main(argv):
    import time

    from absl import flags

    F = flags.FLAGS
    models = {}
    if F.model_name or F.model_base_path:
        if not (F.model_name and F.model_base_path):
            raise ConfigError("--model_name and --model_base_path go together")
        models[F.model_name] = Path(F.model_base_path)
    srv = ModelServer(models, model_config_file=F.model_config_file, host=F.host,
                      rest_port=F.rest_api_port, grpc_port=F.port).start()
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

    from tfminv import cli

    cli.run(main)


if __name__ == "__main__":
    run()
