"""Query an Oracle once per (target, images, policy) and keep the answers on disk.

The cache key is the oracle's identity(), a SHA-256 of the image bytes and shape, and the
release policy's config, so a sweep over k (truncation happens on the attacker's side) or a
re-run queries the target only the first time. Files are written atomically (.npy).

Large query runs survive interruption: answers are written in chunks of `chunk_size` images
(`predictions/<key>.parts/<index>.npy`, each atomic) as they arrive, so a run killed after 70%
of its queries resumes from there and re-sends nothing already answered; when every chunk is in,
they are joined into `<key>.npy` and the parts removed. A cached chunk or file that cannot be
read (truncated, wrong shape) is discarded with a one-line warning and its images are queried
again. The images may be an array or a stream (`tfminv.data.streaming.StreamedImages`): chunks
are read from it one at a time, so a set larger than memory is queried at flat memory.

In a multi-worker run only the chief queries and writes the cache; the answers reach the other
workers through `tfminv.distribute.broadcast_from_chief`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from tfminv import paths
from tfminv.errors import OracleError, first_line
from tfminv.hashing import content_hash
from tfminv.io_utils import atomic_path, write_json

log = logging.getLogger(__name__)

#: images per cached chunk: the most a killed run re-queries (and a multiple of common batch
#: sizes, so the concurrent request pool of a remote oracle stays full)
DEFAULT_CHUNK = 2048


def cache_key(oracle, images, policy=None) -> str:
    """Key of the cached predictions of `oracle` on `images` released through `policy`."""
    pol = None if policy is None else {"class": type(policy).__name__,
                                       "config": policy.get_config()}
    blob = json.dumps({"oracle": oracle.identity(), "images": content_hash(images),
                       "policy": pol}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _images_of(imageset):
    if hasattr(imageset, "iter_chunks"):  # a stream of images
        return imageset
    return getattr(imageset, "images", imageset)


def _iter_chunks(images, chunk: int, start: int):
    """(index, images of chunk `index`) for index >= start."""
    if hasattr(images, "iter_chunks"):
        yield from images.iter_chunks(chunk, start)
        return
    for i in range(start, -(-len(images) // chunk)):
        yield i, images[i * chunk:(i + 1) * chunk]


def _load_npy(path: Path, shape: tuple | None, what: str):
    """The array in `path`, or None (file removed, one warning) when it is unreadable or its
    shape is not `shape` (None entries match any size)."""
    try:
        a = np.load(path, allow_pickle=False)
        if a.dtype != np.float32 or a.ndim != 2 or (
                shape is not None and any(s is not None and s != t
                                          for s, t in zip(shape, a.shape))):
            raise ValueError(f"shape {a.shape} dtype {a.dtype}, expected {shape} float32")
        if not np.all(np.isfinite(a)):
            raise ValueError("non-finite values")
        return a
    except (OSError, ValueError, EOFError) as e:
        reason = first_line(e, 120)
        log.warning("discarding corrupt cached %s %s (%s); querying its images again",
                    what, path, reason)
        path.unlink(missing_ok=True)
        return None


def query_cached(oracle, imageset, cache_dir=None, policy=None, *, seed: int = 0,
                 chunk_size: int | None = None) -> np.ndarray:
    """Prediction vectors [N, m] of `oracle` on an ImageSet, image array or image stream,
    cached on disk and resumable (see the module docstring).

    With `policy`, the raw answers are cached first, then the policy's output (drawn with a
    fixed `seed` when the policy is random) is cached under its own key.
    """
    from tfminv import distribute

    images = _images_of(imageset)
    n = len(images)
    folder = paths.cache_dir(cache_dir) / "predictions"
    key = cache_key(oracle, images)
    if distribute.is_chief():
        preds = _raw_predictions(oracle, images, folder, key, chunk_size or DEFAULT_CHUNK)
    else:
        preds = None
    if distribute.is_multi_worker():
        # the others learn the answer width, then the answers, from the chief
        m = int(distribute.broadcast_from_chief(
            np.array([preds.shape[1] if preds is not None else 0], np.float32))[0])
        preds = distribute.broadcast_from_chief(
            preds if preds is not None else np.zeros((n, m), np.float32))
    if policy is None:
        return preds
    pol_path = folder / f"{cache_key(oracle, images, policy)}-s{seed}.npy"
    if distribute.is_chief() and pol_path.exists():  # the others compute the same draw
        out = _load_npy(pol_path, (n, None), "released predictions")
        if out is not None:
            return out
    out = np.asarray(policy(preds, rng=np.random.default_rng(seed)), dtype=np.float32)
    if distribute.is_chief():
        with atomic_path(pol_path, suffix=".npy") as tmp:
            np.save(tmp, out)
    return out


def _count_cached(oracle, n: int) -> None:
    """Note `n` answers read from the cache on the oracle (`oracles.base.query_counts`); an
    oracle of the user's own that lacks the counter gets one."""
    oracle.num_cached = getattr(oracle, "num_cached", 0) + n


def _raw_predictions(oracle, images, folder: Path, key: str, chunk_size: int) -> np.ndarray:
    n = len(images)
    raw_path = folder / f"{key}.npy"
    if raw_path.exists():
        preds = _load_npy(raw_path, (n, None), "predictions")
        if preds is not None:
            _count_cached(oracle, n)
            return preds
    parts = folder / f"{key}.parts"
    meta_path = parts / "meta.json"
    if meta_path.exists():
        try:  # resume with the chunking the interrupted run used
            meta = json.loads(meta_path.read_text())
            if meta.get("n") == n:
                chunk_size = int(meta["chunk_size"])
        except (ValueError, KeyError, TypeError):
            pass
    n_chunks = max(1, -(-n // chunk_size))
    done: dict[int, np.ndarray] = {}
    for i in range(n_chunks):
        p = parts / f"{i:06d}.npy"
        if p.exists():
            rows = min(chunk_size, n - i * chunk_size)
            a = _load_npy(p, (rows, None), "prediction chunk")
            if a is not None:
                done[i] = a
    widths = {a.shape[1] for a in done.values()}
    if len(widths) > 1:  # chunks from different targets cannot be one answer: start over
        done = {}
    _count_cached(oracle, sum(len(a) for a in done.values()))
    if done:
        log.info("%s: resuming: %d of %d chunks of %d images already answered",
                 oracle.identity(), len(done), n_chunks, chunk_size)
    if n and len(done) < n_chunks:
        parts.mkdir(parents=True, exist_ok=True)
        write_json(meta_path, {"n": n, "chunk_size": chunk_size, "oracle": oracle.identity()})
        first_missing = min(i for i in range(n_chunks) if i not in done)
        for i, chunk in _iter_chunks(images, chunk_size, first_missing):
            if i in done:
                continue
            a = np.asarray(oracle(chunk), dtype=np.float32)
            if a.shape[0] != len(chunk):
                raise OracleError(f"{oracle.identity()}: {a.shape[0]} answers for "
                                  f"{len(chunk)} images")
            if done and a.shape[1] != next(iter(done.values())).shape[1]:
                raise OracleError(f"{oracle.identity()}: answers of length {a.shape[1]} do "
                                  f"not match the {next(iter(done.values())).shape[1]} of the "
                                  f"cached chunks in {parts}; remove that folder")
            with atomic_path(parts / f"{i:06d}.npy", suffix=".npy") as tmp:
                np.save(tmp, a)
            done[i] = a
    if n == 0:
        preds = np.asarray(oracle(np.zeros((0, 1, 1, 1), np.float32)), np.float32)
    else:  # filled chunk by chunk, each freed once copied: one copy of the answers at a time
        preds = np.empty((n, next(iter(done.values())).shape[1]), np.float32)
        row = 0
        for i in range(n_chunks):
            a = done.pop(i)
            preds[row:row + len(a)] = a
            row += len(a)
        if row != n:
            raise OracleError(f"{oracle.identity()}: {row} answers for {n} images")
    if preds.shape[0] != n:
        raise OracleError(f"{oracle.identity()}: {preds.shape[0]} answers for {n} images")
    with atomic_path(raw_path, suffix=".npy") as tmp:
        np.save(tmp, preds)
    shutil.rmtree(parts, ignore_errors=True)
    return preds


AUX_AUGMENTATIONS = ("", "flip")


def with_mirrors(oracle, preds, images, cache_dir=None, policy=None, *, seed: int = 0):
    """(preds, images) followed by the mirror image of every row and the target's answer to it
    (queried through `policy` like the rest, cached): the attacker's `aux_augment='flip'`.

    Mirrors are faces (or scenes) the target answers differently, so they are new
    (prediction, image) pairs for the inverter; measured at 471 identities (k = 10, width 0.25,
    10 epochs, best held-out epoch): victim MSE 0.0289 -> 0.0273, attack top-5 0.028 -> 0.041.
    """
    mirrored = mirror_images(images)
    mirrored_preds = query_cached(oracle, mirrored, cache_dir, policy, seed=seed)
    return np.concatenate([preds, mirrored_preds]), np.concatenate([images, mirrored])


def mirror_images(images) -> np.ndarray:
    """Images [N, H, W, C] flipped left-right (a contiguous copy)."""
    return np.ascontiguousarray(np.asarray(images)[:, :, ::-1])


def check_aux_augment(value: str, what: str = "aux_augment") -> str:
    if value not in AUX_AUGMENTATIONS:
        from tfminv.errors import ConfigError

        raise ConfigError(f"{what}={value!r}: expected one of {list(AUX_AUGMENTATIONS)}")
    return value


def cached_files(cache_dir=None) -> list[Path]:
    """The cached prediction files (for inspection and tests); parts of unfinished runs are in
    `<key>.parts/` folders beside them."""
    return sorted((paths.cache_dir(cache_dir) / "predictions").glob("*.npy"))
