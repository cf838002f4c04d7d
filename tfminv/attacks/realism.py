"""The realism term of the identity method: the attacker's image prior P, trained on the
auxiliary images alone (public data, no query), and the distance of an image to what P makes
of it.

    prior = train_prior(aux_images, config=train_config, workdir=folder, width=0.25,
                        val=val_images)
    prior_residual(prior, images)        # mean ||x - P(x)||^2 per pixel

P is `tfminv.models.prior.build_image_prior`, a denoising autoencoder (input noise
`PRIOR_NOISE`, code size `PRIOR_LATENT`) trained with pixel MSE to give back the clean
auxiliary image. The identity inverter then adds realism_weight * ||G(v) - P(G(v))||^2 to its
loss (`tfminv.attacks.identity`), with P frozen: what the surrogate reads in G(v) has to be
something faces of the auxiliary set also show, not detail that only classifiers respond to.
This is a denoising-autoencoder prior (as in Plug & Play Generative Networks' DAE variant),
not a discriminator or a GAN generator: it needs no adversarial training, so it is cached and
resumed like every other model, and one trained prior serves every weight.

Cached like every trained model (`tfminv.training.fit_cached`, code kind 'prior'). NumPy at
import.
"""

from __future__ import annotations

import numpy as np

from tfminv.errors import DataError

#: std of the input noise while P trains (pixels in [0, 1]): small, so the residual estimates
#: the density's gradient rather than a blur of the image
PRIOR_NOISE = 0.1
#: the size of P's code
PRIOR_LATENT = 128


def train_prior(images, *, config, workdir, width: float, val=None, epochs: int = 0,
                reuse: bool = True):
    """Train (or reuse) the image prior on images [N, H, W, C] in [0, 1]; val: held-out images
    for model selection (lowest val_loss), None: the last epoch's weights; epochs: its own
    epochs (the identity setting prior_epochs), 0: config's. The run folder is
    workdir/image_prior-<key> (`fit_cached`); returns the Keras model with `run_dir` set.

    Why its own epochs: on 900 MNIST digits (width 0.125, batch 64) P's residual on held-out
    digits was 0.094 after 3 epochs (worse than their mean image, 0.074), 0.030 after 10 and
    0.016 after 20, against 0.077 for the same pixels shuffled: it needs more steps than an
    inverter on the same rows."""
    from tfminv.hashing import short_hash
    from tfminv.models.prior import build_image_prior
    from tfminv.training import fit_cached

    x = np.asarray(images, np.float32)
    if x.ndim != 4 or len(x) < 2:
        raise DataError(f"image prior: expected images [N, H, W, C] with N >= 2, got {x.shape}")
    xv = None if val is None else np.asarray(val, np.float32)
    if int(epochs) > 0:
        config = config.replace(epochs=int(epochs))
    meta = {"width": float(width), "latent": PRIOR_LATENT, "noise": PRIOR_NOISE,
            "aux": short_hash(x), "val": None if xv is None else short_hash(xv)}
    return fit_cached(lambda: build_image_prior(x.shape[1:], width, PRIOR_LATENT, PRIOR_NOISE),
                      x, x, config=config, workdir=workdir, name="image_prior", meta=meta,
                      code="prior", val=None if xv is None else (xv, xv), loss="mse",
                      reuse=reuse)


def prior_residual(prior, images, batch_size: int = 256) -> float:
    """Mean per-pixel ||x - P(x)||^2 over images [N, H, W, C]: how far P moves them (lower = more
    like the auxiliary faces it learnt). Reported beside the identity method's scores for its
    reconstructions and for the real victims, so the term's effect is measured, not assumed."""
    x = np.asarray(images, np.float32)
    if not len(x):
        return float("nan")
    total = 0.0
    for i in range(0, len(x), batch_size):
        b = x[i:i + batch_size]
        total += float(np.sum((np.asarray(prior.predict_on_batch(b), np.float32) - b) ** 2))
    return total / x.size
