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

`run_audit` is `tfminv.run_audit` (tfminv.leakage) for the bundled allocations' ImageSets;
`write_report` (tfminv.reporting.inversion; also under its earlier name `write_audit_report`)
writes results.json / results.md / run.json, a leakage-vs-utility plot, a reconstruction grid,
report.html (self-contained) and report.md. `aux_name` and `target_spec` turn the audit
binary's --aux and --target into library values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from tfminv.errors import ConfigError
from tfminv.leakage import DEFAULT_POLICIES, tie_aware_accuracy  # noqa: F401 - public here too
from tfminv.policies import Policy
from tfminv.reporting.inversion import grid_indices, write_report  # noqa: F401 - public here
from tfminv.results import InversionResults


def run_audit(oracle, aux, victims, policies: str | Sequence[Policy | str], *, config,
              width: float = 1.0, eval_model=None, train_set=None, cache_dir=None,
              workdir=None, val_fraction: float = 0.1, seed: int = 0, aux_augment: str = "",
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
        aux_augment=aux_augment, progress=progress)
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


write_audit_report = write_report  # the audit's earlier name
