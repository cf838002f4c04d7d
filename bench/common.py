"""Shared helpers for the benchmark scripts: threads, JSON lines, timing, memory, FLOP counting.

Nothing here imports TensorFlow or PyTorch at module level, so a PyTorch worker process never
loads TensorFlow (and the reverse), and each process's peak memory is its own framework's.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time

# Benchmark model registry: name -> (kind, m, image_size). m is the class count / vector length.
# FaceScrub copy has 12 identities (the paper 530); the MNIST target is trained on digits 0-4.
MODELS = {
    "face_classifier": ("classifier", 12, 64),
    "face_classifier_m530": ("classifier", 530, 64),
    "face_inverter": ("inverter", 12, 64),
    "face_inverter_m530": ("inverter", 530, 64),
    "digit_classifier": ("classifier", 5, 32),
    "digit_inverter": ("inverter", 5, 32),
}

BATCH = 128  # the authors' batch size


def emit(record: dict, stream=None) -> None:
    """Print one measurement as a JSON line (flushed, so a parent process sees it at once)."""
    stream = stream or sys.stdout
    stream.write(json.dumps(record, sort_keys=True) + "\n")
    stream.flush()


def set_thread_env(threads: int) -> None:
    """Thread-count environment for OpenMP/oneDNN; call before importing a framework."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def setup_tf(threads: int):
    """Import TensorFlow with `threads` intra-op threads, 1 inter-op thread, GPU memory growth."""
    set_thread_env(threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # Several worker processes share one GPU: allocate on demand instead of mapping it all.
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    return tf


def setup_torch(threads: int):
    """Import PyTorch with `threads` intra-op threads and 1 inter-op thread; returns torch."""
    set_thread_env(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    return torch


@contextlib.contextmanager
def stock_keras_layers(enabled: bool = True):
    """Models built inside use Keras' own Conv2D / Conv2DTranspose / BatchNormalization instead
    of tfminv.models.fast_layers (the builders look the classes up when called)."""
    import keras
    from tfminv.models import fast_layers

    names = ("Conv2D", "Conv2DTranspose", "BatchNorm")
    saved = [getattr(fast_layers, n) for n in names]
    if enabled:
        for n, cls in zip(names, (keras.layers.Conv2D, keras.layers.Conv2DTranspose,
                                  keras.layers.BatchNormalization)):
            setattr(fast_layers, n, cls)
    try:
        yield
    finally:
        for n, cls in zip(names, saved):
            setattr(fast_layers, n, cls)


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def timed(fn, steps: int) -> list[float]:
    """Wall time in seconds of each of `steps` calls of fn() (fn must block until done)."""
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def machine_info() -> dict:
    """CPU model, core count, load average: enough to tell runs on different machines apart."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
            "python": platform.python_version()}


# ---------------------------------------------------------------------------------------------
# FLOPs from layer shapes (multiply-adds count 2). Training step = 3x forward (forward, gradient
# w.r.t. activations, gradient w.r.t. weights); BN, pooling and activations are not counted.

def conv_flops(out_h, out_w, kh, kw, cin, cout) -> int:
    """Conv2D: each output element is a kh*kw*cin dot product."""
    return 2 * out_h * out_w * kh * kw * cin * cout


def conv_transpose_flops(in_h, in_w, kh, kw, cin, cout) -> int:
    """Conv2DTranspose: each input element is scattered through a kh*kw*cout kernel."""
    return 2 * in_h * in_w * kh * kw * cin * cout


def dense_flops(n_in, n_out) -> int:
    return 2 * n_in * n_out


def _iter_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # nested model (e.g. the decoder)
            yield from _iter_layers(layer)
        else:
            yield layer


def keras_forward_flops(model) -> int:
    """Forward FLOPs per example of a Keras model, from its Conv2D / Conv2DTranspose / Dense layers."""
    import keras

    total = 0
    for layer in _iter_layers(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape
            kh, kw = layer.kernel_size
            total += conv_transpose_flops(h, w, kh, kw, cin, layer.filters)
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output.shape
            cin = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += conv_flops(h, w, kh, kw, cin, layer.filters)
        elif isinstance(layer, keras.layers.Dense):
            total += dense_flops(layer.input.shape[-1], layer.units)
    return int(total)


def torch_forward_flops(module, example) -> int:
    """Forward FLOPs per example of a PyTorch module, from its conv / transpose-conv / linear layers.

    Uses forward hooks on one call with `example` (batch of 1) to read the layer shapes.
    """
    import torch
    from torch import nn

    total = [0]

    def hook(mod, inputs, output):
        x = inputs[0]
        if isinstance(mod, nn.ConvTranspose2d):
            _, cin, h, w = x.shape
            kh, kw = mod.kernel_size
            total[0] += conv_transpose_flops(h, w, kh, kw, cin, mod.out_channels)
        elif isinstance(mod, nn.Conv2d):
            _, cout, h, w = output.shape
            kh, kw = mod.kernel_size
            total[0] += conv_flops(h, w, kh, kw, mod.in_channels, cout)
        elif isinstance(mod, nn.Linear):
            total[0] += dense_flops(mod.in_features, mod.out_features)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = module.training
    module.eval()
    with torch.no_grad():
        module(example)
    module.train(was_training)
    for h in handles:
        h.remove()
    return int(total[0])
