"""Render experiments/REPRODUCTION.md from the scenario outputs' results.json files.

    python -m tfminv.experiments.reproduction --experiments_dir=experiments

The claims and their rules are `<experiments_dir>/claims.py` (this repository's:
experiments/claims.py, beside the results they judge); the engine that renders them is
`tfminv.reporting.reproduction`. This binary only reads the flags and writes the file
(atomically).
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("experiments_dir", "experiments", "folder holding <scenario>_<dataset>/")
flags.DEFINE_string("output", "", "where to write (default <experiments_dir>/REPRODUCTION.md)")
FLAGS = flags.FLAGS


def render(d) -> str:
    """`tfminv.reporting.reproduction.render` (kept here for callers of the old location)."""
    from tfminv.reporting.reproduction import render as _render

    return _render(Path(d))


def run(argv):
    from tfminv.io_utils import atomic_path

    d = Path(FLAGS.experiments_dir)
    out = Path(FLAGS.output) if FLAGS.output else d / "REPRODUCTION.md"
    text = render(d)
    with atomic_path(out, suffix=".md") as tmp:
        tmp.write_text(text)
    print(f"wrote {out}")
    return 0


def main():
    from tfminv import cli

    cli.run(run)


if __name__ == "__main__":
    sys.exit(main())
