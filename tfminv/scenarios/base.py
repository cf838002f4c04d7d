"""What every attack scenario shares: its settings (`ScenarioConfig`), the prepared target and
data (`Setup`, from `prepare`), the inverter's training data per selection rule
(`selection_data`), one black-box attack (`blackbox_attack`, on `tfminv.attacks.core`), the
references (`reference_baselines`) and the result a scenario returns (`ScenarioResult`,
written by its `write`).

No absl flags here: a scenario is `run_<name>(config) -> ScenarioResult`, and the binaries in
`tfminv.experiments` only turn flags into the config. Trained classifiers, predictions and
inverters are cached under `config.cache_dir` (default $TFMINV_CACHE_DIR) with the same keys the
binaries have always used, so a library call and a binary run reuse each other's work.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from tfminv import defences
from tfminv.attacks.predictions import AUX_AUGMENTATIONS
from tfminv.errors import ConfigError
from tfminv.oracles.base import query_counts
from tfminv.settings import check, setting

log = logging.getLogger(__name__)

SELECT_ON = ("aux_val", "target_train")

#: stream_aux with select_on=aux_val: at most this many held-out auxiliary images are read into
#: memory for model selection (Keras validates on arrays); held-out rows beyond it go back to
#: training, so memory stays flat as the set grows (2,000 is also target_train's cap)
STREAM_VAL_MAX = 2000


@dataclasses.dataclass
class ScenarioConfig:
    """Settings shared by every scenario (the binaries' common flags are generated from these
    fields: same names, defaults and help; see `tfminv.settings`).

    dataset: an allocation name known to `tfminv.data.allocations` or a JSON allocation file.
    target: an oracle spec (`tfminv.oracles.from_spec`); empty: the allocation's own cached
      classifier. aux: the allocation's auxiliary set (empty: its default).
    epochs / clf_epochs: inverter / classifier epochs (clf_epochs 0: same as epochs).
    max_aux / max_victims / max_train: budget caps (0: all; negative values are refused).
    concurrency / rate_limit: a remote target's requests in flight and requests per second.
    select_on: inverter model selection on held-out auxiliary data ('aux_val', a seeded
      `aux_val_fraction`) or on the target's own training data ('target_train', the authors').
    stream_aux: keep the auxiliary set on disk (`tfminv.data.streaming.StreamedImages`, read
      from its records in record order): queries, inverter training and the mean-aux baseline
      stream it; only the held-out selection rows (at most STREAM_VAL_MAX) are loaded. Victims
      and the target's training data stay in memory. Off: the set is loaded as arrays.
    aux_augment: 'flip' adds the mirror image of every auxiliary training image, queried like
      the rest (held-out selection rows are not mirrored); see `augmented`.

    Every pure check (choices, minimums, combinations) runs in `__post_init__`, so a binary
    refuses a bad flag before it reads data or imports TensorFlow.
    """

    dataset: str = setting("facescrub", "allocation to attack: an allocation name (built-in: "
                           "facescrub, mnist, ...) or a JSON allocation file")
    data_dir: str | None = setting(None, "raw datasets folder (default $TFMINV_DATA_DIR)")
    records_dir: str | None = setting(None, "built TFRecords folder (default "
                                      "$TFMINV_RECORDS_DIR)")
    cache_dir: str | None = setting(None, "trained targets, predictions, checkpoints "
                                    "(default $TFMINV_CACHE_DIR)")
    epochs: int = setting(100, "inverter training epochs (authors: 100)", minimum=1)
    clf_epochs: int = setting(0, "target/evaluation classifier epochs (0: same as --epochs)",
                              minimum=0)
    width: float = setting(1.0, "channel width multiplier of classifier and inverter "
                           "(authors: 1.0; CPU runs: 0.25-0.5)")
    batch_size: int = setting(128, "global training batch size, split across replicas; the "
                              "learning rate is not scaled (authors: 128)", minimum=1)
    max_aux: int = setting(0, "use at most this many auxiliary images (0: all)", minimum=0)
    max_victims: int = setting(0, "evaluate on at most this many victims (0: all)", minimum=0)
    max_train: int = setting(0, "train the target on at most this many images (0: all)",
                             minimum=0)
    seed: int = setting(1, "random seed (authors: 1)")
    precision: str = setting("auto", "dtype policy; auto = mixed_float16 on GPU, the measured "
                             "CPU default on CPU",
                             choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"))
    strategy: str = setting("default", "tf.distribute strategy for training (multi-worker reads "
                            "TF_CONFIG; see docs/distributed.md)",
                            choices=("default", "mirrored", "multi-worker"))
    target: str = setting("", "oracle spec of the target (keras:PATH.keras, savedmodel:DIR, "
                          "rest:URL, grpc:HOST:PORT/NAME, http-json:URL#SCHEMA.json); empty: "
                          "train or reuse the allocation's own classifier")
    aux: str = setting("", "auxiliary set name of the allocation (empty: its default)")
    select_on: str = setting("aux_val", "inverter model selection: held-out auxiliary data "
                             "(honest default) or the target's training data (the authors' "
                             "choice)", choices=SELECT_ON)
    aux_val_fraction: float = setting(0.1, "share of the auxiliary set held out for selection")
    verbose: int = setting(1, "training output (0: none, 1: one line per epoch and Keras' bar "
                                 "on a terminal, 2: one line per epoch)")
    figure_n: int = setting(10, "victims shown in the figure", minimum=0)
    concurrency: int = setting(1, "remote --target: requests in flight at once", minimum=1)
    rate_limit: float = setting(0.0, "remote --target: at most this many requests per second "
                                "(0: no limit)", minimum=0)
    stream_aux: bool = setting(False, "read the auxiliary set from its records on demand "
                               "(queries, inverter training, mean-aux baseline) instead of "
                               "loading it: for sets larger than memory (truncation, auxiliary, "
                               "class_inference)")
    aux_augment: str = setting("", "attacker-side augmentation of the auxiliary set: 'flip' "
                               "adds the mirror image of every training image, queried like "
                               "the rest (1.9x the queries; truncation, auxiliary, "
                               "class_inference, audit)", choices=AUX_AUGMENTATIONS)
    eval_width: float = setting(0.0, "width of the independent evaluation classifier "
                                "(0: half of --width)", minimum=0)
    eval_epochs: int = setting(0, "evaluation classifier epochs (0: as --clf_epochs)",
                               minimum=0)
    eval_augment: str = setting("", "training-time augmentation of the evaluation classifier",
                                choices=("", "flip", "flip+shift"))
    judge2_width: float = setting(0.0, "width of a second, independent evaluation classifier "
                                  "(its own seed; the eval_* epochs and augmentation): its "
                                  "scores are reported beside the first judge's with the "
                                  "suffix _j2 (0: none; it must differ from the first judge's "
                                  "width)", minimum=0)
    clf_monitor: str = setting("val_loss", "model selection of target and evaluation "
                               "classifiers on their held-out 10%",
                               choices=("val_loss", "val_accuracy"))
    clf_init: str = setting("keras", "kernel init of target and evaluation classifiers: Keras' "
                            "glorot_uniform or PyTorch's default (trains the 471-class face "
                            "classifier faster)", choices=("keras", "torch"))
    defence: str = setting("none", defences.HELP)

    def __post_init__(self):
        check(self)
        defences.parse(self.defence)  # one-line ConfigError for a bad spec, before any work
        if not float(self.width) > 0:
            raise ConfigError(f"--width={self.width}: expected > 0")
        if self.aux_augment and self.stream_aux:
            raise ConfigError(f"--aux_augment={self.aux_augment}: mirrors the auxiliary set in "
                              "memory; run it without --stream_aux")
        if self.judge2_width and not self.reports_judge2:
            raise ConfigError(f"--judge2_width={self.judge2_width}: this scenario reports one "
                              "judge; the second judge is reported by truncation, auxiliary "
                              "and class_inference")
        if self.judge2_width and float(self.judge2_width) == self.judge_width():
            raise ConfigError(f"--judge2_width={self.judge2_width}: the second judge must differ "
                              f"from the first (width {self.judge_width()}, --eval_width)")
        if not 0.0 < float(self.aux_val_fraction) < 1.0:
            raise ConfigError(f"--aux_val_fraction={self.aux_val_fraction}: expected a share in "
                              "(0, 1)")

    #: whether the scenario reports a second judge's columns (--judge2_width)
    reports_judge2: ClassVar[bool] = False

    def judge_width(self) -> float:
        """The width of the (first) evaluation classifier: --eval_width, else half of --width."""
        from tfminv.training.targets import EVAL_WIDTH_FACTOR

        return float(self.eval_width) if self.eval_width else float(self.width) * EVAL_WIDTH_FACTOR

    def preflight(self):
        """The checks that need the allocation's description but no data and no TensorFlow
        (an unknown allocation, a k above its classes, ...); the binaries run it before any
        work. Returns the allocation. Subclasses extend it."""
        from tfminv.data import allocations

        if self.target and defences.parse(self.defence).name != "none":
            raise ConfigError(f"--defence={self.defence}: a training-time defence applies to "
                              f"the allocation's own target, not to --target={self.target}")
        return allocations.get(self.dataset)

    def train_config(self, epochs: int | None = None):
        """The inverters' TrainConfig (or any run of `epochs` epochs) from these settings."""
        from tfminv.training import TrainConfig

        return TrainConfig(epochs=self.epochs if epochs is None else epochs,
                           batch_size=self.batch_size, seed=self.seed, precision=self.precision,
                           strategy=self.strategy, verbose=self.verbose)

    def classifier_config(self):
        """The target's and evaluation classifier's TrainConfig (clf_epochs, else epochs)."""
        return self.train_config(self.clf_epochs or self.epochs)

    def cache(self) -> Path:
        """The cache folder (cache_dir, else $TFMINV_CACHE_DIR, else runs/cache)."""
        from tfminv import paths

        return paths.cache_dir(self.cache_dir)

    def data_kwargs(self) -> dict:
        return dict(data_dir=self.data_dir, records_dir=self.records_dir)


def limited(ref, n):
    """A SplitRef capped at n images (0 or None: unchanged); the budget caps use it."""
    if n and n > 0:
        return dataclasses.replace(ref, limit=int(n) if ref.limit is None else min(ref.limit, n))
    return ref


def budgeted_allocation(config: ScenarioConfig):
    """The allocation `config.dataset` names, its target training and victim splits capped by
    max_train / max_victims."""
    from tfminv.data import allocations

    alloc = allocations.get(config.dataset)
    return dataclasses.replace(alloc, target_train=limited(alloc.target_train, config.max_train),
                               victims=limited(alloc.victims, config.max_victims))


@dataclasses.dataclass
class Setup:
    """Everything an attack scenario needs, the target reachable only through `oracle`."""

    config: ScenarioConfig
    allocation: object
    aux_name: str
    train_set: object          # the target's training data (for the oracle floor baseline)
    aux_set: object            # an ImageSet, or a StreamedImages with config.stream_aux
    victims: object
    oracle: object
    target_info: dict
    eval_model: object
    eval_info: dict
    aux_preds: np.ndarray
    victim_preds: np.ndarray
    seconds: dict
    judge: object = None       # metrics.IdentityJudge over eval_model and the target's data
    #: the second judge's info (--judge2_width; None without): `judge` is then a
    #: metrics.JudgePanel whose scores hold both judges'
    eval2_info: dict | None = None

    @property
    def num_outputs(self) -> int:
        """m: the length of the target's prediction vector."""
        return int(self.aux_preds.shape[1])


def prepare(config: ScenarioConfig, aux_name: str | None = None, n_inverters: int = 1, *,
            target_noise: str = "refuse") -> Setup:
    """Materialise the allocation (within the budget caps), get target and evaluation
    classifiers (cached), and the target's predictions on aux and victims (cached).
    target_noise: what a --target SavedModel's load-time determinism probe does with answers
    that differ (`tfminv.oracles.checks.TARGET_NOISE`); the measured difference, if any, is
    target_info['noise'].

    With a GPU-sized budget (width >= 1 or epochs >= 50) it first prints what the run will cost
    on this machine (measured steps, `n_inverters` inverters) and quick-run flags."""
    from tfminv.attacks.predictions import query_cached
    from tfminv.data import allocations
    from tfminv.training import targets

    t0 = time.perf_counter()
    seconds = {}
    alloc = budgeted_allocation(config)
    aux_name = aux_name or config.aux or alloc.default_aux
    aux_ref = limited(alloc.aux_ref(aux_name), config.max_aux)  # a name or a union 'a + b'
    kw = config.data_kwargs()
    train_set = allocations.materialize(alloc.target_train, **kw)
    test_set = allocations.materialize(alloc.target_test, **kw)
    victims = allocations.materialize(alloc.victims, **kw)
    if config.stream_aux:
        from tfminv.data.streaming import StreamedImages

        aux_set = StreamedImages.from_ref(aux_ref, **kw)
    else:
        aux_set = allocations.materialize(aux_ref, **kw)
    seconds["data"] = time.perf_counter() - t0
    if config.width >= 1.0 or config.epochs >= 50:
        print_budget(config, alloc, len(train_set), len(aux_set), n_inverters)

    clf_cfg = config.classifier_config()
    t = time.perf_counter()
    if config.target:
        from tfminv.oracles import from_spec
        from tfminv.oracles.checks import check_image_shape

        remote = {}
        if config.target.partition(":")[0] in ("rest", "grpc", "http-json"):
            remote = {"concurrency": config.concurrency, "rate_limit": config.rate_limit or None}
        oracle = from_spec(config.target, target_noise=target_noise, **remote)
        # before any classifier is trained: a target that cannot take these images fails now
        check_image_shape(oracle.input_shape, victims.images.shape, config.target)
        # one score per class of the allocation, checked on the victims' (cached) answers
        allocations.check_num_outputs(
            alloc, query_cached(oracle, victims, config.cache_dir).shape[1], config.target)
        target_info = {"identity": oracle.identity(), "spec": config.target}
        if getattr(oracle, "noise", None):
            target_info["noise"] = {"target_noise": target_noise,
                                    "max_difference": oracle.noise}
    else:
        model, target_info = targets.get_or_train_classifier(
            alloc, role="target", width=config.width, config=clf_cfg,
            cache_dir=config.cache_dir, train_set=train_set, test_set=test_set,
            monitor=config.clf_monitor, init=config.clf_init,
            **defended_target_kwargs(config, alloc, aux_name, aux_ref))
        oracle = targets.target_oracle(model, target_info)
    seconds["target"] = time.perf_counter() - t
    t = time.perf_counter()
    eval_model, eval_info = eval_classifier(config, alloc, train_set, test_set)
    from tfminv import metrics

    judge = metrics.IdentityJudge(eval_model, train_set.images, train_set.labels)
    eval2_info = None
    if config.judge2_width:
        eval2_model, eval2_info = eval_classifier(config, alloc, train_set, test_set, second=True)
        judge = metrics.JudgePanel(judge, metrics.IdentityJudge(
            eval2_model, train_set.images, train_set.labels), suffix=JUDGE2_SUFFIX)
    seconds["eval_classifier"] = time.perf_counter() - t
    t = time.perf_counter()
    aux_preds = query_cached(oracle, aux_set, config.cache_dir)
    victim_preds = query_cached(oracle, victims, config.cache_dir)
    seconds["queries"] = time.perf_counter() - t
    return Setup(config, alloc, aux_name, train_set, aux_set, victims, oracle, target_info,
                 eval_model, eval_info, aux_preds, victim_preds, seconds, judge, eval2_info)


#: the suffix of the second judge's scores (attack_acc_j2, ..., eval_acc_j2)
JUDGE2_SUFFIX = "_j2"
#: the second judge's training seed, from the run's seed (the first judge's is the
#: role's offset, `tfminv.training.targets.EVAL_SEED_OFFSET`, added to it again)
JUDGE2_SEED_OFFSET = 202


def eval_classifier(config: ScenarioConfig, alloc, train_set, test_set, *, second=False):
    """(model, info) of the run's independent evaluation classifier (the judge), trained on the
    target's data with the eval_* settings, or reused from the cache under the same key.
    second: the second judge instead (width --judge2_width, its own seed; same epochs and
    augmentation), cached under its own key."""
    from tfminv.training import targets

    cfg = config.train_config(config.eval_epochs or config.clf_epochs or config.epochs)
    width = config.eval_width or None
    if second:
        cfg, width = cfg.replace(seed=cfg.seed + JUDGE2_SEED_OFFSET), config.judge2_width
    return targets.get_or_train_classifier(
        alloc, role="eval", width=config.width, config=cfg,
        cache_dir=config.cache_dir, train_set=train_set, test_set=test_set,
        monitor=config.clf_monitor, augment=config.eval_augment,
        eval_width=width, init=config.clf_init)


#: the results' note on the second judge's columns
JUDGE2_NOTE = ("Columns ending in _j2 are the same scores by a second, independent evaluation "
               "classifier (--judge2_width, its own seed): an attack that only fools "
               "classifiers like the first judge (or the surrogate) shows as disagreement.")

AUX_MATCH_NOTE = ("'aux_match' = no inverter: each victim's reconstruction is the auxiliary "
                  "image (the mean of the match_n images) whose answer, already queried, is "
                  "closest to the victim's release (cosine of the two top-k releases; no "
                  "query beyond the auxiliary set): a real photo of another person that the "
                  "target reads like the victim, so its MSE is that of a different face. "
                  "train_seconds = the matching's wall time.")

#: the identity method's extra columns (its surrogate; shown only when the method runs), in
#: the truncation and class-inference tables alike
IDENTITY_COLUMNS = ["surrogate_top1_agreement", "surrogate_topk_overlap", "surrogate_kl",
                    "surrogate_near_chance", "surrogate_kl_start", "refine_seconds",
                    "queries_per_victim", "target_kl_start", "target_kl", "selected_refined"]
IDENTITY_NOTE = ("'identity' = the truncation inverter trained with pixel MSE + identity_weight "
                 "x KL between the released entries of v and the attacker's surrogate's on G(v) "
                 "(+ feature_weight x its penultimate-feature MSE); the surrogate is distilled "
                 "from the same auxiliary releases (no extra query). surrogate_top1_agreement / "
                 "surrogate_topk_overlap: its agreement with the target on the held-out "
                 "auxiliary rows; surrogate_near_chance: at most 2x chance (then the row is not "
                 "an identity attack); surrogate_kl: that KL on the row's own images (the "
                 "victims' reconstructions; in class inference the class images). "
                 "'identity_refine' = the same trained inverter, each image then refined "
                 "through the surrogate (refine_steps Adam steps on the decoder's input toward "
                 "the released entries; no query): surrogate_kl_start is that KL before, "
                 "refine_seconds the refinement's wall time. 'identity_select' = the same "
                 "refinement's images after evenly spaced numbers of steps (the unrefined one "
                 "first) sent to the target, each victim keeping the one whose answer is "
                 "closest to its release: queries_per_victim counted queries (select_candidates), "
                 "target_kl_start / target_kl the target's own KL to the release of the "
                 "unrefined / kept images, selected_refined the share that kept a refined one. "
                 "realism_weight > 0 adds the distance of G(v) to the attacker's image prior's "
                 "reconstruction of it (a denoising autoencoder of the auxiliary images); "
                 "without it detail the surrogate reads may also sway the judge, which is a "
                 "classifier of the same family; compare nn_acc and the figure.")


def judge_fields(setup: Setup) -> dict:
    """eval_acc (the judge's top-1 on the target's held-out images: the ceiling of attack_acc)
    and, with a second judge, eval_acc_j2: the columns every judged row carries."""
    out = {"eval_acc": setup.eval_info.get("test_accuracy")}
    if setup.eval2_info is not None:
        out["eval_acc" + JUDGE2_SUFFIX] = setup.eval2_info.get("test_accuracy")
    return out


def judge2_columns(setup: Setup, columns) -> list:
    """The second judge's columns (`columns` that a judge scores, suffixed), empty without one."""
    if setup.eval2_info is None:
        return []
    judged = ("attack_acc", "attack_acc_top5", "eval_acc", "nn_acc", "nn_acc_top5", "knn_dist")
    return [c + JUDGE2_SUFFIX for c in columns if c in judged]


def budget_seconds(config: ScenarioConfig, alloc, n_train: int, n_aux: int,
                   n_inverters: int) -> dict:
    """Measured cost of a run: seconds per training step of the classifier and the inverter at
    `width` / `batch_size` on this machine, times the steps of this run's trainings. With
    `--target` (a model of the user's, never trained here) the target costs nothing."""
    import math

    import keras

    from tfminv.models import build_classifier, build_inverter
    from tfminv.training import step_seconds

    b, m, size = config.batch_size, alloc.num_classes, alloc.image_size
    cfg = config.train_config()
    x = np.random.default_rng(0).random((b, size, size, 1)).astype(np.float32)
    y = np.arange(b) % m
    t_clf = step_seconds(lambda: build_classifier(m, size, config.width), x, y, config=cfg,
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    p = np.full((b, m), 1.0 / m, np.float32)
    t_inv = step_seconds(lambda: build_inverter(m, size, config.width, k=m), p, x, config=cfg)
    clf_epochs = config.clf_epochs or config.epochs
    eval_epochs = config.eval_epochs or clf_epochs
    eval_w = config.judge_width()
    steps_clf = math.ceil(0.9 * n_train / b)
    steps_inv = math.ceil(0.9 * n_aux / b)
    # the evaluation classifier's step scales ~ with width^2 (conv FLOPs)
    out = {"classifier_step_s": t_clf, "inverter_step_s": t_inv,
           "target_s": 0.0 if config.target else t_clf * steps_clf * clf_epochs,
           "eval_s": t_clf * (eval_w ** 2 + float(config.judge2_width) ** 2) / config.width ** 2
           * steps_clf * eval_epochs,
           "inverters_s": t_inv * steps_inv * config.epochs * n_inverters}
    out["total_s"] = out["target_s"] + out["eval_s"] + out["inverters_s"]
    return out


def print_budget(config: ScenarioConfig, alloc, n_train: int, n_aux: int,
                 n_inverters: int) -> None:
    """One line on the "tfminv" logger (INFO; a binary prints it on stderr, `cli.run`): what
    this run costs here (before cached models are reused) and the flags of a quick CPU run."""
    from tfminv.training import format_seconds as f

    c = budget_seconds(config, alloc, n_train, n_aux, n_inverters)
    target = "target: yours, not trained here" if config.target else f"target {f(c['target_s'])}"
    log.info(f"budget: at --width={config.width:g} --epochs={config.epochs} this run costs "
             f"about {f(c['total_s'])} on this machine if nothing is cached ({target}, "
             f"evaluation classifier(s) {f(c['eval_s'])}, {n_inverters} inverter(s) "
             f"{f(c['inverters_s'])}; measured {c['classifier_step_s']:.2f} s / "
             f"{c['inverter_step_s']:.2f} s per classifier / inverter step). Quick CPU run: "
             "--width=0.25 --epochs=10 --clf_epochs=20")


def full_or_k(k: int, m: int) -> int:
    """The k a scenario releases: 0 means the full vector (m); ConfigError outside 0..m."""
    if k < 0 or k > m:
        raise ConfigError(f"--k={k}: expected 0 (full vector) to {m}")
    return k or m


def aux_images(setup: Setup):
    """The auxiliary images: an array, or the StreamedImages itself with stream_aux."""
    aux = setup.aux_set
    return aux if hasattr(aux, "iter_chunks") else aux.images


def require_in_memory_aux(config: ScenarioConfig, scenario: str, why: str):
    """ConfigError when stream_aux is set for a scenario that needs every auxiliary image in
    memory (`why`), or aux_augment for one that trains its own way (these scenarios do not go
    through `selection_data`)."""
    if config.stream_aux:
        raise ConfigError(f"--stream_aux: the {scenario} scenario {why}; run it without "
                          "--stream_aux")
    if config.aux_augment:
        raise ConfigError(f"--aux_augment: the {scenario} scenario does not augment its auxiliary "
                          "set (truncation, auxiliary, class_inference and the audit do); run it "
                          "without --aux_augment")


def aux_split(setup: Setup):
    """(train rows, held-out rows) of the auxiliary set for select_on='aux_val' (a seeded
    `aux_val_fraction`, `tfminv.data.splits.holdout`; with stream_aux at most STREAM_VAL_MAX
    held-out rows, the rest back to training, both sorted: a stream yields record order), or
    None for select_on='target_train' (every auxiliary image trains)."""
    from tfminv.data.splits import holdout

    config = setup.config
    if config.select_on != "aux_val":
        return None
    tr_idx, val_idx = holdout(len(setup.aux_set), config.aux_val_fraction, config.seed)
    if config.stream_aux:
        return (np.sort(np.concatenate([tr_idx, val_idx[STREAM_VAL_MAX:]])),
                np.sort(val_idx[:STREAM_VAL_MAX]))
    return tr_idx, val_idx


def aux_train_images(setup: Setup):
    """The auxiliary images the inverter trains on (no mirrors): the `aux_split` train rows,
    or the whole set with select_on='target_train'; an array, or a StreamedImages subset."""
    split = aux_split(setup)
    if split is None:
        return aux_images(setup)
    if setup.config.stream_aux:
        return setup.aux_set.subset(split[0])
    return setup.aux_set.images[split[0]]


def selection_data(setup: Setup):
    """(train_preds, train_images, val, label) for inverter training per `select_on`.

    aux_val: the `aux_split` held-out rows select the model. With stream_aux, train_images is
    a StreamedImages of the remaining rows, train_preds their answers as a `streaming.Rows`
    view of setup.aux_preds, and at most STREAM_VAL_MAX held-out rows are read
    into memory (the rest of the held-out share goes back to training); rows of a stream are
    in record order, those of an in-memory set in the allocation's shuffled order, so the two
    modes hold out different (equally random) rows. target_train: the target is queried on (up
    to 2,000 of) its own training images - the authors' choice, which a real attacker cannot
    make; results are labelled with it.
    """
    from tfminv.attacks.predictions import query_cached

    config = setup.config
    split = aux_split(setup)
    if split is not None:
        tr_idx, val_idx = split
        if config.stream_aux:
            from tfminv.data.streaming import Rows

            val = (setup.aux_preds[val_idx], setup.aux_set.subset(val_idx).to_array())
            # the training rows' answers as a view: nearly every row, a copy would double them
            return (Rows(setup.aux_preds, tr_idx), setup.aux_set.subset(tr_idx), val,
                    "aux_val")
        val = (setup.aux_preds[val_idx], setup.aux_set.images[val_idx])
        return (*augmented(setup, setup.aux_preds[tr_idx], setup.aux_set.images[tr_idx]), val,
                "aux_val")
    tt = setup.train_set.images[:2000]
    val = (query_cached(setup.oracle, tt, config.cache_dir), tt)
    return (*augmented(setup, setup.aux_preds, aux_images(setup)), val,
            "target_train (authors)")


def augmented(setup: Setup, preds, images):
    """(preds, images) for inverter training, with `aux_augment='flip'` followed by the mirror
    image of every row and the target's answer to it (`attacks.predictions.with_mirrors`).

    Why: at 471 identities the inverter overfits 9,000 auxiliary faces within 3 epochs (train
    MSE falls while held-out MSE rises); mirrors are new pairs (measured gain there).
    """
    if not setup.config.aux_augment:
        return preds, images
    from tfminv.attacks.predictions import with_mirrors

    return with_mirrors(setup.oracle, preds, images, setup.config.cache_dir)


def inverter_workdir(setup: Setup) -> Path:
    """Cache folder of the inverters trained against this setup's target (one per target;
    `tfminv.attacks.core.run_folder`)."""
    from tfminv.attacks import core

    return core.run_folder(setup.config.cache(), "inverters", setup.target_info["identity"])


def reference_baselines(setup: Setup, aux_train=None):
    """`tfminv.attacks.core.Baselines` of the victims: the mean of the auxiliary images the
    inverter trains on (`aux_train`, default `aux_train_images`), the class-mean floor of the
    target's training images."""
    from tfminv.attacks import core

    return core.baselines(setup.victims.images,
                          aux_train_images(setup) if aux_train is None else aux_train,
                          victim_labels=setup.victims.labels, train_images=setup.train_set.images,
                          train_labels=setup.train_set.labels)


def reference_mses(setup: Setup, aux_train=None) -> dict:
    """The reference MSEs printed beside every inversion MSE, under their column names
    (`reference_baselines(...).mses()`: mse_zeros, mse_mean_aux, mse_class_mean)."""
    return reference_baselines(setup, aux_train).mses()


def blackbox_attack(setup: Setup, preds, images, val, *, k: int, method: str = "truncation",
                    epochs: int | None = None, workdir=None, identity=None):
    """Train (or reuse) a black-box inverter on (preds, images) and score it on the victims
    with the setup's judge: `tfminv.attacks.core.run_attack`, returning its `Attack`
    (inverter, reconstructions, scores: mse/psnr/ssim/attack_acc/attack_acc_top5/nn_acc/...,
    train_seconds: this call's wall time, near 0 when cached). identity: the identity
    methods' settings (default: the setup's config; the ablation passes one per variant)."""
    from tfminv.attacks import core

    return core.run_attack(preds, images, setup.victim_preds, setup.victims.images, k=k,
                           method=method, config=setup.config.train_config(epochs),
                           workdir=workdir or inverter_workdir(setup), val=val,
                           width=setup.config.width, victim_labels=setup.victims.labels,
                           judge=setup.judge,
                           identity=setup.config if identity is None else identity,
                           query=target_query(setup))


def target_query(setup: Setup):
    """images -> the target's answers through the setup's Oracle (counted, cached like every
    query): what method 'identity_select' sends its candidate images through."""
    from tfminv.attacks.predictions import query_cached

    return lambda images: query_cached(setup.oracle, images, setup.config.cache_dir)


def session_seconds(attack) -> float | None:
    """train_seconds of the session that trained the attack's inverter: the training cost a
    table compares, the same whether this call trained it or read it from the cache (the
    call's own wall time is near 0 then)."""
    from tfminv.training import load_run

    run_dir = getattr(attack.inverter, "run_dir", None)
    if run_dir is None:  # nothing trained (method 'aux_match'): the call's own time
        return attack.train_seconds
    return load_run(run_dir).get("train_seconds")


def attack_row(attack) -> dict:
    """A results row's attack part: the scores and train_seconds of a `core.Attack`."""
    return {**attack.scores, "train_seconds": attack.train_seconds}


def target_model(setup: Setup):
    """The target classifier itself (white-box), for attacks that need its gradients.

    Only available for the allocation's own cached classifier, not for a remote target.
    """
    from tfminv.training import targets

    config = setup.config
    if config.target:
        raise ConfigError(f"--target={config.target!r}: this attack needs the target's gradients "
                          "(white-box); run it against the allocation's own classifier")
    model, _ = targets.get_or_train_classifier(
        setup.allocation, role="target", width=config.width,
        config=config.classifier_config(), cache_dir=config.cache_dir, **config.data_kwargs(),
        monitor=config.clf_monitor, init=config.clf_init,
        **defended_target_kwargs(config, setup.allocation, setup.aux_name))
    return model


def defended_target_kwargs(config: ScenarioConfig, alloc, aux_name: str, aux_ref=None) -> dict:
    """`get_or_train_classifier`'s defence arguments for the target of `config`: the spec, and
    for transfer learning the labelled public auxiliary images it pre-trains on (the whole
    auxiliary set `aux_name`, within max_aux) with their description as aux_key."""
    d = defences.parse(config.defence)
    if d.name == "none":
        return {}
    if d.name != "tl":
        return {"defence": str(d)}
    from tfminv.data import allocations

    ref = aux_ref if aux_ref is not None else limited(alloc.aux_ref(aux_name), config.max_aux)
    aux = allocations.materialize(ref, **config.data_kwargs())
    if getattr(aux, "labels", None) is None:
        raise ConfigError(f"--defence={d}: the auxiliary set {aux_name!r} has no labels; "
                          "transfer learning pre-trains on labelled public images")
    return {"defence": str(d), "aux": (aux.images, aux.labels), "aux_key": repr(ref)}


def figure_victims(labels, n: int) -> np.ndarray:
    """Indices of up to n victims covering as many classes as possible (first of each class)."""
    labels = np.asarray(labels)
    picked = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    chosen = set(picked)
    rest = [i for i in range(len(labels)) if i not in chosen]
    return np.array((picked + rest)[:n], dtype=int)


def seconds_since(t_start: float, setup: Setup | None = None, **more) -> dict:
    """run.json's `seconds`: the setup's phases, `more`, and the total since t_start."""
    phases = {k: round(v, 1) for k, v in (setup.seconds if setup else {}).items()}
    return {**phases, **more, "total": round(time.perf_counter() - t_start, 1)}


def setup_extra(setup: Setup, t_start: float, **more) -> dict:
    """run.json content shared by the attack scenarios: target, evaluation classifier, queries,
    `more`, timings (the binary adds the command line in front)."""
    judge2 = {} if setup.eval2_info is None else {"eval_classifier_2": setup.eval2_info}
    return {"target": setup.target_info, "eval_classifier": setup.eval_info, **judge2,
            **query_counts(setup.oracle), **aux_extra(setup), **more,
            "seconds": seconds_since(t_start, setup)}


def aux_extra(setup: Setup) -> dict:
    """run.json's `aux_set`: the auxiliary set's name and size, and for a pooled set the
    images each source contributes (`tfminv.data.pool.summary`)."""
    from tfminv.data import pool

    info = {"name": setup.aux_name, "data": getattr(setup.aux_set, "name", ""),
            "images": len(setup.aux_set)}
    pooled = pool.summary(setup.aux_set)
    if pooled:
        info.update(sources=pooled["sources"], parts=pooled["parts"])
    return {"aux_set": info}


@dataclasses.dataclass
class Figure:
    """An image grid to write: `rows` of (label, images [n, h, w, 1]) as in
    `tfminv.reporting.figures.image_grid`."""

    filename: str
    rows: list
    label_width: int = 150


@dataclasses.dataclass
class ScenarioResult:
    """What a scenario measured: one dict per results.json row, and how to present it.

    name: the default output folder (e.g. 'truncation_mnist'); columns: the markdown table's;
    extra: run.json (settings, timings, ...); notes: markdown under the table; figures: the
    PNG grids, written next to results.json by `write`.
    """

    name: str
    title: str
    rows: list[dict]
    columns: list[str]
    extra: dict = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    figures: list[Figure] = dataclasses.field(default_factory=list)

    def write(self, out_dir, *, command: str | None = None) -> list[Path]:
        """Write the figures, results.json, results.md and run.json (with `command` first) to
        out_dir, each atomically; returns the paths written."""
        from tfminv.reporting.figures import image_grid
        from tfminv.reporting.results import write_results

        out_dir = Path(out_dir)
        paths = []
        for fig in self.figures:
            image_grid(fig.rows, out_dir / fig.filename, label_width=fig.label_width)
            paths.append(out_dir / fig.filename)
        extra = {"command": command, **self.extra} if command else dict(self.extra)
        paths += write_results(self.rows, out_dir, columns=self.columns, extra=extra,
                               notes=self.notes, title=self.title)
        return paths
