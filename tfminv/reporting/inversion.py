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


BOOTSTRAP_RESAMPLES = 1000

# (per-victim key, row column, name, format): the differences the findings put intervals on
_MEASURES = (("hit", "attack_acc", "attack accuracy", "+.3f"), ("mse", "mse", "MSE", "+.4f"),
             ("utility", "utility", "utility", "+.3f"))


def _diff(result, a: str, b: str, key: str, fmt: str, seed: int = 0):
    """(text, sign): the paired difference of per-victim `key` between a and b (policy specs or
    reference names) with its bootstrap 95% interval, and its sign (+1 / -1, 0 where the
    interval contains 0: not distinguishable); None without per-victim scores."""
    from tfminv.attacks.core import paired_interval

    pa, pb = result.per_victim.get(a, {}), result.per_victim.get(b, {})
    if key not in pa or key not in pb:
        return None
    d, lo, hi = paired_interval(pa[key], pb[key], resamples=BOOTSTRAP_RESAMPLES, seed=seed)
    sign = 0 if lo <= 0 <= hi else (1 if d > 0 else -1)
    text = f"{d:{fmt}} (95% CI {lo:{fmt}} to {hi:{fmt}}"
    return text + (", not distinguishable)" if sign == 0 else ")"), sign


def _findings(result: InversionResults) -> list[str]:
    """Plain statements read off the numbers, each verdict with the uncertainty it rests on:
    a paired bootstrap over victims (BOOTSTRAP_RESAMPLES resamples, seed 0) of the difference,
    "not distinguishable" where the 95% interval contains 0. Without per-victim scores (results
    built by hand) the differences are given without a verdict."""
    rows, refs = result.row_dicts(), result.baselines
    out = []
    have_utility = all(r["utility"] is not None for r in rows)
    base = next((r for r in rows if r["policy"] == "identity"), None)
    key = "attack_acc" if all(r["attack_acc"] is not None for r in rows) else "mse"
    name = "attack accuracy" if key == "attack_acc" else "MSE"
    more = (lambda r: r[key]) if key == "attack_acc" else (lambda r: -r[key])
    measures = [m for m in _MEASURES if m[1] != "utility" or have_utility]
    measures = [m for m in measures if m[1] != "attack_acc" or key == "attack_acc"]
    n = result.settings.get("victims", len(result.victim_images))
    if result.per_victim:
        out.append(f"Uncertainty: each difference below is paired over the same {n} victims, "
                   f"with a 95% interval from {BOOTSTRAP_RESAMPLES} bootstrap resamples of the "
                   "victims; a difference whose interval contains 0 is not distinguishable "
                   "from no difference.")
    else:
        out.append("No per-victim scores were kept with these results: the differences below "
                   "carry no interval and no verdict.")
    if len(rows) > 1 and len({r[key] for r in rows}) == 1:
        out.append(f"Every policy has the same {name} ({rows[0][key]:.4g}).")
    elif len(rows) > 1:
        most, least = max(rows, key=more), min(rows, key=more)
        fmt = "+.3f" if key == "attack_acc" else "+.4f"
        gap = _diff(result, most["policy"], least["policy"],
                    "hit" if key == "attack_acc" else "mse", fmt)
        gap_text = (f"; the gap is not distinguishable: {gap[0]}" if gap and gap[1] == 0 else
                    f"; gap {gap[0]}" if gap else "")
        out.append(f"Most leakage by {name}: `{most['policy']}` ({most[key]:.4g}); least: "
                   f"`{least['policy']}` ({least[key]:.4g}){gap_text}.")
    if base is not None:
        for r in rows:
            if r is base:
                continue
            parts, signs = [], {}
            for pv, col, label, fmt in measures:
                got = _diff(result, r["policy"], "identity", pv, fmt)
                if got is None:
                    parts.append(f"{label} {r[col] - base[col]:{fmt}} (no interval)")
                    continue
                parts.append(f"{label} {got[0]}")
                signs[col] = got[1]
            verdict = []
            if key in signs:
                # leakage falls when accuracy falls / MSE rises
                falls = signs[key] == (-1 if key == "attack_acc" else 1)
                verdict.append(f"lowers {name}" if falls else
                               f"{name} not distinguishable from `identity`" if signs[key] == 0
                               else f"raises leakage by {name}")
            if key == "attack_acc" and "mse" in signs:
                verdict.append("MSE rises (pixel leakage falls)" if signs["mse"] > 0 else
                               "MSE not distinguishable" if signs["mse"] == 0 else
                               "MSE falls (pixel leakage rises)")
            if "utility" in signs:
                verdict.append("utility cost" if signs["utility"] < 0 else
                               "utility cost not distinguishable from none"
                               if signs["utility"] == 0 else "utility rises")
            out.append(f"`{r['policy']}` vs `identity`: {'; '.join(parts)}"
                       + (f": {', '.join(verdict)}." if verdict else "."))
    if key == "attack_acc":
        judge = result.settings.get("judge", {})
        if judge.get("judge") == "target":
            out.append("The judge is the target itself (no evaluation model was given): attack "
                       "accuracy is biased upward.")
    out += _reference_findings(result, rows, refs)
    return out


def _by_verdict(result, rows, against: str, key: str, fmt: str) -> dict[int, list[str]]:
    """The policies' paired differences against reference `against`, grouped by verdict
    (-1 below, 0 not distinguishable, 1 above)."""
    groups = {-1: [], 0: [], 1: []}
    for r in rows:
        got = _diff(result, r["policy"], against, key, fmt)
        if got is not None:
            groups[got[1]].append(f"`{r['policy']}` {got[0]}")
    return groups


def _reference_findings(result, rows, refs) -> list[str]:
    """The policies against the reference rows (mean image by MSE, majority class by attack
    accuracy), and what the judge's favourite class contributes."""
    out = []
    ref_rows = {r["reference"]: r for r in result.references}
    groups = _by_verdict(result, rows, "mean image", "mse", "+.4f")
    if any(groups.values()):
        out.append(f"MSE against the mean auxiliary image ({refs['mse_mean_aux']:.4f}, free for "
                   f"any attacker): below it {len(groups[-1])} of {len(rows)} ("
                   + "; ".join(groups[-1] or ["none"]) + "); not distinguishable "
                   + "; ".join(groups[0] or ["none"]) + "; above it "
                   + "; ".join(groups[1] or ["none"]) + ".")
    else:
        beat = [r["policy"] for r in rows if r["mse"] < refs["mse_mean_aux"]]
        out.append(f"{len(beat)} of {len(rows)} policies have a lower MSE than the mean "
                   f"auxiliary image ({refs['mse_mean_aux']:.4f}; no interval).")
    mean_ssim = (ref_rows.get("mean image") or {}).get("ssim")
    if mean_ssim is not None:
        below = [r["policy"] for r in rows if r["ssim"] <= mean_ssim]
        if below:
            out.append(f"The mean image alone has SSIM {mean_ssim:.3f}, at least that of "
                       f"{', '.join(f'`{p}`' for p in below)}: SSIM there does not show "
                       "recognisable reconstruction (a comparison of means; no per-victim SSIM "
                       "interval is computed).")
    maj = ref_rows.get("majority class")
    if maj is not None and all(r["attack_acc"] is not None for r in rows):
        groups = _by_verdict(result, rows, "majority class", "hit", "+.3f")
        if any(groups.values()):
            out.append(f"Attack accuracy against always guessing the most frequent victim "
                       f"class ({maj['attack_acc']:.3f}; chance 1/m is "
                       f"{refs.get('chance_accuracy', float('nan')):.3f}): above it "
                       + "; ".join(groups[1] or ["none"]) + "; not distinguishable "
                       + "; ".join(groups[0] or ["none"]) + "; below it "
                       + "; ".join(groups[-1] or ["none"]) + ".")
    with_maj = [r for r in rows if (result.details.get(r["policy"]) or {}).get(
        "attack_acc_without_majority") is not None]
    if with_maj:
        r = max(with_maj, key=lambda r: result.details[r["policy"]]["majority_rate"])
        d = result.details[r["policy"]]
        out.append(f"The judge's favourite class: under `{r['policy']}` it calls "
                   f"{d['majority_rate']:.0%} of the reconstructions class "
                   f"{d['majority_class']}; without the victims of that class attack accuracy "
                   f"is {d['attack_acc_without_majority']:.3f} (all victims: "
                   f"{r['attack_acc']:.3f}). The table \"Judge's calls\" gives every policy.")
    return out


def _accuracy_lines(references, refs) -> list:
    """The attack-accuracy panel's reference lines: chance (1/m) and the majority class."""
    lines = [(refs["chance_accuracy"], "chance")] if "chance_accuracy" in refs else []
    lines += [(r["attack_acc"], "majority class") for r in references
              if r["reference"] == "majority class"]
    return lines


def _mse_lines(references, refs) -> list:
    """The MSE panel's reference lines: the mean image and, only when the class means come
    from the target's training images, the class-mean guess -- called a floor only when it is
    below the mean image (a 'floor' drawn above the mean image would mislead)."""
    lines = [(refs["mse_mean_aux"], "mean aux image")]
    cm = next((r for r in references if r["reference"] == "class-mean floor"), None)
    if cm is not None:
        lines.append((cm["mse"], "class-mean floor" if cm["mse"] < refs["mse_mean_aux"]
                      else "class-mean guess (worse than mean image)"))
    return lines


def plot_leakage_utility(rows, baselines: dict, references, path) -> bool:
    """leakage_utility.png from data alone: the rows of an audit (policy, utility, attack_acc,
    ssim, mse), its baselines and its scored references, as results.json and run.json
    ('baselines', 'references') hold them, so a committed audit's plot can be drawn again.
    False (nothing written) when a row has no utility."""
    from tfminv.reporting.plots import Panel, scatter_panels

    if not rows or any(r.get("utility") is None for r in rows):
        return False
    labels = [r["policy"] for r in rows]
    util = [r["utility"] for r in rows]
    panels = []
    if all(r.get("attack_acc") is not None for r in rows):
        panels.append(Panel(util, [r["attack_acc"] for r in rows], labels,
                            "utility (top-1 accuracy of released vector)", "attack accuracy",
                            title="Attack accuracy vs utility", note="up = more leakage",
                            hlines=_accuracy_lines(references, baselines)))
    panels.append(Panel(util, [r["ssim"] for r in rows], labels, "utility", "SSIM",
                        title="SSIM vs utility", note="up = more leakage",
                        hlines=[(r["ssim"], "mean aux image") for r in references
                                if r["reference"] == "mean image"]))
    panels.append(Panel(util, [r["mse"] for r in rows], labels, "utility", "MSE",
                        title="MSE vs utility", note="down = more leakage",
                        hlines=_mse_lines(references, baselines)))
    scatter_panels(panels, path)
    return True


def _attacker_text(settings: dict) -> str:
    """What the report's attacker did with each policy's releases (settings["method"])."""
    method = settings.get("method", "truncation")
    if method == "aux_match":
        n = int(settings.get("match_n", 1))
        return ("The attacker trains nothing: for each victim it takes the auxiliary image "
                "whose answer, passed through the same policy, is closest to the victim's "
                "released vector (cosine of the two top-k releases, k = entries the policy can "
                "release" + (f"; the mean of the {n} closest images" if n > 1 else "") + "). "
                "The image is a real photo of another person, so an MSE above the mean image's "
                "does not mean nothing leaks: attack top-1 / top-5 say whether the judge names "
                "the victim in it.")
    text = ("The attacker trains an inversion model on its auxiliary images' predictions "
            "passed through the same policy (aligned to the release format, truncation k = "
            "entries the policy can release), then reconstructs every victim from its released "
            "vector.")
    if method != "truncation":
        text += f" Method: `{method}`."
    return text


def write_report(result: InversionResults, out_dir, *, title: str = "Inversion leakage",
                 command: str = "", extra: dict | None = None, grid_count: int = 12) -> dict:
    """Write results.json/.md, run.json, reconstructions.png, report.html (self-contained),
    report.md and, with victim labels, leakage_utility.png into out_dir; returns {name: path}.

    Each file is written under a temporary name and renamed when complete."""
    from tfminv.policies import parse
    from tfminv.reporting.figures import image_grid
    from tfminv.reporting.html_report import Report
    from tfminv.reporting.results import markdown_table, write_results

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
    noise = (st.get("target") or {}).get("noise") if isinstance(st.get("target"), dict) else None
    if noise:
        notes.append(f"The target answered the same probe images differently on two queries (max "
                     f"difference {noise['max_difference']:.3g}; target_noise="
                     f"{noise['target_noise']}): every number here rests on one draw of its "
                     "noise per image (the first answer, cached).")
    if result.references:
        settings["references"] = [dict(r) for r in result.references]
        notes.append("References scored like a policy:\n\n" + markdown_table(
            result.references, ["reference", "mse", "ssim", "attack_acc"]))
    # results.json: each row with its judge's-calls details (per-class attack accuracy, ...)
    json_rows = [{**r, **result.details.get(r["policy"], {})} for r in rows]
    json_path, md_path = write_results(json_rows, out_dir, columns=columns, title=title,
                                       notes=notes, extra=settings)
    files = {"results.json": json_path, "results.md": md_path, "run.json": out_dir / "run.json"}

    plot_path = out_dir / "leakage_utility.png"
    if plot_leakage_utility(rows, refs, result.references, plot_path):
        files["leakage_utility.png"] = plot_path
    else:
        plot_path = None

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
        "For each release policy the target releases policy(F(x)). " + _attacker_text(st)
        + " Leakage: MSE, PSNR, SSIM between "
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
    if result.references:
        cm = next((r for r in result.references if r["reference"] == "class-mean floor"), None)
        worse = (" The class-mean guess is worse than the mean image here, so it is no floor."
                 if cm is not None and cm["mse"] >= refs["mse_mean_aux"] else "")
        rep.table(["reference", "MSE", "SSIM", "attack top-1"],
                  [[r["reference"], r["mse"], r["ssim"], r["attack_acc"]]
                   for r in result.references],
                  caption="References scored like a policy: zeros (all-black guess), mean "
                          "image (the mean auxiliary training image for every victim), majority "
                          "class (every victim guessed as the most frequent victim class: the "
                          "accuracy a judge stuck on one class gets), class-mean floor (each "
                          "victim as its class's mean training image; only when the target's "
                          "training images are given)." + worse,
                  formats=[None, ".4f", ".3f", ".3f"])
    if result.details:
        rep.table(["policy", "majority class", "majority-class rate", "attack top-1",
                   "attack top-1 without majority-class victims"],
                  [[r["policy"], d["majority_class"], d["majority_rate"], r["attack_acc"],
                    d["attack_acc_without_majority"]]
                   for r in rows if (d := result.details.get(r["policy"]))],
                  caption="Judge's calls: the class the judge gives most reconstructions, the "
                          "share it gets, and attack accuracy with the victims of that class "
                          "left out. Per-class attack accuracy is in results.json.",
                  formats=[None, None, ".3f", ".3f", ".3f"])
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
