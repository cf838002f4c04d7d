"""Query an Oracle once per (target, images, policy) and keep the answers on disk.

The cache key is the oracle's identity(), a SHA-256 of the image bytes and shape, and the
release policy's config, so a sweep over k (truncation happens on the attacker's side) or a
re-run queries the target only the first time. Files are written atomically (.npy).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tfminv import paths
from tfminv.errors import OracleError
from tfminv.hashing import content_hash
from tfminv.io_utils import atomic_path


def cache_key(oracle, images, policy=None) -> str:
    """Key of the cached predictions of `oracle` on `images` released through `policy`."""
    pol = None if policy is None else {"class": type(policy).__name__,
                                       "config": policy.get_config()}
    blob = json.dumps({"oracle": oracle.identity(), "images": content_hash(images),
                       "policy": pol}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _images_of(imageset):
    return getattr(imageset, "images", imageset)


def query_cached(oracle, imageset, cache_dir=None, policy=None, *, seed: int = 0) -> np.ndarray:
    """Prediction vectors [N, m] of `oracle` on an ImageSet (or image array), cached on disk.

    With `policy`, the raw answers are cached first, then the policy's output (drawn with a
    fixed `seed` when the policy is random) is cached under its own key.
    """
    images = _images_of(imageset)
    folder = paths.cache_dir(cache_dir) / "predictions"
    raw_path = folder / f"{cache_key(oracle, images)}.npy"
    if raw_path.exists():
        preds = np.load(raw_path)
    else:
        preds = np.asarray(oracle(images), dtype=np.float32)
        if preds.shape[0] != len(images):
            raise OracleError(f"{oracle.identity()}: {preds.shape[0]} answers for "
                              f"{len(images)} images")
        with atomic_path(raw_path, suffix=".npy") as tmp:
            np.save(tmp, preds)
    if policy is None:
        return preds
    pol_path = folder / f"{cache_key(oracle, images, policy)}-s{seed}.npy"
    if pol_path.exists():
        return np.load(pol_path)
    out = np.asarray(policy(preds, rng=np.random.default_rng(seed)), dtype=np.float32)
    with atomic_path(pol_path, suffix=".npy") as tmp:
        np.save(tmp, out)
    return out


def cached_files(cache_dir=None) -> list[Path]:
    """The cached prediction files (for inspection and tests)."""
    return sorted((paths.cache_dir(cache_dir) / "predictions").glob("*.npy"))
