"""Training-class inference: one representative image per class of the target.

A training-based inverter G (trained on auxiliary predictions, black-box) is fed a one-hot-like
prediction vector for class c: probability `confidence` on c and the rest spread evenly, which
the inverter's own input transform (e.g. `Truncation(k)`, k = 1 by default as in the paper:
only the top confidence is kept) turns into the form it was trained on. One forward pass per
class; compared with Fredrikson et al.'s optimisation (tfminv.attacks.fredrikson), which needs
the target's gradients. Scored by an independent evaluation classifier.
"""

from __future__ import annotations

import time

import numpy as np

from tfminv.errors import ConfigError, DataError


def class_vectors(num_classes: int, classes, confidence: float = 1.0) -> np.ndarray:
    """Probability vectors [len(classes), m]: `confidence` on the class, the rest spread evenly."""
    m = int(num_classes)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if m < 2:
        raise ConfigError(f"class inference needs at least 2 classes, got {m}")
    if classes.size == 0 or classes.min() < 0 or classes.max() >= m:
        raise ConfigError(f"classes must be in [0, {m}), got {classes.tolist()}")
    if not 0.0 < float(confidence) <= 1.0:
        raise ConfigError(f"class-vector confidence must be in (0, 1], got {confidence}")
    rest = (1.0 - float(confidence)) / (m - 1)
    out = np.full((len(classes), m), rest, np.float32)
    out[np.arange(len(classes)), classes] = float(confidence)
    return out


def best_auxiliary(released, classes, k: int) -> np.ndarray:
    """Per class c in `classes`: the index of the auxiliary row whose top-k release gives c its
    highest score (the public face the target reads most as c), -1 where no row's top k holds
    c. released: the target's answers on the auxiliary images [N, m] (what the attacker
    already queried; only their k largest entries are used, as a top-k API would release)."""
    return top_auxiliary(released, classes, k, 1)[:, 0]


def top_auxiliary(released, classes, k: int, n: int) -> np.ndarray:
    """Indices [C, n] of the n auxiliary rows whose top-k release gives each class its highest
    scores (highest first; -1 past the rows whose top k holds the class). See
    `best_auxiliary`."""
    v = np.asarray(released, np.float32)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if v.ndim != 2 or v.shape[0] == 0:
        raise DataError(f"best auxiliary image: expected answers [N >= 1, m], got {v.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(v):
        raise ConfigError(f"--match_n={n!r}: expected an integer from 1 to the {len(v)} "
                          "auxiliary images")
    kk = max(1, min(int(k), v.shape[1]))
    top = np.argpartition(-v, kk - 1, axis=1)[:, :kk]
    shown = np.zeros(v.shape, bool)
    np.put_along_axis(shown, top, True, axis=1)
    return ranked(np.where(shown, v, -np.inf)[:, classes].T, n)  # scores [C, N]


def ranked(scores, n: int) -> np.ndarray:
    """Per row of scores [C, N]: the columns of its n highest scores [C, n], highest first
    (ties: the lower column), -1 where the score is not finite (nothing to pick)."""
    best = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    return np.where(np.isfinite(np.take_along_axis(scores, best, axis=1)), best, -1)


def mean_of_picks(images, picks, fallback) -> np.ndarray:
    """[C, H, W, C'] float32: per row of picks [C, n] the mean of images[i] over its indices
    >= 0, `fallback` [H, W, C'] where a row has none."""
    picks = np.asarray(picks)
    out = np.empty((len(picks), *np.shape(fallback)), np.float32)
    for j, row in enumerate(picks):
        row = row[row >= 0]
        out[j] = np.asarray(images[row], np.float32).mean(0) if len(row) else fallback
    return out


def infer_classes(inverter, num_classes: int, classes, confidence: float = 1.0,
                  repeats: int = 3):
    """Representative images [C, H, W, 1] from an inverter (raw prediction -> image).

    Returns (images, seconds_per_class): the best of `repeats` timed forward passes over the
    batch of C class vectors, divided by C (the first, untimed call builds the graph).
    """
    vecs = class_vectors(num_classes, classes, confidence)
    images = np.asarray(inverter(vecs, training=False), np.float32)
    best = np.inf
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        np.asarray(inverter(vecs, training=False))
        best = min(best, time.perf_counter() - start)
    return images, float(best / len(vecs))


def class_means(images, labels, classes) -> np.ndarray:
    """Mean image of each class in `classes` [C, H, W, 1] (what a representative resembles)."""
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    out = []
    for c in np.asarray(classes).reshape(-1):
        sel = images[labels == c]
        if len(sel) == 0:
            raise DataError(f"class {int(c)} has no images to average")
        out.append(sel.mean(axis=0))
    return np.stack(out)


def score_class_images(images, classes, *, eval_model, target_model=None, means=None,
                       judge=None) -> dict:
    """How recognisable the representatives are.

    attack_acc/attack_acc_top5: the evaluation classifier's accuracy on them; target_confidence: the
    target's mean softmax probability of the intended class (what the optimisation maximises);
    mse_to_class_mean: per-pixel MSE to the class's mean training image.
    """
    from tfminv import metrics

    classes = np.asarray(classes, np.int64).reshape(-1)
    images = np.asarray(images, np.float32)
    if len(images) != len(classes):
        raise DataError(f"{len(images)} class images but {len(classes)} classes")
    acc = metrics.attack_accuracy(eval_model, images, classes)
    out = {"attack_acc": acc["top1"], "attack_acc_top5": acc["top5"]}
    if judge is not None:  # feature-space identity check (metrics.IdentityJudge or a
        # JudgePanel: the second judge's scores too); the judge's attack_acc is eval_model's
        out.update({k: v for k, v in judge(images, classes).items() if k not in out})
    if target_model is not None:
        logits = np.asarray(target_model.predict(images, verbose=0), np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        out["target_confidence"] = float(p[np.arange(len(classes)), classes].mean())
    if means is not None:
        out["mse_to_class_mean"] = metrics.mse(images, means)
    return out
