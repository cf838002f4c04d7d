"""Shared fixtures: real data via $TFMINV_DATA_DIR, records and caches in per-session temp dirs."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from tfminv import paths


@pytest.fixture(scope="session")
def data_dir():
    """The real raw datasets (CI sets TFMINV_DATA_DIR=../shared/data). Missing data fails loudly."""
    d = paths.data_dir()
    if not (d / "mnist").is_dir():
        pytest.fail(f"real datasets not found in {d.resolve()}: set {paths.DATA_DIR_ENV} "
                    "to the folder holding mnist/, cifar10/, celeba/, facescrub_subset12/, att_faces/")
    return d


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs(tmp_path_factory):
    """Built records and run caches go to a temp dir so tests never touch a user's folders."""
    base = tmp_path_factory.mktemp("tfminv")
    old = {k: os.environ.get(k) for k in (paths.RECORDS_DIR_ENV, paths.CACHE_DIR_ENV)}
    os.environ[paths.RECORDS_DIR_ENV] = str(base / "records")
    os.environ[paths.CACHE_DIR_ENV] = str(base / "cache")
    yield base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session", autouse=True)
def _library_messages_on_stderr():
    """Library messages (logger "tfminv") reach stderr, one line each, as every binary prints
    them (`tfminv.cli.run` installs the same handler)."""
    from tfminv.cli import install_log_handler

    install_log_handler()


@pytest.fixture(scope="session")
def records_dir(_isolated_dirs):
    return _isolated_dirs / "records"
