"""A classifier's logits head and the features under it, for any Keras classifier whose last
Dense layer gives the logits (tfminv's builders and a user's own models alike): the defences
train through the head's input, the identity judge compares reconstructions by it."""

from __future__ import annotations

from tfminv.errors import ConfigError, TfminvError


def head_layer(classifier, *, error: type[TfminvError] = ConfigError,
               need: str = "the defences need a classifier whose last Dense layer gives the "
                           "logits"):
    """The classifier's last Dense layer (its input is the penultimate feature vector); without
    one, `error` naming the model and `need` (what the caller needs it for)."""
    import keras

    for layer in reversed(classifier.layers):
        if isinstance(layer, keras.layers.Dense):
            return layer
    raise error(f"model {classifier.name!r} has no Dense layer: {need}")


def penultimate_model(classifier, *, error: type[TfminvError] = ConfigError):
    """A Keras model from the classifier's input to the input of its last Dense layer (the
    penultimate features, e.g. `fc1` of tfminv's classifiers)."""
    import keras

    head = head_layer(classifier, error=error, need="expected a logits head whose input is the "
                                                    "penultimate feature vector")
    return keras.Model(classifier.inputs, head.input, name=f"{classifier.name}_features")
