"""`fit`: train a model (or reuse its finished run) in its run folder; `fit_cached`: the one
"hash the inputs, then train or reuse a cached run" recipe.

The training itself (`recipe.train_once`) is what makes the weights; the rest of a run's life
is here and in `commit` (the end of a run and its reuse), `checkpoints` (resume) and `workers`
(what the workers of a cluster agree on).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

from tfminv.errors import ConfigError, TrainingError
from tfminv.hashing import digest
from tfminv.training import commit as _commit_mod
from tfminv.training.config import TrainConfig

#: a training whose loss turns non-finite is resumed from its last finished epoch; it fails when
#: this many attempts in a row end before getting past the epoch that failed. Seen on the
#: project's CPU under mixed_bfloat16 at 471 classes: epochs went NaN while a rerun of the same
#: seed, data and batches stayed finite from the same state, so the fault was intermittent (a
#: kernel; see models.fast_layers.safe_reduction_dtype), not divergence; a real divergence
#: fails every attempt.
NONFINITE_ATTEMPTS = 3


def fit(build_model: Callable[[], "keras.Model"], x, y, *, config: TrainConfig, workdir,
        val=None, loss="mse", metrics=None, monitor: str = "val_loss", callbacks=(),
        reuse: bool = True, meta: dict | None = None, code: str | None = None):
    """Train `build_model()` on (x, y) and return it with the selected weights.

    build_model: zero-argument function returning an uncompiled Keras model (called inside
      the strategy scope and dtype policy, after seeding).
    x, y: arrays, or x a tf.data.Dataset of (x, y) batches of `config.batch_size` and y None
      (streamed input, see tfminv.data.streaming); `config.batch_size` is the global batch:
      under a distributed strategy each of the replicas takes an equal share of it.
    val: (x_val, y_val) for model selection: the weights with the best `monitor` are kept
      (the highest for an accuracy, e.g. 'val_accuracy'; the lowest otherwise).
      Without it the last epoch's weights are returned.
    workdir: holds backup/ (resume), best.weights.h5, logs/ (TensorBoard), history.csv,
      model.keras and run.json (when finished). With reuse=True a finished workdir is loaded.
      A lock on the workdir makes a concurrent process with the same run wait, then reuse.
      In a multi-worker run the chief decides (reuse, or train from which epoch) and the other
      workers follow, reading its files only afterwards; fit returns on every worker only once
      the chief has committed the run (its run.json exists).
    meta: what the weights depend on besides `config` (checked against a finished run).
    code: the model's kind in `tfminv.training.code_version.KINDS` (its builder's modules);
      its code version joins `meta` (a change to that code is another run) and run.json gets
      the per-module hashes. None: the training recipe's code only.
    A run folder that cannot be written (missing, a file, full, read-only) raises ConfigError
    naming it.
    """
    from tfminv import distribute
    from tfminv.training import code_version

    workdir = Path(workdir)
    record = code_version.record(code)
    meta = {**(meta or {}), "code": record["version"]}
    kw = dict(config=config, val=val, loss=loss, metrics=metrics, monitor=monitor,
              callbacks=callbacks, reuse=reuse, meta=meta, code=record)
    try:
        if not distribute.is_chief():
            # A non-chief worker reads the chief's folder (a finished model, the backup to
            # resume from) and writes its own copies to a temporary folder (TensorFlow's
            # multi-worker rule).
            own = distribute.write_dir(workdir, what="train")
            return _fit_locked(build_model, x, y, workdir=own, read_dir=workdir, **kw)
        workdir.mkdir(parents=True, exist_ok=True)
        with _commit_mod.workdir_lock(workdir):
            return _fit_locked(build_model, x, y, workdir=workdir, read_dir=workdir, **kw)
    except OSError as e:
        if e.errno not in STORAGE_ERRNOS:
            raise
        raise unwritable(workdir, e) from None


#: what the OS says about a folder that cannot hold a run (full, read-only, not a folder, gone)
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                  errno.ENOTDIR, errno.EEXIST, errno.ENOENT, errno.EISDIR)


def unwritable(folder: Path, e: OSError) -> ConfigError:
    """One line for a run folder the OS refuses: which file, why, what to do."""
    where = e.filename or folder
    # h5py's strerror is HDF5's multi-line report (time, file descriptor, buffer, ...): the
    # OS's own words for the errno instead, unless the message is one line already
    why = " ".join((e.strerror or "").split()) or type(e).__name__
    if e.errno and ("\n" in (e.strerror or "") or len(why) > 200):
        why = os.strerror(e.errno)
    hint = ("free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else
            "make it a writable folder")
    return ConfigError(f"{where}: cannot write the run folder {folder} ({why}); {hint} or "
                       "choose another --cache_dir")


def _fit_locked(build_model, x, y, *, config, workdir, read_dir, val, loss, metrics, monitor,
                callbacks, reuse, meta, code):
    import keras

    from tfminv import distribute
    from tfminv.training import checkpoints, recipe, workers
    from tfminv.training.callbacks import NonFiniteLoss

    run_info = {"config": config.key(), "meta": meta, "code": code}
    check = {"config": run_info["config"], "meta": meta}
    final = workdir / "model.keras"
    chief = read_dir == workdir
    model, resume = None, 0
    if chief:  # under the workdir lock
        if reuse and (workdir / "model.keras").exists() and (workdir / "run.json").exists():
            model = _commit_mod.load_finished(workdir, check)
        if model is None:
            # The backup outlives fit: it is removed only once the run is committed (commit).
            resume = checkpoints.prepare(workdir, workdir / "backup")
    if distribute.is_multi_worker():
        # The workers run every step in step, so they must all reuse or all train, from the same
        # epoch: the chief decides from its files and tells the others, which read those files
        # only after it has (a finished model, or a backup it has already checked).
        finished, resume = workers.decide(chief, model is not None, resume, read_dir)
        if not chief:
            if finished:
                return workers.load_shared(read_dir)
            resume_here = workers.copy_backup(read_dir, workdir)
            if resume_here != resume:
                raise distribute.ClusterError(
                    f"{read_dir}/backup resumes at epoch {resume_here} on this worker but at "
                    f"epoch {resume} on the chief; {workers.SHARED_STORAGE}")
    if model is not None:
        return model

    best_path, best_json = workdir / "best.weights.h5", workdir / "best.json"
    streak, failed_epoch = 0, 0
    while True:
        try:
            model, policy, seconds = recipe.train_once(
                build_model, x, y, config=config, workdir=workdir, val=val, loss=loss,
                metrics=metrics, monitor=monitor, callbacks=callbacks, best_path=best_path,
                best_json=best_json)
            break
        except NonFiniteLoss as e:
            # a run that got past the epoch that failed last time starts a new count
            streak = streak + 1 if e.epoch <= failed_epoch else 1
            failed_epoch = e.epoch
            if streak == NONFINITE_ATTEMPTS:
                raise TrainingError(
                    f"{workdir}: the training loss became non-finite ({e}) in "
                    f"{NONFINITE_ATTEMPTS} attempts in a row, each resumed from the last "
                    f"finished epoch; the model diverges at --precision={config.precision}: "
                    "try --precision=float32 or a smaller learning rate") from None
            _commit_mod.log.warning(
                f"{workdir.name}: training loss non-finite ({e}); resuming from the last "
                f"finished epoch (attempt {streak + 1} of {NONFINITE_ATTEMPTS})")
            checkpoints.prepare(workdir, workdir / "backup")
    _commit_mod.commit(model, workdir, run_info, policy=policy, seconds=seconds,
                       best_path=best_path if val is not None else None, best_json=best_json)
    # the chief's run.json exists on every worker from here on (model.run_dir, load_run)
    distribute.barrier()
    if not chief:
        workers.check_committed(read_dir)
    if config.strategy != "default":
        # a plain single-device copy: inference (queries, evaluation) then runs locally on each
        # worker instead of as a distributed step every worker must join
        from tfminv import custom_objects

        custom_objects.register()
        model = keras.models.load_model(final)
    return model


def run_dir_for(workdir, name: str, config: TrainConfig, meta: dict,
                code: str | None = None) -> Path:
    """The folder of a cached run: `workdir/<name>-<digest of config.key(), meta and the code
    version of `code`>` (the model's kind in `code_version.KINDS`)."""
    from tfminv.training import code_version

    key = {"cfg": config.key(), **meta, "code": code_version.version(code)}
    return Path(workdir) / f"{name}-{digest(key)}"


def fit_cached(build_model: Callable[[], "keras.Model"], x, y, *, config: TrainConfig, workdir,
               name: str, meta: dict, code: str | None = None, **fit_kwargs):
    """The one "hash the inputs, then train or reuse a cached run" recipe.

    meta: what the weights depend on besides `config` (data hashes from
    `tfminv.hashing.short_hash`, width, k, ...); code: the model's kind in
    `tfminv.training.code_version.KINDS`, whose code version joins the key, so a change to the
    builder, its layers or the training recipe trains a new run instead of reusing the old
    one. Both name the run folder (`run_dir_for`) and are checked against the finished run's
    run.json. Returns `fit`'s model with `run_dir` set to that folder (logs, checkpoints,
    run.json).
    """
    run_dir = run_dir_for(workdir, name, config, meta, code)
    model = fit(build_model, x, y, config=config, workdir=run_dir, meta=meta, code=code,
                **fit_kwargs)
    model.run_dir = str(run_dir)
    return model
