"""Large query runs: chunked, resumable prediction cache; corrupt cache files; the concurrent,
rate-limited request pool of remote oracles."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from tfminv.attacks import predictions
from tfminv.errors import ConfigError, OracleError
from tfminv.oracles.base import CallableOracle, RateLimiter, RemoteOracle


def _probs(images):
    """A deterministic 'classifier': 3 probabilities from the image mean."""
    m = images.reshape(len(images), -1).mean(axis=1)
    logits = np.stack([m, 2 * m, -m], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def images():
    return np.random.default_rng(0).random((1000, 4, 4, 1)).astype(np.float32)


class Killed(Exception):
    """Stands for the process dying mid-run."""


def _dying_oracle(after: int):
    """An oracle that answers `after` images, then dies (raises) on the next batch."""
    state = {"n": 0}

    def fn(x):
        if state["n"] >= after:
            raise Killed(f"killed after {state['n']} images")
        state["n"] += len(x)
        return _probs(x)

    return CallableOracle(fn, batch_size=50, name="dying")


def test_killed_run_resumes_without_resending_answered_queries(images, tmp_path):
    first = _dying_oracle(after=700)  # killed after 70% of the queries
    with pytest.raises(Killed):
        predictions.query_cached(first, images, tmp_path, chunk_size=100)
    assert first.num_queries == 700
    assert predictions.cached_files(tmp_path) == []  # no complete file yet, only parts
    parts = list((tmp_path / "predictions").glob("*.parts/*.npy"))
    assert len(parts) == 7

    again = CallableOracle(_probs, batch_size=50, name="dying")  # same identity, fresh process
    got = predictions.query_cached(again, images, tmp_path, chunk_size=100)
    assert again.num_queries == 300  # only the 30% never answered
    np.testing.assert_allclose(got, _probs(images), rtol=1e-6)
    assert len(predictions.cached_files(tmp_path)) == 1
    assert not list((tmp_path / "predictions").glob("*.parts"))  # joined and removed

    third = CallableOracle(_probs, batch_size=50, name="dying")
    np.testing.assert_array_equal(predictions.query_cached(third, images, tmp_path), got)
    assert third.num_queries == 0


def test_resume_keeps_the_interrupted_runs_chunking(images, tmp_path):
    with pytest.raises(Killed):
        predictions.query_cached(_dying_oracle(after=400), images, tmp_path, chunk_size=200)
    again = CallableOracle(_probs, batch_size=50, name="dying")
    predictions.query_cached(again, images, tmp_path, chunk_size=64)  # other default: ignored
    assert again.num_queries == 600


def test_corrupt_chunk_and_file_are_discarded_and_requeried(images, tmp_path, caplog):
    with pytest.raises(Killed):
        predictions.query_cached(_dying_oracle(after=500), images, tmp_path, chunk_size=100)
    part = sorted((tmp_path / "predictions").glob("*.parts/*.npy"))[2]
    part.write_bytes(part.read_bytes()[:60])  # torn write of chunk 2
    again = CallableOracle(_probs, batch_size=50, name="dying")
    with caplog.at_level(logging.WARNING, logger="tfminv.attacks.predictions"):
        got = predictions.query_cached(again, images, tmp_path, chunk_size=100)
    assert again.num_queries == 600  # chunk 2 again, and chunks 5-9
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(msgs) == 1 and "corrupt" in msgs[0] and part.name in msgs[0]
    assert "\n" not in msgs[0]
    np.testing.assert_allclose(got, _probs(images), rtol=1e-6)

    final = predictions.cached_files(tmp_path)[0]
    final.write_bytes(b"not a numpy file")
    caplog.clear()
    fourth = CallableOracle(_probs, batch_size=50, name="dying")
    with caplog.at_level(logging.WARNING, logger="tfminv.attacks.predictions"):
        np.testing.assert_allclose(predictions.query_cached(fourth, images, tmp_path), got)
    assert fourth.num_queries == 1000
    assert any(final.name in r.getMessage() for r in caplog.records)


def test_cached_file_of_the_wrong_shape_is_requeried(images, tmp_path):
    o = CallableOracle(_probs, batch_size=50, name="shape")
    predictions.query_cached(o, images, tmp_path)
    f = predictions.cached_files(tmp_path)[0]
    np.save(f, np.zeros((10, 3), np.float32))
    o2 = CallableOracle(_probs, batch_size=50, name="shape")
    assert predictions.query_cached(o2, images, tmp_path).shape == (1000, 3)
    assert o2.num_queries == 1000


class SlowRemote(RemoteOracle):
    """A remote oracle whose every request waits `delay` s; records the most requests in flight."""

    def __init__(self, delay=0.05, fail_on=None, **kw):
        kw.setdefault("name", "slow")
        super().__init__(**kw)
        self.delay, self.fail_on = delay, fail_on
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.started = []

    def _request(self, images):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.started.append(time.monotonic())
        try:
            time.sleep(self.delay)
            if self.fail_on is not None and float(images[0, 0, 0, 0]) == self.fail_on:
                raise OracleError("slow: bad request")
            return _probs(images)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_concurrent_requests_are_bounded_and_keep_their_order(images):
    o = SlowRemote(batch_size=25, concurrency=4)
    t0 = time.monotonic()
    got = o(images[:400])  # 16 requests of 50 ms
    elapsed = time.monotonic() - t0
    np.testing.assert_allclose(got, _probs(images[:400]), rtol=1e-6)
    assert o.max_in_flight == 4 and o.num_queries == 400
    assert elapsed < 16 * 0.05  # overlapped, not one after the other

    serial = SlowRemote(batch_size=25, concurrency=1, delay=0.0)
    serial(images[:100])
    assert serial.max_in_flight == 1


def test_failure_in_the_pool_raises_and_counts_only_answers(images):
    x = images[:200].copy()
    x[100, 0, 0, 0] = 7.0  # the 5th request (images 100-124) fails
    o = SlowRemote(batch_size=25, concurrency=4, fail_on=7.0, delay=0.01)
    with pytest.raises(OracleError, match="bad request"):
        o(x)
    assert o.num_queries < 200 and o.num_queries % 25 == 0


def test_rate_limit_spaces_requests(images):
    o = SlowRemote(batch_size=10, concurrency=8, delay=0.0, rate_limit=50.0)
    o(images[:100])  # 10 requests at 50/s: at least 9 intervals of 20 ms
    starts = sorted(o.started)
    assert starts[-1] - starts[0] >= 9 * 0.02 * 0.9
    clock = {"t": 0.0}
    slept = []
    rl = RateLimiter(4.0, clock=lambda: clock["t"], sleep=slept.append)
    for _ in range(3):
        rl.acquire()
    assert slept == [0.25, 0.5]  # evenly spaced at 1/4 s, counted from the first
    with pytest.raises(ConfigError, match="rate limit"):
        RateLimiter(-1)
    with pytest.raises(ConfigError, match="concurrency"):
        SlowRemote(concurrency=0)
