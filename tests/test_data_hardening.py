"""Hostile data files give one-line DataError/ConfigError naming the file and key, before any
memory is spent: allocation JSON of wrong types, npz with object arrays / damaged members /
forged headers / bombs, images whose header declares huge sizes; caps before loading; victim
classes that do not exist; float labels; damaged records without raw files; a target with the
wrong number of classes."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
import zlib

import numpy as np
import pytest

from tfminv.data import allocations, limits, specs
from tfminv.data.sources import Skipper, decode_image
from tfminv.errors import ConfigError, DataError


def _one_line(e) -> str:
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# --- allocation JSON of wrong types ----------------------------------------------------------

@pytest.mark.parametrize("where, key, value", [
    ("", "image_size", "abc"), ("", "num_classes", None), ("", "label_names", 5),
    ("victims", "classes", "abc"), ("victims", "fraction", 5), ("target_train", "seed", "x"),
    ("aux.generic", "limit", 2.5), ("target_test", "relabel", "yes"),
    ("victims", "fraction", [0.5, 0.2]), ("", "label_names", ["a", "b"])])
def test_allocation_json_wrong_types_are_one_line(tmp_path, where, key, value):
    d = allocations.MNIST.to_dict()
    node = d
    for part in filter(None, where.split(".")):
        node = node[part]
    node[key] = value
    p = tmp_path / "alloc.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ConfigError) as e:
        allocations.get(str(p))  # before: ValueError / TypeError tracebacks, or later failures
    text = _one_line(e)
    assert str(p) in text and key in text and "expected" in text


def test_allocation_json_victim_classes_that_do_not_exist(tmp_path):
    d = allocations.MNIST.to_dict()
    d["victims"]["classes"] = [3, 7, 9]  # the target learns 0-4
    p = tmp_path / "alloc.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"victims.classes \[7, 9\] do not exist"):
        allocations.get(str(p))
    # without a class filter on the target: labels beyond num_classes
    d = allocations.FACESCRUB.to_dict()
    d["victims"]["classes"] = [12]
    p.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"victims.classes \[12\] do not exist .*0\.\.11"):
        allocations.get(str(p))


def test_split_classes_missing_from_the_data_are_named(data_dir, records_dir):
    ref = allocations.SplitRef("att_faces", "all", 64, classes=(0, 1, 77))
    with pytest.raises(DataError, match=r"classes \[77\] do not exist in att_faces/all "
                                        r"\(labels present: 0\.\.39\)"):
        allocations.materialize(ref, data_dir=data_dir, records_dir=records_dir)


# --- npz -------------------------------------------------------------------------------------

def _npy_bytes(arr=None, *, header_shape=None, dtype="|u1", payload=b""):
    import io

    buf = io.BytesIO()
    if arr is not None:
        np.lib.format.write_array(buf, arr, allow_pickle=True)
        return buf.getvalue()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": header_shape})
    return buf.getvalue() + payload


def _zip(path, members, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress) as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return path


def _crc_damaged(path):
    np.savez(path, images=np.arange(64 * 64 * 4, dtype=np.uint8).reshape(4, 64, 64),
             labels=np.arange(4))
    b = bytearray(path.read_bytes())
    i = b.index(b"images.npy") + 200  # inside the stored member's data
    b[i] ^= 0xFF
    path.write_bytes(bytes(b))
    return path


@pytest.mark.parametrize("kind", ["object", "crc", "forged_header", "not_zip"])
def test_hostile_npz_is_one_line(tmp_path, kind):
    p = tmp_path / "x.npz"
    if kind == "object":
        _zip(p, {"images": _npy_bytes(np.array([{"a": 1}, None], dtype=object))})
        want = "object"
    elif kind == "crc":
        _crc_damaged(p)
        want = "damaged npz member"
    elif kind == "forged_header":  # 100M images declared in a few bytes (before: 95 GiB asked)
        _zip(p, {"images": _npy_bytes(header_shape=(100_000_000, 32, 32), payload=b"\0" * 64)})
        want = "header declares shape"
    else:
        p.write_bytes(b"PK\x03\x04 not really a zip")
        want = "cannot read npz"
    with pytest.raises(DataError) as e:
        specs.load(f"npz:{p}", what="--aux")
    text = _one_line(e)
    assert want in text and str(p) in text and "--aux" in text


def test_npz_bomb_refused_from_its_header(tmp_path, monkeypatch):
    p = tmp_path / "bomb.npz"
    np.savez_compressed(p, images=np.zeros((64, 256, 256), np.uint8))  # 4 MiB -> ~4 kB
    assert p.stat().st_size < 100_000
    monkeypatch.setenv(limits.BYTES_ENV, str(1 << 20))
    with pytest.raises(DataError) as e:
        specs.load(f"npz:{p}")
    text = _one_line(e)
    assert "4.0 MiB to decode, over the limit of 1.0 MiB" in text and limits.BYTES_ENV in text
    # the cap applies before loading: the first rows fit under the limit
    assert specs.load(f"npz:{p}", limit=8).images.shape == (8, 256, 256, 1)
    monkeypatch.setenv(limits.BYTES_ENV, str(8 << 20))  # raised: the whole file is read
    assert len(specs.load(f"npz:{p}")) == 64


def test_raw_npz_readers_use_the_checked_reader(data_dir, tmp_path):
    """The project's own raw npz readers (here FaceScrub's) refuse the same files."""
    from tfminv.data import build

    folder = tmp_path / "raw" / "facescrub_subset12"
    folder.mkdir(parents=True)
    _zip(folder / "f.npz", {"images_rgb": _npy_bytes(header_shape=(100_000_000, 64, 64, 3)),
                            "labels": _npy_bytes(np.zeros(3, np.int64))})
    with pytest.raises(DataError, match=r"f.npz:images_rgb: header declares shape"):
        build.build("facescrub", data_dir=tmp_path / "raw", records_dir=tmp_path / "rec")
    assert not (tmp_path / "rec" / "facescrub_64").exists()


def test_float_facescrub_labels_are_refused(data_dir, tmp_path):
    from tfminv.data import build

    with np.load(data_dir / "facescrub_subset12" /
                 "facescrub12_official_bbox_crops_64.npz") as z:
        images, labels, names = z["images_rgb"][:40], z["labels"][:40], z["names"]
    folder = tmp_path / "raw" / "facescrub_subset12"
    folder.mkdir(parents=True)
    np.savez(folder / "f.npz", images_rgb=images, labels=labels + 0.5, names=names)
    with pytest.raises(DataError, match=r"f.npz:labels: labels of type float64 \(e.g. [0-9]+.5\); "
                                        r"expected whole-number"):
        build.build("facescrub", data_dir=tmp_path / "raw", records_dir=tmp_path / "rec")
    # whole-number floats are the same labels
    np.savez(folder / "f.npz", images_rgb=images, labels=labels.astype(np.float32), names=names)
    rows = build.build("facescrub", data_dir=tmp_path / "raw", records_dir=tmp_path / "rec")
    assert rows[0]["count"] == 40


# --- images: headers before decoding ---------------------------------------------------------

def _png_header(w, h, colour=0) -> bytes:
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("w, h", [(100_000, 100_000), (30_000, 30_000)])
def test_huge_png_header_refused_before_decoding(tmp_path, w, h):
    d = tmp_path / "imgs"
    d.mkdir()
    (d / "a.png").write_bytes(_png_header(w, h))
    with pytest.raises(DataError) as e:  # before: cv2.error (100000^2) or 1.76 GB (30000^2)
        specs.load(f"folder:{d}", what="--victims")
    text = _one_line(e)
    assert f"header declares {w}x{h} pixels" in text and limits.PIXELS_ENV in text
    assert str(d / "a.png") in text
    with pytest.raises(DataError, match="header declares"):  # the raw readers' decoder too
        decode_image(_png_header(w, h), "x.png")


def test_image_header_sizes_match_opencv(data_dir):
    import cv2

    from tfminv.data.sources import read_tar_members

    name, jpg = next(iter(read_tar_members(
        data_dir / "extra_faces_aux" / "fer2013_grey64_q90.tar.gz")))
    img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert limits.image_header_size(jpg) == (img.shape[1], img.shape[0]) == (64, 64)
    for ext in (".png", ".bmp", ".pgm", ".webp"):
        ok, buf = cv2.imencode(ext, np.zeros((37, 53), np.uint8))
        assert limits.image_header_size(buf.tobytes()) == (53, 37), ext


def test_folder_cap_applies_before_loading(tmp_path):
    import cv2

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"{i}.png"), np.full((8, 8), i * 50, np.uint8))
    (d / "3.png").write_bytes(b"not an image")  # read only without the cap
    assert len(specs.load(f"folder:{d}", limit=3)) == 3
    with pytest.raises(DataError, match="3.png: cannot"):
        specs.load(f"folder:{d}")
    with pytest.raises(ConfigError, match="limit=-5"):
        specs.load(f"folder:{d}", limit=-5)


def test_skipped_image_named_once():
    skip = Skipper(True)
    try:
        decode_image(b"garbage", "/data/x/broken.jpg")
    except DataError as e:
        skip(e, "/data/x/broken.jpg")
    (where, reason), = skip.skipped
    assert f"{where}: {reason}".count("broken.jpg") == 1


# --- records without raw files; a target of the wrong width -----------------------------------

def test_damaged_records_without_raw_files_say_what_is_missing(data_dir, tmp_path):
    from tfminv.data import build, records

    raw, rdir = tmp_path / "raw", tmp_path / "rec"
    shutil.copytree(data_dir / "att_faces", raw / "att_faces")
    build.build("att_faces", data_dir=raw, records_dir=rdir, limit=20)
    shutil.rmtree(raw / "att_faces")
    folder = rdir / "att_faces_64_first20"
    shard = folder / records.read_metadata(folder)["splits"]["all"]["shards"][0]
    b = bytearray(shard.read_bytes())
    b[500] ^= 0x10
    shard.write_bytes(bytes(b))
    with pytest.raises(DataError) as e:
        build.build("att_faces", data_dir=raw, records_dir=rdir, limit=20)
    text = _one_line(e)
    assert "no raw files to rebuild them from" in text and "att_faces" in text
    assert "--force" not in text and "rebuilding" not in text


def test_target_with_other_class_count_is_refused():
    allocations.check_num_outputs(allocations.MNIST, 5)
    with pytest.raises(ConfigError, match=r"answers 10 scores per image but allocation 'mnist' "
                                          r"has 5 classes"):
        allocations.check_num_outputs(allocations.MNIST, 10, "keras:t.keras")
