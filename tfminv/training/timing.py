"""How long training takes: measured seconds per step (budget estimates) and their display."""

from __future__ import annotations

from typing import Callable


def step_seconds(build_model: Callable[[], "keras.Model"], x, y, *, config, loss="mse",
                 steps: int = 3) -> float:
    """Measured seconds per training step of `build_model()` on one batch (x, y) under the
    config's precision, after one warm-up step (what a budget estimate multiplies out)."""
    import time

    from tfminv.training.precision import policy_scope

    with policy_scope(config.precision):
        model = build_model()
        model.compile(optimizer=config.optimizer(), loss=loss)
    model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(int(steps)):
        model.train_on_batch(x, y)
    return (time.perf_counter() - t) / int(steps)


def format_seconds(s: float) -> str:
    """12 s, 4.5 min, 3.2 h."""
    s = float(s)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
