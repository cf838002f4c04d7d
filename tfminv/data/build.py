"""Build TFRecords from raw datasets, reusing them when sources and settings are unchanged.

    python -m tfminv.data.build --dataset=mnist [--data_dir=DIR] [--records_dir=DIR]
        [--image_size=32] [--force] [--source=raw|tfds --tfds_data_dir=DIR] [--skip_corrupt]

Prints one JSON line per split: dataset, split, count, height, width, seconds, reused, records.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from tfminv import io_utils, paths
from tfminv.data import preprocess, records
from tfminv.errors import ConfigError, DataError, TfminvError, first_line

DATASETS = {
    "mnist": "tfminv.data.sources.mnist",
    "cifar10": "tfminv.data.sources.cifar10",
    "celeba": "tfminv.data.sources.celeba",
    "facescrub": "tfminv.data.sources.facescrub",
    "att_faces": "tfminv.data.sources.att_faces",
    "celeba_identities": "tfminv.data.sources.celeba_identities",
    "celeba_reframed": "tfminv.data.sources.celeba_reframed",
    "celeba_wild": "tfminv.data.sources.celeba_wild",
    "utkface": "tfminv.data.sources.utkface",
    "fer2013": "tfminv.data.sources.fer2013",
}
SOURCES = ("raw", "tfds")
# Bump when preprocessing changes so old records are rebuilt.
PREPROCESS_VERSION = 1
HASH_CACHE = ".source_hashes.json"
log = logging.getLogger("tfminv")


def source_module(dataset: str):
    """The raw-format reader module of a dataset; ConfigError for unknown names."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    return importlib.import_module(DATASETS[dataset])


def default_size(dataset: str) -> int:
    return source_module(dataset).DEFAULT_SIZE


def resolve_size(dataset: str, image_size) -> int:
    size = default_size(dataset) if image_size in (None, 0) else image_size
    if not isinstance(size, (int, np.integer)) or not 8 <= int(size) <= 1024:
        raise ConfigError(f"image_size={image_size!r} for {dataset}; expected an integer in 8..1024")
    return int(size)


def records_path(dataset: str, image_size=None, records_dir=None, limit=None) -> Path:
    """Folder of a dataset's records: <records_dir>/<dataset>_<size>[_first<limit>]."""
    size = resolve_size(dataset, image_size)
    name = f"{dataset}_{size}" + (f"_first{int(limit)}" if limit else "")
    return paths.records_dir(records_dir) / name


# --- source fingerprints -------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(files, base: Path, cache_file: Path) -> list[dict]:
    """[{path (relative to base), size, sha256}] for files; hashes cached by (path, size, mtime)."""
    try:
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    except (OSError, json.JSONDecodeError):
        cache = {}
    out, dirty = [], False
    for f in files:
        f = Path(f)
        st = f.stat()
        key = str(f.resolve())
        hit = cache.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            digest = hit[2]
        else:
            digest = _sha256(f)
            cache[key] = [st.st_size, st.st_mtime_ns, digest]
            dirty = True
        try:
            rel = str(f.resolve().relative_to(Path(base).resolve()))
        except ValueError:
            rel = f.name
        out.append({"path": rel, "size": st.st_size, "sha256": digest})
    if dirty:
        try:
            io_utils.write_json(cache_file, cache, indent=None)
        except OSError:
            pass  # the cache only saves time
    if len(out) > MAX_LISTED:
        out = _collapse(out)
    return out


MAX_LISTED = 200


def _collapse(entries: list[dict]) -> list[dict]:
    """Large image trees: one entry per folder (file count, bytes, SHA256 of the per-file list)."""
    groups: dict[str, list] = {}
    for e in entries:
        groups.setdefault(str(Path(e["path"]).parent), []).append(e)
    out = []
    for folder, es in sorted(groups.items()):
        listing = "".join(f"{e['path']} {e['size']} {e['sha256']}\n" for e in es)
        out.append({"path": folder + "/", "files": len(es), "size": sum(e["size"] for e in es),
                    "sha256": hashlib.sha256(listing.encode()).hexdigest()})
    return out


# --- build -----------------------------------------------------------------------------------

def _summary(meta: dict, path: Path, seconds: float, reused: bool) -> list[dict]:
    return [{"dataset": meta["dataset"], "split": s, "count": v["count"],
             "height": meta["height"], "width": meta["width"], "seconds": round(seconds, 2),
             "reused": reused, "records": str(path)} for s, v in meta["splits"].items()]


def _locate(dataset, source, data_dir, tfds_data_dir):
    if source == "tfds":
        from tfminv.data.sources import tfds_source

        found = tfds_source.find(dataset, tfds_data_dir)
        return found, tfds_source, found.folder.parent
    mod = source_module(dataset)
    root = paths.data_dir(data_dir)
    return mod.find(root), mod, root


def build(dataset: str, *, data_dir=None, records_dir=None, image_size=None, force: bool = False,
          source: str | None = None, tfds_data_dir=None, limit: int | None = None,
          skip_corrupt: bool = False, progress: bool | None = None,
          download: bool = False) -> list[dict]:
    """Build (or reuse) the records of every split of `dataset`; one summary dict per split.

    source: 'raw' (files under data_dir), 'tfds' (a prepared TFDS dataset in tfds_data_dir), or
    None: reuse existing complete records of either source whose inputs are unchanged, else raw.
    limit: keep only the first `limit` images of each split (separate records folder).
    download: fetch missing raw files first (MNIST, CIFAR-10; see tfminv.data.download).
    """
    t0 = time.time()
    source_module(dataset)
    size = resolve_size(dataset, image_size)
    if source not in (None,) + SOURCES:
        raise ConfigError(f"source={source!r}; expected one of {SOURCES}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit <= 0):
        raise ConfigError(f"limit={limit!r}; expected a positive integer")
    out = records_path(dataset, size, records_dir, limit)
    rdir = paths.records_dir(records_dir)
    if progress is None:
        progress = sys.stderr.isatty()

    old = None
    if (out / records.METADATA).is_file():
        try:
            old = records.read_metadata(out)
        except DataError:
            old = None
    if source is None:
        source = "raw"
        if old and old.get("settings", {}).get("source") == "tfds" and not force:
            source = "tfds"
            tfds_data_dir = tfds_data_dir or old["settings"].get("tfds_data_dir")
    settings = {"dataset": dataset, "image_size": size, "source": source, "limit": limit,
                "skip_corrupt": bool(skip_corrupt), "preprocess_version": PREPROCESS_VERSION,
                "format_version": records.FORMAT_VERSION}
    if source == "tfds":
        settings["tfds_data_dir"] = str(Path(tfds_data_dir).resolve()) if tfds_data_dir else None

    def same(meta):
        """Same settings (whether corrupt images may be skipped does not change the result)."""
        a = dict(meta.get("settings") or {}, skip_corrupt=None)
        return a == dict(settings, skip_corrupt=None)

    def complete(meta, rebuild=True):
        """All shards present and matching their checksums (a damaged folder is rebuilt)."""
        try:
            for s in meta["splits"]:
                records.split_files(out, meta, s)
            bad = records.damaged_shards(out, meta)
        except TfminvError:
            return False
        if bad and rebuild:
            log.warning("%s: damaged shards (%s%s); rebuilding them from the raw files", out,
                        ", ".join(bad[:3]), " ..." if len(bad) > 3 else "")
        return not bad

    _clean_stale(out)
    try:
        found, mod, base = _locate(dataset, source, data_dir, tfds_data_dir)
    except DataError as missing:
        # Raw files gone but complete records built with the same settings: use them.
        if old and not force and same(old):
            if complete(old, rebuild=False):
                return _summary(old, out, time.time() - t0, True)
            # damaged and nothing to rebuild from: say both (--force cannot help)
            bad = records.damaged_shards(out, old)
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise DataError(f"{out}: damaged records ({', '.join(bad[:3]) or 'shards'}{more} "
                            "missing, truncated or not matching their checksum) and no raw files "
                            f"to rebuild them from ({first_line(missing)}); put the raw files "
                            "back and rerun (the records are rebuilt), or restore the records "
                            "folder") from None
        if download and source == "raw":
            from tfminv.data import download as dl

            if dataset in dl.DOWNLOADABLE:
                dl.download(dataset, data_dir=data_dir)
                return build(dataset, data_dir=data_dir, records_dir=records_dir,
                             image_size=size, force=force, source="raw", limit=limit,
                             skip_corrupt=skip_corrupt, progress=progress)
        raise
    sources = fingerprint(found.files, base, rdir / HASH_CACHE)
    if old and not force and same(old) and old.get("sources") == sources \
            and complete(old):
        return _summary(old, out, time.time() - t0, True)

    if source == "tfds":
        loaded = mod.load(found, size, dataset=dataset, limit=limit, skip_corrupt=skip_corrupt,
                          progress=progress)
    else:
        loaded = mod.load(found, size, limit=limit, skip_corrupt=skip_corrupt, progress=progress)
    total = sum(len(s.labels) for s in loaded.splits.values())
    if total == 0:
        raise DataError(f"{found.folder}: no images found for {dataset} (format {found.fmt}); "
                        f"expected: {getattr(mod, 'EXPECTED', 'a prepared dataset')}")
    for name, s in loaded.splits.items():
        if s.images.shape[1:] != (size, size) or s.images.dtype != np.uint8:
            raise DataError(f"internal: {dataset}/{name} produced {s.images.shape} "
                            f"{s.images.dtype}, expected [N, {size}, {size}] uint8")

    import tensorflow as tf

    try:
        meta = _write(out, dataset, size, loaded, found, settings, sources, t0, progress)
    except (OSError, tf.errors.OpError) as e:
        # Another process may have finished the same build first: use its records if complete.
        try:
            other = records.read_metadata(out) if (out / records.METADATA).is_file() else None
        except DataError:
            other = None
        if other and same(other) and other.get("sources") == sources and complete(other):
            return _summary(other, out, time.time() - t0, True)
        reason = e.message if isinstance(e, tf.errors.OpError) else (e.strerror or str(e))
        reason = first_line(reason)
        raise DataError(f"cannot write records to {out.parent}: {reason}; "
                        f"expected a writable folder with free space (--records_dir or "
                        f"${paths.RECORDS_DIR_ENV})") from None
    return _summary(meta, out, time.time() - t0, False)


def _clean_stale(out: Path) -> None:
    """Remove temporary folders left beside `out` by builds that died (kill -9, power cut)."""
    for tmp in io_utils.clean_stale(out):
        log.info(f"note: removed {tmp}, left by a build that did not finish")


def _write(out, dataset, size, loaded, found, settings, sources, t0, progress, *,
           extra: dict | None = None, before_metadata=None) -> dict:
    """Write shards, min/max and metadata.json into a temp folder renamed onto `out`.

    extra: more top-level metadata entries; before_metadata(tmp): writes side files (and may
    add to `extra`) before metadata.json, the file that marks the folder complete."""
    with io_utils.atomic_dir(out) as tmp:
        splits_meta = {}
        for name, s in loaded.splits.items():
            shards = records.write_split(tmp, name, s.images, s.labels, s.attributes,
                                         progress=progress)
            counts = np.bincount(s.labels[s.labels >= 0]) if len(s.labels) else np.zeros(0)
            splits_meta[name] = {"count": int(len(s.labels)), "shards": shards,
                                 "shard_sha256": records.shard_digests(tmp, shards),
                                 "label_counts": [int(c) for c in counts][:1000]}
        lo, hi = preprocess.pixel_minmax(s.images for s in loaded.splits.values())
        np.savez(tmp / records.MINMAX, min=lo, max=hi)
        meta = {
            "dataset": dataset,
            "format_version": records.FORMAT_VERSION,
            "height": size, "width": size, "channels": 1,
            "encoding": "TFRecord tf.train.Example: image = raw uint8 bytes [H, W] row-major "
                        "grey in [0, 255]; label = int64; attributes = raw int8 bytes [A] "
                        "(+1/-1) when attribute_names is not empty",
            "normalization": {"default": "unit (x / 255)",
                              "minmax": f"per-pixel (x - min) / (max - min) over all splits, "
                                        f"from {records.MINMAX}; constant pixels -> 0"},
            "splits": splits_meta,
            "label_names": list(loaded.label_names),
            "attribute_names": list(loaded.attribute_names),
            "preprocessing": dict(loaded.preprocessing, format=found.fmt),
            "skipped": {"count": len(loaded.skipped),
                        "examples": [f"{w}: {r}" for w, r in loaded.skipped[:20]]},
            "settings": settings,
            "sources": sources,
            "build_seconds": round(time.time() - t0, 2),
        }
        if before_metadata is not None:
            before_metadata(tmp)
        meta.update(extra or {})
        meta["build_seconds"] = round(time.time() - t0, 2)
        io_utils.write_json(tmp / records.METADATA, meta)
    return meta


def ensure(dataset, image_size=None, *, data_dir=None, records_dir=None, limit=None) -> Path:
    """Build the records if needed and return their folder."""
    build(dataset, data_dir=data_dir, records_dir=records_dir, image_size=image_size, limit=limit,
          progress=False)
    return records_path(dataset, image_size, records_dir, limit)


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_list("dataset", None, f"dataset(s) to build: {', '.join(DATASETS)} (or 'all')")
    flags.DEFINE_string("data_dir", None, f"raw data folder (default ${paths.DATA_DIR_ENV} or "
                        f"{paths.DEFAULT_DATA_DIR})")
    flags.DEFINE_string("records_dir", None, f"records folder (default ${paths.RECORDS_DIR_ENV} "
                        f"or {paths.DEFAULT_RECORDS_DIR})")
    flags.DEFINE_integer("image_size", None, "output side in pixels (default: the dataset's)")
    flags.DEFINE_boolean("force", False, "rebuild even if the records are up to date")
    flags.DEFINE_enum("source", None, list(SOURCES), "raw files (default) or a prepared TFDS dataset")
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data dir holding prepared mnist/cifar10/celeb_a")
    flags.DEFINE_boolean("skip_corrupt", False, "skip undecodable single images (counted)")
    flags.DEFINE_integer("limit", None, "keep only the first N images per split (testing)")
    flags.DEFINE_boolean("download", False, "download missing MNIST/CIFAR-10 files first")
    flags.mark_flag_as_required("dataset")
    FLAGS = flags.FLAGS

    def run(_):
        names = list(DATASETS) if FLAGS.dataset == ["all"] else FLAGS.dataset
        for name in names:
            for row in build(name, data_dir=FLAGS.data_dir, records_dir=FLAGS.records_dir,
                             image_size=FLAGS.image_size, force=FLAGS.force,
                             source=FLAGS.source, tfds_data_dir=FLAGS.tfds_data_dir,
                             limit=FLAGS.limit, skip_corrupt=FLAGS.skip_corrupt,
                             download=FLAGS.download):
                print(json.dumps(row), flush=True)
        return 0

    from tfminv import cli

    cli.run(run, argv=argv)  # a TfminvError prints one line and exits 2, like every binary


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
