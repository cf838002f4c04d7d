"""Leakage audit: how well can an adaptive attacker reconstruct inputs under each release policy?

For every policy the target releases `policy(F(x))` (as `PolicyOracle` would). The attacker
queries the target with its auxiliary images, so its training inputs pass through the same
policy (alignment), trains an inversion model with truncation k = the number of entries the
policy can release, and inverts the victims' released vectors. Per policy we measure

- leakage: reconstruction MSE / PSNR / SSIM against the victims, and attack accuracy (the
  share of reconstructions an independent evaluation classifier assigns to the victim's class);
- utility: top-1 accuracy of the released vector on the victims (ties, e.g. after rounding or
  for an all-zero vector, count as a uniform random pick among the tied classes), and its
  agreement with the unreleased prediction.

`run_audit` computes the numbers; `write_audit_report` writes results.json / results.md /
run.json (via tfminv.report), a leakage-vs-utility plot, a reconstruction grid, report.html
(self-contained) and report.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tfminv.errors import ConfigError
from tfminv.leakage import DEFAULT_POLICIES, tie_aware_accuracy  # noqa: F401 - public here too
from tfminv.policies import Policy, parse
from tfminv.results import COLUMNS, InversionResults


def grid_indices(labels, count: int, n: int | None = None) -> np.ndarray:
    """Up to `count` victims for figures: one per class in class order, then the next ones
    (without labels: the first `n`)."""
    if labels is None:
        return np.arange(min(count, n or 0), dtype=np.int64)
    labels = np.asarray(labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return np.array((firsts + rest)[:count], dtype=np.int64)


def run_audit(oracle, aux, victims, policies: str | Sequence[Policy | str], *, config,
              width: float = 1.0, eval_model=None, train_set=None, cache_dir=None,
              workdir=None, val_fraction: float = 0.1, seed: int = 0,
              progress: Callable[[str], None] | None = None) -> InversionResults:
    """`tfminv.run_audit` for ImageSets (the bundled allocations' form): audit `oracle` under
    each policy. aux / victims / train_set: ImageSets (victims' labels index the target's
    classes; train_set only feeds the class-mean baseline). config: the inverters'
    tfminv.training.TrainConfig. Returns InversionResults with settings naming the sets."""
    from tfminv.leakage import run_inversion

    result = run_inversion(
        oracle, aux.images, victims.images, victims.labels, policies=policies, width=width,
        eval_model=eval_model, train_images=None if train_set is None else train_set.images,
        train_labels=None if train_set is None else train_set.labels, cache_dir=cache_dir,
        workdir=workdir, val_fraction=val_fraction, seed=seed, config=config,
        progress=progress)
    result.settings.update(aux_name=getattr(aux, "name", ""),
                           victims_name=getattr(victims, "name", ""))
    return result


def aux_name(allocation, aux: str) -> str:
    """The allocation's name for --aux: one of its auxiliary set names (e.g. 'generic') or the
    dataset exactly one of them uses (e.g. 'celeba' -> 'generic' for FaceScrub)."""
    if aux in allocation.aux:
        return aux
    matches = [name for name, ref in allocation.aux.items() if ref.dataset == aux]
    if len(matches) != 1:
        options = sorted(set(allocation.aux) | {r.dataset for r in allocation.aux.values()})
        raise ConfigError(f"--aux={aux!r}: allocation {allocation.name!r} has no such auxiliary "
                          f"set; expected one of {options}")
    return matches[0]


_FORMATS = {"released_entries": ".2f", "utility": ".3f", "agreement": ".3f", "mse": ".4f",
            "psnr": ".2f", "ssim": ".3f", "attack_acc": ".3f", "attack_acc_top5": ".3f",
            "aux_val_mse": ".4f", "seconds": ".0f"}


def target_spec(target: str) -> str:
    """--target as an oracle spec: a bare SavedModel directory or .keras file is accepted too."""
    from tfminv.oracles.spec import SCHEMES

    if not target or target.partition(":")[0] in SCHEMES:
        return target
    p = Path(target)
    if p.is_dir():
        return f"savedmodel:{p}"
    if p.suffix == ".keras" and p.is_file():
        return f"keras:{p}"
    raise ConfigError(f"--target={target!r}: expected an oracle spec "
                      f"({', '.join(s + ':...' for s in SCHEMES)}), a SavedModel directory, a "
                      ".keras file, or empty for the bundled target")


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
    from tfminv.figures import image_grid
    from tfminv.html_report import Report
    from tfminv.plots import Panel, scatter_panels
    from tfminv.report import write_results

    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, refs, st = result.row_dicts(), result.baselines, result.settings
    settings = {**st, **(extra or {}), "baselines": refs}
    if command:
        settings["command"] = command
    nums = {k: v for k, v in refs.items() if isinstance(v, float)}
    notes = ["Baselines: " + ", ".join(f"{k} = {v:.4f}" for k, v in nums.items()),
             "See report.html (self-contained) or report.md for figures and findings."]
    json_path, md_path = write_results(rows, out_dir, columns=list(COLUMNS), title=title,
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
    label_w = max(cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] for s, _ in grid_rows)
    grid_path = out_dir / "reconstructions.png"
    image_grid(grid_rows, grid_path, label_width=label_w + 12)
    files["reconstructions.png"] = grid_path

    target = st.get("target", {})
    target_id = target.get("identity", "") if isinstance(target, dict) else str(target)
    sub = f"target `{target_id}`"
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
    rep.table(list(COLUMNS), [[r[c] for c in COLUMNS] for r in rows],
              caption=f"{st['victims']} victims of {'x'.join(map(str, st['image_shape']))}, "
                      f"{st['classes']} classes. k: attacker's truncation; released_entries: "
                      "mean non-zero entries per released vector; aux_val_mse: inverter MSE on "
                      "held-out auxiliary images; beats_mean_aux: MSE below the mean auxiliary "
                      "image's.",
              formats=[_FORMATS.get(c) for c in COLUMNS])
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


write_audit_report = write_report
