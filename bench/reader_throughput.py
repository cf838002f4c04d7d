"""Input pipeline throughput against the fastest training step: does reading ever starve training?

For each training dataset of the four models (FaceScrub for the face classifier, CelebA for the
face inverter, MNIST for the digit models), at the models' image size:
- `records`: the built TFRecords through `tfminv.data.read_records` -> `make_batches` (batch 128,
  seeded shuffle, repeat, prefetch), the tf.data pipeline of the library;
- `memory`: the same images already in memory (`load_split`) through tf.data from_tensor_slices,
  the path `tfminv.training.fit` takes (Keras' array adapter batches in-memory arrays).
Images per second over at least `--seconds` after 2 warm-up batches. With `--train_results`
(JSON lines of bench/train_throughput.py) each line is also divided by the fastest training
step of a model with the same image size: the goal is a ratio of at least 10.

    python bench/reader_throughput.py [--datasets facescrub,celeba,mnist] [--train_results FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import common

# dataset -> (split, image size, models it feeds)
CASES = {
    "facescrub": ("all", 64, "face classifier"),
    "celeba": ("train", 64, "face inverter (generic auxiliary set)"),
    "mnist": ("train", 32, "digit classifier and inverter"),
    "cifar10": ("all", 32, "digit inverter (distinct auxiliary set)"),
}


def images_per_second(ds, seconds: float, batch: int) -> tuple[float, int]:
    """Iterate a repeated batched dataset for `seconds` after 2 warm-up batches."""
    it = iter(ds)
    for _ in range(2):
        next(it)
    n, t0 = 0, time.perf_counter()
    while True:
        x, _ = next(it)
        n += int(x.shape[0])
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 4 * batch:
            return n / dt, n


def fastest_training(paths) -> dict:
    """image_size -> (images/s, model, framework, variant) of the fastest tfminv training step."""
    best = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                if not str(r.get("bench", "")).startswith("train_step") or r.get("framework") != "tfminv":
                    continue
                size = r["image_size"]
                if size not in best or r["images_per_s"] > best[size][0]:
                    best[size] = (r["images_per_s"], r["model"], r["variant"])
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="facescrub,celeba,mnist",
                   help="comma-separated, from " + ", ".join(CASES))
    p.add_argument("--batch", type=int, default=common.BATCH)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--records_dir", default=None, help="built records (default $TFMINV_RECORDS_DIR)")
    p.add_argument("--data_dir", default=None, help="raw data, to build missing records")
    p.add_argument("--train_results", action="append", default=[],
                   help="JSON lines of bench/train_throughput.py (repeatable)")
    p.add_argument("--quick", action="store_true", help="facescrub and mnist, 1 s each")
    a = p.parse_args(argv)
    if a.quick:
        a.datasets, a.seconds = "facescrub,mnist", 1.0
    tf = common.setup_tf(a.threads)
    from tfminv.data import load_split, make_batches, read_records

    train = fastest_training(a.train_results)
    common.emit({"bench": "config", "script": "reader_throughput", "datasets": a.datasets,
                 "batch": a.batch, "threads": a.threads, "machine": common.machine_info(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for name in a.datasets.split(","):
        if name not in CASES:
            p.error(f"--datasets: unknown {name!r}; expected some of {', '.join(CASES)}")
        split, size, feeds = CASES[name]
        kw = dict(image_size=size, records_dir=a.records_dir, data_dir=a.data_dir)
        t0 = time.perf_counter()
        rec = read_records(name, split, **kw)  # builds the records when missing
        build_s = time.perf_counter() - t0
        s = load_split(name, split, **kw)
        pipelines = {
            "records": make_batches(rec, a.batch, shuffle=True, seed=0, repeat=True),
            "memory": tf.data.Dataset.from_tensor_slices((s.images, s.labels))
                        .shuffle(10000, seed=0).repeat().batch(a.batch).prefetch(tf.data.AUTOTUNE),
        }
        for how, ds in pipelines.items():
            rate, n = images_per_second(ds, a.seconds, a.batch)
            out = {"bench": "reader", "dataset": name, "split": split, "image_size": size,
                   "feeds": feeds, "pipeline": how, "images": len(s), "images_timed": n,
                   "images_per_s": rate, "batch": a.batch, "threads": a.threads,
                   "records_ready_s": build_s}
            if size in train:
                ips, model, variant = train[size]
                out.update(fastest_training_images_per_s=ips, fastest_training=f"{model} {variant}",
                           ratio_to_training=rate / ips)
            common.emit(out)


if __name__ == "__main__":
    main()
