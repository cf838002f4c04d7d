"""The training recipe: what makes a model's weights from its builder, data and `TrainConfig`
(seeding, strategy and dtype policy, optimiser, the callbacks that select and guard, Keras'
`fit`). Its source is part of every trained model's code version
(`tfminv.training.code_version.RECIPE`), so a change here trains new runs.
"""

from __future__ import annotations

from tfminv.training.commit import read_json


def train_once(build_model, x, y, *, config, workdir, val, loss, metrics, monitor, callbacks,
           best_path, best_json):
    """One attempt of `fit`'s training (resuming from the backup if there is one; the best
    checkpoint and its record go to best_path / best_json): returns (model, policy name,
    seconds)."""
    import time

    import keras

    from tfminv.training import callbacks as cb
    from tfminv.training import checkpoints, multiworker
    from tfminv.training.progress import EtaLogger, keras_verbose
    from tfminv.training.precision import policy_scope
    from tfminv.training.strategy import get_strategy

    keras.utils.set_random_seed(int(config.seed))
    strategy = get_strategy(config.strategy)
    with strategy.scope(), policy_scope(config.precision) as policy:
        model = build_model()
        model.compile(optimizer=config.optimizer(), loss=loss, metrics=metrics or [])
    multiworker.build(model, strategy, x, y)

    cbs = [cb.NonFiniteGuard(), checkpoints.callback(workdir / "backup")]
    threshold = None
    if best_json.exists() and best_path.exists():  # resumed run: keep the earlier best
        threshold = (read_json(best_json) or {}).get("value")
    if val is not None:
        cbs.append(keras.callbacks.ModelCheckpoint(
            str(best_path), monitor=monitor, mode=cb.mode(monitor), save_best_only=True,
            save_weights_only=True, initial_value_threshold=threshold))
        cbs.append(cb.BestRecorder(best_json, monitor, threshold, cb.mode(monitor)))
    cbs.append(keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=True))
    if cb.have_tensorboard():
        cbs.append(keras.callbacks.TensorBoard(str(workdir / "logs"), profile_batch=0,
                                               write_graph=False))
    cbs += list(callbacks)
    if config.verbose:
        cbs.append(EtaLogger())
    verbose = keras_verbose(config.verbose)
    t0 = time.perf_counter()
    if hasattr(x, "element_spec"):  # a tf.data pipeline of batches (streamed input)
        model.fit(x, epochs=int(config.epochs),
                  validation_data=tuple(val) if val is not None else None, callbacks=cbs,
                  shuffle=False, verbose=verbose)  # the pipeline shuffles
    else:
        model.fit(x, y, batch_size=int(config.batch_size), epochs=int(config.epochs),
                  validation_data=tuple(val) if val is not None else None, shuffle=True,
                  callbacks=cbs, verbose=verbose)
    return model, policy, time.perf_counter() - t0
