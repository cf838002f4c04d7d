"""An in-process stand-in for `tensorflow_model_server`: TF Serving's REST predict contract and
its gRPC PredictionService (tensorflow-serving-api's own protos and servicer), serving SavedModels.

For tests, and for users without the model server binary:

    python -m tfminv.serving.testing_server --model_config_file=BASE/models.config \
        --port=8500 --rest_api_port=8501

It implements what the clients here use: `POST /v1/models/NAME[/versions/N]:predict`
(row "instances" and columnar "inputs" formats), `GET /v1/models/NAME[/versions/N]` (status),
and gRPC `Predict`. The latest version is served unless a request names one.

No request can take the server down (`ServerLimits`, as TF Serving bounds its own): a REST body
over `max_request_bytes` is answered 413 before it is read, a batch over `max_batch_size` 400
before it is converted; a gRPC TensorProto's declared shape must match its content and the
limits before it is decoded (a 40-byte proto declaring [1e9, 5] would otherwise decode to 20 GB);
NaN/Inf inputs are refused; every malformed request gets a 4xx JSON error, never a dropped
connection. REST connections are served by a bounded thread pool behind a listen backlog (the
standard library's default backlog of 5 reset connections under 20 concurrent clients).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import select
import socket
import socketserver
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Callable

import numpy as np

from tfminv.errors import ConfigError

_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(?:/labels/[^/:]+)?:predict$")
_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/?$")
_HTTP = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "FAILED_PRECONDITION": 400,
         "UNAVAILABLE": 503, "INTERNAL": 500, "RESOURCE_EXHAUSTED": 429}
_LINGER_S = 5.0  # after a 413, read (and discard) the unread body this long so the client sees it

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """What one request, and all of them together, may cost the server.

    max_request_bytes: REST body and gRPC message size (413 / RESOURCE_EXHAUSTED above it).
    max_batch_size: rows per input tensor (400 / INVALID_ARGUMENT above it). The clients here
        send 64 (RestOracle) to 256 (InverterClient) rows; an unbounded batch let a 1 MB body of
        20,000 inverter vectors take the server to 4.6 GB.
    rest_api_num_threads, grpc_max_threads: worker threads (TF Serving's flags of those names);
        further connections and RPCs wait for a free thread.
    listen_backlog: the REST socket's listen backlog, and the number of connections (RPCs) that
        may wait for a thread; beyond it REST answers 503 and gRPC RESOURCE_EXHAUSTED, both of
        which the clients here retry.
    rest_api_timeout_s: a REST connection idle or stalled this long is closed.
    """

    max_request_bytes: int = 64 * 2**20
    max_batch_size: int = 1024
    rest_api_num_threads: int = 16
    grpc_max_threads: int = 8
    listen_backlog: int = 128
    rest_api_timeout_s: float = 30.0

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"server limit {f.name}={v!r}: expected a number > 0")


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
            if arr.ndim and arr.shape[0] > self.limits.max_batch_size:
                raise ServingError("INVALID_ARGUMENT", _batch_message(k, arr.shape[0],
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
                self._http = _RestServer((self.host, rest_port), _rest_handler(self),
                                         self.limits)
            except OSError as e:
                raise ConfigError(f"cannot serve REST on {self.host}:{rest_port}: {e}") from None
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


def _batch_message(key, rows, limits: ServerLimits) -> str:
    return (f"input {key!r} has a batch of {rows} rows, over the server's max_batch_size of "
            f"{limits.max_batch_size}; send smaller batches")


def _rows(value) -> int:
    """Rows of a JSON tensor without converting it (0 for a scalar)."""
    return len(value) if isinstance(value, list) else 0


class _RestServer(HTTPServer):
    """An HTTPServer with a listen backlog and a bounded pool of connection threads.

    The standard library's ThreadingHTTPServer starts a thread per connection and listens with
    a backlog of 5, so bursts of new connections are reset. Here the accept loop hands each
    connection to `rest_api_num_threads` workers; up to `listen_backlog` connections wait for
    one, further ones are answered 503 at once. A worker keeps a keep-alive connection only
    while no other connection waits (`waiting()`), so a client holding idle connections cannot
    starve others.
    """

    def __init__(self, address, handler, limits: ServerLimits):
        self.request_queue_size = limits.listen_backlog  # listen(2) backlog
        self.limits = limits
        self._pool = futures.ThreadPoolExecutor(limits.rest_api_num_threads,
                                                thread_name_prefix="tfminv-rest")
        self._waiting = 0
        self._lock = threading.Lock()
        self._active: set = set()  # connections a worker is serving
        self.closing = False
        super().__init__(address, handler)

    def server_bind(self):  # HTTPServer's also looks up the host's FQDN (seconds, offline)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def waiting(self) -> int:
        return self._waiting

    def process_request(self, request, client_address):
        with self._lock:
            if self._waiting >= self.limits.listen_backlog:
                busy = True
            else:
                busy = False
                self._waiting += 1
        if busy:
            data = json.dumps({"error": "server busy: too many connections waiting; retry"})
            try:
                request.sendall((f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                 f"application/json\r\nContent-Length: {len(data)}\r\n"
                                 f"Connection: close\r\n\r\n{data}").encode())
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self._pool.submit(self._work, request, client_address)

    def _work(self, request, client_address):
        with self._lock:
            self._waiting -= 1
            self._active.add(request)
        try:
            if not self.closing:
                self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - a broken connection must not end the worker
            log.debug("REST connection from %s failed", client_address, exc_info=True)
        finally:
            with self._lock:
                self._active.discard(request)
            self.shutdown_request(request)

    def server_close(self):
        """Stop accepting, drop waiting connections, and end the ones being served (a worker
        blocked on a stalled client would otherwise hold the interpreter's exit)."""
        self.closing = True
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            active = list(self._active)
        for sock in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _rest_handler(server: ModelServer):
    limits = server.limits

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = limits.rest_api_timeout_s  # socket timeout: a stalled client is dropped

        def log_message(self, *args):  # quiet: tests run many requests
            pass

        def handle(self):
            self.close_connection = True
            self.handle_one_request()
            while not self.close_connection and self._next_request():
                self.handle_one_request()

        def _next_request(self) -> bool:
            """Wait on a keep-alive connection for its next request, but give the thread up
            when the connection stays idle, or as soon as other connections wait for one."""
            if self._buffered():  # a pipelined request already read from the socket
                return True
            deadline = time.monotonic() + limits.rest_api_timeout_s
            while time.monotonic() < deadline:
                if self.server.waiting() or self.server.closing:
                    return False
                if select.select([self.connection], [], [], 0.1)[0]:
                    return True
            return False

        def _buffered(self) -> bool:
            """Whether the next request is already (partly) in rfile's buffer, where select()
            cannot see it; peeks without blocking."""
            self.connection.settimeout(0)
            try:
                return bool(self.rfile.peek(1))
            except OSError:
                return False
            finally:
                self.connection.settimeout(self.timeout)

        def _send(self, status: int, obj, close: bool = False) -> None:
            data = json.dumps(obj).encode()
            self._answered = True
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close or self.server.waiting():
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def send_error(self, code, message=None, explain=None):
            """The standard library's errors (bad request line, too many headers, unknown
            method) as JSON, like every other answer (with a status line even when the
            request line was too broken to name an HTTP version)."""
            if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
                self.request_version = "HTTP/1.0"
            self._send(int(code), {"error": message or explain or f"HTTP {int(code)}"},
                       close=True)

        def _linger(self, remaining: int) -> None:
            """After answering without reading the body: read and discard it (a bounded time,
            constant memory) so that closing does not reset the connection before the client
            has read the answer."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(1.0)
                deadline = time.monotonic() + _LINGER_S
                while remaining > 0 and time.monotonic() < deadline:
                    chunk = self.connection.recv(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            except OSError:
                pass

        def do_GET(self):
            m = _STATUS.match(self.path)
            if not m or m.group(1) not in server.models:
                return self._send(404, {"error": f"Could not find model at {self.path}"})
            versions = sorted(server.models[m.group(1)].loaded)
            if m.group(2):
                v = int(m.group(2)) if len(m.group(2)) < 19 else -1
                versions = [v] if v in versions else []
                if not versions:
                    return self._send(404, {"error": f"Could not find version {m.group(2)}"})
            self._send(200, {"model_version_status": [
                {"version": str(v), "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}} for v in versions]})

        def do_POST(self):
            self._answered = False
            try:
                self._post()
            except Exception as e:  # noqa: BLE001 - last resort: an answer, not a dropped socket
                log.warning("REST %s: %s: %s", self.path, type(e).__name__, e)
                if not self._answered:
                    try:
                        self._send(500, {"error": f"internal error: {type(e).__name__}: {e}"},
                                   close=True)
                    except OSError:
                        self.close_connection = True

        def _read_body(self) -> bytes | None:
            """The body, or None after answering why not (nothing is read past the limit)."""
            length = self.headers.get("Content-Length")
            n = limits.max_request_bytes  # what to discard after a refusal of unknown length
            if self.headers.get("Transfer-Encoding"):
                status, error = 411, ("chunked request bodies are not supported; send "
                                      "Content-Length")
            elif length is None:
                status, error = 411, "Content-Length required"
            elif not re.fullmatch(r"[0-9]{1,20}", length.strip()):
                status, error = 400, f"Content-Length {length[:40]!r} is not a byte count"
            elif int(length.strip()) > limits.max_request_bytes:
                n = int(length.strip())
                status, error = 413, (f"request body of {n} bytes is over the server's "
                                      f"max_request_bytes of {limits.max_request_bytes}")
            else:
                status = None
            if status is not None:
                self._send(status, {"error": error}, close=True)
                self._linger(n)
                return None
            n = int(length.strip())
            body = self.rfile.read(n)
            if len(body) < n:  # the client went away mid-body
                self.close_connection = True
                return None
            return body

        def _post(self):
            raw = self._read_body()
            if raw is None:
                return
            m = _PREDICT.match(self.path)
            if not m:
                return self._send(404, {"error": f"Malformed request: POST {self.path}"})
            try:
                body = json.loads(raw)
            except RecursionError:
                return self._send(400, {"error": "JSON Parse error: nested too deeply"})
            except ValueError as e:
                return self._send(400, {"error": f"JSON Parse error: {e}"})
            if not isinstance(body, dict):
                return self._send(400, {"error": "JSON Parse error: body is not a JSON object"})
            try:
                self._send(200, self._predict(m.group(1), m.group(2), body))
            except ServingError as e:
                self._send(_HTTP.get(e.code, 500), {"error": str(e)})

        def _predict(self, name, version, body):
            row = "instances" in body
            if row == ("inputs" in body):
                raise ServingError("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key"
                                   if not row else "Both 'inputs' and 'instances' given")
            sig = body.get("signature_name")
            if sig is not None and not isinstance(sig, str):
                raise ServingError("INVALID_ARGUMENT", "'signature_name' must be a string, "
                                   f"got {type(sig).__name__}")
            if version is not None:
                version = int(version) if len(version) < 19 else -1
            if row:
                inst = body["instances"]
                if not isinstance(inst, list):
                    raise ServingError("INVALID_ARGUMENT", "'instances' must be a list")
                if len(inst) > limits.max_batch_size:
                    raise ServingError("INVALID_ARGUMENT", _batch_message(
                        "instances", len(inst), limits))
                if inst and all(isinstance(i, dict) for i in inst):
                    inputs = {k: [i.get(k) for i in inst] for k in inst[0]}
                else:
                    inputs = inst
            else:
                inputs = body["inputs"]
                for k, v in (inputs.items() if isinstance(inputs, dict) else [("inputs", inputs)]):
                    if _rows(v) > limits.max_batch_size:
                        raise ServingError("INVALID_ARGUMENT", _batch_message(k, _rows(v), limits))
            _, _, outs = server.predict(name, version, sig, inputs, "rest")
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


# The TensorProto field that carries each numeric dtype's values (tensor_content aside).
_VALUE_FIELDS = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_HALF": "half_val",
                 "DT_BFLOAT16": "half_val", "DT_INT8": "int_val", "DT_INT16": "int_val",
                 "DT_INT32": "int_val", "DT_UINT8": "int_val", "DT_UINT16": "int_val",
                 "DT_INT64": "int64_val", "DT_UINT32": "uint32_val", "DT_UINT64": "uint64_val",
                 "DT_BOOL": "bool_val"}


def check_tensor_proto(key: str, proto, limits: ServerLimits) -> None:
    """Check a request TensorProto against its content and the limits, before decoding it.

    `tf.make_ndarray` allocates the declared shape whatever the content (no values: zeros; one
    value: repeated), so the declared element count must equal the values sent (or
    tensor_content's byte length), the dtype must be numeric and the batch within bounds.
    """
    from tensorflow.core.framework import types_pb2

    dtype = types_pb2.DataType.Name(proto.dtype) if proto.dtype in \
        types_pb2.DataType.values() else str(proto.dtype)
    field = _VALUE_FIELDS.get(dtype)
    if field is None:
        raise ServingError("INVALID_ARGUMENT", f"input {key!r} has dtype {dtype}; expected a "
                           "numeric tensor")
    if proto.tensor_shape.unknown_rank:
        raise ServingError("INVALID_ARGUMENT", f"input {key!r} has no shape")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(s < 0 for s in shape) or len(shape) > 32:
        raise ServingError("INVALID_ARGUMENT", f"input {key!r} declares an invalid shape "
                           f"{shape[:8]}")
    if shape and shape[0] > limits.max_batch_size:
        raise ServingError("INVALID_ARGUMENT", _batch_message(key, shape[0], limits))
    n = 1
    for s in shape:
        n *= s
    import tensorflow as tf

    itemsize = tf.dtypes.as_dtype(proto.dtype).size
    if proto.tensor_content:
        sent, want, unit = len(proto.tensor_content), n * itemsize, "bytes of tensor_content"
    else:
        sent, want, unit = len(getattr(proto, field)), n, f"values in {field}"
    if sent != want:
        raise ServingError("INVALID_ARGUMENT", f"input {key!r} declares shape {shape[:8]} "
                           f"({want} {unit}) but carries {sent}")


def _grpc_server(server: ModelServer, port: int):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    limits = server.limits

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            code = None
            try:
                inputs = {}
                for k, v in request.inputs.items():
                    check_tensor_proto(k, v, limits)
                    inputs[k] = tf.make_ndarray(v)
                version, sig_name, outs = server.predict(spec.name, version,
                                                         spec.signature_name, inputs, "grpc")
            except ServingError as e:
                code, msg = getattr(grpc.StatusCode, e.code, grpc.StatusCode.INTERNAL), str(e)
            except (TypeError, ValueError) as e:
                code, msg = grpc.StatusCode.INVALID_ARGUMENT, f"bad input tensor: {e}"
            except MemoryError:
                code, msg = grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory for this request"
            if code is not None:
                context.abort(code, msg)
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

    # A message over max_request_bytes is refused by gRPC itself (RESOURCE_EXHAUSTED) before it
    # is parsed; RPCs beyond listen_backlog waiting for a thread are refused the same way.
    g = grpc.server(futures.ThreadPoolExecutor(max_workers=limits.grpc_max_threads,
                                               thread_name_prefix="tfminv-grpc"),
                    maximum_concurrent_rpcs=limits.grpc_max_threads + limits.listen_backlog,
                    options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                             ("grpc.max_receive_message_length", limits.max_request_bytes)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), g)
    server.grpc_port = g.add_insecure_port(f"{server.host}:{port}")
    if not server.grpc_port:
        raise ConfigError(f"cannot bind gRPC to {server.host}:{port}")
    g.start()
    return g


def main(argv):
    from absl import flags

    F = flags.FLAGS
    models = {}
    if F.model_name or F.model_base_path:
        if not (F.model_name and F.model_base_path):
            raise ConfigError("--model_name and --model_base_path go together")
        models[F.model_name] = Path(F.model_base_path)
    limits = ServerLimits(
        max_request_bytes=F.max_request_bytes, max_batch_size=F.max_batch_size,
        rest_api_num_threads=F.rest_api_num_threads, grpc_max_threads=F.grpc_max_threads,
        listen_backlog=F.listen_backlog, rest_api_timeout_s=F.rest_api_timeout_in_ms / 1000)
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
    d = ServerLimits()
    flags.DEFINE_integer("max_request_bytes", d.max_request_bytes,
                         "Largest REST body / gRPC message accepted (413 / RESOURCE_EXHAUSTED).")
    flags.DEFINE_integer("max_batch_size", d.max_batch_size,
                         "Most rows per input tensor in one request (400 / INVALID_ARGUMENT).")
    flags.DEFINE_integer("rest_api_num_threads", d.rest_api_num_threads,
                         "REST worker threads (connections beyond wait for one).")
    flags.DEFINE_integer("grpc_max_threads", d.grpc_max_threads, "gRPC worker threads.")
    flags.DEFINE_integer("listen_backlog", d.listen_backlog,
                         "REST listen backlog, and connections / RPCs that may wait for a thread.")
    flags.DEFINE_integer("rest_api_timeout_in_ms", int(d.rest_api_timeout_s * 1000),
                         "A REST connection idle or stalled this long is closed.")

    from tfminv import cli

    cli.run(main)


if __name__ == "__main__":
    run()
