"""Typed results of `tfminv.run_inversion` / `tfminv.run_audit`: one schema for every path.

`InversionResults.rows` holds one `InversionRow` per release policy; `to_json()` gives the same
rows as results.json. Accuracy of a judge on the reconstructions is `attack_acc` (top-1) and
`attack_acc_top5`, as in the scenario binaries' results. Figures and reports are written by
`tfminv.reporting.inversion.write_report` (presentation lives apart from these classes;
`write_report` here only calls it).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np


@dataclasses.dataclass
class InversionRow:
    """What the attacker achieved against one release policy.

    policy: the release policy spec (`tfminv.policies`); k: the truncation the attacker's
    inverter applies (entries the policy can release); released_entries: mean non-zero entries
    per released victim vector; mse/psnr/ssim: reconstruction vs victim (images in [0, 1]);
    beats_mean_aux: mse below the mean auxiliary image's MSE (what any attacker gets without
    querying); attack_acc / attack_acc_top5: share of reconstructions the judge puts in the
    victim's class (None without labels); utility: top-1 accuracy of the released vector on the
    victims, ties counted as a random pick (None without labels); agreement: released argmax
    equals the unreleased argmax; aux_val_mse: inverter MSE on held-out auxiliary images;
    seconds: wall time of this policy (queries, training or cache reuse, scoring).
    """

    policy: str
    k: int
    released_entries: float
    mse: float
    psnr: float
    ssim: float
    beats_mean_aux: bool
    attack_acc: float | None
    attack_acc_top5: float | None
    utility: float | None
    agreement: float
    aux_val_mse: float
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


COLUMNS = tuple(f.name for f in dataclasses.fields(InversionRow))

# Names that results.json files written by earlier versions used for the same quantities;
# readers of committed results map them with `canonical_row`.
LEGACY_NAMES = {"attack_top1": "attack_acc", "attack_top5": "attack_acc_top5"}


def canonical_row(row: dict) -> dict:
    """`row` with earlier versions' column names replaced by this schema's (LEGACY_NAMES)."""
    return {LEGACY_NAMES.get(k, k): v for k, v in row.items()}


@dataclasses.dataclass
class InversionResults:
    """Everything one `run_inversion` measured.

    rows: one InversionRow per policy, in the order asked. reconstructions: policy spec ->
    float32 array in the victims' shape [N, H, W, C], values in [0, 1]. baselines: reference
    numbers (mse_mean_aux, mse_zeros, with labels mse_class_mean (a floor no real attacker can
    compute: each victim as its class's mean, of the target's training images when given, else of
    the other victims of its class), chance_accuracy, target_accuracy_on_victims, and with a judge
    judge_accuracy_on_real_victims: the ceiling for attack_acc). settings: what was run (target
    identity, input range, whether outputs were probabilities or logits, the judge and its
    bias, sizes, budget, seed, seconds). victim_images / victim_labels: the victims as scored
    (images in [0, 1]). references: the reference guesses scored like a policy
    (`tfminv.attacks.core.reference_rows`: zeros, mean image, majority class, and the class-mean
    floor when the target's training images were given), each a dict with reference, mse,
    ssim, attack_acc. details: policy spec -> the judge's calls summarised
    (`tfminv.attacks.core.majority`: majority_class, majority_rate,
    attack_acc_without_majority, per_class_attack_acc). per_victim: policy spec or reference
    name -> per-victim arrays (mse, hit, utility) the findings' paired intervals rest on (not
    in results.json).
    """

    rows: list[InversionRow]
    reconstructions: dict
    baselines: dict
    settings: dict
    victim_images: np.ndarray
    victim_labels: np.ndarray | None = None
    references: list = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)
    per_victim: dict = dataclasses.field(default_factory=dict, repr=False)

    def row(self, policy: str) -> InversionRow:
        """The row of one policy spec (KeyError naming the specs present otherwise)."""
        for r in self.rows:
            if r.policy == policy:
                return r
        raise KeyError(f"no row for policy {policy!r}; rows: {[r.policy for r in self.rows]}")

    def row_dicts(self) -> list[dict]:
        return [r.to_dict() for r in self.rows]

    def to_dict(self) -> dict:
        """rows, baselines, references, per-policy details and settings (no arrays),
        JSON-ready."""
        return {"rows": self.row_dicts(), "baselines": dict(self.baselines),
                "references": [dict(r) for r in self.references],
                "details": {k: dict(v) for k, v in self.details.items()},
                "settings": dict(self.settings)}

    def to_json(self, indent: int = 2) -> str:
        from tfminv.io_utils import _default

        return json.dumps(self.to_dict(), indent=indent, default=_default)

    def table(self) -> str:
        """The rows as a markdown table."""
        from tfminv.reporting.results import markdown_table

        return markdown_table(self.row_dicts(), list(COLUMNS))

    def write_report(self, out_dir, *, title: str = "Inversion leakage", command: str = "",
                     extra: dict | None = None, grid_count: int = 12) -> dict:
        """Write results.json, results.md, run.json, reconstructions.png, report.html
        (self-contained), report.md and, with labels, leakage_utility.png into out_dir;
        returns {file name: path}. See tfminv.reporting.inversion.write_report."""
        from tfminv.reporting.inversion import write_report

        return write_report(self, out_dir, title=title, command=command, extra=extra,
                            grid_count=grid_count)
