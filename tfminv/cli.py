"""One way to run an absl binary: user errors print one line and exit 2, never a traceback;
library messages (logger "tfminv") print one line each."""

from __future__ import annotations

import functools
import logging
import sys

USER_ERROR = 2  # exit status of every binary on a user error (bad flag, bad input, missing data)
INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT, as a shell reports it)
INTERRUPTED_LINE = "interrupted (Ctrl-C)"
RESUME_HINT = ("interrupted: rerun the same command to resume (trained models, predictions and "
               "checkpoints are cached)")
LOGGER = "tfminv"  # every library module logs under it (logging.getLogger(__name__))


class _OneLine(logging.Formatter):
    """`warning: <message>` (the level, lower case; INFO: the message alone), line breaks folded
    so that every record is one line."""

    def format(self, record: logging.LogRecord) -> str:
        msg = " ".join(record.getMessage().split())
        return msg if record.levelno <= logging.INFO else f"{record.levelname.lower()}: {msg}"


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever sys.stderr is when a record is written (not when created)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(_OneLine())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def install_log_handler(level: int = logging.INFO) -> logging.Handler:
    """Send the "tfminv" logger's records at `level` and above to stderr, one line each, and
    not on to the root logger (absl's handler would print them again, with its own prefix).
    Idempotent: a second call returns the handler the first installed."""
    logger = logging.getLogger(LOGGER)
    for h in logger.handlers:
        if isinstance(h, _StderrHandler):
            return h
    handler = _StderrHandler()
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def run(main, before=None, argv=None, early=None, interrupted: str = INTERRUPTED_LINE) -> None:
    """`app.run(main)`; a TfminvError from `early()`, `before()` or `main(argv)`, or a flag that
    does not parse, prints `error: ...` (one line) and exits 2. Ctrl-C (KeyboardInterrupt)
    prints the one line `interrupted` (the experiment binaries: RESUME_HINT, how to resume) and
    exits 130, without a traceback.

    `early()` runs first, right after the flags are parsed: the pure checks of the flags, before
    TensorFlow is imported. When the binary defines a `--strategy` flag, its tf.distribute
    strategy is created next, before `before()` and any other TensorFlow work (multi-worker
    collectives must be configured at program start; see tfminv.distribute). A multi-worker
    peer that is lost mid-run is reported the same way, as one line naming it. Library
    messages go to stderr, one line each, through `install_log_handler`.
    """
    quiet_tensorflow()
    from absl import app, flags

    from tfminv.errors import TfminvError

    def wrapped(argv):
        install_log_handler()
        _count_interrupts()
        try:
            if early is not None:
                early()
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
            except TfminvError:
                raise
            except Exception as e:  # noqa: BLE001 - only a lost multi-worker peer is translated
                if not distribute.is_tf_cluster_error(e):
                    raise
                print(f"error: {distribute.cluster_failure(e)}", file=sys.stderr)
                sys.exit(USER_ERROR)
        except TfminvError as e:
            if _interrupts:
                raise KeyboardInterrupt from e
            print(f"error: {e}", file=sys.stderr)
            sys.exit(USER_ERROR)

    try:
        app.run(wrapped, argv=argv, flags_parser=_parse_flags)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        sys.exit(INTERRUPTED)
    except BaseException as e:
        # a KeyboardInterrupt raised inside TensorFlow's tracing or a C++ callback can come
        # out wrapped in another exception (seen in CI: exit 1 with a frame dump); after a
        # Ctrl-C, whatever ends the run is the interrupt
        if not _interrupts or (isinstance(e, SystemExit) and e.code in (0, None)):
            raise
        print(interrupted, file=sys.stderr)
        sys.exit(INTERRUPTED)


_interrupts: list[int] = []  # SIGINTs received while `run` is in charge


def _count_interrupts() -> None:
    """Python's own Ctrl-C behaviour (raise KeyboardInterrupt), but remembered, so that `run`
    can tell an interrupt from a failure even when the KeyboardInterrupt did not survive.
    A SIGINT that is ignored (a background job of a non-interactive shell) stays ignored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return

    def on_sigint(signum, frame):
        _interrupts.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


#: TensorFlow's start-up notices that are written before its logging starts (absl's
#: pre-InitializeLog stderr, which TF_CPP_MIN_LOG_LEVEL does not filter), each an INFO line:
#: oneDNN is on (it stays on: TF_ENABLE_ONEDNN_OPTS=0 would change the numbers), no CUDA driver
#: (a CPU machine), and which CPU instructions the build does not use.
STARTUP_LINES = (
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\b.*",
    r"I\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine\b.*",
    r"I\d{4} [\d:.]+ +\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized\b.*",
    r"To enable the following instructions: .*, in other operations, rebuild TensorFlow with the "
    r"appropriate compiler flags\.",
)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ log lines that look like failures out of the user's way, before
    TensorFlow is imported, unless the user set TF_CPP_MIN_LOG_LEVEL: 2 (errors only), or 3 on
    a machine with no NVIDIA device node, where the one error TensorFlow logs is 'failed call to
    cuInit: ... UNKNOWN ERROR', which only says there is no GPU (real failures still raise).

    The lines TensorFlow writes while it loads, before its logging starts (`STARTUP_LINES`),
    ignore that level: the first `import tensorflow` (whoever imports it, when it is needed)
    then runs with file descriptor 2 sent through a pipe that a thread filters line by line,
    every other line passing to stderr as it is written (a crash inside the import still
    shows what came before it, short of what the thread had not yet forwarded). TensorFlow stays unimported until something needs it."""
    import glob
    import os

    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if glob.glob("/dev/nvidia[0-9]*") else "3"
        if "tensorflow" not in sys.modules and \
                not any(isinstance(f, _QuietImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _QuietImport())


def drop_startup_lines(text: str) -> str:
    """`text` without the lines of `STARTUP_LINES` (whole lines only)."""
    pattern = _startup_pattern()
    return "".join(line for line in text.splitlines(keepends=True)
                   if not pattern.fullmatch(line.rstrip("\r\n")))


@functools.lru_cache(maxsize=1)
def _startup_pattern():
    """`STARTUP_LINES` as one compiled pattern (compiled once: the filter runs per line)."""
    import re

    return re.compile("|".join(f"(?:{p})" for p in STARTUP_LINES))


class _QuietImport:
    """A meta path finder for the first `import tensorflow` only: the real module, loaded with
    stderr filtered (`drop_startup_lines`). It removes itself on first use."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        import importlib.util

        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader)
        return spec


class _FilteredLoader:
    """The real loader, whose exec_module runs with fd 2 captured and filtered."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # a pipe read by a thread, not a file read afterwards: every other line reaches the
        # real stderr as it is written, so a crash inside the import (an illegal instruction,
        # a missing library) still shows what TensorFlow said before it
        import os
        import threading

        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()

        def forward():
            with os.fdopen(read_end, "rb") as pipe:
                for line in pipe:
                    kept = drop_startup_lines(line.decode("utf-8", "replace"))
                    if kept:
                        os.write(saved, kept.encode("utf-8"))

        reader = threading.Thread(target=forward, name="tfminv-stderr-filter", daemon=True)
        reader.start()
        os.dup2(write_end, 2)
        os.close(write_end)
        try:
            self._loader.exec_module(module)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)  # closes the pipe's last write end: the reader sees EOF
            reader.join(timeout=5)
            if not reader.is_alive():  # else a child of the import still holds the pipe
                os.close(saved)


def _parse_flags(argv):
    """absl's parser, but a bad flag value exits 2 with one line instead of 1 with the usage,
    and a help flag (--help, -?, --helpshort, --helpfull, --helpxml), which absl answers with
    exit 1, exits 0 after the help it printed."""
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USER_ERROR)
    except SystemExit as e:
        if e.code == 1 and _asks_for_help(argv):
            sys.exit(0)
        raise


HELP_FLAGS = ("help", "?", "helpshort", "helpfull", "helpxml")  # absl's (absl.app)


def _asks_for_help(argv) -> bool:
    """Whether the command line (`argv[0]` the program) turns on one of absl's help flags:
    `--help`, `-help`, `--help=true`, not `--nohelp` or `--help=false`; arguments after `--`
    are positional, not flags."""
    for arg in list(argv or [])[1:]:
        if arg == "--":
            return False
        if not arg.startswith("-"):
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if name in HELP_FLAGS and (not eq or value.lower() in ("true", "t", "1")):
            return True
    return False
