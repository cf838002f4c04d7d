"""Import shim: results.json / results.md moved to `tfminv.reporting.results`."""

from tfminv.reporting.results import markdown_table, publish, read_rows, write_results  # noqa: F401
