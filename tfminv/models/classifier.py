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
from tfminv.models.shapes import image_shape, scaled  # noqa: F401 (scaled re-exported)

FACE_CHANNELS = (128, 256, 512, 1024)
DIGIT_CHANNELS = (128, 256, 512)


def _check(num_classes, image_size, width):
    if int(num_classes) < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
    if not float(width) > 0:
        raise ConfigError(f"width multiplier must be > 0, got {width}")
    return image_shape(image_size)


INITS = ("keras", "torch")


def kernel_initializer(init: str = "keras"):
    """'keras': Keras' glorot_uniform; 'torch': PyTorch's default for Conv2d/Linear,
    kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)) = VarianceScaling(1/3, fan_in, uniform).
    At 471 classes the PyTorch init trains the face classifier markedly faster (BENCHMARKS.md,
    section 9): the glorot bound of the wide Dense layers is ~2x PyTorch's."""
    if init not in INITS:
        raise ConfigError(f"init={init!r}; expected one of {INITS}")
    if init == "torch":
        return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
    return "glorot_uniform"


def conv_blocks(x, channels, width: float = 1.0, init: str = "keras"):
    """The authors' conv trunk: per block Conv 3x3 (same) -> BatchNorm -> MaxPool 2 -> ReLU."""
    for i, ch in enumerate(channels):
        x = fast_layers.Conv2D(scaled(ch, width), 3, padding="same", name=f"conv{i}",
                               kernel_initializer=kernel_initializer(init))(x)
        x = fast_layers.BatchNorm(epsilon=1e-5, momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return x


AUGMENTATIONS = ("", "flip", "flip+shift")


def build_classifier(num_classes: int, image_size, width: float = 1.0,
                     name: str | None = None, augment: str = "",
                     init: str = "keras") -> keras.Model:
    """Logits classifier for [N, H, W, C] images in [0, 1]; image_size: S (S x S x 1), (H, W)
    or (H, W, C).

    augment: '' (the authors'), 'flip' (random horizontal flips) or 'flip+shift' (also random
    shifts up to 8% with reflected borders): Keras preprocessing layers at the input, active
    in training only, so the trained model is a plain classifier at inference.
    init: kernel initialisation of the convs and Dense layers ('keras' or 'torch', see
    `kernel_initializer`).
    """
    h, w, c = _check(num_classes, image_size, width)
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"augment={augment!r}; expected one of {AUGMENTATIONS}")
    m = int(num_classes)
    face = min(h, w) >= 64
    channels = FACE_CHANNELS if face else DIGIT_CHANNELS
    hidden = 5 * m if face else 50
    inputs = keras.Input((h, w, c), name="image")
    x = inputs
    if augment:
        x = keras.layers.RandomFlip("horizontal", name="aug_flip")(x)
    if "shift" in augment:
        x = keras.layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", name="aug_shift")(x)
    x = conv_blocks(x, channels, width, init)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(hidden, name="fc1", kernel_initializer=kernel_initializer(init))(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    x = keras.layers.Dense(m, name="logits", kernel_initializer=kernel_initializer(init))(x)
    x = keras.layers.Activation("linear", dtype="float32", name="logits_f32")(x)
    return keras.Model(inputs, x, name=name or ("face_classifier" if face else "digit_classifier"))
