"""Who reads whose files in a multi-worker run: the chief decides (reuse, or train from which
epoch) and the other workers follow, reading the chief's files only after it has.

A worker that cannot see the chief's run folder (storage not shared) is found when the run
starts: every worker says whether it sees the folder, and all of them stop with one line
naming it instead of one worker dying on a missing file and the others waiting for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tfminv.errors import first_line

SHARED_STORAGE = "put --cache_dir on storage every worker shares"


def decide(chief: bool, finished: bool, resume: int, read_dir: Path) -> tuple[bool, int]:
    """(finished, resume epoch) as the chief decided them, on every worker; raises ClusterError
    on every worker when one of them cannot see the chief's run folder `read_dir` (the chief
    holds its `.lock` there by now). Every worker must call it at the same point."""
    from tfminv import distribute

    finished, resume = (int(v) for v in distribute.broadcast_from_chief(
        np.array([finished, resume], np.float32)))
    sees = chief or (read_dir / ".lock").exists()
    if not distribute.all_true(sees):
        who = ("this worker does not see the chief's run there" if not sees else
               "another worker does not see this run folder")
        raise distribute.ClusterError(
            f"{read_dir}: the run folder is not shared ({who}); {SHARED_STORAGE}")
    return bool(finished), resume


def load_shared(read_dir: Path):
    """On a non-chief worker: the finished model the chief has just loaded from `read_dir`."""
    import keras

    from tfminv import custom_objects, distribute

    custom_objects.register()
    try:
        return keras.models.load_model(read_dir / "model.keras")
    except Exception as e:  # noqa: BLE001 - any failure: this worker cannot follow the chief
        raise distribute.ClusterError(
            f"{read_dir}/model.keras: the chief reuses this finished run but this worker cannot "
            f"load it ({type(e).__name__}: {first_line(e, 120)}); {SHARED_STORAGE}") from None


def copy_backup(read_dir: Path, workdir: Path) -> int:
    """On a non-chief worker: copy the chief's checked backup and best checkpoint to `workdir`
    and return the epoch it resumes at."""
    from tfminv.training import checkpoints

    if (read_dir / "backup").is_dir():
        shutil.copytree(read_dir / "backup", workdir / "backup", dirs_exist_ok=True)
        for name in ("best.json", "best.weights.h5"):
            if (read_dir / name).exists():
                shutil.copy(read_dir / name, workdir / name)
    return checkpoints.prepare(workdir, workdir / "backup")


def check_committed(read_dir: Path) -> None:
    """On a non-chief worker after the end-of-run barrier: the chief's run.json must be there
    (what `model.run_dir` and `load_run` read)."""
    from tfminv import distribute

    if not (read_dir / "run.json").exists():
        raise distribute.ClusterError(
            f"{read_dir}/run.json: the chief committed this run but this worker cannot see it; "
            f"{SHARED_STORAGE}")
