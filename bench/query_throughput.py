"""Queries per second against the TF-Serving-protocol test server for 1, 4 and 16 requests in flight.

    python bench/query_throughput.py --concurrency=1,4,16 --protocols=rest,grpc --latency_ms=0,20

A face classifier (64x64 greyscale, 12 classes, width --width, untrained: serving cost does not
depend on the weights) is exported in TF Serving's layout and served by
`tfminv.serving.testing_server.ModelServer` on 127.0.0.1 in this process. `--latency_ms` adds a
fixed wait to every request on the server (a stand-in for a remote target's network and queueing
time; 0 = loopback only). For each protocol, latency and concurrency, `from_spec(...,
concurrency=c)` queries --n images in requests of --batch images; prints one JSON line with
images/s and requests/s (median of --repeats timed calls after one warm-up call).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_list("concurrency", ["1", "4", "16"], "requests in flight")
flags.DEFINE_list("protocols", ["rest", "grpc"], "rest and/or grpc")
flags.DEFINE_list("latency_ms", ["0", "20"], "server-side wait per request (simulated network)")
flags.DEFINE_integer("n", 512, "images per timed call")
flags.DEFINE_integer("batch", 16, "images per request")
flags.DEFINE_integer("repeats", 3, "timed calls per setting (median reported)")
flags.DEFINE_float("width", 0.25, "classifier width multiplier")
flags.DEFINE_integer("threads", 2, "TensorFlow intra-op threads")
flags.DEFINE_string("out", "", "also append the JSON lines to this file")
FLAGS = flags.FLAGS


def main(argv):
    import common  # bench/common.py

    common.setup_tf(FLAGS.threads)
    import numpy as np

    from tfminv import export
    from tfminv.models import build_classifier
    from tfminv.oracles import from_spec
    from tfminv.serving.testing_server import ModelServer

    base = tempfile.mkdtemp(prefix="tfminv-bench-serving-")
    export.export_classifier(build_classifier(12, 64, FLAGS.width, name="target"), base, "target")
    export.write_models_config(base)
    wait = {"s": 0.0}
    server = ModelServer(model_config_file=os.path.join(base, "models.config"),
                         hook=lambda protocol, name: time.sleep(wait["s"])).start()
    images = np.random.default_rng(0).random((FLAGS.n, 64, 64, 1), dtype=np.float32)
    try:
        for protocol in FLAGS.protocols:
            spec = (f"rest:{server.rest_url('target')}" if protocol == "rest"
                    else f"grpc:{server.grpc_target('target')}")
            for lat in FLAGS.latency_ms:
                wait["s"] = float(lat) / 1000
                for c in FLAGS.concurrency:
                    oracle = from_spec(spec, concurrency=int(c), batch_size=FLAGS.batch)
                    oracle(images[:FLAGS.batch * int(c)])  # warm-up: connections, tracing
                    times = []
                    for _ in range(FLAGS.repeats):
                        t0 = time.perf_counter()
                        out = oracle(images)
                        times.append(time.perf_counter() - t0)
                    assert out.shape == (FLAGS.n, 12)
                    t = statistics.median(times)
                    rec = {"bench": "query_throughput", "protocol": protocol,
                           "latency_ms": float(lat), "concurrency": int(c),
                           "batch": FLAGS.batch, "n": FLAGS.n,
                           "images_per_s": round(FLAGS.n / t, 1),
                           "requests_per_s": round(FLAGS.n / FLAGS.batch / t, 1),
                           "seconds": [round(x, 3) for x in times],
                           "threads": FLAGS.threads, "cpus": os.cpu_count(),
                           "load_avg_1m": round(os.getloadavg()[0], 1)}
                    print(json.dumps(rec), flush=True)
                    if FLAGS.out:
                        with open(FLAGS.out, "a") as f:
                            f.write(json.dumps(rec) + "\n")
    finally:
        server.stop()
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    app.run(main)
