"""PNG image grids like the paper's: a ground-truth row, then one labelled row per method / k.

The labels have a column of their own, as wide as the longest label needs: no label runs
into the first image.
"""

from __future__ import annotations

import numpy as np

from tfminv.errors import DataError
from tfminv.io_utils import atomic_path


LABEL_MARGIN = 8  # px between the label column's edges and its text


def font_scale(cell_height: int) -> float:
    """cv2.FONT_HERSHEY_SIMPLEX scale for labels beside cells `cell_height` px tall: 0.45
    (~10 px capitals) up to 110 px cells, growing with the cells to 0.8 (~17 px), so that a grid
    shrunk to a page's width keeps readable labels."""
    return float(min(0.8, max(0.45, cell_height / 240)))


def label_column_width(labels, minimum: int = 0, cell_height: int = 0) -> int:
    """Width in pixels of a label column that holds every label with a margin each side."""
    import cv2

    scale = font_scale(cell_height)
    widest = max((cv2.getTextSize(str(s), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
                  for s in labels), default=0)
    return max(int(minimum), widest + 2 * LABEL_MARGIN)


def image_grid(rows, path, *, scale: int = 2, label_width: int = 150, pad: int = 2) -> np.ndarray:
    """Write a grid to `path` (PNG) and return it as uint8 [H, W] (greyscale) or [H, W, 3]
    (when the images are RGB, [n, h, w, 3]; stored in PNG's usual RGB order).

    rows: sequence of (label, images [n, h, w, 1], [n, h, w] or [n, h, w, 3] in [0, 1]); every
    row must have images of the same size; shorter rows are left blank on the right.
    label_width: the label column's least width; it widens to fit the longest label.
    """
    import cv2

    rows = [(str(label), np.asarray(images, dtype=np.float32)) for label, images in rows]
    if not rows:
        raise DataError("image_grid: no rows given")
    shapes = {imgs.shape[1:3] for _, imgs in rows}
    if len(shapes) != 1:
        raise DataError(f"image_grid: rows have different image sizes {sorted(shapes)}")
    h, w = shapes.pop()
    h, w = h * scale, w * scale
    label_width = label_column_width([label for label, _ in rows], label_width, h)
    fscale = font_scale(h)
    text_h = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, fscale, 1)[0][1]
    colour = any(imgs.ndim == 4 and imgs.shape[-1] == 3 for _, imgs in rows)
    ncols = max(len(imgs) for _, imgs in rows)
    grid = np.full((len(rows) * (h + pad) + pad, label_width + ncols * (w + pad) + pad)
                   + ((3,) if colour else ()), 255, np.uint8)
    for r, (label, imgs) in enumerate(rows):
        y = pad + r * (h + pad)
        for c, img in enumerate(imgs):
            if colour:
                img = np.clip(np.broadcast_to(img.reshape(img.shape[0], img.shape[1], -1),
                                              (*img.shape[:2], 3)), 0, 1)
                img = img[..., ::-1]  # OpenCV writes BGR
            else:
                img = np.clip(img.reshape(img.shape[0], img.shape[1]), 0, 1)
            img = (img * 255 + 0.5).astype(np.uint8)
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
            x = label_width + pad + c * (w + pad)
            grid[y:y + h, x:x + w] = img
        cv2.putText(grid, label, (LABEL_MARGIN, y + (h + text_h) // 2), cv2.FONT_HERSHEY_SIMPLEX,
                    fscale, (0, 0, 0) if colour else 0, 1, cv2.LINE_AA)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise DataError(f"could not write PNG {path}")
    return grid[..., ::-1].copy() if colour else grid
