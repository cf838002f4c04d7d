"""tf.distribute strategy from a flag value: default, mirrored (all GPUs, else all logical CPUs),
multi-worker (reads TF_CONFIG; a single worker when it is unset)."""

from __future__ import annotations

from tfminv.errors import ConfigError

CHOICES = ("default", "mirrored", "multi-worker")


def get_strategy(name: str = "default"):
    """Return a tf.distribute.Strategy; build and compile models inside its scope()."""
    if name not in CHOICES:
        raise ConfigError(f"--strategy must be one of {', '.join(CHOICES)}, got {name!r}")
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.MultiWorkerMirroredStrategy()
