"""The authors' inversion model: a transpose-CNN from a prediction vector to a [H, W, 1] image.

Vector -> 1x1 -> ConvTranspose 4x4 valid (4x4) -> BN -> Tanh -> ConvTranspose 4x4 stride 2
(same) -> BN -> Tanh ... -> ConvTranspose to 1 channel -> Sigmoid. Channels 1024..128 for
64x64 and 512..128 for 32x32, scaled by `width`. With `k`, a `Truncation(k)` layer comes first
so the model (and a SavedModel exported from it) takes the raw prediction vector.
"""

from __future__ import annotations

import keras

from tfminv.errors import ConfigError
from tfminv.models import fast_layers
from tfminv.models.classifier import scaled
from tfminv.models.truncation import Truncation, _check_k

FACE_CHANNELS = (1024, 512, 256, 128)
DIGIT_CHANNELS = (512, 256, 128)


def build_decoder(input_dim: int, image_size: int, width: float = 1.0,
                  name: str = "decoder") -> keras.Model:
    """The transpose-CNN alone: (transformed) vector [N, input_dim] -> image [N, S, S, 1]."""
    if int(image_size) not in (32, 64):
        raise ConfigError(f"image_size must be 32 or 64, got {image_size}")
    if not float(width) > 0:
        raise ConfigError(f"width multiplier must be > 0, got {width}")
    if int(input_dim) < 1:
        raise ConfigError(f"input_dim must be positive, got {input_dim}")
    channels = FACE_CHANNELS if int(image_size) == 64 else DIGIT_CHANNELS
    inputs = keras.Input((int(input_dim),), name="vector")
    x = keras.layers.Reshape((1, 1, int(input_dim)), name="to_1x1")(inputs)
    for i, ch in enumerate(channels):
        if i == 0:
            x = fast_layers.Conv2DTranspose(scaled(ch, width), 4, strides=1, padding="valid",
                                             name=f"deconv{i}")(x)
        else:
            x = fast_layers.Conv2DTranspose(scaled(ch, width), 4, strides=2, padding="same",
                                             name=f"deconv{i}")(x)
        x = fast_layers.BatchNorm(epsilon=1e-5, momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.Activation("tanh", name=f"tanh{i}")(x)
    x = fast_layers.Conv2DTranspose(1, 4, strides=2, padding="same", name="to_image")(x)
    x = keras.layers.Activation("sigmoid", dtype="float32", name="sigmoid")(x)
    return keras.Model(inputs, x, name=name)


def build_inverter(input_dim: int, image_size: int, width: float = 1.0, k: int | None = None,
                   name: str | None = None) -> keras.Model:
    """Inversion model from a prediction vector [N, input_dim] to images [N, S, S, 1].

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
