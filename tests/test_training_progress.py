"""Training output for people: with stdout redirected, no per-step bars, one line per epoch."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from tfminv.models import build_inverter
    from tfminv.training import TrainConfig, fit
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=64).astype(np.float32)
    x = rng.random((64, 32, 32, 1)).astype(np.float32)
    fit(lambda: build_inverter(6, 32, width=0.0625, k=2, name="tiny_inverter"), p, x,
        config=TrainConfig(epochs=3, batch_size=8, verbose=int(sys.argv[2]),
                           precision="float32"),
        workdir=sys.argv[1], val=(p[:8], x[:8]))
    print("done")
""")


def test_redirected_stdout_gets_one_line_per_epoch_and_no_bars(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]),
               TF_CPP_MIN_LOG_LEVEL="3")
    for verbose in (1, 2):
        out_path, err_path = tmp_path / f"out{verbose}.log", tmp_path / f"err{verbose}.log"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"r{verbose}"),
                                  str(verbose)], stdout=out, stderr=err, env=env, timeout=300)
        stdout, stderr = out_path.read_text(), err_path.read_text()
        assert res.returncode == 0, stderr[-3000:]
        # before: 8 steps per epoch written as a bar (carriage returns and escapes)
        assert "\x1b[" not in stdout and "\r" not in stdout and "━" not in stdout
        assert stdout.strip().splitlines() == ["done"]
        lines = [ln for ln in stderr.splitlines() if ln.startswith("[tiny_inverter] epoch")]
        assert [ln.split(",")[0] for ln in lines] == [f"[tiny_inverter] epoch {e}/3"
                                                      for e in (1, 2, 3)], stderr[-2000:]
        assert all(" left for this model (" in ln and "val_loss " in ln for ln in lines)
        assert "━" not in stderr


def test_keras_bar_only_on_a_terminal():
    from tfminv.training.progress import keras_verbose

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert keras_verbose(1, Tty()) == 1
    assert keras_verbose(1, io.StringIO()) == 0    # a file or a pipe: the epoch line only
    assert keras_verbose(2, Tty()) == 0 and keras_verbose(0, Tty()) == 0
