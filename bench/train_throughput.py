"""Training throughput of the authors' models: tfminv (Keras/TF) against a PyTorch reference.

Each configuration (model x framework x variant) runs in its own worker process, so its peak
memory is its own and TensorFlow and PyTorch never share a process. Configurations are measured
in pairs (one tfminv variant, one PyTorch variant; only two workers alive at a time, because a
face-model worker can hold several GB): both are warmed up (tracing, XLA / torch.compile, oneDNN
primitives; warm-up steps are not timed), then run one at a time in A/B/B/A rounds, with a
TensorFlow matmul peak sampled between runs. Throughput is the median over all timed steps; a
tfminv/PyTorch ratio is the median of per-round ratios, so drift in machine load cancels out.
After the pairs, the fastest tfminv and the fastest PyTorch variant (by throughput relative to
the matmul peak sampled during their pair, which normalises for load) meet head to head.

Variants: tfminv float32 / mixed_bfloat16, each with and without XLA (`jit_compile=True`), with
`train_on_batch` and the authors' Adam (2e-4, beta1 0.5, amsgrad); PyTorch plain, channels_last,
torch.compile, bf16 autocast (with/without channels_last), same optimiser (bench/torch_reference.py).
Threads are set equally: TF intra-op = torch threads = --threads, inter-op 1 in both.

One JSON line per measurement on stdout:
  {"bench": "train_step", ...}   model x framework x variant: images/s, FLOP/s, efficiency, peak RSS
  {"bench": "pair_ratio", ...}   PyTorch step time / tfminv step time within a pair (> 1: tfminv faster)
  {"bench": "train_ratio", ...}  per model: best vs best, and float32 vs plain PyTorch
  {"bench": "tf_ab_ratio", ...}  with --tf_ab A:B: speedup of tfminv variant B over A (same pair)
  {"bench": "matmul_peak", ...}  per dtype: all peak samples of the run

    python bench/train_throughput.py            # 4 models x 4 pairs + head to head (~1 h on 2 busy cores)
    python bench/train_throughput.py --quick    # digit classifier + face inverter, 2 pairs (~10 min)
    python bench/train_throughput.py --models face_classifier_m530 --pairs float32:plain
    python bench/train_throughput.py --pairs "" --tf_ab float32:mixed_bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
PREFIX = "BENCH "  # protocol lines from a worker; everything else on its stdout is ignored

TF_VARIANTS = {  # name -> (keras dtype policy, jit_compile, stock Keras layers)
    "float32": ("float32", False, False),
    "float32_xla": ("float32", True, False),
    "mixed_bfloat16": ("mixed_bfloat16", False, False),
    "mixed_bfloat16_xla": ("mixed_bfloat16", True, False),
    # the same models built from keras.layers instead of tfminv.models.fast_layers
    "float32_keras_layers": ("float32", False, True),
    "mixed_bfloat16_keras_layers": ("mixed_bfloat16", False, True),
}
TORCH_VARIANTS = {  # name -> (channels_last, torch.compile, bf16 autocast)
    "plain": (False, False, False),
    "channels_last": (True, False, False),
    "compile": (False, True, False),
    "bf16_autocast": (False, False, True),
    "bf16_autocast_channels_last": (True, False, True),
}


# ------------------------------------------------------------------------------------ workers

def _tf_step(args):
    """Build the tfminv model and return (step_fn, info) for one train_on_batch per call."""
    tf = common.setup_tf(args.threads)
    import keras

    policy, xla, stock = TF_VARIANTS[args.variant]
    keras.utils.set_random_seed(1)
    keras.mixed_precision.set_global_policy(policy)
    from tfminv.models import build_classifier, build_inverter

    kind, m, size = common.MODELS[args.model]
    with common.stock_keras_layers(stock):
        model = (build_classifier if kind == "classifier" else build_inverter)(m, size, args.width)
    if kind == "classifier":
        x = tf.random.uniform((args.batch, size, size, 1))
        y = tf.random.uniform((args.batch,), 0, m, dtype=tf.int64)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        x = tf.nn.softmax(tf.random.normal((args.batch, m)) * 3.0)
        y = tf.random.uniform((args.batch, size, size, 1))
        loss = "mse"
    opt = keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5, beta_2=0.999, amsgrad=True)
    model.compile(optimizer=opt, loss=loss, jit_compile=xla)
    info = {"forward_gflop_per_image": common.keras_forward_flops(model) / 1e9,
            "params": int(model.count_params()), "tf_version": tf.__version__,
            "keras_version": keras.__version__, "policy": policy, "jit_compile": xla,
            "layers": "keras" if stock else "tfminv",
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}

    def step():
        return model.train_on_batch(x, y)  # returns a host float: the step has finished

    return step, info


def _torch_step(args):
    """Build the PyTorch reference and return (step_fn, info) for one optimiser step per call."""
    torch = common.setup_torch(args.threads)
    import torch_reference as tr

    channels_last, compiled, bf16 = TORCH_VARIANTS[args.variant]
    torch.manual_seed(1)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    kind, m, size = common.MODELS[args.model]
    net = tr.build(kind, m, size, args.width).to(dev)
    flops = common.torch_forward_flops(
        net, torch.zeros((1, 1, size, size) if kind == "classifier" else (1, m), device=dev))
    if kind == "classifier":
        x = torch.rand(args.batch, 1, size, size, device=dev)
        y = torch.randint(0, m, (args.batch,), device=dev)
        loss_fn = torch.nn.functional.cross_entropy
    else:
        x = torch.softmax(torch.randn(args.batch, m, device=dev) * 3.0, dim=1)
        y = torch.rand(args.batch, 1, size, size, device=dev)
        loss_fn = torch.nn.functional.mse_loss
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if y.dim() == 4:
            y = y.contiguous(memory_format=torch.channels_last)
    opt = tr.authors_optimizer(net)
    fwd = torch.compile(net) if compiled else net
    net.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=bf16):
            out = fwd(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()
        return loss.item()  # host value: the step has finished (GPU included)

    info = {"forward_gflop_per_image": flops / 1e9, "params": tr.count_params(net),
            "torch_version": torch.__version__, "channels_last": channels_last,
            "torch_compile": compiled, "bf16_autocast": bf16, "device": dev.upper()}
    return step, info


def _peak_step(args):
    """Matmul peak worker: one 'step' = one product per dtype; reports TFLOP/s, not seconds."""
    tf = common.setup_tf(args.threads)
    from matmul_peak import MatmulPeak

    gpu = bool(tf.config.list_physical_devices("GPU"))
    n = args.matmul_n or (8192 if gpu else 2048)
    peaks = {d: MatmulPeak(tf, n, d) for d in ("float32", "bfloat16")}

    def step():  # best of two products: the machine's peak share at this moment
        return {d: max(p.run(2)) for d, p in peaks.items()}

    return step, {"n": n, "device": "GPU" if gpu else "CPU"}


def worker(args):
    """Serve 'run N' / 'quit' commands on stdin; answer with PREFIX-ed JSON lines on stdout."""
    t0 = time.perf_counter()
    make = {"tf": _tf_step, "torch": _torch_step, "peak": _peak_step}[args.framework]
    step, info = make(args)
    info["rss_after_build_mb"] = common.rss_mb()
    info["build_s"] = time.perf_counter() - t0
    warm = common.timed(step, args.warmup)
    info["warmup_s"] = warm
    info["rss_idle_mb"] = common.rss_mb()
    print(PREFIX + json.dumps({"event": "ready", **info}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if args.framework == "peak":
            vals = [step() for _ in range(int(cmd[1]))]
            print(PREFIX + json.dumps({"event": "peak", "tflops": vals}), flush=True)
        else:
            times = common.timed(step, int(cmd[1]))
            print(PREFIX + json.dumps({"event": "times", "times": times,
                                       "rss_mb": common.rss_mb()}), flush=True)
    print(PREFIX + json.dumps({"event": "done", "peak_rss_mb": common.peak_rss_mb(),
                               "device_peak_mb": _device_peak_mb(args.framework)}), flush=True)


def _device_peak_mb(framework):
    """Peak accelerator memory of this process in MiB (None on CPU)."""
    if framework == "torch":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


# ------------------------------------------------------------------------------------- parent

class Worker:
    """A running worker process and its protocol."""

    def __init__(self, framework, model, variant, a, logdir):
        self.framework, self.model, self.variant = framework, model, variant
        self.log = open(Path(logdir) / f"{framework}_{model}_{variant}.log", "w+")
        cmd = [sys.executable, str(HERE / "train_throughput.py"), "--worker",
               "--framework", framework, "--model", model or "-", "--variant", variant,
               "--threads", str(a.threads), "--batch", str(a.batch), "--warmup", str(a.warmup),
               "--matmul_n", str(a.matmul_n), "--width", str(a.width)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1, env=env)
        self.info = self._read("ready")
        self.times, self.round_medians, self.tflops = [], [], []

    def _read(self, event):
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                msg = json.loads(line[len(PREFIX):])
                if msg["event"] == event:
                    return msg
        self.log.seek(0)
        tail = self.log.read()[-3000:]
        raise RuntimeError(f"worker {self.framework}/{self.model}/{self.variant} exited "
                           f"(rc={self.proc.wait()}) before '{event}':\n{tail}")

    def run(self, steps):
        self.proc.stdin.write(f"run {steps}\n")
        self.proc.stdin.flush()
        if self.framework == "peak":
            msg = self._read("peak")
            self.tflops.extend(msg["tflops"])
            return msg
        msg = self._read("times")
        self.times.extend(msg["times"])
        self.round_medians.append(common.median(msg["times"]))
        return msg

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        msg = self._read("done")
        self.proc.wait()
        self.log.close()
        self.device_peak_mb = msg.get("device_peak_mb")
        return msg["peak_rss_mb"]


DEFAULT_PAIRS = ("float32:plain,mixed_bfloat16:bf16_autocast_channels_last,"
                 "float32_xla:channels_last,mixed_bfloat16_xla:compile")


def _start(fw, model, variant, a, logdir):
    try:
        return Worker(fw, model, variant, a, logdir)
    except RuntimeError as e:  # e.g. torch.compile without a working C++ toolchain
        common.emit({"bench": "error", "model": model, "framework": fw, "variant": variant,
                     "error": str(e)[-1500:]})
        return None


def run_pair(model, tf_variant, torch_variant, a, peak, logdir, specs=None):
    """Two live workers (memory: a face model's worker can hold several GB), A/B/B/A rounds.

    specs: [(framework, variant), ...] to pair other than one tfminv and one PyTorch variant.
    """
    specs = specs or [("tf", tf_variant), ("torch", torch_variant)]
    ws = [w for w in (_start(fw, model, v, a, logdir) if v else None for fw, v in specs)
          if w is not None]
    first_peak = len(peak.tflops)
    for r in range(a.rounds):
        for w in (ws if r % 2 == 0 else ws[::-1]):
            w.run(a.steps)
            peak.run(1)  # peak sampled between runs, so it sees the same load over time
    for w in ws:
        w.peak_rss_mb = w.close()
        w.peak_samples = peak.tflops[first_peak:]
    return ws


def _ratio(tw, pw):
    """Median over rounds of PyTorch / tfminv step time (> 1: tfminv faster), and the rounds."""
    rs = [p / t for t, p in zip(tw.round_medians, pw.round_medians)]
    return common.median(rs), rs


def _result(w, model, a):
    kind, m, size = common.MODELS[model]
    med = common.median(w.times)
    gflop = 3 * w.info["forward_gflop_per_image"] * a.batch
    bf16 = "bfloat16" in w.variant or "bf16" in w.variant
    pk = {d: common.median([t[d] for t in w.peak_samples]) for d in ("float32", "bfloat16")}
    tflops = gflop / med / 1e3
    return {
        "bench": "train_step", "model": model, "kind": kind, "m": m, "image_size": size,
        "framework": "tfminv" if w.framework == "tf" else "pytorch", "variant": w.variant,
        "batch": a.batch, "threads": a.threads, "device": w.info["device"],
        "step_s_median": med, "step_s_min": min(w.times), "steps_timed": len(w.times),
        "images_per_s": a.batch / med, "gflop_per_step": gflop, "achieved_tflops": tflops,
        "peak_dtype": "bfloat16" if bf16 else "float32", "peak_tflops": pk["bfloat16" if bf16 else "float32"],
        "efficiency": tflops / pk["bfloat16" if bf16 else "float32"],
        "efficiency_vs_float32_peak": tflops / pk["float32"],
        "peak_rss_mb": w.peak_rss_mb, "rss_after_build_mb": w.info["rss_after_build_mb"],
        "train_mem_mb": w.peak_rss_mb - w.info["rss_after_build_mb"],
        "warmup_s": w.info["warmup_s"], "params": w.info["params"], "width": a.width,
        "device_peak_mb": w.device_peak_mb}


def measure_model(model, a, peak, logdir):
    """Run every pair of one model, then best tfminv against best PyTorch head to head."""
    done = {}  # (framework, variant) -> worker of its first measurement
    pair_ratios = {}
    for tv, pv in a.pairs:
        ws = run_pair(model, tv, pv, a, peak, logdir)
        for w in ws:
            done.setdefault((w.framework, w.variant), w)
            common.emit(_result(w, model, a))
        if len(ws) == 2:
            r, rounds = _ratio(*ws)
            pair_ratios[(tv, pv)] = r
            common.emit({"bench": "pair_ratio", "model": model, "tfminv": tv, "pytorch": pv,
                         "ratio": r, "ratio_rounds": rounds, "batch": a.batch, "threads": a.threads})
    for va, vb in a.tf_ab:  # tfminv against tfminv: which precision / compiler is faster here
        ws = run_pair(model, None, None, a, peak, logdir, specs=[("tf", va), ("tf", vb)])
        for w in ws:
            r = _result(w, model, a)
            r["bench"] = "train_step_tf_ab"
            common.emit(r)
        if len(ws) == 2:
            r, rounds = _ratio(*ws)
            # speedup of B = step time A / step time B (median of rounds; > 1: B faster)
            sp = [1 / x for x in rounds]
            common.emit({"bench": "tf_ab_ratio", "model": model, "a": va, "b": vb,
                         "speedup_of_b": common.median(sp), "speedup_of_b_rounds": sp,
                         "batch": a.batch, "threads": a.threads})
    tfw = [w for (fw, _), w in done.items() if fw == "tf"]
    thw = [w for (fw, _), w in done.items() if fw == "torch"]
    if not (tfw and thw):
        return
    # Pairs run at different times, under different load: pick the best by throughput relative
    # to the float32 matmul peak sampled during its own pair (load-normalised), not raw speed.
    def normalised(w):
        peak32 = common.median([t["float32"] for t in w.peak_samples])
        return 1.0 / common.median(w.times) / peak32

    best = lambda ws: max(ws, key=normalised)
    bt, bp = best(tfw).variant, best(thw).variant
    rec = {"bench": "train_ratio", "model": model, "batch": a.batch, "threads": a.threads,
           "device": tfw[0].info["device"], "tfminv_best": bt, "pytorch_best": bp,
           "ratio_float32_vs_plain": pair_ratios.get(("float32", "plain"))}
    if (bt, bp) in pair_ratios:
        rec["ratio_best"], rec["ratio_best_source"] = pair_ratios[(bt, bp)], "pair"
    elif a.head_to_head:
        ws = run_pair(model, bt, bp, a, peak, logdir)
        if len(ws) == 2:
            rec["ratio_best"], rec["ratio_best_rounds"] = _ratio(*ws)
            rec["ratio_best_source"] = "head_to_head"
            for w in ws:
                r = _result(w, model, a)
                r["bench"] = "train_step_head_to_head"
                common.emit(r)
    else:  # different pairs, different times: a weaker comparison, labelled as such
        rec["ratio_best"] = common.median(best(thw).times) / common.median(best(tfw).times)
        rec["ratio_best_source"] = "across_pairs"
    common.emit(rec)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--framework", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--models", default="face_classifier,face_inverter,digit_classifier,digit_inverter",
                   help="comma-separated, from " + ", ".join(common.MODELS))
    p.add_argument("--pairs", default=DEFAULT_PAIRS,
                   help="comma-separated TF_VARIANT:TORCH_VARIANT pairs measured A/B; either side "
                        f"may be empty. TF: {', '.join(TF_VARIANTS)}; PyTorch: {', '.join(TORCH_VARIANTS)}")
    p.add_argument("--tf_ab", default="",
                   help="comma-separated A:B pairs of tfminv variants measured A/B against each "
                        "other (e.g. float32:mixed_bfloat16), after --pairs")
    p.add_argument("--no_head_to_head", dest="head_to_head", action="store_false",
                   help="skip the final best-vs-best pair")
    p.add_argument("--batch", type=int, default=common.BATCH)
    p.add_argument("--width", type=float, default=1.0,
                   help="channel multiplier (1 = the authors' widths; smaller for smoke tests)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="intra-op threads, the same for both frameworks")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per worker (after the "
                   "first, compiling one)")
    p.add_argument("--rounds", type=int, default=3, help="A/B rounds per pair")
    p.add_argument("--steps", type=int, default=1, help="timed steps per worker per round")
    p.add_argument("--matmul_n", type=int, default=0, help="matmul peak side (0: 2048 CPU, 8192 GPU)")
    p.add_argument("--quick", action="store_true",
                   help="digit classifier + face inverter, float32:plain and "
                        "mixed_bfloat16:bf16_autocast_channels_last, 2 rounds")
    a = p.parse_args(argv)
    if a.worker:
        return worker(a)
    if a.quick:
        a.models, a.rounds, a.head_to_head = "digit_classifier,face_inverter", 2, False
        a.pairs = "float32:plain,mixed_bfloat16:bf16_autocast_channels_last"
    a.models = [m for m in a.models.split(",") if m]
    pairs = []
    for item in a.pairs.split(","):
        tv, _, pv = item.partition(":")
        if tv and tv not in TF_VARIANTS:
            p.error(f"--pairs: unknown tfminv variant {tv!r}; expected one of {', '.join(TF_VARIANTS)}")
        if pv and pv not in TORCH_VARIANTS:
            p.error(f"--pairs: unknown PyTorch variant {pv!r}; expected one of {', '.join(TORCH_VARIANTS)}")
        pairs.append((tv or None, pv or None))
    a.pairs = pairs
    tf_ab = []
    for item in filter(None, a.tf_ab.split(",")):
        va, _, vb = item.partition(":")
        for v in (va, vb):
            if v not in TF_VARIANTS:
                p.error(f"--tf_ab: unknown tfminv variant {v!r}; expected A:B from {', '.join(TF_VARIANTS)}")
        tf_ab.append((va, vb))
    a.tf_ab = tf_ab
    for m in a.models:
        if m not in common.MODELS:
            p.error(f"--models: unknown model {m!r}; expected some of {', '.join(common.MODELS)}")
    common.emit({"bench": "config", "models": a.models, "pairs": a.pairs, "batch": a.batch,
                 "threads": a.threads, "warmup": a.warmup, "rounds": a.rounds, "steps": a.steps,
                 "head_to_head": a.head_to_head, "machine": common.machine_info(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    with tempfile.TemporaryDirectory(prefix="tfminv_bench_") as logdir:
        peak = Worker("peak", None, "matmul", a, logdir)
        for model in a.models:
            measure_model(model, a, peak, logdir)
        peak_rss = peak.close()
        for d in ("float32", "bfloat16"):
            vals = [t[d] for t in peak.tflops]
            common.emit({"bench": "matmul_peak", "dtype": d, "n": peak.info["n"],
                         "device": peak.info["device"], "threads": a.threads,
                         "tflops_median": common.median(vals), "tflops_max": max(vals),
                         "samples": len(vals), "peak_rss_mb": peak_rss,
                         "machine": common.machine_info()})


if __name__ == "__main__":
    main()
