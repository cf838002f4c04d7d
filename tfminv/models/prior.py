"""The attacker's image prior: a denoising autoencoder of the auxiliary images.

    image [N, H, W, C] -> GaussianNoise(noise, training only) -> the classifier's conv trunk
    (`classifier.conv_blocks`) -> Dense(latent) -> the inverters' transpose-CNN
    (`inverter.build_decoder`) -> image [N, H, W, C]

Trained to give back the clean image from a noisy one (`tfminv.attacks.realism`), its residual
P(x) - x points toward denser regions of the images it learnt (for small noise the residual of
a denoising autoencoder estimates noise^2 * grad log p(x): Alain & Bengio, JMLR 2014), so
||x - P(x)||^2 is small on faces like the auxiliary ones and large on detail they never show.
That is the realism term of the identity method. Both halves are the project's own builders,
so the prior follows the shape rules of classifier and inverter (any (H, W, C) they accept).
"""

from __future__ import annotations

import keras

from tfminv.errors import ConfigError
from tfminv.models.classifier import DIGIT_CHANNELS, FACE_CHANNELS, _check, conv_blocks
from tfminv.models.inverter import build_decoder


def build_image_prior(image_size, width: float = 1.0, latent: int = 128, noise: float = 0.1,
                      name: str = "image_prior") -> keras.Model:
    """The denoising autoencoder image -> image (module docstring). noise: std of the
    Gaussian noise added to the input while training (pixels in [0, 1]); latent: the code's
    size. The face trunk (4 blocks) for min(H, W) >= 64, the digit trunk (3) otherwise, as
    `build_classifier` chooses."""
    h, w, c = _check(2, image_size, width)
    if int(latent) < 1:
        raise ConfigError(f"image prior: latent={latent!r}; expected a code size >= 1")
    if not float(noise) >= 0:
        raise ConfigError(f"image prior: noise={noise!r}; expected a standard deviation >= 0")
    inputs = keras.Input((h, w, c), name="image")
    x = keras.layers.GaussianNoise(float(noise), name="noise")(inputs)
    x = conv_blocks(x, FACE_CHANNELS if min(h, w) >= 64 else DIGIT_CHANNELS, width)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(int(latent), name="code")(x)
    x = build_decoder(int(latent), (h, w, c), width, name="prior_decoder")(x)
    return keras.Model(inputs, x, name=name)
