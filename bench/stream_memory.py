"""Peak memory of an inverter training run as the auxiliary set grows: streamed vs in memory.

    python bench/stream_memory.py --sizes=10000,50000,200000 --steps=40 --memory_sizes=10000,50000

Each measurement is a fresh process (peak RSS is per process): the CelebA records (10,000 faces,
64x64; repeated to reach sizes above that, `StreamedImages(repeat=r)`) are queried in chunks
through `query_cached` (a fixed random-projection "target", so no classifier has to be trained)
and a face inverter (width --width) trains for --steps steps of batch 128 on
`inverter_dataset` (tf.data from the records, 10,000-element shuffle buffer, prefetch).
`--memory_sizes` runs the in-memory path (images materialised as float32 arrays, `fit` on
NumPy) for contrast. Prints one JSON line per run: size, mode, peak RSS (MiB), RSS after the
queries, query and training seconds. Needs $TFMINV_DATA_DIR (CelebA) and builds records in
$TFMINV_RECORDS_DIR if missing.

    python bench/stream_memory.py --scenario --sizes=10000,50000,200000 --memory_sizes=10000 --steps=20

    python bench/stream_memory.py --scenario --dataset=celeba_ids --aux=public --sizes=0 \
        --memory_sizes=0 --steps=20

`--scenario` measures the scenario layer instead (`tfminv.scenarios.base`, what the binaries'
`--stream_aux` runs): `prepare` of the FaceScrub allocation with the CelebA auxiliary set
('generic', repeated as above) against the allocation's own target classifier (width --width,
trained once on --max_train images in a warm-up process and cached; --dataset / --aux name
another allocation and set, e.g. the 55,210 pooled public faces of celeba_ids, where a size of
0 means the whole set), `reference_mses` (the mean-aux baseline), `selection_data` (aux_val
hold-out), --steps inverter training steps on the training rows, then the victims inverted and
judged (as a run ends). "memory" runs the same with stream_aux off (sizes up to the 10,000
records).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_list("sizes", ["10000", "50000", "200000"], "auxiliary set sizes (streamed)")
flags.DEFINE_list("memory_sizes", ["10000", "50000"], "sizes for the in-memory path")
flags.DEFINE_integer("steps", 40, "training steps (batch 128) per run")
flags.DEFINE_float("width", 0.25, "inverter width multiplier")
flags.DEFINE_integer("threads", 2, "TensorFlow intra-op threads")
flags.DEFINE_string("out", "", "also append the JSON lines to this file")
flags.DEFINE_bool("scenario", False, "measure the scenario layer (prepare, baselines, selection, "
                  "training) with stream_aux instead of the bare library path")
flags.DEFINE_integer("max_train", 600, "--scenario: target classifier training images")
flags.DEFINE_string("dataset", "facescrub", "--scenario: the allocation")
flags.DEFINE_string("aux", "generic", "--scenario: its auxiliary set; 'generic' (CelebA) is "
                    "repeated to reach sizes above its 10,000 records, any other set (e.g. "
                    "celeba_ids' 'public' pool) is capped at the size, 0 meaning all of it")
flags.DEFINE_string("cache", "", "internal: shared classifier cache of the --scenario runs")
flags.DEFINE_string("_worker", "", "internal: run one measurement (mode:size)")
FLAGS = flags.FLAGS

CELEBA = 10000  # records in the bundled CelebA copy


def _probs(images):
    """A fixed 'target': softmax of a seeded random projection of the pixels (12 classes)."""
    import numpy as np

    w = np.random.default_rng(0).normal(size=(images[0].size, 12)).astype(np.float32) / 16
    logits = images.reshape(len(images), -1) @ w
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def worker(mode: str, size: int) -> dict:
    import common  # bench/common.py

    tf = common.setup_tf(FLAGS.threads)
    import numpy as np

    from tfminv.attacks.predictions import query_cached
    from tfminv.data import allocations
    from tfminv.data.streaming import StreamedImages, inverter_dataset
    from tfminv.models import build_inverter
    from tfminv.oracles.base import CallableOracle

    repeat = -(-size // CELEBA)
    ref = allocations.SplitRef("celeba", "train", 64, seed=None, limit=size)
    cache = tempfile.mkdtemp(prefix="tfminv-bench-cache-")
    oracle = CallableOracle(_probs, batch_size=512, name="bench-projection")
    t0 = time.perf_counter()
    if mode == "streamed":
        images = StreamedImages.from_ref(ref, repeat=repeat)
        preds = query_cached(oracle, images, cache)
        ds = inverter_dataset(preds, images, common.BATCH, seed=1)
    else:
        one = allocations.materialize(ref).images
        x = np.concatenate([one] * repeat)[:size] if repeat > 1 else one
        preds = query_cached(oracle, x, cache)
        ds = tf.data.Dataset.from_tensor_slices((preds, x)).shuffle(10000, seed=1) \
            .batch(common.BATCH).prefetch(tf.data.AUTOTUNE)
    n = len(preds)
    t_query = time.perf_counter() - t0
    rss_after_query = common.rss_mb()
    model = build_inverter(12, 64, FLAGS.width, k=12)
    model.compile(optimizer="adam", loss="mse")
    t1 = time.perf_counter()
    model.fit(ds.repeat(), steps_per_epoch=FLAGS.steps, epochs=1, verbose=0)
    t_train = time.perf_counter() - t1
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    return {"bench": "stream_memory", "mode": mode, "size": n, "steps": FLAGS.steps,
            "batch": common.BATCH, "width": FLAGS.width,
            "peak_rss_mb": round(common.peak_rss_mb(), 1),
            "rss_after_queries_mb": round(rss_after_query, 1),
            "query_s": round(t_query, 1), "train_s": round(t_train, 1),
            "images_per_s": round(FLAGS.steps * common.BATCH / t_train, 1),
            "load_avg_1m": round(os.getloadavg()[0], 1)}


def scenario_worker(mode: str, size: int) -> dict:
    """prepare + reference_mses + selection_data + a few training steps, stream_aux per mode."""
    import common  # bench/common.py

    tf = common.setup_tf(FLAGS.threads)
    import shutil

    from tfminv.data import streaming
    from tfminv.data.streaming import inverter_dataset
    from tfminv.models import build_inverter
    from tfminv.scenarios import base

    repeat = -(-size // CELEBA) if size and FLAGS.aux == "generic" else 1
    if repeat > 1:  # larger sets: the CelebA records repeated (the allocation knows no repeat)
        from_ref = streaming.StreamedImages.from_ref.__func__
        streaming.StreamedImages.from_ref = classmethod(
            lambda cls, ref, **kw: from_ref(cls, ref, repeat=repeat, **kw))
    if mode == "memory" and size > CELEBA and FLAGS.aux == "generic":
        raise SystemExit(f"--memory_sizes: at most {CELEBA} in --scenario mode")
    # every run queries afresh; the classifiers stay cached from the warm-up
    shutil.rmtree(os.path.join(FLAGS.cache, "predictions"), ignore_errors=True)
    config = base.ScenarioConfig(dataset=FLAGS.dataset, aux=FLAGS.aux,
                                 max_aux=100 if mode == "warm" else size,
                                 max_train=FLAGS.max_train, max_victims=200, width=FLAGS.width,
                                 epochs=1, clf_epochs=1, batch_size=common.BATCH, verbose=0,
                                 cache_dir=FLAGS.cache, stream_aux=(mode == "streamed"))
    t0 = time.perf_counter()
    s = base.prepare(config)
    t_prepare = time.perf_counter() - t0
    rss_after_prepare = common.rss_mb()
    if mode == "warm":
        return {"bench": "stream_memory_scenario", "mode": "warm-up (classifiers)",
                "seconds": round(t_prepare, 1)}
    refs = base.reference_mses(s)
    tr_preds, tr_images, val, _ = base.selection_data(s)
    t_select = time.perf_counter() - t0 - t_prepare
    m = s.num_outputs
    if mode == "streamed":
        ds = inverter_dataset(tr_preds, tr_images, common.BATCH, seed=1)
    else:
        ds = tf.data.Dataset.from_tensor_slices((tr_preds, tr_images)).shuffle(10000, seed=1) \
            .batch(common.BATCH).prefetch(tf.data.AUTOTUNE)
    model = build_inverter(m, 64, FLAGS.width, k=m)
    model.compile(optimizer="adam", loss="mse")
    t1 = time.perf_counter()
    model.fit(ds.repeat(), steps_per_epoch=FLAGS.steps, epochs=1, verbose=0,
              validation_data=val)
    t_train = time.perf_counter() - t1
    # the run's last step: invert the victims and judge the reconstructions (its features of
    # the target's training images are computed here, after training)
    t2 = time.perf_counter()
    recon = model.predict(s.victim_preds, batch_size=256, verbose=0)
    s.judge(recon, s.victims.labels)
    t_judge = time.perf_counter() - t2
    return {"bench": "stream_memory_scenario", "mode": mode, "size": len(s.aux_set),
            "n_train": len(tr_preds), "n_val": len(val[0]), "queries": s.oracle.num_queries,
            "steps": FLAGS.steps, "width": FLAGS.width,
            "peak_rss_mb": round(common.peak_rss_mb(), 1),
            "rss_after_prepare_mb": round(rss_after_prepare, 1),
            "mse_mean_aux": round(refs["mse_mean_aux"], 5),
            "prepare_s": round(t_prepare, 1), "baseline_and_selection_s": round(t_select, 1),
            "train_s": round(t_train, 1), "judge_s": round(t_judge, 1),
            "load_avg_1m": round(os.getloadavg()[0], 1)}


def main(argv):
    if FLAGS._worker:
        mode, size = FLAGS._worker.split(":")
        run = scenario_worker if FLAGS.scenario else worker
        print(json.dumps(run(mode, int(size))), flush=True)
        return 0
    runs = [("streamed", int(s)) for s in FLAGS.sizes] + \
        [("memory", int(s)) for s in FLAGS.memory_sizes]
    extra = []
    if FLAGS.scenario:
        cache = tempfile.mkdtemp(prefix="tfminv-bench-scenario-")
        extra = ["--scenario", f"--cache={cache}", f"--max_train={FLAGS.max_train}",
                 f"--dataset={FLAGS.dataset}", f"--aux={FLAGS.aux}"]
        runs = [("warm", 0)] + runs
    for mode, size in runs:
        cmd = [sys.executable, os.path.abspath(__file__), f"--_worker={mode}:{size}",
               f"--steps={FLAGS.steps}", f"--width={FLAGS.width}", f"--threads={FLAGS.threads}",
               *extra]
        res = subprocess.run(cmd, capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if res.returncode != 0:
            print(json.dumps({"bench": "stream_memory", "mode": mode, "size": size,
                              "error": res.stderr.strip().splitlines()[-1:]}), flush=True)
            continue
        line = res.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        if FLAGS.out:
            with open(FLAGS.out, "a") as f:
                f.write(line + "\n")
    if FLAGS.scenario:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    app.run(main)
