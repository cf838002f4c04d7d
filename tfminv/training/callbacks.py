"""The Keras callbacks of the training recipe: the non-finite-loss guard and the best-value
record that keeps a resumed run from overwriting a better checkpoint (the progress line is
`tfminv.training.progress`). Importing this module imports Keras.
"""

from __future__ import annotations

import math
import keras
import numpy as np

from tfminv.io_utils import write_json


class NonFiniteLoss(Exception):
    """Raised by `NonFiniteGuard` out of `model.fit`, before the epoch's end is recorded
    (backup, best checkpoint, history), so the backup still holds the last good epoch.
    `epoch` counts from 1."""

    def __init__(self, message: str, epoch: int):
        super().__init__(message)
        self.epoch = epoch


def log_value(value) -> float | None:
    """A per-step or per-epoch log entry as a float: Keras gives a Python float, a NumPy
    scalar, or (a multi-worker step's log, `multiworker.build`) a one-element array."""
    if value is None:
        return None
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return None
    return float(a.mean())  # several values (never seen): any non-finite one shows


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop training with `NonFiniteLoss` at the first batch whose loss is not finite."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = log_value((logs or {}).get("loss"))
        if value is not None and not math.isfinite(value):
            raise NonFiniteLoss(f"loss {value} at epoch {self.epoch + 1}, batch {batch + 1}",
                                self.epoch + 1)


def mode(monitor: str) -> str:
    """'max' for accuracies, 'min' for losses and errors."""
    return "max" if "acc" in monitor else "min"


class BestRecorder(keras.callbacks.Callback):
    """Record the best monitored value (best.json) so a resumed run does not overwrite a better
    checkpoint; `initial` is the best of the epochs before the resume."""

    def __init__(self, path, monitor: str, initial=None, mode: str = "min"):
        super().__init__()
        self.path, self.monitor, self.best, self.mode = path, monitor, initial, mode

    def on_epoch_end(self, epoch, logs=None):
        value = log_value((logs or {}).get(self.monitor))
        if value is None:
            return
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best = value
            write_json(self.path, {"monitor": self.monitor, "value": self.best,
                                   "epoch": epoch + 1})


def have_tensorboard() -> bool:
    """TensorBoard logs need the tensorboard package (extra 'train'); without it, skip them."""
    import importlib.util
    import logging

    if importlib.util.find_spec("tensorboard") is None:
        logging.getLogger("tfminv").warning(
            "tensorboard is not installed (pip install tfminv[train]): no TensorBoard logs are "
            "written")
        return False
    return True
