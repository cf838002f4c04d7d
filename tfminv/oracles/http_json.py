"""A generic HTTP JSON prediction API as an oracle, mapped to vectors by a declared schema.

The schema (a JSON file, or a dict) says how to build a request and which JSON paths of the
answer fill which vector positions:

    {"request":  {"method": "POST", "headers": {}, "batch": false, "encoding": "png_base64",
                  "template": {"Image": {"Bytes": "$image"}}},
     "response": {"output_dim": 3,
                  "positions": [{"path": "Labels[Name=cat].Confidence", "index": 0,
                                 "scale": 0.01, "default": 0.0}, ...]}}

`template` strings "$image" (one image per request) or "$images" (a list, with "batch": true)
are replaced by the encoded images (encoding: "list" nested floats, "png_base64",
"jpeg_base64"). The answer is read either as a whole vector (`"vector": PATH`) or position by
position (`"positions"`); with "batch": true, `"items": PATH` points at one entry per image.
Paths: dotted names, `[3]` list indices, `[Key=Value]` selects the list element whose Key
equals Value; a leading `$.` is allowed. Service-specific adapters plug in through
`request_builder` / `response_to_vector` callables or `register_adapter`.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Callable

import numpy as np

from tfminv.errors import ConfigError, OracleError, TfminvError
from tfminv.oracles.base import RemoteOracle
from tfminv.oracles.rest import post_json

ENCODINGS = ("list", "png_base64", "jpeg_base64")
_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]|\[([^=\]]+)=([^\]]*)\]")
_MISSING = object()

_ADAPTERS: dict[str, Callable[..., "RemoteOracle"]] = {}


def register_adapter(name: str, factory: Callable[..., "RemoteOracle"]) -> None:
    """Make `http-json:URL#NAME` build `factory(url, **kwargs)` (e.g. a cloud vision API)."""
    _ADAPTERS[name] = factory


def adapters() -> dict[str, Callable]:
    return dict(_ADAPTERS)


def parse_path(path: str) -> list:
    """Compile a path like `a.b[0][Type=HAPPY].c` into tokens."""
    p = path.strip()
    if p.startswith("$"):
        p = p[1:]
    tokens, pos = [], 0
    while pos < len(p):
        m = _TOKEN.match(p, pos)
        if not m or m.end() == pos:
            raise ConfigError(f"JSON path {path!r}: cannot parse at {p[pos:]!r}")
        name, idx, key, value = m.groups()
        if name is not None:
            tokens.append(("key", name))
        elif idx is not None:
            tokens.append(("index", int(idx)))
        else:
            tokens.append(("select", key.strip(), value.strip().strip("'\"")))
        pos = m.end()
    return tokens


def get_path(obj, tokens, default=_MISSING):
    """Follow compiled path tokens; missing parts return `default` or raise KeyError."""
    cur = obj
    for t in tokens:
        if t[0] == "key" and isinstance(cur, dict) and t[1] in cur:
            cur = cur[t[1]]
        elif t[0] == "index" and isinstance(cur, list) and -len(cur) <= t[1] < len(cur):
            cur = cur[t[1]]
        elif t[0] == "select" and isinstance(cur, list):
            hits = [e for e in cur if isinstance(e, dict) and str(e.get(t[1])) == t[2]]
            if not hits:
                if default is _MISSING:
                    raise KeyError(t)
                return default
            cur = hits[0]
        else:
            if default is _MISSING:
                raise KeyError(t)
            return default
    return cur


def encode_image(img: np.ndarray, encoding: str):
    """One image [H, W, C] in [0, 1] as JSON-ready data."""
    if encoding == "list":
        return np.asarray(img, np.float32).tolist()
    import cv2

    u8 = np.clip(np.rint(np.asarray(img) * 255.0), 0, 255).astype(np.uint8)
    if u8.shape[-1] == 1:
        u8 = u8[..., 0]
    elif u8.shape[-1] == 3:
        u8 = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png" if encoding == "png_base64" else ".jpg", u8)
    if not ok:
        raise OracleError(f"cannot encode an image of shape {img.shape} as {encoding}")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _fill(template, value, marker):
    if isinstance(template, str) and template == marker:
        return value
    if isinstance(template, dict):
        return {k: _fill(v, value, marker) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, value, marker) for v in template]
    return template


class Schema:
    """A parsed request/response schema (see the module docstring)."""

    def __init__(self, spec: dict, source: str = "schema"):
        if not isinstance(spec, dict) or "response" not in spec:
            raise ConfigError(f"{source}: expected a JSON object with 'request' and 'response'")
        req, resp = spec.get("request", {}), spec["response"]
        self.source = source
        self.method = req.get("method", "POST").upper()
        if self.method != "POST":
            raise ConfigError(f"{source}: request.method must be POST, got {self.method!r}")
        self.headers = dict(req.get("headers", {}))
        self.batch = bool(req.get("batch", False))
        self.encoding = req.get("encoding", "list")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"{source}: request.encoding {self.encoding!r} not in {ENCODINGS}")
        self.template = req.get("template", "$images" if self.batch else "$image")
        self.output_dim = resp.get("output_dim")
        self.items = parse_path(resp["items"]) if resp.get("items") else None
        if self.batch and self.items is None:
            raise ConfigError(f"{source}: batch requests need response.items (path to the "
                              "list with one entry per image)")
        self.vector = parse_path(resp["vector"]) if resp.get("vector") else None
        self.positions = []
        for i, p in enumerate(resp.get("positions", [])):
            try:
                self.positions.append((parse_path(p["path"]), int(p["index"]),
                                       float(p.get("scale", 1.0)), p.get("default", _MISSING)))
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"{source}: response.positions[{i}] needs 'path' and integer "
                                  "'index' (optional 'scale', 'default')") from None
        if (self.vector is None) == (not self.positions):
            raise ConfigError(f"{source}: give exactly one of response.vector or "
                              "response.positions")
        if self.positions:
            top = max(i for _, i, _, _ in self.positions) + 1
            self.output_dim = int(self.output_dim or top)
            if top > self.output_dim:
                raise ConfigError(f"{source}: a position index is >= output_dim {self.output_dim}")
        self.normalize = bool(resp.get("normalize", False))

    @classmethod
    def load(cls, path) -> "Schema":
        p = Path(path)
        try:
            spec = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{p}: cannot read the JSON schema: {e}") from None
        return cls(spec, str(p))

    def request_body(self, images: np.ndarray):
        if self.batch:
            return _fill(self.template, [encode_image(i, self.encoding) for i in images],
                         "$images")
        return _fill(self.template, encode_image(images[0], self.encoding), "$image")

    def item_vector(self, item, what: str) -> np.ndarray:
        try:
            if self.vector is not None:
                vec = np.asarray(get_path(item, self.vector), np.float32)
                if vec.ndim != 1:
                    raise OracleError(f"{what}: value at response.vector is not a flat list")
            else:
                vec = np.zeros(self.output_dim, np.float32)
                for tokens, index, scale, default in self.positions:
                    v = get_path(item, tokens, default)
                    vec[index] = float(v) * (scale if v is not default else 1.0)
        except KeyError as e:
            raise OracleError(f"{what}: answer lacks a field the schema {self.source} "
                              f"requires ({e.args[0]})") from None
        except (TypeError, ValueError):
            raise OracleError(f"{what}: a field the schema {self.source} maps is not "
                              "numeric") from None
        if self.normalize:
            s = vec.sum()
            if s <= 0:
                raise OracleError(f"{what}: cannot normalise a vector summing to {s}")
            vec = vec / s
        return vec

    def response_to_vectors(self, resp, n: int, what: str) -> np.ndarray:
        if not self.batch:
            return self.item_vector(resp, what)[None]
        try:
            items = get_path(resp, self.items)
        except KeyError:
            raise OracleError(f"{what}: answer lacks response.items of {self.source}") from None
        if not isinstance(items, list) or len(items) != n:
            raise OracleError(f"{what}: expected a list of {n} results at response.items")
        return np.stack([self.item_vector(i, what) for i in items])


class HttpJsonOracle(RemoteOracle):
    """Any JSON-over-HTTP prediction API: `http-json:URL#SCHEMA.json`.

    Pass `schema` (a Schema, dict or path), or the callables `request_builder(images) -> body`
    and `response_to_vector(answer) -> vector` (per image; with `batch=True` the builder gets
    the whole batch and the mapper returns [n, m]).

    Answers are read as `outputs` says (default 'probabilities': entries in [0, 1], rows summing
    to at most 1, since such APIs often release only some classes; 'raw' for scores of
    another kind, e.g. independent per-label confidences).
    """

    partial_release = True

    def __init__(self, url: str, schema=None, *, request_builder=None, response_to_vector=None,
                 batch: bool | None = None, headers: dict | None = None, **kwargs):
        if isinstance(schema, (str, Path)):
            schema = Schema.load(schema)
        elif isinstance(schema, dict):
            schema = Schema(schema)
        if schema is None and (request_builder is None or response_to_vector is None):
            raise ConfigError(f"http-json target {url}: pass a schema, or both request_builder "
                              "and response_to_vector")
        self.schema = schema
        self.batch = schema.batch if batch is None and schema else bool(batch)
        kwargs.setdefault("name", f"http-json:{url}")
        if schema is not None and schema.output_dim and kwargs.get("output_dim") is None:
            kwargs["output_dim"] = int(schema.output_dim)
        if not self.batch:
            kwargs["batch_size"] = 1
        else:
            kwargs.setdefault("batch_size", 32)
        super().__init__(**kwargs)
        self.url = url
        self.headers = {**(schema.headers if schema else {}), **(headers or {})}
        self._build = request_builder
        self._map = response_to_vector

    def identity(self) -> str:
        src = self.schema.source if self.schema else getattr(self._map, "__qualname__", "fn")
        return f"http-json:{self.url}#{src}{self._outputs_tag()}"

    def _request(self, images):
        body = self._build(images if self.batch else images[0]) if self._build \
            else self.schema.request_body(images)
        resp = post_json(self.url, body, self.timeout, self.name, self.headers)
        if self._map is not None:
            try:
                out = np.asarray(self._map(resp), np.float32)
            except OracleError:
                raise
            except TfminvError as e:
                raise OracleError(f"{self.name}: {e}") from None
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise OracleError(f"{self.name}: cannot map the answer to a vector: "
                                  f"{type(e).__name__}: {e}") from None
            return out if self.batch else out.reshape(1, -1)
        return self.schema.response_to_vectors(resp, len(images), self.name)
