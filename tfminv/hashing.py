"""Content hashes and short digests: the keys of every on-disk cache (predictions, trained runs).

No TensorFlow. `content_hash` keys an array by its float32 bytes and shape, so the same images
(or prediction vectors) give the same key whatever their source; `digest` keys a JSON-able
settings dict. Changing either changes every cache key, so both are kept stable on purpose.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np


def content_hash(images) -> str:
    """SHA-256 (hex) of a float32 array's shape and bytes (an image stream such as
    `tfminv.data.streaming.StreamedImages` gives its own `content_hash()`)."""
    if hasattr(images, "content_hash"):
        return images.content_hash()
    a = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
    h = hashlib.sha256(str(a.shape).encode())
    h.update(a)  # the buffer itself: tobytes() would copy it
    return h.hexdigest()


def short_hash(*arrays, n: int = 16) -> str:
    """The first `n` hex digits of each array's content_hash, concatenated (run metadata)."""
    return "".join(content_hash(a)[:n] for a in arrays)


def digest(obj, n: int = 12) -> str:
    """Short stable hash of a JSON-able object (cache keys)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]
