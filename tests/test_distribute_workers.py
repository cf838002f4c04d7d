"""Multi-worker edge cases: one worker (no TF_CONFIG, or a one-worker cluster), a TF_CONFIG port
already in use, a peer that never answers, and per-worker cache folders (storage not shared): each trains, or stops with
one line naming what is wrong, never a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from test_distribute import _env, _free_ports, _run_workers

ONE_WORKER = textwrap.dedent("""
    import json, sys
    from tfminv import distribute
    distribute.start("multi-worker", cluster_timeout=60)
    import numpy as np
    from tfminv.models import build_inverter
    from tfminv.training import TrainConfig, fit, load_run
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=32).astype(np.float32)
    x = rng.random((32, 32, 32, 1)).astype(np.float32)
    fit(lambda: build_inverter(6, 32, width=0.0625, k=2), p, x,
        config=TrainConfig(epochs=2, batch_size=8, verbose=0, strategy="multi-worker",
                           precision="float32"),
        workdir=sys.argv[1], val=(p[:8], x[:8]))
    run = load_run(sys.argv[1])
    print(json.dumps({"epochs_run": run["epochs_run"], "best": run["best"]["value"],
                      "history": open(sys.argv[1] + "/history.csv").read()}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("cluster", ["none", "one-worker"])
def test_multi_worker_strategy_with_one_worker_trains(tmp_path, cluster):
    """Before: TypeError 'only 0-dimensional arrays can be converted to Python scalars' in
    the non-finite-loss guard (the step's logs were [1] vectors with one replica)."""
    extra = {}
    if cluster == "one-worker":
        extra["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{_free_ports(1)[0]}"]},
                                         "task": {"type": "worker", "index": 0}})
    env = _env(**extra)
    if cluster == "none":
        env.pop("TF_CONFIG", None)
    script = tmp_path / "one.py"
    script.write_text(ONE_WORKER)
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["epochs_run"] == 2 and 0 < out["best"] < 1
    rows = out["history"].strip().splitlines()
    assert len(rows) == 3 and "[" not in out["history"]  # numbers, not '[0.09]' arrays


def test_tf_config_port_in_use_is_one_line(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        cfg = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                          "task": {"type": "worker", "index": 0}})
        res = subprocess.run(
            [sys.executable, "-m", "tfminv.experiments.truncation", "--dataset=mnist", "--k=1",
             "--strategy=multi-worker", "--cluster_timeout=20", f"--out_dir={tmp_path}"],
            env=_env(TF_CONFIG=cfg), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]   # before: 'Could not start gRPC server'
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"cannot listen on port {port}" in lines[0], res.stderr[-2000:]
    assert "TF_CONFIG" in lines[0] and "Traceback" not in res.stderr


def test_tf_config_peer_that_never_answers_is_one_line_and_exit_2(tmp_path):
    """Before: TensorFlow waited for the peer holding the interpreter lock, and the watchdog's
    SIGKILL ended the run with exit 137 (after --cluster_timeout plus TensorFlow's start)."""
    own, peer = _free_ports(2)  # nothing listens on the peer's port
    cfg = json.dumps({"cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]},
                      "task": {"type": "worker", "index": 0}})
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-c", "import runpy, sys; "
         "runpy.run_module('tfminv.experiments.truncation', run_name='__main__', alter_sys=True)",
         "--dataset=mnist", "--k=1", "--strategy=multi-worker", "--cluster_timeout=3",
         f"--out_dir={tmp_path}/out"],
        env=_env(TF_CONFIG=cfg), capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.stderr[-2000:]
    assert "did not form within --cluster_timeout=3s" in lines[0]
    assert f"unreachable: worker 1 at 127.0.0.1:{peer}" in lines[0]
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()
    assert 3 <= took < 30, took  # the timeout, then no TensorFlow start


WAIT_ONLY = textwrap.dedent("""
    import os, sys, time
    from tfminv import distribute
    time.sleep(float(sys.argv[1]))
    t0 = time.monotonic()
    distribute.wait_for_peers(distribute.cluster_task(), timeout=60)
    print(f"{time.monotonic() - t0:.2f}", "tensorflow" in sys.modules)
""")


def test_wait_for_peers_lets_workers_started_apart_meet(tmp_path):
    """Each worker listens on its own port while it waits, so two workers started 3 s apart
    both see the other and go on (before TensorFlow starts), the first after about 3 s."""
    script = tmp_path / "wait.py"
    script.write_text(WAIT_ONLY)
    ports = _free_ports(2)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    procs = [subprocess.Popen(
        [sys.executable, str(script), str(delay)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env=_env(TF_CONFIG=json.dumps({"cluster": {"worker": addrs},
                                       "task": {"type": "worker", "index": i}})))
        for i, delay in enumerate([0, 3])]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    waited = [float(out.split()[0]) for out, _ in outs]
    assert [out.split()[1] for out, _ in outs] == ["False", "False"]
    assert 1.5 < waited[0] < 30 and waited[1] < 5, waited
    for port in ports:  # both listeners closed: TensorFlow can take the ports
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", port))
            s.listen(1)


PER_WORKER = textwrap.dedent("""
    import json, os, sys
    from tfminv import distribute
    distribute.start("multi-worker", cluster_timeout=120)
    import numpy as np
    from tfminv.attacks.inversion import train_inverter
    from tfminv.errors import TfminvError
    from tfminv.training import TrainConfig
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 32, 32, 1)).astype(np.float32)
    p = rng.dirichlet(np.ones(3), size=64).astype(np.float32)
    cfg = TrainConfig(epochs=1, batch_size=32, verbose=0, strategy="multi-worker",
                      precision="float32")
    try:
        train_inverter(p, x, k=3, method="truncation", config=cfg,
                       workdir=f"{sys.argv[1]}/worker{index}", width=0.0625)
    except TfminvError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    print("trained")
""")


@pytest.mark.slow
def test_per_worker_cache_folders_stop_every_worker_with_one_line(tmp_path):
    """Before: the other worker died with a raw FileNotFoundError on the chief's run.json and
    the chief reported it unreachable."""
    script = tmp_path / "per_worker.py"
    script.write_text(PER_WORKER)
    outs = _run_workers([sys.executable, str(script), str(tmp_path / "caches")], timeout=300)
    for i, (code, _, err) in enumerate(outs):  # each names the folder it was given
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert code == 2 and len(lines) == 1, err[-3000:]
        assert "the run folder is not shared" in lines[0] and "--cache_dir" in lines[0]
        assert f"/caches/worker{i}/" in lines[0] and "Traceback" not in err
    assert "this worker does not see the chief's run" in outs[1][2]
    assert "another worker does not see this run folder" in outs[0][2]
