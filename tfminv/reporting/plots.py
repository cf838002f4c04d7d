"""Small labelled scatter plots drawn with OpenCV (no plotting library needed).

Used for leakage-vs-utility charts: one panel per leakage measure, utility on the x axis,
one labelled point per release policy, dashed horizontal lines for reference values.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tfminv.errors import ConfigError
from tfminv.io_utils import write_bytes

FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
PALETTE = [  # BGR, colour-blind friendly (Okabe-Ito)
    (178, 114, 0), (0, 159, 230), (115, 158, 0), (66, 228, 240), (167, 121, 204),
    (0, 94, 213), (233, 180, 86), (0, 0, 0), (120, 120, 120), (30, 60, 160),
]


@dataclass
class Panel:
    """One scatter panel: points (x[i], y[i]) labelled labels[i]; hlines = [(y, text)]."""

    x: Sequence[float]
    y: Sequence[float]
    labels: Sequence[str]
    x_label: str
    y_label: str
    title: str = ""
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    hlines: list[tuple[float, str]] = field(default_factory=list)
    note: str = ""  # one line under the title, e.g. "up = more leakage"


def _nice_range(values: Sequence[float], pad: float = 0.08) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9:
        span = abs(hi) * 0.1 or 0.1
        return lo - span, hi + span
    span = hi - lo
    return lo - pad * span, hi + pad * span


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step - 1e-9) * step
    out, t = [], start
    while t <= hi + 1e-9:
        out.append(round(t, 10))
        t += step
    return out


def _fmt_tick(t: float) -> str:
    if t == 0:
        return "0"
    if abs(t) >= 100 or abs(t) < 1e-3:
        return f"{t:.2g}"
    return f"{t:.4f}".rstrip("0").rstrip(".")


def _text(img, s, org, scale=0.45, color=(40, 40, 40), thick=1):
    import cv2

    cv2.putText(img, s, (int(org[0]), int(org[1])), FONT, scale, color, thick, cv2.LINE_AA)


def _text_size(s, scale=0.45, thick=1):
    import cv2

    (w, h), base = cv2.getTextSize(s, FONT, scale, thick)
    return w, h, base


def _dashed_hline(img, x0, x1, y, color, dash=8, gap=6):
    import cv2

    x = x0
    while x < x1:
        cv2.line(img, (int(x), int(y)), (int(min(x + dash, x1)), int(y)), color, 1, cv2.LINE_AA)
        x += dash + gap


def _draw_panel(panel: Panel, width: int, height: int, colors: dict[str, tuple]) -> np.ndarray:
    import cv2

    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 52 if panel.note else 36, 50
    pw, ph = width - left - right, height - top - bottom
    n = len(panel.labels)
    if not (len(panel.x) == len(panel.y) == n):
        raise ConfigError(f"plot panel {panel.title!r}: x, y and labels must have the same length")
    if panel.x_range:
        xr = panel.x_range
    else:  # extra room on the right for the labels of the right-most points
        lo, hi = _nice_range(panel.x)
        xr = (lo, hi + 0.12 * (hi - lo))
    yr = panel.y_range or _nice_range(list(panel.y) + [h[0] for h in panel.hlines])

    def px(v):
        return left + (v - xr[0]) / (xr[1] - xr[0]) * pw

    def py(v):
        return top + ph - (v - yr[0]) / (yr[1] - yr[0]) * ph

    # grid and ticks
    for t in _ticks(*xr):
        x = px(t)
        cv2.line(img, (int(x), top), (int(x), top + ph), (232, 232, 232), 1)
        s = _fmt_tick(t)
        w, h, _ = _text_size(s, 0.4)
        _text(img, s, (x - w / 2, top + ph + 16), 0.4)
    for t in _ticks(*yr):
        y = py(t)
        cv2.line(img, (left, int(y)), (left + pw, int(y)), (232, 232, 232), 1)
        s = _fmt_tick(t)
        w, h, _ = _text_size(s, 0.4)
        _text(img, s, (left - w - 6, y + h / 2), 0.4)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), (90, 90, 90), 1)
    # axis labels (the y label is drawn horizontally then rotated)
    w, h, _ = _text_size(panel.x_label, 0.5)
    _text(img, panel.x_label, (left + pw / 2 - w / 2, height - 12), 0.5)
    w, h, base = _text_size(panel.y_label, 0.5)
    lab = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
    _text(lab, panel.y_label, (2, h + 2), 0.5)
    lab = cv2.rotate(lab, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = int(top + ph / 2 - lab.shape[0] / 2)
    if y0 >= 0 and y0 + lab.shape[0] <= height and lab.shape[1] <= left:
        img[y0:y0 + lab.shape[0], 4:4 + lab.shape[1]] = np.minimum(
            img[y0:y0 + lab.shape[0], 4:4 + lab.shape[1]], lab)
    if panel.title:
        w, h, _ = _text_size(panel.title, 0.55, 1)
        _text(img, panel.title, (left + pw / 2 - w / 2, 22), 0.55, (20, 20, 20), 1)
    if panel.note:
        w, h, _ = _text_size(panel.note, 0.4)
        _text(img, panel.note, (left + pw / 2 - w / 2, 42), 0.4, (110, 110, 110))
    # points that land on (almost) the same pixel share one marker stack and one label, "a = b"
    order = sorted(range(n), key=lambda i: (-panel.y[i], panel.x[i]))
    groups: list[tuple[float, float, list[int]]] = []
    for i in order:
        xv, yv = panel.x[i], panel.y[i]
        if xv is None or yv is None or not (math.isfinite(xv) and math.isfinite(yv)):
            continue
        x, y = px(xv), py(yv)
        for gx, gy, members in groups:
            if abs(gx - x) < 3 and abs(gy - y) < 3:
                members.append(i)
                break
        else:
            groups.append((x, y, [i]))
    # every marker's box: no label may cover one (a label over a marker hides which it names)
    markers = [(int(x) - 8, int(y) - 8 - 2 * (len(m) - 1), int(x) + 8 + 2 * (len(m) - 1),
                int(y) + 8) for x, y, m in groups]
    placed: list[tuple[int, int, int, int]] = []
    lines: list[tuple[int, int, int, int]] = []

    def clashes(box) -> int:
        return sum(not (box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3])
                   for b in placed + markers)

    def place(candidates, w, h):
        """The first candidate (text origin) whose box, kept inside the plot area, touches no
        label or marker; else the one touching fewest."""
        best = None
        for cx, cy in candidates:
            cx = min(max(cx, left + 3), left + pw - w - 3)
            cy = min(max(cy, top + h + 3), top + ph - 3)
            box = (int(cx), int(cy - h), int(cx + w), int(cy + 2))
            k = clashes(box)
            if best is None or k < best[0]:
                best = (k, cx, cy, box)
            if k == 0:
                break
        placed.append(best[3])
        return best[1], best[2]

    # reference lines: the label above the line at its right end, else below it, else at the
    # left end, so that two lines close together keep both labels readable
    for yv, text in panel.hlines:
        if yv is None or not math.isfinite(yv) or not (yr[0] <= yv <= yr[1]):
            continue
        y = py(yv)
        _dashed_hline(img, left, left + pw, y, (120, 120, 120))
        w, h, _ = _text_size(text, 0.38)
        right_x, left_x = left + pw - w - 4, left + 4
        tx, ty = place([(right_x, y - 4), (right_x, y + h + 4), (left_x, y - 4),
                        (left_x, y + h + 4)], w, h)
        _text(img, text, (tx, ty), 0.38, (100, 100, 100))
        lines.append((left, int(y) - 2, left + pw, int(y) + 2))
    markers += lines  # point labels keep off the reference lines too
    for x, y, members in groups:
        for j, i in enumerate(members):  # the first member's colour ends on top
            off = 2 * (len(members) - 1 - j)
            cx, cy = int(round(x)) + off, int(round(y)) - off
            cv2.circle(img, (cx, cy), 6, colors[panel.labels[i]], -1, cv2.LINE_AA)
            cv2.circle(img, (cx, cy), 6, (40, 40, 40), 1, cv2.LINE_AA)
    for x, y, members in groups:
        s = " = ".join(panel.labels[i] for i in members)
        w, h, _ = _text_size(s, 0.4)
        candidates = [(x + 9, y - 6), (x + 9, y + h + 6), (x - w - 9, y - 6), (x - w - 9, y + h + 6),
                      (x - w / 2, y - 12), (x - w / 2, y + h + 12)]
        candidates += [(x + 9 + dx, y - 6 + d) for d in range(-60, 61, 12) for dx in (0, -w - 18)]
        tx, ty = place(candidates, w, h)
        _text(img, s, (tx, ty), 0.4, (30, 30, 30))
    return img


def scatter_panels(panels: Sequence[Panel], path: str | os.PathLike | None = None, *,
                   panel_size: tuple[int, int] = (460, 400)) -> np.ndarray:
    """Draw panels side by side; write a PNG to `path` (atomically) if given. Returns the
    RGB image [H, W, 3] uint8. A label keeps the same colour in every panel."""
    import cv2

    if not panels:
        raise ConfigError("scatter_panels: no panels to draw")
    labels: list[str] = []
    for p in panels:
        for s in p.labels:
            if s not in labels:
                labels.append(s)
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(labels)}
    w, h = panel_size
    img = np.concatenate([_draw_panel(p, w, h, colors) for p in panels], axis=1)
    if path is not None:
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise ConfigError(f"could not encode plot for {path}")
        write_bytes(path, buf.tobytes())
    return img[:, :, ::-1].copy()
