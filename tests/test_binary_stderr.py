"""What a binary writes to stderr before its own lines: none of TensorFlow's start-up notices
(oneDNN, no CUDA driver, CPU instructions, absl's pre-InitializeLog warning), and a CPU-budget
hint that names only flags that apply (no --clf_epochs when the user brings the target and
data: no classifier is trained then).

The binaries run in subprocesses without TF_CPP_MIN_LOG_LEVEL set (as a user runs them), with
the authors' GPU-sized settings (the hint's trigger) and data that does not exist, so each stops
with one error line right after TensorFlow has started (~10 s each, no training)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfminv import cli

ROOT = Path(__file__).parents[1]
GPU_SIZED = ("--width=1.0", "--epochs=100")
NOTICES = ("oneDNN custom operations", "Could not find cuda drivers", "absl::InitializeLog",
           "This TensorFlow binary is optimized", "To enable the following instructions")


def _audit(tmp, *args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "tfminv.experiments.audit", *GPU_SIZED,
                           f"--out_dir={tmp / 'out'}", f"--cache_dir={tmp / 'cache'}", *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if glob.glob("/dev/nvidia[0-9]*"):
        pytest.skip("the CPU-budget hint is printed only without a GPU")
    tmp = tmp_path_factory.mktemp("stderr")
    missing = tmp / "missing"
    return {"bundled": _audit(tmp, f"--data_dir={missing}"),
            "own": _audit(tmp, f"--target=keras:{missing}.keras", f"--aux=npz:{missing}.npz",
                          f"--victims=npz:{missing}.npz")}


def _hint(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("note: no GPU found")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def test_cpu_hint_names_clf_epochs_only_where_a_classifier_is_trained(runs):
    for proc in runs.values():
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    bundled, own = _hint(runs["bundled"]), _hint(runs["own"])
    assert "--width=0.25 --epochs=10" in bundled and "--clf_epochs=20" in bundled
    assert "--width=0.25 --epochs=10" in own and "--clf_epochs" not in own


def test_no_tensorflow_startup_notices_on_stderr(runs):
    for name, proc in runs.items():
        _hint(proc)  # printed after `import tensorflow`: TensorFlow did start
        for notice in NOTICES:
            assert notice not in proc.stderr, (name, notice, proc.stderr[-2000:])


def test_startup_filter_drops_only_the_known_info_lines():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\n"
            "I0000 00:00:1796185466.069264    9336 port.cc:153] oneDNN custom operations are on. "
            "You may see slightly different numerical results due to floating-point round-off "
            "errors from different computation orders. To turn them off, set the environment "
            "variable `TF_ENABLE_ONEDNN_OPTS=0`.\n"
            "I0000 00:00:1796185466.069803    9336 cudart_stub.cc:31] Could not find cuda "
            "drivers on your machine, GPU will not be used.\n"
            "I0000 00:00:1796185924.046770   13678 cpu_feature_guard.cc:227] This TensorFlow "
            "binary is optimized to use available CPU instructions in performance-critical "
            "operations.\n"
            "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
            "TensorFlow with the appropriate compiler flags.\n")
    kept = ("E0000 00:00:1796185924.1 13678 cuda_executor.cc:1] failed call to cuInit: "
            "UNKNOWN ERROR (303)\n"
            "/x/keras/src/foo.py:3: UserWarning: something the user should see\n"
            "oneDNN custom operations are on, said by someone else\n")
    assert cli.drop_startup_lines(text) == ""
    assert cli.drop_startup_lines(text + kept) == kept


def test_filter_only_when_the_user_left_the_log_level_alone(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cli.quiet_tensorflow()
    assert not any(isinstance(f, cli._QuietImport) for f in sys.meta_path)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    cli.quiet_tensorflow()
    cli.quiet_tensorflow()  # idempotent
    assert sum(isinstance(f, cli._QuietImport) for f in sys.meta_path) == 1
