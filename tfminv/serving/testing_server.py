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
before it is converted; a REST request that does not arrive within its header or body deadline,
or is still arriving while other connections wait for a thread, is answered 408 (slow clients
cannot hold every thread); a gRPC TensorProto's declared shape must match its content and the
limits before it is decoded (a 40-byte proto declaring [1e9, 5] would otherwise decode to 20 GB);
NaN/Inf inputs are refused; every malformed request gets a 4xx JSON error, never a dropped
connection, and error details are cut short enough for a gRPC status header. REST connections
are served by a bounded thread pool behind a listen backlog (the standard library's default
backlog of 5 reset connections under 20 concurrent clients).

The parts, by the reason they change: `limits` (ServerLimits, ServingError), `rest` (the REST
server and its module-level handler), `grpc` (the servicer and TensorProto checks), `server`
(ModelServer, the binary). This module keeps the public names where they have always been.
"""

from tfminv.serving.grpc import check_tensor_proto, grpc_server
from tfminv.serving.limits import ServerLimits, ServingError
from tfminv.serving.rest import RestHandler, RestServer
from tfminv.serving.server import ModelServer, main, run

__all__ = ["ModelServer", "ServerLimits", "ServingError", "check_tensor_proto", "RestServer",
           "RestHandler", "grpc_server", "main", "run"]

if __name__ == "__main__":
    run()
