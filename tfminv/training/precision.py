"""Mixed-precision choice: mixed_float16 on GPU; on CPU the policy the benchmark found faster.

`bench/precision_bench.py` measures float32 against mixed_bfloat16 for the classifier and the
inverter on the CPU. On the project's 2-core AVX512_BF16 CPU at width 0.25, batch 128 (a shared,
loaded machine, so ratios matter more than absolute times), mixed_bfloat16 ran
inverter 32px 72 vs 153 ms/step, inverter 64px 502 vs 707, classifier 32px 153 vs 189,
classifier 64px 1902 vs 2402 (float32), and an inverter trained 3 epochs on real MNIST digits
reached validation MSE 0.1150 (bf16) vs 0.1156 (float32) in 16.6 s vs 20.2 s. So CPU_DEFAULT is
mixed_bfloat16; the Truncation layer and every model's output stay float32.
"""

from __future__ import annotations

import contextlib

from tfminv.errors import ConfigError

CHOICES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
CPU_DEFAULT = "mixed_bfloat16"


def resolve(precision: str = "auto") -> str:
    """Turn 'auto' into a concrete Keras dtype policy name for the current machine."""
    if precision not in CHOICES:
        raise ConfigError(f"--precision must be one of {', '.join(CHOICES)}, got {precision!r}")
    if precision != "auto":
        return precision
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else CPU_DEFAULT


@contextlib.contextmanager
def policy_scope(precision: str = "auto"):
    """Set the global Keras dtype policy for models built inside the block, then restore it."""
    import keras

    name = resolve(precision)
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield name
    finally:
        keras.mixed_precision.set_global_policy(old)
