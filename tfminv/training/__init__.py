"""Keras training with the authors' defaults, resumable, reproducible and keyed by its code.

`fit` builds the model inside the chosen tf.distribute strategy and dtype policy, trains with a
progress line per epoch, TensorBoard logs, a CSV history, a checkpoint of the best model on the
validation data (model selection) and `BackupAndRestore`, so a killed run continues from its
last epoch. A finished run leaves `model.keras` and `run.json` in its workdir and is reused
instead of retrained; `fit_cached` names the workdir after everything the weights depend on,
the code that trains them included (`code_version`).

The package is split along the reasons its parts change:
- `config`: `TrainConfig`; `recipe`: one training attempt (what makes the weights);
  `callbacks`: the guard and best-value record; `multiworker`: Keras' multi-worker workarounds;
- `fit`: `fit`, `fit_cached`, `run_dir_for` (run folders, retries after a non-finite loss);
- `commit`: the end of a run and its reuse (`load_run`); `checkpoints`: resuming a killed run;
  `workers`: who reads whose files in a multi-worker run;
- `progress`: the per-epoch line (`EtaLogger`); `timing`: `step_seconds`, `format_seconds`;
- `code_version`: the code versions in cache keys; `targets`, `joint`: the project's models.

Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from tfminv.hashing import digest
from tfminv.training.commit import load_run
from tfminv.training.config import TrainConfig
from tfminv.training.fit import NONFINITE_ATTEMPTS, fit, fit_cached, run_dir_for
from tfminv.training.timing import format_seconds, step_seconds


def __getattr__(name):
    if name == "EtaLogger":  # a Keras callback class: Keras is imported only when asked for
        from tfminv.training.progress import EtaLogger

        return EtaLogger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TrainConfig", "fit", "fit_cached", "run_dir_for", "digest", "load_run",
           "step_seconds", "EtaLogger", "format_seconds", "NONFINITE_ATTEMPTS"]
