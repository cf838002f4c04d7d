"""Command-line experiments (absl binaries) that wire flags to library calls.

`python -m tfminv.experiments.truncation --dataset=mnist --k=1,3` is the first one.
"""
