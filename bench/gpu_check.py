"""Does the GPU path work, and how fast is it? One short run of the main job's training.

    bash bench/gpu_check.sh                 # on a machine with a GPU (a few minutes)
    bash bench/gpu_check.sh --cpu-dry-run   # the same code paths on CPU at toy sizes

The main job (FaceScrub-12 target, CelebA auxiliary set, top-10 release): the target classifier
is trained once (mixed_float16, XLA), the CelebA images are queried, then the inverter is
trained from the same seed in each variant:

  float32                         Keras float32, no XLA (the reference)
  mixed_float16                   float16 compute, float32 variables, no XLA
  mixed_float16+xla               the same with jit_compile=True
  mirrored+mixed_float16+xla      MirroredStrategy over every GPU (only when there are >= 2)

For each: training images/s (epochs after the first, which traces and compiles), peak GPU
memory (tf.config.experimental.get_memory_info), and the MSE of the reconstructions of the
held-out auxiliary images and of the victims. One JSON line per variant, then a table.
Without a GPU it stops with exit code 3 and says so, unless --cpu-dry-run (toy sizes, 2
logical CPUs for the mirrored variant, which then runs without XLA: XLA cannot place variables
on a second logical CPU; proves the script, not the GPU).
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_bool("cpu_dry_run", False, "run on CPU at toy sizes (checks the script only)")
flags.DEFINE_integer("epochs", 6, "inverter epochs per variant")
flags.DEFINE_integer("clf_epochs", 10, "target classifier epochs")
flags.DEFINE_float("width", 1.0, "width multiplier (1.0: the authors' models)")
flags.DEFINE_integer("batch_size", 128, "global batch size")
flags.DEFINE_integer("max_aux", 0, "use at most this many CelebA images (0: all)")
flags.DEFINE_string("variants", "", "comma-separated subset of the variants (default: all)")
FLAGS = flags.FLAGS

VARIANTS = ("float32", "mixed_float16", "mixed_float16+xla", "mirrored+mixed_float16+xla")


def _setup_devices(tf, dry_run: bool) -> list:
    gpus = tf.config.list_physical_devices("GPU")
    if dry_run:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        return []
    for g in gpus:
        tf.config.experimental.set_memory_growth(g, True)
    return gpus


class _EpochTimer:
    def __new__(cls):
        import keras

        class T(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self._t)

        return T()


def main(argv):
    dry = FLAGS.cpu_dry_run
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    gpus = _setup_devices(tf, dry)
    if not gpus and not dry:
        print("gpu_check: no GPU found (tf.config.list_physical_devices('GPU') is empty); "
              "nothing was run. Run it on a GPU machine, or pass --cpu-dry-run to check the "
              "script itself on CPU.", file=sys.stderr)
        return 3
    import keras
    import numpy as np

    from tfminv import metrics
    from tfminv.data import allocations
    from tfminv.models import build_classifier, build_inverter
    from tfminv.training.precision import policy_scope

    width = 0.0625 if dry else FLAGS.width
    epochs = 2 if dry else FLAGS.epochs
    clf_epochs = 1 if dry else FLAGS.clf_epochs
    max_aux = 512 if dry else FLAGS.max_aux
    bs = 32 if dry else FLAGS.batch_size
    alloc = allocations.get("facescrub")
    train = allocations.materialize(alloc.target_train if not dry else
                                    alloc.target_train.__class__(
                                        **{**alloc.target_train.__dict__, "limit": 256}))
    victims = allocations.materialize(alloc.victims)
    aux_ref = alloc.aux[alloc.default_aux]
    if max_aux:
        aux_ref = aux_ref.__class__(**{**aux_ref.__dict__, "limit": max_aux})
    aux = allocations.materialize(aux_ref).images
    m, size, k = alloc.num_classes, alloc.image_size, 10

    keras.utils.set_random_seed(1)
    with policy_scope("mixed_float16" if not dry else "float32"):
        clf = build_classifier(m, size, width, name="target")
        clf.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, amsgrad=True),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"], jit_compile=not dry)
    t0 = time.perf_counter()
    clf.fit(train.images, train.labels, batch_size=bs, epochs=clf_epochs, verbose=0)
    clf_s = time.perf_counter() - t0

    def probs(x):
        return np.asarray(keras.ops.softmax(clf.predict(x, batch_size=256, verbose=0)), np.float32)

    aux_p, vic_p = probs(aux), probs(victims.images)
    n_val = max(1, len(aux) // 10)
    tr_p, tr_x, va_p, va_x = aux_p[n_val:], aux[n_val:], aux_p[:n_val], aux[:n_val]
    print(json.dumps({"gpu_check": "setup", "devices": [g.name for g in gpus] or ["CPU (dry run)"],
                      "aux_train": len(tr_x), "victims": len(victims), "classifier_s":
                      round(clf_s, 1), "width": width, "batch_size": bs}), flush=True)

    wanted = [v for v in (FLAGS.variants.split(",") if FLAGS.variants else VARIANTS) if v]
    rows = []
    for variant in wanted:
        if variant not in VARIANTS:
            print(f"gpu_check: unknown variant {variant!r}; expected {VARIANTS}", file=sys.stderr)
            return 2
        mirrored = variant.startswith("mirrored")
        if mirrored and not dry and len(gpus) < 2:
            print(json.dumps({"gpu_check": variant, "skipped": f"{len(gpus)} GPU (needs >= 2)"}),
                  flush=True)
            continue
        precision = "float32" if variant == "float32" else "mixed_float16"
        jit = variant.endswith("xla")
        if dry and mirrored:
            # XLA cannot place a replica's variables on the second *logical* CPU ("Trying to
            # access resource ... located in device CPU:1"); real GPUs are separate devices
            jit = False
        strategy = (tf.distribute.MirroredStrategy(
            [d.name for d in (tf.config.list_logical_devices("GPU")
                              or tf.config.list_logical_devices("CPU"))])
            if mirrored else tf.distribute.get_strategy())
        for g in range(len(gpus)):
            tf.config.experimental.reset_memory_stats(f"GPU:{g}")
        keras.utils.set_random_seed(1)
        with strategy.scope(), policy_scope(precision):
            inv = build_inverter(m, size, width, k=k, name="inverter")
            inv.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, amsgrad=True),
                        loss="mse", jit_compile=jit)
        timer = _EpochTimer()
        inv.fit(tr_p, tr_x, batch_size=bs, epochs=epochs, shuffle=True, verbose=0,
                callbacks=[timer])
        steady = timer.times[1:] or timer.times
        ips = len(tr_x) / (sum(steady) / len(steady))
        peak = (sum(tf.config.experimental.get_memory_info(f"GPU:{g}")["peak"]
                    for g in range(len(gpus))) / 2**20) if gpus else None
        rec_val = inv.predict(va_p, batch_size=256, verbose=0)
        rec_vic = inv.predict(vic_p, batch_size=256, verbose=0)
        row = {"gpu_check": variant, "replicas": strategy.num_replicas_in_sync,
               "images_per_s": round(ips, 1), "first_epoch_s": round(timer.times[0], 1),
               "peak_gpu_mb": None if peak is None else round(peak, 1),
               "mse_aux_val": round(metrics.mse(rec_val, va_x), 5),
               "mse_victims": round(metrics.mse(rec_vic, victims.images), 5),
               "finite": bool(np.isfinite(rec_vic).all())}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| variant | replicas | images/s | peak GPU MiB | MSE aux val | MSE victims |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['gpu_check']} | {r['replicas']} | {r['images_per_s']} | "
              f"{r['peak_gpu_mb'] if r['peak_gpu_mb'] is not None else 'n/a (CPU)'} | "
              f"{r['mse_aux_val']} | {r['mse_victims']} |")
    bad = [r["gpu_check"] for r in rows if not r["finite"]]
    if bad:
        print(f"gpu_check: non-finite reconstructions in {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
