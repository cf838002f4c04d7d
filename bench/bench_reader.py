"""Reader throughput per dataset: one JSON line each for the tf.data pipeline and load_split.

    python bench/bench_reader.py [--datasets=mnist,cifar10,...] [--records_dir=DIR] [--batch=256]

Records must be built (or buildable from $TFMINV_DATA_DIR). tf.data: one full epoch of
read_records -> make_batches(shuffle) -> iterate; load_split: whole split into memory.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CASES = {"mnist": ("train", None), "cifar10": ("all", 32), "cifar10_64": ("all", 64),
         "celeba": ("train", None), "facescrub": ("all", None), "att_faces": ("all", None)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(CASES))
    ap.add_argument("--records_dir", default=None)
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()

    from tfminv.data import load_split, make_batches, read_records

    for case in args.datasets.split(","):
        split, size = CASES[case]
        name = case.split("_64")[0]
        kw = dict(image_size=size, records_dir=args.records_dir, data_dir=args.data_dir)
        ds = make_batches(read_records(name, split, **kw), args.batch, shuffle=True, seed=0)
        for _ in ds.take(1):
            pass  # warm-up (graph tracing, file open)
        t0, n = time.perf_counter(), 0
        for x, _ in ds:
            n += int(x.shape[0])
        t_tfdata = time.perf_counter() - t0
        t0 = time.perf_counter()
        s = load_split(name, split, **kw)
        t_load = time.perf_counter() - t0
        print(json.dumps({"dataset": name, "split": split, "size": s.image_size, "count": n,
                          "tfdata_images_per_s": round(n / t_tfdata),
                          "tfdata_seconds": round(t_tfdata, 2),
                          "load_split_images_per_s": round(len(s) / t_load),
                          "load_split_seconds": round(t_load, 2)}), flush=True)


if __name__ == "__main__":
    main()
