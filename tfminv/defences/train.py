"""Keras side of the defences (imports TensorFlow): the wrapper model whose training step applies
label smoothing, MID, BiDO or DP-SGD to any logits classifier, transfer learning, and
`fit_defended`, which trains one with `tfminv.training.fit` and returns the served classifier.

The wrapper (`DefendedClassifier`) holds the built classifier and, for MID, the bottleneck
layers; its `served` model (the classifier itself, or for MID the classifier with the
bottleneck at its mean) is an ordinary functional logits model: that is what `fit_defended`
returns and saves as workdir/model.keras, so loading a defended target needs nothing from here.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfminv.defences import cache_key_part, check, dp_delta, dp_epsilon, parse
from tfminv.errors import ConfigError
from tfminv.models.heads import head_layer  # noqa: F401 - public here too

log = logging.getLogger("tfminv")

#: Gaussian-kernel bandwidth of BiDO's HSIC (the kernel divides by 2 sigma^2 d)
HSIC_SIGMA = 5.0
#: ridge of BiDO's normalised HSIC (R = K_c (K_c + epsilon m I)^-1)
HSIC_EPSILON = 1e-5
#: initial bias of MID's log-variance head: sigma = exp(-5) ~ 0.0067, the authors'
#: softplus(x - 5) standard deviation at x = 0, so training starts near the plain classifier
MID_LOGVAR_INIT = -10.0
#: DP-SGD computes the per-example gradients of at most this many bytes of examples at once (a
#: chunk of the batch, estimated by `DefendedClassifier.per_example_bytes`; the chunks run one
#: after another in a tf.while_loop). 512 MiB: 26 examples a chunk for the 64x64 face
#: classifier at width 0.25 (one DP-SGD epoch of 1,152 images at batch 128 peaked at 1.3 GB RSS,
#: the plain epoch at 1.2 GB); at width 1 and 471 classes (about 40 M parameters) one example.
DP_CHUNK_BYTES = 1 << 29
#: measured memory of one example's gradient under `tf.vectorized_map` over float32 bytes of
#: (parameters + activations): 16.8 MB an example against 5.0 MB (64x64x1 faces, width 0.25, 12
#: classes; peak RSS at chunks of 16 and 64), i.e. 3.4, rounded up
DP_BYTES_FACTOR = 4


def weighted_layers(classifier) -> list:
    """The classifier's layers that hold weights, input to output (BatchNorm counts as one)."""
    return [layer for layer in classifier.layers if layer.weights]


def smoothed_cross_entropy(labels, logits, strength: float, num_classes: int):
    """Per-example cross-entropy with targets (1 - S) * onehot + S / m, for any S in (-1, 1)
    (Keras' label_smoothing is meant for S in [0, 1]): -(1 - S) log p_y - S * mean_k log p_k."""
    logp = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    true = tf.gather(logp, labels, axis=1, batch_dims=1)
    return -(1.0 - strength) * true - strength * tf.reduce_mean(logp, axis=-1)


def _ce(labels, logits):
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))


def _squared_norms(grads):
    """Per-example squared L2 norms over all of `grads` together (each [B, ...]) -> [B]."""
    b = tf.shape(grads[0])[0]
    return tf.add_n([tf.reduce_sum(tf.reshape(tf.square(tf.cast(g, tf.float32)), [b, -1]), 1)
                     for g in grads])


def _clip_factor(norms, clip: float):
    """The factor scaling each example's gradient to L2 norm <= clip (1 below it)."""
    return tf.minimum(1.0, clip / tf.maximum(norms, 1e-12))


def gaussian_gram(a, sigma: float = HSIC_SIGMA):
    """exp(-|a_i - a_j|^2 / (2 sigma^2 d)) over the rows of `a` flattened to d features."""
    a = tf.cast(tf.reshape(a, [tf.shape(a)[0], -1]), tf.float32)
    d = tf.cast(tf.shape(a)[1], tf.float32)
    sq = tf.reduce_sum(a * a, axis=1)
    dist = tf.maximum(sq[:, None] + sq[None, :] - 2.0 * tf.matmul(a, a, transpose_b=True), 0.0)
    return tf.exp(-dist / (2.0 * sigma * sigma * d))


def hsic(a, b, sigma: float = HSIC_SIGMA, epsilon: float = HSIC_EPSILON):
    """BiDO's normalised HSIC between the rows of `a` and `b`: sum(R_a * R_b^T) with
    R = K_c (K_c + epsilon m I)^-1, K_c = K H the (right-)centred Gaussian Gram matrix and
    H = I - 1/m (the normalised cross-covariance operator's estimate: scale-free, at most
    about m, so the weights A, B mean the same at any layer width)."""
    def r(v):
        kc = gaussian_gram(v, sigma)
        kc = kc - tf.reduce_mean(kc, axis=1, keepdims=True)  # K H
        m = tf.shape(kc)[0]
        reg = epsilon * tf.cast(m, tf.float32) * tf.eye(m)
        return tf.linalg.solve(kc + reg, kc)  # (K_c + eps m I)^-1 K_c = K_c (K_c + eps m I)^-1

    return tf.reduce_sum(r(a) * tf.transpose(r(b)))


def _quiet_pfor_fallback(record) -> bool:
    """Drops TensorFlow's "Conv2DBackpropFilter uses a while_loop. Fix that!" warnings, one per
    convolution and trace: vectorized_map has no vectorised converter for the per-example
    filter gradient and loops over the chunk there, as intended (measured: the DP-SGD step
    costs 1.3x a plain step at 64x64 faces, width 0.25, batch 128)."""
    return "uses a while_loop" not in record.getMessage()


class _GhostPlan:
    """DP-SGD's plan (`DefendedClassifier._ghost_layers`): the classifier's layers in call
    order and its Dense layers clipped from their inputs and output gradients. A plain
    object, so Keras does not track these layers a second time."""

    def __init__(self, chain, ghost):
        self.chain, self.ghost = chain, tuple(ghost)


@keras.saving.register_keras_serializable(package="tfminv")
class DefendedClassifier(keras.Model):
    """A logits classifier trained under a wrapped defence (ls, mid, bido, dpsgd).

    `call` is the served model's inference; `train_step` computes the defence's loss (or, for
    DP-SGD, its clipped and noised gradient); `test_step` reports the plain cross-entropy and
    accuracy of the served logits, so model selection and val_loss mean the same for every
    defence.
    """

    def __init__(self, classifier, defence: str, seed: int = 1, **kwargs):
        kwargs.setdefault("name", f"defended_{classifier.name}")
        super().__init__(**kwargs)
        d = parse(defence)
        if not d.wrapped:
            raise ConfigError(f"defence {d}: not trained by a wrapper (plain fit)")
        self.defence, self.kind, self.strengths = str(d), d.name, tuple(d.params)
        self.seed = int(seed)
        self.base = classifier
        self.head = head_layer(classifier)
        self.num_classes = int(self.head.units)
        inputs, feats = classifier.inputs, self.head.input
        inputs = inputs[0] if len(inputs) == 1 else inputs
        if self.kind == "mid":
            self.head.trainable = False  # bypassed by the bottleneck: no variable left idle
            k = max(1, int(feats.shape[-1]) // 2)
            self.vib_mu = keras.layers.Dense(k, name="vib_mu")
            self.vib_logvar = keras.layers.Dense(
                k, name="vib_logvar", bias_initializer=keras.initializers.Constant(MID_LOGVAR_INIT))
            self.vib_out = keras.layers.Dense(self.num_classes, name="vib_logits")
            self.vib_f32 = keras.layers.Activation("linear", dtype="float32",
                                                   name="vib_logits_f32")
            self.vib_logvar(feats)  # built now, so a saved wrapper loads its weights
            served_out = self.vib_f32(self.vib_out(self.vib_mu(feats)))
            self.served = keras.Model(inputs, served_out, name=classifier.name)
            self.features = keras.Model(inputs, feats, name="features")
        else:
            self.served = classifier
        if self.kind == "bido":
            dense = [layer for layer in classifier.layers if isinstance(layer, keras.layers.Dense)]
            self.latents = keras.Model(inputs, [layer.input for layer in dense]
                                       + [classifier.outputs[0]], name="latents")
        self.seed_gen = keras.random.SeedGenerator(self.seed)
        # held outside Keras' attribute tracking: these layers are the classifier's own
        self._dp = _GhostPlan(*(self._ghost_layers(classifier) if self.kind == "dpsgd"
                                else (None, ())))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.acc = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        extra = {"mid": ("kl",), "bido": ("hsic_xz", "hsic_yz"),
                 "dpsgd": ("clipped_fraction",)}.get(self.kind, ())
        self.extra = {n: keras.metrics.Mean(name=n) for n in extra}
        self.built = True  # every layer is built (BackupAndRestore refuses unbuilt models)

    # -- Keras plumbing ---------------------------------------------------------------------
    def call(self, inputs, training=False):
        return self.served(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.acc, *self.extra.values()]

    def get_config(self):
        return {"classifier": keras.saving.serialize_keras_object(self.base),
                "defence": self.defence, "seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        classifier = keras.saving.deserialize_keras_object(config.pop("classifier"))
        return cls(classifier, **config)

    def train_variables(self) -> list:
        """The trainable variables the defence's loss depends on (for MID the base head is
        bypassed and frozen)."""
        return list(self.trainable_variables)

    def _logs(self, y, logits, loss, **extra):
        self.loss_tracker.update_state(loss)
        self.acc.update_state(tf.reshape(y, [-1]), logits)
        for name, value in extra.items():
            self.extra[name].update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self.served(x, training=False)
        loss = tf.reduce_mean(_ce(y, logits))
        self.loss_tracker.update_state(loss)
        self.acc.update_state(tf.reshape(y, [-1]), logits)
        return {"loss": self.loss_tracker.result(), "accuracy": self.acc.result()}

    # -- the defences' training steps ---------------------------------------------------------
    def defended_loss(self, x, y, training: bool = True):
        """(total loss, logits, extra terms) of one batch under ls / mid / bido."""
        if self.kind == "ls":
            logits = self.served(x, training=training)
            s = self.strengths[0]
            return tf.reduce_mean(smoothed_cross_entropy(y, logits, s, self.num_classes)), \
                logits, {}
        if self.kind == "mid":
            feats = self.features(x, training=training)
            mu = tf.cast(self.vib_mu(feats), tf.float32)
            logvar = tf.cast(self.vib_logvar(feats), tf.float32)
            eps = keras.random.normal(tf.shape(mu), seed=self.seed_gen)
            z = mu + tf.exp(0.5 * logvar) * eps
            logits = self.vib_f32(self.vib_out(tf.cast(z, feats.dtype)))
            kl = tf.reduce_mean(0.5 * tf.reduce_sum(tf.exp(logvar) + mu * mu - 1.0 - logvar,
                                                    axis=-1))
            loss = tf.reduce_mean(_ce(y, logits)) + self.strengths[0] * kl
            return loss, logits, {"kl": kl}
        if self.kind == "bido":
            *zs, logits = self.latents(x, training=training)
            onehot = tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), self.num_classes)
            hxz = tf.add_n([hsic(x, z) for z in zs])
            hyz = tf.add_n([hsic(onehot, z) for z in zs])
            a, b = self.strengths
            loss = tf.reduce_mean(_ce(y, logits)) + a * hxz - b * hyz
            return loss, logits, {"hsic_xz": hxz, "hsic_yz": hyz}
        raise ConfigError(f"defence {self.defence}: no loss form")

    def per_example_gradients(self, x, y, variables=None):
        """(list of [B, *shape] per-example gradients of the cross-entropy over `variables`
        (default `train_variables()`), logits, per-example losses): `tf.vectorized_map` of one
        example's
        gradient (a batch of one through the served model, inference mode: module doc, batch
        statistics would mix examples).

        Why not `tape.jacobian` of the B losses of one batch forward: its vectorised backward
        pass carries, for each of the B losses, the gradient with respect to the whole batch's
        activations, B x B x (one example's activations); at 64x64 faces, width 0.25 and
        B = 128 that passed 7 GB in the first step. Mapping the single-example gradient keeps
        the memory linear in B (see `per_example_bytes`)."""
        variables = self.train_variables() if variables is None else list(variables)

        def one(args):
            xi, yi = args
            with tf.GradientTape() as tape:
                logit = self.served(xi[None], training=False)
                loss = _ce(yi[None], logit)[0]
            grads = tape.gradient(loss, variables)
            grads = [tf.zeros(v.shape, v.dtype) if g is None else g
                     for g, v in zip(grads, variables)]
            return grads, tf.cast(logit[0], tf.float32), loss

        tf_log = logging.getLogger("tensorflow")
        tf_log.addFilter(_quiet_pfor_fallback)
        try:
            grads, logits, losses = tf.vectorized_map(one, (x, y))
        finally:
            tf_log.removeFilter(_quiet_pfor_fallback)
        return list(grads), logits, losses

    # -- DP-SGD: per-example norms and the clipped sum ----------------------------------------
    @staticmethod
    def _ghost_layers(classifier):
        """(layers in call order, the Dense layers clipped without per-example gradients) when
        the classifier is a chain (each layer feeds the next; checked by running the chain on
        a probe batch against the model itself), else (None, ()).

        Why: a Dense layer's per-example kernel gradient is the outer product x_i^T d_i of its
        input and the loss gradient at its output, so its squared norm is |x_i|^2 |d_i|^2 and
        the clipped sum over a batch is one matmul, X^T (c * D) (the "ghost clipping" of
        Goodfellow 2015 and Lee & Kifer 2021): nothing of the kernel's size is stored per
        example. The 471-class face classifier at width 0.25 has 11.1 M parameters, 10.8 M of
        them in its two Dense layers: materialised per example they allowed 2 examples a chunk,
        and a DP-SGD epoch of 8,320 images took 3.3 minutes against 10 s undefended."""
        layers = [layer for layer in classifier.layers
                  if not isinstance(layer, keras.layers.InputLayer)]
        try:
            dense = tuple(layer for layer in layers if isinstance(layer, keras.layers.Dense)
                          and len(layer.input.shape) == 2
                          and not getattr(layer, "lora_enabled", False))
        except (AttributeError, ValueError):  # a layer called more than once: not a chain
            return None, ()
        if not dense:
            return None, ()
        shape = [2, *classifier.inputs[0].shape[1:]]
        probe = np.random.default_rng(0).random(shape).astype("float32")
        try:
            h = probe
            for layer in layers:
                h = layer(h, training=False)
            ok = np.allclose(keras.ops.convert_to_numpy(h),
                             keras.ops.convert_to_numpy(classifier(probe, training=False)),
                             rtol=1e-3, atol=1e-4)
        except Exception:  # noqa: BLE001 - not a chain (a layer of several inputs): no ghost
            ok = False
        return (layers, dense) if ok else (None, ())

    def _ghost_variables(self) -> set:
        """The ids of the train variables the ghost Dense layers hold (kernel and bias)."""
        return {id(v) for layer in self._dp.ghost for v in layer.trainable_variables}

    def _chain_forward(self, x):
        """(float32 logits, [(Dense layer, its input, its pre-activation output)]) of the
        chain in inference mode, the ghost Dense layers computed here so that their outputs
        can be differentiated."""
        h, taps = x, []
        for layer in self._dp.chain:
            if any(layer is g for g in self._dp.ghost):
                h = tf.cast(h, layer.compute_dtype)
                z = tf.matmul(h, tf.cast(layer.kernel, h.dtype))
                if layer.use_bias:
                    z = z + tf.cast(layer.bias, z.dtype)
                taps.append((layer, h, z))
                h = layer.activation(z)
            else:
                h = layer(h, training=False)
        return tf.cast(h, tf.float32), taps

    def clip_gradients(self, grads):
        """(per-example gradients scaled to L2 norm <= CLIP over all variables together,
        their norms before clipping): the reference form of `clipped_sum`, for gradients
        materialised per example."""
        norms = tf.sqrt(_squared_norms(grads))
        factor = _clip_factor(norms, self.strengths[1])
        clipped = [g * tf.reshape(tf.cast(factor, g.dtype), [-1] + [1] * (len(g.shape) - 1))
                   for g in grads]
        return clipped, norms

    def per_example_bytes(self) -> int:
        """Estimated memory of one example's gradient computation: DP_BYTES_FACTOR x 4 bytes x
        (the trainable parameters whose per-example gradients are materialised, all but the
        ghost Dense layers', + the served model's activations for one example, the sum of its
        layers' output sizes). The activations count: at 64x64 faces and width 0.25 they are
        as many floats as the convolutions' parameters."""
        ghost = self._ghost_variables()
        params = sum(int(np.prod(v.shape)) for v in self.train_variables()
                     if id(v) not in ghost)
        acts = 0
        for layer in self.served.layers:
            try:
                outputs = keras.tree.flatten(layer.output)
            except (AttributeError, ValueError):  # a layer used more than once has no .output
                continue
            acts += sum(int(np.prod([d or 1 for d in o.shape[1:]])) for o in outputs)
        return DP_BYTES_FACTOR * 4 * (params + acts)

    def chunk_size(self) -> int:
        """Examples whose per-example gradients are computed at once: as many as fit in
        DP_CHUNK_BYTES by `per_example_bytes`, at least 1; `dp_chunk` overrides it."""
        if getattr(self, "dp_chunk", None):
            return int(self.dp_chunk)
        return max(1, DP_CHUNK_BYTES // max(self.per_example_bytes(), 1))

    def _chunk_clipped_sum(self, x, y, weight=None):
        """(per variable of `train_variables()`: the sum over the chunk's examples of their
        gradient clipped to L2 norm CLIP, each times `weight` (1, or 0 for padding), logits,
        per-example losses, norms before clipping). The ghost Dense layers' norms and sums come
        from their inputs and output gradients (`_ghost_layers`), the other variables' from
        `per_example_gradients`."""
        clip = self.strengths[1]
        variables = self.train_variables()
        ghost = self._ghost_variables()
        other = [v for v in variables if id(v) not in ghost]
        sq = tf.zeros(tf.shape(x)[:1], tf.float32)
        taps, grads = [], []
        if self._dp.ghost:
            with tf.GradientTape() as tape:
                logits, raw = self._chain_forward(x)
                losses = _ce(y, logits)
                total = tf.reduce_sum(losses)
            # examples are independent in inference mode: d(sum of losses)/dz_i = dL_i/dz_i
            deltas = tape.gradient(total, [z for _, _, z in raw])
            for (layer, h, _), d in zip(raw, deltas):
                h, d = tf.cast(h, tf.float32), tf.cast(d, tf.float32)
                d2 = tf.reduce_sum(tf.square(d), 1)
                if layer.kernel.trainable:
                    sq += tf.reduce_sum(tf.square(h), 1) * d2
                if layer.use_bias and layer.bias.trainable:
                    sq += d2
                taps.append((layer, h, d))
        if other:
            grads, other_logits, other_losses = self.per_example_gradients(x, y, other)
            sq += _squared_norms(grads)
            if not self._dp.ghost:
                logits, losses = other_logits, other_losses
        norms = tf.sqrt(sq)
        factor = _clip_factor(norms, clip)
        if weight is not None:
            factor = factor * weight
        sums = {id(v): tf.tensordot(tf.cast(factor, g.dtype), g, 1) for v, g in zip(other, grads)}
        for layer, h, d in taps:
            scaled = d * factor[:, None]
            sums[id(layer.kernel)] = tf.matmul(h, scaled, transpose_a=True)
            if layer.use_bias:
                sums[id(layer.bias)] = tf.reduce_sum(scaled, 0)
        out = [tf.cast(sums[id(v)], v.dtype) if id(v) in sums else tf.zeros(v.shape, v.dtype)
               for v in variables]
        return out, tf.cast(logits, tf.float32), losses, norms

    def clipped_sum(self, x, y):
        """(sum over the batch of the clipped per-example gradients, logits, per-example losses,
        norms before clipping), over chunks of `chunk_size()` examples (a tf.while_loop over
        the chunks bounds the memory to one chunk's per-example gradients).

        Every chunk has the same static size: a batch of known size is split into equal
        chunks, and the batch is padded with zero examples to a whole number of chunks, which
        are masked out of the sum and the outputs. (Chunks of varying size, 26 x 4 + 24 at
        batch 128, crashed TensorFlow 2.21's CPU runtime with a glibc heap-corruption abort in
        the first step, reproducibly.)"""
        c = self.chunk_size()
        static_b = x.shape[0]
        if static_b is not None:
            if static_b <= c:
                return self._chunk_clipped_sum(x, y)
            c = -(-static_b // -(-static_b // c))  # 128 at 26 a chunk: 5 chunks of 26 (2 pad)
        variables = self.train_variables()
        b = tf.shape(x)[0]
        steps = (b + c - 1) // c
        pad = steps * c - b

        def padded(t):
            return tf.pad(t, [[0, pad]] + [[0, 0]] * (len(t.shape) - 1))

        xp, yp = padded(x), padded(y)
        arrays = [tf.TensorArray(tf.float32, size=steps, element_shape=shape)
                  for shape in ([c, self.num_classes], [c], [c])]

        def body(i, sums, logits_a, losses_a, norms_a):
            xs, ys = xp[i * c:(i + 1) * c], yp[i * c:(i + 1) * c]
            xs.set_shape([c, *x.shape[1:]])
            ys.set_shape([c, *y.shape[1:]])
            real = tf.cast(i * c + tf.range(c) < b, tf.float32)
            part, logits, losses, norms = self._chunk_clipped_sum(xs, ys, real)
            return (i + 1, [s + g for s, g in zip(sums, part)], logits_a.write(i, logits),
                    losses_a.write(i, losses), norms_a.write(i, norms))

        zeros = [tf.zeros(v.shape, v.dtype) for v in variables]
        _, sums, logits_a, losses_a, norms_a = tf.while_loop(
            lambda i, *_: i < steps, body, (tf.constant(0), zeros, *arrays))
        return (sums, logits_a.concat()[:b], losses_a.concat()[:b], norms_a.concat()[:b])

    def private_gradients(self, x, y):
        """(DP-SGD gradient: (sum of clipped per-example gradients + N(0, (NOISE * CLIP)^2))
        / B per variable, logits, per-example losses, per-example norms)."""
        noise, clip = self.strengths[0], self.strengths[1]
        sums, logits, losses, norms = self.clipped_sum(x, y)
        b = tf.cast(tf.shape(norms)[0], tf.float32)
        out = []
        for total in sums:
            if noise > 0:
                total += tf.cast(noise * clip * keras.random.normal(
                    tf.shape(total), seed=self.seed_gen), total.dtype)
            out.append(total / tf.cast(b, total.dtype))
        return out, logits, losses, norms

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.train_variables()
        if self.kind == "dpsgd":
            grads, logits, losses, norms = self.private_gradients(x, y)
            self.optimizer.apply(grads, variables)
            frac = tf.reduce_mean(tf.cast(norms > self.strengths[1], tf.float32))
            return self._logs(y, logits, tf.reduce_mean(losses), clipped_fraction=frac)
        with tf.GradientTape() as tape:
            loss, logits, extra = self.defended_loss(x, y, training=True)
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        return self._logs(y, logits, loss, **extra)


def pretrain_model(build_fn, num_public: int):
    """`build_fn()`'s classifier with its last Dense layer replaced by one over `num_public`
    public classes (transfer learning's pre-training model; the other layers keep their
    names, so their weights copy over by name)."""
    clf = build_fn()
    feats = head_layer(clf).input
    out = keras.layers.Dense(int(num_public), name="pretrain_logits")(feats)
    out = keras.layers.Activation("linear", dtype="float32", name="pretrain_logits_f32")(out)
    inputs = clf.inputs[0] if len(clf.inputs) == 1 else clf.inputs
    return keras.Model(inputs, out, name=f"pretrain_{clf.name}")


def _tl_layers(build_fn, n: int, spec) -> list[str]:
    layers = weighted_layers(build_fn())
    if n > len(layers):
        raise ConfigError(f"defence {spec}: N={n} but the classifier has only {len(layers)} "
                          f"layers with weights ({', '.join(layer.name for layer in layers)})")
    return [layer.name for layer in layers[-n:]]


def fit_defended(defence, build_fn, x, y, *, config, workdir, val=None, aux=None,
                 meta: dict | None = None, monitor: str = "val_loss"):
    """Train `build_fn()` (an uncompiled logits classifier) on (x, y) under `defence` with
    `tfminv.training.fit` (resumable, model selection on `val` by `monitor`); returns
    (served classifier, info).

    The served classifier is a plain functional logits model, saved as workdir/model.keras
    beside workdir/run.json (fit's record plus 'defence' and the defence's numbers), and
    reused from there when both exist with the same settings. 'none' and 'tl' train with
    `fit` in workdir itself ('none' exactly as without a defence: same meta, same files);
    the wrapped defences in workdir/defended, transfer learning's pre-training in
    workdir/pretrain. aux: (images, labels) of the public auxiliary set (tl only).
    info: {'defence': spec, ...}: for dpsgd epsilon (None when infinite), delta, noise, clip,
    steps, sampling rate and the accountant; for tl the fine-tuned layers and the public
    pre-training size; for mid / bido / ls the strengths.
    Raises ConfigError (`tfminv.defences.check`) before any training.
    """
    from tfminv.hashing import short_hash
    from tfminv.training import fit

    streamed = hasattr(x, "element_spec")
    d = check(defence, n_train=None if streamed else len(x), batch_size=config.batch_size,
              strategy=config.strategy, precision=config.precision, aux=aux)
    workdir = Path(workdir)
    meta = dict(meta or {})
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kw = dict(config=config, val=val, loss=loss, metrics=["accuracy"], monitor=monitor)
    info = {"defence": str(d)}
    if d.name == "none":
        return fit(build_fn, x, y, workdir=workdir, meta=meta, **kw), info

    from tfminv.training import code_version

    if d.name == "tl":
        n = int(d.params[0])
        tuned = _tl_layers(build_fn, n, d)
        xa, ya = np.asarray(aux[0]), np.asarray(aux[1])
        classes, ya_idx = np.unique(ya, return_inverse=True)
        aux_hash = short_hash(xa, ya)
        from tfminv.data.splits import holdout

        tr, va = holdout(len(xa), 0.1, config.seed)
        pre = fit(lambda: pretrain_model(build_fn, len(classes)), xa[tr], ya_idx[tr],
                  workdir=workdir / "pretrain",
                  meta={"defence": str(d), "role": "pretrain", "aux": aux_hash,
                        "defence_code": code_version.version("defended")}, **{
                      **kw, "val": (xa[va], ya_idx[va])})
        weights = {layer.name: layer.get_weights() for layer in weighted_layers(pre)}
        pre_acc = float((np.argmax(pre.predict(xa[va], batch_size=256, verbose=0), 1)
                         == ya_idx[va]).mean())

        def build():
            clf = build_fn()
            head = head_layer(clf)
            for layer in weighted_layers(clf):
                if layer is not head:
                    layer.set_weights(weights[layer.name])
                layer.trainable = layer.name in tuned
            return clf

        model = fit(build, x, y, workdir=workdir,
                    meta={**meta, **cache_key_part(d, aux_hash)}, **kw)
        info.update({"tuned_layers": tuned, "public_images": int(len(xa)),
                     "public_classes": int(len(classes)),
                     "pretrain_val_accuracy": round(pre_acc, 4)})
        return model, info

    # the defence's code is part of the key (fit adds the same entry to its run.json's meta)
    run_meta = {**meta, **cache_key_part(d), "code": code_version.version("defended")}
    served_path, run_path = workdir / "model.keras", workdir / "run.json"
    if served_path.exists() and run_path.exists():
        model = _load_served(workdir, config, run_meta)
        if model is not None:
            return model, json.loads(run_path.read_text()).get("defence_info", info)

    if d.name == "dpsgd":
        n, b = len(x), int(config.batch_size)
        delta = dp_delta(d, n)
        eps = dp_epsilon(d.params[0], batch_size=b, n=n, epochs=config.epochs, delta=delta)
        info.update({"noise_multiplier": d.params[0], "clip_norm": d.params[1],
                     "delta": delta, "epsilon": None if math.isinf(eps) else round(eps, 4),
                     "steps": int(config.epochs) * (n // b), "sampling_rate": b / n,
                     "accountant": "dp_accounting RdpAccountant, Poisson-subsampled Gaussian, "
                                   "add-or-remove-one"})
    else:
        info["strengths"] = list(d.params)
    wrapped = fit(lambda: DefendedClassifier(build_fn(), str(d), seed=config.seed), x, y,
                  workdir=workdir / "defended", meta=run_meta, code="defended", **kw)
    served = wrapped.served
    from tfminv.io_utils import atomic_path, write_json
    from tfminv.training import load_run

    with atomic_path(served_path, suffix=".keras") as tmp:
        served.save(str(tmp))
    write_json(run_path, {**load_run(workdir / "defended"), "defence_info": info})
    return served, info


def _load_served(workdir: Path, config, run_meta: dict):
    """The saved served classifier of a finished defended run, None when it does not load;
    ConfigError when its run.json records other settings (as `fit` does)."""
    from tfminv import custom_objects

    saved = json.loads((workdir / "run.json").read_text())
    if saved.get("config") != config.key() or saved.get("meta") != run_meta:
        raise ConfigError(f"{workdir} holds a run with different settings; remove it or use "
                          "another --cache_dir")
    custom_objects.register()
    try:
        return keras.models.load_model(workdir / "model.keras")
    except Exception as e:  # noqa: BLE001 - a cache that does not load is trained again
        from tfminv.errors import first_line

        log.warning("%s: the served defended classifier does not load (%s: %s); training "
                    "again", workdir, type(e).__name__, first_line(e))
        return None


