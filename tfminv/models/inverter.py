"""The authors' inversion model: a transpose-CNN from a prediction vector to a [H, W, C] image.

Vector -> 1x1 -> ConvTranspose 4x4 valid (4x4) -> BN -> Tanh -> ConvTranspose 4x4 stride 2
(same) -> BN -> Tanh ... -> ConvTranspose to C channels -> Sigmoid. Channels 1024..128 for
64x64 and 512..128 for 32x32, scaled by `width`. With `k`, a `Truncation(k)` layer comes first
so the model (and a SavedModel exported from it) takes the raw prediction vector.

Any other image shape (H, W, C) follows one rule (`decoder_plan`): the decoder doubles a 4x4
map n times, with n the smallest count whose canvas 4 * 2**n covers max(H, W); its blocks take
the authors' channel sequence (128 at the last block, doubling towards the first, capped at
1024), and the canvas is centre-cropped to H x W inside the model (a `Cropping2D` before the
sigmoid). 32x32 and 64x64 give exactly the authors' models (no crop layer); 28x28 decodes a
32x32 canvas, 112x92 a 128x128 one. Nothing is resized: the output has the victims' shape.
"""

from __future__ import annotations

import keras

from tfminv.errors import ConfigError
from tfminv.models import fast_layers
from tfminv.models.shapes import MIN_SIDE, image_shape, scaled  # noqa: F401 (re-exported)
from tfminv.models.truncation import TopK, Truncation, _check_k

MAX_CHANNELS = 1024


def decoder_plan(image_size) -> tuple[tuple[int, ...], tuple[int, int]]:
    """(block channels before `width`, canvas (side, side)) for an image shape: the rule in the
    module docstring."""
    h, w, _ = image_shape(image_size)
    n = 1
    while 4 * 2 ** n < max(h, w):
        n += 1
    channels = tuple(min(MAX_CHANNELS, 128 * 2 ** (n - 1 - i)) for i in range(n))
    return channels, (4 * 2 ** n, 4 * 2 ** n)


def build_decoder(input_dim: int, image_size, width: float = 1.0,
                  name: str = "decoder") -> keras.Model:
    """The transpose-CNN alone: (transformed) vector [N, input_dim] -> image [N, H, W, C].

    image_size: S (S x S x 1), (H, W) or (H, W, C); see `decoder_plan` for the layers chosen.
    """
    h, w, c = image_shape(image_size)
    if not float(width) > 0:
        raise ConfigError(f"width multiplier must be > 0, got {width}")
    if int(input_dim) < 1:
        raise ConfigError(f"input_dim must be positive, got {input_dim}")
    channels, (ch_, cw_) = decoder_plan((h, w, c))
    inputs = keras.Input((int(input_dim),), name="vector")
    x = keras.layers.Reshape((1, 1, int(input_dim)), name="to_1x1")(inputs)
    for i, ch in enumerate(channels):
        if i == 0:
            # reduces over the input_dim entries: float32 where bf16 kernels fault (see there)
            x = fast_layers.Conv2DTranspose(scaled(ch, width), 4, strides=1, padding="valid",
                                             name=f"deconv{i}",
                                             dtype=fast_layers.safe_reduction_dtype(input_dim))(x)
        else:
            x = fast_layers.Conv2DTranspose(scaled(ch, width), 4, strides=2, padding="same",
                                             name=f"deconv{i}")(x)
        x = fast_layers.BatchNorm(epsilon=1e-5, momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.Activation("tanh", name=f"tanh{i}")(x)
    x = fast_layers.Conv2DTranspose(c, 4, strides=2, padding="same", name="to_image")(x)
    if (ch_, cw_) != (h, w):
        top, left = (ch_ - h) // 2, (cw_ - w) // 2
        x = keras.layers.Cropping2D(((top, ch_ - h - top), (left, cw_ - w - left)),
                                    name="crop")(x)
    x = keras.layers.Activation("sigmoid", dtype="float32", name="sigmoid")(x)
    return keras.Model(inputs, x, name=name)


def build_inverter(input_dim: int, image_size, width: float = 1.0, k: int | None = None,
                   name: str | None = None) -> keras.Model:
    """Inversion model from a prediction vector [N, input_dim] to images [N, H, W, C]
    (image_size: S, (H, W) or (H, W, C), as `build_decoder`).

    With `k`, the first layer is `Truncation(k)` and the input is the raw probability vector;
    k > input_dim raises ConfigError here, at build time.
    """
    if k is not None:
        _check_k(k, int(input_dim))
    inputs = keras.Input((int(input_dim),), name="prediction")
    x = inputs
    if k is not None:
        x = Truncation(k, name="truncation")(x)
    x = build_decoder(input_dim, image_size, width)(x)
    return keras.Model(inputs, x, name=name or (f"inverter_k{k}" if k else "inverter"))


def with_truncation(decoder: keras.Model, input_dim: int, k: int,
                    name: str | None = None) -> keras.Model:
    """Put `Truncation(k)` in front of an already trained decoder (weights shared, not copied)."""
    _check_k(k, int(input_dim))
    inputs = keras.Input((int(input_dim),), name="prediction")
    x = Truncation(k, name="truncation")(inputs)
    return keras.Model(inputs, decoder(x), name=name or f"inverter_k{k}")


def with_release(inverter: keras.Model, input_dim: int, k: int,
                 name: str | None = None) -> keras.Model:
    """Feed a trained full-vector inverter (raw prediction -> image, its own preprocessing
    inside) what a top-k release puts out: `TopK(k)` (top-k probabilities, zeros elsewhere)
    in front of it. Weights shared, not copied."""
    _check_k(k, int(input_dim))
    inputs = keras.Input((int(input_dim),), name="prediction")
    x = TopK(k, name="release_topk")(inputs)
    return keras.Model(inputs, inverter(x), name=name or f"released_k{k}")
