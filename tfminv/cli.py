"""One way to run an absl binary: user errors print one line and exit 2, never a traceback."""

from __future__ import annotations

import sys


def run(main, before=None) -> None:
    """`app.run(main)`; a TfminvError from `before()` or `main(argv)` prints `error: ...`, exits 2."""
    from absl import app

    from tfminv.errors import TfminvError

    def wrapped(argv):
        try:
            if before is not None:
                before()
            return main(argv)
        except TfminvError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(wrapped)
