"""Joint classifier + inverter for the malicious-developer scenario.

The developer trains F and G together on the training data with
    loss = CE(y, F(x)) + lambda * MSE(G(trunc_k(rescale(F(x)))), x).
"Rescale": the paper notes that feeding G the softmax output is not optimal, because softmax
squashes the output-layer activations, and replaces the prediction by its logits. A released
top-k probability vector only determines the logits up to a per-row constant, so we use the
log-probabilities plus a trainable scalar b, rescale(z) = log_softmax(z) + b: the logits
shifted so that the largest is near b. b starts at the authors' truncation constant c = 50 and
is learnt with G. Truncation then follows the authors' formula (top-k, floor, shift so the
smallest kept entry is not negative, zeros elsewhere), so at attack time G takes the released
truncated probabilities p through log(p) + b, which equals the training-time input.

This module only builds the model and its attack-time inverter; training it is
`tfminv.training.joint.train_joint`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfminv.models.classifier import build_classifier
from tfminv.models.inverter import build_decoder
from tfminv.models.truncation import Truncation, _check_k, shift_and_scatter

LOGITS, RECON = "logits", "recon"


@keras.saving.register_keras_serializable(package="tfminv")
class RescaledTruncation(Truncation):
    """log-probabilities + trainable scalar b, then the authors' top-k truncation.

    from_logits=True: input is logits (training, via log_softmax); False: input is released
    probabilities (attack time, via log with a floor). Output [N, m]: zeros except the top-k.
    """

    def __init__(self, k: int, from_logits: bool = True, c: float = 50.0,
                 log_floor: float = -1000.0, **kwargs):
        super().__init__(k, c=c, log_floor=log_floor, **kwargs)
        self.from_logits = bool(from_logits)

    def build(self, input_shape):
        self.b = self.add_weight(name="b", shape=(), trainable=True,
                                 initializer=keras.initializers.Constant(self.c))
        super().build(input_shape)

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        if self.from_logits:
            logp = tf.nn.log_softmax(x, axis=-1)
        else:
            logp = tf.math.log(tf.maximum(x, 1e-30))
        logp = tf.maximum(logp, self.log_floor)
        top, idx = tf.math.top_k(logp, k=self.k, sorted=True)
        return shift_and_scatter(top + self.b, idx, tf.shape(logp)[-1])

    def get_config(self):
        config = super().get_config()
        config["from_logits"] = self.from_logits
        return config


def build_joint_model(num_classes: int, image_size: int, k: int | None = None,
                      width: float = 1.0, name: str = "joint") -> keras.Model:
    """Image -> {'logits': F(x), 'recon': G(trunc_k(rescale(F(x))))}; k=None keeps all m entries."""
    m = int(num_classes)
    k = m if k is None else k
    _check_k(k, m)
    classifier = build_classifier(m, image_size, width, name="classifier")
    decoder = build_decoder(m, image_size, width, name="decoder")
    image = keras.Input((image_size, image_size, 1), name="image")
    logits = classifier(image)
    vec = RescaledTruncation(k, from_logits=True, name="rescaled_truncation")(logits)
    recon = decoder(vec)
    logits = keras.layers.Identity(name=LOGITS)(logits)
    recon = keras.layers.Identity(name=RECON)(recon)
    return keras.Model(image, {LOGITS: logits, RECON: recon}, name=name)


def classifier_of(joint: keras.Model) -> keras.Model:
    """The classifier part (image -> logits); the developer releases softmax of it."""
    return joint.get_layer("classifier")


def inverter_of(joint: keras.Model, k: int | None = None) -> keras.Model:
    """Attack-time inverter: released probabilities [N, m] -> image, sharing G's weights and b.

    k defaults to the k the joint model was trained with.
    """
    trained = joint.get_layer("rescaled_truncation")
    k = trained.k if k is None else k
    decoder = joint.get_layer("decoder")
    m = int(decoder.input_shape[-1])
    _check_k(k, m)
    probs = keras.Input((m,), name="prediction")
    layer = RescaledTruncation(k, from_logits=False, c=trained.c, log_floor=trained.log_floor,
                               name="rescaled_truncation")
    vec = layer(probs)
    layer.b.assign(trained.b)
    return keras.Model(probs, decoder(vec), name=f"joint_inverter_k{k}")
