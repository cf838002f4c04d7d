"""Fredrikson et al.'s optimisation attack (CCS 2015, "MI-Face"), the paper's white-box baseline.

Starting from a blank image, gradient descent on the input minimises c(x) = 1 - softmax(F(x))_c
(Algorithm 1 of the paper): x <- Process(clip(x - lr * grad c(x))), stopping a class when its
cost has not improved for `patience` steps or falls below `threshold`; the best image seen is
kept. Process is the denoising (Gaussian blur) and sharpening (unsharp mask) post-processing
that Yang et al. say they apply; by default it is applied to the final image only, because
blurring after every small gradient step undoes the step (measured on a digits classifier: the
attack then stays on one class), and the default cost is -log p_c rather than 1 - p_c, whose
gradient vanishes once the softmax saturates away from c (also measured); both originals are
options (`process_every=1`, `objective='prob'`). It needs the target's gradients (white-box),
unlike the training-based inverters. All classes are optimised in one batch: the classifier runs in
inference mode, so each image's gradient depends only on its own class.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tfminv.errors import ConfigError

PROCESSES = ("none", "denoise", "sharpen", "denoise+sharpen")
OBJECTIVES = ("prob", "logprob")


@dataclasses.dataclass
class FredriksonConfig:
    """Hyper-parameters (defaults follow Fredrikson et al.: lr 0.1, patience 100, gamma 0.99 on
    the confidence, i.e. cost <= 0.01)."""

    steps: int = 1000            # alpha: most gradient steps per class
    learning_rate: float = 0.1   # lambda
    patience: int = 100          # beta: stop a class after this many steps without improvement
    threshold: float = 0.01      # gamma: stop a class once its cost is at or below this
    objective: str = "logprob"   # 'prob': 1 - p_c (Fredrikson); 'logprob': -log p_c
    process: str = "denoise+sharpen"
    process_every: int = 0       # also apply Process every this many steps (1 = Algorithm 1);
    #                              0 = only to the final image
    blur_sigma: float = 0.6      # Gaussian denoising filter, 3x3 or 5x5 kernel
    sharpen_amount: float = 0.3  # unsharp mask: x + amount * (x - blur(x))
    init: float = 0.0            # constant start image (Fredrikson: 0)

    def __post_init__(self):
        if int(self.steps) < 1:
            raise ConfigError(f"fredrikson steps must be >= 1, got {self.steps}")
        if not float(self.learning_rate) > 0:
            raise ConfigError(f"fredrikson learning_rate must be > 0, got {self.learning_rate}")
        if int(self.patience) < 1 or int(self.process_every) < 0:
            raise ConfigError(f"fredrikson patience must be >= 1 and process_every >= 0, got "
                              f"{self.patience} and {self.process_every}")
        if self.process not in PROCESSES:
            raise ConfigError(f"fredrikson process must be one of {PROCESSES}, "
                              f"got {self.process!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"fredrikson objective must be one of {OBJECTIVES}, "
                              f"got {self.objective!r}")
        if not 0.0 <= float(self.init) <= 1.0:
            raise ConfigError(f"fredrikson init must be in [0, 1], got {self.init}")
        if not float(self.blur_sigma) > 0:
            raise ConfigError(f"fredrikson blur_sigma must be > 0, got {self.blur_sigma}")


@dataclasses.dataclass
class FredriksonResult:
    images: np.ndarray          # [C, H, W, 1] best image per class, post-processed
    confidence: np.ndarray      # [C] target confidence of its class on `images`
    raw_images: np.ndarray      # [C, H, W, 1] the same before post-processing
    raw_confidence: np.ndarray  # [C] target confidence on `raw_images`
    steps: np.ndarray           # [C] steps taken before the class stopped
    seconds_total: float        # wall time of the whole batched optimisation
    seconds_per_class: float    # seconds_total / C


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(2 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def make_process(config: FredriksonConfig):
    """The post-processing step as a TF function on [N, H, W, 1] images (clipped to [0, 1])."""
    import tensorflow as tf

    kernel = tf.constant(_gaussian_kernel(config.blur_sigma)[:, :, None, None])

    def blur(x):
        pad = kernel.shape[0] // 2
        xp = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        return tf.nn.conv2d(xp, kernel, strides=1, padding="VALID")

    def process(x):
        if config.process in ("denoise", "denoise+sharpen"):
            x = blur(x)
        if config.process in ("sharpen", "denoise+sharpen"):
            x = x + config.sharpen_amount * (x - blur(x))
        return tf.clip_by_value(x, 0.0, 1.0)

    return process


def invert_classes(model, classes, image_shape, config: FredriksonConfig | None = None,
                   *, logits: bool = True, init_image=None) -> FredriksonResult:
    """Run the attack for every class in `classes` against a Keras model (white-box).

    model: maps [N, *image_shape] images in [0, 1] to logits (`logits=True`) or probabilities.
    init_image: a start image [*image_shape] for every class (e.g. the mean auxiliary image,
    as IBM ART's MIFace documents) instead of the constant `config.init`.
    Returns the best image per class and the time taken.
    """
    import tensorflow as tf

    config = config or FredriksonConfig()
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if classes.size == 0:
        raise ConfigError("fredrikson: no classes to invert")
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 3:
        raise ConfigError(f"fredrikson: image_shape must be (H, W, C), got {image_shape}")
    n_out = int(model.output_shape[-1])
    if classes.min() < 0 or classes.max() >= n_out:
        raise ConfigError(f"fredrikson: classes must be in [0, {n_out}), got {classes.tolist()}")
    n = len(classes)
    process = make_process(config)
    onehot = tf.one_hot(classes, n_out, dtype=tf.float32)

    def confidence_of(x):
        out = tf.cast(model(x, training=False), tf.float32)
        logp = tf.nn.log_softmax(out, axis=-1) if logits else tf.math.log(out + 1e-12)
        return tf.reduce_sum(logp * onehot, axis=-1)  # log p_c per image

    @tf.function
    def step(x, active, do_process):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logp = confidence_of(x)
            cost = 1.0 - tf.exp(logp) if config.objective == "prob" else -logp
            total = tf.reduce_sum(cost)
        grad = tape.gradient(total, x)
        x_new = tf.clip_by_value(x - config.learning_rate * grad, 0.0, 1.0)
        x_new = tf.cond(do_process, lambda: process(x_new), lambda: x_new)
        mask = tf.reshape(tf.cast(active, tf.float32), [-1, 1, 1, 1])
        return mask * x_new + (1.0 - mask) * x, 1.0 - tf.exp(logp)

    start = time.perf_counter()
    if init_image is not None:
        init_image = np.asarray(init_image, np.float32)
        if init_image.shape != image_shape:
            raise ConfigError(f"fredrikson: init_image of shape {init_image.shape}; expected "
                              f"{image_shape}")
        x = tf.constant(np.broadcast_to(np.clip(init_image, 0, 1), (n,) + image_shape).copy())
    else:
        x = tf.fill((n,) + image_shape, tf.constant(config.init, tf.float32))
    best_cost = np.full(n, np.inf)
    best_x = x.numpy()
    since = np.zeros(n, np.int64)
    steps = np.zeros(n, np.int64)
    active = np.ones(n, bool)
    for i in range(int(config.steps)):
        do_process = tf.constant(config.process != "none" and config.process_every > 0
                                 and (i + 1) % config.process_every == 0)
        x_prev = x
        x, cost = step(x, tf.constant(active), do_process)
        cost = cost.numpy()  # cost of x_prev, the image the gradient was taken at
        improved = active & (cost < best_cost - 1e-7)
        if improved.any():
            best_x[improved] = x_prev.numpy()[improved]
            best_cost[improved] = cost[improved]
        since = np.where(improved, 0, since + active)
        steps += active
        active &= (since < config.patience) & (best_cost > config.threshold)
        if not active.any():
            break
    # the final image of each still-active class has not been scored yet
    final_cost = 1.0 - np.exp(confidence_of(x).numpy())
    better = final_cost < best_cost
    best_x[better] = x.numpy()[better]
    raw_conf = np.exp(confidence_of(tf.constant(best_x)).numpy())
    final = process(tf.constant(best_x)).numpy() if config.process != "none" else best_x
    conf = np.exp(confidence_of(tf.constant(final)).numpy())
    seconds = time.perf_counter() - start
    return FredriksonResult(images=final.astype(np.float32), confidence=conf.astype(np.float32),
                            raw_images=best_x.astype(np.float32),
                            raw_confidence=raw_conf.astype(np.float32), steps=steps,
                            seconds_total=float(seconds), seconds_per_class=float(seconds / n))
