"""The authors' target classifiers: a 4-block CNN for 64x64 faces, a 3-block one for 32x32 digits.

Each block is Conv 3x3 (same) -> BatchNorm -> MaxPool 2 -> ReLU; then Flatten -> Dense ->
Dropout 0.5 -> Dense(m). The model returns logits (softmax is applied when predictions are released).
`width` scales every conv channel count for cheaper runs (the small hidden Dense is kept).

Other image shapes (H, W, C) (e.g. a user's 28x28x1, 32x32x3 or 112x92x1 data) take the face
trunk (4 blocks, hidden 5m) when min(H, W) >= 64 and the digit trunk (3 blocks, hidden 50)
otherwise; height and width must be at least 8 (three 2x poolings).
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
    from tfminv.models.inverter import image_shape

    if int(num_classes) < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
    if not float(width) > 0:
        raise ConfigError(f"width multiplier must be > 0, got {width}")
    return image_shape(image_size)


def conv_blocks(x, channels, width: float = 1.0):
    """The authors' conv trunk: per block Conv 3x3 (same) -> BatchNorm -> MaxPool 2 -> ReLU."""
    for i, ch in enumerate(channels):
        x = fast_layers.Conv2D(scaled(ch, width), 3, padding="same", name=f"conv{i}")(x)
        x = fast_layers.BatchNorm(epsilon=1e-5, momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return x


def build_classifier(num_classes: int, image_size, width: float = 1.0,
                     name: str | None = None) -> keras.Model:
    """Logits classifier for [N, H, W, C] images in [0, 1]; image_size: S (S x S x 1), (H, W)
    or (H, W, C)."""
    h, w, c = _check(num_classes, image_size, width)
    m = int(num_classes)
    face = min(h, w) >= 64
    channels = FACE_CHANNELS if face else DIGIT_CHANNELS
    hidden = 5 * m if face else 50
    inputs = keras.Input((h, w, c), name="image")
    x = conv_blocks(inputs, channels, width)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(hidden, name="fc1")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    x = keras.layers.Dense(m, name="logits")(x)
    x = keras.layers.Activation("linear", dtype="float32", name="logits_f32")(x)
    return keras.Model(inputs, x, name=name or ("face_classifier" if face else "digit_classifier"))
