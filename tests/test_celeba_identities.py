"""The paper-scale face-identity set: reader (grey npz, RGB JPEG tar), build checks and errors,
the `celeba_ids` allocation (cut-off, per-identity split, auxiliary sets), on a real slice."""

from __future__ import annotations

import gzip
import io
import tarfile

import numpy as np
import pytest

from tfminv.data import allocations, build, records
from tfminv.data.allocations import SplitRef, select
from tfminv.errors import ConfigError, DataError

NPZ = "celeba_testsplit_faces64_grey.npz"
TAR = "celeba_testsplit_faces64_rgb_q95.tar.gz"
KEEP_BIG, KEEP_SMALL = 6, 4  # identities with >= 20 images / with fewer


@pytest.fixture(scope="session")
def slice_rows(data_dir):
    """Rows of the real set: all images of 6 identities with >= 20 images and of 4 with < 20."""
    with np.load(data_dir / "celeba_identities" / NPZ) as z:
        labels, per_id = z["labels"], z["images_per_identity"]
        big = np.unique(labels[per_id >= 20])[:KEEP_BIG]
        small = np.unique(labels[(per_id < 20) & (per_id >= 3)])[:KEEP_SMALL]
        rows = np.flatnonzero(np.isin(labels, np.concatenate([big, small])))
        return {k: z[k][rows] for k in ("images_grey", "labels", "celeba_identity", "filenames",
                                        "images_per_identity")}


def _write_npz(folder, rows, **override):
    ids = np.unique(rows["celeba_identity"]).astype(np.int32)
    labels = np.searchsorted(ids, rows["celeba_identity"]).astype(np.int64)
    arrays = {"images_grey": rows["images_grey"], "labels": labels, "identity_ids": ids,
              "celeba_identity": rows["celeba_identity"], "filenames": rows["filenames"]}
    arrays.update(override)
    np.savez(folder / NPZ, **arrays)


@pytest.fixture(scope="session")
def slice_dir(data_dir, slice_rows, tmp_path_factory):
    """<tmp>/celeba_identities with a real npz slice and the same crops as RGB JPEGs in a tar.gz,
    plus the official identity file under <tmp>/celeba (where the tar reader looks)."""
    root = tmp_path_factory.mktemp("celeba_ids_raw")
    folder = root / "celeba_identities"
    folder.mkdir()
    _write_npz(folder, slice_rows)
    want = {f"faces64_rgb_q95/{n}" for n in slice_rows["filenames"]}
    with tarfile.open(data_dir / "celeba_identities" / TAR) as src, \
            tarfile.open(root / TAR, "w:gz") as dst:
        for m in src:
            if m.name in want:
                dst.addfile(m, src.extractfile(m))
    (root / "celeba").mkdir()
    ident = gzip.open(data_dir / "celeba" / "identity_CelebA.txt.gz").read().decode().splitlines()
    names = set(slice_rows["filenames"].tolist())
    lines = [l for l in ident if l.split()[0] in names]
    (root / "celeba" / "identity_CelebA.txt").write_text("\n".join(lines) + "\n")
    return root


def _tar_only(slice_dir, tmp_path):
    root = tmp_path / "raw"
    (root / "celeba_identities").mkdir(parents=True)
    (root / "celeba_identities" / TAR).write_bytes((slice_dir / TAR).read_bytes())
    (root / "celeba").mkdir()
    (root / "celeba" / "identity_CelebA.txt").write_text(
        (slice_dir / "celeba" / "identity_CelebA.txt").read_text())
    return root


def test_npz_build_matches_source_rows(slice_dir, slice_rows, tmp_path):
    rows = build.build("celeba_identities", data_dir=slice_dir, records_dir=tmp_path / "r")
    assert [(r["split"], r["count"], r["height"]) for r in rows] == [
        ("all", len(slice_rows["labels"]), 64)]
    path = build.records_path("celeba_identities", 64, tmp_path / "r")
    images, labels, _, meta = records.read_arrays(path, "all")
    assert np.array_equal(images, slice_rows["images_grey"])  # lossless, file-name order
    ids = sorted(set(slice_rows["celeba_identity"].tolist()))
    assert meta["label_names"] == [f"celeba_{i}" for i in ids]
    assert [ids[v] for v in labels] == slice_rows["celeba_identity"].tolist()
    assert build.build("celeba_identities", data_dir=slice_dir,
                       records_dir=tmp_path / "r")[0]["reused"]


def test_tar_of_rgb_jpegs_gives_the_same_faces(slice_dir, slice_rows, tmp_path):
    root = _tar_only(slice_dir, tmp_path)
    build.build("celeba_identities", data_dir=root, records_dir=tmp_path / "r")
    images, labels, _, meta = records.read_arrays(
        build.records_path("celeba_identities", 64, tmp_path / "r"), "all")
    assert meta["preprocessing"]["format"] == "tar"
    ids = sorted(set(slice_rows["celeba_identity"].tolist()))
    assert [ids[v] for v in labels] == slice_rows["celeba_identity"].tolist()
    # grey of the JPEG q95 crops = the lossless grey crops up to the JPEG loss
    diff = np.abs(images.astype(int) - slice_rows["images_grey"].astype(int))
    assert diff.mean() < 2.5 and np.percentile(diff, 99) < 20


def _no_records(rdir):
    path = build.records_path("celeba_identities", 64, rdir)
    assert not (path / records.METADATA).exists()


def test_missing_and_corrupt_sources(slice_dir, tmp_path):
    with pytest.raises(DataError, match="celeba_identities"):
        build.build("celeba_identities", data_dir=tmp_path / "empty", records_dir=tmp_path / "r")
    # truncated npz: named, nothing complete left behind
    bad = tmp_path / "bad" / "celeba_identities"
    bad.mkdir(parents=True)
    data = (slice_dir / "celeba_identities" / NPZ).read_bytes()
    (bad / NPZ).write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{NPZ}: cannot read npz"):
        build.build("celeba_identities", data_dir=tmp_path / "bad", records_dir=tmp_path / "r")
    _no_records(tmp_path / "r")
    # an npz with other keys
    np.savez(bad / NPZ, images=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(DataError, match="expected images_grey, labels, identity_ids"):
        build.build("celeba_identities", data_dir=tmp_path / "bad", records_dir=tmp_path / "r")
    # labels out of range of identity_ids
    (bad / NPZ).unlink()
    np.savez(bad / NPZ, images_grey=np.zeros((2, 64, 64), np.uint8), labels=np.array([0, 3]),
             identity_ids=np.array([5, 9]))
    with pytest.raises(DataError, match=r"label values 0\.\.3 but 2 identity_ids"):
        build.build("celeba_identities", data_dir=tmp_path / "bad", records_dir=tmp_path / "r")
    _no_records(tmp_path / "r")


def test_truncated_tar_and_missing_identity_file(slice_dir, tmp_path):
    root = _tar_only(slice_dir, tmp_path)
    tar = root / "celeba_identities" / TAR
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated archive"):
        build.build("celeba_identities", data_dir=root, records_dir=tmp_path / "r")
    _no_records(tmp_path / "r")
    tar.write_bytes(data)
    (root / "celeba" / "identity_CelebA.txt").unlink()
    with pytest.raises(DataError, match="no identity_CelebA.txt"):
        build.build("celeba_identities", data_dir=root, records_dir=tmp_path / "r")


def test_stratified_count_filtered_split():
    labels = np.repeat(np.arange(5), [20, 3, 25, 2, 20])
    ref = dict(dataset="x", split="all", min_per_class=20, stratify=True, relabel=True)
    tr = select(len(labels), labels, SplitRef(**ref, fraction=(0.0, 0.8)))
    te = select(len(labels), labels, SplitRef(**ref, fraction=(0.8, 1.0)))
    assert not set(tr) & set(te)
    assert sorted(set(tr) | set(te)) == list(np.flatnonzero(np.isin(labels, [0, 2, 4])))
    assert np.bincount(labels[te], minlength=5).tolist() == [4, 0, 5, 0, 4]
    # seeded: the same rows again; the union is shuffled so `limit` spans the classes
    assert np.array_equal(te, select(len(labels), labels, SplitRef(**ref, fraction=(0.8, 1))))
    lim = select(len(labels), labels, SplitRef(**ref, fraction=(0.0, 0.8), limit=6))
    assert len(set(labels[lim])) > 1
    below = select(len(labels), labels, SplitRef("x", "all", max_per_class=19))
    assert sorted(labels[below].tolist()) == [1, 1, 1, 3, 3]
    # two images: an interior cut keeps one on each side
    two = np.array([0, 0, 1, 1])
    r = dict(dataset="x", split="all", min_per_class=2, stratify=True)
    assert len(select(4, two, SplitRef(**r, fraction=(0.8, 1.0)))) == 2
    with pytest.raises(ConfigError, match="relabel=True needs"):
        SplitRef("x", "all", relabel=True)


def test_celeba_ids_allocation(slice_dir, slice_rows, tmp_path, monkeypatch):
    monkeypatch.setenv("TFMINV_RECORDS_DIR", str(tmp_path / "r"))
    a = allocations.celeba_ids(20, data_dir=slice_dir)
    assert a.name == "celeba_ids" and a.num_classes == KEEP_BIG
    assert sorted(a.aux) == ["distinct", "generic", "generic_reframed", "public", "same"]
    assert (a.aux["generic"].dataset, a.aux["distinct"].dataset) == ("celeba", "cifar10")
    assert a.aux["public"].parts == (a.aux["generic"], a.aux["same"]) + tuple(
        allocations.SplitRef(n, "all", 64) for n in ("celeba_wild", "utkface", "fer2013"))
    assert a.aux["public"].disjoint_from == a.target_train
    kw = dict(data_dir=slice_dir)
    train = allocations.materialize(a.target_train, **kw)
    held = allocations.materialize(a.victims, **kw)
    same = allocations.materialize(a.aux["same"], **kw)
    assert len(train) + len(held) == int((slice_rows["images_per_identity"] >= 20).sum())
    assert sorted(set(train.labels)) == sorted(set(held.labels)) == list(range(KEEP_BIG))
    assert train.label_names == held.label_names == a.label_names
    per = np.bincount(held.labels) / (np.bincount(train.labels) + np.bincount(held.labels))
    assert np.all((per > 0.1) & (per < 0.3))  # ~20% of each identity held out
    # no image in both; the same-distribution set holds only the people below the cut-off
    tr_set = {x.tobytes() for x in train.images}
    assert not any(x.tobytes() in tr_set for x in held.images)
    assert len(same) == int((slice_rows["images_per_identity"] < 20).sum())
    assert a.to_dict()["target_train"]["min_per_class"] == 20
    a5 = allocations.celeba_ids(3, data_dir=slice_dir)
    assert a5.name == "celeba_ids_min3" and a5.num_classes == KEEP_BIG + KEEP_SMALL
    assert "same" not in a5.aux  # nobody below the cut-off
    assert [p.dataset for p in a5.aux["public"].parts] == ["celeba", "celeba_wild", "utkface",
                                                           "fer2013"]
    with pytest.raises(ConfigError, match="min_images=31 leaves 0 identities"):
        allocations.celeba_ids(31, data_dir=slice_dir)
    with pytest.raises(ConfigError, match="min_images=1; expected an integer >= 2"):
        allocations.celeba_ids(1, data_dir=slice_dir)
    monkeypatch.setenv("TFMINV_DATA_DIR", str(slice_dir))
    assert allocations.get("celeba_ids_min3").num_classes == KEEP_BIG + KEEP_SMALL
    with pytest.raises(ConfigError, match="celeba_ids_min<N>"):
        allocations.get("celeba_ids_minx")
    with pytest.raises(ConfigError, match="celeba_ids"):
        allocations.get("nope")


def test_cut_off_leaving_one_identity(slice_rows, tmp_path):
    folder = tmp_path / "celeba_identities"
    folder.mkdir()
    one = slice_rows["celeba_identity"] == slice_rows["celeba_identity"][
        np.argmax(slice_rows["images_per_identity"])]
    _write_npz(folder, {k: v[one] for k, v in slice_rows.items()})
    with pytest.raises(ConfigError, match="leaves 1 identities.*at least 2"):
        allocations.celeba_ids(2, data_dir=tmp_path)


def test_celeba_reframed_uses_the_face_box(data_dir, tmp_path):
    """CelebA re-framed by the Haar face box: a box is found on real aligned photos, it is
    centred, and the crop differs from the fixed paper crop only by framing."""
    import shutil

    root = tmp_path / "raw"
    (root / "celeba").mkdir(parents=True)
    for f in ("celeba_align_178x218_000001-000032.tar", "list_eval_partition.txt.gz",
              "identity_CelebA.txt.gz"):
        shutil.copy(data_dir / "celeba" / f, root / "celeba" / f)
    rows = build.build("celeba_reframed", data_dir=root, records_dir=tmp_path / "r")
    assert {r["split"]: r["count"] for r in rows}["train"] == 32
    path = build.records_path("celeba_reframed", 64, tmp_path / "r")
    framed, labels, _, meta = records.read_arrays(path, "train")
    prep = meta["preprocessing"]
    assert prep["face_detected"] + prep["fallback_fixed_crop"] == 32
    assert prep["face_detected"] >= 28  # aligned frontal photos: the detector finds nearly all
    build.build("celeba", data_dir=root, records_dir=tmp_path / "r")
    fixed, labels2, _, _ = records.read_arrays(build.records_path("celeba", 64, tmp_path / "r"),
                                               "train")
    assert np.array_equal(labels, labels2)
    diff = np.abs(framed.astype(int) - fixed.astype(int)).mean()
    assert 1 < diff < 60  # another framing of the same faces, not another image
