"""The progress of a training as a person reads it: one line per epoch (epochs done, the
epoch's metrics, the measured time left for the model), and Keras' own per-step bar only on a
terminal. Importing this module imports Keras; `tfminv.training` re-exports `EtaLogger` lazily.
"""

from __future__ import annotations

import sys
import time

import keras

from tfminv.training.callbacks import log_value
from tfminv.training.timing import format_seconds


class EtaLogger(keras.callbacks.Callback):
    """After each epoch, one line: the epochs done, the epoch's metrics and the measured time
    left for the whole run of this model (Keras' bar shows only the time left in the current
    epoch, and is not written at all when stdout is not a terminal: `keras_verbose`)."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream

    def on_train_begin(self, logs=None):
        self.t0, self.start = time.perf_counter(), None

    def on_epoch_begin(self, epoch, logs=None):
        if self.start is None:
            self.start = epoch  # a resumed run starts past epoch 0

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1 - self.start
        total = self.params.get("epochs") or epoch + 1
        per_epoch = (time.perf_counter() - self.t0) / max(done, 1)
        left = per_epoch * (total - epoch - 1)
        shown = [f"{k} {v:.4g}" for k, v in ((k, log_value(v)) for k, v in (logs or {}).items())
                 if v is not None]
        out = self.stream or sys.stderr
        out.write(f"[{self.model.name}] epoch {epoch + 1}/{total}, about "
                  f"{format_seconds(left)} left for this model ({format_seconds(per_epoch)}"
                  f"/epoch{'; ' + ', '.join(shown) if shown else ''})\n")
        out.flush()


def keras_verbose(verbose: int, stdout=None) -> int:
    """The `verbose` given to `model.fit` for the project's `verbose` setting: Keras' progress
    bar (1) only on a terminal; otherwise nothing (0), since `EtaLogger` writes one line per
    epoch. Keras' bar written to a file or a pipe puts every step in it (a 616 kB log with 26k
    escape sequences for one audit)."""
    if int(verbose) != 1:
        return 0
    out = stdout or sys.stdout
    isatty = getattr(out, "isatty", None)
    try:
        return 1 if isatty is not None and isatty() else 0
    except (ValueError, OSError):  # a closed stream
        return 0
