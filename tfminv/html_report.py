"""Import shim: the HTML report moved to `tfminv.reporting.html_report`."""

from tfminv.reporting.html_report import Report, external_references, png_data_uri  # noqa: F401
