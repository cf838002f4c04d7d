"""Atomic, durable file writing: nothing half-written is ever left under its final name.

Every final name is reached by `os.replace` of a temporary sibling, after the temporary's data
(and for folders, every file in it) has been fsynced, and the parent folder is fsynced after the
rename, so after a power cut a final name holds either its old or its new complete content.
Temporary folders of `atomic_dir` hold an flock while their writer lives; `clean_stale` removes
the ones whose writer died (kill -9, power cut), which no other code would ever remove.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

OWNER_LOCK = ".owner.lock"  # inside an atomic_dir temp folder while its writer is alive
# A temp folder without an owner lock (one being created this instant, or one left by an older
# version) is removed only when older than this.
STALE_UNLOCKED_S = 3600.0


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename or a new file in it) to the disk; best effort where the
    file system cannot fsync folders."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            fsync_file(os.path.join(dirpath, f))
        fsync_dir(dirpath)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600 files; give the final file the usual umask-based mode.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike):
    """Yield a temporary directory beside `final`; it replaces `final` only if the block succeeds.

    While the block runs the temporary folder holds an flock (`OWNER_LOCK`), so `clean_stale`
    can tell a live writer's folder from a dead one's.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    lock = open(tmp / OWNER_LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield tmp
        (tmp / OWNER_LOCK).unlink()
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        lock.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def clean_stale(final: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders of `atomic_dir(final)` whose writer is dead; return them.

    A folder whose owner lock can be taken has no live writer (flocks die with their process);
    one without a lock file is removed only when older than STALE_UNLOCKED_S.
    """
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        if not tmp.is_dir() or tmp.is_symlink():
            continue
        lock_file = tmp / OWNER_LOCK
        try:
            if lock_file.exists():
                with open(lock_file, "a") as f:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # its writer is alive
                    shutil.rmtree(tmp, ignore_errors=True)
            elif time.time() - tmp.stat().st_mtime > STALE_UNLOCKED_S:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                continue
        except OSError:
            continue
        if not tmp.exists():
            removed.append(tmp)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, sort_keys=False, default=_default) + "\n")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _default(o):
    # numpy scalars and arrays appear in results; keep the import lazy.
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
