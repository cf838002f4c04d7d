"""The workarounds that let Keras 3 train under `MultiWorkerMirroredStrategy` at all (part of
the training recipe: they shape each step)."""

from __future__ import annotations


def build(model, strategy, x, y) -> None:
    """Work around Keras 3's two failures under MultiWorkerMirroredStrategy
    (keras-team/keras#20585).

    Keras 3 (3.15 here) cannot run `fit` with that strategy: (1) before the first step it reduces
    the distributed (x, y) batch with `strategy.reduce`, which the strategy rejects for a tuple
    ("Attempt to convert a value (PerReplica...)"); that batch only serves to build state
    symbolically, so build it here from one local batch and skip the step. (2) Each step's
    scalar logs (loss, metrics) are averaged over replicas with `strategy.reduce(MEAN, axis=0)`,
    which fails on a scalar; returning them as [1] vectors makes that reduce the mean over all
    replicas of all workers, which Keras' callbacks then read as floats. With one replica in
    all (one worker, one device) Keras reduces nothing, so (2) is not applied: the [1] vectors
    would reach the callbacks as arrays (the non-finite guard, TensorBoard's scalar summaries).
    The training step and the gradient all-reduce are Keras' and TensorFlow's own.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    if isinstance(x, tf.data.Dataset):
        batch = next(iter(x.take(1)))
    else:
        batch = (x[:1], y[:1])
    with strategy.scope():
        model._symbolic_build(data_batch=batch)  # noqa: SLF001 - see the docstring
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if strategy.num_replicas_in_sync == 1:
        return

    def vector_logs(step):
        def wrapped(data):
            return {k: tf.reshape(v, [1]) if getattr(v, "shape", None) is not None
                    and v.shape.rank == 0 else v for k, v in step(data).items()}
        return wrapped

    model.train_step = vector_logs(model.train_step)
    model.test_step = vector_logs(model.test_step)
