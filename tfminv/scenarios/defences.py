"""Training-time defences compared under one attacker: privacy against utility.

For each defence of `tfminv.defences` (one spec each, e.g. 'none;ls:0.1;mid:0.01;dpsgd:1.1,1.0'):
train (or reuse) the defended target, run the truncation attack at one k through the same code
as the truncation scenario (`base.prepare`, `base.selection_data`, `base.blackbox_attack`), and
score it with the same independent evaluation classifier (never defended). The 'none' row is
therefore the truncation scenario's row at the same settings: same cached target, predictions
and inverter, same numbers. Leakage is read two ways: the judge's top-1/top-5 on the
reconstructions, and the attack MSE relative to the mean auxiliary image (a guess any attacker
gets for free: a ratio of 1 means the attack recovers no more than that guess).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from tfminv import defences as defs
from tfminv.errors import ConfigError
from tfminv.scenarios import base
from tfminv.settings import setting

COLUMNS = ["defence", "status", "test_accuracy", "mse", "mse_rel_mean_aux", "attack_acc",
           "attack_acc_top5", "epsilon", "delta", "mse_mean_aux", "k", "dataset", "width",
           "epochs", "clf_epochs", "n_aux", "n_victims", "target_key"]

log = logging.getLogger(__name__)

#: a defended target at or below this multiple of chance accuracy has no utility left
DESTROYED_FACTOR = 2.0


def parse_list(text) -> tuple:
    """The canonical specs of a ';'-separated defence list (each by `tfminv.defences.parse`);
    ConfigError naming --defences for an empty list or a repeated defence."""
    parts = [p.strip() for p in str(text).split(";") if p.strip()]
    if not parts:
        raise ConfigError(f"--defences={text!r}: expected a ';'-separated list of "
                          f"{defs.SYNTAX}")
    specs = tuple(str(defs.parse(p)) for p in parts)
    dup = sorted({s for s in specs if specs.count(s) > 1})
    if dup:
        raise ConfigError(f"--defences={text!r}: {', '.join(dup)} given twice")
    return specs


@dataclasses.dataclass
class DefencesConfig(base.ScenarioConfig):
    """defences: the training-time defences to compare (';'-separated specs of
    `tfminv.defences`); k: the released top-k the truncation attacker inverts. The shared
    `defence` setting is not used here (each row sets its own)."""

    defences: str = setting("none;ls:0.1;ls:-0.05;mid:0.01;bido:0.05,0.5;dpsgd:1.1,1.0;tl:2",
                            "';'-separated training-time defences of the target to compare, "
                            f"each {defs.SYNTAX}")
    k: int = setting(10, "size of the released top-k prediction the attacker inverts",
                     minimum=1)

    def __post_init__(self):
        super().__post_init__()
        parse_list(self.defences)

    def preflight(self):
        alloc = super().preflight()
        if self.target:
            raise ConfigError(f"--target={self.target}: the defence comparison trains its own "
                              "defended targets; run it without --target")
        if self.k > alloc.num_classes:
            raise ConfigError(f"--k={self.k}: k must be at most the {alloc.num_classes} "
                              f"classes of --dataset={self.dataset}")
        return alloc


def check_data(config: DefencesConfig, specs) -> None:
    """`tfminv.defences.check` of every spec against the target's training rows (the
    allocation's within max_train, less the model-selection hold-out) and the classifier's
    TrainConfig, so that a DP-SGD batch size that does not divide them, a delta >= 1/N or
    transfer learning without labelled auxiliary images fails in one line before the first
    target trains, not after the defences listed before it."""
    from tfminv.data import allocations
    from tfminv.data.splits import holdout
    from tfminv.training.targets import VAL_FRACTION

    alloc = base.budgeted_allocation(config)
    cfg = config.classifier_config()
    n = len(allocations.materialize(alloc.target_train, **config.data_kwargs()))
    n_train = len(holdout(n, VAL_FRACTION, cfg.seed)[0])
    for spec in specs:
        aux = None
        if defs.parse(spec).name == "tl":
            aux = base.defended_target_kwargs(dataclasses.replace(config, defence=spec), alloc,
                                              config.aux or alloc.default_aux)["aux"]
        defs.check(spec, n_train=n_train, batch_size=cfg.batch_size, strategy=cfg.strategy,
                   precision=cfg.precision, aux=aux)


def run_defences(config: DefencesConfig) -> "DefencesResult":
    """Rows (one per defence, in the given order, then the mean-image reference): test_accuracy
    of the defended target, the attack's mse, mse_rel_mean_aux, attack_acc(_top5), epsilon /
    delta for DP-SGD, status ('ok' or 'utility destroyed' at or below twice chance)."""
    t_start = time.perf_counter()
    alloc = config.preflight()
    specs = parse_list(config.defences)
    check_data(config, specs)
    chance = 1.0 / alloc.num_classes
    rows, targets, timings = [], {}, {}
    mean_row = None
    for i, spec in enumerate(specs, 1):
        t = time.perf_counter()
        log.info("defence %d/%d: %s", i, len(specs), spec)
        s = base.prepare(dataclasses.replace(config, defence=spec))
        tr_preds, tr_images, val, selection = base.selection_data(s)
        attack = base.blackbox_attack(s, tr_preds, tr_images, val, k=min(config.k,
                                                                         s.num_outputs))
        refs = base.reference_baselines(s)
        mses = refs.mses()
        info = s.target_info.get("defence") or {}
        acc = float(s.target_info["test_accuracy"])
        rows.append({"defence": spec,
                     "status": ("utility destroyed" if acc <= DESTROYED_FACTOR * chance
                                else "ok"),
                     "test_accuracy": acc, "mse": attack.scores["mse"],
                     "mse_rel_mean_aux": attack.scores["mse"] / mses["mse_mean_aux"],
                     "attack_acc": attack.scores.get("attack_acc"),
                     "attack_acc_top5": attack.scores.get("attack_acc_top5"),
                     "epsilon": info.get("epsilon"), "delta": info.get("delta"),
                     "mse_mean_aux": mses["mse_mean_aux"], "k": config.k,
                     "dataset": config.dataset, "width": config.width, "epochs": config.epochs,
                     "clf_epochs": config.clf_epochs or config.epochs,
                     "n_aux": len(tr_images), "n_victims": len(s.victims),
                     "target_key": s.target_info["key"], "selection": selection})
        targets[spec] = s.target_info
        timings[spec] = round(time.perf_counter() - t, 1)
        r = rows[-1]
        log.info("defence %s: %s, test accuracy %.4f, attack top-5 %s, MSE / mean-image MSE "
                 "%.4f (%.0f s)", spec, r["status"], acc, _num(r["attack_acc_top5"]),
                 r["mse_rel_mean_aux"], timings[spec])
        if mean_row is None:
            mean_row = _mean_image_row(s, refs, config)
    rows.append(mean_row)
    name = f"defences_{alloc.name}"
    fig = f"{name}_privacy_utility.png"
    extra = {"defences": list(specs), "targets": targets, "eval_classifier": s.eval_info,
             "chance_accuracy": chance, "figure": fig,
             "seconds": {**timings, "total": round(time.perf_counter() - t_start, 1)}}
    notes = [f"![privacy-utility]({fig})",
             f"One target per defence, attacked by the truncation inverter at k={config.k} "
             "(trained on the target's answers to the auxiliary set, selected on held-out "
             "auxiliary rows) and scored on the same victims by the same independent "
             "evaluation classifier (not defended). test_accuracy = the defended target's "
             "top-1 on its held-out test images; mse_rel_mean_aux = attack MSE / MSE of the "
             "mean auxiliary image (1 = no better than that free guess; lower = more leakage); "
             "attack_acc / attack_acc_top5 = the judge's top-1 / top-5 on the "
             "reconstructions; epsilon at delta from dp-accounting's RDP accountant (DP-SGD "
             "only; the held-out model selection is outside it). status 'utility destroyed': "
             f"test accuracy at or below {DESTROYED_FACTOR:g} x chance ({chance:.3f}). The "
             "last row scores the mean auxiliary image itself with the same judge."]
    return DefencesResult(name, f"Training-time defences vs truncation inversion: "
                          f"{config.dataset}", rows, COLUMNS, extra, notes, [],
                          plot_name=fig)


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _mean_image_row(setup, refs, config) -> dict:
    import numpy as np

    from tfminv.attacks import core

    v = setup.victims
    guess = np.broadcast_to(refs.mean_aux_image, v.images.shape).astype(np.float32)
    sc = core.score(guess, v.images, v.labels, setup.judge) if setup.judge else {}
    return {"defence": "reference: mean_aux image", "status": "reference",
            "test_accuracy": None, "mse": refs.mses()["mse_mean_aux"], "mse_rel_mean_aux": 1.0,
            "attack_acc": sc.get("attack_acc"), "attack_acc_top5": sc.get("attack_acc_top5"),
            "epsilon": None, "delta": None, "mse_mean_aux": refs.mses()["mse_mean_aux"],
            "k": 0, "dataset": config.dataset, "width": config.width, "epochs": config.epochs,
            "clf_epochs": config.clf_epochs or config.epochs, "n_aux": None,
            "n_victims": len(v), "target_key": None}


@dataclasses.dataclass
class DefencesResult(base.ScenarioResult):
    """A ScenarioResult that also draws the privacy-utility figure (`plot_privacy_utility`)."""

    plot_name: str = "privacy_utility.png"

    def write(self, out_dir, *, command: str | None = None) -> list[Path]:
        from tfminv.io_utils import atomic_path

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / self.plot_name, suffix=".png") as tmp:
            plot_privacy_utility(self.rows, tmp, title=self.title)
        return [out / self.plot_name, *super().write(out_dir, command=command)]


def plot_privacy_utility(rows, path, *, title: str = "") -> None:
    """Two panels, one point per defence: the target's test accuracy (x) against leakage (y:
    the judge's top-5 on the reconstructions; attack MSE / mean-image MSE, axis inverted so up
    is more leakage). The undefended target is a star, the mean-image guess a dashed line;
    labels are placed where they overlap no other label (tried offsets around each point)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get("test_accuracy") is not None]
    ref = next((r for r in rows if r.get("status") == "reference"), None)
    panels = [("attack_acc_top5", "attack top-5 (independent judge)  \u2191 more leakage"),
              ("mse_rel_mean_aux", "attack MSE / mean-image MSE  \u2191 more leakage")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    for ax, (col, ylabel) in zip(axes, panels):
        for r in pts:
            if r.get(col) is None:
                continue
            undefended = r["defence"] == "none"
            destroyed = r["status"] == "utility destroyed"
            ax.scatter(r["test_accuracy"], r[col], s=160 if undefended else 60,
                       marker="*" if undefended else ("x" if destroyed else "o"),
                       color="black" if undefended else ("grey" if destroyed else "tab:blue"),
                       zorder=3)
        if ref is not None and ref.get(col) is not None:
            ax.axhline(ref[col], ls="--", color="tab:red", lw=1,
                       label="mean auxiliary image (free guess)")
        if col == "mse_rel_mean_aux":
            ax.invert_yaxis()
        ax.set_xlabel("target test accuracy  \u2192 more utility")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.scatter([], [], marker="*", s=160, color="black", label="undefended target")
        if any(r["defence"] != "none" and r["status"] != "utility destroyed" for r in pts):
            ax.scatter([], [], marker="o", color="tab:blue", label="defended target")
        if any(r["status"] == "utility destroyed" for r in pts):
            ax.scatter([], [], marker="x", color="grey", label="utility destroyed")
        ax.legend(loc="best", fontsize=8)
        ax.margins(0.15)
    fig.suptitle(title)
    fig.tight_layout()
    for ax, (col, _) in zip(axes, panels):
        _place_labels(fig, ax, [(r["test_accuracy"], r[col], _label(r)) for r in pts
                                if r.get(col) is not None])
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def _label(row) -> str:
    eps = row.get("epsilon")
    return row["defence"] + (f" (\u03b5={eps:.3g})" if eps is not None else "")


#: label offsets (points) tried in order: close to the point first, then rings farther out
#: (drawn with a leader line), so that a cluster of points at one place still gets a label each
OFFSETS = [(8, 6), (8, -14), (-8, 6), (-8, -14), (8, 18), (-8, 18), (8, -26), (-8, -26),
           (20, 0), (-20, 0), (8, 30), (-8, -38)] + [
    (dx * s, dy * s) for s in (2, 3) for dx, dy in ((16, 12), (16, -16), (-16, 12),
                                                    (-16, -16), (24, 0), (-24, 0), (0, 24),
                                                    (0, -28))]


def _place_labels(fig, ax, points) -> None:
    """Annotate each (x, y, text) at the first offset whose text box lies inside the axes and
    overlaps neither a label placed so far, the legend, nor a marker (falls back to the first
    offset that stays inside, then to the first offset)."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    placed = [ax.get_legend().get_window_extent(renderer)] if ax.get_legend() else []
    r = 6  # marker half-size in display pixels
    markers = [Bbox.from_extents(px - r, py - r, px + r, py + r)
               for px, py in (ax.transData.transform((x, y)) for x, y, _ in points)]

    def fits(box):
        return (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
                and box.y1 <= inside.y1)

    def annotate(text, x, y, dx, dy, line=True):
        # a thin leader line wherever the label is not at its usual place (up right); the
        # search measures the text alone (an annotation's extent includes its line)
        far = line and (dx, dy) != OFFSETS[0]
        return ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                           fontsize=8, ha="left" if dx > 0 else "right",
                           arrowprops=dict(arrowstyle="-", lw=0.5, color="grey",
                                           shrinkA=0, shrinkB=4) if far else None)

    for i, (x, y, text) in enumerate(points):
        others = markers[:i] + markers[i + 1:]
        # the first offset that clears everything, else labels (a marker may be covered: two
        # points at one place), else that stays inside the axes, else the first
        tiers = [None, None, None]
        for dx, dy in OFFSETS:
            ann = annotate(text, x, y, dx, dy, line=False)
            box = ann.get_window_extent(renderer).expanded(1.05, 1.1)
            ann.remove()
            clear_labels = not any(box.overlaps(b) for b in placed)
            clear_markers = not any(box.overlaps(b) for b in others)
            for t, ok in enumerate((clear_labels and clear_markers, clear_labels, True)):
                if tiers[t] is None and fits(box) and ok:
                    tiers[t] = (dx, dy)
            if tiers[0]:
                break
        dx, dy = next((t for t in tiers if t), OFFSETS[0])
        box = annotate(text, x, y, dx, dy, line=False)
        placed.append(box.get_window_extent(renderer).expanded(1.05, 1.1))
        box.remove()
        annotate(text, x, y, dx, dy)
