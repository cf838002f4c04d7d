"""The public door: how much do a model's predictions leak about the images it sees?

    import tfminv
    results = tfminv.run_inversion(model, aux_images, victim_images, victim_labels, k=1)
    print(results.table()); results.write_report("out/")

    # the same, typed: checked data and one settings object
    inputs = tfminv.InversionInputs(aux_images, victim_images, victim_labels)
    results = tfminv.run_inversion(model, inputs, config=InversionConfig(k=1))

`run_inversion` takes the target in any form (a Keras model, an `Oracle`, a callable returning
probabilities or logits, or an oracle spec string such as `keras:model.keras`), the attacker's
auxiliary images and the victims' images as NumPy arrays (uint8 0-255 or float 0-1, any
[N, H, W, C] the target takes; [N, H, W] counts as one channel), checks every input before any
training, then for each release policy queries the target (cached), trains the aligned
inverter of `tfminv.attacks.inversion` on the auxiliary releases (cached, resumable) and scores
the victims' reconstructions. `run_audit` is the same call over a sweep of policies.

Three modules, one job each: `tfminv.inputs` (the data, `InversionInputs`), `tfminv.target`
(the target probe `make_target` and the probabilities/logits rule), and this door, a short loop
over release policies on top of the attack core (`tfminv.attacks.core`: references, the
train -> invert -> score body, run folders). Every name that lived here stays importable here.

Attack accuracy needs a judge: `eval_model` (any target form) when given; otherwise, with
victim labels, the target itself, recorded in `settings['judge']` as biased upward (the
attacked model recognises inputs shaped to its own decision regions more easily than an
independent classifier would).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from tfminv.attacks import identity as _identity
from tfminv.attacks import inversion as _inversion
from tfminv.attacks.core import loo_class_means as _loo_class_means  # noqa: F401 - earlier name
from tfminv.errors import ConfigError, DataError
from tfminv.inputs import MIN_SIDE, InversionInputs, as_labels, as_unit_images  # noqa: F401
from tfminv.inputs import hwc as _hwc
from tfminv.oracles.base import query_counts
from tfminv.oracles.checks import TARGET_NOISE, TARGET_NOISE_HELP, check_target_noise
from tfminv.settings import setting
from tfminv.target import (OUTPUTS, PROBE, _base_oracle, _keras_model,  # noqa: F401 - public
                           _kind_of, _spec, check_outputs, make_target, parse_input_range,
                           read_outputs)

log = logging.getLogger(__name__)

DEFAULT_POLICIES = ("identity;topk:3;topk:1;round:1;label;gaussian:0.1;reverse_sigmoid:1,0.1;"
                    "temperature:4")


# ----------------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class InversionConfig(_identity.FrozenIdentitySettings):
    """The settings of one `run_inversion` (each declared once, with its help).

    Checked on construction (ConfigError naming the field); checks that need the target (k at
    most its classes) run in the door before any training. `train`, when given, is the
    inverters' full `tfminv.training.TrainConfig` (precision, strategy, seed, optimiser); it
    overrides nothing: its epochs and batch_size must equal this config's.
    """

    k: int | None = setting(None, "victims release their top-k probabilities (the inverter "
                            "applies the same truncation); None: `policies`")
    policies: str | tuple | None = setting(
        None, "release policies (tfminv.policies specs, 'a;b' or a tuple), one row each; with "
        "neither k nor policies the full vector ('identity')")
    epochs: int = setting(20, "inverter training epochs (CPU-sized; the paper used 100)")
    width: float = setting(0.25, "inverter width multiplier (the paper: 1.0)")
    batch_size: int = setting(128, "inverter batch size")
    outputs: str = setting("auto", "what the target answers; auto: from the model's last layer "
                           "or the probe's answers", choices=OUTPUTS)
    input_range: tuple = setting((0.0, 1.0), "the scale the target expects, (lo, hi), e.g. "
                                 "(0, 255): the target sees lo + x * (hi - lo)")
    eval_input_range: tuple | None = setting(None, "the scale the judge (eval_model) expects, "
                                             "(lo, hi); None: the target's input_range")
    target_noise: str = setting("refuse", TARGET_NOISE_HELP, choices=TARGET_NOISE)
    scale_check: str = setting("error", "with victim labels, the target's and judge's accuracy "
                               "on the victims is checked before training: 'error' refuses a "
                               "declared input scale under which they answer near chance while "
                               "the other scale (0-1 vs 0-255) answers clearly better; 'warn' "
                               "logs it and proceeds", choices=("error", "warn"))
    seed: int = setting(0, "seed of the auxiliary hold-out and of the policies' noise draws")
    val_fraction: float = setting(0.1, "share of the auxiliary images held out to select the "
                                  "inverter")
    aux_augment: str = setting("", "'flip': every auxiliary training image's mirror is released "
                               "through each policy and trained on (~1.9x the auxiliary "
                               "queries)", choices=("", "flip"))
    cache_dir: str | None = setting(None, "predictions and trained inverters (default "
                                    "$TFMINV_CACHE_DIR)")
    workdir: str | None = setting(None, "the inverters' folder (default: the cache's "
                                  "inverters/<target identity>)")
    verbose: int = setting(0, "1: progress lines on stdout and Keras progress bars")
    train: object = setting(None, "the inverters' tfminv.training.TrainConfig (library only)",
                            flag=False)
    method: str = _inversion.method_setting()

    def __post_init__(self):
        from tfminv.attacks.predictions import check_aux_augment

        if self.method not in _inversion.ATTACK_METHODS:
            raise ConfigError(f"method={self.method!r}: expected one of "
                              f"{', '.join(_inversion.ATTACK_METHODS)}")
        super().__post_init__()  # the identity settings' checks (IdentitySettings)
        policy_list(self.k, self.policies)
        if not float(self.width) > 0:
            raise ConfigError(f"width={self.width!r}: expected a multiplier > 0")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        check_aux_augment(self.aux_augment)
        check_outputs(self.outputs)
        check_target_noise(self.target_noise)
        parse_input_range(self.input_range)
        if self.eval_input_range is not None:
            parse_input_range(self.eval_input_range)
        if self.scale_check not in ("error", "warn"):
            raise ConfigError(f"scale_check={self.scale_check!r}: expected 'error' or 'warn'")
        if self.train is not None:
            for name in ("epochs", "batch_size"):
                mine, theirs = getattr(self, name), getattr(self.train, name)
                if mine != theirs:
                    raise ConfigError(f"{name}={mine} but config (TrainConfig) has {name}="
                                      f"{theirs}: give one of them, or the same value")

    def policy_list(self) -> list:
        """The release policies (`tfminv.policies.Policy`), in order."""
        return policy_list(self.k, self.policies)

    def train_config(self):
        """The inverters' TrainConfig: `train`, else epochs / batch_size with seed 1."""
        if self.train is not None:
            return self.train
        from tfminv.training import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=1,
                           verbose=self.verbose)


def policy_list(k, policies) -> list:
    """k (victims release their top-k) or policies (specs) -> a list of Policy; neither:
    identity. ConfigError for both, a bad k or a bad spec."""
    from tfminv.policies import parse_list

    if k is not None and policies is not None:
        raise ConfigError("give k (victims release their top-k) or policies, not both")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k={k!r}: expected a positive integer")
        return parse_list(f"topk:{int(k)}")
    if policies is None:
        return parse_list("identity")
    return parse_list(policies) if isinstance(policies, str) else parse_list(list(policies))


_policies = policy_list  # the earlier private name


def split_holdout(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) indices of n auxiliary images for model selection
    (`tfminv.data.splits.holdout`; errors name the `val_fraction` parameter)."""
    from tfminv.data.splits import holdout

    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    return holdout(n, val_fraction, seed)


def tie_aware_accuracy(released: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of released vectors when a client takes the argmax and breaks ties at
    random: a row scores 1/t if the true label is among its t tied maxima, else 0."""
    return float(np.mean(tie_aware_hits(released, labels)))


def tie_aware_hits(released: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per victim [N], what `tie_aware_accuracy` averages: 1/t if the label is among the t
    tied maxima of its released vector, else 0."""
    released = np.asarray(released, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    top = released.max(axis=1, keepdims=True)
    tied = released >= top
    hit = tied[np.arange(len(labels)), labels]
    return hit / tied.sum(axis=1)


# ----------------------------------------------------------------------------------- the door
_KEYWORDS = ("k", "policies", "epochs", "width", "batch_size", "outputs", "input_range",
             "eval_input_range", "target_noise", "scale_check", "seed", "val_fraction",
             "aux_augment", "cache_dir", "workdir", "verbose")


class _Unset:
    """The default of `run_inversion`'s setting keywords: "not given" (InversionConfig's own
    default applies), told apart from any value a caller passes."""

    def __repr__(self) -> str:
        return "<InversionConfig's default>"


UNSET = _Unset()


def inversion_config(config=None, **keywords) -> InversionConfig:
    """The InversionConfig of `run_inversion`'s keyword form. config: an InversionConfig (then
    no setting keyword may be given), a TrainConfig (its epochs / batch_size fill those not
    given; given ones that differ raise ConfigError naming both), or None. Keywords at UNSET
    (and None for epochs / batch_size) mean "not given"."""
    given = {name: v for name, v in keywords.items()
             if v is not UNSET and not (name in ("epochs", "batch_size") and v is None)}
    if isinstance(config, InversionConfig):
        clash = sorted(given)
        if clash:
            raise ConfigError(f"config=InversionConfig and {', '.join(clash)} given as keywords: "
                              "put every setting in the InversionConfig")
        return config
    if config is not None:
        from tfminv.training import TrainConfig

        if not isinstance(config, TrainConfig):
            raise ConfigError(f"config: expected an InversionConfig or a TrainConfig, got "
                              f"{type(config).__name__}")
        given.setdefault("epochs", config.epochs)
        given.setdefault("batch_size", config.batch_size)
        given["train"] = config
    return InversionConfig(**given)


def run_inversion(target, aux_images, victim_images=None, victim_labels=None, *,
                  k: int | None = UNSET, policies: str | Sequence | None = UNSET,
                  epochs: int | None = UNSET, width: float = UNSET,
                  eval_model=None, outputs: str = UNSET, input_range=UNSET,
                  eval_input_range=UNSET, target_noise: str = UNSET,
                  scale_check: str = UNSET, victim_label_names=(),
                  train_images=None, train_labels=None,
                  batch_size: int | None = UNSET, seed: int = UNSET, val_fraction: float = UNSET,
                  cache_dir=UNSET, workdir=UNSET, config=None, verbose: int = UNSET,
                  aux_augment: str = UNSET, progress: Callable[[str], None] | None = None):
    """Train the aligned inversion attack against `target` and score it on the victims.

    Typed form: `run_inversion(target, InversionInputs(...), config=InversionConfig(...))` (as
    tensorflow/privacy's `run_attacks(AttackInputData, ...)`). Keyword form: the arrays and the
    settings as keywords, which build the same two values (`InversionInputs`,
    `inversion_config`); the settings' meaning and defaults are `InversionConfig`'s (k, policies,
    epochs 20, width 0.25, batch_size 128, outputs, input_range, target_noise, seed,
    val_fraction, aux_augment, cache_dir, workdir, verbose): a keyword left out (`UNSET`) takes
    its default there, so the defaults are declared once. config: an InversionConfig (then any
    setting keyword, even one equal to its default, is a ConfigError: it would be ignored), or
    the inverters' TrainConfig (never silently overriding epochs / batch_size: both given and
    different is a ConfigError).
    eval_model: the judge for attack accuracy (any target form; its input scale is
    eval_input_range, else the target's; only its argmax is used, and only with victim
    labels). train_images / train_labels: the target's training data, only for the class-mean
    floor. victim_label_names: the names of the label indices (e.g. class sub-folders), one per
    target class, else a DataError (a source covering fewer classes shifts labels).
    scale_check: see InversionConfig. progress: where the progress lines go (default: print
    with verbose, else the `tfminv` logger at INFO): the expected cost, then one line per
    trained epoch with the time left for the whole run. Returns
    `tfminv.results.InversionResults`.

    Every check (inputs, target probe, labels vs classes, k vs classes, judge length) runs
    before any training; a failure raises a TfminvError naming the value and what was expected.
    """
    if isinstance(aux_images, InversionInputs):
        if victim_images is not None or victim_labels is not None or train_images is not None:
            raise ConfigError("with InversionInputs, give no separate victim or training arrays")
        data = aux_images
    else:
        data = InversionInputs(aux_images, victim_images, victim_labels, train_images,
                               train_labels, victim_label_names)
    cfg = inversion_config(config, k=k, policies=policies, epochs=epochs, width=width,
                           batch_size=batch_size, outputs=outputs, input_range=input_range,
                           eval_input_range=eval_input_range, target_noise=target_noise,
                           scale_check=scale_check,
                           seed=seed, val_fraction=val_fraction, aux_augment=aux_augment,
                           cache_dir=cache_dir, workdir=workdir, verbose=verbose)
    return invert_inputs(target, data, cfg, eval_model=eval_model, progress=progress)


@dataclasses.dataclass
class _Judge:
    """Who judges attack accuracy: the core judge (None without labels) and what run.json says."""

    judge: object
    info: dict
    oracle: object = None  # the judge's model as made (scores), or None


def _judge_of(eval_model, oracle, target_info, probe, cfg, labels) -> _Judge:
    from tfminv.attacks.core import ScoresJudge
    from tfminv.attacks.predictions import query_cached

    if labels is None:
        return _Judge(None, {"judge": None, "note": "no labels: no attack accuracy"})
    if eval_model is not None:
        judge, info = make_target(eval_model, probe_images=probe, input_range=_judge_range(cfg),
                                  what="eval_model", scores_only=True, cache_dir=cfg.cache_dir)
        if info["classes"] != target_info["classes"]:
            raise DataError(f"eval_model answers {info['classes']} classes but the target "
                            f"answers {target_info['classes']}: expected the same class order")
        about = {"judge": "eval_model", "identity": info["identity"],
                 "note": "independent evaluation classifier"}
    else:
        judge = oracle
        about = {"judge": "target", "identity": target_info["identity"],
                 "note": "no eval_model given: the target judges its own inversions; "
                         "biased upward (an independent classifier would recognise fewer)"}
    return _Judge(ScoresJudge(lambda x: query_cached(judge, x, cfg.cache_dir)), about, judge)


def _judge_range(cfg) -> tuple:
    return cfg.input_range if cfg.eval_input_range is None else cfg.eval_input_range


def _near_chance(acc: float, labels: np.ndarray, m: int) -> bool:
    """Whether `acc` on the labelled victims is no better than a constant answer: within 0.05
    of max(1/m, the majority class's share), or under 1.5x it."""
    base = max(1.0 / m, float(np.bincount(labels).max()) / len(labels))
    return acc < max(base + 0.05, 1.5 * base)


def _other_range(lo: float, hi: float) -> tuple:
    """The scale a mistaken declaration most likely meant: 0-255 for a unit range, else 0-1."""
    return (0.0, 255.0) if hi - lo <= 2.0 else (0.0, 1.0)


def check_scale(model, images: np.ndarray, labels: np.ndarray, m: int, *, input_range,
                what: str, flag: str, scale_check: str = "error", cache_dir=None,
                oracle=None, target_noise: str = "refuse") -> float:
    """The silent-garbage check, before any training: `model`'s top-1 accuracy on the labelled
    victims under the declared `input_range`. Near chance (`_near_chance`) while the other
    common scale (0-1 vs 0-255) answers clearly better (at least 0.1 higher and not near
    chance) -> ConfigError naming `flag` (scale_check='error') or a warning (scale_check='warn');
    near chance under both -> a warning (labels in another class order, or an untrained model).
    Returns the accuracy under the declared scale. oracle: `model` already made for the
    declared scale (saves a second load); the other scale is loaded only when needed.
    target_noise: as for `make_target` (the noise was reported by the declared scale's probe).

    Why: a 0-255 model fed 0-1 images (or the reverse) answers one class for almost every input,
    so every leakage and utility number comes out near zero and reads as a strong defence."""
    from tfminv.attacks.predictions import query_cached

    def accuracy(rng, made=None):
        made = made or make_target(model, probe_images=images[:PROBE], input_range=rng,
                                   what=what, scores_only=True, cache_dir=cache_dir,
                                   target_noise=target_noise, warn_noise=False)[0]
        return tie_aware_accuracy(query_cached(made, images, cache_dir), labels)

    lo, hi = parse_input_range(input_range)
    acc = accuracy((lo, hi), oracle)
    if not _near_chance(acc, labels, m):
        return acc
    other = _other_range(lo, hi)
    alt = accuracy(other)
    majority = np.bincount(labels).max() / len(labels)
    chance = f"chance 1/{m} = {1.0 / m:.3f}, majority class {majority:.3f}"
    if alt >= acc + 0.1 and not _near_chance(alt, labels, m):
        msg = (f"{what}: top-1 accuracy on the {len(labels)} labelled victims is {acc:.3f} with "
               f"{flag}={lo:g},{hi:g} ({chance}) but {alt:.3f} with {other[0]:g},{other[1]:g}: "
               f"declare {flag}={other[0]:g},{other[1]:g} (command line: --{flag}="
               f"{other[0]:g},{other[1]:g}), or scale_check=warn to proceed")
        if scale_check == "error":
            raise ConfigError(msg)
        log.warning("%s", msg)
    else:
        log.warning("%s: top-1 accuracy on the %d labelled victims is %.3f (%s) with "
                    "%s=%g,%g, and %.3f with %g,%g: the labels may not follow its class order, "
                    "or it is not a trained model; its numbers below mean little", what,
                    len(labels), acc, chance, flag, lo, hi, alt, other[0], other[1])
    return acc


def check_policy_k(pols, m: int) -> None:
    """ConfigError for a top-k part with k above the target's m classes (e.g. topk:200 on 158
    classes): it would release the full vector under a name that says otherwise."""
    from tfminv.policies import TopK

    for pol in pols:
        for part in pol.parts():
            if isinstance(part, TopK) and part.k > m:
                raise ConfigError(f"policies: {pol.spec()} keeps the top {part.k} of the target's "
                                  f"{m} classes: expected k <= {m} ('identity' releases the "
                                  "full vector)")


def _progress_callback(say, n_policies: int, epochs: int):
    """A Keras callback factory: one line per trained epoch through `say`, naming the policy
    and the time left for the whole run (every policy still to train, at the epoch time
    measured so far in this run; cached policies cost nothing, so it errs high)."""
    import keras

    state = {"seconds": 0.0, "epochs": 0}

    class Progress(keras.callbacks.Callback):
        def __init__(self, index: int, spec: str):
            super().__init__()
            self.index, self.spec = index, spec

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            from tfminv.training import format_seconds

            state["seconds"] += time.perf_counter() - self.t
            state["epochs"] += 1
            total = self.params.get("epochs") or epochs
            left_epochs = (total - epoch - 1) + epochs * (n_policies - self.index - 1)
            left = state["seconds"] / state["epochs"] * left_epochs
            loss = (logs or {}).get("val_loss", (logs or {}).get("loss"))
            say(f"[{self.index + 1}/{n_policies} {self.spec}] epoch {epoch + 1}/{total}"
                + ("" if loss is None else f", loss {loss:.4f}")
                + f"; about {format_seconds(left)} left for the whole run")

    return Progress


#: training cost of an identity-method inverter (its surrogate, then the inverter trained
#: through it) over a truncation inverter's at the same settings, as measured at celeba_ids,
#: k = 10 on the 2-core CPU: 143 s against 60 s (experiments/truncation_celeba_ids_budget_identity)
IDENTITY_COST_FACTOR = 2.4


def _expected_cost(pols, m: int, shape, n_train: int, cfg, train_cfg) -> dict:
    """Measured seconds per inverter step here (at the first policy's k) times the steps of the
    whole run, as if nothing were cached; an identity method's steps weigh
    IDENTITY_COST_FACTOR (its surrogate and the inverter trained through it), 'aux_match'
    trains nothing (no step measured, total 0)."""
    import math

    from tfminv.models import build_inverter
    from tfminv.training import step_seconds

    if cfg.method in _inversion.RETRIEVAL_METHODS:
        return {"step_s": 0.0, "steps": 0, "total_s": 0.0, "factor": 0.0}
    b = train_cfg.batch_size
    steps = math.ceil(n_train / b) * train_cfg.epochs * len(pols)
    k = pols[0].released_k(m)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(m), b).astype(np.float32)
    t = step_seconds(lambda: build_inverter(m, tuple(shape), cfg.width, k=k), p,
                     rng.random((b, *shape)).astype(np.float32), config=train_cfg)
    factor = IDENTITY_COST_FACTOR if cfg.method in _inversion.IDENTITY_METHODS else 1.0
    return {"step_s": t, "steps": steps, "total_s": t * steps * factor, "factor": factor}


@dataclasses.dataclass
class _Release:
    """One policy's released vectors: the auxiliary set, the victims, the mirrors (or None)."""

    aux: np.ndarray
    victims: np.ndarray
    mirrors: np.ndarray | None


def _release(oracle, data, pol, mirrored, cfg) -> _Release:
    from tfminv.attacks.predictions import query_cached

    def q(images, seed):
        return query_cached(oracle, images, cfg.cache_dir, policy=pol, seed=seed)

    return _Release(q(data.aux_images, cfg.seed), q(data.victim_images, cfg.seed + 1),
                    None if mirrored is None else q(mirrored, cfg.seed + 2))


def _query(oracle, pol, cfg):
    """images -> the target's answers released under `pol`, cached (method 'identity_select'
    sends its candidates through it; the Oracle counts them)."""
    from tfminv.attacks.predictions import query_cached

    return lambda images: query_cached(oracle, images, cfg.cache_dir, policy=pol,
                                       seed=cfg.seed + 3)


def _references(data, aux_tr, raw_victims, judge: _Judge, m: int) -> tuple[dict, object]:
    """(InversionResults.baselines: the core's references plus the door's accuracy anchors,
    the core's `Baselines`)."""
    from tfminv.attacks import core

    labels = data.victim_labels
    b = core.baselines(data.victim_images, aux_tr, victim_labels=labels,
                       train_images=data.train_images, train_labels=data.train_labels)
    refs = b.mses()
    if labels is not None:
        refs["class_mean_from"] = b.class_mean_from
        refs["chance_accuracy"] = 1.0 / m
        refs["target_accuracy_on_victims"] = tie_aware_accuracy(raw_victims, labels)
        if judge.judge is not None:
            refs["judge_accuracy_on_real_victims"] = judge.judge(data.victim_images,
                                                                 labels)["attack_acc"]
    return refs, b


def invert_inputs(target, data: InversionInputs, cfg: InversionConfig, *, eval_model=None,
                  progress: Callable[[str], None] | None = None):
    """`run_inversion`'s typed form: probe, judge, queries and references first (every check
    before any training), then one `tfminv.attacks.core.run_attack` per release policy."""
    from tfminv import metrics, paths
    from tfminv.attacks import core
    from tfminv.attacks.inversion import invert
    from tfminv.attacks.predictions import mirror_images, query_cached
    from tfminv.results import InversionResults, InversionRow

    t0 = time.time()
    say = progress or (print if cfg.verbose else log.info)
    pols = cfg.policy_list()
    train_cfg = cfg.train_config()
    tr_idx, val_idx = split_holdout(len(data.aux_images), cfg.val_fraction, cfg.seed)
    probe = data.aux_images[:PROBE]
    oracle, target_info = make_target(target, probe_images=probe, outputs=cfg.outputs,
                                      input_range=cfg.input_range, what="target",
                                      cache_dir=cfg.cache_dir, target_noise=cfg.target_noise)
    m = target_info["classes"]
    labels = data.victim_labels
    if labels is not None and labels.max() >= m:
        raise DataError(f"victim_labels span [{labels.min()}, {labels.max()}] but the target "
                        f"answers {m} classes: expected labels in [0, {m - 1}]")
    names = data.victim_label_names
    if names and len(names) != m:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise DataError(f"victims: {len(names)} classes ({shown}) but the target answers {m}: "
                        "labels are the sorted class positions, so they would shift; expected "
                        f"one class (sub-folder) per target class, {m} in its class order "
                        "(empty sub-folders count)")
    if cfg.k is not None and cfg.k > m:
        raise ConfigError(f"k={cfg.k}: the target answers {m} classes; expected 1 <= k <= {m}")
    check_policy_k(pols, m)
    judge = _judge_of(eval_model, oracle, target_info, probe, cfg, labels)
    if labels is not None:  # silent garbage (a wrong input scale, shifted labels) stops here
        check_scale(target, data.victim_images, labels, m, input_range=cfg.input_range,
                    what="target", flag="input_range", scale_check=cfg.scale_check,
                    cache_dir=cfg.cache_dir, oracle=oracle, target_noise=cfg.target_noise)
        if eval_model is not None:
            check_scale(eval_model, data.victim_images, labels, m,
                        input_range=_judge_range(cfg), what="eval_model",
                        flag="eval_input_range", scale_check=cfg.scale_check,
                        cache_dir=cfg.cache_dir, oracle=judge.oracle)

    # queries (and every remaining check) before training
    raw_victims = query_cached(oracle, data.victim_images, cfg.cache_dir)
    aux_tr = data.aux_images[tr_idx]
    mirrored = mirror_images(aux_tr) if cfg.aux_augment else None
    releases = [_release(oracle, data, pol, mirrored, cfg) for pol in pols]
    refs, b = _references(data, aux_tr, raw_victims, judge, m)
    ref_rows, per_victim = core.reference_rows(b, data.victim_images, labels, judge.judge)
    details = {}
    workdir = cfg.workdir or core.run_folder(paths.cache_dir(cfg.cache_dir), "inverters",
                                             target_info["identity"])
    say(f"inversion: {len(pols)} polic{'y' if len(pols) == 1 else 'ies'}, {len(tr_idx)}+"
        f"{len(val_idx)} auxiliary images{' (+ mirrors)' if cfg.aux_augment else ''}, "
        f"{len(data.victim_images)} victims of "
        f"{_hwc(data.victim_images)}, {m} classes ({target_info['outputs']}, "
        f"{target_info['outputs_from']})")

    from tfminv.training import format_seconds

    n_train = len(tr_idx) * (2 if cfg.aux_augment else 1)
    cost = _expected_cost(pols, m, data.image_shape, n_train, cfg, train_cfg)
    if cfg.method in _inversion.RETRIEVAL_METHODS:
        say(f"expected cost: no training (method {cfg.method}: the closest auxiliary answers' "
            "images)")
    else:
        say(f"expected cost: about {format_seconds(cost['total_s'])} on this machine if "
            f"nothing is cached ({len(pols)} inverter(s) x {train_cfg.epochs} epochs x "
            f"{cost['steps'] // max(len(pols) * train_cfg.epochs, 1)} steps at "
            f"{cost['step_s']:.3f} s per step, width {cfg.width:g}"
            + (f", x{cost['factor']:g} for method {cfg.method}'s surrogate and identity term"
               if cost["factor"] != 1 else "")
            + "); fewer epochs, a smaller width or fewer policies cost proportionally less")
    progress_cb = _progress_callback(say, len(pols), train_cfg.epochs)
    rows, recons, surrogates, attack_time = [], {}, {}, {}
    for i, (pol, rel) in enumerate(zip(pols, releases)):
        t1 = time.time()
        spec, kk = pol.spec(), pol.released_k(m)
        x_tr, y_tr = rel.aux[tr_idx], aux_tr
        if rel.mirrors is not None:
            x_tr, y_tr = np.concatenate([x_tr, rel.mirrors]), np.concatenate([y_tr, mirrored])
        val = (rel.aux[val_idx], data.aux_images[val_idx])
        attack = core.run_attack(x_tr, y_tr, rel.victims, data.victim_images, k=kk,
                                 config=train_cfg, workdir=workdir, width=cfg.width, val=val,
                                 victim_labels=labels, judge=judge.judge,
                                 callbacks=[progress_cb(i, spec)], method=cfg.method,
                                 identity=cfg, query=_query(oracle, pol, cfg))
        sc = attack.scores
        row = InversionRow(
            policy=spec, k=kk, released_entries=float(np.mean((rel.victims > 0).sum(axis=1))),
            mse=sc["mse"], psnr=sc["psnr"], ssim=sc["ssim"],
            beats_mean_aux=bool(sc["mse"] < refs["mse_mean_aux"]),
            attack_acc=sc.get("attack_acc"), attack_acc_top5=sc.get("attack_acc_top5"),
            utility=None if labels is None else tie_aware_accuracy(rel.victims, labels),
            agreement=float(np.mean(np.argmax(rel.victims, 1) == np.argmax(raw_victims, 1))),
            aux_val_mse=metrics.mse(invert(attack.inverter, val[0]), val[1]),
            seconds=round(time.time() - t1, 1))
        rows.append(row)
        if cfg.method in _inversion.IDENTITY_METHODS:  # the surrogate's agreement, labelled
            # near chance, and what the attack-time step did (queries per victim, ...)
            surrogates[spec] = {n: v for n, v in sc.items() if n.startswith("surrogate_")}
            if cfg.method in core.ATTACK_TIME:
                attack_time[spec] = {n: sc[n] for n in core.ATTACK_TIME_FACTS if n in sc}
        recons[spec] = attack.reconstructions
        per_victim[spec] = {"mse": metrics.mse_per_image(attack.reconstructions,
                                                         data.victim_images)}
        if labels is not None:
            per_victim[spec]["utility"] = tie_aware_hits(rel.victims, labels)
            if judge.judge is not None:
                calls = judge.judge.calls(attack.reconstructions)
                per_victim[spec]["hit"] = calls == labels
                details[spec] = core.majority(calls, labels)
        say(f"[{i + 1}/{len(pols)}] {spec}: mse {row.mse:.4f} (mean aux image "
            f"{refs['mse_mean_aux']:.4f}), ssim {row.ssim:.3f}, attack acc "
            f"{'-' if row.attack_acc is None else format(row.attack_acc, '.3f')} "
            f"({row.seconds:.0f}s)")
    settings = {"target": target_info, "judge": judge.info,
                "image_shape": list(data.image_shape), "classes": m,
                "aux_train": int(len(tr_idx)), "aux_val": int(len(val_idx)),
                "victims": int(len(data.victim_images)), "labels": labels is not None,
                "policies": [p.spec() for p in pols], "width": float(cfg.width),
                "train_config": train_cfg.key(), "val_fraction": cfg.val_fraction,
                "seed": cfg.seed, "aux_augment": cfg.aux_augment, "method": cfg.method,
                **query_counts(oracle), "seconds": round(time.time() - t0, 1)}
    if cfg.method in _inversion.RETRIEVAL_METHODS:
        settings["match_n"] = int(cfg.match_n)
    if surrogates:
        settings["identity"] = _identity.options_of(cfg).report()
        settings["surrogate"] = surrogates
    if attack_time:
        settings["attack_time"] = attack_time
    return InversionResults(rows=rows, reconstructions=recons, baselines=refs,
                            settings=settings, victim_images=data.victim_images,
                            victim_labels=labels, references=ref_rows, details=details,
                            per_victim=per_victim)


def run_audit(target, aux_images=None, victim_images=None, victim_labels=None, *,
              policies: str | Sequence | None = None, **kwargs):
    """The leakage/utility sweep: `run_inversion` over release policies (default
    DEFAULT_POLICIES: identity, top-3, top-1, rounding, label only, Gaussian noise, reverse
    sigmoid, temperature). With victim labels each row also has the released vector's utility.

    The one `run_audit` (also `tfminv.scenarios.run_audit`, `tfminv.audit.run_audit`), in two
    forms, as `run_inversion` has:
    - typed, the audit scenario (what `python -m tfminv.experiments.audit` runs):
      `run_audit(AuditConfig(...))` -> `scenarios.audit.AuditResult` (with `models`:
      `ModelsAuditResult`); every setting is in the config, so any other argument is a
      ConfigError. The scenario turns the config (bundled allocation or the user's data specs)
      into `run_inversion`'s typed form (InversionInputs + InversionConfig) over the policies.
    - keyword: `run_audit(target, aux_images, victim_images, victim_labels, policies=...,
      **run_inversion keywords)` -> InversionResults. Several already-trained models:
      `target` a mapping {name: target} (each any form `run_inversion` takes) audits each
      under the same policies, attacker budget, auxiliary split, seeds and victims, and
      returns {name: InversionResults} in the mapping's order."""
    from tfminv.scenarios.audit import AuditConfig, audit_scenario

    if isinstance(target, AuditConfig):
        given = [name for name, v in (("aux_images", aux_images), ("victim_images", victim_images),
                                      ("victim_labels", victim_labels), ("policies", policies))
                 if v is not None] + sorted(kwargs)
        if given:
            raise ConfigError(f"run_audit(AuditConfig) and {', '.join(given)} given: put every "
                              "setting in the AuditConfig")
        return audit_scenario(target)
    policies = DEFAULT_POLICIES if policies is None else policies
    if isinstance(target, Mapping):
        if not target:
            raise ConfigError("run_audit: the mapping of models to audit is empty")
        return {str(name): run_inversion(t, aux_images, victim_images, victim_labels,
                                         policies=policies, **kwargs)
                for name, t in target.items()}
    return run_inversion(target, aux_images, victim_images, victim_labels, policies=policies,
                         **kwargs)
