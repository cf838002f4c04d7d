"""Shape helpers shared by the classifier and inverter builders (no Keras, no TensorFlow).

    image_shape(image_size) -> (H, W, C)   S, (H, W) or (H, W, C); H, W >= MIN_SIDE
    scaled(channels, width) -> int         channel count after the width multiplier
"""

from __future__ import annotations

import numpy as np

from tfminv.errors import ConfigError

MIN_SIDE = 8  # three 2x poolings in the digit trunk leave a 1x1 map


def scaled(channels: int, width: float) -> int:
    """Channel count after the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def image_shape(image_size) -> tuple[int, int, int]:
    """(H, W, C) from an int S (S x S greyscale, the paper's form), (H, W) or (H, W, C)."""
    if isinstance(image_size, (int, np.integer)):
        shape = (int(image_size), int(image_size), 1)
    else:
        dims = tuple(int(d) for d in image_size)
        if len(dims) == 2:
            dims = (*dims, 1)
        if len(dims) != 3:
            raise ConfigError(f"image shape must be S, (H, W) or (H, W, C), got {image_size!r}")
        shape = dims
    h, w, c = shape
    if min(h, w) < MIN_SIDE or c < 1:
        raise ConfigError(f"image shape {shape}: expected height and width >= {MIN_SIDE} and at "
                          "least one channel")
    return shape
