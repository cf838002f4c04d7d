"""Markdown tables from the JSON lines of the benchmark scripts (for BENCHMARKS.md).

    python bench/summarize.py RESULTS.jsonl [MORE.jsonl ...]

Lines of train_throughput.py, inversion_latency.py and reader_throughput.py may be mixed;
non-JSON lines are ignored. Goals of the project are checked at the end.
"""

from __future__ import annotations

import json
import sys

GOALS = {"train_ratio": 1.3, "face_efficiency": 0.5, "inversion_speedup": 1000.0, "reader_ratio": 10.0}


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    row = json.loads(line)
                    if "bench" in row:  # precision_quality.jsonl's rows have no tables here
                        rows.append(row)
    return rows


def _f(x, nd=2):
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != x:
            return "nan"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    return str(x)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _rounds_table(rows, headers, keys, value, value_header="ratio (median of rounds)"):
    """One row per model of an A/B measurement: the two sides, the median, the per-round values."""
    return table(["model", *headers, value_header, "rounds"],
                 [[r["model"], *(r[k] for k in keys), r[value],
                   ", ".join(f"{x:.2f}" for x in r[value + "_rounds"])] for r in rows])


def summarize(rows) -> str:
    parts = []
    steps = [r for r in rows if r["bench"] in ("train_step", "train_step_tf_ab")]
    if steps:
        parts.append("### Training steps (batch %d, %d threads)\n" % (steps[0]["batch"], steps[0]["threads"]))
        parts.append(table(
            ["model", "framework", "variant", "images/s", "step s (median)", "steps", "GFLOP/step",
             "achieved GFLOP/s", "peak GFLOP/s (dtype)", "efficiency", "vs fp32 peak",
             "peak RSS MB", "train mem MB", "warm-up s"],
            [[r["model"], r["framework"], r["variant"], r["images_per_s"], r["step_s_median"],
              r["steps_timed"], r["gflop_per_step"], r["achieved_tflops"] * 1e3,
              f'{r["peak_tflops"] * 1e3:.0f} ({r["peak_dtype"]})', f'{r["efficiency"]:.0%}',
              f'{r["efficiency_vs_float32_peak"]:.0%}', r["peak_rss_mb"], r["train_mem_mb"],
              sum(r["warmup_s"])] for r in steps]))
    pairs = [r for r in rows if r["bench"] == "pair_ratio"]
    if pairs:
        parts.append("\n### Same-pair ratios (PyTorch step time / tfminv step time; > 1: tfminv faster)\n")
        parts.append(_rounds_table(pairs, ("tfminv", "PyTorch"), ("tfminv", "pytorch"), "ratio"))
    ratios = [r for r in rows if r["bench"] == "train_ratio"]
    if ratios:
        parts.append("\n### Best against best\n")
        parts.append(table(["model", "tfminv best", "PyTorch best", "ratio best/best", "how",
                            "float32 / plain PyTorch", f"goal >= {GOALS['train_ratio']}"],
                           [[r["model"], r["tfminv_best"], r["pytorch_best"], r.get("ratio_best"),
                             r.get("ratio_best_source"), r.get("ratio_float32_vs_plain"),
                             "met" if (r.get("ratio_best") or 0) >= GOALS["train_ratio"] else "NOT met"]
                            for r in ratios]))
    ab = [r for r in rows if r["bench"] == "tf_ab_ratio"]
    if ab:
        parts.append("\n### tfminv against tfminv (A/B in one pair; speedup of B = step time A / step time B)\n")
        parts.append(_rounds_table(ab, ("A", "B"), ("a", "b"), "speedup_of_b",
                                   "speedup of B (median of rounds)"))
    peaks = [r for r in rows if r["bench"] == "matmul_peak"]
    if peaks:
        parts.append("\n### Matmul peak (TensorFlow, same run)\n")
        parts.append(table(["dtype", "n", "median GFLOP/s", "max GFLOP/s", "samples"],
                           [[r["dtype"], r["n"], r["tflops_median"] * 1e3, r["tflops_max"] * 1e3,
                             r.get("samples", len(r.get("tflops", [])))] for r in peaks]))
    inv = [r for r in rows if r["bench"] == "inversion_ratio"]
    if inv:
        parts.append("\n### Inversion latency per image\n")
        parts.append(table(["family", "batch", "inverter s/image (compiled call)",
                            "inverter s/image (library invert)", "Fredrikson s/image", "measured?",
                            "Fredrikson steps (mean)", "speedup", "speedup vs library invert",
                            f"goal >= {GOALS['inversion_speedup']:.0f}x"],
                           [[r["family"], r["batch"], f'{r["inverter_seconds_per_image"]:.2e}',
                             f'{r["inverter_library_seconds_per_image"]:.2e}',
                             r["fredrikson_seconds_per_image"],
                             "measured" if r["fredrikson_measured"] else "extrapolated",
                             r["fredrikson_mean_steps"], r["speedup"], r["speedup_library_invert"],
                             "met" if r["speedup"] >= GOALS["inversion_speedup"] else "NOT met"]
                            for r in inv]))
    lat = [r for r in rows if r["bench"] == "inverter_latency"]
    if lat:
        parts.append("\n### Inverter forward pass\n")
        parts.append(table(["family", "batch", "how", "s/image"],
                           [[r["family"], r["batch"], r["how"], f'{r["seconds_per_image"]:.2e}']
                            for r in lat]))
    fr = [r for r in rows if r["bench"] in ("fredrikson_run", "fredrikson_step")]
    if fr:
        parts.append("\n### Fredrikson attack\n")
        parts.append(table(["family", "what", "batch", "class", "seconds", "steps", "confidence",
                            "s/step"],
                           [[r["family"], r["bench"], r["batch"], r.get("class"), r.get("seconds"),
                             r.get("steps"), r.get("confidence"), r.get("seconds_per_step")]
                            for r in fr]))
    rd = [r for r in rows if r["bench"] == "reader"]
    if rd:
        parts.append("\n### Reader (tf.data) against the fastest tfminv training step\n")
        parts.append(table(["dataset", "size", "pipeline", "images/s", "fastest training images/s",
                            "ratio", f"goal >= {GOALS['reader_ratio']:.0f}x"],
                           [[r["dataset"], r["image_size"], r["pipeline"], r["images_per_s"],
                             r.get("fastest_training_images_per_s"), r.get("ratio_to_training"),
                             "-" if r.get("ratio_to_training") is None else
                             ("met" if r["ratio_to_training"] >= GOALS["reader_ratio"] else "NOT met")]
                            for r in rd]))
    face = [r for r in steps if r["model"].startswith("face") and r["framework"] == "tfminv"]
    if face:
        parts.append("\n### Face models: best tfminv efficiency (goal >= 50% of the matmul peak)\n")
        best = {}
        for r in face:
            if r["model"] not in best or r["efficiency"] > best[r["model"]]["efficiency"]:
                best[r["model"]] = r
        parts.append(table(["model", "variant", "efficiency", "vs fp32 peak", "goal"],
                           [[m, r["variant"], f'{r["efficiency"]:.0%}',
                             f'{r["efficiency_vs_float32_peak"]:.0%}',
                             "met" if r["efficiency"] >= GOALS["face_efficiency"] else "NOT met"]
                            for m, r in best.items()]))
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python bench/summarize.py RESULTS.jsonl [MORE.jsonl ...]")
    sys.stdout.write(summarize(load(sys.argv[1:])))
