"""TF Serving's REST predict contract for the serving stand-in: `RestServer` (the accept loop,
a bounded pool of connection threads) and `RestHandler` (one connection's requests).

    POST /v1/models/NAME[/versions/N]:predict   row "instances" or columnar "inputs" format
    GET  /v1/models/NAME[/versions/N]           model status

Every answer is JSON, errors included (4xx for the client's mistakes, never a dropped
connection); a request is bounded as a whole (`ServerLimits`: header and body deadlines, and a
grace while other connections wait), not only per socket read.
"""

from __future__ import annotations

import io
import json
import logging
import re
import selectors
import socket
import socketserver
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer

from tfminv.serving.limits import ServerLimits, ServingError, batch_message

_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(?:/labels/[^/:]+)?:predict$")
_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/?$")
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "FAILED_PRECONDITION": 400,
               "UNAVAILABLE": 503, "INTERNAL": 500, "RESOURCE_EXHAUSTED": 429}
_LINGER_S = 5.0  # after a 413, read (and discard) the unread body this long so the client sees it
_POLL_S = 0.1  # how often a blocked read looks at its deadlines and at waiting connections

log = logging.getLogger(__name__)


def _rows(value) -> int:
    """Rows of a JSON tensor without converting it (0 for a scalar)."""
    return len(value) if isinstance(value, list) else 0


class LateRequest(TimeoutError):
    """A request that did not arrive within its deadline (answered 408)."""


class RequestReader(io.RawIOBase):
    """A connection's socket as the handler's raw input, with deadlines on the request being
    read: `start(seconds, what)` bounds what is read until `stop()`; while other connections
    wait for a thread (`server.waiting()`), a request still arriving `rest_busy_grace_s` after
    its start is given up. Reads wait in `_POLL_S` slices so both are seen without data; a read
    with data ready returns at once. `poll_only` makes a read that would block return None
    (the handler's look for a pipelined request). Readiness comes from a
    `selectors.DefaultSelector` (epoll on Linux: any fd number, unlike select(), which fails
    once a process has 1024 files open); it is closed with the reader."""

    def __init__(self, sock, server: "RestServer"):
        super().__init__()
        self.sock, self.server, self.limits = sock, server, server.limits
        self.deadline = self.started = None
        self.what, self.budget, self.late = "request", 0.0, None
        self.poll_only = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)

    def readable(self) -> bool:
        return True

    def ready(self, seconds: float) -> bool:
        """Whether the socket has data (or EOF) to read within `seconds` (0: now)."""
        return bool(self._selector.select(max(0.0, seconds)))

    def close(self) -> None:
        if not self.closed:
            self._selector.close()
        super().close()

    def start(self, seconds: float, what: str) -> None:
        self.started = time.monotonic()
        self.deadline, self.what = self.started + seconds, what
        self.budget, self.late = seconds, None

    def stop(self) -> None:
        self.deadline = self.started = None

    def _give_up(self, why: str):
        self.late = why
        raise LateRequest(why)

    def readinto(self, buf) -> int | None:
        if self.poll_only:
            return self.sock.recv_into(buf) if self.ready(0) else None
        idle_until = time.monotonic() + self.limits.rest_api_timeout_s
        while True:
            now = time.monotonic()
            if self.deadline is not None:
                if now >= self.deadline:
                    self._give_up(f"{self.what} not received within {self.budget:g}s")
                if (now - self.started >= self.limits.rest_busy_grace_s
                        and self.server.waiting()):
                    self._give_up(f"{self.what} still arriving after "
                                  f"{self.limits.rest_busy_grace_s:g}s while other connections "
                                  "wait; retry")
            if now >= idle_until:
                raise TimeoutError(f"no data for {self.limits.rest_api_timeout_s:g}s")
            if self.server.closing:
                return 0
            wait = min(_POLL_S, idle_until - now,
                       self.deadline - now if self.deadline is not None else _POLL_S)
            if self.ready(wait):
                return self.sock.recv_into(buf)


class RestServer(HTTPServer):
    """An HTTPServer with a listen backlog and a bounded pool of connection threads.

    The standard library's ThreadingHTTPServer starts a thread per connection and listens with
    a backlog of 5, so bursts of new connections are reset. Here the accept loop hands each
    connection to `rest_api_num_threads` workers; up to `listen_backlog` connections wait for
    one, further ones are answered 503 at once. A worker keeps a keep-alive connection only
    while no other connection waits (`waiting()`), and drops a request still arriving after a
    short grace when others wait, so a client holding idle or slow connections cannot starve
    others.
    """

    def __init__(self, address, model_server, limits: ServerLimits):
        self.request_queue_size = limits.listen_backlog  # listen(2) backlog
        self.limits = limits
        self.model_server = model_server
        self._pool = futures.ThreadPoolExecutor(limits.rest_api_num_threads,
                                                thread_name_prefix="tfminv-rest")
        self._waiting = 0
        self._lock = threading.Lock()
        self._active: set = set()  # connections a worker is serving
        self.closing = False
        super().__init__(address, RestHandler)

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


class RestHandler(BaseHTTPRequestHandler):
    """One REST connection: its requests, one after another (keep-alive, pipelining), each
    bounded by the server's `ServerLimits`; the model runtime is `server.model_server`."""

    protocol_version = "HTTP/1.1"
    server: RestServer

    def setup(self):
        self.limits = self.server.limits
        self.timeout = self.limits.rest_api_timeout_s  # a stalled client is dropped
        super().setup()
        self.rfile.close()
        self._reader = RequestReader(self.connection, self.server)
        self.rfile = io.BufferedReader(self._reader, 1 << 16)

    def log_message(self, *args):  # quiet: tests run many requests
        pass

    def handle(self):
        self.close_connection = True
        self._one_request()
        while not self.close_connection and self._next_request():
            self._one_request()

    def _one_request(self):
        self._answered = False
        self._reader.start(self.limits.rest_header_timeout_s, "request line and headers")
        try:
            self.handle_one_request()  # a LateRequest there ends as TimeoutError: closed
        finally:
            self._reader.stop()
        if self._reader.late and not self._answered:
            self._answer_late(self._reader.late)

    def _answer_late(self, why: str) -> None:
        for attr, default in (("requestline", ""), ("command", ""), ("request_version", "")):
            if not getattr(self, attr, None):
                setattr(self, attr, default)
        if self.request_version in ("", "HTTP/0.9"):
            self.request_version = "HTTP/1.0"
        try:
            self._send(408, {"error": f"request timeout: {why}"}, close=True)
        except OSError:
            self.close_connection = True

    def _next_request(self) -> bool:
        """Wait on a keep-alive connection for its next request, but give the thread up
        when the connection stays idle, or as soon as other connections wait for one."""
        if self._buffered():  # a pipelined request already read from the socket
            return True
        deadline = time.monotonic() + self.limits.rest_api_timeout_s
        while time.monotonic() < deadline:
            if self.server.waiting() or self.server.closing:
                return False
            if self._reader.ready(_POLL_S):
                return True
        return False

    def _buffered(self) -> bool:
        """Whether the next request is already (partly) in rfile's buffer, where the selector
        cannot see it; peeks without blocking."""
        self._reader.poll_only = True
        try:
            return bool(self.rfile.peek(1))
        except OSError:
            return False
        finally:
            self._reader.poll_only = False

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
        models = self.server.model_server.models
        m = _STATUS.match(self.path)
        if not m or m.group(1) not in models:
            return self._send(404, {"error": f"Could not find model at {self.path[:200]}"})
        versions = sorted(models[m.group(1)].loaded)
        if m.group(2):
            v = int(m.group(2)) if len(m.group(2)) < 19 else -1
            versions = [v] if v in versions else []
            if not versions:
                return self._send(404, {"error": f"Could not find version {m.group(2)[:40]}"})
        self._send(200, {"model_version_status": [
            {"version": str(v), "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}} for v in versions]})

    def do_POST(self):
        try:
            self._post()
        except Exception as e:  # noqa: BLE001 - last resort: an answer, not a dropped socket
            log.warning("REST %s: %s: %s", self.path[:200], type(e).__name__, e)
            if not self._answered:
                try:
                    self._send(500, {"error": f"internal error: {type(e).__name__}: {e}"},
                               close=True)
                except OSError:
                    self.close_connection = True

    def _read_body(self) -> bytes | None:
        """The body, or None after answering why not (nothing is read past the limit)."""
        limits = self.limits
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
        self._reader.start(limits.rest_body_timeout_s, f"request body of {n} bytes")
        try:
            body = self.rfile.read(n)
        except LateRequest as e:
            self._send(408, {"error": f"request timeout: {e}"}, close=True)
            return None
        except (TimeoutError, OSError):
            self.close_connection = True
            return None
        finally:
            self._reader.stop()
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
            return self._send(404, {"error": f"Malformed request: POST {self.path[:200]}"})
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
            self._send(HTTP_STATUS.get(e.code, 500), {"error": str(e)})

    def _predict(self, name, version, body):
        limits = self.limits
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
                raise ServingError("INVALID_ARGUMENT", batch_message(
                    "instances", len(inst), limits))
            if inst and all(isinstance(i, dict) for i in inst):
                inputs = {k: [i.get(k) for i in inst] for k in inst[0]}
            else:
                inputs = inst
        else:
            inputs = body["inputs"]
            for k, v in (inputs.items() if isinstance(inputs, dict) else [("inputs", inputs)]):
                if _rows(v) > limits.max_batch_size:
                    raise ServingError("INVALID_ARGUMENT", batch_message(k, _rows(v), limits))
        _, _, outs = self.server.model_server.predict(name, version, sig, inputs, "rest")
        if not row:
            if len(outs) == 1:
                return {"outputs": next(iter(outs.values())).tolist()}
            return {"outputs": {k: v.tolist() for k, v in outs.items()}}
        if len(outs) == 1:
            return {"predictions": next(iter(outs.values())).tolist()}
        n = len(next(iter(outs.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in outs.items()}
                                for i in range(n)]}
