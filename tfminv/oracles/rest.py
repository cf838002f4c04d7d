"""TF Serving's REST predict API (`POST /v1/models/NAME[/versions/N]:predict`) as an oracle.

`RestPredictor` speaks the protocol for any signature (arrays in, named arrays out) and is shared
by `RestOracle` (images -> probabilities) and the inverter client in `tfminv.serving`.
Standard library only (urllib), so a remote target costs no TensorFlow import.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request

import numpy as np

from tfminv.errors import ConfigError, OracleError
from tfminv.oracles.base import RemoteOracle, RetryPolicy, TransientOracleError

_MODEL_URL = re.compile(r"^(https?://[^/]+)/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?/?$")

# HTTP statuses worth retrying: the server is overloaded or briefly broken.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def parse_model_url(url: str) -> tuple[str, str, int | None, str | None]:
    """Split `http://HOST:PORT/v1/models/NAME[/versions/N|/labels/L]` into its parts."""
    m = _MODEL_URL.match(url.strip())
    if not m:
        raise ConfigError(
            f"REST target {url!r}: expected http://HOST:PORT/v1/models/NAME[/versions/N] "
            "(TF Serving's model URL, without ':predict')")
    root, name, version, label = m.groups()
    return root, name, int(version) if version else None, label


def post_json(url: str, body, timeout: float, what: str, headers: dict | None = None):
    """POST `body` as JSON and return the decoded JSON answer.

    Raises TransientOracleError for timeouts, refused connections and retryable HTTP statuses,
    OracleError for other HTTP errors and for answers that are not JSON.
    """
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        detail = _error_detail(e)
        msg = f"{what}: HTTP {e.code} from {url}: {detail}"
        if e.code in RETRY_STATUSES:
            raise TransientOracleError(msg) from None
        raise OracleError(msg) from None
    except (TimeoutError, socket.timeout) as e:
        raise TransientOracleError(f"{what}: no answer from {url} within {timeout:g}s") from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, (TimeoutError, socket.timeout)):
            raise TransientOracleError(f"{what}: no answer from {url} within {timeout:g}s") from e
        raise TransientOracleError(f"{what}: cannot reach {url}: {e.reason}") from e
    except (ConnectionError, OSError) as e:  # reset mid-answer, broken pipe, ...
        raise TransientOracleError(f"{what}: connection to {url} failed: {e}") from e
    try:
        return json.loads(raw)
    except ValueError:
        snippet = raw[:200].decode("utf-8", "replace")
        raise OracleError(f"{what}: answer from {url} is not JSON: {snippet!r}") from None


def _error_detail(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read()[:500].decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - best effort only, the status code is the message
        return e.reason or ""
    try:
        return str(json.loads(raw).get("error", raw))
    except (ValueError, AttributeError):
        return raw or str(e.reason)


def decode_outputs(resp, what: str) -> dict[str, np.ndarray] | np.ndarray:
    """Turn a predict answer (row `predictions` or columnar `outputs`) into arrays.

    Returns one array when the signature has a single output, else a dict name -> array.
    """
    if not isinstance(resp, dict):
        raise OracleError(f"{what}: expected a JSON object, got {type(resp).__name__}")
    if "error" in resp:
        raise OracleError(f"{what}: server error: {resp['error']}")
    if "predictions" in resp:
        preds = resp["predictions"]
        if not isinstance(preds, list):
            raise OracleError(f"{what}: 'predictions' is not a list")
        if preds and all(isinstance(p, dict) for p in preds):
            keys = preds[0].keys()
            return {k: _array([p.get(k) for p in preds], what, k) for k in keys}
        return _array(preds, what, "predictions")
    if "outputs" in resp:
        outs = resp["outputs"]
        if isinstance(outs, dict):
            return {k: _array(v, what, k) for k, v in outs.items()}
        return _array(outs, what, "outputs")
    raise OracleError(f"{what}: answer has neither 'predictions' nor 'outputs' "
                      f"(keys: {sorted(resp)[:10]})")


def _array(value, what: str, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise OracleError(f"{what}: output {key!r} is not a numeric array") from None
    if arr.dtype == object:
        raise OracleError(f"{what}: output {key!r} is ragged")
    return arr


def select_output(outputs, key: str | None, what: str) -> np.ndarray:
    """Pick output `key` (or the only one) from `decode_outputs`' result."""
    if isinstance(outputs, np.ndarray):
        return outputs
    if key is None:
        if len(outputs) != 1:
            raise OracleError(f"{what}: signature has outputs {sorted(outputs)}; name one")
        return next(iter(outputs.values()))
    if key not in outputs:
        raise OracleError(f"{what}: output {key!r} not in answer (has {sorted(outputs)})")
    return outputs[key]


class RestPredictor:
    """Calls one model's predict endpoint; `predict(array)` returns the chosen output array."""

    def __init__(self, url: str, *, input_key: str | None = None, output_key: str | None = None,
                 signature_name: str | None = None, request_format: str = "instances",
                 timeout: float = 30.0, retry: RetryPolicy | None = None, headers=None,
                 name: str | None = None):
        self.root, self.model, self.version, self.label = parse_model_url(url)
        self.url = url.rstrip("/")
        self.predict_url = self.url + ":predict"
        if request_format not in ("instances", "inputs"):
            raise ConfigError(f"REST request_format must be 'instances' or 'inputs', "
                              f"got {request_format!r}")
        self.request_format = request_format
        self.input_key = input_key
        self.output_key = output_key
        self.signature_name = signature_name
        self.timeout = float(timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        self.headers = headers or {}
        self.name = name or f"rest:{self.url}"

    def body(self, x: np.ndarray) -> dict:
        body = {}
        if self.signature_name:
            body["signature_name"] = self.signature_name
        values = x.tolist()
        if self.request_format == "instances":
            body["instances"] = ([{self.input_key: v} for v in values]
                                 if self.input_key else values)
        else:
            body["inputs"] = {self.input_key: values} if self.input_key else values
        return body

    def request(self, x: np.ndarray) -> np.ndarray:
        """One attempt (no retries)."""
        resp = post_json(self.predict_url, self.body(x), self.timeout, self.name, self.headers)
        return select_output(decode_outputs(resp, self.name), self.output_key, self.name)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return self.retry.call(lambda: self.request(x), self.name)


class RestOracle(RemoteOracle):
    """A classifier served by TF Serving (or anything speaking its REST contract).

    `url` is the model URL `http://HOST:PORT/v1/models/NAME[/versions/N]`; the answer's output
    `output_key` (default: the only output, or `probabilities`) is read as `outputs` says
    (default 'probabilities': checked on every batch, so a served model answering logits is
    refused in one line unless declared `outputs='logits'`).
    """

    def __init__(self, url: str, *, input_key: str | None = None,
                 output_key: str | None = "probabilities", signature_name: str | None = None,
                 request_format: str = "instances", headers=None, **kwargs):
        kwargs.setdefault("name", f"rest:{url.rstrip('/')}")
        kwargs.setdefault("batch_size", 64)
        super().__init__(**kwargs)
        self.client = RestPredictor(url, input_key=input_key, output_key=None,
                                    signature_name=signature_name, request_format=request_format,
                                    timeout=self.timeout, retry=self.retry, headers=headers,
                                    name=self.name)
        self._output_key = output_key

    def identity(self) -> str:
        return (f"rest:{self.client.url}#{self.client.signature_name or 'serving_default'}"
                f"{self._outputs_tag()}")

    def _request(self, images):
        outputs = decode_outputs(
            post_json(self.client.predict_url, self.client.body(images), self.timeout,
                      self.name, self.client.headers), self.name)
        if isinstance(outputs, dict) and self._output_key not in outputs and len(outputs) == 1:
            return next(iter(outputs.values()))
        return select_output(outputs, self._output_key, self.name)
