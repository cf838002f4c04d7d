"""What one request to the serving stand-in, and all of them together, may cost it.

`ServerLimits` is the one definition of each limit (its default and help, `tfminv.settings`);
the server binary's flags are generated from it. `ServingError` carries a gRPC status name
that REST maps to an HTTP status. Pure Python: no TensorFlow.
"""

from __future__ import annotations

import dataclasses

from tfminv.errors import ConfigError
from tfminv.settings import setting, settings_of

#: longest error message sent back: gRPC puts it in a trailing header (grpc-message), which
#: the peer refuses above its metadata limit (8 KiB by default), e.g. a message naming the 50,000
#: input keys of a hostile request
MAX_ERROR_CHARS = 1024


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """What one request, and all of them together, may cost the server.

    max_batch_size: the clients here send 64 (RestOracle) to 256 (InverterClient) rows; an
        unbounded batch let a 1 MB body of 20,000 inverter vectors take the server to 4.6 GB.
    rest_api_num_threads, grpc_max_threads: TF Serving's flags of those names; further
        connections and RPCs wait for a free thread.
    rest_header_timeout_s / rest_body_timeout_s / rest_busy_grace_s: a whole request is bounded,
        not each socket read: 16 clients sending one header line or body byte every 15 s held
        every thread forever under a per-read timeout of 30 s (slowloris). A request is dropped
        with 408 (which the clients here retry) when its headers or its body take longer than
        their deadline, or when it is still arriving after the grace while other connections
        wait for a thread, so slow senders never keep a waiting client unanswered.
    """

    max_request_bytes: int = setting(
        64 * 2**20, "Largest REST body / gRPC message accepted (413 / RESOURCE_EXHAUSTED).")
    max_batch_size: int = setting(
        1024, "Most rows per input tensor in one request (400 / INVALID_ARGUMENT).")
    rest_api_num_threads: int = setting(
        16, "REST worker threads (connections beyond wait for one).")
    grpc_max_threads: int = setting(8, "gRPC worker threads.")
    listen_backlog: int = setting(
        128, "REST listen backlog, and connections / RPCs that may wait for a thread (beyond "
        "it: 503 / RESOURCE_EXHAUSTED, both retried by the clients here).")
    rest_api_timeout_s: float = setting(
        30.0, "A REST connection idle or stalled this long (seconds) is closed.", flag=False)
    rest_header_timeout_s: float = setting(
        10.0, "A REST request line and headers must arrive within this many seconds (408).")
    rest_body_timeout_s: float = setting(
        60.0, "A REST request body must arrive within this many seconds of its headers (408).")
    rest_busy_grace_s: float = setting(
        1.0, "While connections wait for a REST thread, a request still arriving after this "
        "many seconds is dropped (408).")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"server limit {f.name}={v!r}: expected a number > 0")


def limit_settings() -> dict:
    """name -> (field, Setting) of every ServerLimits field (the server binary's flags)."""
    return settings_of(ServerLimits)


class ServingError(Exception):
    """A request failure with a gRPC status code name (mapped to an HTTP status for REST)."""

    def __init__(self, code: str, message: str):
        super().__init__(short(message))
        self.code = code


def short(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`message`, cut to `limit` characters (saying how much was cut)."""
    message = str(message)
    if len(message) <= limit:
        return message
    return f"{message[:limit - 40]}... ({len(message)} characters in all)"


def names(keys, shown: int = 8) -> str:
    """A list of names for an error message, the first `shown` of them and how many in all."""
    keys = sorted(map(str, keys))
    if len(keys) <= shown:
        return str(keys)
    return f"[{', '.join(repr(k[:40]) for k in keys[:shown])}, ...] ({len(keys)} in all)"


def batch_message(key, rows, limits: ServerLimits) -> str:
    return (f"input {key!r} has a batch of {rows} rows, over the server's max_batch_size of "
            f"{limits.max_batch_size}; send smaller batches")
