"""The BackupAndRestore folder of a run: checked before it is trusted, never a traceback.

Keras' `BackupAndRestore(double_checkpoint=True)` keeps the last two epochs' states
(`latest.weights.h5` and `latest.weights.h5.bkp`, each with its `training_metadata.json`), but
restores the previous one only when the latest raises OSError and gives a traceback otherwise,
and on every rerun. `prepare` reads both candidates fully with h5py first (every dataset, so a
torn or truncated file fails here) and picks the newest readable one, or none: then the run
starts fresh with a one-line warning and the partial history and best checkpoint of the lost
attempt are dropped. The history kept covers exactly the epochs the backup holds; a history.csv
that does not read as one (random bytes, no epoch column) cannot be matched to the backup, so the
run starts afresh, with a one-line warning, instead of failing on every rerun.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

from tfminv.errors import first_line
from tfminv.io_utils import atomic_path

log = logging.getLogger("tfminv")

WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"
PREVIOUS = ".bkp"  # suffix Keras gives the previous state


#: free bytes a run folder must have before each epoch's backup, per byte of the model's
#: weights: two backups (double_checkpoint), the best weights, model.keras with the optimiser's
#: two Adam slots; plus SPACE_MARGIN for the small files (history, json, logs)
SPACE_PER_WEIGHT_BYTE = 6
SPACE_MARGIN = 1 << 20


def callback(backup_dir):
    """The BackupAndRestore callback of `fit` (its folder is removed by fit's commit). Before
    each backup it checks the folder's free space (`check_space`): HDF5 that runs out of space
    mid-file prints a traceback per open object and the interpreter then crashes on exit
    (SIGSEGV), so a full disk must be found before h5py writes, as an OSError(ENOSPC) that
    `fit` reports in one line."""
    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        def on_epoch_end(self, epoch, logs=None):
            check_space(backup_dir, self.model)
            super().on_epoch_end(epoch, logs)

    return Backup(str(backup_dir), double_checkpoint=True, delete_checkpoint=False)


def weight_bytes(model) -> int:
    """Bytes of `model`'s variables as stored (float32 unless a variable says otherwise)."""
    import numpy as np

    total = 0
    for v in model.weights:
        try:
            size = np.dtype(str(v.dtype)).itemsize
        except TypeError:  # a dtype numpy does not name (bfloat16 without ml_dtypes)
            size = 4
        total += int(np.prod(v.shape)) * size
    return total


def check_space(folder, model) -> None:
    """OSError(ENOSPC) naming `folder` when it has less free space than a run of `model` writes
    (`SPACE_PER_WEIGHT_BYTE` x its weights + `SPACE_MARGIN`)."""
    import errno

    folder = Path(folder)
    probe = folder if folder.exists() else folder.parent
    need = SPACE_PER_WEIGHT_BYTE * weight_bytes(model) + SPACE_MARGIN
    free = shutil.disk_usage(probe).free
    if free < need:
        raise OSError(errno.ENOSPC, f"No space left on device: {free / 2**20:.1f} MiB free, "
                      f"a run of this model needs about {need / 2**20:.1f} MiB", str(folder))


def _readable(weights: Path, metadata: Path) -> int:
    """The epoch a (weights, metadata) pair resumes at; raises when either cannot be read."""
    import h5py

    meta = json.loads(metadata.read_text())
    epoch = meta["epoch"]  # training_metadata.json; best.json (epoch counted from 1) also has it
    if not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch {epoch!r}")
    with h5py.File(weights, "r") as f:
        def read(_name, obj):
            if isinstance(obj, h5py.Dataset):
                obj[()]
        f.visititems(read)
    return epoch


def prepare(workdir: Path, backup: Path) -> int:
    """Make `backup` hold a readable state (or nothing) and history.csv match it; return the
    epoch training resumes at (0: fresh start)."""
    cur = (backup / WEIGHTS, backup / METADATA)
    prev = (backup / (WEIGHTS + PREVIOUS), backup / (METADATA + PREVIOUS))
    epoch, problems = 0, []
    if backup.exists():
        for i, (w, m) in enumerate((cur, prev)):
            if not w.exists():
                continue
            try:
                epoch = _readable(w, m)
            except Exception as e:  # noqa: BLE001 - h5py/json raise many kinds; all mean unusable
                problems.append(f"{w.name}: {type(e).__name__}: {first_line(e, 100)}")
                continue
            if i == 1:  # the previous state is the good one: put it where Keras reads first
                shutil.copyfile(w, cur[0])
                shutil.copyfile(m, cur[1])
                log.warning(f"{backup}: latest checkpoint unreadable ({problems[0]}); resuming "
                            f"from the previous one (epoch {epoch})")
            break
        else:
            if problems:
                log.warning(f"{backup}: checkpoint unreadable ({problems[0]}); starting the "
                            "run afresh")
            shutil.rmtree(backup, ignore_errors=True)
    best = workdir / "best.weights.h5"
    if epoch and best.exists():
        try:
            _readable(best, workdir / "best.json")
        except Exception as e:  # noqa: BLE001
            log.warning(f"{best}: unreadable ({type(e).__name__}); model selection restarts "
                        "from the next epoch")
            for name in ("best.json", "best.weights.h5"):
                (workdir / name).unlink(missing_ok=True)
    if epoch:
        try:
            trim_history(workdir / "history.csv", epoch)
        except (UnicodeDecodeError, csv.Error, ValueError) as e:
            log.warning(f"{workdir / 'history.csv'}: damaged ({type(e).__name__}: "
                        f"{first_line(e, 100)}); starting the run afresh")
            shutil.rmtree(backup, ignore_errors=True)
            epoch = 0
    if epoch == 0:
        for name in ("history.csv", "best.json", "best.weights.h5"):
            (workdir / name).unlink(missing_ok=True)
    return epoch


def trim_history(path: Path, epochs: int) -> None:
    """Keep one row per epoch below `epochs` (rows of epochs a killed attempt ran after its
    last backup would otherwise appear twice). Raises UnicodeDecodeError / csv.Error /
    ValueError when the file is not a history."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    if fields and "epoch" not in fields:
        raise ValueError(f"no epoch column (header {fields!r:.60})")
    keep = {}
    for r in rows:
        try:
            e = int(float(r.get("epoch", "")))
        except ValueError:
            continue
        if e < epochs:
            keep[e] = r
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as f:
            if fields:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(keep[e] for e in sorted(keep))
