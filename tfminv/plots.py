"""Import shim: scatter plots moved to `tfminv.reporting.plots`."""

from tfminv.reporting.plots import Panel, scatter_panels  # noqa: F401
