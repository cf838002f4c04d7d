"""The public entry point: how much do a model's predictions leak about the images it sees?

    import tfminv
    results = tfminv.run_inversion(model, aux_images, victim_images, victim_labels, k=1)
    print(results.table()); results.write_report("out/")

`run_inversion` takes the target in any form (a Keras model, an `Oracle`, a callable returning
probabilities or logits, or an oracle spec string such as `keras:model.keras`), the attacker's
auxiliary images and the victims' images as NumPy arrays (uint8 0-255 or float 0-1, any
[N, H, W, C] the target takes; [N, H, W] counts as one channel), checks every input before any
training, then for each release policy queries the target (cached), trains the aligned
inverter of `tfminv.attacks.inversion` on the auxiliary releases (cached, resumable) and scores
the victims' reconstructions. `run_audit` is the same call over a sweep of policies.

Inputs are checked up front (`InversionInputs`): shapes, channels, value ranges, labels;
the target is probed on a few auxiliary images: it must accept the images' shape and answer
one finite vector of the same length (>= 2) per image. Whether it answers probabilities or
logits is taken from the model (last layer softmax) or detected on the probe (rows
non-negative summing to 1 are probabilities; any negative entry or a row summing above 1 means
logits) or declared (`outputs=`); vectors that look like neither (non-negative rows summing
below 1, e.g. an API that already truncates) must be declared. Probabilities are never
softmaxed twice. The target's input scale is declared (`input_range`, [0, 1] by default): the
attack works on [0, 1] images and the target sees lo + x * (hi - lo).

Attack accuracy needs a judge: `eval_model` (any target form) when given; otherwise, with
victim labels, the target itself, recorded in `settings['judge']` as biased upward (the
attacked model recognises inputs shaped to its own decision regions more easily than an
independent classifier would).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tfminv.errors import ConfigError, DataError, OracleError, TfminvError

log = logging.getLogger(__name__)

DEFAULT_POLICIES = ("identity;topk:3;topk:1;round:1;label;gaussian:0.1;reverse_sigmoid:1,0.1;"
                    "temperature:4")
OUTPUTS = ("auto", "probabilities", "logits")
PROBE = 8  # images sent to the target before anything else
MIN_SIDE = 11  # SSIM's 11x11 window


# ----------------------------------------------------------------------------------- inputs
def as_unit_images(x, what: str) -> np.ndarray:
    """float32 [N, H, W, C] in [0, 1] from uint8 0-255 or float 0-1 arrays ([N, H, W]: C = 1)."""
    if x is None:
        raise DataError(f"{what}: no images given; expected an array [N, H, W] or [N, H, W, C]")
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise DataError(f"{what}: expected images [N, H, W] or [N, H, W, C], got shape {a.shape}")
    if len(a) == 0:
        raise DataError(f"{what}: no images (shape {a.shape})")
    if min(a.shape[1:3]) < MIN_SIDE or a.shape[3] < 1:
        raise DataError(f"{what}: images of {a.shape[1]}x{a.shape[2]}x{a.shape[3]}; expected "
                        f"height and width >= {MIN_SIDE} (SSIM's window) and >= 1 channel")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{what}: integer images must be 0-255, got values in [{lo}, {hi}]")
        return a.astype(np.float32) / 255.0
    if a.dtype.kind != "f":
        raise DataError(f"{what}: expected uint8 (0-255) or float (0-1) images, got dtype "
                        f"{a.dtype}")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise DataError(f"{what}: images contain NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise DataError(f"{what}: float images must be in [0, 1], got values in [{lo:.4g}, "
                        f"{hi:.4g}] (pass uint8 for 0-255 images; the target's own scale is "
                        "input_range)")
    return np.clip(a, 0.0, 1.0)


def as_labels(y, n: int, what: str) -> np.ndarray | None:
    if y is None:
        return None
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or len(a) != n:
        raise DataError(f"{what}: expected {n} integer labels (one per image), got shape "
                        f"{a.shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise DataError(f"{what}: labels must be integers, got non-integer values")
    elif a.dtype.kind not in "iu":
        raise DataError(f"{what}: labels must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.min() < 0:
        raise DataError(f"{what}: labels must be class indices >= 0, got {int(a.min())}")
    return a


@dataclasses.dataclass
class InversionInputs:
    """The data of one inversion, checked and normalised on construction (data only).

    aux_images: the attacker's auxiliary images; victim_images: the images whose released
    predictions are inverted; victim_labels: their class indices (optional: attack accuracy and
    utility need them); train_images/train_labels: the target's training data (optional: the
    class-mean baseline uses them, else the victims' own class means). Images become float32
    [N, H, W, C] in [0, 1]; all must share one (H, W, C).
    """

    aux_images: np.ndarray
    victim_images: np.ndarray
    victim_labels: np.ndarray | None = None
    train_images: np.ndarray | None = None
    train_labels: np.ndarray | None = None

    def __post_init__(self):
        self.aux_images = as_unit_images(self.aux_images, "aux_images")
        self.victim_images = as_unit_images(self.victim_images, "victim_images")
        if len(self.aux_images) < 2:
            raise DataError(f"aux_images: {len(self.aux_images)} image(s); the attacker needs "
                            "at least 2 (one is held out for model selection)")
        if self.aux_images.shape[1:] != self.victim_images.shape[1:]:
            raise DataError(f"aux_images are {_hwc(self.aux_images)} but victim_images are "
                            f"{_hwc(self.victim_images)}: expected one shape")
        self.victim_labels = as_labels(self.victim_labels, len(self.victim_images),
                                       "victim_labels")
        if (self.train_images is None) != (self.train_labels is None):
            raise DataError("train_images and train_labels go together")
        if self.train_images is not None:
            self.train_images = as_unit_images(self.train_images, "train_images")
            if self.train_images.shape[1:] != self.victim_images.shape[1:]:
                raise DataError(f"train_images are {_hwc(self.train_images)} but victim_images "
                                f"are {_hwc(self.victim_images)}: expected one shape")
            self.train_labels = as_labels(self.train_labels, len(self.train_images),
                                          "train_labels")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.victim_images.shape[1:])


def _hwc(images) -> str:
    return "x".join(str(d) for d in images.shape[1:])


# ----------------------------------------------------------------------------------- target
def parse_input_range(value) -> tuple[float, float]:
    """(lo, hi) of the target's expected inputs: a pair, a number hi (lo = 0), 'hi' or 'lo,hi'."""
    try:
        if isinstance(value, str):
            parts = [float(v) for v in re.split(r"[,:]", value) if v.strip()]
        elif isinstance(value, (int, float)):
            parts = [0.0, float(value)]
        else:
            parts = [float(v) for v in value]
    except (TypeError, ValueError):
        parts = []
    if len(parts) == 1:
        parts = [0.0, parts[0]]
    if len(parts) != 2 or not np.all(np.isfinite(parts)) or not parts[1] > parts[0]:
        raise ConfigError(f"input_range={value!r}: expected (lo, hi) with lo < hi, e.g. (0, 1) "
                          "or (0, 255)")
    return float(parts[0]), float(parts[1])


def _keras_model(obj) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        return False
    return isinstance(obj, keras.Model)


def _weights_hash(model) -> str:
    import hashlib

    h = hashlib.sha256(model.name.encode())
    for w in model.get_weights():
        h.update(str(w.shape).encode())
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def _base_oracle(target, what: str):
    """(Oracle answering raw outputs, whether the model itself says 'probabilities')."""
    from tfminv.oracles.base import CallableOracle, KerasOracle, Oracle

    if isinstance(target, Oracle):
        return target, None
    if isinstance(target, (str, Path)):
        from tfminv.oracles import from_spec

        base = from_spec(_spec(str(target), what), outputs="raw")  # make_target reads them
        return base, getattr(base, "ends_in_softmax", None)
    if _keras_model(target):
        from tfminv.export import ends_in_softmax

        return (KerasOracle(target, softmax=False, identity=f"keras:{_weights_hash(target)}",
                            name=f"{what} {target.name}"), ends_in_softmax(target))
    if callable(target):
        name = getattr(target, "__qualname__", type(target).__name__)
        return CallableOracle(target, name=f"{what} {name}"), None
    raise ConfigError(f"{what}: expected a Keras model, an Oracle, a callable or an oracle spec "
                      f"string, got {type(target).__name__}")


def _spec(spec: str, what: str) -> str:
    """A bare .keras file or SavedModel folder is accepted as a spec too."""
    from tfminv.oracles.spec import SCHEMES

    if spec.partition(":")[0] in SCHEMES:
        return spec
    p = Path(spec)
    if p.suffix in (".keras", ".h5", ".hdf5") and p.is_file():
        return f"keras:{p}"
    if p.is_dir():
        return f"savedmodel:{p}"
    raise ConfigError(f"{what}={spec!r}: expected an oracle spec "
                      f"({', '.join(s + ':...' for s in SCHEMES)}), a .keras file or a "
                      "SavedModel directory")


def make_target(target, *, probe_images: np.ndarray, outputs: str = "auto",
                input_range=(0.0, 1.0), what: str = "target", scores_only: bool = False,
                cache_dir=None):
    """An Oracle that takes [0, 1] images and answers probabilities (or, with scores_only,
    whatever the model answers, for a judge that only needs the argmax), after probing it.

    Returns (oracle, info): info records the identity, the input range, and how the outputs
    were read ('probabilities' or 'logits', and whether declared, from the model or detected).
    The probe's answers are cached like every query (tfminv.attacks.predictions), so a re-run
    costs the target nothing. Raises a TfminvError naming `what` when the target rejects the
    images' shape, answers the wrong number of vectors, vectors shorter than 2, NaN/inf, or
    outputs that must be declared.
    """
    from tfminv.attacks.predictions import query_cached
    from tfminv.oracles.base import Oracle, softmax_np
    from tfminv.oracles.checks import check_deterministic, outputs_kind

    if outputs not in OUTPUTS:
        raise ConfigError(f"outputs={outputs!r}: expected one of {', '.join(OUTPUTS)}")
    lo, hi = parse_input_range(input_range)
    base, says_probs = _base_oracle(target, what)
    shape = tuple(probe_images.shape[1:])
    if _keras_model(target):
        expected = tuple(target.input_shape[1:]) if hasattr(target, "input_shape") else None
        if expected and len(expected) == 3 and any(
                e is not None and e != g for e, g in zip(expected, shape)):
            raise DataError(f"{what} expects images of shape {_fmt_shape(expected)} but the "
                            f"images are {_fmt_shape(shape)}"
                            + (" (channel mismatch)" if expected[2] not in (None, shape[2])
                               else "") + "; images are never resized for the target")
    try:
        raw = np.asarray(query_cached(base, lo + probe_images * (hi - lo), cache_dir),
                         np.float32)
        again = np.asarray(base(lo + probe_images * (hi - lo)), np.float32)  # not cached
    except TfminvError as e:
        raise type(e)(f"{what} on a probe batch of {_fmt_shape(shape)} images: {e}") from None
    except Exception as e:  # noqa: BLE001 - any failure here means the target cannot take them
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise OracleError(f"{what} failed on a probe batch of {len(probe_images)} images of "
                          f"shape {_fmt_shape(shape)} ({type(e).__name__}: {first}); expected a "
                          "target that takes these images") from None
    if raw.ndim != 2 or len(raw) != len(probe_images):
        raise OracleError(f"{what}: answered shape {raw.shape} for {len(probe_images)} images; "
                          f"expected {len(probe_images)} prediction vectors [n, classes]")
    if raw.shape[1] < 2:
        raise OracleError(f"{what}: answered vectors of length {raw.shape[1]}; expected at least "
                          "2 classes")
    if not np.all(np.isfinite(raw)):
        raise OracleError(f"{what}: answered NaN or infinite values on the probe batch")
    check_deterministic(raw, again, what)
    if scores_only:
        kind, how = "scores", "used for the argmax only"
    else:
        kind, how = outputs_kind(raw, outputs, says_probs, what)
    softmax = kind == "logits"
    ident = f"{base.identity()}|in={lo:g},{hi:g}|{'softmax' if softmax else 'raw'}"

    class _Target(Oracle):
        def identity(self):
            return ident

        def _predict(self, images):
            out = base(lo + np.asarray(images, np.float32) * (hi - lo))
            return softmax_np(out) if softmax else out

    oracle = _Target(output_dim=int(raw.shape[1]), batch_size=base.batch_size,
                     name=base.name)
    info = {"identity": ident, "input_range": [lo, hi], "outputs": kind, "outputs_from": how,
            "classes": int(raw.shape[1])}
    return oracle, info


def _fmt_shape(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


# ----------------------------------------------------------------------------------- run
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
    released = np.asarray(released, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    top = released.max(axis=1, keepdims=True)
    tied = released >= top
    hit = tied[np.arange(len(labels)), labels]
    return float(np.mean(hit / tied.sum(axis=1)))


def _policies(k, policies):
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


def _loo_class_means(images, labels) -> np.ndarray:
    """Each image guessed as the mean of the *other* images of its class (of all other images
    when it is alone in its class): a class-mean floor that never contains the image itself."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    total, n = flat.sum(0), len(flat)
    out = np.empty_like(flat)
    for c in np.unique(labels):
        sel = labels == c
        cnt = int(sel.sum())
        if cnt > 1:
            out[sel] = (flat[sel].sum(0) - flat[sel]) / (cnt - 1)
        else:
            out[sel] = (total - flat[sel]) / max(n - 1, 1)
    return out.reshape(images.shape).astype(np.float32)


def run_inversion(target, aux_images, victim_images=None, victim_labels=None, *,
                  k: int | None = None, policies: str | Sequence | None = None,
                  epochs: int = 20, width: float = 0.25,
                  eval_model=None, outputs: str = "auto", input_range=(0.0, 1.0),
                  train_images=None, train_labels=None,
                  batch_size: int = 128, seed: int = 0, val_fraction: float = 0.1,
                  cache_dir=None, workdir=None, config=None, verbose: int = 0,
                  aux_augment: str = "", progress: Callable[[str], None] | None = None):
    """Train the aligned inversion attack against `target` and score it on the victims.

    The data come as arrays, or as one checked `InversionInputs` in place of aux_images (as
    tensorflow/privacy's `run_attacks(AttackInputData)`): `run_inversion(model, inputs, k=1)`.

    k: victims release their top-k probabilities (the inverter applies the same truncation);
    policies: release policies instead (`tfminv.policies` specs, 'a;b' or a list), one row each;
    neither: the full vector ('identity'). epochs / width: the inverter's training budget and
    width multiplier (defaults are CPU-sized; the paper used 100 and 1.0). eval_model: the
    judge for attack accuracy (any target form; its input_range is the target's; only its
    argmax is used, and only with victim labels). outputs: what the target answers, 'auto',
    'probabilities' or 'logits'. input_range: the scale the target
    expects, (0, 1) by default or e.g. (0, 255). train_images/train_labels: the target's
    training data, only for the class-mean baseline. val_fraction/seed: the seeded hold-out of
    auxiliary images that selects the inverter. cache_dir: predictions and trained inverters
    (default $TFMINV_CACHE_DIR); config: a tfminv.training.TrainConfig overriding
    epochs/batch_size. aux_augment: 'flip' adds the mirror image of every auxiliary training
    image, released through each policy like the rest (about 1.9x the auxiliary queries; see
    `attacks.predictions.with_mirrors`). Returns `tfminv.results.InversionResults`.

    Every check (inputs, target probe, labels vs classes, k vs classes, judge length) runs
    before any training; a failure raises a TfminvError naming the value and what was expected.
    """
    from tfminv import metrics, paths
    from tfminv.attacks.inversion import invert, train_inverter
    from tfminv.attacks.predictions import check_aux_augment, mirror_images, query_cached
    from tfminv.results import InversionResults, InversionRow
    from tfminv.training import TrainConfig

    t0 = time.time()
    say = progress or (print if verbose else log.info)
    if isinstance(aux_images, InversionInputs):
        if victim_images is not None or victim_labels is not None or train_images is not None:
            raise ConfigError("with InversionInputs, give no separate victim or training arrays")
        data = aux_images
    else:
        data = InversionInputs(aux_images, victim_images, victim_labels, train_images,
                               train_labels)
    pols = _policies(k, policies)
    check_aux_augment(aux_augment)
    if config is None:
        config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=1, verbose=verbose)
    if not float(width) > 0:
        raise ConfigError(f"width={width!r}: expected a multiplier > 0")
    tr_idx, val_idx = split_holdout(len(data.aux_images), val_fraction, seed)
    probe = data.aux_images[:PROBE]
    oracle, target_info = make_target(target, probe_images=probe, outputs=outputs,
                                      input_range=input_range, what="target",
                                      cache_dir=cache_dir)
    m = target_info["classes"]
    labels = data.victim_labels
    if labels is not None and labels.max() >= m:
        raise DataError(f"victim_labels span [{labels.min()}, {labels.max()}] but the target "
                        f"answers {m} classes: expected labels in [0, {m - 1}]")
    if k is not None and k > m:
        raise ConfigError(f"k={k}: the target answers {m} classes; expected 1 <= k <= {m}")
    judge, judge_info = None, {"judge": None, "note": "no labels: no attack accuracy"}
    if eval_model is not None and labels is not None:
        judge, info = make_target(eval_model, probe_images=probe, input_range=input_range,
                                  what="eval_model", scores_only=True, cache_dir=cache_dir)
        if info["classes"] != m:
            raise DataError(f"eval_model answers {info['classes']} classes but the target "
                            f"answers {m}: expected the same class order")
        judge_info = {"judge": "eval_model", "identity": info["identity"],
                      "note": "independent evaluation classifier"}
    elif labels is not None:
        judge = oracle
        judge_info = {"judge": "target", "identity": target_info["identity"],
                      "note": "no eval_model given: the target judges its own inversions; "
                              "biased upward (an independent classifier would recognise fewer)"}

    # queries (and every remaining check) before training
    raw_victims = query_cached(oracle, data.victim_images, cache_dir)
    aux_tr = data.aux_images[tr_idx]
    mirrored = mirror_images(aux_tr) if aux_augment else None
    releases = []
    for pol in pols:
        releases.append((query_cached(oracle, data.aux_images, cache_dir, policy=pol, seed=seed),
                         query_cached(oracle, data.victim_images, cache_dir, policy=pol,
                                      seed=seed + 1),
                         None if mirrored is None else
                         query_cached(oracle, mirrored, cache_dir, policy=pol, seed=seed + 2)))
    refs = {"mse_zeros": metrics.mse(np.zeros_like(data.victim_images), data.victim_images),
            "mse_mean_aux": metrics.mse(np.broadcast_to(aux_tr.mean(axis=0),
                                                        data.victim_images.shape),
                                        data.victim_images)}
    if labels is not None:
        if data.train_images is not None:
            guess = metrics.class_mean_guess(data.train_images, data.train_labels, labels)
            refs["class_mean_from"] = "target training images"
        else:
            guess = _loo_class_means(data.victim_images, labels)
            refs["class_mean_from"] = "the other victims of the class (leave-one-out)"
        refs["mse_class_mean"] = metrics.mse(guess, data.victim_images)
        refs["chance_accuracy"] = 1.0 / m
        refs["target_accuracy_on_victims"] = tie_aware_accuracy(raw_victims, labels)
        if judge is not None:
            refs["judge_accuracy_on_real_victims"] = metrics.topk_accuracy(
                query_cached(judge, data.victim_images, cache_dir), labels)["top1"]
    base_workdir = Path(workdir) if workdir else (
        paths.cache_dir(cache_dir) / "inverters" /
        re.sub(r"[^A-Za-z0-9_.,=-]+", "_", target_info["identity"])[:100])
    say(f"inversion: {len(pols)} polic{'y' if len(pols) == 1 else 'ies'}, {len(tr_idx)}+"
        f"{len(val_idx)} auxiliary images{' (+ mirrors)' if aux_augment else ''}, "
        f"{len(data.victim_images)} victims of "
        f"{_hwc(data.victim_images)}, {m} classes ({target_info['outputs']}, "
        f"{target_info['outputs_from']})")

    rows, recons = [], {}
    for i, (pol, (aux_rel, vic_rel, mirror_rel)) in enumerate(zip(pols, releases)):
        t1 = time.time()
        spec, kk = pol.spec(), pol.released_k(m)
        x_tr, y_tr = aux_rel[tr_idx], aux_tr
        if mirror_rel is not None:
            x_tr, y_tr = np.concatenate([x_tr, mirror_rel]), np.concatenate([y_tr, mirrored])
        inverter = train_inverter(x_tr, y_tr, k=kk, method="truncation",
                                  config=config, workdir=base_workdir, width=width,
                                  val=(aux_rel[val_idx], data.aux_images[val_idx]))
        recon = invert(inverter, vic_rel)
        rec = metrics.reconstruction_metrics(recon, data.victim_images)
        acc = (metrics.topk_accuracy(query_cached(judge, recon, cache_dir), labels)
               if judge is not None
               else {"top1": None, "top5": None})
        row = InversionRow(
            policy=spec, k=kk, released_entries=float(np.mean((vic_rel > 0).sum(axis=1))),
            mse=rec["mse"], psnr=rec["psnr"], ssim=rec["ssim"],
            beats_mean_aux=bool(rec["mse"] < refs["mse_mean_aux"]),
            attack_acc=acc["top1"], attack_acc_top5=acc["top5"],
            utility=None if labels is None else tie_aware_accuracy(vic_rel, labels),
            agreement=float(np.mean(np.argmax(vic_rel, 1) == np.argmax(raw_victims, 1))),
            aux_val_mse=metrics.mse(invert(inverter, aux_rel[val_idx]),
                                    data.aux_images[val_idx]),
            seconds=round(time.time() - t1, 1))
        rows.append(row)
        recons[spec] = recon
        say(f"[{i + 1}/{len(pols)}] {spec}: mse {row.mse:.4f} (mean aux image "
            f"{refs['mse_mean_aux']:.4f}), ssim {row.ssim:.3f}, attack acc "
            f"{'-' if row.attack_acc is None else format(row.attack_acc, '.3f')} "
            f"({row.seconds:.0f}s)")
    settings = {"target": target_info, "judge": judge_info,
                "image_shape": list(data.image_shape), "classes": m,
                "aux_train": int(len(tr_idx)), "aux_val": int(len(val_idx)),
                "victims": int(len(data.victim_images)), "labels": labels is not None,
                "policies": [p.spec() for p in pols], "width": float(width),
                "train_config": config.key(), "val_fraction": val_fraction, "seed": seed,
                "aux_augment": aux_augment,
                "oracle_queries": oracle.num_queries, "seconds": round(time.time() - t0, 1)}
    return InversionResults(rows=rows, reconstructions=recons, baselines=refs,
                            settings=settings, victim_images=data.victim_images,
                            victim_labels=labels)


def run_audit(target, aux_images, victim_images, victim_labels=None, *,
              policies: str | Sequence = DEFAULT_POLICIES, **kwargs):
    """The leakage/utility sweep: `run_inversion` over release policies (default: identity,
    top-3, top-1, rounding, label only, Gaussian noise, reverse sigmoid, temperature). With
    victim labels each row also has the released vector's utility.

    The keyword form of the audit: the audit scenario `tfminv.scenarios.run_audit(AuditConfig)`
    (what `python -m tfminv.experiments.audit` runs) builds these arguments from a config and
    calls this function."""
    return run_inversion(target, aux_images, victim_images, victim_labels, policies=policies,
                         **kwargs)
