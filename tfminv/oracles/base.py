"""Oracle: images in, prediction vectors out, with a query counter and an optional budget.

Attacks only ever see a target through this interface (never its graph or weights), so the
same attack code runs against an in-process model, a SavedModel, TF Serving or an HTTP API.
Remote oracles add a per-request timeout and bounded retries with exponential backoff.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import random
import threading
import time
from typing import Callable

import numpy as np

from tfminv.errors import BudgetExceeded, ConfigError, OracleError
from tfminv.oracles.checks import as_probabilities, check_image_shape, check_outputs_choice
from tfminv.oracles.checks import softmax_np  # noqa: F401 - its home before checks.py

log = logging.getLogger(__name__)


class TransientOracleError(OracleError):
    """A failure worth retrying (timeout, refused connection, HTTP 5xx/429, gRPC UNAVAILABLE)."""


class Oracle(abc.ABC):
    """A black-box target. Subclasses implement `_predict` on one batch of images.

    `outputs` says what `_predict` answers (`checks.OUTPUTS`): 'probabilities' are checked on
    every batch, 'logits' get a softmax, 'raw' (the default here) pass unchecked.

    `input_shape` (H, W, C; None where any size goes) is set by targets that know theirs, so
    images of another shape fail with one line before anything is sent.
    """

    input_shape: tuple | None = None
    #: answers may sum to less than 1 under outputs='probabilities' (an API releasing only
    #: some entries)
    partial_release = False

    def __init__(self, output_dim: int | None = None, batch_size: int = 256,
                 budget: int | None = None, name: str = "oracle", outputs: str = "raw"):
        self.outputs = check_outputs_choice(outputs, name)
        self.output_dim = output_dim
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"{name}: batch_size must be >= 1, got {batch_size}")
        self.budget = budget
        self.name = name
        self.num_queries = 0  # images sent to the target so far
        # answers read back from the prediction cache instead (see `query_counts`)
        self.num_cached = 0

    @abc.abstractmethod
    def _predict(self, images: np.ndarray) -> np.ndarray:
        """Return prediction vectors (float32, [n, m]) for one batch of images [n, H, W, C]."""

    def identity(self) -> str:
        """A string that identifies the target for prediction caches (override when known)."""
        return self.name

    def _outputs_tag(self, default: str = "probabilities") -> str:
        """'' when answers are read the class's usual way, else '|outputs=MODE': the same
        model read raw and read as logits answers differently, so caches must not mix them."""
        return "" if self.outputs == default else f"|outputs={self.outputs}"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Predict all images, batch by batch; raises OracleError before returning anything bad."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise OracleError(f"{self.name}: expected images [n, H, W, C], got shape {images.shape}")
        check_image_shape(self.input_shape, images.shape, self.name)
        n = len(images)
        if self.budget is not None and self.num_queries + n > self.budget:
            raise BudgetExceeded(
                f"{self.name}: query budget {self.budget} exceeded "
                f"({self.num_queries} used, {n} more requested)")
        batches = [images[s:s + self.batch_size] for s in range(0, n, self.batch_size)]
        outs = self._map_batches(batches)
        if not outs:
            return np.zeros((0, self.output_dim or 0), np.float32)
        return np.concatenate(outs, axis=0)

    def _map_batches(self, batches: list) -> list:
        """Answers for each batch, in order (one at a time; RemoteOracle overlaps them)."""
        return [self._one_batch(b) for b in batches]

    def _one_batch(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self._predict(batch), dtype=np.float32)
        out = self._check(out, len(batch))
        self.num_queries += len(batch)
        return out

    def _check(self, out: np.ndarray, n: int) -> np.ndarray:
        """The batch's answers, checked (shape, length, finite) and read as `outputs` says."""
        if out.ndim != 2 or out.shape[0] != n:
            raise OracleError(f"{self.name}: expected {n} prediction vectors, got shape {out.shape}")
        if self.output_dim is None:
            self.output_dim = int(out.shape[1])
        elif out.shape[1] != self.output_dim:
            raise OracleError(
                f"{self.name}: expected vectors of length {self.output_dim}, got {out.shape[1]}")
        if not np.all(np.isfinite(out)):
            raise OracleError(f"{self.name}: response contains NaN or infinite values")
        return as_probabilities(out, self.outputs, self.name, partial=self.partial_release)


def query_counts(oracle) -> dict:
    """The run's query count as run.json reports it: `oracle_queries` = images this run sent
    to the target, `oracle_answers_cached` = answers it read from the prediction cache, asked
    of the same target by an earlier run. The attack spent their sum, so a report read from a
    warm cache still shows what an attacker has to ask."""
    return {"oracle_queries": int(oracle.num_queries),
            "oracle_answers_cached": int(getattr(oracle, "num_cached", 0))}


class CallableOracle(Oracle):
    """Wrap any function from an image batch to prediction vectors."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], **kwargs):
        super().__init__(**kwargs)
        self._fn = fn

    def _predict(self, images):
        return self._fn(images)


class KerasOracle(Oracle):
    """An in-process Keras model, answering probabilities.

    softmax: True turns logits into probabilities, False passes the outputs through; None (the
    default) decides from the model: a model whose last layer is (or activates with) softmax is
    passed through, any other gets a softmax. So a model ending in softmax is never softmaxed
    twice (a second softmax flattens the vector towards uniform without any error). An explicit
    `outputs` (`checks.OUTPUTS`) overrides `softmax`; `ends_in_softmax` records what the
    model's structure says.
    """

    def __init__(self, model, softmax: bool | None = None, identity: str | None = None,
                 **kwargs):
        from tfminv.export import ends_in_softmax

        kwargs.setdefault("name", getattr(model, "name", "keras"))
        self.ends_in_softmax = ends_in_softmax(model)  # what the model's structure says
        if softmax is None:
            softmax = not self.ends_in_softmax
        if "outputs" not in kwargs:
            kwargs["outputs"] = "logits" if softmax else "raw"
        super().__init__(**kwargs)
        self._model = model
        self._identity = identity

    def identity(self) -> str:
        return self._identity or f"keras:{self.name}"

    @property
    def input_shape(self):
        shape = getattr(self._model, "input_shape", None)
        if not isinstance(shape, tuple) or len(shape) != 4:
            return None
        return tuple(shape[1:])

    def _predict(self, images):
        return np.asarray(self._model.predict_on_batch(images), dtype=np.float32)


@dataclasses.dataclass
class RetryPolicy:
    """Bounded retries with exponential backoff: wait `backoff * factor**i` (capped, jittered).

    `retries` is the number of extra attempts after the first; only TransientOracleError is
    retried, every other error is raised at once.
    """

    retries: int = 3
    backoff: float = 0.5
    factor: float = 2.0
    max_backoff: float = 10.0
    jitter: float = 0.1
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self):
        if self.retries < 0 or self.backoff < 0 or self.factor < 1:
            raise ConfigError(
                f"retry policy: expected retries >= 0, backoff >= 0, factor >= 1; got "
                f"retries={self.retries}, backoff={self.backoff}, factor={self.factor}")

    def delay(self, attempt: int) -> float:
        d = min(self.backoff * self.factor ** attempt, self.max_backoff)
        return d * (1.0 + self.jitter * random.random())

    def call(self, fn: Callable[[], object], what: str):
        """Run `fn`, retrying transient failures; the last failure names the attempts made."""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except TransientOracleError as e:
                if attempt == self.retries:
                    raise TransientOracleError(
                        f"{what}: giving up after {attempt + 1} attempt(s): {e}") from e
                wait = self.delay(attempt)
                log.warning("%s: %s; retrying in %.2fs (%d/%d)", what, e, wait,
                            attempt + 1, self.retries)
                self.sleep(wait)
        raise AssertionError("unreachable")


class RateLimiter:
    """At most `rate` acquisitions per second, evenly spaced (None or 0: unlimited); thread-safe."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate is not None and rate < 0:
            raise ConfigError(f"rate limit must be >= 0 requests/s (0: none), got {rate}")
        self.interval = 1.0 / rate if rate else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            self._sleep(at - now)


class RemoteOracle(Oracle):
    """An oracle behind a network call: `timeout` seconds per request, retries per RetryPolicy,
    up to `concurrency` requests in flight and at most `rate_limit` requests per second.
    Answers must be probabilities unless declared otherwise (`outputs`, as for a SavedModel):
    a served model answering logits is refused on its first batch, not used silently.

    Subclasses implement `_request(images)`; it raises TransientOracleError for failures worth
    retrying and OracleError for the rest. A batch either yields a full, checked answer or raises,
    so callers that cache predictions never see a partial result. One call's batches go through
    a bounded thread pool (`concurrency` workers; network waits overlap, answers keep their
    order); every attempt, retries included, first takes a slot from the rate limiter.
    """

    def __init__(self, timeout: float = 30.0, retry: RetryPolicy | None = None,
                 concurrency: int = 1, rate_limit: float | None = None,
                 outputs: str = "probabilities", **kwargs):
        super().__init__(outputs=outputs, **kwargs)
        if not timeout or timeout <= 0:
            raise ConfigError(f"{self.name}: timeout must be > 0 seconds, got {timeout}")
        if int(concurrency) < 1:
            raise ConfigError(f"{self.name}: concurrency must be >= 1 request, got {concurrency}")
        self.timeout = float(timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        self.concurrency = int(concurrency)
        self.rate_limiter = RateLimiter(rate_limit)
        self._count_lock = threading.Lock()

    @abc.abstractmethod
    def _request(self, images: np.ndarray) -> np.ndarray:
        """Send one batch and return its prediction vectors."""

    def _predict(self, images):
        def attempt():
            self.rate_limiter.acquire()
            return self._request(images)

        return self.retry.call(attempt, self.name)

    def _one_batch(self, batch):
        out = np.asarray(self._predict(batch), dtype=np.float32)
        with self._count_lock:  # output_dim and num_queries are shared by the pool's threads
            out = self._check(out, len(batch))
            self.num_queries += len(batch)
        return out

    def _map_batches(self, batches):
        if self.concurrency == 1 or len(batches) < 2:
            return [self._one_batch(b) for b in batches]
        from concurrent.futures import ThreadPoolExecutor, wait

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches)),
                                thread_name_prefix="tfminv-query") as pool:
            futures = [pool.submit(self._one_batch, b) for b in batches]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:  # first failure wins: drop what has not started
                    f.cancel()
                wait(futures)
                raise
