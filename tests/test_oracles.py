"""Oracles against local fake servers: protocol, retries with backoff, timeouts, bad answers."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tfminv.errors import BudgetExceeded, ConfigError, OracleError
from tfminv.oracles import (CallableOracle, RetryPolicy, TransientOracleError, from_spec,
                            parse_spec)
from tfminv.oracles.http_json import HttpJsonOracle, Schema, get_path, parse_path, register_adapter
from tfminv.oracles.rest import RestOracle, parse_model_url

M = 3


def probs_for(images):
    """A deterministic 'model': softmax of three image statistics."""
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    z = np.stack([x.mean(1), x.std(1), x.max(1)], 1) * 5
    e = np.exp(z - z.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


class FakeServer:
    """A scripted HTTP server on 127.0.0.1:ephemeral. Each POST pops the next action.

    An action is a callable(body) -> (status, bytes) or a tuple (status, bytes[, delay_s]);
    when the script runs out, `default` answers.
    """

    def __init__(self, default):
        self.script, self.default, self.requests = [], default, []
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.requests.append((self.path, json.loads(body)))
                action = fake.script.pop(0) if fake.script else fake.default
                if callable(action):
                    action = action(json.loads(body))
                status, data = action[0], action[1]
                if len(action) > 2:
                    time.sleep(action[2])
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path="/v1/models/target"):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def tf_serving_answer(body):
    imgs = np.asarray(body["instances"], np.float32)
    return 200, json.dumps({"predictions": probs_for(imgs).tolist()}).encode()


@pytest.fixture
def server():
    s = FakeServer(tf_serving_answer)
    yield s
    s.close()


@pytest.fixture
def images():
    return np.random.default_rng(0).random((5, 4, 4, 1), dtype=np.float32)


class Sleeps(list):
    def __call__(self, s):
        self.append(s)


def rest(server, retries=3, timeout=5.0, **kw):
    sleeps = Sleeps()
    o = RestOracle(server.url(), timeout=timeout,
                   retry=RetryPolicy(retries=retries, backoff=0.01, jitter=0.0, sleep=sleeps), **kw)
    return o, sleeps


def test_rest_oracle_batches_and_counts(server, images):
    o, _ = rest(server, batch_size=2)
    out = o(images)
    np.testing.assert_allclose(out, probs_for(images), rtol=1e-6)
    assert o.num_queries == 5 and o.output_dim == M
    assert len(server.requests) == 3  # 2 + 2 + 1
    path, body = server.requests[0]
    assert path == "/v1/models/target:predict"
    assert np.asarray(body["instances"]).shape == (2, 4, 4, 1)


def test_rest_columnar_and_signature(server, images):
    server.default = lambda b: (200, json.dumps(
        {"outputs": {"probabilities": probs_for(np.asarray(b["inputs"]["images"])).tolist(),
                     "logits": [[0.0] * M] * len(b["inputs"]["images"])}}).encode())
    o, _ = rest(server, request_format="inputs", input_key="images", signature_name="sig")
    np.testing.assert_allclose(o(images), probs_for(images), rtol=1e-6)
    assert server.requests[0][1]["signature_name"] == "sig"


def test_http_500_then_success_is_retried_with_backoff(server, images):
    server.script = [(500, b'{"error": "overloaded"}'), (503, b"busy")]
    o, sleeps = rest(server)
    np.testing.assert_allclose(o(images), probs_for(images), rtol=1e-6)
    assert len(server.requests) == 3
    assert sleeps == [pytest.approx(0.01), pytest.approx(0.02)]  # exponential
    assert o.num_queries == 5


def test_persistent_500_gives_up_after_bounded_retries(server, images):
    server.default = (500, b'{"error": "boom"}')
    o, sleeps = rest(server, retries=2)
    with pytest.raises(TransientOracleError, match=r"giving up after 3 attempt.*HTTP 500.*boom"):
        o(images)
    assert len(server.requests) == 3 and len(sleeps) == 2
    assert o.num_queries == 0


def test_http_4xx_is_not_retried(server, images):
    server.default = (400, b'{"error": "input size mismatch"}')
    o, sleeps = rest(server)
    with pytest.raises(OracleError, match=r"HTTP 400.*input size mismatch") as e:
        o(images)
    assert not isinstance(e.value, TransientOracleError)
    assert len(server.requests) == 1 and sleeps == []


@pytest.mark.parametrize("answer, pattern", [
    (b"<html>oops</html>", "not JSON"),
    (b'{"result": [1, 2, 3]}', "neither 'predictions' nor 'outputs'"),
    (b'{"predictions": "abc"}', "not a list"),
    (b'{"predictions": [[0.1, 0.2], [0.3]]}', "ragged|numeric"),
    (b'[1, 2]', "JSON object"),
])
def test_malformed_answers_raise_clearly(server, images, answer, pattern):
    server.default = (200, answer)
    o, _ = rest(server)
    with pytest.raises(OracleError, match=pattern):
        o(images[:2])
    assert len(server.requests) == 1


def test_wrong_vector_length_and_count(server, images):
    server.default = lambda b: (200, json.dumps(
        {"predictions": [[0.25] * 4] * len(b["instances"])}).encode())
    o, _ = rest(server, output_dim=M)
    with pytest.raises(OracleError, match="expected vectors of length 3, got 4"):
        o(images)
    server.default = (200, json.dumps({"predictions": [[0.5, 0.25, 0.25]]}).encode())
    o, _ = rest(server)
    with pytest.raises(OracleError, match="expected 5 prediction vectors"):
        o(images)


def test_nan_in_answer(server, images):
    server.default = lambda b: (200, json.dumps(
        {"predictions": [[float("nan"), 0.5, 0.5]] * len(b["instances"])}).encode())
    o, _ = rest(server)
    with pytest.raises(OracleError, match="NaN"):
        o(images)
    assert o.num_queries == 0


def test_hanging_server_times_out_with_bounded_retries(server, images):
    server.default = (200, b'{"predictions": []}', 3.0)
    o, sleeps = rest(server, retries=1, timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(TransientOracleError, match=r"giving up after 2 attempt.*within 0.3s"):
        o(images[:1])
    assert time.monotonic() - t0 < 2.5  # not the server's 3 s
    assert len(server.requests) == 2


def test_connection_refused_is_transient():
    s = FakeServer((200, b"{}"))
    url = s.url()
    s.close()
    o = RestOracle(url, timeout=1, retry=RetryPolicy(retries=1, backoff=0, sleep=Sleeps()))
    with pytest.raises(TransientOracleError, match="cannot reach|connection"):
        o(np.zeros((1, 2, 2, 1), np.float32))


def test_failing_oracle_leaves_no_cache_entry(server, images, tmp_path):
    predictions = pytest.importorskip("tfminv.attacks.predictions")
    calls = {"n": 0}

    def second_batch_fails(body):
        calls["n"] += 1
        return (500, b"down") if calls["n"] >= 2 else tf_serving_answer(body)

    server.default = second_batch_fails
    o, _ = rest(server, retries=1, batch_size=2)
    with pytest.raises(OracleError):
        predictions.query_cached(o, images, cache_dir=tmp_path)
    assert predictions.cached_files(tmp_path) == []
    assert not list(tmp_path.rglob("*.npy"))
    server.default = tf_serving_answer
    got = predictions.query_cached(o, images, cache_dir=tmp_path)
    np.testing.assert_allclose(got, probs_for(images), rtol=1e-6)
    assert len(predictions.cached_files(tmp_path)) == 1


def test_budget_and_batching_base():
    o = CallableOracle(probs_for, batch_size=2, budget=4)
    o(np.zeros((3, 2, 2, 1)))
    with pytest.raises(BudgetExceeded, match="budget 4"):
        o(np.zeros((2, 2, 2, 1)))
    assert o.num_queries == 3


def test_retry_policy_backoff_is_capped():
    p = RetryPolicy(retries=5, backoff=1.0, factor=3.0, max_backoff=5.0, jitter=0.0)
    assert [p.delay(i) for i in range(4)] == [1.0, 3.0, 5.0, 5.0]
    with pytest.raises(ConfigError):
        RetryPolicy(retries=-1)


# -- specs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["", "foo:bar", "rest:", "http://x", "keras"])
def test_bad_specs_name_the_forms(spec):
    with pytest.raises(ConfigError, match="expected one of keras:"):
        parse_spec(spec)


def test_spec_errors_name_the_value(tmp_path):
    with pytest.raises(ConfigError, match="v1/models/NAME"):
        from_spec("rest:http://localhost:8501/models/x")
    with pytest.raises(ConfigError, match="HOST:PORT/NAME"):
        from_spec("grpc:localhost/x")
    with pytest.raises(ConfigError, match="missing.keras is not an existing .keras"):
        from_spec(f"keras:{tmp_path}/missing.keras")
    with pytest.raises(ConfigError, match="no saved_model.pb"):
        from_spec(f"savedmodel:{tmp_path}")
    with pytest.raises(ConfigError, match="neither a .json schema file nor a registered"):
        from_spec("http-json:http://127.0.0.1:1/api#nope")


def test_parse_model_url():
    assert parse_model_url("http://h:8501/v1/models/clf/versions/3") == ("http://h:8501", "clf", 3, None)
    assert parse_model_url("https://h/v1/models/clf") == ("https://h", "clf", None, None)


def test_rest_from_spec_passes_timeout_and_budget(server, images):
    o = from_spec("rest:" + server.url(), timeout=2, retries=0, budget=10, batch_size=3)
    assert (o.timeout, o.retry.retries, o.budget, o.batch_size) == (2.0, 0, 10, 3)
    np.testing.assert_allclose(o(images), probs_for(images), rtol=1e-6)


def test_keras_spec_applies_softmax_to_logits(tmp_path, images):
    import keras

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(M)])
    model.save(tmp_path / "t.keras")
    o = from_spec(f"keras:{tmp_path / 't.keras'}")
    p = o(images)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    logits = keras.ops.convert_to_numpy(model(images))
    np.testing.assert_allclose(np.log(p) - np.log(p[:, :1]), logits - logits[:, :1], atol=1e-4)
    assert o.identity().startswith("keras:")


# -- generic HTTP JSON ---------------------------------------------------------------------

LABELS = ("cat", "dog", "owl")


def labels_api(body):
    """A cloud-vision-like API: one PNG per request, labels with confidences in percent."""
    import cv2

    png = base64.b64decode(body["Image"]["Bytes"])
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    p = probs_for(img[None, ..., None] / 255.0)[0]
    labels = [{"Name": n, "Confidence": float(c) * 100} for n, c in zip(LABELS, p)]
    return 200, json.dumps({"Labels": labels[::-1], "Model": "v1"}).encode()


SCHEMA = {
    "request": {"encoding": "png_base64", "template": {"Image": {"Bytes": "$image"}}},
    "response": {"output_dim": 3, "positions": [
        {"path": f"$.Labels[Name={n}].Confidence", "index": i, "scale": 0.01}
        for i, n in enumerate(LABELS)]},
}


def test_json_paths():
    doc = {"a": {"b": [{"t": "x", "v": 1}, {"t": "y", "v": 2}]}}
    assert get_path(doc, parse_path("a.b[1].v")) == 2
    assert get_path(doc, parse_path("$.a.b[t=y].v")) == 2
    assert get_path(doc, parse_path("a.b[t=z].v"), default=0) == 0
    with pytest.raises(KeyError):
        get_path(doc, parse_path("a.c"))


def test_http_json_schema_maps_answer(tmp_path, images):
    s = FakeServer(labels_api)
    try:
        path = tmp_path / "labels.json"
        path.write_text(json.dumps(SCHEMA))
        o = from_spec(f"http-json:{s.url('/detect')}#{path}", retries=0)
        images8 = np.rint(images * 255) / 255  # PNG carries 8 bits
        np.testing.assert_allclose(o(images8), probs_for(images8), rtol=1e-5, atol=1e-6)
        assert o.num_queries == 5 and len(s.requests) == 5  # one request per image
        s.default = (200, json.dumps({"Labels": [{"Name": "cat", "Confidence": 9}]}).encode())
        with pytest.raises(OracleError, match="lacks a field the schema"):
            o(images[:1])
        s.default = (200, json.dumps({"Labels": [{"Name": n, "Confidence": "high"}
                                                 for n in LABELS]}).encode())
        with pytest.raises(OracleError, match="not numeric"):
            o(images[:1])
    finally:
        s.close()


def test_http_json_batch_vector_schema(images):
    s = FakeServer(lambda b: (200, json.dumps({"data": {"results": [
        {"scores": p} for p in probs_for(np.asarray(b["batch"])).tolist()]}}).encode()))
    try:
        schema = {"request": {"batch": True, "encoding": "list", "template": {"batch": "$images"}},
                  "response": {"items": "data.results", "vector": "scores"}}
        o = HttpJsonOracle(s.url("/predict"), schema, batch_size=2,
                           retry=RetryPolicy(retries=0))
        np.testing.assert_allclose(o(images), probs_for(images), rtol=1e-6)
        assert len(s.requests) == 3
    finally:
        s.close()


def test_http_json_callables_and_adapter_registry(images):
    s = FakeServer(lambda b: (200, json.dumps({"v": probs_for(
        np.asarray(b["img"])[None]).tolist()[0]}).encode()))
    try:
        def factory(url, **kw):
            return HttpJsonOracle(url, request_builder=lambda im: {"img": im.tolist()},
                                  response_to_vector=lambda r: r["v"], **kw)

        register_adapter("toy", factory)
        o = from_spec(f"http-json:{s.url('/x')}#toy", retries=0)
        np.testing.assert_allclose(o(images), probs_for(images), rtol=1e-6)
        s.default = (200, b'{"w": 1}')
        with pytest.raises(OracleError, match="cannot map the answer.*KeyError"):
            o(images[:1])
    finally:
        s.close()


def test_schema_validation(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of response.vector"):
        Schema({"response": {}})
    with pytest.raises(ConfigError, match="encoding"):
        Schema({"request": {"encoding": "bmp"}, "response": {"vector": "v"}})
    with pytest.raises(ConfigError, match="response.items"):
        Schema({"request": {"batch": True}, "response": {"vector": "v"}})
    bad = tmp_path / "s.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="s.json: cannot read the JSON schema"):
        Schema.load(bad)
