"""Mixed-precision choice: mixed_float16 on GPU; on CPU the policy the benchmark found faster.

`bench/precision_bench.py` measures float32 against mixed_bfloat16 for the classifier and the
inverter on the CPU. On the project's 2-core AVX512_BF16 CPU at width 0.25, batch 128 (a shared,
loaded machine, so ratios matter more than absolute times), mixed_bfloat16 ran
inverter 32px 72 vs 153 ms/step, inverter 64px 502 vs 707, classifier 32px 153 vs 189,
classifier 64px 1902 vs 2402 (float32), and an inverter trained 3 epochs on real MNIST digits
reached validation MSE 0.1150 (bf16) vs 0.1156 (float32) in 16.6 s vs 20.2 s; the benchmark's
quiet run (BENCHMARKS.md) gave bf16 1.2-1.45x over float32. So CPU_DEFAULT is mixed_bfloat16 on
CPUs with native bf16 (float32 elsewhere); the Truncation layer and model outputs stay float32.
"""

from __future__ import annotations

import contextlib

from tfminv.errors import ConfigError

CHOICES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
CPU_DEFAULT = "mixed_bfloat16"


def resolve(precision: str = "auto") -> str:
    """Turn 'auto' into a concrete Keras dtype policy name for the current machine."""
    if precision not in CHOICES:
        raise ConfigError(f"precision (--precision) must be one of {', '.join(CHOICES)}, "
                          f"got {precision!r}")
    if precision != "auto":
        return precision
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return CPU_DEFAULT if _cpu_has_bf16() else "float32"


def _cpu_has_bf16() -> bool:
    """bf16 only pays off where the CPU computes it natively (AVX512_BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
