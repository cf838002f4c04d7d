"""The `extra_faces_aux` archives: more generic faces for the attacker, each archive member set a
named dataset of its own (`celeba_wild`, `utkface`, `fer2013`; thin modules of those names).

Layout (<data_dir>/extra_faces_aux/, see its PROVENANCE.md): `extra_faces_meta.npz` (one row
per image in tar order: `member`, `tar_file` -> `tar_names`, `dataset`, `celeba_number`,
`fer_emotion` -> `fer_emotion_names`, ...), the tars of 64x64 grey JPEG q90 crops
(`celeba_wild_utkface_grey64_q90.tar.gz`, `fer2013_grey64_q90.tar.gz`), and `SHA256SUMS`.

Checks when the records are built: every file listed in SHA256SUMS matches its SHA-256 (a
mismatch is a DataError naming the set and the file), the members of a set are exactly the
metadata's rows in the same order, each decodes to a 64x64 grey image; `celeba_wild` members
must be in CelebA's official train split (the test split holds the project's target people).
Labels: `celeba_wild` the official CelebA identity id (identity_CelebA.txt from
<data_dir>/celeba/; -1 without it), `fer2013` the emotion index, `utkface` -1 (no identities).
One split, `all`. No resizing when 64 is asked for (the crops are already framed like the
paper's CelebA crop).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfminv.data import preprocess
from tfminv.data.sources import (Found, Loaded, Skipper, SplitData, decode_image, find_folder,
                                 read_npz, read_tar_members)
from tfminv.errors import DataError

FOLDER = "extra_faces_aux"
META = "extra_faces_meta.npz"
SUMS = "SHA256SUMS"
SETS = ("celeba_wild", "utkface", "fer2013")
EXPECTED = (f"put the extra faces in <data_dir>/{FOLDER}/: {META}, the tar.gz of grey 64x64 "
            f"crops it lists (tar_names) and {SUMS} (see its PROVENANCE.md)")
META_KEYS = ("member", "tar_file", "tar_names", "dataset")


def find(data_dir, name: str) -> Found:
    """The archive holding set `name` and the metadata (both fingerprinted for record reuse)."""
    folder = find_folder(data_dir, (FOLDER,), EXPECTED)
    meta = folder / META
    if not meta.is_file():
        raise DataError(f"{meta} not found; {EXPECTED}")
    z = read_npz(meta, ["dataset", "tar_file", "tar_names"])
    rows = np.flatnonzero(z["dataset"] == name)
    if not len(rows):
        raise DataError(f"{meta}: no rows of set {name!r} (sets present: "
                        f"{sorted(set(z['dataset'].tolist()))})")
    tars = sorted(set(z["tar_file"][rows].tolist()))
    if len(tars) != 1 or not 0 <= tars[0] < len(z["tar_names"]):
        raise DataError(f"{meta}: set {name!r} rows point at tar_file {tars}; expected one index "
                        f"into tar_names ({len(z['tar_names'])} names)")
    tar = folder / str(z["tar_names"][tars[0]])
    if not tar.is_file():
        raise DataError(f"{tar} not found (set {name!r}); {EXPECTED}")
    files = [tar, meta] + ([folder / SUMS] if (folder / SUMS).is_file() else [])
    if name == "celeba_wild":  # labels and the split check come from CelebA's own lists
        from tfminv.data.sources import celeba

        cel = folder.parent / "celeba"
        if cel.is_dir():
            files += [f for f in (celeba._annotation(cel, "identity_CelebA"),
                                  celeba._annotation(cel, "list_eval_partition")) if f]
    return Found(folder, "extra_faces_tar", files, {"set": name, "tar": tar, "meta": meta})


def verify_checksums(found: Found, name: str) -> str:
    """DataError naming the set when a file of `found` differs from its SHA256SUMS line;
    returns how the files were checked (for the records' preprocessing notes)."""
    from tfminv.data.build import _sha256

    sums_file = found.folder / SUMS
    if not sums_file.is_file():
        return f"not checked: no {SUMS} in {found.folder}"
    sums = {}
    for line in sums_file.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    for f in (found.extra["tar"], found.extra["meta"]):
        want = sums.get(f.name)
        if want is None:
            raise DataError(f"set {name!r}: {f.name} is not listed in {sums_file}; expected a "
                            "SHA-256 line for every data file")
        got = _sha256(f)  # the build's file hash (one home)
        if got != want:
            raise DataError(f"set {name!r}: {f} has SHA-256 {got[:16]}... but {SUMS} says "
                            f"{want[:16]}...; the file is damaged or was replaced (restore it)")
    return f"SHA-256 of {found.extra['tar'].name} and {META} match {SUMS}"


def load(found: Found, size: int, name: str, *, limit=None, skip_corrupt=False,
         progress=False) -> Loaded:
    checked = verify_checksums(found, name)
    meta_path, tar = found.extra["meta"], found.extra["tar"]
    keys = list(META_KEYS) + {"celeba_wild": ["celeba_number"],
                              "fer2013": ["fer_emotion", "fer_emotion_names"]}.get(name, [])
    z = read_npz(meta_path, keys)
    rows = np.flatnonzero(z["dataset"] == name)
    members = [str(m) for m in z["member"][rows]]
    if limit:
        rows, members = rows[:limit], members[:limit]
    index = {m: i for i, m in enumerate(members)}
    if len(index) != len(members):
        raise DataError(f"{meta_path}: set {name!r} lists a member twice; expected unique names")
    labels = np.full(len(rows), -1, np.int64)
    label_names: tuple = ()
    prep = {"source": f"{FOLDER}/{tar.name} (64x64 grey JPEG q90 crops, PROVENANCE.md)",
            "checksums": checked, "grey": "as stored (PIL 'L')"}
    if name == "celeba_wild":
        labels, note = _celeba_identities(found.folder.parent, members, name)
        prep["labels"] = note
    elif name == "fer2013":
        labels = np.asarray(z["fer_emotion"][rows], np.int64)
        label_names = tuple(str(n) for n in z["fer_emotion_names"])
        prep["labels"] = "FER2013 emotion index (label_names)"
    else:
        prep["labels"] = "-1 (UTKFace has no identities)"
    skip = Skipper(skip_corrupt)
    images = np.zeros((len(rows), size, size), np.uint8)
    got = np.zeros(len(rows), bool)
    pos = 0
    for member, data in read_tar_members(tar, progress, name):
        if not member.startswith(f"{name}/"):
            continue
        if pos >= len(members):
            if limit:
                break
            raise DataError(f"{tar}: member {member} of set {name!r} is not in {META}; expected "
                            "the metadata's rows and nothing else")
        if member != members[pos]:
            raise DataError(f"{tar}: member {member} where {META} lists {members[pos]} (row "
                            f"{pos} of set {name!r}); expected the members in metadata order")
        where = f"{tar}:{member}"
        try:
            grey = preprocess.to_grey(decode_image(data, where))
        except DataError as e:
            skip(e, where)
            pos += 1
            continue
        if grey.shape != (64, 64):
            raise DataError(f"{where}: {grey.shape[1]}x{grey.shape[0]} image; expected the 64x64 "
                            f"crops of set {name!r}")
        images[pos] = preprocess.resize(grey, size)
        got[pos] = True
        pos += 1
    if pos < len(members):
        raise DataError(f"{tar}: {pos} members of set {name!r} but {META} lists {len(members)}; "
                        "the archive is incomplete")
    prep["resize"] = "none" if size == 64 else preprocess.RESIZE_DOWN if size < 64 \
        else preprocess.RESIZE_UP
    return Loaded(splits={"all": SplitData(images[got], labels[got])}, label_names=label_names,
                  preprocessing=prep, skipped=skip.skipped)


def _celeba_identities(data_dir: Path, members, name):
    """Official CelebA identity ids of the members (file names), refusing test-split photos."""
    from tfminv.data.sources import celeba

    folder = data_dir / "celeba"
    if not folder.is_dir():
        return np.full(len(members), -1, np.int64), "-1 (no <data_dir>/celeba/identity_CelebA.txt)"
    files = [Path(m).name for m in members]
    ident = celeba._annotation(folder, "identity_CelebA")
    part = celeba._annotation(folder, "list_eval_partition")
    if part is not None:
        partition = celeba._table(part, "0|1|2")
        test = [f for f in files if partition.get(f) == 2]
        if test:
            raise DataError(f"set {name!r}: {len(test)} photos of CelebA's test split (e.g. "
                            f"{test[0]}, {part}); the test split holds the target's people and "
                            "must never be auxiliary data")
    if ident is None:
        return np.full(len(members), -1, np.int64), "-1 (no identity_CelebA.txt)"
    table = celeba._table(ident, "identity id")
    missing = [f for f in files if f not in table]
    if missing:
        raise DataError(f"{ident}: no entry for {missing[0]} (set {name!r}); expected one "
                        "identity per CelebA file name")
    return np.array([table[f] for f in files], np.int64), "CelebA identity id (identity_CelebA)"
