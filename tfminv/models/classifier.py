"""The authors' target classifiers: a 4-block CNN for 64x64 faces, a 3-block one for 32x32 digits.

Each block is Conv 3x3 (same) -> BatchNorm -> MaxPool 2 -> ReLU; then Flatten -> Dense ->
Dropout 0.5 -> Dense(m). The model returns logits (softmax is applied when predictions are released).
`width` scales every conv channel count for cheaper runs (the small hidden Dense is kept).
"""

from __future__ import annotations

import keras

from tfminv.errors import ConfigError
from tfminv.models import fast_layers

FACE_CHANNELS = (128, 256, 512, 1024)
DIGIT_CHANNELS = (128, 256, 512)


def scaled(channels: int, width: float) -> int:
    """Channel count after the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def _check(num_classes, image_size, width):
    if int(num_classes) < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
    if int(image_size) not in (32, 64):
        raise ConfigError(f"image_size must be 32 (digits) or 64 (faces), got {image_size}")
    if not float(width) > 0:
        raise ConfigError(f"width multiplier must be > 0, got {width}")


def conv_blocks(x, channels, width: float = 1.0):
    """The authors' conv trunk: per block Conv 3x3 (same) -> BatchNorm -> MaxPool 2 -> ReLU."""
    for i, ch in enumerate(channels):
        x = fast_layers.Conv2D(scaled(ch, width), 3, padding="same", name=f"conv{i}")(x)
        x = fast_layers.BatchNorm(epsilon=1e-5, momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return x


def build_classifier(num_classes: int, image_size: int, width: float = 1.0,
                     name: str | None = None) -> keras.Model:
    """Logits classifier for [N, image_size, image_size, 1] images in [0, 1]."""
    _check(num_classes, image_size, width)
    m = int(num_classes)
    face = int(image_size) == 64
    channels = FACE_CHANNELS if face else DIGIT_CHANNELS
    hidden = 5 * m if face else 50
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = conv_blocks(inputs, channels, width)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(hidden, name="fc1")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    x = keras.layers.Dense(m, name="logits")(x)
    x = keras.layers.Activation("linear", dtype="float32", name="logits_f32")(x)
    return keras.Model(inputs, x, name=name or ("face_classifier" if face else "digit_classifier"))
