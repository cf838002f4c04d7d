"""Attack-time refinement through the surrogate (methods 'identity_refine' and, for its
candidates, 'identity_select').

The identity inverter G = decoder(Truncation_k(v)) is trained on the whole auxiliary set, so
for one victim its output is a compromise. Refinement moves, per victim, the decoder's input
z (starting at z0 = Truncation_k(v)) so that the attacker's surrogate S finds in decoder(z)
what the victim released:

    min_z  ReleasedKL_k(v, S(decoder(z))) + refine_prox * mean((z - z0)^2)

by `refine_steps` Adam steps of size `refine_lr`, keeping per victim the z of the lowest
objective met (so the result is never worse for S than G(v) itself). The image stays an
output of the trained decoder, a generator of auxiliary-like faces: the decoder is the prior
that keeps the search away from free pixel patterns. Gradients go through the decoder and S
only; the target is neither differentiated nor queried (no query per victim).

What it cannot promise: S is a copy of the target, and the judge a classifier of the same
family, so detail that S reads may also sway the judge; the feature-space identity check
(nn_acc) and the figure are how that shows. NumPy at import; TensorFlow inside `refine`.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from tfminv.errors import ConfigError

log = logging.getLogger("tfminv")


def refine(inverter, surrogate_model, released, k: int, *, at_steps, lr: float,
           prox: float, start=None, batch_size: int = 256) -> tuple[list, dict]:
    """([images [N, H, W, C] per entry of at_steps], facts): the best images of one
    refinement of the released vectors [N, m] after each number of steps in `at_steps`
    (increasing; 0 = the inverter's own image decoder(z0); (refine_steps,) for
    'identity_refine', the candidates of 'identity_select' `tfminv.attacks.select`) and
    {"surrogate_kl_start"}, the mean KL before refinement (the caller scores the images, the KL
    after included). start: vectors [N, m] whose codes z0 = Truncation_k(start) the search
    starts from (and stays near, `prox`) instead of the released vectors' own (class inference
    from an auxiliary image the target scores highest for the class); None: `released`.

    inverter: a truncation-style inverter (layers 'truncation' then 'decoder', as
    `tfminv.models.build_inverter` makes them); surrogate_model: image -> logits; lr / prox
    and the largest step count: checked settings (`tfminv.attacks.identity.check_settings`)."""
    import tensorflow as tf

    from tfminv.models.losses import released_kl

    try:
        trunc, decoder = inverter.get_layer("truncation"), inverter.get_layer("decoder")
    except ValueError as e:
        raise ConfigError(f"refinement needs an inverter with 'truncation' and 'decoder' "
                          f"layers; {inverter.name} has "
                          f"{[layer.name for layer in inverter.layers]}") from e
    v_all = np.asarray(released, np.float32)
    s_all = v_all if start is None else np.asarray(start, np.float32)
    if s_all.shape != v_all.shape:
        raise ConfigError(f"refinement: start vectors of shape {s_all.shape} for released "
                          f"vectors of shape {v_all.shape}")
    b1, b2, eps = 0.9, 0.999, 1e-7  # Adam (Kingma & Ba), written out: z is a plain tensor

    def objective(v, z, z0):
        x = decoder(z, training=False)
        kl = released_kl(v, surrogate_model(x, training=False), k)
        return kl + prox * tf.reduce_mean(tf.square(z - z0), -1), kl

    @tf.function(reduce_retracing=True)
    def step(v, z0, z, m1, m2, t, best, best_z):
        # one Adam step on every row (the rows are independent: the sum's gradient is each
        # row's own)
        with tf.GradientTape() as tape:
            tape.watch(z)
            total = tf.reduce_sum(objective(v, z, z0)[0])
        g = tf.cast(tape.gradient(total, z), tf.float32)
        m1 = b1 * m1 + (1 - b1) * g
        m2 = b2 * m2 + (1 - b2) * tf.square(g)
        z = z - lr * (m1 / (1 - b1 ** t)) / (tf.sqrt(m2 / (1 - b2 ** t)) + eps)
        now, _ = objective(v, z, z0)
        better = now < best
        return z, m1, m2, tf.where(better, now, best), tf.where(better[:, None], z, best_z)

    @tf.function(reduce_retracing=True)
    def begin(v, s):
        z0 = tf.cast(trunc(s), tf.float32)
        best, kl0 = objective(v, z0, z0)
        return z0, best, kl0

    @tf.function(reduce_retracing=True)
    def finish(z):
        return tf.cast(decoder(z, training=False), tf.float32)

    at = [int(t) for t in at_steps]
    if not at or at != sorted(set(at)) or at[0] < 0:
        raise ConfigError(f"refinement snapshots: expected increasing step counts >= 0, got "
                          f"{list(at_steps)}")

    def run(v, s):
        z0, best, kl0 = begin(v, s)
        z, m1, m2, best_z = z0, tf.zeros_like(z0), tf.zeros_like(z0), z0
        snaps = [finish(best_z)] if at[0] == 0 else []
        for t in range(1, at[-1] + 1):
            z, m1, m2, best, best_z = step(v, z0, z, m1, m2, tf.constant(float(t)), best,
                                           best_z)
            if t in at:
                snaps.append(finish(best_z))
        return snaps, kl0

    outs, kl_start = [[] for _ in at], []
    t0, n = time.perf_counter(), len(v_all)
    for i in range(0, n, batch_size):
        snaps, kl0 = run(tf.constant(v_all[i:i + batch_size]),
                         tf.constant(s_all[i:i + batch_size]))
        for out, x in zip(outs, snaps):
            out.append(x.numpy())
        kl_start.append(kl0.numpy())
        done = min(i + batch_size, n)
        if n > batch_size:  # minutes at paper scale: one line per batch, not silence
            spent = time.perf_counter() - t0
            log.info("refinement: %d/%d vectors, %d steps, %.0f s, about %.0f s left", done, n,
                     at[-1], spent, spent / done * (n - done))
    if not kl_start:
        return [np.zeros((0, *inverter.output_shape[1:]), np.float32) for _ in at], {}
    return ([np.concatenate(o) for o in outs],
            {"surrogate_kl_start": float(np.concatenate(kl_start).mean())})
