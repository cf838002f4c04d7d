"""The extra_faces_aux readers (celeba_wild, utkface, fer2013; the user's UTKFace folder and
FER2013 csv) and pooled auxiliary sets (unions of sets: dedup, per-source counts, identity-
disjoint from the target, caps, streaming, bad input), on small slices of the real data."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

from tfminv.data import allocations, build, pool, records
from tfminv.data.allocations import SplitRef
from tfminv.errors import ConfigError, DataError

N_EXTRA = 30  # members per extra_faces_aux set in the slice
N_CELEBA = 120
META = "extra_faces_meta.npz"


def _sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _copy_members(src, dst, want):
    with tarfile.open(src) as s, tarfile.open(dst, "w:gz") as d:
        for m in s:
            if m.name in want:
                d.addfile(m, s.extractfile(m))


@pytest.fixture(scope="module")
def root(data_dir, tmp_path_factory):
    """A data dir with slices of real data: celeba #1-#120, celeba_identities (6 people with
    >= 20 images, 4 with fewer), and the first 30 members of each extra_faces_aux set."""
    root = tmp_path_factory.mktemp("pool_raw")
    # extra_faces_aux
    src = data_dir / "extra_faces_aux"
    ex = root / "extra_faces_aux"
    ex.mkdir()
    with np.load(src / META) as z:
        meta = {k: z[k] for k in z.files}
    rows = np.concatenate([np.flatnonzero(meta["dataset"] == s)[:N_EXTRA]
                           for s in ("celeba_wild", "utkface", "fer2013")])
    n_total = len(meta["member"])
    sub = {k: (v[rows] if len(v) == n_total else v) for k, v in meta.items()}
    np.savez(ex / META, **sub)
    for i, tar in enumerate(meta["tar_names"]):
        _copy_members(src / str(tar), ex / str(tar),
                      set(sub["member"][sub["tar_file"] == i].tolist()))
    (ex / "SHA256SUMS").write_text("".join(f"{_sha(f)}  {f.name}\n" for f in sorted(ex.iterdir())))
    # celeba: the first images, their identities and partitions (+ those of celeba_wild)
    cel = root / "celeba"
    cel.mkdir()
    with tarfile.open(data_dir / "celeba" / "celeba_align_89x109_000001-010000.tar.gz") as s, \
            tarfile.open(cel / "celeba_89x109.tar.gz", "w:gz") as d:
        n = 0
        for m in s:
            if m.isfile() and m.name.endswith(".jpg"):
                d.addfile(m, s.extractfile(m))
                n += 1
                if n >= N_CELEBA:
                    break
    # celeba_identities slice
    with np.load(data_dir / "celeba_identities" / "celeba_testsplit_faces64_grey.npz") as z:
        labels, per_id = z["labels"], z["images_per_identity"]
        big = np.unique(labels[per_id >= 20])[:6]
        small = np.unique(labels[(per_id < 20) & (per_id >= 3)])[:4]
        keep = np.flatnonzero(np.isin(labels, np.concatenate([big, small])))
        ci = {k: z[k][keep] for k in ("images_grey", "celeba_identity", "filenames")}
    ids = np.unique(ci["celeba_identity"])
    (root / "celeba_identities").mkdir()
    np.savez(root / "celeba_identities" / "ids.npz", images_grey=ci["images_grey"],
             labels=np.searchsorted(ids, ci["celeba_identity"]), identity_ids=ids,
             celeba_identity=ci["celeba_identity"])
    names = {f"{i:06d}.jpg" for i in range(1, N_CELEBA + 1)}
    names |= {f.split("/")[-1] for f in sub["member"][sub["dataset"] == "celeba_wild"]}
    names |= set(ci["filenames"].tolist())
    for f in ("identity_CelebA.txt.gz", "list_eval_partition.txt.gz"):
        lines = gzip.open(data_dir / "celeba" / f).read().decode().splitlines()
        (cel / f[:-3]).write_text("\n".join(l for l in lines if l.split()[0] in names) + "\n")
    return root


@pytest.fixture()
def rdir(tmp_path):
    return tmp_path / "rec"


def _alloc(root):
    return allocations.celeba_ids(20, data_dir=root)


# --- readers ---------------------------------------------------------------------------------

def test_extra_faces_sets_build_with_checks(root, rdir):
    from tfminv.data.sources import read_tar_members

    ident = dict(l.split() for l in (root / "celeba" / "identity_CelebA.txt").read_text()
                 .splitlines())
    for name in ("celeba_wild", "utkface", "fer2013"):
        (row,) = build.build(name, data_dir=root, records_dir=rdir)
        assert (row["count"], row["height"]) == (N_EXTRA, 64)
        images, labels, _, meta = records.read_arrays(build.records_path(name, 64, rdir), "all")
        assert meta["preprocessing"]["checksums"].endswith("match SHA256SUMS")
        tar = "fer2013_grey64_q90.tar.gz" if name == "fer2013" else \
            "celeba_wild_utkface_grey64_q90.tar.gz"
        import cv2

        first = [d for n, d in read_tar_members(root / "extra_faces_aux" / tar)
                 if n.startswith(name + "/")][0]
        np.testing.assert_array_equal(
            images[0], cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_GRAYSCALE))
        if name == "celeba_wild":  # official CelebA identities
            with np.load(root / "extra_faces_aux" / META) as z:
                members = z["member"][z["dataset"] == name]
            assert labels.tolist() == [int(ident[m.split("/")[-1]]) for m in members]
        if name == "fer2013":
            assert meta["label_names"][3] == "happy" and set(labels) <= set(range(7))
        if name == "utkface":
            assert set(labels.tolist()) == {-1}


def test_extra_faces_checksum_and_order_errors(root, tmp_path):
    import shutil

    bad = tmp_path / "raw"
    shutil.copytree(root, bad)
    tar = bad / "extra_faces_aux" / "fer2013_grey64_q90.tar.gz"
    b = bytearray(tar.read_bytes())
    b[-100] ^= 1
    tar.chmod(0o644)
    tar.write_bytes(bytes(b))
    with pytest.raises(DataError, match=r"set 'fer2013': .*fer2013_grey64_q90.tar.gz has SHA-256 "
                                        r".* but SHA256SUMS says"):
        build.build("fer2013", data_dir=bad, records_dir=tmp_path / "rec")
    assert not (tmp_path / "rec" / "fer2013_64").exists()
    # a test-split CelebA photo among celeba_wild is refused, also when its records exist (the
    # CelebA lists are among the set's fingerprinted files)
    assert not build.build("celeba_wild", data_dir=bad, records_dir=tmp_path / "rec")[0]["reused"]
    part = bad / "celeba" / "list_eval_partition.txt"
    with np.load(root / "extra_faces_aux" / META) as z:
        first = z["member"][z["dataset"] == "celeba_wild"][0].split("/")[-1]
    part.write_text(part.read_text().replace(f"{first} 0", f"{first} 2"))
    with pytest.raises(DataError, match=r"set 'celeba_wild': 1 photos of CelebA's test split"):
        build.build("celeba_wild", data_dir=bad, records_dir=tmp_path / "rec")


def test_user_utkface_folder_and_fer_csv(root, tmp_path):
    import cv2

    from tfminv.data.sources import fer2013, utkface

    rec = tmp_path / "rec"
    faces = records.read_arrays(build.ensure("utkface", data_dir=root, records_dir=rec),
                                "all")[0][:5]
    user = tmp_path / "user"
    (user / "utkface").mkdir(parents=True)
    for i, f in enumerate(faces):  # 200x200 "aligned" files as UTKFace ships them
        big = cv2.resize(f, (200, 200), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(user / "utkface" / f"{20 + i}_0_0_2017011{i}.jpg.chip.jpg"), big)
    dup = user / "utkface" / "20_0_0_20170110.jpg.chip.jpg"
    (user / "utkface" / "99_1_2_2017.jpg.chip.jpg").write_bytes(dup.read_bytes())
    (row,) = build.build("utkface", data_dir=user, records_dir=rec / "u")
    assert row["count"] == 5  # the byte-identical copy counts once
    images, labels, _, meta = records.read_arrays(build.records_path("utkface", 64, rec / "u"),
                                                  "all")
    assert meta["preprocessing"]["duplicates_dropped"] == 1 and set(labels.tolist()) == {-1}
    # the fixed box: the face (centre of the 200x200 file) stays in the centre of the crop
    box = utkface.fixed_crop(cv2.resize(faces[0], (200, 200)), 64)
    assert box.shape == (64, 64)

    (user / "fer2013").mkdir()
    small = [cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA) for f in faces[:3]]
    csv = "emotion,pixels,Usage\n" + "".join(
        f"{e},{' '.join(map(str, s.reshape(-1)))},Training\n" for e, s in zip((0, 4, 6), small))
    (user / "fer2013" / "fer2013.csv").write_text(csv)
    (row,) = build.build("fer2013", data_dir=user, records_dir=rec / "f")
    images, labels, _, meta = records.read_arrays(build.records_path("fer2013", 64, rec / "f"),
                                                  "all")
    assert images.shape == (3, 64, 64)
    assert [meta["label_names"][v] for v in labels] == ["angry", "sad", "neutral"]
    (user / "fer2013" / "fer2013.csv").write_text(csv + "3,1 2 3,Training\n")
    with pytest.raises(DataError, match=r"fer2013.csv:5: emotion 3, 3 values"):
        fer2013.read_csv(user / "fer2013" / "fer2013.csv")


# --- pooled sets -----------------------------------------------------------------------------

def test_public_pool_is_identity_disjoint_and_counted(root, rdir):
    a = _alloc(root)
    ref = a.aux["public"]
    kw = dict(data_dir=root, records_dir=rdir)
    aux = allocations.materialize(ref, **kw)
    path = pool.pool_path(ref, rdir)
    meta = records.read_metadata(path)
    parts = {p["set"]: p for p in meta["pool"]["parts"]}
    n_same = len(allocations.materialize(a.aux["same"], **kw))
    assert [(p["set"], p["kept"]) for p in meta["pool"]["parts"]] == [
        ("celeba/all", N_CELEBA), ("celeba_identities/all[..19 per class]", n_same),
        ("celeba_wild/all", N_EXTRA), ("utkface/all", N_EXTRA), ("fer2013/all", N_EXTRA)]
    assert len(aux) == meta["pool"]["total"] == N_CELEBA + n_same + 3 * N_EXTRA
    summary = pool.summary(aux)
    assert summary["sources"] == {p: parts[p]["kept"] for p in parts}
    # identity-disjoint from the target wherever identities are known (CelebA ids), and no
    # pooled image is one of the target's
    rows = pool.read_rows(path)
    target_ids = {int(n[len("celeba_"):]) for n in a.label_names}
    known = rows["celeba_identity"][rows["celeba_identity"] >= 0]
    assert len(known) == N_CELEBA + n_same + N_EXTRA  # celeba, same and celeba_wild
    assert not set(known.tolist()) & target_ids
    assert all(parts[p]["identities"].startswith("disjoint") for p in
               ("celeba/all", "celeba_identities/all[..19 per class]", "celeba_wild/all"))
    target = {x.tobytes() for s in (a.target_train, a.victims)
              for x in allocations.materialize(s, **kw).images}
    assert not any(x.tobytes() in target for x in aux.images)
    # reused: same folder, not rebuilt
    mtime = (path / records.METADATA).stat().st_mtime_ns
    assert allocations.records_for(ref, **kw) == path
    assert (path / records.METADATA).stat().st_mtime_ns == mtime


def test_union_in_json_dedup_caps_and_streaming(root, rdir, tmp_path):
    from tfminv.data.streaming import StreamedImages
    from tfminv.scenarios.base import limited

    a = _alloc(root).to_dict()
    a["aux"] = {k: v for k, v in a["aux"].items() if k in ("generic", "same")}
    # generic and celeba are the same set; the two utkface slices overlap by 10 rows
    a["aux"]["mine"] = ["generic", "celeba", "same",
                        {"dataset": "utkface", "split": "all", "image_size": 64,
                         "fraction": [0, 0.5], "seed": None},
                        {"dataset": "utkface", "split": "all", "image_size": 64,
                         "fraction": [0.2, 1.0], "seed": None}]
    p = tmp_path / "alloc.json"
    p.write_text(json.dumps(a))
    alloc = allocations.get(str(p))
    ref = alloc.aux["mine"]
    assert len(ref.parts) == 4  # 'generic' and 'celeba' counted once
    kw = dict(data_dir=root, records_dir=rdir)
    full = allocations.materialize(ref, **kw)
    meta = records.read_metadata(pool.pool_path(ref, rdir))
    ut = [x for x in meta["pool"]["parts"] if x["set"].startswith("utkface")]
    assert [(x["selected"], x["kept"], x["duplicates_dropped"]) for x in ut] == [
        (15, 15, 0), (24, 15, 9)]  # rows 6..14 of the second slice are in the first
    # the round trip through to_dict / JSON keeps the union
    again = allocations.Allocation.from_dict(json.loads(json.dumps(alloc.to_dict())))
    assert again.aux["mine"] == ref
    # --max_aux: the cap applies to the pooled rows after the seeded shuffle
    capped = limited(ref, 50)
    mem = allocations.materialize(capped, **kw)
    st = StreamedImages.from_ref(capped, **kw)
    assert len(mem) == len(st) == 50
    assert {x.tobytes() for x in mem.images} == {x.tobytes() for x in st.to_array()}
    s_mem, s_st = pool.summary(mem), pool.summary(st)
    assert s_mem["sources"] == s_st["sources"] and sum(s_mem["sources"].values()) == 50
    assert len(full) == meta["pool"]["total"]
    # an ad-hoc union on the command line
    adhoc = alloc.aux_ref("generic + celeba_wild")
    assert [x.dataset for x in adhoc.parts] == ["celeba", "celeba_wild"]


def test_pool_bad_input_is_one_line_and_leaves_nothing(root, rdir, tmp_path):
    import shutil

    a = _alloc(root)
    with pytest.raises(ConfigError, match=r"unknown set 'lfw'; expected names among"):
        a.aux_ref("generic + lfw")
    kw = dict(data_dir=root, records_dir=rdir)
    # a set holding the target's people
    bad = allocations.union_ref(["generic", SplitRef("celeba_identities", "all", 64)], a.aux,
                                64, a.target_train)
    with pytest.raises(DataError, match=r"set 'celeba_identities/all' shares 6 identities with "
                                        r"the target"):
        allocations.materialize(bad, **kw)
    # another dataset naming a target person (CelebA ids across datasets)
    raw = tmp_path / "raw"
    shutil.copytree(root, raw)
    ident = raw / "celeba" / "identity_CelebA.txt"
    target_id = a.label_names[0][len("celeba_"):]
    lines = ident.read_text().splitlines()
    lines = [f"000001.jpg {target_id}" if l.startswith("000001.jpg ") else l for l in lines]
    ident.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"set 'celeba/all' shares 1 identities .*celeba "
                                        rf"{target_id}"):
        allocations.materialize(a.aux["public"], data_dir=raw, records_dir=tmp_path / "r2")
    # mixed image sizes
    mixed = allocations.union_ref(["generic", SplitRef("utkface", "all", 32)], a.aux, 64,
                                  a.target_train)
    with pytest.raises(DataError, match=r"set 'utkface/all' has 32x32 images but the pool is "
                                        r"64x64"):
        allocations.materialize(mixed, **kw)
    # a source whose checksum does not match
    tar = raw / "extra_faces_aux" / "celeba_wild_utkface_grey64_q90.tar.gz"
    b = bytearray(tar.read_bytes())
    b[len(b) // 2] ^= 1
    tar.chmod(0o644)
    tar.write_bytes(bytes(b))
    with pytest.raises(DataError) as e:
        allocations.materialize(a.aux_ref("generic + celeba_wild"), data_dir=raw,
                                records_dir=tmp_path / "r3")
    assert "set 'celeba_wild/all'" in str(e.value) and "SHA256SUMS" in str(e.value)
    assert "\n" not in str(e.value)
    for d in (rdir, tmp_path / "r2", tmp_path / "r3"):  # nothing half-built
        left = [x.name for x in d.iterdir() if x.name.startswith(("pool_", ".pool_"))] \
            if d.is_dir() else []
        assert left == [], left


def test_facescrub_public_leaves_out_the_targets_people(data_dir, rdir):
    fs = allocations.FACESCRUB
    assert [p.dataset for p in fs.aux["public"].parts] == ["celeba", "celeba_wild", "utkface",
                                                           "fer2013"]
    # FaceScrub's `same` holds the target's 12 people (by name): never pooled
    with pytest.raises(DataError, match=r"set 'facescrub/all\[0.8:0.9\]' shares 12 identities "
                                        r"with the target's training data \(e.g. facescrub "):
        allocations.materialize(allocations.union_ref("same", fs.aux, 64, fs.target_train),
                                data_dir=data_dir, records_dir=rdir)


def test_pool_command_builds_and_reports(root, tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, TFMINV_DATA_DIR=str(root), TFMINV_RECORDS_DIR=str(tmp_path / "r"),
               TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "tfminv.data.pool", "--dataset=celeba_ids"]
    res = subprocess.run(cmd + ["--aux=generic+celeba_wild"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x.get("set") for x in lines[:2]] == ["celeba/all", "celeba_wild/all"]
    assert lines[-1]["total"] == N_CELEBA + N_EXTRA
    bad = subprocess.run(cmd + ["--aux=generic+lfw"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert bad.returncode == 2 and "unknown set 'lfw'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_build_pool_refuses_a_set_that_is_not_pooled():
    """The command's body is the library's `build_pool` (no data is read for this check)."""
    with pytest.raises(DataError, match=r"^--aux=same: mnist is not a pooled set; expected a "
                                        r"union"):
        pool.build_pool("mnist", "same")
