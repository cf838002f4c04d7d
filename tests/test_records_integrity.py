"""Nothing damaged is trusted: damaged shards, malformed metadata, unwritable or full records
folders, temp folders of killed builds, fsync before rename (fault injection on real MNIST)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tfminv import io_utils
from tfminv.data import build, load_split, records
from tfminv.errors import DataError

N = 40  # images per split: small records built from the real MNIST files


def _build(data_dir, rdir, **kw):
    return build.build("mnist", data_dir=data_dir, records_dir=rdir, limit=N, **kw)


def _folder(rdir):
    return rdir / f"mnist_32_first{N}"


def _shard(rdir, split="train") -> Path:
    d = _folder(rdir)
    return d / records.read_metadata(d)["splits"][split]["shards"][0]


def _truncate(f: Path):
    b = f.read_bytes()
    f.write_bytes(b[: len(b) // 2])


def _flip(f: Path, at: int = 700):
    b = bytearray(f.read_bytes())
    b[at] ^= 0x10
    f.write_bytes(bytes(b))


@pytest.mark.parametrize("damage", [_truncate, _flip], ids=["truncated", "bit-flipped"])
def test_damaged_shard_is_rebuilt_on_reuse(data_dir, tmp_path, caplog, damage):
    rdir = tmp_path / "rec"
    _build(data_dir, rdir)
    good = load_split("mnist", "train", data_dir=data_dir, records_dir=rdir, limit=N)
    damage(_shard(rdir))
    rows = _build(data_dir, rdir)
    assert not any(r["reused"] for r in rows)  # before: "reused": true
    assert "damaged shards (train-00000-of-00001.tfrecord); rebuilding" in caplog.text
    assert records.damaged_shards(_folder(rdir), records.read_metadata(_folder(rdir))) == []
    damage(_shard(rdir))  # load_split checks too (it builds through ensure)
    again = load_split("mnist", "train", data_dir=data_dir, records_dir=rdir, limit=N)
    np.testing.assert_array_equal(again.images, good.images)
    np.testing.assert_array_equal(again.labels, good.labels)


def test_damaged_shard_without_sources_is_named(data_dir, tmp_path):
    rdir = tmp_path / "rec"
    raw = tmp_path / "raw"
    shutil.copytree(data_dir / "mnist", raw / "mnist")
    _build(raw, rdir)
    shutil.rmtree(raw / "mnist")  # nothing to rebuild from: the records are used as they are
    assert all(r["reused"] for r in _build(raw, rdir))
    _flip(_shard(rdir, "test"))
    with pytest.raises(DataError, match=r"mnist_32_first40: damaged records "
                                        r"\(test-00000-of-00001.tfrecord missing, truncated or"):
        _build(raw, rdir)
    with pytest.raises(DataError, match="test-00000-of-00001.tfrecord"):
        records.read_arrays(_folder(rdir), "test")
    with pytest.raises(DataError, match="test-00000-of-00001.tfrecord"):
        records.dataset_from_dir(_folder(rdir), "all")


def test_read_time_crc_failure_is_one_line(data_dir, tmp_path):
    """A shard damaged in a way its checksum misses (here: checksum rewritten) still fails with a
    DataError naming the folder at read time, from TFRecord's per-record CRC."""
    rdir = tmp_path / "rec"
    _build(data_dir, rdir)
    f = _shard(rdir)
    _flip(f)
    meta_file = _folder(rdir) / records.METADATA
    meta = json.loads(meta_file.read_text())
    meta["splits"]["train"]["shard_sha256"] = records.shard_digests(f.parent, [f.name])
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"mnist_32_first40: damaged records .*--force.*corrupted "
                                        r"record"):
        records.read_arrays(_folder(rdir), "train")


@pytest.mark.parametrize("text", ["[1, 2]", '{"settings": null}', "{}", "null", "not json {",
                                  None], ids=["list", "settings-null", "empty", "null",
                                              "invalid", "no-shards"])
@pytest.mark.parametrize("force", [False, True])
def test_malformed_metadata_is_treated_as_absent(data_dir, tmp_path, text, force):
    rdir = tmp_path / "rec"
    _build(data_dir, rdir)
    meta_file = _folder(rdir) / records.METADATA
    if text is None:
        meta = json.loads(meta_file.read_text())
        del meta["splits"]["train"]["shards"]
        text = json.dumps(meta)
    meta_file.write_text(text)
    with pytest.raises(DataError, match="metadata.json: .*rebuild with --force"):
        records.read_metadata(_folder(rdir))
    rows = _build(data_dir, rdir, force=force)  # before: AttributeError / KeyError tracebacks
    assert [(r["split"], r["count"], r["reused"]) for r in rows] == [("train", N, False),
                                                                      ("test", N, False)]


def test_unwritable_or_full_records_folder(data_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=rf"cannot write records to {blocker}/rec: .*writable "
                                        "folder with free space"):
        _build(data_dir, blocker / "rec")
    import tensorflow as tf

    def full(*a, **k):
        raise tf.errors.ResourceExhaustedError(None, None, "x.tfrecord; No space left on device")

    monkeypatch.setattr(records, "write_split", full)
    rdir = tmp_path / "rec"
    with pytest.raises(DataError, match=rf"cannot write records to {rdir}: x.tfrecord; No space "
                                        "left on device; expected a writable"):
        _build(data_dir, rdir)
    assert not list(rdir.glob(".mnist_32_first40.*"))  # nothing half-written left

    def enospc(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.undo()
    monkeypatch.setattr(np, "savez", enospc)
    with pytest.raises(DataError, match=rf"cannot write records to {rdir}: No space left"):
        _build(data_dir, rdir)


KILLED_BUILD = textwrap.dedent("""
    import sys, time
    from tfminv import io_utils
    with io_utils.atomic_dir(sys.argv[1]) as tmp:
        (tmp / "train-00000-of-00001.tfrecord").write_bytes(b"half")
        print(tmp, flush=True)
        time.sleep(120)
""")


def test_stale_temp_folders_of_killed_builds_are_removed(data_dir, tmp_path, capsys):
    rdir = tmp_path / "rec"
    target = _folder(rdir)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(target)],
                            stdout=subprocess.PIPE, text=True, env=env)
    dead = Path(proc.stdout.readline().strip())
    assert dead.is_dir()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert dead.is_dir()  # kill -9: nothing ran to remove it
    with io_utils.atomic_dir(rdir / "other") as live:  # a live writer's folder is kept
        sibling_live = rdir / (".mnist_32_first40.live.tmp")
        sibling_live.mkdir()
        with open(sibling_live / io_utils.OWNER_LOCK, "w") as held:
            import fcntl

            fcntl.flock(held, fcntl.LOCK_EX)
            _build(data_dir, rdir)
            assert sibling_live.is_dir()
        assert live.is_dir()
    assert not dead.exists()
    assert f"removed {dead}" in capsys.readouterr().err
    unlocked = rdir / ".mnist_32_first40.old.tmp"  # no owner lock: removed once an hour old
    unlocked.mkdir()
    _build(data_dir, rdir)
    assert unlocked.is_dir()
    os.utime(unlocked, (time.time() - 2 * 3600,) * 2)
    _build(data_dir, rdir)
    assert not unlocked.exists()


def test_files_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(
        f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))),
                                                     real_replace(a, b)))
    io_utils.write_json(tmp_path / "run.json", {"a": 1})
    names = [(e, Path(p).name if e == "fsync" else Path(p).name) for e, p in events]
    assert names[0][0] == "fsync" and names[0][1].startswith(".run.json.")  # the data
    assert names[1] == ("replace", "run.json")
    assert names[2] == ("fsync", tmp_path.name)                            # the folder entry
    events.clear()
    with io_utils.atomic_dir(tmp_path / "recs") as d:
        (d / "a.tfrecord").write_bytes(b"x")
    kinds = [e for e, _ in events]
    assert kinds.index("replace") > max(i for i, k in enumerate(kinds[:kinds.index("replace")])
                                        if k == "fsync")
    assert any(p.endswith("a.tfrecord") for e, p in events if e == "fsync")
    assert events[-1] == ("fsync", str(tmp_path)) and (tmp_path / "recs" / "a.tfrecord").exists()
    assert not (tmp_path / "recs" / io_utils.OWNER_LOCK).exists()
