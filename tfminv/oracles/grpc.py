"""TF Serving's gRPC PredictionService as an oracle, using tensorflow-serving-api's stubs.

`GrpcPredictor` sends one named input tensor and returns one named output (shared with the
inverter client); `GrpcOracle` adapts it to images -> probabilities.
"""

from __future__ import annotations

import re

import numpy as np

from tfminv.errors import ConfigError, OracleError
from tfminv.oracles.base import RemoteOracle, RetryPolicy, TransientOracleError

_TARGET = re.compile(r"^([^/]+:\d+)/([^/]+)(?:/(\d+))?/?$")

# Status codes worth retrying: the server is (briefly) unavailable or overloaded.
_RETRY_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def parse_target(spec: str) -> tuple[str, str, int | None]:
    """Split `HOST:PORT/NAME[/VERSION]`."""
    m = _TARGET.match(spec.strip())
    if not m:
        raise ConfigError(f"gRPC target {spec!r}: expected HOST:PORT/NAME[/VERSION]")
    hostport, name, version = m.groups()
    return hostport, name, int(version) if version else None


def _serving():
    try:
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError("gRPC targets need tensorflow-serving-api "
                          "(pip install 'tfminv[serving]')") from e
    return grpc, predict_pb2, prediction_service_pb2_grpc


def to_tensor_proto(x: np.ndarray):
    import tensorflow as tf

    return tf.make_tensor_proto(np.ascontiguousarray(x, dtype=np.float32))


def from_tensor_proto(proto) -> np.ndarray:
    import tensorflow as tf

    return tf.make_ndarray(proto)


class GrpcPredictor:
    """Calls `PredictionService.Predict` for one model; `predict(array)` returns one output."""

    def __init__(self, hostport: str, model: str, version: int | None = None, *,
                 input_key: str | None = None, output_key: str | None = None,
                 signature_name: str = "serving_default", timeout: float = 30.0,
                 retry: RetryPolicy | None = None, name: str | None = None):
        grpc, self._predict_pb2, svc = _serving()
        self._grpc = grpc
        self.hostport, self.model, self.version = hostport, model, version
        self.input_key, self.output_key = input_key, output_key
        self.signature_name = signature_name
        self.timeout = float(timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        self.name = name or f"grpc:{hostport}/{model}" + (f"/{version}" if version else "")
        self._channel = grpc.insecure_channel(hostport, options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        self._stub = svc.PredictionServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def request_proto(self, x: np.ndarray, input_key: str):
        req = self._predict_pb2.PredictRequest()
        req.model_spec.name = self.model
        if self.version is not None:
            req.model_spec.version.value = self.version
        req.model_spec.signature_name = self.signature_name
        req.inputs[input_key].CopyFrom(to_tensor_proto(x))
        return req

    def request(self, x: np.ndarray) -> np.ndarray:
        """One attempt (no retries)."""
        input_key = self.input_key or "images"
        try:
            resp = self._stub.Predict(self.request_proto(x, input_key), timeout=self.timeout)
        except self._grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            cname = getattr(code, "name", str(code))
            msg = f"{self.name}: gRPC {cname}: {e.details() if hasattr(e, 'details') else e}"
            if cname in _RETRY_CODES:
                raise TransientOracleError(msg) from None
            raise OracleError(msg) from None
        outputs = dict(resp.outputs)
        if self.output_key is None:
            if len(outputs) != 1:
                raise OracleError(f"{self.name}: signature has outputs {sorted(outputs)}; name one")
            proto = next(iter(outputs.values()))
        elif self.output_key in outputs:
            proto = outputs[self.output_key]
        else:
            raise OracleError(f"{self.name}: output {self.output_key!r} not in answer "
                              f"(has {sorted(outputs)})")
        try:
            return np.asarray(from_tensor_proto(proto), dtype=np.float32)
        except Exception as e:  # noqa: BLE001 - a malformed TensorProto, whatever the cause
            raise OracleError(f"{self.name}: malformed output tensor: {e}") from None

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return self.retry.call(lambda: self.request(x), self.name)


class GrpcOracle(RemoteOracle):
    """A classifier behind TF Serving's gRPC port (default 8500): `grpc:HOST:PORT/NAME[/VERSION]`.

    Answers are read as `outputs` says (default 'probabilities', checked on every batch)."""

    def __init__(self, target: str, *, input_key: str = "images",
                 output_key: str | None = "probabilities",
                 signature_name: str = "serving_default", **kwargs):
        hostport, model, version = parse_target(target)
        kwargs.setdefault("name", f"grpc:{target.rstrip('/')}")
        kwargs.setdefault("batch_size", 256)
        super().__init__(**kwargs)
        self.client = GrpcPredictor(hostport, model, version, input_key=input_key,
                                    output_key=output_key, signature_name=signature_name,
                                    timeout=self.timeout, retry=self.retry, name=self.name)

    def identity(self) -> str:
        return f"{self.name}#{self.client.signature_name}{self._outputs_tag()}"

    def _request(self, images):
        return self.client.request(images)

    def close(self):
        self.client.close()
