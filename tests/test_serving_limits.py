"""The TF-Serving-protocol server under hostile and concurrent load, on 127.0.0.1 only.

Every hostile request gets a 4xx answer (JSON for REST, a status code for gRPC) without the
server materialising what the request declares, concurrent clients are all answered, and a
normal request still works afterwards. Bounded: a few hundred small requests, each client
thread joined with a timeout.
"""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow_serving")

import grpc  # noqa: E402
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from tfminv import export  # noqa: E402
from tfminv.errors import ConfigError  # noqa: E402
from tfminv.models import build_classifier  # noqa: E402
from tfminv.serving import ModelServer, ServerLimits  # noqa: E402

SIZE, M = 32, 10
LIMITS = dict(max_request_bytes=256 * 1024, max_batch_size=8, rest_api_num_threads=4,
              grpc_max_threads=4, listen_backlog=64, rest_api_timeout_s=10.0)
PREDICT = "/v1/models/target:predict"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(0)
    clf = build_classifier(M, SIZE, width=0.0625, name="target")
    base = tmp_path_factory.mktemp("limits")
    export.export_classifier(clf, base, "target")
    srv = ModelServer({"target": base / "target"}, limits=ServerLimits(**LIMITS)).start()
    x = np.random.default_rng(0).random((4, SIZE, SIZE, 1), dtype=np.float32)
    want = keras.ops.convert_to_numpy(keras.ops.softmax(clf(x, training=False)))
    yield dict(srv=srv, x=x, want=want, base=base)
    srv.stop()


def rss_mb() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def post(port, body: bytes, headers=None, path=PREDICT, timeout=20):
    """(status, decoded JSON) of one POST on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.putrequest("POST", path, skip_accept_encoding=True)
        hdrs = {"Content-Length": str(len(body)), **(headers or {})}
        for k, v in hdrs.items():
            if v is not None:
                c.putheader(k, v)
        c.endheaders()
        c.send(body)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def raw_exchange(port, data: bytes, timeout=20) -> bytes:
    """Send raw bytes, read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def ok_body(x):
    return json.dumps({"instances": x.tolist()}).encode()


def test_limits_are_validated():
    with pytest.raises(ConfigError, match="max_batch_size=0"):
        ServerLimits(max_batch_size=0)
    with pytest.raises(ConfigError, match="rest_api_timeout_s"):
        ServerLimits(rest_api_timeout_s=-1)


def test_hostile_rest_bodies_get_json_4xx(served):
    srv, x = served["srv"], served["x"]
    port = srv.rest_port
    one = x[:1].tolist()
    cases = [
        # (body, extra headers, status, error substring)
        (ok_body(np.zeros((9, SIZE, SIZE, 1))), {}, 400, "max_batch_size of 8"),
        (json.dumps({"inputs": {"images": np.zeros((9, SIZE, SIZE, 1)).tolist()}}).encode(), {},
         400, "batch of 9 rows"),
        (b" " * (300 * 1024), {}, 413, "max_request_bytes of 262144"),
        (b"{}", {"Content-Length": str(10**12)}, 413, "1000000000000 bytes"),
        (b"{}", {"Content-Length": "abc"}, 400, "not a byte count"),
        (b"{}", {"Content-Length": "-5"}, 400, "not a byte count"),
        (b"{}", {"Content-Length": "\u00b2"}, 400, "not a byte count"),
        (b"{}", {"Content-Length": "9" * 5000}, 400, "not a byte count"),
        (b"{}", {"Content-Length": None}, 411, "Content-Length required"),
        (json.dumps({"signature_name": ["x"], "instances": one}).encode(), {}, 400,
         "'signature_name' must be a string, got list"),
        (json.dumps({"signature_name": {"a": 1}, "instances": one}).encode(), {}, 400,
         "got dict"),
        (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}, 400,
         "nested too deeply"),
        (b"[1, 2]", {}, 400, "not a JSON object"),
        (b"\xff\xfe{", {}, 400, "JSON Parse error"),
        (b'{"instances": "abc"}', {}, 400, "must be a list"),
        (b'{"instances": [["a", "b"]]}', {}, 400, "not a numeric tensor"),
        (b'{"inputs": 5}', {}, 400, "has shape ()"),
        (b'{"inputs": {"nope": [1]}}', {}, 400, "do not match"),
        (b'{"instances": [{"images": 1}, 2]}', {}, 400, "images"),
        (json.dumps({"instances": np.full((1, SIZE, SIZE, 1), np.nan).tolist()}).encode(), {},
         400, "NaN or infinite"),
        (b'{"instances": [' + json.dumps(np.zeros((SIZE, SIZE, 1)).tolist())
         .replace("0.0", "Infinity", 1).encode() + b"]}", {}, 400, "NaN or infinite"),
    ]
    for body, headers, status, needle in cases:
        got, answer = post(port, body, headers)
        assert (got, needle in answer.get("error", "")) == (status, True), (body[:60], answer)
    assert post(port, ok_body(x[:1]),
                path="/v1/models/target/versions/" + "9" * 5000 + ":predict")[0] == 404
    # the standard library's own errors come back as JSON too
    out = raw_exchange(port, b"BREW /v1/models/target HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501") and b'"error"' in out
    out = raw_exchange(port, b"garbage\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b'"error"' in out
    out = raw_exchange(port, b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 411") and b"chunked" in out
    # and the server still answers a normal request correctly
    status, answer = post(port, ok_body(x))
    assert status == 200
    np.testing.assert_allclose(answer["predictions"], served["want"], rtol=1e-5, atol=1e-6)


def tensor(shape, dtype=types_pb2.DT_FLOAT, **fields):
    t = tensor_pb2.TensorProto(dtype=dtype)
    t.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in shape]))
    for k, v in fields.items():
        if isinstance(v, bytes):
            setattr(t, k, v)
        else:
            getattr(t, k).extend(v)
    return t


def grpc_predict(port, t, timeout=20):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "target"
    req.inputs["images"].CopyFrom(t)
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_send_message_length", 8 * 2**20)]) as ch:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        try:
            resp = stub.Predict(req, timeout=timeout)
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, tf_array(resp.outputs["probabilities"])


def tf_array(proto):
    import tensorflow as tf

    return tf.make_ndarray(proto)


def test_hostile_grpc_tensors_are_refused_before_decoding(served):
    srv, x = served["srv"], served["x"]
    port = srv.grpc_port
    one = x[:1]
    before = rss_mb()
    cases = [
        # a ~40-byte request declaring 20 GB: refused on its declared batch, nothing allocated
        (tensor([10**9, 5]), grpc.StatusCode.INVALID_ARGUMENT, "max_batch_size of 8"),
        (tensor([10**9, 5], float_val=[0.5]), grpc.StatusCode.INVALID_ARGUMENT, "batch of"),
        # within the batch limit, declared elements must match the content
        (tensor([4, 4096, 4096, 1]), grpc.StatusCode.INVALID_ARGUMENT, "carries 0"),
        (tensor([2, SIZE, SIZE, 1], float_val=[0.5]), grpc.StatusCode.INVALID_ARGUMENT,
         "carries 1"),
        (tensor([2, SIZE, SIZE, 1], tensor_content=one.tobytes()),
         grpc.StatusCode.INVALID_ARGUMENT, "carries 4096"),
        (tensor([1, SIZE, SIZE, 1], types_pb2.DT_STRING, string_val=[b"x"]),
         grpc.StatusCode.INVALID_ARGUMENT, "DT_STRING"),
        (tensor([1, SIZE, SIZE, 1], tensor_content=np.full(SIZE * SIZE, np.nan, np.float32)
                .tobytes()), grpc.StatusCode.INVALID_ARGUMENT, "NaN or infinite"),
        (tensor([1, SIZE, SIZE, 1], types_pb2.DT_DOUBLE,
                double_val=[np.inf] * (SIZE * SIZE)), grpc.StatusCode.INVALID_ARGUMENT,
         "NaN or infinite"),
        (tensor([1, SIZE, 5]), grpc.StatusCode.INVALID_ARGUMENT, "carries 0"),
        (tensor([9, SIZE, SIZE, 1], tensor_content=np.zeros((9, SIZE, SIZE, 1), np.float32)
                .tobytes()), grpc.StatusCode.INVALID_ARGUMENT, "max_batch_size"),
        # a message over max_request_bytes is refused by gRPC before it is parsed
        (tensor([1, 300 * 1024], types_pb2.DT_UINT8, tensor_content=bytes(300 * 1024)),
         grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    ]
    for t, code, needle in cases:
        got, details = grpc_predict(port, t)
        assert got == code and needle in details, (t.tensor_shape, got, details)
    assert rss_mb() - before < 200  # nothing the size of a declared shape was allocated
    got, probs = grpc_predict(port, tensor([4, SIZE, SIZE, 1], tensor_content=x.tobytes()))
    assert got == grpc.StatusCode.OK
    np.testing.assert_allclose(probs, served["want"], rtol=1e-5, atol=1e-6)


def test_concurrent_clients_and_hostile_load(served):
    """32 REST clients on fresh connections, 8 gRPC clients and 4 hostile clients at once,
    against 4 REST and 4 gRPC worker threads: every request is answered, none reset."""
    srv, x, want = served["srv"], served["x"], served["want"]
    results, errors = [], []
    lock = threading.Lock()
    body = ok_body(x)

    def rest_client():
        for _ in range(6):
            status, answer = post(srv.rest_port, body)
            ok = status == 200 and np.allclose(answer["predictions"], want, rtol=1e-5,
                                               atol=1e-6)
            with lock:
                results.append(("rest", ok))

    def grpc_client():
        for _ in range(6):
            code, probs = grpc_predict(srv.grpc_port, tensor([4, SIZE, SIZE, 1],
                                                             tensor_content=x.tobytes()))
            with lock:
                results.append(("grpc", code == grpc.StatusCode.OK
                                and np.allclose(probs, want, rtol=1e-5, atol=1e-6)))

    def hostile_client(i):
        for _ in range(3):
            if i % 2:
                status, _ = post(srv.rest_port, b" " * (400 * 1024))
                ok = status == 413
            else:
                code, _ = grpc_predict(srv.grpc_port, tensor([10**9, 5]))
                ok = code == grpc.StatusCode.INVALID_ARGUMENT
            with lock:
                results.append(("hostile", ok))

    def guard(fn, *a):
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - a reset or timeout is the failure we count
            with lock:
                errors.append(f"{fn.__name__}: {type(e).__name__}: {e}")

    threads = ([threading.Thread(target=guard, args=(rest_client,)) for _ in range(32)]
               + [threading.Thread(target=guard, args=(grpc_client,)) for _ in range(8)]
               + [threading.Thread(target=guard, args=(hostile_client, i)) for i in range(4)])
    deadline = time.monotonic() + 120
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "clients still waiting after 120 s"
    assert errors == []
    assert len(results) == 32 * 6 + 8 * 6 + 4 * 3
    assert all(ok for _, ok in results), [r for r in results if not r[1]][:5]
    status, answer = post(srv.rest_port, body)
    assert status == 200 and np.allclose(answer["predictions"], want, rtol=1e-5, atol=1e-6)


def test_idle_keepalive_connections_do_not_starve_new_ones(served):
    """Hold more idle keep-alive connections than there are REST threads: a new client is
    still answered at once (a held thread gives its connection up when others wait)."""
    srv, x = served["srv"], served["x"]
    body = ok_body(x[:1])
    held = [http.client.HTTPConnection("127.0.0.1", srv.rest_port, timeout=20)
            for _ in range(LIMITS["rest_api_num_threads"] + 2)]
    try:
        for c in held:
            c.request("POST", PREDICT, body)
            r = c.getresponse()
            assert r.status == 200
            r.read()
        t0 = time.monotonic()
        status, _ = post(srv.rest_port, body)
        assert status == 200
        assert time.monotonic() - t0 < LIMITS["rest_api_timeout_s"] / 2
    finally:
        for c in held:
            c.close()


def test_pipelined_requests_are_all_answered(served):
    """Small requests sent back to back on one connection (the later ones land in the server's
    read buffer, where select() does not see them): all answered, without waiting for the
    keep-alive idle timeout."""
    srv = served["srv"]
    bad = b'{"inputs": 5}'
    post_req = (b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: "
                + str(len(bad)).encode() + b"\r\n\r\n" + bad)
    get_req = b"GET /v1/models/target HTTP/1.1\r\nHost: x\r\n\r\n"
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.rest_port), timeout=20) as s:
        s.sendall(post_req + get_req + post_req)
        f = s.makefile("rb")
        for want in (b"HTTP/1.1 400", b"HTTP/1.1 200", b"HTTP/1.1 400"):
            status = f.readline()
            headers = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            assert status.startswith(want), status
            assert "error" in json.loads(f.read(int(headers["content-length"]))) or \
                want.endswith(b"200")
    assert time.monotonic() - t0 < LIMITS["rest_api_timeout_s"] / 2


def test_stop_ends_stalled_connections(served):
    """A client that stalls mid-body holds a worker until the socket timeout (60 s here); stop()
    ends it at once, so no worker thread outlives the server (they would hold the interpreter's
    exit)."""
    srv = ModelServer({"target": served["base"] / "target"}, grpc=False,
                      limits=ServerLimits(**{**LIMITS, "rest_api_timeout_s": 60.0})).start()
    httpd = srv._http
    with socket.create_connection(("127.0.0.1", srv.rest_port), timeout=10) as s:
        s.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 100\r\n\r\n{")
        time.sleep(0.3)
        srv.stop()
        workers = list(httpd._pool._threads)
        assert workers
        for t in workers:
            t.join(timeout=5)
        assert not any(t.is_alive() for t in workers)


def test_server_binary_rejects_bad_limits_in_one_line(served):
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tfminv.serving.testing_server",
                          "--model_name=target", f"--model_base_path={served['base'] / 'target'}",
                          "--port=0", "--rest_api_port=0", "--max_batch_size=0"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 2, out.stderr[-2000:]
    assert "max_batch_size=0: expected a number > 0" in out.stderr
    assert "Traceback" not in out.stderr


def test_slowloris_clients_cannot_hold_the_rest_threads(served):
    """Slow clients (one header line, or one body byte, every 0.3 s) on three times as many
    connections as there are REST threads: legitimate requests are still answered within a few
    seconds, and each slow client is ended (408) at its deadline. Bounded: 6 slow sockets for
    at most 12 s, deadlines lowered to 3 s."""
    limits = ServerLimits(**{**LIMITS, "rest_api_num_threads": 2, "rest_header_timeout_s": 3.0,
                             "rest_body_timeout_s": 3.0, "rest_busy_grace_s": 0.5})
    srv = ModelServer({"target": served["base"] / "target"}, grpc=False, limits=limits).start()
    slow, answers = [], {}
    stop = threading.Event()
    try:
        for i in range(6):
            s = socket.create_connection(("127.0.0.1", srv.rest_port), timeout=10)
            s.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                      + (b"Content-Length: 1000\r\n\r\n{" if i % 2 else b""))
            slow.append(s)

        def drip():
            deadline = time.monotonic() + 12
            while not stop.is_set() and len(answers) < len(slow) and \
                    time.monotonic() < deadline:
                for i, s in enumerate(slow):
                    if i in answers:
                        continue
                    try:
                        if select.select([s], [], [], 0)[0]:  # answered or closed: stop sending
                            answers[i] = s.recv(65536)
                        else:
                            s.send(b" " if i % 2 else b"X-Slow: 1\r\n")
                    except OSError as e:
                        answers[i] = repr(e).encode()
                stop.wait(0.3)

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        time.sleep(0.5)  # both threads now serve slow clients, four more wait
        body = ok_body(served["x"][:1])
        for _ in range(3):
            t0 = time.monotonic()
            status, _ = post(srv.rest_port, body, timeout=10)
            assert status == 200 and time.monotonic() - t0 < 5.0
        dripper.join(timeout=15)
        assert not dripper.is_alive()
        assert sorted(answers) == list(range(6)), "a slow client was held past its deadline"
        statuses = [a.split(b"\r\n")[0] for a in answers.values()]
        assert all(b" 408 " in st or not st or st.startswith(b"Connection") for st in statuses)
        assert sum(b" 408 " in st for st in statuses) >= 3, statuses
    finally:
        stop.set()
        for s in slow:
            s.close()
        srv.stop()


def test_grpc_error_for_50k_input_keys_fits_its_status_header(served):
    """A request naming 50,000 inputs is refused with INVALID_ARGUMENT and a short message (the
    full list of keys would not fit gRPC's status header, and the client saw another error)."""
    srv = ModelServer({"target": served["base"] / "target"}, rest=False).start()
    try:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "target"
        for i in range(50_000):
            req.inputs[f"k{i:05d}"].CopyFrom(tensor([1], float_val=[0.5]))
        with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}", options=[
                ("grpc.max_send_message_length", 8 * 2**20)]) as ch:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
            with pytest.raises(grpc.RpcError) as e:
                stub.Predict(req, timeout=60)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()[:300]
        details = e.value.details()
        assert len(details) <= 1024 and "(50000 in all)" in details and "'images'" in details
    finally:
        srv.stop()
