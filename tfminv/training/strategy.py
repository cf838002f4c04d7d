"""tf.distribute strategy from a flag value: default, mirrored (all GPUs, else all logical CPUs),
multi-worker (reads TF_CONFIG; a single worker when it is unset).

The strategy is created once per program by `tfminv.distribute.start` (the binaries call it
before any other TensorFlow work, which multi-worker collectives require); this returns it.
"""

from __future__ import annotations

from tfminv.distribute import CHOICES  # noqa: F401 - re-exported for callers of this module
from tfminv.errors import ConfigError


def get_strategy(name: str = "default"):
    """Return the program's tf.distribute.Strategy for `name` (created on first use); build and
    compile models inside its scope()."""
    from tfminv import distribute

    if name not in distribute.CHOICES:
        raise ConfigError(f"strategy (--strategy) must be one of "
                          f"{', '.join(distribute.CHOICES)}, "
                          f"got {name!r}")
    started = distribute.strategy_name()
    if started is not None and started != name:
        if name == "default":  # a single-device step inside a distributed program
            import tensorflow as tf

            return tf.distribute.get_strategy()
        raise ConfigError(f"--strategy={name}: this program already runs with "
                          f"--strategy={started} (one strategy per program)")
    return distribute.start(name)
