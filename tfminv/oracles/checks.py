"""Checks on a target before an attack relies on it: each failure is one line (a TfminvError)
naming the target and what was found, instead of a Keras or TensorFlow traceback mid-attack.

    check_keras_archive(path)               a `.keras` file is a Keras model archive
    check_image_shape(expected, got, src)   the target accepts the attack's images
    check_probabilities(preds, src)         an output is a probability vector, not logits
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, OracleError


def check_keras_archive(path: str | Path) -> Path:
    """A `.keras` file must be a zip holding `config.json` (Keras 3's format).

    For any other file Keras says "File not found ... Please ensure the file is an accessible
    `.keras` zip file" although the file exists; this names what the file actually is.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file (expected a .keras model)")
    if p.suffix != ".keras":
        raise ConfigError(f"{p}: expected a .keras file (Keras 3 model archive)")
    if not zipfile.is_zipfile(p):
        with open(p, "rb") as f:
            head = f.read(8)
        kind = "an HDF5 file (legacy .h5 model?)" if head.startswith(b"\x89HDF") else \
            "empty" if not head else f"not a zip archive (starts with {head!r})"
        raise ConfigError(f"{p}: not a Keras model archive: {kind}")
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise ConfigError(f"{p}: not a readable Keras model archive: {e}") from None
    if "config.json" not in names:
        raise ConfigError(f"{p}: a zip archive but not a Keras model (no config.json; holds "
                          f"{sorted(names)[:5]})")
    return p


def check_image_shape(expected, got, source: str) -> None:
    """`expected` is the target's input shape without the batch axis (None = any size);
    `got` is the images' shape, with or without the batch axis. Does nothing if unknown."""
    if expected is None:
        return
    expected = tuple(None if d is None else int(d) for d in expected)
    got = tuple(int(d) for d in got)
    if len(got) == len(expected) + 1:
        got = got[1:]
    if len(got) != len(expected) or any(e is not None and e != g
                                        for e, g in zip(expected, got)):
        want = "x".join("?" if d is None else str(d) for d in expected)
        raise OracleError(f"{source}: the target takes images of shape {want}, the attack's "
                          f"images are {'x'.join(map(str, got))}")


def check_probabilities(preds, source: str, *, atol: float = 1e-3,
                        require_sum_one: bool = True) -> None:
    """Raise OracleError unless every row of `preds` [n, m] is a probability vector.

    Entries must lie in [0, 1] (within `atol`) and each row sum to 1 within `atol`; with
    `require_sum_one=False` a row may sum to less (an API that releases only its top-k
    entries). A target that returns logits fails here; declare it as logits to have a softmax
    applied instead. The message names `source` and the values found.
    """
    p = np.asarray(preds, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise OracleError(f"{source}: expected prediction vectors [n, m], got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise OracleError(f"{source}: output contains NaN or infinite values")
    sums = p.sum(axis=1)
    lo, hi = float(p.min()), float(p.max())
    bad_sum = (np.abs(sums - 1) > atol) if require_sum_one else (sums > 1 + atol)
    if lo < -atol or hi > 1 + atol or bad_sum.any():
        raise OracleError(
            f"{source}: output is not a probability vector (values in [{lo:.3g}, {hi:.3g}], "
            f"row sums in [{sums.min():.3g}, {sums.max():.3g}]); if the target returns logits, "
            "declare it so that a softmax is applied")
