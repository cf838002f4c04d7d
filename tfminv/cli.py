"""One way to run an absl binary: user errors print one line and exit 2, never a traceback."""

from __future__ import annotations

import sys


def run(main, before=None) -> None:
    """`app.run(main)`; a TfminvError from `before()` or `main(argv)` prints `error: ...`, exits 2.

    When the binary defines a `--strategy` flag, its tf.distribute strategy is created right after
    the flags are parsed, before `before()` and any other TensorFlow work (multi-worker collectives
    must be configured at program start; see tfminv.distribute). A multi-worker peer that is lost
    mid-run is reported the same way, as one line naming it.
    """
    from absl import app, flags

    from tfminv.errors import TfminvError

    def wrapped(argv):
        from tfminv import distribute

        try:
            fl = flags.FLAGS
            if "strategy" in fl:
                timeout = fl["cluster_timeout"].value if "cluster_timeout" in fl else \
                    distribute.DEFAULT_CLUSTER_TIMEOUT
                distribute.start(fl.strategy, cluster_timeout=timeout)
            if before is not None:
                before()
            return main(argv)
        except TfminvError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except Exception as e:  # noqa: BLE001 - only a lost multi-worker peer is translated
            if not distribute.is_tf_cluster_error(e):
                raise
            print(f"error: {distribute.cluster_failure(e)}", file=sys.stderr)
            sys.exit(2)

    app.run(wrapped)
