"""Reconstruction quality: per-pixel MSE (the paper's number), PSNR and SSIM (tf.image),
reference MSEs every report should print beside it, and attack accuracy by an evaluation classifier.

Images are [N, H, W, 1] float in [0, 1]; each function returns the mean over the N images.
"""

from __future__ import annotations

import numpy as np

from tfminv.errors import DataError


def _pair(recon, truth):
    recon = np.asarray(recon, dtype=np.float32)
    truth = np.asarray(truth, dtype=np.float32)
    if recon.shape != truth.shape or recon.ndim != 4:
        raise DataError(f"expected two image batches [N, H, W, C] of the same shape, "
                        f"got {recon.shape} and {truth.shape}")
    return recon, truth


def mse_per_image(recon, truth) -> np.ndarray:
    """Per-pixel mean squared error of each image [N]."""
    recon, truth = _pair(recon, truth)
    return ((recon - truth) ** 2).reshape(len(truth), -1).mean(axis=1)


def mse(recon, truth) -> float:
    """Per-pixel MSE averaged over all images (the paper's metric)."""
    return float(mse_per_image(recon, truth).mean())


def psnr(recon, truth) -> float:
    """Mean PSNR in dB with max value 1 (tf.image.psnr)."""
    import tensorflow as tf

    recon, truth = _pair(recon, truth)
    return float(tf.reduce_mean(tf.image.psnr(recon, truth, max_val=1.0)).numpy())


def ssim(recon, truth) -> float:
    """Mean SSIM with max value 1 (tf.image.ssim, 11x11 Gaussian window)."""
    import tensorflow as tf

    recon, truth = _pair(recon, truth)
    return float(tf.reduce_mean(tf.image.ssim(recon, truth, max_val=1.0)).numpy())


def baselines(victims, aux_images, *, train_images=None, train_labels=None,
              victim_labels=None) -> dict:
    """Reference MSEs on the victims.

    zeros: an all-black guess. mean_aux: the mean auxiliary image (free for any attacker);
    aux_images may be an array or a `tfminv.data.streaming.StreamedImages` (averaged streaming).
    class_mean_oracle (when the target's training images and labels are given): each victim
    guessed as the mean training image of its true class, a floor for label-only release that
    a real attacker cannot compute.
    """
    victims = np.asarray(victims, dtype=np.float32)
    if hasattr(aux_images, "mean_image"):  # a streamed set (tfminv.data.streaming), read once
        aux_mean = aux_images.mean_image()
    else:
        aux_mean = np.asarray(aux_images, dtype=np.float32).mean(axis=0)
    out = {"zeros": mse(np.zeros_like(victims), victims),
           "mean_aux": mse(np.broadcast_to(aux_mean, victims.shape), victims)}
    if train_images is not None:
        if train_labels is None or victim_labels is None:
            raise DataError("class_mean_oracle needs train_labels and victim_labels")
        train_images = np.asarray(train_images, dtype=np.float32)
        train_labels = np.asarray(train_labels)
        victim_labels = np.asarray(victim_labels)
        means = {}
        for c in np.unique(victim_labels):
            sel = train_images[train_labels == c]
            if len(sel) == 0:
                raise DataError(f"class {c} of the victims has no training images")
            means[c] = sel.mean(axis=0)
        guess = np.stack([means[c] for c in victim_labels])
        out["class_mean_oracle"] = mse(guess, victims)
    return out


def attack_accuracy(eval_model, recon, labels, *, batch_size: int = 256) -> dict:
    """Share of reconstructions the evaluation classifier puts in the victim's true class.

    Returns {'top1': .., 'top5': ..}; top-5 is 1.0 by construction when there are <= 5 classes.
    """
    recon = np.asarray(recon, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int64)
    if len(recon) != len(labels):
        raise DataError(f"{len(recon)} reconstructions but {len(labels)} labels")
    logits = np.asarray(eval_model.predict(recon, batch_size=batch_size, verbose=0), np.float32)
    order = np.argsort(-logits, axis=1)
    top1 = float((order[:, 0] == labels).mean())
    top5 = float((order[:, :5] == labels[:, None]).any(axis=1).mean())
    return {"top1": top1, "top5": top5}


def reconstruction_metrics(recon, truth) -> dict:
    """mse, psnr and ssim of a batch of reconstructions."""
    return {"mse": mse(recon, truth), "psnr": psnr(recon, truth), "ssim": ssim(recon, truth)}


def topk_accuracy(scores, labels) -> dict:
    """{'top1', 'top5'}: share of rows of `scores` [N, m] (probabilities or logits) whose top-1 /
    top-5 entries hold the label; top-5 is 1.0 by construction with <= 5 classes."""
    scores = np.asarray(scores, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise DataError(f"expected scores [N, m] for {len(labels)} labels, got {scores.shape}")
    order = np.argsort(-scores, axis=1, kind="stable")
    return {"top1": float((order[:, 0] == labels).mean()),
            "top5": float((order[:, :5] == labels[:, None]).any(axis=1).mean())}
