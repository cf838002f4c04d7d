"""Where raw data, built records and run caches live: explicit argument > environment > default.

Defaults are relative to the current directory so an installed package never writes into
site-packages. Set TFMINV_DATA_DIR to a folder laid out like the project's shared data
(one sub-folder per raw dataset: mnist/, cifar10/, celeba/, facescrub_subset12/, att_faces/).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "TFMINV_DATA_DIR"
RECORDS_DIR_ENV = "TFMINV_RECORDS_DIR"
CACHE_DIR_ENV = "TFMINV_CACHE_DIR"

DEFAULT_DATA_DIR = Path("datasets") / "raw"
DEFAULT_RECORDS_DIR = Path("datasets") / "records"
DEFAULT_CACHE_DIR = Path("runs") / "cache"


def _resolve(value, env: str, default: Path) -> Path:
    if value:
        return Path(value).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return default


def data_dir(value: str | os.PathLike | None = None) -> Path:
    """Folder holding one sub-folder per raw dataset (flag > $TFMINV_DATA_DIR > datasets/raw)."""
    return _resolve(value, DATA_DIR_ENV, DEFAULT_DATA_DIR)


def records_dir(value: str | os.PathLike | None = None) -> Path:
    """Folder for built TFRecords (flag > $TFMINV_RECORDS_DIR > datasets/records)."""
    return _resolve(value, RECORDS_DIR_ENV, DEFAULT_RECORDS_DIR)


def cache_dir(value: str | os.PathLike | None = None) -> Path:
    """Folder for trained targets and cached predictions (flag > $TFMINV_CACHE_DIR > runs/cache)."""
    return _resolve(value, CACHE_DIR_ENV, DEFAULT_CACHE_DIR)
