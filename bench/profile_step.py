"""Where a tfminv training step spends its time, and whether tfminv's fast layers pay off per shape.

Default mode: trace `--steps` train_on_batch calls of one model under TensorFlow's profiler and
print one JSON line per op category (each conv layer's forward / input-gradient / filter-gradient
kernel, batch norm, optimiser, pooling, ...) with milliseconds per step and share of the step.
`--layers`: for every conv layer shape of the paper's four models, time forward + backward of
the Keras layer against tfminv's layer of the same name (same weights), in the same process.

    python bench/profile_step.py --model face_classifier --policy mixed_bfloat16
    python bench/profile_step.py --model face_inverter --keras_layers   # stock Keras layers
    python bench/profile_step.py --layers --policy mixed_bfloat16
    python bench/profile_step.py --layers --force_matmul_grad   # matmul kernel gradient everywhere
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import tempfile
import time

import common


def _build(model_name, width, keras_layers):
    from tfminv.models import build_classifier, build_inverter
    kind, m, size = common.MODELS[model_name]
    build = build_classifier if kind == "classifier" else build_inverter
    with common.stock_keras_layers(keras_layers):
        return build(m, size, width), kind, m, size


def _category(path, op):
    op = op.replace("_MklNative", "").replace("_Mkl", "")
    layer = re.search(r"/((?:de)?conv\d|to_image|fc1|logits|bn\d)", path)
    layer = layer.group(1) if layer else ""
    if layer.startswith("bn") or "batch_norm" in path.lower():
        return "batch norm (all ops)"
    if "Conv" in op or layer.startswith(("conv", "deconv", "to_image")) and "MatMul" in op:
        return f"{layer} {op}"
    if "MatMul" in op:
        return "dense / matmul"
    if any(s in path for s in ("adam", "Adam", "AddN", "tmp_var")) or "Assign" in op:
        return "optimizer"
    if "Pool" in op:
        return "pooling"
    return "other"


def profile_model(a):
    tf = common.setup_tf(a.threads)
    import keras
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    keras.utils.set_random_seed(1)
    keras.mixed_precision.set_global_policy(a.policy)
    model, kind, m, size = _build(a.model, a.width, a.keras_layers)
    if kind == "classifier":
        x = tf.random.uniform((a.batch, size, size, 1))
        y = tf.random.uniform((a.batch,), 0, m, dtype=tf.int64)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        x, y, loss = tf.random.uniform((a.batch, m)), tf.random.uniform((a.batch, size, size, 1)), "mse"
    model.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, amsgrad=True), loss=loss)
    for _ in range(2):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(a.steps):
        model.train_on_batch(x, y)
    step_s = (time.perf_counter() - t) / a.steps
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(a.steps):
            model.train_on_batch(x, y)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as f:
            space.ParseFromString(f.read())
    ms = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for e in line.events:
                name = plane.event_metadata[e.metadata_id].name
                if ":" in name and not name.startswith("ExecutorState"):
                    ms[_category(*name.rsplit(":", 1))] += e.duration_ps / 1e9 / a.steps
    total = sum(ms.values())
    base = {"bench": "profile_step", "model": a.model, "policy": a.policy, "batch": a.batch,
            "layers": "keras" if a.keras_layers else "tfminv", "step_s": round(step_s, 4),
            "op_ms_total": round(total, 1)}
    for cat, v in ms.most_common():
        common.emit({**base, "category": cat, "ms": round(v, 2), "share": round(v / total, 4)})


# (name, layer kind, input shape without batch, layer kwargs): the paper's conv shapes
def _shapes():
    out = []
    for family, size, chans in (("face", 64, (128, 256, 512, 1024)), ("digit", 32, (128, 256, 512))):
        cin, s = 1, size
        for i, ch in enumerate(chans):
            out.append((f"{family}_classifier.conv{i}", "conv", (s, s, cin), dict(filters=ch)))
            cin, s = ch, s // 2
        rev = chans[::-1]
        out.append((f"{family}_inverter.deconv0", "convt", (1, 1, 12 if family == "face" else 5),
                    dict(filters=rev[0], strides=1, padding="valid")))
        s = 4
        for i in range(1, len(rev)):
            out.append((f"{family}_inverter.deconv{i}", "convt", (s, s, rev[i - 1]),
                        dict(filters=rev[i], strides=2, padding="same")))
            s *= 2
        out.append((f"{family}_inverter.to_image", "convt", (s, s, rev[-1]),
                    dict(filters=1, strides=2, padding="same")))
    return out


def profile_layers(a):
    tf = common.setup_tf(a.threads)
    import keras
    from tfminv.models import fast_layers

    keras.mixed_precision.set_global_policy(a.policy)
    if a.force_matmul_grad:  # every layer, every dtype: to see where the rule should draw the line
        fast_layers._use_matmul_grad = lambda *args, **kwargs: True
    for name, kind, shape, kw in _shapes():
        kw = {"kernel_size": 3 if kind == "conv" else 4, "padding": "same", **kw}
        stock, fast = ((keras.layers.Conv2D, fast_layers.Conv2D) if kind == "conv"
                       else (keras.layers.Conv2DTranspose, fast_layers.Conv2DTranspose))
        x = tf.random.uniform((a.batch, *shape))
        times = {}
        for label, cls in (("keras", stock), ("tfminv", fast)):
            layer = cls(**kw)
            layer.build((a.batch, *shape))

            @tf.function
            def step(x, layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = layer(x)
                    loss = tf.reduce_sum(tf.cast(y, tf.float32))
                return tape.gradient(loss, [x, *layer.trainable_variables])
            for _ in range(2):
                step(x)
            ts = []
            for _ in range(a.reps):
                t = time.perf_counter()
                [g.numpy() for g in step(x)]
                ts.append(time.perf_counter() - t)
            times[label] = sorted(ts)[len(ts) // 2]
        common.emit({"bench": "layer_fwd_bwd", "layer": name, "policy": a.policy, "batch": a.batch,
                     "input": list(shape), **{k: v for k, v in kw.items() if k == "filters"},
                     "keras_ms": round(1e3 * times["keras"], 2),
                     "tfminv_ms": round(1e3 * times["tfminv"], 2),
                     "speedup": round(times["keras"] / times["tfminv"], 3)})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="face_classifier", choices=sorted(common.MODELS))
    p.add_argument("--policy", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16"])
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=common.BATCH)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per layer (--layers)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--keras_layers", action="store_true",
                   help="build the model with stock Keras conv / batch-norm layers")
    p.add_argument("--layers", action="store_true", help="per-layer Keras vs tfminv timing")
    p.add_argument("--force_matmul_grad", action="store_true",
                   help="--layers: use the per-tap matmul kernel gradient on every layer")
    a = p.parse_args(argv)
    a.threads = a.threads or os.cpu_count()
    (profile_layers if a.layers else profile_model)(a)


if __name__ == "__main__":
    main()
