"""Identity-consistent inversion (method 'identity'): the truncation inverter G trained so that
the attacker's surrogate S recognises in G(v) what the target released in v.

    loss = MSE(G(v), x) + identity_weight * ReleasedKL_k(v, S(G(v)))
           [+ feature_weight * MSE(S_feat(G(v)), S_feat(x))]
           [+ realism_weight * MSE(G(v), P(G(v)))]

G is the truncation inverter (`models.build_inverter`, Truncation(k) first, the same input as
method 'truncation'); S is `tfminv.attacks.surrogate.train_surrogate`'s copy of the target,
distilled from the same auxiliary images and released vectors, frozen (inference mode) while G
trains; S_feat is S's penultimate layer (the input of its last Dense). Gradients go through S
only: the target is never differentiated, and nothing here queries it (the released vectors
come from `tfminv.attacks.predictions.query_cached`).

P is the attacker's image prior (`tfminv.attacks.realism`): a denoising autoencoder of the
auxiliary images, frozen while G trains. Without it (realism_weight 0, the default) the KL term
can also be satisfied by adversarial detail that S reads but an independent judge does not;
the judge is never S nor the target, which is how that shows up in the scores, and
`tfminv.scenarios.ablation` measures what each term buys. The weights are
settings (`IdentityOptions`, each declared once in `SETTINGS`), checked on construction:
negative or NaN is a ConfigError.

Cached like the other inverters (`fit_cached`, code kind 'identity'): the run's key holds the
weights, the surrogate's run folder and the data. NumPy at import.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfminv.errors import ConfigError
from tfminv.settings import setting

#: name -> (default, help, minimum): each identity setting declared once, used by
#: `IdentityOptions` and every config that offers the method (`declared`)
SETTINGS = {
    # 0.02: on the MNIST slice of DESIGN.md the term then costs little MSE; 0.1 costs much more
    "identity_weight": (0.02, "identity method: weight of the surrogate's KL between the "
                              "released entries of v and its own on G(v)", 0.0),
    "feature_weight": (0.0, "identity method: weight of the MSE between the surrogate's "
                            "penultimate features of G(v) and of the true image", 0.0),
    "realism_weight": (0.0, "identity method: weight of the realism term, the MSE between G(v) "
                            "and the attacker's image prior's reconstruction of it (a "
                            "denoising autoencoder of the auxiliary images)", 0.0),
    "prior_epochs": (0, "identity method: image prior (realism term) training epochs (0: the "
                        "inverter's)", 0),
    "surrogate_width": (0.25, "identity method: width multiplier of the surrogate classifier",
                        None),
    "surrogate_epochs": (0, "identity method: surrogate training epochs (0: the inverter's)", 0),
    # attack time only (methods 'identity_refine' and 'identity_select',
    # `tfminv.attacks.refine`): not in the inverter's cache key, so one trained identity
    # inverter serves every identity method. Defaults not yet tuned at paper scale (DESIGN.md,
    # 'identity_refine'); on the MNIST slice of tests/test_identity_attack.py 40 steps of 0.1
    # cut the surrogate's KL 0.530 -> 0.378
    "refine_steps": (30, "identity_refine / identity_select methods: per-victim steps that "
                         "move the decoder's input so the surrogate's released entries of the "
                         "image match the victim's", 1),
    "refine_lr": (0.05, "identity_refine / identity_select methods: Adam step size of those "
                        "steps", 0.0),
    "refine_prox": (0.0, "identity_refine / identity_select methods: weight of the squared "
                         "distance of the decoder's input to where it started", 0.0),
    # attack time only (method 'identity_select', `tfminv.attacks.select`): the target is
    # queried this many times per victim
    "select_candidates": (8, "identity_select method: images per victim sent to the target "
                             "(the unrefined one and the refinement's after evenly spaced "
                             "numbers of steps); the one whose release is closest to the "
                             "victim's is kept. Queries per victim", 2),
    # attack time only (method 'aux_match', `tfminv.attacks.retrieval`): no inverter
    "match_n": (1, "aux_match method: the images of this many auxiliary answers closest to the "
                   "victim's release are averaged (1: one real public photo)", 1),
}
#: the settings that shape the trained inverter (its cache key); the rest act at attack time
TRAINING = ("identity_weight", "feature_weight", "realism_weight", "prior_epochs",
            "surrogate_width", "surrogate_epochs")


def declared(name: str):
    """The dataclass field of identity setting `name` (see `SETTINGS`)."""
    default, help_, minimum = SETTINGS[name]
    return setting(default, help_, minimum=minimum)


def _settings_block(frozen: bool):
    """The dataclass that declares `SETTINGS`' fields once, as a base (mixin) of every
    config offering the method; two builds because a frozen dataclass cannot inherit from a
    mutable one, nor the reverse. kw_only: the fields stay out of a config's positional
    arguments (they come first in field order, as bases' fields do)."""

    @dataclasses.dataclass(frozen=frozen, kw_only=True)
    class IdentitySettings:
        """The identity method's settings (`SETTINGS`), checked after the config's own
        checks: negative or NaN is a ConfigError naming the setting."""

        identity_weight: float = declared("identity_weight")
        feature_weight: float = declared("feature_weight")
        realism_weight: float = declared("realism_weight")
        prior_epochs: int = declared("prior_epochs")
        surrogate_width: float = declared("surrogate_width")
        surrogate_epochs: int = declared("surrogate_epochs")
        refine_steps: int = declared("refine_steps")
        refine_lr: float = declared("refine_lr")
        refine_prox: float = declared("refine_prox")
        select_candidates: int = declared("select_candidates")
        match_n: int = declared("match_n")

        def __post_init__(self):
            parent = getattr(super(), "__post_init__", None)
            if parent is not None:
                parent()
            check_settings(self)

    IdentitySettings.__qualname__ = IdentitySettings.__name__ = (
        "FrozenIdentitySettings" if frozen else "IdentitySettings")
    return IdentitySettings


def check_settings(config) -> None:
    """The identity settings' checks on any object that has them as attributes."""
    from tfminv.settings import check

    check(config, names=SETTINGS)  # minimum 0 refuses negatives and NaN (NaN >= 0 is false)
    # > 0, which a declared minimum cannot say
    for name, what in (("surrogate_width", "a multiplier"), ("refine_lr", "a step size")):
        w = getattr(config, name)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise ConfigError(f"--{name}={w}: expected {what} > 0")
    from tfminv.attacks.select import candidate_steps

    candidate_steps(int(config.refine_steps), int(config.select_candidates))


#: the base of a (mutable) scenario config that offers the method
IdentitySettings = _settings_block(frozen=False)
#: the base of a frozen config that offers the method (`tfminv.leakage.InversionConfig`)
FrozenIdentitySettings = _settings_block(frozen=True)


@dataclasses.dataclass(frozen=True)
class IdentityOptions(FrozenIdentitySettings):
    """The identity method's settings alone (`SETTINGS`); checked on construction."""

    def key(self) -> dict:
        """The settings that shape the trained inverter (`TRAINING`): its cache key. Without
        the realism term prior_epochs shapes nothing, so it is left out (one run for every
        value)."""
        out = {k: v for k, v in self.report().items() if k in TRAINING}
        if not out["realism_weight"] > 0:
            del out["prior_epochs"]
        return out

    def report(self) -> dict:
        """Every setting, as run.json records it."""
        ints = ("surrogate_epochs", "prior_epochs", "refine_steps", "select_candidates",
                "match_n")
        return {k: int(getattr(self, k)) if k in ints else float(getattr(self, k))
                for k in SETTINGS}


def options_of(config=None) -> IdentityOptions:
    """The IdentityOptions of any config that declares some of `SETTINGS` (the others keep
    their defaults; None: all defaults)."""
    if config is None:
        return IdentityOptions()
    if isinstance(config, IdentityOptions):
        return config
    return IdentityOptions(**{n: getattr(config, n) for n in SETTINGS if hasattr(config, n)})


def surrogate_logits_and_features(surrogate):
    """A Keras model image -> [logits, penultimate features] sharing S's layers."""
    import keras

    s = surrogate
    return keras.Model(s.inputs, [s.output, s.get_layer("logits").input], name="surrogate_feat")


def train_identity_inverter(preds, images, *, k: int, config, workdir, val, width: float,
                            options: IdentityOptions, reuse: bool = True, callbacks=()):
    """(G, Surrogate): the identity-consistent inverter (raw or released vector [N, m] -> image,
    `run_dir` set) and the surrogate it was trained through. preds / images: in-memory arrays
    (checked by the caller); val = (preds, images) for model selection (lowest total loss) and
    the surrogate's agreement."""
    import keras

    from tfminv.attacks.surrogate import train_surrogate
    from tfminv.hashing import short_hash
    from tfminv.models import build_inverter
    from tfminv.models.losses import ReleasedKL, WeightedMSE
    from tfminv.training import fit_cached

    m, shape = preds.shape[1], tuple(images.shape[1:])
    s_cfg = config.replace(epochs=int(options.surrogate_epochs) or int(config.epochs))
    sur = train_surrogate(preds, images, k=k, config=s_cfg, workdir=workdir,
                          width=options.surrogate_width, heldout=val, reuse=reuse)
    use_feat, use_real = options.feature_weight > 0, options.realism_weight > 0
    s_both = surrogate_logits_and_features(sur.model)
    s_both.trainable = False
    prior = None
    if use_real:
        from tfminv.attacks.realism import train_prior

        prior = train_prior(images, config=config, workdir=workdir, width=width,
                            val=None if val is None else val[1],
                            epochs=int(options.prior_epochs), reuse=reuse)
        prior.trainable = False

    def targets(p, x):
        out = {"recon": x, "released": p}
        if use_feat:
            out["feature"] = np.asarray(s_both.predict(x, batch_size=256, verbose=0)[1],
                                        np.float32)
        if use_real:  # the residual G(v) - P(G(v)) is pushed to 0 (broadcast over pixels)
            out["realism"] = np.zeros((len(x), 1, 1, 1), np.float32)
        return out

    g_name = f"inverter_identity_k{k}"

    def build():
        g = build_inverter(m, shape, width, k=k, name=g_name)
        v = keras.Input((m,), name="prediction")
        recon = g(v)
        logits, feat = s_both(recon, training=False)
        outs = {"recon": keras.layers.Identity(name="recon")(recon),
                "released": keras.layers.Identity(name="released", dtype="float32")(logits)}
        if use_feat:
            outs["feature"] = keras.layers.Identity(name="feature", dtype="float32")(feat)
        if use_real:
            outs["realism"] = keras.layers.Subtract(name="realism", dtype="float32")(
                [recon, prior(recon, training=False)])
        return keras.Model(v, outs, name=f"identity_training_k{k}")

    losses = {"recon": "mse", "released": ReleasedKL(k, options.identity_weight)}
    if use_feat:
        losses["feature"] = WeightedMSE(options.feature_weight)
    if use_real:
        losses["realism"] = WeightedMSE(options.realism_weight)
    meta = {"train_k": int(k), "width": float(width), "aux": short_hash(preds, images),
            "val": None if val is None else short_hash(*val), "identity": options.key(),
            "surrogate": str(sur.run_dir)}
    if use_real:
        meta["prior"] = str(prior.run_dir)
    model = fit_cached(build, preds, targets(preds, images), config=config, workdir=workdir,
                       name=f"identity_k{k}", meta=meta, code="identity",
                       val=None if val is None else (val[0], targets(*val)), loss=losses,
                       reuse=reuse, callbacks=list(callbacks))
    g = model.get_layer(g_name)
    g.run_dir = model.run_dir
    g.surrogate = sur
    g.prior = prior
    return g, sur


def identity_kl(surrogate_model, inverter, released, k: int, recon=None) -> float:
    """Mean `released_kl` of the surrogate's logits on G(released) against `released` [N, m]:
    how far S finds the reconstructions from what was released (lower = more consistent).
    recon: G(released) when already computed."""
    import tensorflow as tf

    from tfminv.attacks.inversion import invert
    from tfminv.attacks.surrogate import logits_of
    from tfminv.models.losses import released_kl

    v = np.asarray(released, np.float32)
    z = logits_of(surrogate_model, invert(inverter, v) if recon is None else recon)
    return float(tf.reduce_mean(released_kl(v, z, k)).numpy())
