"""The one place that registers tfminv's custom Keras objects for loading .keras files.

Keras resolves a saved custom class by its registered name ('tfminv>Truncation', ...), which
exists only once the defining module has been imported. Code that loads models it did not
build in the same process (`tfminv.oracles` for `keras:` targets, `tfminv.export`, the
training cache) calls `register()` first; `custom_objects()` gives the same classes as a dict
for `keras.saving.load_model(..., custom_objects=...)`. Imports TensorFlow.
"""

from __future__ import annotations


def custom_objects() -> dict:
    """{registered name: class} of every custom layer and loss tfminv saves in a model."""
    from tfminv.defences import train as defended
    from tfminv.models import fast_layers, joint, losses, truncation

    # DefendedClassifier: a defended target's training wrapper, saved in its checkpoints so a
    # killed run resumes (the served model is a plain classifier)
    classes = [truncation.Truncation, truncation.TopK, joint.RescaledTruncation, fast_layers.Conv2D,
               fast_layers.Conv2DTranspose, fast_layers.BatchNorm, losses.WeightedMSE,
               losses.MaskedMSE, losses.ReleasedKL, defended.DefendedClassifier]
    return {f"tfminv>{c.__name__}": c for c in classes}


def register() -> dict:
    """Import (and so register) every custom object; returns `custom_objects()`."""
    return custom_objects()
