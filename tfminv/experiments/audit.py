"""Leakage audit of a classifier under release policies, with an attacker aligned to each policy.

    python -m tfminv.experiments.audit           # bundled FaceScrub-12 target, CelebA auxiliary set
    python -m tfminv.experiments.audit --target=savedmodel:/path/to/model --aux=celeba \\
        --policies="identity;topk:3;topk:1;round:1;label;gaussian:0.1" --out_dir=my_audit
    python -m tfminv.experiments.audit --target=keras:my_model.keras --aux=folder:public_faces/ \\
        --victims=npz:private.npz --policies='identity;topk:1' --out_dir=out/

With --victims (or a user data spec as --aux) the audit runs on the user's own data:
--aux and --victims take folder:DIR, npz:FILE, tfds:NAME:SPLIT or records:DIR[:SPLIT]
(tfminv.data.specs), --target is required, and attack accuracy is judged by --eval_model, or,
with victim labels and no --eval_model, by the target itself (labelled as biased upward).

For each policy: reconstruction MSE/PSNR/SSIM, attack accuracy (independent evaluation
classifier) and utility (top-1 accuracy of the released vector on the victims). Writes
results.json, results.md, run.json, leakage_utility.png, reconstructions.png, report.html
(self-contained) and report.md to --out_dir. Victims and the evaluation classifier come from
--dataset's allocation; a user's --target must use that allocation's class order. Budget
flags (--width, --epochs, --clf_epochs, --max_aux, --max_victims) are shared with the other
experiments. Flags -> `tfminv.scenarios.AuditConfig` -> `run_audit` (which calls the public door
`tfminv.run_audit`) -> the files above.
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import AuditConfig, run_audit

common.define_flags(AuditConfig)


def run(argv):
    config = common.config(AuditConfig)  # flags -> config (checked early)
    return common.publish(run_audit(config), "tfminv.experiments.audit")


def main():
    common.main(run, AuditConfig)


if __name__ == "__main__":
    sys.exit(main())
