"""Query-based selection at attack time (method 'identity_select').

Refinement through the surrogate ('identity_refine', `tfminv.attacks.refine`) can reach
images that S reads as the victim and the target does not: S is a copy distilled from the
auxiliary releases, and its blind spots are not the target's. Selection asks the target
itself. Per victim, `select_candidates` images are sent through the same release as the
victim's vector: the identity inverter's own image G(v) and the refinement's best image after
evenly spaced numbers of steps (`candidate_steps`). Each victim keeps the candidate whose
released answer is closest to what the victim released:

    d(v, u) = ReleasedKL_k(v, log u)

(`tfminv.models.losses.released_kl`: the victim's k released entries and the mass it left
unreleased against the same entries of the candidate's answer u). Ties keep the earlier
candidate, so a release that cannot tell the candidates apart (a label that every candidate
gets) keeps G(v). Under a label-only or top-1 release d is the cross-entropy of the released
class, so the kept image is one the target labels as the victim's class.

Cost, on the report: exactly `select_candidates` queries per victim (the `Oracle` counts them;
cached answers are reused on a rerun, like every other query), the refinement's steps, and no
gradient of the target. NumPy at import; TensorFlow inside the functions.
"""

from __future__ import annotations

import numpy as np

from tfminv.errors import ConfigError


def candidate_steps(steps: int, candidates: int) -> tuple[int, ...]:
    """The refinement step counts whose images are the candidates: `candidates` counts evenly
    spaced from 0 (G(v) itself) to `steps` (the 'identity_refine' image). candidates must be
    2 to steps + 1 (more would repeat a step: the same image queried twice)."""
    if not 2 <= candidates <= steps + 1:
        raise ConfigError(f"--select_candidates={candidates}: expected 2 to --refine_steps + 1 "
                          f"= {steps + 1} (one candidate per distinct number of steps)")
    return tuple(int(round(t)) for t in np.linspace(0, steps, candidates))


def select(candidates, released, query, k: int) -> tuple[np.ndarray, dict]:
    """(images [N, H, W, C], facts): per victim the candidate whose released answer is closest
    to its released vector (module docstring).

    candidates: C arrays [N, H, W, C] (candidate 0 is the unrefined image); released: the
    victims' vectors [N, m]; query: images [M, H, W, C] -> released vectors [M, m] of the
    target, through its Oracle and the victims' release (policy); k: the released entries.
    facts: queries_per_victim (C), target_kl_start (mean d of candidate 0), target_kl (of the
    kept ones) and selected_refined (the share of victims that kept a refined image)."""
    from tfminv.models.losses import released_kl

    cands = [np.asarray(c, np.float32) for c in candidates]
    v = np.asarray(released, np.float32)
    n = len(v)
    if len(cands) < 2 or any(c.shape != cands[0].shape or len(c) != n for c in cands):
        raise ConfigError(f"selection: expected 2 or more candidate arrays of {n} images of one "
                          f"shape, got {[c.shape for c in cands]}")
    if n == 0:
        return cands[0], {"queries_per_victim": len(cands)}
    answers = np.asarray(query(np.concatenate(cands)), np.float32)
    if answers.shape != (len(cands) * n, v.shape[1]):
        raise ConfigError(f"selection: the target answered {answers.shape} for "
                          f"{len(cands) * n} candidates; expected ({len(cands) * n}, "
                          f"{v.shape[1]}) like the victims' vectors")
    log_u = np.log(np.maximum(answers, 1e-12))  # a zero (unreleased) entry: a tiny mass
    d = released_kl(np.tile(v, (len(cands), 1)), log_u, k).numpy().reshape(len(cands), n)
    pick = np.argmin(d, axis=0)  # the first of equal distances: candidate 0 on ties
    images = cands[0].copy()
    for c in range(1, len(cands)):
        images[pick == c] = cands[c][pick == c]
    return images, {"queries_per_victim": len(cands),
                    "target_kl_start": float(d[0].mean()),
                    "target_kl": float(d[pick, np.arange(n)].mean()),
                    "selected_refined": float(np.mean(pick > 0))}
