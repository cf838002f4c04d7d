"""Train the target classifier of an allocation once, and an independent evaluation classifier.

Trained classifiers are cached under cache_dir()/classifiers/<allocation>-<role>-<hash>/,
keyed by the allocation's target_train/target_test slices, the role, the width, the training
config and the code version of the classifier's builder, layers and training recipe
(`tfminv.training.code_version`), so every experiment on the same target data and code reuses
them (a lock makes concurrent processes wait for one training). The evaluation classifier (role
'eval', used only to score attacks) has a different seed and width from the target. A damaged
info.json is reported in one line and recomputed (the committed training is reused when it
loads), never trusted.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from tfminv import paths
from tfminv.errors import ConfigError
from tfminv.io_utils import write_json

ROLES = ("target", "eval")
EVAL_SEED_OFFSET = 101
EVAL_WIDTH_FACTOR = 0.5
#: what a cached info.json must hold to be used
INFO_KEYS = ("path", "key", "role", "allocation", "width", "test_accuracy", "identity")
CODE = "classifier"  # the kind in tfminv.training.code_version.KINDS

log = logging.getLogger("tfminv")


def _options(augment: str, monitor: str, init: str) -> dict:
    """The classifier options set away from their defaults (only these enter cache keys, so
    keys of runs made before the options existed stay the same)."""
    out = {}
    if augment:
        out["augment"] = augment
    if monitor != "val_loss":
        out["monitor"] = monitor
    if init != "keras":
        out["init"] = init
    return out

def _describe(allocation) -> dict:
    """The parts of an allocation a classifier depends on (not its victims or auxiliary sets,
    so experiments that differ only there share one trained target)."""
    d = {"name": allocation.name, "image_size": allocation.image_size,
         "num_classes": allocation.num_classes}
    for split in ("target_train", "target_test"):
        ref = getattr(allocation, split)
        d[split] = dataclasses.asdict(ref) if dataclasses.is_dataclass(ref) else repr(ref)
    return json.loads(json.dumps(d, default=str))


def classifier_settings(allocation, role: str, width: float, config,
                        eval_width: float | None = None) -> tuple[float, object]:
    """(width, config) actually used for `role`: 'eval' changes the seed and uses `eval_width`
    (default: half the width)."""
    if role not in ROLES:
        raise ConfigError(f"classifier role must be one of {ROLES}, got {role!r}")
    if role == "eval":
        w = float(eval_width) if eval_width else width * EVAL_WIDTH_FACTOR
        return w, config.replace(seed=config.seed + EVAL_SEED_OFFSET)
    return width, config


def classifier_key(allocation, role: str = "target", width: float = 1.0, config=None,
                   val_fraction: float = 0.1, augment: str = "", monitor: str = "val_loss",
                   eval_width: float | None = None, init: str = "keras",
                   defence: str = "none", aux_key=None) -> str:
    """Cache key of a classifier: its training data, role, width, training config, the code
    version of its builder and training recipe, and the augmentation, selection monitor, init
    and training-time defence (`tfminv.defences.cache_key_part`; aux_key: the description of
    the public images transfer learning pre-trains on) when they differ from the defaults, so
    an undefended classifier keeps the key it had before defences existed."""
    from tfminv import defences
    from tfminv.hashing import digest
    from tfminv.training import TrainConfig, code_version

    width, config = classifier_settings(allocation, role, width, config or TrainConfig(),
                                        eval_width)
    d = {"allocation": _describe(allocation), "role": role, "width": width,
         "config": config.key(), "val_fraction": val_fraction,
         **_options(augment, monitor, init), "code": code_version.version(CODE),
         **defences.cache_key_part(_role_defence(role, defence), aux_key)}
    return digest(d)


def _role_defence(role: str, defence) -> str:
    """The defence a classifier of `role` trains under: `defence` for the target, always
    'none' for the evaluation classifier (the judge of every attack stays the same)."""
    from tfminv import defences

    return str(defences.parse(defence)) if role == "target" else "none"


#: the share of the training rows a classifier holds out for model selection
VAL_FRACTION = 0.1


def get_or_train_classifier(allocation, *, role: str = "target", width: float = 1.0,
                            config=None, cache_dir=None, data_dir=None, records_dir=None,
                            train_set=None, test_set=None, val_fraction: float = VAL_FRACTION,
                            augment: str = "", monitor: str = "val_loss",
                            eval_width: float | None = None, init: str = "keras",
                            defence: str = "none", aux=None, aux_key=None):
    """Return (model, info) for the allocation's classifier, training it only when not cached.

    The model outputs logits. info: dict with path, key, role, width, test_accuracy,
    val_accuracy, epochs and `identity` (a stable string for prediction caches). train_set /
    test_set may be passed when already materialised (else they are loaded here).
    augment: see `build_classifier`; monitor: the model-selection quantity on the held-out
    `val_fraction` of the training data ('val_loss' or 'val_accuracy'); eval_width: the
    evaluation classifier's width (default half of `width`); init: 'keras' or 'torch'
    kernel initialisation (`models.classifier.kernel_initializer`).
    defence: a `tfminv.defences` spec for role 'target' (ignored for 'eval'); a defended
    target is cached under its own key and its info holds `defence` (the spec and, for
    DP-SGD, epsilon, delta and steps). aux / aux_key: the labelled public images (images,
    labels) and their JSON-able description, for transfer learning ('tl:N') only.
    """
    import keras

    from tfminv.models import build_classifier
    from tfminv.training import TrainConfig, code_version, fit

    config = config or TrainConfig()
    defence = _role_defence(role, defence)
    key = classifier_key(allocation, role, width, config, val_fraction, augment, monitor,
                         eval_width, init, defence, aux_key)
    width, config = classifier_settings(allocation, role, width, config, eval_width)
    folder = paths.cache_dir(cache_dir) / "classifiers" / f"{allocation.name}-{role}-{key}"
    info_path, model_path = folder / "info.json", folder / "train" / "model.keras"
    from tfminv import distribute

    cached = None
    if distribute.is_chief() and info_path.exists() and model_path.exists():
        cached = _load_cached(folder, key)
    if distribute.is_multi_worker():
        # all workers reuse or all train (in step): the chief decides, the others follow and
        # read its files only once it has
        use = bool(distribute.broadcast_from_chief(np.array([cached is not None], np.float32))[0])
        problem = None
        if use and cached is None:
            try:
                cached = _load_shared(folder)
            except distribute.ClusterError as e:
                problem = e
        # every worker learns that one cannot follow (instead of waiting for it)
        if use and not distribute.all_true(problem is None):
            raise problem or distribute.ClusterError(
                f"{folder}: the chief reuses this cached classifier but another worker cannot "
                "load it; put --cache_dir on storage every worker shares")
    if cached is not None:
        return cached

    if train_set is None or test_set is None:
        from tfminv.data import allocations

        if train_set is None:
            train_set = allocations.materialize(allocation.target_train, data_dir=data_dir,
                                                records_dir=records_dir)
        if test_set is None:
            test_set = allocations.materialize(allocation.target_test, data_dir=data_dir,
                                               records_dir=records_dir)
    from tfminv.data.splits import holdout

    tr_idx, val_idx = holdout(len(train_set), val_fraction, config.seed)
    x, y = train_set.images[tr_idx], train_set.labels[tr_idx]
    xv, yv = train_set.images[val_idx], train_set.labels[val_idx]
    num_classes = int(allocation.num_classes)
    size = int(allocation.image_size)
    meta = {"allocation": allocation.name, "role": role, "width": width,
            **_options(augment, monitor, init)}
    def build():
        return build_classifier(num_classes, size, width, name=f"{role}_classifier",
                                augment=augment, init=init)

    dinfo = None
    if defence == "none":  # trained exactly as before defences existed (same files, same meta)
        model = fit(build, x, y, config=config, workdir=folder / "train", val=(xv, yv),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"], monitor=monitor, meta=meta, code=CODE)
    else:
        from tfminv import defences

        model, dinfo = defences.fit_defended(defence, build, x, y, config=config,
                                             workdir=folder / "train", val=(xv, yv), aux=aux,
                                             meta=meta, monitor=monitor)
    logits = model.predict(test_set.images, batch_size=256, verbose=0)
    test_acc = float((np.argmax(logits, axis=1) == test_set.labels).mean())
    vlogits = model.predict(xv, batch_size=256, verbose=0)
    info = {"path": str(folder / "train" / "model.keras"), "key": key, "role": role,
            "allocation": allocation.name, "width": width, "seed": config.seed,
            "epochs": config.epochs, "train_size": int(len(tr_idx)),
            "augment": augment, "monitor": monitor, "init": init,
            "test_size": int(len(test_set)),
            "val_accuracy": float((np.argmax(vlogits, axis=1) == yv).mean()),
            "test_accuracy": test_acc,
            "identity": f"tfminv-classifier:{allocation.name}:{role}:{key}",
            "code": code_version.record(CODE), **({"defence": dinfo} if dinfo else {})}
    if distribute.is_chief():  # the other workers of a multi-worker run only read the cache
        try:
            write_json(info_path, info)
        except OSError as e:
            from tfminv.training.fit import unwritable

            raise unwritable(folder, e) from None
    return model, info


def read_info(folder, key: str) -> dict:
    """The cached info.json of the classifier in `folder`; ValueError saying what is wrong when
    it is not the record of this classifier (unreadable, not JSON, a missing field, another
    key)."""
    try:
        info = json.loads((folder / "info.json").read_text())
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"info.json does not parse ({type(e).__name__})") from None
    if not isinstance(info, dict):
        raise ValueError("info.json is not a JSON object")
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise ValueError(f"info.json lacks {', '.join(missing)}")
    if info["key"] != key:
        raise ValueError(f"info.json is the record of classifier {info['key']!r}, not {key!r}")
    return info


def _load_cached(folder, key: str):
    """(model, info) of the cached classifier in `folder`, or None after a one-line warning when
    its info.json is damaged (recomputed: the committed training is reused if it loads) or its
    model does not load (trained again)."""
    import keras

    from tfminv import custom_objects

    try:
        info = read_info(folder, key)
    except ValueError as e:
        log.warning(f"{folder}: {e}; recomputing it")
        (folder / "info.json").unlink(missing_ok=True)
        return None
    custom_objects.register()
    try:
        return keras.models.load_model(folder / "train" / "model.keras"), info
    except Exception as e:  # noqa: BLE001 - a cache that does not load is recomputed
        log.warning(f"{folder}: cached classifier does not load ({type(e).__name__}); "
                    "training it again")
        (folder / "info.json").unlink(missing_ok=True)
        for name in ("model.keras", "run.json"):
            (folder / "train" / name).unlink(missing_ok=True)
        return None


def _load_shared(folder):
    """On a non-chief worker: the cached classifier (model, info) the chief has just loaded."""
    import keras

    from tfminv import custom_objects, distribute

    custom_objects.register()
    try:
        info = read_info(folder, folder.name.rsplit("-", 1)[-1])
        return keras.models.load_model(folder / "train" / "model.keras"), info
    except Exception as e:  # noqa: BLE001 - any failure: this worker cannot follow the chief
        raise distribute.ClusterError(
            f"{folder}: the chief reuses this cached classifier but this worker cannot load it "
            f"({type(e).__name__}); put --cache_dir on storage every worker shares") from None


def target_oracle(model, info, **kwargs):
    """A KerasOracle (softmax probabilities) over a classifier from get_or_train_classifier."""
    from tfminv.oracles import KerasOracle

    return KerasOracle(model, softmax=True, identity=info["identity"],
                       name=f"{info['allocation']}-{info['role']}", **kwargs)
