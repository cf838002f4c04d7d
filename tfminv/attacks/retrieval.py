"""Method 'aux_match': the attacker's own public photo whose released answer looks most like
the victim's, with no inverter.

The attacker already holds the target's answers on its auxiliary images (the queries every
training-based method makes). For a victim's released vector v it returns the auxiliary image
whose answer a is closest to v (the mean of the `match_n` closest): cosine similarity of the
two top-k releases (`tfminv.policies.keep_top_k`: what a top-k API shows of either). Nothing is trained and nothing is queried beyond the auxiliary set.

Why it is an attack of its own: at 471 identities (celeba_ids, auxiliary set CelebA #1-#10000,
no person in common with the target) the photo of another person picked this way is named as
the victim in the independent judge's top-5 for about a third of the victims at k = 10, where
the truncation inverter's near-average face reaches 4% (experiments/REPRODUCTION.md). The
release says who the victim resembles; an audit that only scores inverters under-reports it.
Its MSE is far worse (a different person's photo): report both. NumPy only.
"""

from __future__ import annotations

import time

import numpy as np

from tfminv.errors import ConfigError, DataError
from tfminv.policies import keep_top_k

#: victims compared with every auxiliary answer at once: bounds the similarity block to
#: CHUNK x N_aux floats (200,000 auxiliary faces: 100 MB)
CHUNK = 128


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


class AuxRetriever:
    """Released vector -> the auxiliary image(s) whose answers match it best.

    aux_released: the target's answers on the auxiliary images [N, m] (raw or already
    released); aux_images [N, H, W, C] in memory (indexed per victim, so a stream is refused);
    k: the release's top-k (both sides are cut to it); n: how many closest answers' images are
    averaged (1: one real photo). Answers like an inverter (`predict_on_batch`, calling it,
    `output_shape`, `name`) so every door's `invert` runs it; `run_dir` is None (nothing
    trained, nothing cached). `last_match` holds the indices [N, n] of the last call.
    """

    run_dir = None
    surrogate = None

    def __init__(self, aux_released, aux_images, *, k: int, n: int = 1):
        if hasattr(aux_images, "iter_chunks"):
            raise ConfigError("method 'aux_match' picks auxiliary images by index and needs "
                              "them in memory, not streamed (--stream_aux)")
        a = np.asarray(aux_released, np.float32)
        images = np.asarray(aux_images)
        if a.ndim != 2 or images.ndim != 4 or len(a) != len(images) or len(a) == 0:
            raise DataError(f"aux_match: expected auxiliary answers [N >= 1, m] and images "
                            f"[N, H, W, C] with the same N, got {a.shape} and {images.shape}")
        m = a.shape[1]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= m:
            raise ConfigError(f"aux_match: k={k!r}; expected an integer from 1 to {m}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(a):
            raise ConfigError(f"--match_n={n!r}: expected an integer from 1 to the {len(a)} "
                              "auxiliary images")
        self.k, self.n, self.m = int(k), int(n), m
        self.images = images
        self.name = f"aux_match_k{k}_n{n}"
        self.output_shape = (None, *images.shape[1:])
        self._aux = _unit(keep_top_k(a, self.k))
        self.last_match = None

    def match(self, released) -> np.ndarray:
        """Indices [N, n] of the auxiliary rows closest to each released vector (closest
        first)."""
        v = np.asarray(released, np.float32)
        if v.ndim != 2 or v.shape[1] != self.m:
            raise DataError(f"aux_match: expected released vectors [N, {self.m}], got "
                            f"{v.shape}")
        q = _unit(keep_top_k(v, self.k))
        out = np.empty((len(v), self.n), np.int64)
        for i in range(0, len(v), CHUNK):
            sim = q[i:i + CHUNK] @ self._aux.T
            part = (np.argpartition(-sim, self.n - 1, axis=1)[:, :self.n] if self.n < sim.shape[1]
                    else np.tile(np.arange(sim.shape[1]), (len(sim), 1)))
            order = np.argsort(-np.take_along_axis(sim, part, axis=1), axis=1, kind="stable")
            out[i:i + CHUNK] = np.take_along_axis(part, order, axis=1)
        return out

    def predict_on_batch(self, released) -> np.ndarray:
        idx = self.match(released)
        self.last_match = idx
        return self.images[idx].astype(np.float32).mean(axis=1)

    def __call__(self, released, training=False):
        return self.predict_on_batch(np.asarray(released))


def retrieve(aux_released, aux_images, victim_released, *, k: int, n: int = 1):
    """(images [N, H, W, C], retriever, seconds): `AuxRetriever` built and run on the victims'
    released vectors, with the wall time of both."""
    t = time.perf_counter()
    r = AuxRetriever(aux_released, aux_images, k=k, n=n)
    images = r.predict_on_batch(victim_released)
    return images, r, round(time.perf_counter() - t, 1)
