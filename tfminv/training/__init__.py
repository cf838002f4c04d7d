"""Keras training with the authors' defaults, resumable and reproducible.

`fit` builds the model inside the chosen tf.distribute strategy and dtype policy, trains with a
progress bar, TensorBoard logs, a CSV history, a checkpoint of the best model on the validation
data (model selection) and `BackupAndRestore`, so a killed run continues from its last epoch.
A finished run leaves `model.keras` in its workdir and is reused instead of retrained.

A finished run is never redone: the backup is kept until the end of the run is committed
(selected weights loaded, `model.keras` written atomically, then `run.json`, the commit point),
so a run killed anywhere after its last epoch resumes with zero epochs left and just commits.
history.csv holds one row per epoch: a resumed run first drops the rows of epochs its backup
does not cover. A torn backup falls back to the previous epoch's backup, else to a fresh start,
and a cached model that does not load is discarded and retrained, each with a one-line warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from tfminv.errors import ConfigError
from tfminv.hashing import digest
from tfminv.io_utils import atomic_path, write_json


@dataclasses.dataclass
class TrainConfig:
    """Optimiser and run settings; defaults are the authors' (batch 128, Adam 2e-4, beta1 0.5,
    beta2 0.999, amsgrad, 100 epochs, seed 1)."""

    epochs: int = 100
    batch_size: int = 128
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    amsgrad: bool = True
    seed: int = 1
    precision: str = "auto"
    strategy: str = "default"
    verbose: int = 1  # 1 = Keras progress bar

    def __post_init__(self):
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs (--epochs) must be at least 1, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size (--batch_size) must be at least 1, got "
                              f"{self.batch_size}")
        if not float(self.learning_rate) > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.learning_rate}")

    def key(self) -> dict:
        """The settings that change the trained weights (for cache keys)."""
        from tfminv.training.precision import resolve

        d = dataclasses.asdict(self)
        d.pop("verbose")
        d["precision"] = resolve(self.precision)  # 'auto' keys by the policy it stands for
        return d

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def optimizer(self):
        import keras

        return keras.optimizers.Adam(learning_rate=self.learning_rate, beta_1=self.beta_1,
                                     beta_2=self.beta_2, amsgrad=self.amsgrad)


def _history_rows(path: Path) -> list[dict]:
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]
    by_epoch = {}  # one row per epoch (the last written), in epoch order
    for r in rows:
        if r.get("epoch") is not None:
            by_epoch[int(r["epoch"])] = r
    return [by_epoch[e] for e in sorted(by_epoch)]


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fit(build_model: Callable[[], "keras.Model"], x, y, *, config: TrainConfig, workdir,
        val=None, loss="mse", metrics=None, monitor: str = "val_loss", callbacks=(),
        reuse: bool = True, meta: dict | None = None):
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
    """
    from tfminv import distribute

    workdir = Path(workdir)
    kw = dict(config=config, val=val, loss=loss, metrics=metrics, monitor=monitor,
              callbacks=callbacks, reuse=reuse, meta=meta)
    if not distribute.is_chief():
        # A non-chief worker reads the chief's folder (a finished model, the backup to resume
        # from) and writes its own copies to a temporary folder (TensorFlow's multi-worker rule).
        own = distribute.write_dir(workdir, what="train")
        return _fit_locked(build_model, x, y, workdir=own, read_dir=workdir, **kw)
    workdir.mkdir(parents=True, exist_ok=True)
    with _workdir_lock(workdir):
        return _fit_locked(build_model, x, y, workdir=workdir, read_dir=workdir, **kw)


@contextlib.contextmanager
def _workdir_lock(workdir: Path):
    """Exclusive lock on a run folder: concurrent processes asking for the same run (same cache
    key) wait for the first one and then reuse its model instead of writing the same files."""
    import fcntl

    with open(workdir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process training in {workdir} ...", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fit_locked(build_model, x, y, *, config, workdir, read_dir, val, loss, metrics, monitor,
                callbacks, reuse, meta):
    import keras

    from tfminv import distribute
    from tfminv.training import checkpoints

    run_info = {"config": config.key(), "meta": meta or {}}
    final = workdir / "model.keras"
    chief = read_dir == workdir
    model, resume = None, 0
    if chief:  # under the workdir lock
        if reuse and (workdir / "model.keras").exists() and (workdir / "run.json").exists():
            model = _load_finished(workdir, run_info)
        if model is None:
            # The backup outlives fit: it is removed only once the run is committed (_commit).
            resume = checkpoints.prepare(workdir, workdir / "backup")
    if distribute.is_multi_worker():
        # The workers run every step in step, so they must all reuse or all train, from the same
        # epoch: the chief decides from its files and tells the others, which read those files
        # only after it has (a finished model, or a backup it has already checked).
        finished, resume = (int(v) for v in distribute.broadcast_from_chief(
            np.array([model is not None, resume], np.float32)))
        if not chief:
            if finished:
                return _load_shared(read_dir)
            resume_here = _copy_backup(read_dir, workdir)
            if resume_here != resume:
                raise distribute.ClusterError(
                    f"{read_dir}/backup resumes at epoch {resume_here} on this worker but at "
                    f"epoch {resume} on the chief; put --cache_dir on storage every worker "
                    "shares")
    if model is not None:
        return model

    best_path, best_json = workdir / "best.weights.h5", workdir / "best.json"
    streak, failed_epoch = 0, 0
    while True:
        try:
            model, policy, seconds = _train(build_model, x, y, config=config, workdir=workdir,
                                            val=val, loss=loss, metrics=metrics,
                                            monitor=monitor, callbacks=callbacks,
                                            best_path=best_path, best_json=best_json)
            break
        except _NonFiniteLoss as e:
            # a run that got past the epoch that failed last time starts a new count
            streak = streak + 1 if e.epoch <= failed_epoch else 1
            failed_epoch = e.epoch
            if streak == NONFINITE_ATTEMPTS:
                from tfminv.errors import TrainingError

                raise TrainingError(
                    f"{workdir}: the training loss became non-finite ({e}) in "
                    f"{NONFINITE_ATTEMPTS} attempts in a row, each resumed from the last "
                    f"finished epoch; the model diverges at --precision={config.precision}: "
                    "try --precision=float32 or a smaller learning rate") from None
            print(f"warning: {workdir.name}: training loss non-finite ({e}); resuming from the "
                  f"last finished epoch (attempt {streak + 1} of {NONFINITE_ATTEMPTS})",
                  file=sys.stderr, flush=True)
            checkpoints.prepare(workdir, workdir / "backup")
    _commit(model, workdir, run_info, policy=policy, seconds=seconds,
            best_path=best_path if val is not None else None, best_json=best_json)
    # the chief's run.json exists on every worker from here on (model.run_dir, load_run)
    distribute.barrier()
    if config.strategy != "default":
        # a plain single-device copy: inference (queries, evaluation) then runs locally on each
        # worker instead of as a distributed step every worker must join
        from tfminv import custom_objects

        custom_objects.register()
        model = keras.models.load_model(final)
    return model


#: a training whose loss turns non-finite is resumed from its last finished epoch; it fails when
#: this many attempts in a row end before getting past the epoch that failed. Seen on the
#: project's CPU under mixed_bfloat16 at 471 classes: epochs went NaN while a rerun of the same
#: seed, data and batches stayed finite from the same state, so the fault was intermittent (a
#: kernel; see models.fast_layers.safe_reduction_dtype), not divergence; a real divergence
#: fails every attempt.
NONFINITE_ATTEMPTS = 3


class _NonFiniteLoss(Exception):
    """Raised by the guard callback out of `model.fit`, before the epoch's end is recorded
    (backup, best checkpoint, history), so the backup still holds the last good epoch.
    `epoch` counts from 1."""

    def __init__(self, message: str, epoch: int):
        super().__init__(message)
        self.epoch = epoch


def _nonfinite_guard():
    import math

    import keras

    class Guard(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            value = (logs or {}).get("loss")
            if value is not None and not math.isfinite(value := float(value)):
                raise _NonFiniteLoss(f"loss {value} at epoch {self.epoch + 1}, "
                                     f"batch {batch + 1}", self.epoch + 1)

    return Guard()


def _train(build_model, x, y, *, config, workdir, val, loss, metrics, monitor, callbacks,
           best_path, best_json):
    """One attempt of `fit`'s training (resuming from the backup if there is one; the best
    checkpoint and its record go to best_path / best_json): returns (model, policy name,
    seconds)."""
    import time

    import keras

    from tfminv.training import checkpoints
    from tfminv.training.precision import policy_scope
    from tfminv.training.strategy import get_strategy

    keras.utils.set_random_seed(int(config.seed))
    strategy = get_strategy(config.strategy)
    with strategy.scope(), policy_scope(config.precision) as policy:
        model = build_model()
        model.compile(optimizer=config.optimizer(), loss=loss, metrics=metrics or [])
    _multi_worker_build(model, strategy, x, y)

    cbs = [_nonfinite_guard(), checkpoints.callback(workdir / "backup")]
    threshold = None
    if best_json.exists() and best_path.exists():  # resumed run: keep the earlier best
        threshold = (_read_json(best_json) or {}).get("value")
    if val is not None:
        cbs.append(keras.callbacks.ModelCheckpoint(
            str(best_path), monitor=monitor, mode=_mode(monitor), save_best_only=True,
            save_weights_only=True, initial_value_threshold=threshold))
        cbs.append(_BestRecorder(best_json, monitor, threshold, _mode(monitor)))
    cbs.append(keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=True))
    if _have_tensorboard():
        cbs.append(keras.callbacks.TensorBoard(str(workdir / "logs"), profile_batch=0,
                                               write_graph=False))
    cbs += list(callbacks)
    if config.verbose:
        cbs.append(EtaLogger())
    t0 = time.perf_counter()
    if hasattr(x, "element_spec"):  # a tf.data pipeline of batches (streamed input)
        model.fit(x, epochs=int(config.epochs),
                  validation_data=tuple(val) if val is not None else None, callbacks=cbs,
                  shuffle=False, verbose=config.verbose)  # the pipeline shuffles
    else:
        model.fit(x, y, batch_size=int(config.batch_size), epochs=int(config.epochs),
                  validation_data=tuple(val) if val is not None else None, shuffle=True,
                  callbacks=cbs, verbose=config.verbose)
    return model, policy, time.perf_counter() - t0


def _load_shared(read_dir: Path):
    """On a non-chief worker: the finished model the chief has just loaded from `read_dir`."""
    import keras

    from tfminv import custom_objects, distribute

    custom_objects.register()
    try:
        return keras.models.load_model(read_dir / "model.keras")
    except Exception as e:  # noqa: BLE001 - any failure: this worker cannot follow the chief
        first = (str(e).splitlines() or [""])[0][:120]
        raise distribute.ClusterError(
            f"{read_dir}/model.keras: the chief reuses this finished run but this worker cannot "
            f"load it ({type(e).__name__}: {first}); put --cache_dir on storage every worker "
            "shares") from None


def _copy_backup(read_dir: Path, workdir: Path) -> int:
    """On a non-chief worker: copy the chief's checked backup and best checkpoint to `workdir`
    and return the epoch it resumes at."""
    from tfminv.training import checkpoints

    if (read_dir / "backup").is_dir():
        shutil.copytree(read_dir / "backup", workdir / "backup", dirs_exist_ok=True)
        for name in ("best.json", "best.weights.h5"):
            if (read_dir / name).exists():
                shutil.copy(read_dir / name, workdir / name)
    return checkpoints.prepare(workdir, workdir / "backup")


def _multi_worker_build(model, strategy, x, y) -> None:
    """Work around Keras 3's two failures under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Keras 3 (3.15 here) cannot run `fit` with that strategy: (1) before the first step it reduces
    the distributed (x, y) batch with `strategy.reduce`, which the strategy rejects for a tuple
    ("Attempt to convert a value (PerReplica...)"); that batch only serves to build state
    symbolically, so build it here from one local batch and skip the step. (2) Each step's
    scalar logs (loss, metrics) are averaged over replicas with `strategy.reduce(MEAN, axis=0)`,
    which fails on a scalar; returning them as [1] vectors makes that reduce the mean over all
    replicas of all workers, which Keras' callbacks then read as floats. The training step and
    the gradient all-reduce are Keras' and TensorFlow's own.
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

    def vector_logs(step):
        def wrapped(data):
            return {k: tf.reshape(v, [1]) if getattr(v, "shape", None) is not None
                    and v.shape.rank == 0 else v for k, v in step(data).items()}
        return wrapped

    model.train_step = vector_logs(model.train_step)
    model.test_step = vector_logs(model.test_step)


def _commit_point(step: str) -> None:
    """Called after each step of `_commit` (tests raise here to simulate a kill)."""


def _commit(model, workdir: Path, run_info: dict, *, policy, seconds, best_path, best_json):
    """Commit the end of a run, each step safe to interrupt: the backup still holds the last
    epoch, so a rerun resumes with no epoch left and redoes only these steps; run.json, written
    last, marks the run finished."""
    _commit_point("trained")
    if best_path is not None and best_path.exists():
        model.load_weights(str(best_path))
    _commit_point("selected")
    with atomic_path(workdir / "model.keras", suffix=".keras") as tmp:
        model.save(str(tmp))
    _commit_point("model.keras")
    history = _history_rows(workdir / "history.csv")
    best = _read_json(best_json)
    from tfminv import determinism

    write_json(workdir / "run.json", {**run_info, "policy": policy, "epochs_run": len(history),
                                      "best": best, "train_seconds": round(seconds, 1),
                                      "deterministic": determinism.enabled()})
    _commit_point("run.json")
    shutil.rmtree(workdir / "backup", ignore_errors=True)
    _commit_point("backup removed")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def _load_finished(workdir: Path, run_info: dict, discard: bool = True):
    """The model of a finished run, or None (with a one-line warning) when its run.json or
    model.keras cannot be read: the run is then trained again (and, with `discard`, its files
    removed first)."""
    import keras

    saved = _read_json(workdir / "run.json")
    if isinstance(saved, dict):
        if saved.get("config") != run_info["config"] or saved.get("meta") != run_info["meta"]:
            raise ConfigError(f"{workdir} holds a run with different settings; remove it or "
                              "use another --cache_dir")
        from tfminv import custom_objects

        custom_objects.register()
        try:
            model = keras.models.load_model(workdir / "model.keras")
        except Exception as e:  # noqa: BLE001 - any failure to load means: not a usable cache
            first = (str(e).splitlines() or [""])[0][:120]
            reason = f"model.keras does not load ({type(e).__name__}: {first})"
        else:
            if discard:  # a backup left by a kill after the commit point
                shutil.rmtree(workdir / "backup", ignore_errors=True)
            return model
    else:
        reason = "run.json is not a run record"
    print(f"warning: {workdir}: {reason}; discarding the cached run and training again",
          file=sys.stderr, flush=True)
    if discard:
        for name in ("run.json", "model.keras"):
            (workdir / name).unlink(missing_ok=True)
    return None


def step_seconds(build_model: Callable[[], "keras.Model"], x, y, *, config: TrainConfig,
                 loss="mse", steps: int = 3) -> float:
    """Measured seconds per training step of `build_model()` on one batch (x, y) under the
    config's precision, after one warm-up step (what a budget estimate multiplies out)."""
    import time

    import keras

    from tfminv.training.precision import policy_scope

    with policy_scope(config.precision):
        model = build_model()
        model.compile(optimizer=config.optimizer(), loss=loss)
    model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(int(steps)):
        model.train_on_batch(x, y)
    del keras
    return (time.perf_counter() - t) / int(steps)


class EtaLogger:
    """Keras callback printing, after each epoch, the epochs done and the measured time left
    for the whole run (Keras' own bar only shows the time left in the current epoch)."""

    def __new__(cls, stream=None):
        import sys
        import time

        import keras

        out = stream or sys.stderr

        class Eta(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.t0, self.start = time.perf_counter(), None

            def on_epoch_begin(self, epoch, logs=None):
                if self.start is None:
                    self.start = epoch  # a resumed run starts past epoch 0

            def on_epoch_end(self, epoch, logs=None):
                done = epoch + 1 - self.start
                total = self.params.get("epochs") or epoch + 1
                left = (time.perf_counter() - self.t0) / max(done, 1) * (total - epoch - 1)
                out.write(f"[{self.model.name}] epoch {epoch + 1}/{total}, about "
                          f"{format_seconds(left)} left for this model\n")
                out.flush()

        return Eta()


def format_seconds(s: float) -> str:
    """12 s, 4.5 min, 3.2 h."""
    s = float(s)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _have_tensorboard() -> bool:
    """TensorBoard logs need the tensorboard package (extra 'train'); without it, skip them."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        import warnings

        warnings.warn("tensorboard is not installed (pip install tfminv[train]): "
                      "no TensorBoard logs are written")
        return False
    return True


def _mode(monitor: str) -> str:
    """'max' for accuracies, 'min' for losses and errors."""
    return "max" if "acc" in monitor else "min"


class _BestRecorder:
    """Record the best monitored value so a resumed run does not overwrite a better checkpoint."""

    def __new__(cls, path, monitor, initial, mode="min"):
        import keras

        class Recorder(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.best = initial

            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get(monitor)
                if value is None:
                    return
                if self.best is None or (value > self.best if mode == "max"
                                         else value < self.best):
                    self.best = float(value)
                    write_json(path, {"monitor": monitor, "value": self.best, "epoch": epoch + 1})

        return Recorder()


def run_dir_for(workdir, name: str, config: TrainConfig, meta: dict) -> Path:
    """The folder of a cached run: `workdir/<name>-<digest of config.key() and meta>`."""
    return Path(workdir) / f"{name}-{digest({'cfg': config.key(), **meta})}"


def fit_cached(build_model: Callable[[], "keras.Model"], x, y, *, config: TrainConfig, workdir,
               name: str, meta: dict, **fit_kwargs):
    """The one "hash the inputs, then train or reuse a cached run" recipe.

    meta: what the weights depend on besides `config` (data hashes from
    `tfminv.hashing.short_hash`, width, k, ...); it names the run folder (`run_dir_for`) and is
    checked against the finished run's run.json. Returns `fit`'s model with `run_dir` set to
    that folder (logs, checkpoints, run.json).
    """
    run_dir = run_dir_for(workdir, name, config, meta)
    model = fit(build_model, x, y, config=config, workdir=run_dir, meta=meta, **fit_kwargs)
    model.run_dir = str(run_dir)
    return model


def load_run(workdir) -> dict:
    """The run.json of a finished `fit` workdir (config, policy, epochs run, best value,
    train_seconds of the session that finished it)."""
    return json.loads((Path(workdir) / "run.json").read_text())


__all__ = ["TrainConfig", "fit", "fit_cached", "run_dir_for", "digest", "load_run",
           "step_seconds", "EtaLogger", "format_seconds"]
