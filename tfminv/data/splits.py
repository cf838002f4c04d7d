"""The seeded hold-out split every trainer and scenario uses (one home, so equal seeds give equal
splits everywhere and cache keys stay stable).

No TensorFlow.
"""

from __future__ import annotations

import numpy as np

from tfminv.errors import ConfigError, DataError


def holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) of `n` rows: a seeded permutation (`np.random.default_rng(seed)`),
    its first max(1, round(n * fraction)) rows held out.

    Raises ConfigError for a fraction outside (0, 1) and DataError when no training row is left.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"hold-out fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(int(n))
    n_val = max(1, int(round(n * fraction)))
    if n - n_val < 1:
        raise DataError(f"{n} rows: too few to hold out {fraction:.0%} and train on the rest")
    return order[n_val:], order[:n_val]
