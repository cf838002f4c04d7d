"""Hostile requests against the in-process TF-Serving-protocol server, one JSON line per case.

    python bench/serving_hostile.py [--clients=20 --requests=50] [--scale=1]

Exports a tiny classifier (32x32x1 -> 10) and inverter (10 -> 32x32x1), starts
`python -m tfminv.serving.testing_server` in a child process on 127.0.0.1 (address space capped
with RLIMIT_AS so a case that materialises a huge tensor fails inside the child, not the machine),
and sends each case: oversized and hostile REST bodies, hostile gRPC TensorProtos, NaN inputs,
concurrent clients. Each line gives the outcome (HTTP status / gRPC code / "reset" / "no answer"),
the server's peak RSS after the case (VmHWM) and whether the server was still alive. The hostile
gRPC shape is scaled by `--scale` (1: [25e6, 5] floats, 500 MB if materialised); the server's own
check (when present) rejects even [1e9, 5] without allocating, which the last cases send.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def export_models(base: Path) -> None:
    import keras

    from tfminv import export
    from tfminv.models import build_classifier, build_inverter

    keras.utils.set_random_seed(0)
    export.export_classifier(build_classifier(10, 32, width=0.0625, name="t"), base, "target")
    export.export_inverter(build_inverter(10, 32, width=0.0625, k=3, name="i"), base, "inverter")
    export.write_models_config(base)


def start_server(base: Path, mem_gb: float, extra: list[str]):
    def limit():
        b = int(mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (b, b))

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "tfminv.serving.testing_server",
                          f"--model_config_file={base / 'models.config'}", "--port=0",
                          "--rest_api_port=0", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=limit)
    line = p.stdout.readline()
    m = re.search(r"gRPC on [\d.]+:(\d+), REST on http://[\d.]+:(\d+)", line)
    if not m:
        p.kill()
        raise SystemExit(f"server did not start: {line!r} {p.stderr.read()[-2000:]}")
    return p, int(m.group(1)), int(m.group(2))


def vm_hwm_mb(pid: int) -> float | None:
    try:
        txt = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(re.search(r"VmHWM:\s+(\d+)", txt).group(1)) / 1024


def rest(port, path, body: bytes, headers=None, timeout=60):
    """POST raw bytes; returns 'HTTP <status> <error...>' or 'reset'/'no answer'/'timeout'."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.putrequest("POST", path)
        hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            c.putheader(k, v)
        c.endheaders()
        c.send(body)
        r = c.getresponse()
        data = r.read()
        try:
            err = json.loads(data).get("error", "")
        except (ValueError, AttributeError):
            err = f"<non-JSON {len(data)} bytes>"
        return f"HTTP {r.status}" + (f" {err[:70]}" if err else "")
    except ConnectionResetError:
        return "reset"
    except (http.client.RemoteDisconnected, BrokenPipeError, http.client.IncompleteRead):
        return "no answer (connection closed)"
    except socket.timeout:
        return "timeout"
    finally:
        c.close()


def grpc_call(port, tensor, timeout=60):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    req = predict_pb2.PredictRequest()
    req.model_spec.name = "target"
    req.inputs["images"].CopyFrom(tensor)
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_send_message_length", 512 * 2**20)]) as ch:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=timeout)
            return "OK"
        except grpc.RpcError as e:
            return f"{e.code().name} {e.details()[:70]}"


def tensor(shape, dtype="DT_FLOAT", **fields):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    t = tensor_pb2.TensorProto(dtype=getattr(types_pb2, dtype))
    t.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in shape]))
    for k, v in fields.items():
        if isinstance(v, bytes):
            setattr(t, k, v)
        else:
            getattr(t, k).extend(v)
    return t


def concurrent(port, clients, requests, body):
    """`clients` threads, each sending `requests` predicts on fresh connections."""
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def worker():
        for _ in range(requests):
            o = rest(port, "/v1/models/target:predict", body, timeout=60)
            o = o.split(" ")[0] + (" " + o.split(" ")[1] if o.startswith("HTTP") else "")
            with lock:
                outcomes[o] = outcomes.get(o, 0) + 1

    ts = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())), time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--mem_gb", type=float, default=12.0, help="RLIMIT_AS of the server")
    ap.add_argument("--label", default="", help="recorded on every line (e.g. before/after)")
    ap.add_argument("--server_flags", default="", help="extra testing_server flags")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tfminv_hostile_"))
    export_models(tmp)
    img = np.random.default_rng(0).random((1, 32, 32, 1)).tolist()
    ok_body = json.dumps({"instances": img}).encode()
    nan_body = json.dumps({"instances": (np.full((1, 32, 32, 1), np.nan)).tolist()}).encode()
    n_vec = int(20000 * a.scale)
    big_vectors = json.dumps({"instances": np.full((n_vec, 10), 0.1).tolist()}).encode()
    rows = int(25e6 * a.scale)

    cases = [
        ("rest normal predict", "rest", ("/v1/models/target:predict", ok_body)),
        (f"grpc shape [{rows}, 5], no values", "grpc", tensor([rows, 5])),
        (f"grpc shape [{rows}, 5], one value", "grpc", tensor([rows, 5], float_val=[0.5])),
        (f"grpc shape [{rows}, 5] DT_DOUBLE, no values", "grpc",
         tensor([rows, 5], "DT_DOUBLE")),
        (f"rest inverter, {n_vec} vectors ({len(big_vectors) / 1e6:.1f} MB)", "rest",
         ("/v1/models/inverter:predict", big_vectors)),
        ("rest body of 65 MiB (JSON padded with spaces)", "rest",
         ("/v1/models/target:predict", ok_body + b" " * (65 * 2**20))),
        ("rest Content-Length 10^12, 2-byte body", "rest",
         ("/v1/models/target:predict", b"{}", {"Content-Length": str(10**12)})),
        ("rest Content-Length 'abc'", "rest",
         ("/v1/models/target:predict", b"{}", {"Content-Length": "abc"})),
        ("rest signature_name list", "rest", ("/v1/models/target:predict", json.dumps(
            {"signature_name": ["a"], "instances": img}).encode())),
        ("rest signature_name dict", "rest", ("/v1/models/target:predict", json.dumps(
            {"signature_name": {"a": 1}, "instances": img}).encode())),
        ("rest JSON nested 100,000 deep", "rest",
         ("/v1/models/target:predict", b'{"instances": ' + b"[" * 100000 + b"]" * 100000 + b"}")),
        ("rest instances of strings", "rest",
         ("/v1/models/target:predict", b'{"instances": [["a", "b"]]}')),
        ("rest inputs: number", "rest", ("/v1/models/target:predict", b'{"inputs": 5}')),
        ("rest body not UTF-8", "rest", ("/v1/models/target:predict", b"\xff\xfe{")),
        ("rest NaN image", "rest", ("/v1/models/target:predict", nan_body)),
        ("grpc shape [1000, 32, 32, 1], no values", "grpc", tensor([1000, 32, 32, 1])),
        ("grpc DT_STRING image", "grpc", tensor([1, 32, 32, 1], "DT_STRING", string_val=[b"x"])),
        ("grpc NaN image", "grpc",
         tensor([1, 32, 32, 1], tensor_content=np.full(1024, np.nan, np.float32).tobytes())),
        (f"concurrent: {a.clients} clients x {a.requests} requests", "load", None),
        ("grpc shape [1e9, 5], no values (full size)", "grpc", tensor([10**9, 5])),
        ("rest normal predict afterwards", "rest", ("/v1/models/target:predict", ok_body)),
        ("grpc normal predict afterwards", "grpc", tensor([1, 32, 32, 1], tensor_content=np.asarray(
            img, np.float32).tobytes())),
    ]
    proc, gport, rport = start_server(tmp, a.mem_gb, a.server_flags.split())
    try:
        for name, kind, arg in cases:
            if a.only not in name:
                continue
            if proc.poll() is not None:
                proc, gport, rport = start_server(tmp, a.mem_gb, a.server_flags.split())
                restarted = True
            else:
                restarted = False
            if "full size" in name and not a.label.startswith("after"):
                out, secs = "skipped (would materialise 20 GB)", 0.0
            else:
                t0 = time.monotonic()
                if kind == "rest":
                    out = rest(rport, *arg)
                elif kind == "grpc":
                    out = grpc_call(gport, arg)
                else:
                    out, _ = concurrent(rport, a.clients, a.requests, ok_body)
                secs = time.monotonic() - t0
            time.sleep(0.2)
            print(json.dumps({"label": a.label, "case": name, "outcome": out,
                              "seconds": round(secs, 2), "server_alive": proc.poll() is None,
                              "server_peak_rss_mb": vm_hwm_mb(proc.pid),
                              "server_restarted_before": restarted}), flush=True)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
