"""Fixed views of candidate images, and re-ranking candidates by the target's answers on them.

The attacker's candidates (public photos the target already reads as a class) are ranked by
one answer each, and the highest answer is often a coincidence of pose, crop or lighting that
another classifier does not share. Re-ranking by the mean answer over small changes that keep
who is in the photo (a mirror image, shifts of 5% of the side, zooms of 1.11 and 1.25 about
the centre: `VIEWS`) prefers the candidates the target reads as the class however they are
framed: the final selection step of Plug-and-Play attacks (Struppek et al., 2022; theirs
averages the target's score over 100 random resized crops and flips), with a fixed, seedless
set of views and the released score (top-k) instead of the full softmax. Each view of each
candidate is one counted query through the caller's `query` (an `Oracle`'s): len(VIEWS) per
candidate; the unchanged image's answer is the one the attacker already holds.

Measured (one image per class, 14 candidates, 98 queries per class; experiments/
REPRODUCTION.md): on FaceScrub-12 (public pool of 49,457 faces, top-1 release) the judge
(width 0.5) names the single best-answered photo for 10 of 12 classes and the re-ranked one
for 12 of 12 (second judge: 9 -> 10); at 471 identities (k = 10, 50 classes) top-5 goes
0.44 -> 0.58 (second judge 0.54 -> 0.68). The photos are other people's; by eye many share
only coarse traits (sex, hair, beard, glasses) with the class, and the judges, trained on
the target's own photos, read those traits as the target does.
"""

from __future__ import annotations

import numpy as np

from tfminv.attacks.class_inference import ranked, top_auxiliary
from tfminv.errors import ConfigError, DataError
from tfminv.policies import keep_top_k

#: the views besides the image itself, in the order `views` returns them: (mirror, dx, dy,
#: zoom) with dx, dy in shares of the side
VIEWS = (("mirror", True, 0.0, 0.0, 1.0),
         ("shift_right", False, 0.05, 0.0, 1.0),
         ("shift_left", False, -0.05, 0.0, 1.0),
         ("shift_down", False, 0.0, 0.05, 1.0),
         ("shift_up", False, 0.0, -0.05, 1.0),
         ("zoom_1.11", False, 0.0, 0.0, 1.0 / 0.9),
         ("zoom_1.25", False, 0.0, 0.0, 1.0 / 0.8))


def views(images) -> np.ndarray:
    """[len(VIEWS), N, H, W, C] float32: each view of images [N, H, W, C] (any size and
    channel count). Pixels brought in from outside the frame repeat the border (no black
    edge for the target to read)."""
    import cv2

    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[0] == 0:
        raise DataError(f"views: expected images [N >= 1, H, W, C], got {x.shape}")
    n, h, w, c = x.shape
    out = np.empty((len(VIEWS), *x.shape), np.float32)
    for j, (_, mirror, dx, dy, zoom) in enumerate(VIEWS):
        if mirror:
            out[j] = x[:, :, ::-1]
            continue
        # zoom about the centre, then shift by (dx, dy) of the side (at least one pixel)
        tx = np.sign(dx) * max(1, round(abs(dx) * w)) if dx else 0.0
        ty = np.sign(dy) * max(1, round(abs(dy) * h)) if dy else 0.0
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        mat = np.float32([[zoom, 0, cx - zoom * cx + tx], [0, zoom, cy - zoom * cy + ty]])
        for i in range(n):
            y = cv2.warpAffine(x[i], mat, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
            out[j, i] = y.reshape(h, w, c)
    return out


def rerank_for_classes(released, images, classes, *, k: int, n: int, candidates: int,
                       query) -> tuple[np.ndarray, int]:
    """Per class c in `classes`: the indices [C, n] of the n auxiliary images, among the
    `candidates` whose top-k releases give c its highest scores, whose released score for c
    averaged over the image and its `VIEWS` is highest (highest first; -1 where fewer than n
    candidates release c), and the number of queries sent.

    released: the target's answers on the auxiliary images [N, m] (already held); images
    [N, H, W, C] in memory; query: images -> the target's answers [N', m] (counted by the
    caller's Oracle). Queries: len(VIEWS) x the candidates that release c, per class."""
    v = np.asarray(released, np.float32)
    if not isinstance(images, np.ndarray):
        raise ConfigError("re-ranking by views picks auxiliary images by index and needs all "
                          f"{len(v)} of them in memory (not streamed)")
    if len(images) != len(v):
        raise DataError(f"re-ranking by views: {len(images)} auxiliary images but {len(v)} "
                        "answers; expected one answer per image")
    for name, value in (("match_n", n), ("aux_candidates", candidates)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"--{name}={value!r}: expected an integer >= 1")
    if candidates < n:
        raise ConfigError(f"--aux_candidates={candidates}: expected at least --match_n={n} "
                          "(the images kept per class are chosen among the candidates)")
    classes = np.asarray(classes, np.int64).reshape(-1)
    picks = top_auxiliary(v, classes, k, min(int(candidates), len(v)))  # [C, cand]
    found = picks >= 0
    rows = picks[found]
    cls = np.broadcast_to(classes[:, None], picks.shape)[found]
    score = np.full(picks.shape, -np.inf)
    if len(rows):
        m = v.shape[1]
        seen = views(images[rows])  # [V, F, H, W, C]
        answers = np.asarray(query(seen.reshape(-1, *seen.shape[2:])), np.float32)
        if answers.shape != (len(VIEWS) * len(rows), m):
            raise DataError(f"re-ranking by views: the target answered {answers.shape} for "
                            f"{len(VIEWS) * len(rows)} images; expected [.., {m}]")
        shown = keep_top_k(answers, k).reshape(len(VIEWS), len(rows), m)
        own = keep_top_k(v[rows], k)[np.arange(len(rows)), cls]
        score[found] = (own + shown[:, np.arange(len(rows)), cls].sum(0)) / (len(VIEWS) + 1)
    order = ranked(score, n)  # columns of picks; -1 where no candidate is left
    best = np.where(order >= 0, np.take_along_axis(picks, np.maximum(order, 0), axis=1), -1)
    return best, int(len(VIEWS) * len(rows))
