"""The attack core: the pieces every door assembles the black-box inversion from.

    refs = core.baselines(victims, aux_train, victim_labels=labels, train_images=x, train_labels=y)
    attack = core.run_attack(train_preds, train_images, victim_preds, victim_images, k=1,
                             config=train_config, workdir=core.run_folder(root, "inverters",
                             identity), width=0.25, val=(val_preds, val_images), judge=judge)
    attack.scores["mse"], attack.reconstructions, attack.inverter

`tfminv.run_inversion` (the public door, one `run_attack` per release policy), the scenarios
(`tfminv.scenarios.base.blackbox_attack`), the audit and `tfminv.LeakageCallback` take the
reference numbers from `baselines`, the run folder from `run_folder`, the scores from `score`
and (all but the callback, which trains a throw-away inverter in memory every few epochs) the
train -> invert -> score body from `run_attack`. The target probe is `tfminv.target.make_target`
(`read_outputs`: the probabilities/logits rule). Pattern: tensorflow/privacy's `run_attacks ->
_run_attack -> _run_threshold_attack`, small functions returning typed values.

The reference rule, decided once (see DESIGN.md, "The attack core"): the mean auxiliary image is
the mean of the auxiliary images the attacker's inverter TRAINS on (its training rows; the
held-out model-selection rows and any mirror images are not part of it), because that is the
free guess of the same data the attack learns from. The class-mean floor is each victim guessed
as its class's mean image: of the target's training images when the door has them, else of the
other victims of the class (leave-one-out, so the guess never contains the victim);
`Baselines.class_mean_from` says which. NumPy at import; TensorFlow only inside the functions
that train or score.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from tfminv.errors import ConfigError, DataError

CLASS_MEAN_FROM_TRAIN = "target training images"
CLASS_MEAN_FROM_VICTIMS = "the other victims of the class (leave-one-out)"


# ----------------------------------------------------------------------------- references
@dataclasses.dataclass(frozen=True)
class Baselines:
    """The reference MSEs printed beside every inversion MSE (module docstring: the rule).

    zeros: an all-black guess. mean_aux: the mean of the attacker's auxiliary training rows
    guessed for every victim (free for any attacker). class_mean: each victim guessed as its
    class's mean image (a floor no real attacker can compute; None without victim labels);
    class_mean_from: CLASS_MEAN_FROM_TRAIN or CLASS_MEAN_FROM_VICTIMS. The guesses themselves
    (`mean_aux_image` [H, W, C], `class_mean_images` [N, H, W, C]) are kept for judges that
    score the references like reconstructions.
    """

    zeros: float
    mean_aux: float
    class_mean: float | None = None
    class_mean_from: str | None = None
    mean_aux_image: np.ndarray | None = dataclasses.field(default=None, repr=False,
                                                          compare=False)
    class_mean_images: np.ndarray | None = dataclasses.field(default=None, repr=False,
                                                             compare=False)

    def mses(self) -> dict:
        """{column: MSE}: mse_mean_aux, mse_zeros and (with labels) mse_class_mean, the names
        every results.json and `InversionResults.baselines` use."""
        out = {"mse_zeros": self.zeros, "mse_mean_aux": self.mean_aux}
        if self.class_mean is not None:
            out["mse_class_mean"] = self.class_mean
        return out


def baselines(victims, aux_train, *, victim_labels=None, train_images=None,
              train_labels=None) -> Baselines:
    """`Baselines` of victims [N, H, W, C] in [0, 1].

    aux_train: the auxiliary images the attacker's inverter trains on (an array, or a
    `tfminv.data.streaming.StreamedImages`, averaged chunk by chunk). With victim_labels the
    class-mean floor: of train_images/train_labels when given (a victim class without training
    images raises DataError), else leave-one-out over the victims.
    """
    from tfminv import metrics

    victims = np.asarray(victims, dtype=np.float32)
    aux_mean = np.asarray(metrics.mean_image(aux_train), np.float32)
    zeros = metrics.mse(np.zeros_like(victims), victims)
    mean_aux = metrics.mse(np.broadcast_to(aux_mean, victims.shape), victims)
    if victim_labels is None:  # no floor without the victims' classes
        return Baselines(zeros, mean_aux, mean_aux_image=aux_mean)
    if train_images is not None:
        if train_labels is None:
            raise DataError("the class-mean floor needs train_labels with train_images")
        guess = metrics.class_mean_guess(train_images, train_labels, victim_labels)
        source = CLASS_MEAN_FROM_TRAIN
    else:
        guess = loo_class_means(victims, np.asarray(victim_labels))
        source = CLASS_MEAN_FROM_VICTIMS
    return Baselines(zeros, mean_aux, metrics.mse(guess, victims), source,
                     mean_aux_image=aux_mean, class_mean_images=guess)


def loo_class_means(images, labels) -> np.ndarray:
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


# ----------------------------------------------------------------------------- scoring
class ScoresJudge:
    """A judge from any function answering scores [N, m] (probabilities or logits) for images:
    called on (images, labels) it returns attack_acc (top-1) and attack_acc_top5, as
    `tfminv.metrics.IdentityJudge` does (which adds the feature-space identity check)."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]):
        self.predict = predict

    def __call__(self, images, labels) -> dict:
        from tfminv import metrics

        acc = metrics.topk_accuracy(self.predict(np.asarray(images, np.float32)), labels)
        return {"attack_acc": acc["top1"], "attack_acc_top5": acc["top5"]}

    def calls(self, images) -> np.ndarray:
        """The judge's top-1 class of each image [N] (int64)."""
        return np.argmax(np.asarray(self.predict(np.asarray(images, np.float32))), axis=1)


def majority(calls, labels) -> dict:
    """What "the judge calls every reconstruction the same person" is worth, read off the
    judge's calls [N] on one policy's reconstructions and the victims' labels [N]:
    majority_class (the class called most often), majority_rate (the share of reconstructions
    called it), attack_acc_without_majority (attack accuracy on the victims not of that class;
    None when every victim is of it) and per_class_attack_acc {class: accuracy} over the
    victims' classes. A high majority_rate with a much lower attack_acc_without_majority means
    the accuracy is the judge's favourite class meeting its own victims, not recognition."""
    calls, labels = np.asarray(calls).astype(np.int64), np.asarray(labels).astype(np.int64)
    values, counts = np.unique(calls, return_counts=True)
    top = int(values[np.argmax(counts)])
    hit = calls == labels
    rest = labels != top
    return {"majority_class": top, "majority_rate": float(np.mean(calls == top)),
            "attack_acc_without_majority": float(hit[rest].mean()) if rest.any() else None,
            "per_class_attack_acc": {int(c): float(hit[labels == c].mean())
                                     for c in np.unique(labels)}}


def reference_rows(refs: Baselines, victims, labels=None, judge=None) -> tuple[list, dict]:
    """The references scored like a policy: ([row], {name: per-victim arrays}).

    Rows (dicts with reference, mse, ssim, attack_acc): `zeros` (all black), `mean image` (the
    mean auxiliary training image), with labels `majority class` (every victim guessed as the
    most frequent victim class: attack_acc is that class's share, what a judge stuck on one
    class scores; no image, so no MSE/SSIM) and `class-mean floor` only when the class means
    come from the target's training images (leave-one-out means of the victims are not
    reported as a floor). attack_acc needs labels and a judge (`ScoresJudge`; else None).
    Per-victim arrays: "mse" [N] and, with a judge, "hit" [N] (bool), for paired intervals.
    """
    from tfminv import metrics

    victims = np.asarray(victims, np.float32)
    guesses = [("zeros", np.zeros(victims.shape[1:], np.float32))]
    if refs.mean_aux_image is not None:
        guesses.append(("mean image", np.asarray(refs.mean_aux_image, np.float32)))
    if refs.class_mean_from == CLASS_MEAN_FROM_TRAIN and refs.class_mean_images is not None:
        guesses.append(("class-mean floor", refs.class_mean_images))
    labels = None if labels is None else np.asarray(labels).astype(np.int64)
    rows, per = [], {}
    for name, img in guesses:
        full = np.broadcast_to(img, victims.shape)
        row = {"reference": name, "mse": metrics.mse(full, victims),
               "ssim": metrics.ssim(full, victims), "attack_acc": None}
        per[name] = {"mse": metrics.mse_per_image(full, victims)}
        if labels is not None and judge is not None and hasattr(judge, "calls"):
            # one image for all victims: the judge is asked once
            calls = (judge.calls(img[None])[0] if img.ndim == victims.ndim - 1
                     else judge.calls(full))
            hit = np.broadcast_to(calls, labels.shape) == labels
            row["attack_acc"] = float(hit.mean())
            per[name]["hit"] = hit
        rows.append(row)
    if labels is not None:
        values, counts = np.unique(labels, return_counts=True)
        top = int(values[np.argmax(counts)])
        rows.append({"reference": "majority class", "mse": None, "ssim": None,
                     "attack_acc": float(np.mean(labels == top)), "majority_class": top})
        per["majority class"] = {"hit": labels == top}
    return rows, per


def paired_interval(a, b=None, *, resamples: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a - b), lo, hi): the difference of two per-victim scores [N] measured on the
    same victims, with a seeded paired bootstrap percentile interval over victims (b None:
    the mean of a and its interval). The pairing matters: two policies' errors on one victim
    are correlated, so the interval of the difference is much narrower than two separate
    intervals suggest."""
    d = np.asarray(a, np.float64)
    if b is not None:
        d = d - np.asarray(b, np.float64)
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = d[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(d.mean()), float(lo), float(hi)


def score(recon, truth, labels=None, judge=None) -> dict:
    """mse, psnr, ssim of reconstructions against the truth and, with labels and a judge
    (`ScoresJudge`, `metrics.IdentityJudge`), the judge's scores (attack_acc, ...)."""
    from tfminv import metrics

    out = metrics.reconstruction_metrics(recon, truth)
    if judge is not None and labels is not None:
        out.update(judge(recon, labels))
    return out


# ----------------------------------------------------------------------------- the body
@dataclasses.dataclass
class Attack:
    """One trained attacker and what it made of the victims: the inverter (a Keras model with
    `run_dir`), reconstructions [N, H, W, C], scores (`score`), and the wall time of training
    (or reusing) the inverter in this call."""

    inverter: object
    reconstructions: np.ndarray
    scores: dict
    train_seconds: float


def run_attack(train_preds, train_images, victim_preds, victim_images, *, k: int, config,
               workdir, width: float, val=None, method: str = "truncation", victim_labels=None,
               judge=None, callbacks=(), identity=None, query=None) -> Attack:
    """Release -> aligned inverter -> inversion -> scores, the one body every door runs.

    train_preds / train_images: the attacker's released auxiliary vectors and the images
    (array or StreamedImages); victim_preds: the victims' released vectors; k / method /
    config / workdir / width / val: `tfminv.attacks.inversion.train_inverter` (cached and
    resumable: an identical request reuses the trained model). callbacks: extra Keras callbacks
    of the inverter's training (e.g. a door's progress lines; none run for a cached model).
    identity: the 'identity' method's settings (`tfminv.attacks.identity.IdentityOptions` or a
    config declaring them); with that method the scores also hold the surrogate's agreement
    with the target (`Surrogate.fields()`, `surrogate_near_chance` labelled) and
    `surrogate_kl`, the surrogate's KL between the victims' released entries and its own on
    their reconstructions. query: images -> the target's released vectors, through its Oracle
    and the victims' release (policy); only 'identity_select' calls it (`reconstruct`).
    Method 'aux_match' trains nothing: the inverter is a `tfminv.attacks.retrieval.AuxRetriever`
    (run_dir None), train_seconds the matching's wall time, scores["match_n"] its setting.
    """
    from tfminv.attacks.inversion import RETRIEVAL_METHODS, train_inverter

    if method in RETRIEVAL_METHODS:  # no inverter: the closest auxiliary answers' images
        from tfminv.attacks.identity import options_of
        from tfminv.attacks.retrieval import retrieve

        n = int(options_of(identity).match_n)
        recon, retriever, seconds = retrieve(train_preds, train_images, victim_preds, k=k, n=n)
        scores = score(recon, victim_images, victim_labels, judge)
        scores["match_n"] = n
        return Attack(retriever, recon, scores, seconds)
    t = time.perf_counter()
    inverter = train_inverter(train_preds, train_images, k=k, method=method, config=config,
                              workdir=workdir, val=val, width=width, callbacks=callbacks,
                              identity=identity)
    seconds = time.perf_counter() - t
    recon, facts = reconstruct(inverter, victim_preds, k=k, method=method, identity=identity,
                               query=query)
    scores = score(recon, victim_images, victim_labels, judge)
    sur = getattr(inverter, "surrogate", None)
    if sur is not None:
        from tfminv.attacks.identity import identity_kl

        scores.update(sur.fields())
        scores["surrogate_kl"] = identity_kl(sur.model, inverter, victim_preds, k, recon)
    scores.update(facts)
    return Attack(inverter, recon, scores, round(seconds, 1))


def reconstruct(inverter, released, *, k: int, method: str, identity=None, query=None,
                start=None):
    """(images [N, H, W, C], facts): what the attack makes of released vectors [N, m]: the
    inverter's images; for 'identity_refine' refined per vector through its surrogate
    (`tfminv.attacks.refine`; facts: surrogate_kl_start, the KL before refinement, and
    refine_seconds); for 'identity_select' the refinement's snapshots sent to the target through
    `query` (images -> released vectors, counted by the target's Oracle) and the closest kept
    (`tfminv.attacks.select`; facts also queries_per_victim, target_kl_start, target_kl,
    selected_refined). start: vectors whose codes the refinement starts from instead of the
    released vectors' own (`refine.refine`; class inference from an auxiliary image). The one
    home of that step for every door and class inference."""
    from tfminv.attacks.inversion import invert

    if method not in ATTACK_TIME:
        return invert(inverter, released), {}
    from tfminv.attacks.identity import options_of
    from tfminv.attacks.refine import refine
    from tfminv.attacks.select import candidate_steps, select

    opts = options_of(identity)
    steps = int(opts.refine_steps)
    at = (steps,)
    if method == "identity_select":
        if query is None:
            raise ConfigError("method 'identity_select' queries the target on each candidate "
                              "image; this caller gave no query function")
        at = candidate_steps(steps, int(opts.select_candidates))
    t = time.perf_counter()
    path, facts = refine(inverter, inverter.surrogate.model, released, k, at_steps=at,
                         lr=float(opts.refine_lr), prox=float(opts.refine_prox), start=start)
    facts = {"surrogate_kl_start": facts.get("surrogate_kl_start")}
    images = path[-1]
    if method == "identity_select":
        images, chosen = select(path, released, query, k)
        facts.update(chosen)
    facts["refine_seconds"] = round(time.perf_counter() - t, 1)
    return images, facts


#: the methods that act at attack time on the identity inverter's images (`reconstruct`)
ATTACK_TIME = ("identity_refine", "identity_select")
#: the facts `reconstruct` adds to an attack-time method's scores
ATTACK_TIME_FACTS = ("surrogate_kl_start", "refine_seconds", "queries_per_victim",
                     "target_kl_start", "target_kl", "selected_refined")


# ----------------------------------------------------------------------------- run folders
def run_folder(root, kind: str, identity: str) -> Path:
    """The cache folder of the attacks of `kind` (e.g. 'inverters') against the target
    `identity`: root / kind / the identity with every run of characters outside
    [A-Za-z0-9_.,=-] replaced by '_', cut at 100 characters. One rule for every door, so one
    target's inverters are found again whoever trains them (a folder shared by two long
    identities is harmless: the trained model's own key hashes the predictions it learns)."""
    return Path(root) / kind / re.sub(r"[^A-Za-z0-9_.,=-]+", "_", str(identity))[:100]
