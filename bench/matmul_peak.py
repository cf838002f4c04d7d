"""Matmul peak of this machine measured with TensorFlow: large square tf.matmul in float32 and bfloat16.

The peak is the yardstick of hardware efficiency: a training step's FLOP/s divided by the peak
measured in the same run (same threads, same contention). Prints one JSON line per dtype.

    python bench/matmul_peak.py [--n 2048] [--reps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import common


class MatmulPeak:
    """Times C = A @ B on [n, n] operands of one dtype; FLOPs = 2 n^3 per product."""

    def __init__(self, tf, n: int, dtype: str, device: str | None = None):
        self.tf, self.n, self.dtype = tf, n, dtype
        self.device = device or ("/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0")
        with tf.device(self.device):
            self.a = tf.random.uniform((n, n), dtype=tf.float32)
            self.b = tf.random.uniform((n, n), dtype=tf.float32)
            if dtype != "float32":
                self.a, self.b = tf.cast(self.a, dtype), tf.cast(self.b, dtype)

        @tf.function(jit_compile=False)
        def product(a, b):
            # Several chained products per call, so call overhead is negligible on a GPU too;
            # reduce to a scalar so the result is fetched cheaply (the fetch forces completion).
            c = tf.matmul(a, b)
            return tf.reduce_sum(tf.cast(c[:1, :1], tf.float32))

        self._product = product
        self.run(1)  # warm-up: tracing, oneDNN primitive creation

    def run(self, reps: int) -> list[float]:
        """TFLOP/s of each of `reps` products."""
        out = []
        with self.tf.device(self.device):
            for _ in range(reps):
                t0 = time.perf_counter()
                self._product(self.a, self.b).numpy()
                dt = time.perf_counter() - t0
                out.append(2 * self.n ** 3 / dt / 1e12)
        return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2048, help="matrix side (use 8192 on a GPU)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtypes", default="float32,bfloat16")
    a = p.parse_args(argv)
    tf = common.setup_tf(a.threads)
    for dtype in a.dtypes.split(","):
        peak = MatmulPeak(tf, a.n, dtype)
        tflops = peak.run(a.reps)
        common.emit({"bench": "matmul_peak", "dtype": dtype, "n": a.n, "threads": a.threads,
                     "device": peak.device, "tflops_median": common.median(tflops),
                     "tflops_max": max(tflops), "tflops": tflops, "machine": common.machine_info()})


if __name__ == "__main__":
    main()
