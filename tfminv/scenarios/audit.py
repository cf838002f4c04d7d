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

The seventh scenario: `run_audit(AuditConfig(...)) -> AuditResult` (the one `run_audit`,
`tfminv.leakage`'s, in its typed form; the body is `audit_scenario`), whose `write` produces
results.json / results.md / run.json, a leakage-vs-utility plot, a reconstruction grid,
report.html (self-contained) and report.md. Two sources of data, one attack:

- the bundled allocations (default): `dataset`'s victims, evaluation classifier and auxiliary
  set `aux`; the target is the allocation's cached classifier or `target`;
- the user's own data: `victims` and `aux` are image-set specs (`tfminv.data.specs`:
  folder:DIR, npz:FILE, tfds:NAME:SPLIT, records:DIR[:SPLIT]) and `target` is required;
  attack accuracy is judged by `eval_model`, else by the target itself (labelled as biased
  upward).

Both end in one call of the public door's typed form, `tfminv.run_inversion(target,
InversionInputs(...), config=InversionConfig(policies=...))` (what the keyword form
`tfminv.run_audit(target, aux_images, ...)` runs too): this module only turns a config into
that call's arguments. `audit_sets` is the same call for ImageSets.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Callable, Sequence

from tfminv.attacks import identity as _identity
from tfminv.attacks import inversion as _inversion
from tfminv.errors import ConfigError
# run_audit is the door's: its typed form run_audit(AuditConfig) runs `audit_scenario`
from tfminv.leakage import DEFAULT_POLICIES, OUTPUTS, run_audit  # noqa: F401 - public here
from tfminv.oracles.base import query_counts
from tfminv.oracles.checks import TARGET_NOISE, TARGET_NOISE_HELP
from tfminv.scenarios import base
from tfminv.settings import setting


@dataclasses.dataclass
class AuditConfig(_identity.IdentitySettings, base.ScenarioConfig):
    """policies: release policy specs separated by ';' (None: DEFAULT_POLICIES); audit_seed: the
    auxiliary train/validation split and the policies' noise draws (training seeds come from
    `seed`); title: the report's (None: one naming target and auxiliary set); victims / aux /
    eval_model / input_range / outputs / tfds_data_dir: the user-data path (see module doc).
    epochs / width default to the Python door's CPU-sized budget (20, 0.25), not the paper's.

    The audit selects inverters on held-out auxiliary data only (select_on='aux_val') and keeps
    the auxiliary set in memory (no stream_aux)."""

    # one CPU-sized default budget for both doors: tfminv.run_audit's (20 epochs, width 0.25)
    epochs: int = setting(20, "inverter training epochs; the audit's CPU-sized default, as "
                          "tfminv.run_audit's (the paper: 100)", minimum=1)
    width: float = setting(0.25, "channel width multiplier of the inverters (and the bundled "
                           "classifiers); the audit's CPU-sized default, as tfminv.run_audit's "
                           "(the paper: 1.0)")
    dataset: str = setting("facescrub", "allocation to audit (victims, evaluation classifier, "
                           "bundled target and auxiliary sets): an allocation name (built-in: "
                           "facescrub, mnist, ...) or a JSON allocation file")
    aux: str = setting("", "auxiliary set name of the allocation (empty: its default), or with "
                       "--victims the user's auxiliary images: folder:DIR, npz:FILE, "
                       "tfds:NAME:SPLIT or records:DIR[:SPLIT]")
    figure_n: int = setting(12, "victims shown in the reconstruction grid", minimum=0)
    policies: str | None = setting(None, "release policies separated by ';', each composable "
                                   "with '|', e.g. 'identity;topk:3;topk:3|round:2;label' "
                                   "(default: identity, top-3, top-1, round to 1 decimal, label "
                                   "only, Gaussian 0.1, reverse sigmoid 1,0.1, temperature 4)")
    audit_seed: int = setting(0, "seed of the auxiliary train/validation split and of the "
                              "policies' noise draws (training seeds come from --seed)")
    title: str | None = setting(None, "report title")
    victims: str | None = setting(None, "the user's victims: folder:DIR, npz:FILE, "
                                  "tfds:NAME:SPLIT or records:DIR[:SPLIT] (labels from class "
                                  "sub-folders / 'labels'); with it --aux must be such a spec "
                                  "too and --target is required")
    eval_model: str | None = setting(None, "judge of attack accuracy on user data (any --target "
                                     "form); default: the target itself, labelled as biased "
                                     "upward")
    input_range: str = setting("0,1", "the target's expected input scale 'lo,hi' (user data): "
                               "0,1 or 0,255")
    eval_input_range: str = setting("", "the judge's (--eval_model's) expected input scale "
                                    "'lo,hi' (user data); empty: the target's --input_range")
    scale_check: str = setting("error", "with labelled victims, the target's and judge's "
                               "accuracy on them is checked before training; error: refuse an "
                               "input scale under which they answer near chance while the other "
                               "(0,1 vs 0,255) answers clearly better; warn: log it and go on",
                               choices=("error", "warn"))
    outputs: str = setting("auto", "what the target answers (user data); auto: from the model's "
                           "last layer or the answers", choices=OUTPUTS)
    target_noise: str = setting("refuse", TARGET_NOISE_HELP, choices=TARGET_NOISE)
    target_train: str | None = setting(None, "the target's own training images (user data): "
                                       "folder:DIR, npz:FILE, tfds:NAME:SPLIT or "
                                       "records:DIR[:SPLIT] with labels; only for the "
                                       "class-mean floor reference row")
    tfds_data_dir: str | None = setting(None, "prepared TFDS data dir for tfds: specs (default "
                                        "$TFDS_DATA_DIR); never downloads")
    models: str | None = setting(None, "several already-trained models to audit by name "
                                 "under the same attacker, auxiliary set and victims: "
                                 "','-separated NAME=TARGET pairs, each TARGET any --target "
                                 "form, e.g. 'plain=keras:a.keras,smoothed=keras:b.keras' "
                                 "(instead of --target); one table with a 'model' column")
    method: str = _inversion.method_setting()

    def __post_init__(self):
        super().__post_init__()  # ScenarioConfig's checks, then the identity settings'
        from tfminv.data import specs
        from tfminv.leakage import parse_input_range
        from tfminv.policies import parse_list

        parse_list(self.policies or DEFAULT_POLICIES)  # a bad spec fails before any work
        if self.select_on != "aux_val":
            raise ConfigError("--select_on: the audit selects inverters on held-out auxiliary "
                              "data only (aux_val); a real attacker has no access to the "
                              "target's data")
        if self.stream_aux:
            raise ConfigError("--stream_aux: the audit releases the auxiliary set through each "
                              "policy in memory; run it without --stream_aux")
        if self.models:
            if self.target:
                raise ConfigError(f"--models and --target={self.target}: give the models to "
                                  "audit in one of them")
            model_specs(self.models)
        if self.user_data and (not (self.target or self.models) or not self.victims or
                               not specs.is_spec(self.aux)):
            raise ConfigError("--victims, --aux and --target go together for an audit of your "
                              "own data: e.g. --target=keras:model.keras --aux=folder:DIR "
                              "--victims=npz:FILE")
        try:
            parse_input_range(self.input_range)
        except ConfigError as e:
            raise ConfigError(f"--{e}") from None
        if self.eval_input_range:
            try:
                parse_input_range(self.eval_input_range)
            except ConfigError as e:
                raise ConfigError(f"--eval_{e}") from None
        if not self.user_data:
            target_spec(self.target)

    def preflight(self):
        if self.user_data:
            return None
        alloc = super().preflight()
        aux_name(alloc, self.aux or alloc.default_aux)
        return alloc

    def attack(self) -> dict:
        """The attack's settings as the door's keywords: method and the identity settings."""
        return {"method": self.method, **dataclasses.asdict(_identity.options_of(self))}

    @property
    def user_data(self) -> bool:
        """Whether the audit runs on the user's own images (--victims or a data spec as aux)."""
        from tfminv.data import specs

        return bool(self.victims) or specs.is_spec(self.aux)


@dataclasses.dataclass
class AuditResult:
    """What an audit measured (`inversion`, a `tfminv.results.InversionResults`) and how to
    write it: `name` is the default output folder, `extra` goes to run.json."""

    name: str
    title: str
    inversion: object
    extra: dict = dataclasses.field(default_factory=dict)
    grid_count: int = 12

    @property
    def rows(self) -> list[dict]:
        return self.inversion.row_dicts()

    @property
    def columns(self) -> list[str]:
        from tfminv.results import COLUMNS

        return list(COLUMNS)

    def write(self, out_dir, *, command: str | None = None) -> list[Path]:
        """`tfminv.reporting.inversion.write_report` into out_dir; returns the paths written."""
        from tfminv.reporting.inversion import write_report

        files = write_report(self.inversion, out_dir, title=self.title, command=command or "",
                             extra=self.extra, grid_count=self.grid_count)
        return list(files.values())


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def model_specs(text: str) -> dict:
    """{name: oracle spec} of --models ('NAME=TARGET,...', each TARGET any --target form, in
    the given order); ConfigError naming --models for a pair without '=', a name that is not
    [A-Za-z0-9_.-] (it names the model's report folder), a name given twice or fewer than 2
    models."""
    out = {}
    for part in (p.strip() for p in str(text).split(",")):
        name, eq, spec = (x.strip() for x in part.partition("="))
        if not eq or not spec or not MODEL_NAME.fullmatch(name):
            raise ConfigError(f"--models={text!r}: {part!r} is not NAME=TARGET (NAME of letters, "
                              "digits, '_', '.', '-'); expected e.g. "
                              "'plain=keras:a.keras,smoothed=keras:b.keras'")
        if name in out:
            raise ConfigError(f"--models={text!r}: model name {name!r} given twice")
        try:
            out[name] = target_spec(spec)
        except ConfigError as e:
            raise ConfigError(f"--models: model {name!r}: {e}") from None
    if len(out) < 2:
        raise ConfigError(f"--models={text!r}: name at least 2 models (one model: --target)")
    return out


@dataclasses.dataclass
class ModelsAuditResult:
    """One audit per named model (`results`: name -> AuditResult, same policies, attacker
    budget, auxiliary set and victims); `rows` are theirs with a leading 'model' column.
    `write` puts each model's full report in out_dir/NAME/ and the joint table in
    out_dir/results.json / results.md / run.json."""

    results: dict
    name: str = "audit_models"

    @property
    def title(self) -> str:
        first = next(iter(self.results.values()))
        return f"{first.title}: models {', '.join(self.results)}"

    @property
    def rows(self) -> list[dict]:
        return [{"model": name, **row} for name, res in self.results.items()
                for row in res.rows]

    @property
    def columns(self) -> list[str]:
        return ["model", *next(iter(self.results.values())).columns]

    def write(self, out_dir, *, command: str | None = None) -> list[Path]:
        from tfminv.reporting.results import write_results

        out_dir = Path(out_dir)
        written = []
        for name, res in self.results.items():
            written += res.write(out_dir / name, command=command)
        extra = {"models": {name: res.extra for name, res in self.results.items()},
                 **({"command": command} if command else {})}
        notes = ["Each model's full report (figures, findings, references): "
                 + ", ".join(f"[{n}]({n}/report.html)" for n in self.results) + "."]
        written += list(write_results(self.rows, out_dir, columns=self.columns,
                                      title=self.title, notes=notes, extra=extra))
        return written + [out_dir / "run.json"]


def audit_scenario(config: AuditConfig) -> AuditResult:
    """The audit scenario, called as `run_audit(config)` (`tfminv.leakage.run_audit`'s typed
    form, the one run_audit): `config` -> target, auxiliary set and victims -> the door
    (`run_inversion`'s typed form over the policies) -> AuditResult; with `models`, one such audit per named
    model (the same policies, aux split, seeds and victims) -> ModelsAuditResult. Progress
    lines go to stdout."""
    from tfminv.policies import parse_list

    policies = parse_list(config.policies or DEFAULT_POLICIES)
    if config.models:
        return ModelsAuditResult({name: audit_scenario(dataclasses.replace(config, target=spec,
                                                                           models=None))
                                  for name, spec in model_specs(config.models).items()})
    if config.user_data:
        return _user_audit(config, policies)
    return _bundled_audit(config, policies)


def _user_audit(config: AuditConfig, policies) -> AuditResult:
    from tfminv.data import specs
    from tfminv.leakage import InversionInputs, inversion_config, run_inversion

    # the caps apply before loading: only the first max_aux / max_victims images are read
    aux = specs.load(config.aux, what="--aux", tfds_data_dir=config.tfds_data_dir,
                     limit=config.max_aux)
    victims = specs.load(config.victims, what="--victims", tfds_data_dir=config.tfds_data_dir,
                         limit=config.max_victims)
    train = (specs.load(config.target_train, what="--target_train",
                        tfds_data_dir=config.tfds_data_dir) if config.target_train else None)
    cut = lambda a, n: a if a is None or not n else a[:n]  # noqa: E731 - the budget caps
    data = InversionInputs(cut(aux.images, config.max_aux),
                           cut(victims.images, config.max_victims),
                           cut(victims.labels, config.max_victims),
                           None if train is None else train.images,
                           None if train is None else train.labels, victims.label_names)
    cfg = inversion_config(config.train_config(), policies=policies, width=config.width,
                           outputs=config.outputs, input_range=config.input_range,
                           target_noise=config.target_noise,
                           eval_input_range=config.eval_input_range or None,
                           scale_check=config.scale_check, cache_dir=config.cache_dir,
                           val_fraction=config.aux_val_fraction, seed=config.audit_seed,
                           aux_augment=config.aux_augment, **config.attack())
    result = run_inversion(target_spec(config.target), data, config=cfg,
                           eval_model=config.eval_model or None, progress=print)
    return AuditResult("audit_user", config.title or "Leakage audit", result,
                       {"aux_set": config.aux, "victims_set": config.victims},
                       grid_count=config.figure_n)


def _bundled_audit(config: AuditConfig, policies) -> AuditResult:
    from tfminv.attacks import core
    from tfminv.data import allocations

    t0 = time.perf_counter()
    alloc = allocations.get(config.dataset)
    aux = aux_name(alloc, config.aux or alloc.default_aux)
    target = target_spec(config.target)
    s = base.prepare(dataclasses.replace(config, target=target), aux,
                     target_noise=config.target_noise)
    result = audit_sets(
        s.oracle, s.aux_set, s.victims, policies, config=config.train_config(),
        width=config.width, eval_model=s.eval_model, train_set=s.train_set,
        cache_dir=config.cache_dir,
        workdir=core.run_folder(config.cache(), "audit_inverters", s.target_info["identity"]),
        val_fraction=config.aux_val_fraction, seed=config.audit_seed,
        aux_augment=config.aux_augment, target_noise=config.target_noise, progress=print,
        **config.attack())
    described = (target or f"bundled {alloc.name} classifier (width {s.target_info['width']}, "
                 f"{s.target_info['epochs']} epochs, test accuracy "
                 f"{s.target_info['test_accuracy']:.3f})")
    extra = {"dataset": alloc.name, "aux_set": f"{aux} ({s.aux_set.name})", "target": described,
             "eval_classifier": {k: s.eval_info.get(k)
                                 for k in ("width", "epochs", "test_accuracy")},
             **query_counts(s.oracle),
             "prepare_seconds": {k: round(v, 1) for k, v in s.seconds.items()},
             "total_seconds": round(time.perf_counter() - t0, 1)}
    noise = result.settings["target"].get("noise") or s.target_info.get("noise")
    if noise:  # "target" is a description here: the measured noise keeps its own key
        extra["target_noise"] = noise
    title = config.title or (f"Leakage audit: {alloc.name} target, "
                             f"{s.aux_set.name.split('/')[0]} auxiliary set")
    return AuditResult(f"audit_{alloc.name}", title, result, extra, grid_count=config.figure_n)


def audit_sets(oracle, aux, victims, policies: str | Sequence, *, config, width: float = 1.0,
               eval_model=None, train_set=None, cache_dir=None, workdir=None,
               val_fraction: float = 0.1, seed: int = 0, aux_augment: str = "",
               target_noise: str = "refuse", progress: Callable[[str], None] | None = None,
               method: str = "truncation", **identity):
    """The door `tfminv.run_audit` for ImageSets (the bundled allocations' form): audit
    `oracle` under each policy. aux / victims / train_set: ImageSets (victims' labels index the
    target's classes; train_set only feeds the class-mean baseline). config: the inverters'
    tfminv.training.TrainConfig. target_noise: see `tfminv.target.make_target`. method and
    `identity` (identity_weight, feature_weight, surrogate_width, surrogate_epochs): the
    attack, as `tfminv.InversionConfig`'s. Returns InversionResults with settings naming the
    sets."""
    from tfminv.leakage import InversionInputs, inversion_config, run_inversion

    data = InversionInputs(aux.images, victims.images, victims.labels,
                           None if train_set is None else train_set.images,
                           None if train_set is None else train_set.labels)
    cfg = inversion_config(config, policies=policies, width=width, cache_dir=cache_dir,
                           workdir=workdir, val_fraction=val_fraction, seed=seed,
                           aux_augment=aux_augment, target_noise=target_noise, method=method,
                           **identity)
    result = run_inversion(oracle, data, config=cfg, eval_model=eval_model, progress=progress)
    result.settings.update(aux_name=getattr(aux, "name", ""),
                           victims_name=getattr(victims, "name", ""))
    return result


def aux_name(allocation, aux: str) -> str:
    """The allocation's name for --aux: one of its auxiliary set names (e.g. 'generic') or the
    dataset exactly one of them uses (e.g. 'celeba' -> 'generic' for FaceScrub)."""
    if aux in allocation.aux or "+" in aux:  # a union 'a + b' is resolved by the allocation
        return aux
    matches = [name for name, ref in allocation.aux.items() if ref.dataset == aux]
    if len(matches) != 1:
        options = sorted(set(allocation.aux) | {r.dataset for r in allocation.aux.values()})
        raise ConfigError(f"--aux={aux!r}: allocation {allocation.name!r} has no such auxiliary "
                          f"set; expected one of {options}")
    return matches[0]


def target_spec(target: str) -> str:
    """--target as an oracle spec: a bare SavedModel directory or .keras file is accepted too;
    empty: the bundled target (`tfminv.target.as_spec`)."""
    from tfminv.target import as_spec

    return as_spec(target, "--target", empty="the bundled target")
