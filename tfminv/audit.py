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

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tfminv import paths
from tfminv.errors import ConfigError, DataError
from tfminv.policies import Policy, parse, parse_list

log = logging.getLogger(__name__)

DEFAULT_POLICIES = ("identity;topk:3;topk:1;round:1;label;gaussian:0.1;reverse_sigmoid:1,0.1;"
                    "temperature:4")


@dataclasses.dataclass
class AuditResult:
    """Everything an audit measured; `rows` has one dict per policy (results.json)."""

    rows: list[dict]
    references: dict
    reconstructions: dict  # policy spec -> reconstructions of all victims [N, H, W, 1]
    victims: object  # ImageSet
    num_classes: int
    settings: dict


def tie_aware_accuracy(released: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of released vectors when a client takes the argmax and breaks ties at
    random: a row scores 1/t if the true label is among its t tied maxima, else 0."""
    released = np.asarray(released, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    top = released.max(axis=1, keepdims=True)
    tied = released >= top
    hit = tied[np.arange(len(labels)), labels]
    return float(np.mean(hit / tied.sum(axis=1)))


def grid_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` victims for figures: one per class in class order, then the next ones."""
    labels = np.asarray(labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return np.array((firsts + rest)[:count], dtype=np.int64)


def _split_aux(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"--val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    if n - n_val < 1:
        raise DataError(f"auxiliary set has {n} images: too few to hold out {val_fraction:.0%}")
    return order[n_val:], order[:n_val]


def run_audit(oracle, aux, victims, policies: str | Sequence[Policy | str], *, config,
              width: float = 1.0, eval_model=None, train_set=None, cache_dir=None,
              workdir=None, val_fraction: float = 0.1, seed: int = 0,
              progress: Callable[[str], None] | None = None) -> AuditResult:
    """Audit `oracle` (the target, unreleased probabilities) under each policy.

    aux: the attacker's auxiliary ImageSet (only its images are used); victims: an ImageSet
    whose labels index the target's classes. config: a tfminv.training.TrainConfig for the
    inverters, width: their width multiplier. eval_model: Keras classifier (logits) for
    attack accuracy, None to skip it. train_set: the target's training ImageSet, only for the
    class-mean reference MSE. Predictions and inverters are cached under cache_dir (queries
    to the target happen once; a policy's output is drawn with a fixed seed).
    """
    from tfminv import metrics
    from tfminv.attacks.inversion import invert, train_inverter
    from tfminv.attacks.predictions import query_cached

    say = progress or log.info
    pols = parse_list(policies) if isinstance(policies, str) else parse_list(list(policies))
    if len(aux) < 2 or len(victims) < 1:
        raise DataError(f"audit needs auxiliary images and victims, got {len(aux)} and {len(victims)}")
    if aux.images.shape[1:] != victims.images.shape[1:]:
        raise DataError(f"auxiliary images {aux.images.shape[1:]} and victims "
                        f"{victims.images.shape[1:]} differ in shape")
    workdir = Path(workdir) if workdir else paths.cache_dir(cache_dir) / "audit_inverters"

    t0 = time.time()
    raw_victims = query_cached(oracle, victims, cache_dir)
    m = int(raw_victims.shape[1])
    labels = np.asarray(victims.labels).astype(np.int64)
    if labels.min() < 0 or labels.max() >= m:
        raise DataError(f"victim labels span [{labels.min()}, {labels.max()}] but the target "
                        f"releases {m} classes: the victims do not match this target")
    tr_idx, val_idx = _split_aux(len(aux), val_fraction, seed)

    refs = metrics.baselines(
        victims.images, aux.images[tr_idx],
        train_images=None if train_set is None else train_set.images,
        train_labels=None if train_set is None else train_set.labels,
        victim_labels=None if train_set is None else labels)
    references = {"mse_" + k: v for k, v in refs.items()}
    references["chance_accuracy"] = 1.0 / m
    references["target_accuracy_on_victims"] = tie_aware_accuracy(raw_victims, labels)
    if eval_model is not None:
        real = metrics.attack_accuracy(eval_model, victims.images, labels)
        references["eval_accuracy_on_real_victims"] = real["top1"]
    say(f"audit: {len(pols)} policies, {len(tr_idx)}+{len(val_idx)} auxiliary images, "
        f"{len(victims)} victims, {m} classes; target accuracy on victims "
        f"{references['target_accuracy_on_victims']:.3f}")

    rows, recons = [], {}
    for i, pol in enumerate(pols):
        t1 = time.time()
        spec = pol.spec()
        # Target side: what the API releases; attacker side: its aux queries go through the
        # same API, hence the same policy (distinct seeds: different noise draws).
        aux_rel = query_cached(oracle, aux, cache_dir, policy=pol, seed=seed)
        vic_rel = query_cached(oracle, victims, cache_dir, policy=pol, seed=seed + 1)
        k = pol.released_k(m)
        inverter = train_inverter(aux_rel[tr_idx], aux.images[tr_idx], k=k, method="truncation",
                                  config=config, workdir=workdir,
                                  val=(aux_rel[val_idx], aux.images[val_idx]), width=width)
        recon = invert(inverter, vic_rel)
        aux_val_mse = metrics.mse(invert(inverter, aux_rel[val_idx]), aux.images[val_idx])
        rec = metrics.reconstruction_metrics(recon, victims.images)
        row = {
            "policy": spec,
            "k": k,
            "released_entries": float(np.mean((vic_rel > 0).sum(axis=1))),
            "utility": tie_aware_accuracy(vic_rel, labels),
            "agreement": float(np.mean(np.argmax(vic_rel, 1) == np.argmax(raw_victims, 1))),
            "mse": rec["mse"], "psnr": rec["psnr"], "ssim": rec["ssim"],
            "attack_top1": None, "attack_top5": None,
            "aux_val_mse": aux_val_mse,
            "seconds": round(time.time() - t1, 1),
        }
        if eval_model is not None:
            acc = metrics.attack_accuracy(eval_model, recon, labels)
            row["attack_top1"], row["attack_top5"] = acc["top1"], acc["top5"]
        rows.append(row)
        recons[spec] = recon
        say(f"[{i + 1}/{len(pols)}] {spec}: utility {row['utility']:.3f}, mse {row['mse']:.4f}, "
            f"ssim {row['ssim']:.3f}, attack top-1 "
            f"{'-' if row['attack_top1'] is None else format(row['attack_top1'], '.3f')} "
            f"({row['seconds']:.0f}s)")
    settings = {"num_policies": len(pols), "aux_train": int(len(tr_idx)),
                "aux_val": int(len(val_idx)), "victims": int(len(victims)), "classes": m,
                "width": width, "train_config": config.key(), "val_fraction": val_fraction,
                "seed": seed, "aux_name": getattr(aux, "name", ""),
                "victims_name": getattr(victims, "name", ""), "oracle": oracle.identity(),
                "seconds": round(time.time() - t0, 1)}
    return AuditResult(rows=rows, references=references, reconstructions=recons,
                       victims=victims, num_classes=m, settings=settings)


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


COLUMNS = ("policy", "k", "released_entries", "utility", "agreement", "mse", "psnr", "ssim",
           "attack_top1", "attack_top5", "aux_val_mse", "seconds")
_FORMATS = (None, None, ".2f", ".3f", ".3f", ".4f", ".2f", ".3f", ".3f", ".3f", ".4f", ".0f")


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


def _findings(result: AuditResult) -> list[str]:
    """Plain statements read off the numbers (no claims the numbers do not support)."""
    rows, refs = result.rows, result.references
    out = []
    base = next((r for r in rows if r["policy"] == "identity"), None)
    key = "attack_top1" if all(r["attack_top1"] is not None for r in rows) else "ssim"
    name = "attack accuracy" if key == "attack_top1" else "SSIM"
    least = min(rows, key=lambda r: (r[key], -r["mse"]))
    most = max(rows, key=lambda r: (r[key], -r["mse"]))
    out.append(f"Most leakage by {name}: `{most['policy']}` ({most[key]:.3f}, MSE "
               f"{most['mse']:.4f}, utility {most['utility']:.3f}); least: `{least['policy']}` "
               f"({least[key]:.3f}, MSE {least['mse']:.4f}, utility {least['utility']:.3f}).")
    if base is not None:
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
    if key == "attack_top1":
        n = result.settings["victims"]
        p = float(np.mean([r["attack_top1"] for r in rows]))
        se = (p * (1 - p) / n) ** 0.5
        out.append(f"Attack accuracy is measured on {n} victims: its binomial standard error is "
                   f"about {se:.3f} near {p:.2f}, so differences under about {2 * se:.2f} are "
                   "within sampling noise.")
    if "mse_mean_aux" in refs:
        beat = [r["policy"] for r in rows if r["mse"] < refs["mse_mean_aux"]]
        out.append(f"{len(beat)} of {len(rows)} policies leave reconstructions with lower MSE "
                   f"than the mean auxiliary image ({refs['mse_mean_aux']:.4f}), which any "
                   "attacker gets without querying.")
    return out


def write_audit_report(result: AuditResult, out_dir, *, title: str = "Leakage audit",
                       command: str = "", extra: dict | None = None,
                       grid_count: int = 12) -> dict:
    """Write results.json/.md, run.json, leakage_utility.png, reconstructions.png, report.html
    and report.md into out_dir; returns {name: path}."""
    from tfminv.figures import image_grid
    from tfminv.html_report import Report
    from tfminv.plots import Panel, scatter_panels
    from tfminv.report import write_results

    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, refs = result.rows, result.references
    settings = {**result.settings, **(extra or {}), "references": refs}
    if command:
        settings["command"] = command
    notes = ["References: " + ", ".join(f"{k} = {v:.4f}" for k, v in refs.items()),
             "See report.html (self-contained) or report.md for figures and findings."]
    json_path, md_path = write_results(rows, out_dir, columns=list(COLUMNS), title=title,
                                       notes=notes, extra=settings)

    labels = [r["policy"] for r in rows]
    util = [r["utility"] for r in rows]
    panels = []
    if all(r["attack_top1"] is not None for r in rows):
        panels.append(Panel(util, [r["attack_top1"] for r in rows], labels,
                            "utility (top-1 accuracy of released vector)", "attack accuracy",
                            title="Attack accuracy vs utility", note="up = more leakage",
                            hlines=[(refs["chance_accuracy"], "chance")]))
    panels.append(Panel(util, [r["ssim"] for r in rows], labels, "utility", "SSIM",
                        title="SSIM vs utility", note="up = more leakage"))
    hl = [(refs["mse_mean_aux"], "mean aux image")]
    if "mse_class_mean_oracle" in refs:
        hl.append((refs["mse_class_mean_oracle"], "class-mean oracle"))
    panels.append(Panel(util, [r["mse"] for r in rows], labels, "utility", "MSE",
                        title="MSE vs utility", note="down = more leakage", hlines=hl))
    plot_path = out_dir / "leakage_utility.png"
    scatter_panels(panels, plot_path)

    victims = result.victims
    idx = grid_indices(victims.labels, grid_count)
    grid_rows = [("ground truth", victims.images[idx])]
    grid_rows += [(spec, rec[idx]) for spec, rec in result.reconstructions.items()]
    label_w = max(cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] for s, _ in grid_rows)
    grid_path = out_dir / "reconstructions.png"
    image_grid(grid_rows, grid_path, label_width=label_w + 12)

    rep = Report(title, subtitle=f"target `{result.settings['oracle']}`; auxiliary set "
                                 f"`{result.settings['aux_name']}`; victims "
                                 f"`{result.settings['victims_name']}`")
    rep.heading("What was measured")
    rep.paragraph(
        "For each release policy the target releases policy(F(x)). The attacker trains an "
        "inversion model on its auxiliary images' predictions passed through the same policy "
        "(aligned to the release format, truncation k = entries the policy can release), then "
        "reconstructs every victim from its released vector. Leakage: MSE, PSNR, SSIM between "
        "reconstruction and victim, and attack accuracy (an independent evaluation classifier "
        "labels the reconstruction; top-1 against the victim's identity). Utility: top-1 "
        "accuracy of the released vector on the victims (ties count as a random pick among "
        "the tied classes); agreement: released argmax equals the unreleased argmax.")
    rep.heading("Results")
    rep.table(list(COLUMNS), [[r[c] for c in COLUMNS] for r in rows],
              caption=f"{result.settings['victims']} victims, {result.num_classes} classes. "
                      "k: attacker's truncation; released_entries: mean non-zero entries per "
                      "released vector; aux_val_mse: inverter MSE on held-out auxiliary images.",
              formats=list(_FORMATS))
    rep.table(["reference", "value"], [[k, v] for k, v in refs.items()],
              caption="mse_mean_aux: MSE of the mean auxiliary image (free for any attacker); "
                      "mse_class_mean_oracle: each victim guessed as its class's mean training "
                      "image (a floor for label-only release a real attacker cannot compute); "
                      "eval_accuracy_on_real_victims: the evaluation classifier on the real "
                      "victim images (the ceiling for attack accuracy).",
              formats=[None, ".4f"])
    rep.heading("Findings")
    rep.bullets(_findings(result))
    invertible = [r["policy"] for r in rows if r["policy"] != "identity" and parse(r["policy"]).invertible]
    if invertible:
        rep.note(f"{', '.join(invertible)} {'is' if len(invertible) == 1 else 'are'} invertible: "
                 "the released vector determines the full one, so no information is removed. "
                 "Any leakage drop measured there reflects this attacker's training budget "
                 "(e.g. sensitivity to the input scale), not protection against a stronger attacker.")
    rep.heading("Leakage vs utility")
    rep.figure(plot_path, caption="One point per policy. Dashed lines: references.")
    rep.heading("Reconstructions")
    rep.figure(grid_path, caption="Top row: victims (one per class first). Each further row: "
                                  "the aligned attacker's reconstructions under one policy.")
    rep.heading("Settings")
    rep.code("\n".join(f"{k}: {v}" for k, v in settings.items() if k != "references"))
    html_path, rmd_path = out_dir / "report.html", out_dir / "report.md"
    rep.write(html_path, rmd_path)
    return {"results.json": json_path, "results.md": md_path, "run.json": out_dir / "run.json",
            "leakage_utility.png": plot_path, "reconstructions.png": grid_path,
            "report.html": html_path, "report.md": rmd_path}
