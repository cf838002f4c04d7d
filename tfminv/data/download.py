"""Download MNIST and CIFAR-10 from their official locations, verifying checksums; rebuild
FaceScrub from its official lists (see `tfminv.data.facescrub_lists`).

    python -m tfminv.data.download --dataset=mnist [--data_dir=DIR]
    python -m tfminv.data.download --dataset=facescrub --lists=ACTORS.txt,ACTRESSES.txt

Files are streamed to a temporary name and renamed only after the checksum matches. The network
timeout is short (10 s); offline, one line says which files to put where.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tfminv import io_utils, paths
from tfminv.errors import ConfigError, DataError

TIMEOUT_S = 10.0

# MNIST: the published SHA256 of each *uncompressed* official file is checked, so any faithful
# mirror (gzip headers differ between mirrors) is accepted.
MNIST_BASE = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
CIFAR10_BASE = "https://www.cs.toronto.edu/~kriz/"
CIFAR10_FILES = {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}  # MD5 (official)

DOWNLOADABLE = {
    "mnist": ("mnist", MNIST_BASE, MNIST_FILES, "sha256-gunzipped"),
    "cifar10": ("cifar10", CIFAR10_BASE, CIFAR10_FILES, "md5"),
}


def _digest(path: Path, kind: str) -> str:
    if kind == "sha256-gunzipped":
        try:
            with gzip.open(path, "rb") as f:
                h = hashlib.sha256()
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                return h.hexdigest()
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: truncated or corrupt gzip ({e}); expected a complete "
                            "gzip file") from e
    h = hashlib.new(kind)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, dest, *, checksum: str, kind: str = "sha256",
          timeout: float = TIMEOUT_S, hint: str = "") -> Path:
    """Download url to dest atomically; DataError on network failure or checksum mismatch."""
    dest = Path(dest)
    try:
        with io_utils.atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
            got = _digest(tmp, kind)
            if got != checksum:
                raise DataError(f"{url}: {kind} checksum {got}, expected {checksum}; the download "
                                f"is corrupt or not the official file (nothing written to {dest})")
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        if isinstance(e, DataError):
            raise
        reason = getattr(e, "reason", e)
        raise DataError(f"cannot download {url} ({reason}; timeout {timeout:g} s): offline? "
                        f"{hint or f'put {dest.name} in {dest.parent}'}") from e
    return dest


def download(dataset: str, *, data_dir=None, base_url: str | None = None,
             timeout: float = TIMEOUT_S) -> list[Path]:
    """Fetch a dataset's official files into <data_dir>/<folder>/, skipping verified ones."""
    if dataset not in DOWNLOADABLE:
        raise ConfigError(f"dataset {dataset!r} cannot be downloaded; expected one of "
                          f"{sorted(DOWNLOADABLE)} (others must be placed by hand: see datasets/)")
    folder_name, base, files, kind = DOWNLOADABLE[dataset]
    folder = paths.data_dir(data_dir) / folder_name
    base = base_url or base
    hint = f"put {', '.join(files)} in {folder}"
    out = []
    for name, checksum in files.items():
        dest = folder / name
        if dest.is_file():
            try:
                if _digest(dest, kind) == checksum:
                    out.append(dest)
                    continue
            except DataError:
                pass
        out.append(fetch(base.rstrip("/") + "/" + name, dest, checksum=checksum, kind=kind,
                         timeout=timeout, hint=hint))
    return out


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_enum("dataset", None, sorted(DOWNLOADABLE) + ["facescrub"],
                      "dataset to download")
    flags.DEFINE_string("data_dir", None, f"raw data folder (default ${paths.DATA_DIR_ENV})")
    flags.DEFINE_float("timeout", None, f"network timeout in seconds (default {TIMEOUT_S:g}; "
                       "facescrub: 5 per image)")
    flags.DEFINE_list("lists", [], "facescrub: the official list files (facescrub_actors.txt, "
                      "facescrub_actresses.txt)")
    flags.DEFINE_integer("workers", 8, "facescrub: parallel downloads")
    flags.mark_flag_as_required("dataset")
    FLAGS = flags.FLAGS

    def run(_):
        if FLAGS.dataset == "facescrub":
            from tfminv.data import facescrub_lists as fl

            rep = fl.download_facescrub(FLAGS.lists, data_dir=FLAGS.data_dir,
                                        timeout=FLAGS.timeout or fl.TIMEOUT_S,
                                        workers=FLAGS.workers, progress=sys.stderr.isatty())
            print(json.dumps({"folder": rep["folder"], "rows": rep["rows"], **rep["counts"]}))
            return 0
        for p in download(FLAGS.dataset, data_dir=FLAGS.data_dir,
                          timeout=FLAGS.timeout or TIMEOUT_S):
            print(p)
        return 0

    from tfminv import cli

    cli.run(run, argv=argv)  # a TfminvError prints one line and exits 2, like every binary


if __name__ == "__main__":
    main()
