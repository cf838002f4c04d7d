"""Import shim: image grids moved to `tfminv.reporting.figures`."""

from tfminv.reporting.figures import image_grid  # noqa: F401
