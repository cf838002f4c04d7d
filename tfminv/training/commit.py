"""The end of a run and its reuse: the run-folder lock, the commit (each step safe to interrupt,
run.json last), and loading a finished run, distrusting damaged files.

A finished run is never redone: the backup is kept until the end of the run is committed
(selected weights loaded, `model.keras` written atomically, then `run.json`, the commit point),
so a run killed anywhere after its last epoch resumes with zero epochs left and just commits.
A cached run whose run.json is not a run record or whose model.keras does not load is discarded
and trained again, with a one-line warning.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import shutil
from pathlib import Path

from tfminv.errors import ConfigError, TrainingError, first_line
from tfminv.io_utils import atomic_path, write_json

log = logging.getLogger("tfminv")

#: what a run.json must hold to count as a run record
RUN_KEYS = ("config", "meta")


@contextlib.contextmanager
def workdir_lock(workdir: Path):
    """Exclusive lock on a run folder: concurrent processes asking for the same run (same cache
    key) wait for the first one and then reuse its model instead of writing the same files."""
    import fcntl

    with open(workdir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process training in %s ...", workdir)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _commit_point(step: str) -> None:
    """Called after each step of `commit` (tests raise here to simulate a kill)."""


def commit(model, workdir: Path, run_info: dict, *, policy, seconds, best_path, best_json):
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
    history = history_rows(workdir / "history.csv")
    best = read_json(best_json)
    from tfminv import determinism

    write_json(workdir / "run.json", {**run_info, "policy": policy, "epochs_run": len(history),
                                      "best": best, "train_seconds": round(seconds, 1),
                                      "deterministic": determinism.enabled()})
    _commit_point("run.json")
    shutil.rmtree(workdir / "backup", ignore_errors=True)
    _commit_point("backup removed")


def history_rows(path: Path) -> list[dict]:
    """history.csv's rows, one per epoch (the last written), in epoch order; [] when there is
    none or it cannot be read (`checkpoints.prepare` has already replaced a damaged one)."""
    if not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            rows = [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    by_epoch = {}
    for r in rows:
        if r.get("epoch") is not None:
            by_epoch[int(r["epoch"])] = r
    return [by_epoch[e] for e in sorted(by_epoch)]


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def read_json(path: Path):
    """The JSON value in `path`, or None when it is missing or does not parse."""
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def is_run_record(saved) -> bool:
    return isinstance(saved, dict) and all(k in saved for k in RUN_KEYS)


def load_finished(workdir: Path, run_info: dict, discard: bool = True):
    """The model of a finished run, or None (with a one-line warning) when its run.json or
    model.keras cannot be read: the run is then trained again (and, with `discard`, its files
    removed first). A readable run record of other settings is refused (ConfigError)."""
    import keras

    saved = read_json(workdir / "run.json")
    if is_run_record(saved):
        if saved.get("config") != run_info["config"] or saved.get("meta") != run_info["meta"]:
            raise ConfigError(f"{workdir} holds a run with different settings; remove it or "
                              "use another --cache_dir")
        from tfminv import custom_objects

        custom_objects.register()
        try:
            model = keras.models.load_model(workdir / "model.keras")
        except Exception as e:  # noqa: BLE001 - any failure to load means: not a usable cache
            reason = f"model.keras does not load ({type(e).__name__}: {first_line(e, 120)})"
        else:
            if discard:  # a backup left by a kill after the commit point
                shutil.rmtree(workdir / "backup", ignore_errors=True)
            return model
    else:
        reason = "run.json is not a run record"
    log.warning(f"{workdir}: {reason}; discarding the cached run and training again")
    if discard:
        for name in ("run.json", "model.keras"):
            (workdir / name).unlink(missing_ok=True)
    return None


def load_run(workdir) -> dict:
    """The run.json of a finished `fit` workdir (config, meta, code, policy, epochs run, best
    value, train_seconds of the session that finished it); TrainingError naming the file when
    it is missing or is not a run record."""
    path = Path(workdir) / "run.json"
    saved = read_json(path)
    if not is_run_record(saved):
        why = "does not exist" if not path.exists() else "is not a run record"
        raise TrainingError(f"{path} {why}: the run in {workdir} did not finish here (on a "
                            "multi-worker run, put --cache_dir on storage every worker shares)")
    return saved
