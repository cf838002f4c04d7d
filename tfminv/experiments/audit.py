"""Leakage audit of a classifier under release policies, with an attacker aligned to each policy.

    python -m tfminv.experiments.audit           # bundled FaceScrub-12 target, CelebA auxiliary set
    python -m tfminv.experiments.audit --target=savedmodel:/path/to/model --aux=celeba \\
        --policies="identity;topk:3;topk:1;round:1;label;gaussian:0.1" --out_dir=my_audit
    python -m tfminv.experiments.audit --target=keras:my_model.keras --aux=folder:public_faces/ \\
        --victims=npz:private.npz --policies='identity;topk:1' --out_dir=out/

Several already-trained models of your own, one table with a 'model' column (each model's
full report in --out_dir/NAME/):

    python -m tfminv.experiments.audit --models=plain=keras:a.keras,smoothed=keras:b.keras \
        --aux=folder:public_faces/ --victims=npz:private.npz --out_dir=out/

With --victims (or a user data spec as --aux) the audit runs on the user's own data:
--aux and --victims take folder:DIR, npz:FILE, tfds:NAME:SPLIT or records:DIR[:SPLIT]
(tfminv.data.specs), --target is required, and attack accuracy is judged by --eval_model, or,
with victim labels and no --eval_model, by the target itself (labelled as biased upward).

Before any training, with labelled victims, the target's (and --eval_model's) accuracy on them
is checked under the declared --input_range (--eval_input_range): near chance while the other
scale (0,1 vs 0,255) answers clearly better stops the run with one line (--scale_check=warn
proceeds); class sub-folders must be one per target class.

For each policy: reconstruction MSE/PSNR/SSIM, attack accuracy (independent evaluation
classifier) and utility (top-1 accuracy of the released vector on the victims). Writes
results.json, results.md, run.json, leakage_utility.png, reconstructions.png, report.html
(self-contained) and report.md to --out_dir. Without --victims, victims and the evaluation
classifier come from --dataset's allocation and a --target must use its class order. Default
budget: --epochs=20 --width=0.25 (as `tfminv.run_audit`); the expected cost on this machine is
printed before training. --help lists the audit's flags, --helpfull every flag. Flags ->
`tfminv.scenarios.AuditConfig` -> `run_audit` (which calls the public door `tfminv.run_audit`)
-> the files above.
"""

from __future__ import annotations

import sys

from tfminv.experiments import common
from tfminv.scenarios import AuditConfig, run_audit

# --help lists these (auditing a model: the target, its data, the budget); --helpfull all
KEY_FLAGS = ("target", "models", "victims", "aux", "eval_model", "input_range",
             "eval_input_range", "outputs", "target_noise", "scale_check", "policies", "method", "epochs",
             "width", "max_aux", "max_victims",
             "out_dir", "title", "figure_n", "dataset", "audit_seed", "seed", "aux_augment",
             "tfds_data_dir", "cache_dir", "concurrency", "rate_limit", "verbose")
common.define_flags(AuditConfig, key=KEY_FLAGS)


def run(argv):
    config = common.config(AuditConfig)  # flags -> config (checked early)
    return common.publish(run_audit(config), "tfminv.experiments.audit")


def main():
    common.main(run, AuditConfig)


if __name__ == "__main__":
    sys.exit(main())
