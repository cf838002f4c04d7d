"""Deterministic mode: the same command gives the same numbers, bit for bit, on one machine.

By default training is seeded (`keras.utils.set_random_seed(config.seed)` in `fit`) but not
bit-reproducible: TensorFlow's CPU kernels (oneDNN convolutions, Eigen reductions) split work
over a thread pool and may add partial sums in a different order from run to run, and the
differences grow over epochs into different trained weights (measured in
experiments/REPRODUCTION.md, "Reruns and seeds"). `enable(seed)` turns on
`tf.config.experimental.enable_op_determinism()` (deterministic kernels; ops without one raise;
tf.data keeps element order) and seeds Python, NumPy, TensorFlow and Keras. It is process-wide,
must run before TensorFlow executes any op that should be deterministic, and costs speed.
"""

from __future__ import annotations

_STATE = {"enabled": False, "seed": None}


def enable(seed: int = 1) -> None:
    """Seed everything with `seed` and make TensorFlow ops deterministic (for this process)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
    _STATE.update(enabled=True, seed=int(seed))


def enabled() -> bool:
    """Whether `enable` ran in this process (recorded in run.json of trained models)."""
    return bool(_STATE["enabled"])
