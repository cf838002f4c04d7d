"""TF Serving's gRPC PredictionService for the serving stand-in (tensorflow-serving-api's own
protos and stubs): `PredictionServicer.Predict` and `grpc_server`, which binds it.

Every request TensorProto is checked against its own content and the limits before it is
decoded (`check_tensor_proto`); error details are cut to `limits.MAX_ERROR_CHARS` (they travel
in a trailing header the peer refuses above its metadata limit). TensorFlow and grpc are
imported only when a server starts.
"""

from __future__ import annotations

from concurrent import futures

from tfminv.errors import ConfigError
from tfminv.serving.limits import ServerLimits, ServingError, batch_message, names, short

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
        raise ServingError("INVALID_ARGUMENT", batch_message(key, shape[0], limits))
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


class PredictionServicer:
    """`PredictionService.Predict` over a ModelServer's models; `grpc_server` registers it
    mixed into tensorflow-serving-api's servicer base (whose other RPCs answer UNIMPLEMENTED),
    so importing this module needs neither grpc nor TensorFlow."""

    def __init__(self, model_server):
        self.model_server = model_server

    def Predict(self, request, context):  # noqa: N802 - the RPC's name
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        limits = self.model_server.limits
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        code = None
        try:
            inputs = {}
            for k, v in request.inputs.items():
                check_tensor_proto(k, v, limits)
                inputs[k] = tf.make_ndarray(v)
            version, sig_name, outs = self.model_server.predict(
                spec.name, version, spec.signature_name, inputs, "grpc")
        except ServingError as e:
            code, msg = getattr(grpc.StatusCode, e.code, grpc.StatusCode.INTERNAL), str(e)
        except (TypeError, ValueError) as e:
            code, msg = grpc.StatusCode.INVALID_ARGUMENT, f"bad input tensor: {e}"
        except MemoryError:
            code, msg = grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory for this request"
        if code is not None:
            context.abort(code, short(msg))
        resp = predict_pb2.PredictResponse()
        resp.model_spec.name = spec.name
        resp.model_spec.version.value = version
        resp.model_spec.signature_name = sig_name
        wanted = set(request.output_filter) or set(outs)
        missing = wanted - set(outs)
        if missing:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          short(f"outputs {names(missing)} not found (has {names(outs)})"))
        for k in wanted:
            resp.outputs[k].CopyFrom(tf.make_tensor_proto(outs[k]))
        return resp


def grpc_server(model_server, port: int):
    """Start gRPC for `model_server` on its host and `port` (0: ephemeral); sets its
    `grpc_port` and returns the grpc.Server."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfminv.oracles.grpc import MAX_MESSAGE_BYTES

    limits = model_server.limits
    # A message over max_request_bytes is refused by gRPC itself (RESOURCE_EXHAUSTED) before it
    # is parsed; RPCs beyond listen_backlog waiting for a thread are refused the same way.
    g = grpc.server(futures.ThreadPoolExecutor(max_workers=limits.grpc_max_threads,
                                               thread_name_prefix="tfminv-grpc"),
                    maximum_concurrent_rpcs=limits.grpc_max_threads + limits.listen_backlog,
                    options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                             ("grpc.max_receive_message_length", limits.max_request_bytes)])
    servicer = type("Servicer", (PredictionServicer,
                                 prediction_service_pb2_grpc.PredictionServiceServicer), {})
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        servicer(model_server), g)
    model_server.grpc_port = g.add_insecure_port(f"{model_server.host}:{port}")
    if not model_server.grpc_port:
        raise ConfigError(f"cannot bind gRPC to {model_server.host}:{port}")
    g.start()
    return g
