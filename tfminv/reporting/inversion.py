"""The inversion/audit report: results.json/.md, run.json, a reconstruction grid, a
leakage-vs-utility plot, report.html (self-contained) and report.md, rendered from
`tfminv.results.InversionResults` (what `tfminv.run_inversion` / `run_audit` return).

No TensorFlow; OpenCV draws the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the results module calls this one; no import back at runtime
    from tfminv.results import InversionResults


def grid_indices(labels, count: int, n: int | None = None) -> np.ndarray:
    """Up to `count` victims for figures: one per class in class order, then the next ones
    (without labels: the first `n`)."""
    if labels is None:
        return np.arange(min(count, n or 0), dtype=np.int64)
    labels = np.asarray(labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return np.array((firsts + rest)[:count], dtype=np.int64)


TOP5_MIN_CLASSES = 6  # with 5 or fewer classes every label is in the top 5: top-5 is always 1.0

# The report's two tables (column, header): what leaked, then what the release kept and cost.
# Short headers and at most 9 columns each, so that they fit a laptop screen.
LEAKAGE_TABLE = (("policy", "policy"), ("k", "k"), ("released_entries", "entries released"),
                 ("mse", "MSE"), ("psnr", "PSNR"), ("ssim", "SSIM"),
                 ("attack_acc", "attack top-1"), ("attack_acc_top5", "attack top-5"),
                 ("beats_mean_aux", "beats mean image"))
UTILITY_TABLE = (("policy", "policy"), ("utility", "utility"), ("agreement", "agreement"),
                 ("aux_val_mse", "inverter held-out MSE"), ("seconds", "seconds"))


def reported_columns(columns, classes) -> list[str]:
    """`columns` less attack_acc_top5 when the target has fewer than TOP5_MIN_CLASSES classes
    (top-5 is 1.0 by construction there and says nothing)."""
    if classes is not None and int(classes) < TOP5_MIN_CLASSES:
        return [c for c in columns if c != "attack_acc_top5"]
    return list(columns)


def target_name(target) -> str:
    """What the report calls the target: its file or address (the oracle's name) when known,
    else its identity (a content hash)."""
    if not isinstance(target, dict):
        return str(target)
    return target.get("name") or target.get("identity", "")


_FORMATS = {"released_entries": ".2f", "utility": ".3f", "agreement": ".3f", "mse": ".4f",
            "psnr": ".2f", "ssim": ".3f", "attack_acc": ".3f", "attack_acc_top5": ".3f",
            "aux_val_mse": ".4f", "seconds": ".0f"}


def _findings(result: InversionResults) -> list[str]:
    """Plain statements read off the numbers (no claims the numbers do not support)."""
    rows, refs = result.row_dicts(), result.baselines
    out = []
    have_utility = all(r["utility"] is not None for r in rows)
    base = next((r for r in rows if r["policy"] == "identity"), None)
    key = "attack_acc" if all(r["attack_acc"] is not None for r in rows) else "ssim"
    name = "attack accuracy" if key == "attack_acc" else "SSIM"
    util = (lambda r: f", utility {r['utility']:.3f}") if have_utility else (lambda r: "")
    least = min(rows, key=lambda r: (r[key], -r["mse"]))
    most = max(rows, key=lambda r: (r[key], -r["mse"]))
    if len(rows) > 1:
        out.append(f"Most leakage by {name}: `{most['policy']}` ({most[key]:.3f}, MSE "
                   f"{most['mse']:.4f}{util(most)}); least: `{least['policy']}` "
                   f"({least[key]:.3f}, MSE {least['mse']:.4f}{util(least)}).")
    if base is not None and have_utility:
        for r in rows:
            if r is base:
                continue
            d_leak = r[key] - base[key]
            d_util = r["utility"] - base["utility"]
            verdict = (f"lowers {name} and utility" if d_leak < 0 and d_util < 0 else
                       f"lowers {name} at no utility cost" if d_leak < 0 else
                       f"does not lower {name}" if d_util >= 0 else
                       f"lowers utility but not {name}")
            verdict += ("; MSE rises (pixel leakage falls)" if r["mse"] > base["mse"] else
                        "; MSE does not rise")
            out.append(f"`{r['policy']}` vs `identity`: {name} {d_leak:+.3f}, MSE "
                       f"{r['mse'] - base['mse']:+.4f}, utility {d_util:+.3f}: {verdict}.")
    if key == "attack_acc":
        n = result.settings["victims"]
        p = float(np.mean([r["attack_acc"] for r in rows]))
        se = (p * (1 - p) / n) ** 0.5
        out.append(f"Attack accuracy is measured on {n} victims: its binomial standard error is "
                   f"about {se:.3f} near {p:.2f}, so differences under about {2 * se:.2f} are "
                   "within sampling noise.")
        judge = result.settings.get("judge", {})
        if judge.get("judge") == "target":
            out.append("The judge is the target itself (no evaluation model was given): attack "
                       "accuracy is biased upward.")
    beat = [r["policy"] for r in rows if r["mse"] < refs["mse_mean_aux"]]
    leave = "policy leaves" if len(rows) == 1 else "policies leave"
    out.append(f"{len(beat)} of {len(rows)} {leave}"
               f" reconstructions with lower MSE than the mean auxiliary image "
               f"({refs['mse_mean_aux']:.4f}), which any attacker gets without querying.")
    return out


def write_report(result: InversionResults, out_dir, *, title: str = "Inversion leakage",
                 command: str = "", extra: dict | None = None, grid_count: int = 12) -> dict:
    """Write results.json/.md, run.json, reconstructions.png, report.html (self-contained),
    report.md and, with victim labels, leakage_utility.png into out_dir; returns {name: path}.

    Each file is written under a temporary name and renamed when complete."""
    from tfminv.policies import parse
    from tfminv.reporting.figures import image_grid
    from tfminv.reporting.html_report import Report
    from tfminv.reporting.plots import Panel, scatter_panels
    from tfminv.reporting.results import write_results

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, refs, st = result.row_dicts(), result.baselines, result.settings
    settings = {**st, **(extra or {}), "baselines": refs}
    if command:
        settings["command"] = command
    nums = {k: v for k, v in refs.items() if isinstance(v, float)}
    notes = ["Baselines: " + ", ".join(f"{k} = {v:.4f}" for k, v in nums.items()),
             "See report.html (self-contained) or report.md for figures and findings."]
    # InversionRow's fields, in its order
    columns = reported_columns(list(rows[0]) if rows else [], st.get("classes"))
    if len(columns) < len(rows[0] if rows else ()):
        notes.append(f"attack_acc_top5 is not reported: with {st.get('classes')} classes every "
                     "label is in the top 5.")
    json_path, md_path = write_results(rows, out_dir, columns=columns, title=title,
                                       notes=notes, extra=settings)
    files = {"results.json": json_path, "results.md": md_path, "run.json": out_dir / "run.json"}

    labels = [r["policy"] for r in rows]
    plot_path = None
    if all(r["utility"] is not None for r in rows):
        util = [r["utility"] for r in rows]
        panels = []
        if all(r["attack_acc"] is not None for r in rows):
            panels.append(Panel(util, [r["attack_acc"] for r in rows], labels,
                                "utility (top-1 accuracy of released vector)", "attack accuracy",
                                title="Attack accuracy vs utility", note="up = more leakage",
                                hlines=[(refs["chance_accuracy"], "chance")]))
        panels.append(Panel(util, [r["ssim"] for r in rows], labels, "utility", "SSIM",
                            title="SSIM vs utility", note="up = more leakage"))
        hl = [(refs["mse_mean_aux"], "mean aux image")]
        if "mse_class_mean" in refs:
            hl.append((refs["mse_class_mean"], "class-mean floor"))
        panels.append(Panel(util, [r["mse"] for r in rows], labels, "utility", "MSE",
                            title="MSE vs utility", note="down = more leakage", hlines=hl))
        plot_path = out_dir / "leakage_utility.png"
        scatter_panels(panels, plot_path)
        files["leakage_utility.png"] = plot_path

    idx = grid_indices(result.victim_labels, grid_count, len(result.victim_images))
    grid_rows = [("ground truth", result.victim_images[idx])]
    grid_rows += [(spec, rec[idx]) for spec, rec in result.reconstructions.items()]
    grid_path = out_dir / "reconstructions.png"
    image_grid(grid_rows, grid_path, label_width=0)  # the label column fits the policy names
    files["reconstructions.png"] = grid_path

    target = st.get("target", {})
    # a caller's description (extra={"target": ...}) names the target better than its oracle
    sub = f"target `{target_name(settings.get('target', target))}`"
    if st.get("aux_name"):
        sub += f"; auxiliary set `{st['aux_name']}`; victims `{st.get('victims_name', '')}`"
    rep = Report(title, subtitle=sub)
    rep.heading("What was measured")
    rep.paragraph(
        "For each release policy the target releases policy(F(x)). The attacker trains an "
        "inversion model on its auxiliary images' predictions passed through the same policy "
        "(aligned to the release format, truncation k = entries the policy can release), then "
        "reconstructs every victim from its released vector. Leakage: MSE, PSNR, SSIM between "
        "reconstruction and victim, and attack accuracy (a judge labels the reconstruction; "
        "top-1 against the victim's class). Utility: top-1 accuracy of the released vector on "
        "the victims (ties count as a random pick among the tied classes); agreement: released "
        "argmax equals the unreleased argmax.")
    rep.heading("Results")
    top5_note = ("" if "attack_acc_top5" in columns else
                 f" Attack top-5 is not shown: with {st['classes']} classes every label is in "
                 "the top 5.")
    for spec, caption in (
            (LEAKAGE_TABLE, f"Leakage: {st['victims']} victims of "
                            f"{'x'.join(map(str, st['image_shape']))}, {st['classes']} classes. "
                            "k: attacker's truncation; entries released: mean non-zero entries "
                            "per released vector; attack top-1 / top-5: share of "
                            "reconstructions the judge puts in the victim's class; beats mean "
                            "image: MSE below the mean auxiliary image's." + top5_note),
            (UTILITY_TABLE, "Utility and cost: utility is the released vector's top-1 accuracy "
                            "on the victims, agreement its argmax equal to the unreleased one; "
                            "inverter held-out MSE: on held-out auxiliary images; seconds: wall "
                            "time of the policy (queries, training or cache reuse, scoring).")):
        cols = [(c, head) for c, head in spec if c in columns]
        rep.table([head for _, head in cols], [[r[c] for c, _ in cols] for r in rows],
                  caption=caption, formats=[_FORMATS.get(c) for c, _ in cols])
    rep.table(["baseline", "value"], [[k, v] for k, v in refs.items()],
              caption="mse_mean_aux: MSE of the mean auxiliary image (free for any attacker); "
                      "mse_class_mean: each victim guessed as its class's mean image (a floor "
                      "for label-only release a real attacker cannot compute; class_mean_from "
                      "says whose images); judge_accuracy_on_real_victims: the judge on the real "
                      "victim images (the ceiling for attack accuracy).",
              formats=[None, ".4f"])
    judge = st.get("judge") or {}
    rep.paragraph(f"Judge of attack accuracy: {judge.get('judge') or 'none'} "
                  f"({judge.get('note', '')}). Target outputs read as "
                  f"{target.get('outputs', '?')} ({target.get('outputs_from', '?')}); the "
                  f"target's inputs are scaled to {target.get('input_range', '?')}."
                  if isinstance(target, dict) else "")
    rep.heading("Findings")
    rep.bullets(_findings(result))
    invertible = [r["policy"] for r in rows if r["policy"] != "identity" and parse(r["policy"]).invertible]
    if invertible:
        rep.note(f"{', '.join(invertible)} {'is' if len(invertible) == 1 else 'are'} invertible: "
                 "the released vector determines the full one, so no information is removed. "
                 "Any leakage drop measured there reflects this attacker's training budget "
                 "(e.g. sensitivity to the input scale), not protection against a stronger attacker.")
    if plot_path is not None:
        rep.heading("Leakage vs utility")
        rep.figure(plot_path, caption="One point per policy. Dashed lines: baselines.")
    rep.heading("Reconstructions")
    rep.figure(grid_path, caption="Top row: victims (one per class first). Each further row: "
                                  "the aligned attacker's reconstructions under one policy.")
    rep.heading("Settings")
    rep.code("\n".join(f"{k}: {v}" for k, v in settings.items() if k != "baselines"))
    html_path, rmd_path = out_dir / "report.html", out_dir / "report.md"
    rep.write(html_path, rmd_path)
    files.update({"report.html": html_path, "report.md": rmd_path})
    return files
