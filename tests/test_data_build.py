"""Build command: reuse, --force, atomic output, CLI lines, and clear errors on bad input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tfminv.data import build, load_split, records
from tfminv.errors import ConfigError, DataError

MNIST_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _idx(magic: int, arr: np.ndarray) -> bytes:
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


@pytest.fixture()
def small_mnist(data_dir, tmp_path):
    """A tiny MNIST folder (real digits: 40 train, 20 test) as gzipped IDX files."""
    root = tmp_path / "raw"
    (root / "mnist").mkdir(parents=True)
    for split, (imgs, labs) in MNIST_NAMES.items():
        n = 40 if split == "train" else 20
        x = np.frombuffer(gzip.open(data_dir / "mnist" / (imgs + ".gz")).read(), np.uint8,
                          offset=16)[: n * 784].reshape(n, 28, 28)
        y = np.frombuffer(gzip.open(data_dir / "mnist" / (labs + ".gz")).read(), np.uint8,
                          offset=8)[:n]
        (root / "mnist" / (imgs + ".gz")).write_bytes(gzip.compress(_idx(2051, x)))
        (root / "mnist" / (labs + ".gz")).write_bytes(gzip.compress(_idx(2049, y)))
    return root


def _no_complete_records(rdir: Path, name: str):
    d = rdir / name
    assert not (d / records.METADATA).exists()
    # nothing half-built left beside it either
    assert not [p for p in rdir.glob(f".{name}.*")] if rdir.exists() else True


def test_build_reuse_force_and_metadata(small_mnist, tmp_path):
    rdir = tmp_path / "rec"
    rows = build.build("mnist", data_dir=small_mnist, records_dir=rdir)
    assert [(r["split"], r["count"], r["height"], r["width"], r["reused"]) for r in rows] == \
        [("train", 40, 32, 32, False), ("test", 20, 32, 32, False)]
    meta = json.loads((rdir / "mnist_32" / "metadata.json").read_text())
    assert meta["label_names"] == list("0123456789")
    assert {s["path"] for s in meta["sources"]} == {f"mnist/{n}.gz" for p in MNIST_NAMES.values()
                                                    for n in p}
    assert all(len(s["sha256"]) == 64 for s in meta["sources"])
    again = build.build("mnist", data_dir=small_mnist, records_dir=rdir)
    assert all(r["reused"] for r in again)
    forced = build.build("mnist", data_dir=small_mnist, records_dir=rdir, force=True)
    assert not any(r["reused"] for r in forced)
    # a changed source file triggers a rebuild
    f = small_mnist / "mnist" / "t10k-labels-idx1-ubyte.gz"
    y = np.frombuffer(gzip.open(f).read(), np.uint8, offset=8).copy()
    y[0] = (y[0] + 1) % 10
    f.write_bytes(gzip.compress(_idx(2049, y)))
    changed = build.build("mnist", data_dir=small_mnist, records_dir=rdir)
    assert not any(r["reused"] for r in changed)
    assert load_split("mnist", "test", data_dir=small_mnist, records_dir=rdir).labels[0] == y[0]


def test_cli_prints_one_json_line_per_split(small_mnist, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "tfminv.data.build", "--dataset=mnist",
           f"--data_dir={small_mnist}", f"--records_dir={tmp_path / 'rec'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(l) for l in out.stdout.splitlines()]
    assert [(l["dataset"], l["split"], l["count"]) for l in lines] == [("mnist", "train", 40),
                                                                      ("mnist", "test", 20)]
    out2 = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert all(json.loads(l)["reused"] for l in out2.stdout.splitlines())
    bad = subprocess.run([sys.executable, "-m", "tfminv.data.build", "--dataset=nope"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "unknown dataset 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_unknown_dataset_and_bad_args(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'svhn'"):
        build.build("svhn", data_dir=tmp_path, records_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_split("svhn", "train", data_dir=tmp_path, records_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match="image_size"):
        build.build("mnist", image_size=3, data_dir=tmp_path, records_dir=tmp_path / "r")


def test_missing_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(DataError) as e:
        build.build("mnist", data_dir=tmp_path, records_dir=tmp_path / "r")
    msg = str(e.value)
    assert str(tmp_path / "mnist") in msg and "train-images-idx3-ubyte.gz" in msg
    _no_complete_records(tmp_path / "r", "mnist_32")
    for name in ("cifar10", "celeba", "facescrub", "att_faces"):
        with pytest.raises(DataError, match=name.split("_")[0]):
            build.build(name, data_dir=tmp_path, records_dir=tmp_path / "r")


def test_missing_single_file(small_mnist, tmp_path):
    (small_mnist / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        build.build("mnist", data_dir=small_mnist, records_dir=tmp_path / "r")
    _no_complete_records(tmp_path / "r", "mnist_32")


def test_wrong_idx_magic(small_mnist, tmp_path):
    f = small_mnist / "mnist" / "train-images-idx3-ubyte.gz"
    data = bytearray(gzip.open(f).read())
    data[:4] = (2049).to_bytes(4, "big")
    f.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: IDX magic number 2049, "
                                        r"expected 2051"):
        build.build("mnist", data_dir=small_mnist, records_dir=tmp_path / "r")
    _no_complete_records(tmp_path / "r", "mnist_32")


def test_wrong_idx_size_uncompressed(small_mnist, tmp_path):
    f = small_mnist / "mnist" / "t10k-images-idx3-ubyte.gz"
    raw = gzip.open(f).read()
    f.unlink()
    (small_mnist / "mnist" / "t10k-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: \d+ bytes but the IDX header"):
        build.build("mnist", data_dir=small_mnist, records_dir=tmp_path / "r")
    _no_complete_records(tmp_path / "r", "mnist_32")


def test_truncated_gzip(small_mnist, tmp_path):
    f = small_mnist / "mnist" / "train-labels-idx1-ubyte.gz"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: truncated or corrupt gzip"):
        build.build("mnist", data_dir=small_mnist, records_dir=tmp_path / "r")
    _no_complete_records(tmp_path / "r", "mnist_32")


def test_label_file_not_matching_images(small_mnist, tmp_path):
    f = small_mnist / "mnist" / "t10k-labels-idx1-ubyte.gz"
    y = np.frombuffer(gzip.open(f).read(), np.uint8, offset=8)
    f.write_bytes(gzip.compress(_idx(2049, y[:-3])))
    with pytest.raises(DataError, match="17 labels but .*t10k-images-idx3-ubyte.gz has 20 images"):
        build.build("mnist", data_dir=small_mnist, records_dir=tmp_path / "r")
    _no_complete_records(tmp_path / "r", "mnist_32")


def test_failed_rebuild_keeps_previous_records(small_mnist, tmp_path):
    rdir = tmp_path / "r"
    build.build("mnist", data_dir=small_mnist, records_dir=rdir)
    before = (rdir / "mnist_32" / "metadata.json").read_text()
    f = small_mnist / "mnist" / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:30])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        build.build("mnist", data_dir=small_mnist, records_dir=rdir, force=True)
    assert (rdir / "mnist_32" / "metadata.json").read_text() == before
    assert not list(rdir.glob(".mnist_32.*"))


def _face_tree(data_dir, root: Path, n: int = 6) -> Path:
    with np.load(next((data_dir / "facescrub_subset12").glob("*.npz"))) as z:
        rgb = z["images_rgb"][:n]
    d = root / "facescrub" / "Alec Baldwin"
    d.mkdir(parents=True)
    for i, im in enumerate(rgb):
        cv2.imwrite(str(d / f"{i}.jpg"), im[..., ::-1])
    return d


def test_corrupt_image_fails_or_is_skipped_and_counted(data_dir, tmp_path):
    d = _face_tree(data_dir, tmp_path / "raw")
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"bad.jpg: cannot decode image.*skip_corrupt"):
        build.build("facescrub", data_dir=tmp_path / "raw", records_dir=tmp_path / "r")
    _no_complete_records(tmp_path / "r", "facescrub_64")
    rows = build.build("facescrub", data_dir=tmp_path / "raw", records_dir=tmp_path / "r",
                       skip_corrupt=True)
    assert rows[0]["count"] == 6
    meta = records.read_metadata(tmp_path / "r" / "facescrub_64")
    assert meta["skipped"]["count"] == 1 and "bad.jpg" in meta["skipped"]["examples"][0]


def test_empty_result(tmp_path):
    (tmp_path / "att_faces").mkdir()
    np.savez(tmp_path / "att_faces" / "att.npz", images=np.zeros((0, 112, 92), np.uint8),
             labels=np.zeros(0, np.int64))
    with pytest.raises(DataError, match="no images found for att_faces"):
        build.build("att_faces", data_dir=tmp_path, records_dir=tmp_path / "r")
    _no_complete_records(tmp_path / "r", "att_faces_64")
    (tmp_path / "facescrub" / "someone").mkdir(parents=True)
    with pytest.raises(DataError, match="no FaceScrub npz and no <identity>/<image> folders"):
        build.build("facescrub", data_dir=tmp_path, records_dir=tmp_path / "r")


def test_celeba_partition_must_cover_images(data_dir, tmp_path):
    src = tmp_path / "celeba"
    src.mkdir()
    (src / "img_align_celeba").symlink_to(tmp_path / "imgs", target_is_directory=True)
    (tmp_path / "imgs").mkdir()
    import tarfile

    with tarfile.open(data_dir / "celeba" / "celeba_align_178x218_000001-000032.tar") as tf:
        for m in tf.getmembers()[:6]:
            if m.isfile():
                (tmp_path / "imgs" / Path(m.name).name).write_bytes(tf.extractfile(m).read())
    names = sorted(p.name for p in (tmp_path / "imgs").iterdir())
    (src / "list_eval_partition.txt").write_text("".join(f"{n} 0\n" for n in names[:-1]))
    with pytest.raises(DataError, match=f"list_eval_partition.txt: no entry for image {names[-1]}"):
        build.build("celeba", data_dir=tmp_path, records_dir=tmp_path / "r")
    _no_complete_records(tmp_path / "r", "celeba_64")
    (src / "list_eval_partition.txt").write_text(
        "".join(f"{n} {i % 3}\n" for i, n in enumerate(names)))
    rows = {r["split"]: r["count"] for r in build.build("celeba", data_dir=tmp_path,
                                                        records_dir=tmp_path / "r")}
    assert sum(rows.values()) == len(names) and rows["valid"] >= 1 and rows["test"] >= 1
    s = load_split("celeba", "valid", data_dir=tmp_path, records_dir=tmp_path / "r")
    assert s.labels.tolist() == [-1] * rows["valid"] and s.attributes is None
