"""Pooled auxiliary sets: the union of several SplitRefs built once into records of its own.

    python -m tfminv.data.pool --dataset=celeba_ids --aux=public      # or --aux=generic+utkface

builds (or reuses) the pool ahead of a run and prints one JSON line per part (set, selected,
kept, duplicates dropped, identity check) and a total line with the seconds taken.

An allocation names a pool as `aux: "generic + same + celeba_wild + utkface"` (or `--aux=public`,
see `tfminv.data.allocations.union_ref`); `ensure(ref)` builds the parts' records, selects each
part's rows, and writes the pooled rows (in part order) to
`<records_dir>/pool_<key>_<size>/`, so `materialize`, `StreamedImages.from_ref` (--stream_aux)
and the `limit` cap (--max_aux, applied after the pool's seeded shuffle) work on it as on any
dataset.

Rules, each a one-line DataError naming the set when broken, with nothing half-built left (the
folder is written with `io_utils.atomic_dir`):
- every part has the pool's image size (images are never resized to pool them);
- no part shares a person with the target (`ref.disjoint_from`, the target's training slice)
  where both sides' identities are known: CelebA identity ids for celeba, celeba_reframed,
  celeba_wild and celeba_identities; person names for facescrub; AT&T subject numbers. UTKFace
  and FER2013 carry no identities and cannot be checked (datasets/README.md);
- no pooled image is pixel-identical to one of the target's training images;
- a part whose raw files fail their checks (e.g. an `extra_faces_aux` checksum) fails the pool.

Rows pixel-identical to an earlier row (of any part) count once. Labels are the part index
(label_names = the parts), so per-source counts of any selection are a bincount; the metadata's
`pool` entry lists, per part, its ref, rows selected, rows kept, duplicates dropped and whether
its identities were checked. `pool_rows.npz` beside the shards holds, per pooled row, the part
and the CelebA identity id (-1 when unknown), with its SHA-256 in the metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from tfminv import io_utils, paths
from tfminv.errors import DataError, TfminvError

POOL_VERSION = 1
ROWS_FILE = "pool_rows.npz"
log = logging.getLogger("tfminv")


def key_of(ref) -> str:
    """Content key of a pooled ref (its parts, image size and target), for its folder name."""
    d = {"parts": [p.to_dict() for p in ref.parts], "size": ref.image_size,
         "disjoint_from": ref.disjoint_from.to_dict() if ref.disjoint_from else None,
         "version": POOL_VERSION}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def pool_path(ref, records_dir=None) -> Path:
    return paths.records_dir(records_dir) / f"pool_{key_of(ref)}_{ref.image_size or 64}"


def part_name(p) -> str:
    """How a part is named in errors and metadata, e.g. 'celeba_identities/all[..19 per class]'."""
    tags = ""
    if p.classes is not None:
        tags += f"[classes={list(p.classes)}]"
    if p.min_per_class is not None or p.max_per_class is not None:
        tags += f"[{p.min_per_class or ''}..{p.max_per_class or ''} per class]"
    if p.fraction != (0.0, 1.0):
        tags += f"[{p.fraction[0]:g}:{p.fraction[1]:g}]"
    if p.limit:
        tags += f"[first {p.limit}]"
    return f"{p.dataset}/{p.split}{tags}"


def identities(dataset: str, labels: np.ndarray, meta: dict):
    """(namespace, identity keys as strings [N]) of rows of `dataset`, or None when its labels
    are not identities. Unlabelled rows (-1) get the key ''."""
    labels = np.asarray(labels)
    names = list(meta.get("label_names") or ())
    if dataset in ("celeba", "celeba_reframed", "celeba_wild"):
        ns, keys = "celeba", [str(int(v)) if v >= 0 else "" for v in labels]
    elif dataset == "celeba_identities":
        ns = "celeba"
        keys = [names[v][len("celeba_"):] if 0 <= v < len(names) else "" for v in labels]
    elif dataset == "facescrub":
        ns, keys = "facescrub", [names[v] if 0 <= v < len(names) else str(int(v)) for v in labels]
    elif dataset == "att_faces":
        ns, keys = "att_faces", [str(int(v)) for v in labels]
    else:
        return None
    return ns, np.asarray(keys, dtype=object)


def _digests(images: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in images]


def _part_rows(ref, *, data_dir, records_dir, what):
    """(path, images uint8, raw labels, metadata) of the rows `ref` selects (not relabelled)."""
    from tfminv.data import allocations, build, records

    try:
        path = build.ensure(ref.dataset, ref.image_size, data_dir=data_dir,
                            records_dir=records_dir)
        images, labels, _, meta = records.read_arrays(path, ref.split)
        idx = allocations.select(len(labels), labels, ref)
        allocations.check_selected(ref, labels, idx, what)
    except TfminvError as e:
        raise type(e)(f"{what}: {e}") from None
    return path, images[np.sort(idx)], labels[np.sort(idx)], meta


def _fingerprint(path: Path) -> str:
    return hashlib.sha256((Path(path) / "metadata.json").read_bytes()).hexdigest()


def ensure(ref, *, data_dir=None, records_dir=None) -> Path:
    """Build (or reuse) the pooled records of `ref` (dataset 'pool'); returns their folder."""
    from tfminv.data import build, records

    label = f"pooled set '{ref.label}'"
    out = pool_path(ref, records_dir)
    io_utils.clean_stale(out)
    # the parts' own records first (each reused when its raw files are unchanged)
    part_paths = []
    for p in ref.parts:
        try:
            part_paths.append(build.ensure(p.dataset, p.image_size, data_dir=data_dir,
                                           records_dir=records_dir))
        except TfminvError as e:
            raise type(e)(f"{label}: set '{part_name(p)}': {e}") from None
    if ref.disjoint_from is not None:  # the check against the target is redone if it changes
        t = ref.disjoint_from
        try:
            part_paths.append(build.ensure(t.dataset, t.image_size, data_dir=data_dir,
                                           records_dir=records_dir))
        except TfminvError as e:
            raise type(e)(f"{label}: the target's data ({part_name(t)}): {e}") from None
    sources = [{"path": str(pp.name), "metadata_sha256": _fingerprint(pp)} for pp in part_paths]
    if (out / records.METADATA).is_file():
        try:
            old = records.read_metadata(out)
            if old.get("pool", {}).get("sources") == sources and \
                    not records.damaged_shards(out, old):
                return out
        except DataError:
            pass
    t0 = time.time()
    size = ref.image_size or 64
    # the target's people and pixels, which no pooled row may share
    target_ids, target_pixels = None, set()
    if ref.disjoint_from is not None:
        t = ref.disjoint_from
        _, t_images, t_labels, t_meta = _part_rows(
            t, data_dir=data_dir, records_dir=records_dir,
            what=f"{label}: the target's data ({part_name(t)})")
        target_ids = identities(t.dataset, t_labels, t_meta)
        target_pixels = set(_digests(t_images))
    images, part_of, ident, seen, report = [], [], [], set(), []
    for i, p in enumerate(ref.parts):
        name = part_name(p)
        _, imgs, labels, meta = _part_rows(p, data_dir=data_dir, records_dir=records_dir,
                                           what=f"{label}: set '{name}'")
        if imgs.shape[1:] != (size, size):
            raise DataError(f"{label}: set '{name}' has {imgs.shape[2]}x{imgs.shape[1]} images but "
                            f"the pool is {size}x{size}; expected one image size (images are "
                            "never resized to pool them)")
        ids = identities(p.dataset, labels, meta)
        checked = "unknown (no identities)"
        if ids is not None and target_ids is not None and ids[0] == target_ids[0]:
            common = sorted(set(ids[1][ids[1] != ""]) & set(target_ids[1][target_ids[1] != ""]))
            if common:
                raise DataError(f"{label}: set '{name}' shares {len(common)} identities with the "
                                f"target's training data (e.g. {ids[0]} {common[0]}); a pooled "
                                "auxiliary set must never hold the target's people")
            checked = f"disjoint from the target ({ids[0]} identities)"
        elif ids is not None and target_ids is not None:
            checked = f"not comparable ({ids[0]} vs the target's {target_ids[0]} identities)"
        digests = _digests(imgs)
        clash = sum(d in target_pixels for d in digests)
        if clash:
            raise DataError(f"{label}: set '{name}' holds {clash} images identical to the target's "
                            "training images; a pooled auxiliary set must never hold them")
        keep = []
        for j, d in enumerate(digests):
            if d not in seen:
                seen.add(d)
                keep.append(j)
        celeba_ids = np.full(len(keep), -1, np.int64)
        if ids is not None and ids[0] == "celeba":
            celeba_ids = np.array([int(k) if k else -1 for k in ids[1][keep]], np.int64)
        report.append({"set": name, "ref": p.to_dict(), "start": int(sum(map(len, images))),
                       "selected": int(len(imgs)), "kept": len(keep),
                       "duplicates_dropped": int(len(imgs) - len(keep)), "identities": checked})
        images.append(imgs[keep])
        part_of.append(np.full(len(keep), i, np.int16))
        ident.append(celeba_ids)
    stack = np.concatenate(images)
    labels = np.concatenate(part_of).astype(np.int64)
    from tfminv.data.sources import Found, Loaded, SplitData

    loaded = Loaded(splits={"all": SplitData(stack, labels)},
                    label_names=tuple(part_name(p) for p in ref.parts),
                    preprocessing={"pool": "rows of each part in record order, part after part; "
                                           "pixel-identical rows kept once",
                                   "labels": "index of the part (label_names)"})
    settings = {"dataset": "pool", "image_size": size, "pool_key": key_of(ref),
                "pool_version": POOL_VERSION, "format_version": records.FORMAT_VERSION}
    extra = {"pool": {"parts": report, "sources": sources, "total": int(len(labels)),
                      "disjoint_from": part_name(ref.disjoint_from) if ref.disjoint_from
                      else None}}

    def side_files(tmp: Path) -> None:
        np.savez(tmp / ROWS_FILE, part=np.concatenate(part_of),
                 celeba_identity=np.concatenate(ident))
        extra["pool"]["rows_file_sha256"] = hashlib.sha256(
            (tmp / ROWS_FILE).read_bytes()).hexdigest()

    found = Found(out, "pool", [])
    build._write(out, "pool", size, loaded, found, settings, sources, t0, False, extra=extra,
                 before_metadata=side_files)
    log.info("%s: %d images (%s) in %.1f s", label, len(labels),
             ", ".join(f"{r['set']} {r['kept']}" for r in report), time.time() - t0)
    return out


def summary(aux_set) -> dict | None:
    """Per-source counts of a pooled ImageSet or StreamedImages (for run.json), None otherwise:
    {"name", "images", "sources": {part: images}, "parts": the build report}."""
    meta = getattr(aux_set, "metadata", None) or getattr(aux_set, "meta", None) or {}
    info = meta.get("pool")
    if not info:
        return None
    names = list(meta.get("label_names") or ())
    if hasattr(aux_set, "labels"):
        labels = np.asarray(aux_set.labels)
    else:  # a stream: the selected rows' labels
        from tfminv.data import streaming

        labels = streaming._labels(aux_set.path, aux_set.meta, aux_set.split)
        labels = np.tile(labels, aux_set.repeat)
        if aux_set.mask is not None:
            labels = labels[aux_set.mask]
    counts = np.bincount(labels, minlength=len(names)) if len(labels) else np.zeros(len(names))
    return {"name": getattr(aux_set, "name", ""), "images": int(len(labels)),
            "sources": {n: int(c) for n, c in zip(names, counts)}, "parts": info["parts"]}


def read_rows(path) -> dict:
    """pool_rows.npz of a pooled records folder (part index and CelebA identity per row),
    checked against the SHA-256 in its metadata."""
    from tfminv.data import limits, records

    meta = records.read_metadata(path)
    f = Path(path) / ROWS_FILE
    want = meta.get("pool", {}).get("rows_file_sha256")
    if not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != want:
        raise DataError(f"{f}: missing or not matching its checksum in metadata.json; rebuild "
                        "the pool (delete the folder)")
    return limits.read_npz(f)


def build_pool(dataset: str, aux: str, *, data_dir=None, records_dir=None) -> tuple[Path, dict]:
    """Build (or reuse) the pooled auxiliary set `aux` of the allocation `dataset` (what
    `python -m tfminv.data.pool` runs): (its records folder, the metadata's 'pool' entry:
    'parts' with per-source counts, 'total'). DataError naming --aux when `aux` is not a
    pooled set."""
    from tfminv.data import allocations, records

    ref = allocations.get(dataset).aux_ref(aux)
    if ref.parts is None:
        raise DataError(f"--aux={aux}: {ref.dataset} is not a pooled set; expected a union "
                        "such as 'generic + celeba_wild'")
    out = ensure(ref, data_dir=data_dir, records_dir=records_dir)
    return out, records.read_metadata(out)["pool"]


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_string("dataset", "celeba_ids", "allocation name or JSON allocation file")
    flags.DEFINE_string("aux", "public", "a pooled auxiliary set of it, or a union 'a+b'")
    flags.DEFINE_string("data_dir", None, f"raw data folder (default ${paths.DATA_DIR_ENV})")
    flags.DEFINE_string("records_dir", None, f"records folder (default ${paths.RECORDS_DIR_ENV})")
    FLAGS = flags.FLAGS

    def run(_):
        t0 = time.time()
        out, info = build_pool(FLAGS.dataset, FLAGS.aux, data_dir=FLAGS.data_dir,
                               records_dir=FLAGS.records_dir)
        for part in info["parts"]:
            print(json.dumps({k: v for k, v in part.items() if k != "ref"}), flush=True)
        print(json.dumps({"records": str(out), "total": info["total"],
                          "seconds": round(time.time() - t0, 1)}), flush=True)
        return 0

    from tfminv import cli

    cli.run(run, argv=argv)


if __name__ == "__main__":
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
