"""Do two runs of the same training give the same weights? Default vs deterministic mode,
and what else changes them (the layer implementation, the thread count, the seed).

    python bench/determinism.py [--dataset=mnist|facescrub] [--runs=2] [--max_train=2000]
        [--epochs=2] [--width=0.25] [--seed=1] [--modes=default,deterministic,stock_layers,threads1]

Each run is a fresh process that trains the allocation's target classifier exactly as the
scenarios do (`tfminv.training.targets.get_or_train_classifier`, empty cache) and prints a
SHA-256 of its weights and of its logits on the allocation's test images, with the test
accuracy; per mode, a line says whether the runs agree bit for bit. Modes: default; deterministic
(`tfminv.determinism.enable`); stock_layers (Keras' own Conv2D/BatchNormalization instead of
tfminv.models.fast_layers, i.e. the code before them, under the same cache key); threads1 (one
intra/inter-op thread). Needs $TFMINV_DATA_DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time


def one(args):
    import dataclasses

    import numpy as np
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from tfminv import determinism
    from tfminv.data import allocations
    from tfminv.training import TrainConfig, targets

    if args.deterministic:
        determinism.enable(args.seed)
    alloc = allocations.get(args.dataset)
    if args.max_train:
        alloc = dataclasses.replace(alloc, target_train=dataclasses.replace(
            alloc.target_train, limit=args.max_train))
    cfg = TrainConfig(epochs=args.epochs, batch_size=128, seed=args.seed, verbose=0,
                      precision=args.precision)
    ctx = contextlib.nullcontext()
    if args.stock_layers:  # the code before tfminv.models.fast_layers
        sys.path.insert(0, os.path.dirname(__file__))
        from common import stock_keras_layers

        ctx = stock_keras_layers()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, ctx:
        model, info = targets.get_or_train_classifier(alloc, width=args.width, config=cfg,
                                                      cache_dir=d)
        test = allocations.materialize(alloc.target_test)
        h = hashlib.sha256()
        for w in model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
        logits = model.predict(test.images, verbose=0)
    print(json.dumps({"dataset": args.dataset, "deterministic": args.deterministic,
                      "stock_layers": args.stock_layers, "threads": args.threads,
                      "seed": args.seed, "weights": h.hexdigest()[:16],
                      "outputs": hashlib.sha256(logits.tobytes()).hexdigest()[:16],
                      "test_acc": round(info["test_accuracy"], 4),
                      "seconds": round(time.perf_counter() - t0, 1)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="mnist", choices=["mnist", "facescrub"])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--max_train", type=int, default=2000, help="0: the whole target_train")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--precision", default="auto")
    p.add_argument("--modes", default="default,deterministic",
                   help="comma list of: default, deterministic, stock_layers, threads1")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--deterministic", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stock_layers", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return one(args)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for mode in args.modes.split(","):
        rows = []
        for _ in range(args.runs):
            cmd = [sys.executable, __file__, "--one", f"--dataset={args.dataset}",
                   f"--max_train={args.max_train}", f"--epochs={args.epochs}",
                   f"--width={args.width}", f"--seed={args.seed}",
                   f"--precision={args.precision}"]
            cmd += {"deterministic": ["--deterministic"], "stock_layers": ["--stock_layers"],
                    "threads1": ["--threads=1"]}.get(mode, [])
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        same = len({(r["weights"], r["outputs"]) for r in rows}) == 1
        print(f"{mode}: {args.runs} runs, identical weights and outputs: {same}", flush=True)


if __name__ == "__main__":
    main()
