"""One tf.distribute strategy per program, TF_CONFIG checked before TensorFlow starts, and the
chief/worker split of who writes what.

TensorFlow's collective ops (the all-reduce of `MultiWorkerMirroredStrategy`) must be configured
before the TensorFlow runtime starts: creating the strategy after any other TensorFlow work fails
with `RuntimeError: Collective ops must be configured at program startup`. So a program creates
its strategy once, first thing (`start(name)`; the binaries do it right after parsing flags, in
`tfminv.cli.run`), and every later `tfminv.training.strategy.get_strategy` returns that object.

Multi-worker runs follow TensorFlow's multi-worker guide: every worker runs the same command with
its own `TF_CONFIG`; the chief (task `chief`, or `worker` 0 when there is no chief task) writes
results, figures and shared caches, the other workers write only to temporary folders
(`write_dir`) and read the chief's caches. The target is queried once, by the chief, and the
answers are sent to the other workers with an all-reduce (`broadcast_from_chief`), so a remote
target is not queried once per worker and caches need not be shared for the queries.

`parse_tf_config` validates TF_CONFIG without importing TensorFlow and raises `ConfigError`
naming the setting that is wrong.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from tfminv.errors import ConfigError, TfminvError, first_line

TF_CONFIG = "TF_CONFIG"
CHOICES = ("default", "mirrored", "multi-worker")
WORKER_JOBS = ("chief", "worker")
#: seconds a multi-worker start waits for every peer to join (--cluster_timeout)
DEFAULT_CLUSTER_TIMEOUT = 300.0
#: seconds without a heartbeat after which a peer counts as lost
HEARTBEAT_TIMEOUT = 30.0


class ClusterError(TfminvError):
    """A peer of a multi-worker run cannot be reached or stopped answering."""


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in a TF_CONFIG cluster."""

    cluster: dict
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return sum(len(self.cluster.get(j, ())) for j in WORKER_JOBS)

    @property
    def is_chief(self) -> bool:
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index} ({self.address})"

    @property
    def address(self) -> str:
        return self.cluster[self.task_type][self.task_index]

    def peers(self) -> list[tuple[str, str]]:
        """[(\"worker 1\", \"host:port\"), ...] for every other task."""
        return [(f"{job} {i}", addr) for job in WORKER_JOBS
                for i, addr in enumerate(self.cluster.get(job, ()))
                if (job, i) != (self.task_type, self.task_index)]


def parse_tf_config(raw: str | None) -> ClusterTask | None:
    """The TF_CONFIG value checked: None when unset or empty (a single worker).

    Expected: {"cluster": {"worker": ["host:port", ...], ["chief": ["host:port"]]},
    "task": {"type": "worker", "index": i}}. Raises ConfigError naming what is wrong.
    """
    if raw is None or not raw.strip():
        return None
    example = ('expected e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    try:
        cfg = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"{TF_CONFIG} is not valid JSON ({e}); {example}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{TF_CONFIG} must be a JSON object, got {type(cfg).__name__}; "
                          f"{example}")
    cluster = cfg.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError(f"{TF_CONFIG} has no 'cluster' (a map of job name to a list of "
                          f"host:port addresses); {example}")
    for job, addrs in cluster.items():
        if job not in WORKER_JOBS:
            raise ConfigError(f"{TF_CONFIG}: cluster job {job!r} is not supported by "
                              f"--strategy=multi-worker; expected jobs {list(WORKER_JOBS)}")
        if not isinstance(addrs, list) or not addrs:
            raise ConfigError(f"{TF_CONFIG}: cluster.{job} must be a non-empty list of "
                              f"host:port addresses, got {addrs!r}")
        for a in addrs:
            host, sep, port = str(a).rpartition(":")
            if not isinstance(a, str) or not sep or not host or not port.isdigit() \
                    or not 0 < int(port) < 65536:
                raise ConfigError(f"{TF_CONFIG}: cluster.{job} address {a!r} is not host:port")
    if len(cluster.get("chief", ())) > 1:
        raise ConfigError(f"{TF_CONFIG}: cluster.chief must list one address, got "
                          f"{len(cluster['chief'])}")
    task = cfg.get("task")
    if not isinstance(task, dict):
        raise ConfigError(f"{TF_CONFIG} has no 'task' (e.g. {{\"type\": \"worker\", "
                          f"\"index\": 0}}) saying which cluster member this process is")
    ttype, index = task.get("type"), task.get("index")
    if ttype not in cluster:
        raise ConfigError(f"{TF_CONFIG}: task.type {ttype!r} is not a job of the cluster "
                          f"{sorted(cluster)}")
    if isinstance(index, bool) or not isinstance(index, int):
        raise ConfigError(f"{TF_CONFIG}: task.index must be an integer, got {index!r}")
    if not 0 <= index < len(cluster[ttype]):
        raise ConfigError(f"{TF_CONFIG}: task.index {index} is out of range: cluster.{ttype} "
                          f"has {len(cluster[ttype])} address(es), so 0..{len(cluster[ttype]) - 1}")
    return ClusterTask(cluster={k: list(v) for k, v in cluster.items()}, task_type=ttype,
                       task_index=index)


def cluster_task() -> ClusterTask | None:
    """This process's TF_CONFIG task (None: a single worker)."""
    return parse_tf_config(os.environ.get(TF_CONFIG))


# -- the program's strategy ------------------------------------------------------------------

_state: dict = {"name": None, "strategy": None, "task": None}


def start(name: str = "default", *, cluster_timeout: float = DEFAULT_CLUSTER_TIMEOUT):
    """Create the program's tf.distribute strategy; call before any other TensorFlow work.

    default: TensorFlow's default strategy. mirrored: all local GPUs (else all logical CPUs).
    multi-worker: MultiWorkerMirroredStrategy over the TF_CONFIG cluster (one worker when
    TF_CONFIG is unset); waits up to `cluster_timeout` seconds for every peer to join, then
    raises ClusterError naming the peers. Calling it again with the same name returns the same
    strategy.
    """
    if name not in CHOICES:
        raise ConfigError(f"--strategy must be one of {', '.join(CHOICES)}, got {name!r}")
    if _state["strategy"] is not None:
        if _state["name"] != name:
            raise ConfigError(f"--strategy={name}: this program already runs with "
                              f"--strategy={_state['name']} (one strategy per program)")
        return _state["strategy"]
    task = cluster_task() if name == "multi-worker" else None  # bad TF_CONFIG: before TF
    if cluster_timeout is None or not cluster_timeout > 0:
        raise ConfigError(f"--cluster_timeout must be > 0 seconds, got {cluster_timeout}")
    if task is not None:
        check_own_port(task)
        wait_for_peers(task, float(cluster_timeout))
    import tensorflow as tf

    if name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
        # TensorFlow logs every collective at INFO level (one line per all-reduce)
        tf.get_logger().setLevel("WARNING")
        strategy = _multi_worker(tf, task, float(cluster_timeout))
    _state.update(name=name, strategy=strategy, task=task)
    return strategy


def _multi_worker(tf, task: ClusterTask | None, timeout: float):
    from tensorflow.python.eager import context

    if task is not None:
        # The coordination service is what TensorFlow uses to join the workers; configuring it
        # here (instead of letting the strategy do it) bounds the wait for a missing peer.
        ctx = context.context()
        if ctx._context_handle is not None:  # noqa: SLF001 - the runtime already started
            raise ConfigError(_TOO_LATE)
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

        leader = ("/job:chief/replica:0/task:0" if "chief" in task.cluster
                  else "/job:worker/replica:0/task:0")
        ctx.configure_coordination_service(
            service_type="standalone", service_leader=leader,
            cluster_register_timeout_in_ms=int(timeout * 1000),
            heartbeat_timeout_in_ms=int(HEARTBEAT_TIMEOUT * 1000),
            shutdown_barrier_timeout_in_ms=int(timeout * 1000),
            coordinated_jobs=[coordination_config_pb2.CoordinatedJob(
                name=j, num_tasks=len(task.cluster[j])) for j in WORKER_JOBS
                if j in task.cluster])
    # TensorFlow may wait for a missing peer far longer than asked, holding the interpreter lock
    # and ignoring SIGTERM, so a watchdog process ends this one with the one-line error when the
    # cluster has not formed in time.
    watchdog = _start_watchdog(task, timeout) if task is not None else None
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:
        if "program startup" in str(e):
            raise ConfigError(_TOO_LATE) from None
        raise
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
            tf.errors.AbortedError, tf.errors.InternalError) as e:
        raise cluster_failure(e, task, timeout) from None
    except tf.errors.UnknownError as e:
        if task is not None and "gRPC server" in str(e):  # the port was taken since the check
            raise ClusterError(_port_in_use(task, _first_line(e))) from None
        raise
    finally:
        if watchdog is not None:
            watchdog.stdin.close()  # end of input: the watchdog exits quietly
            try:
                watchdog.wait(timeout=5)
            except Exception:  # noqa: BLE001 - it exits on its own
                pass


def check_own_port(task: ClusterTask) -> None:
    """ClusterError when this task's TF_CONFIG port cannot be listened on (another program holds
    it): TensorFlow would stop with a traceback ending in 'Could not start gRPC server'."""
    _bind_own_port(task).close()


def _bind_own_port(task: ClusterTask) -> socket.socket:
    """A socket bound to this task's TF_CONFIG port (the caller closes it); ClusterError when
    another program holds the port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR as gRPC sets it: a port left in TIME_WAIT is usable, a listening one not
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("", int(task.address.rpartition(":")[2])))
    except OSError as e:
        s.close()
        raise ClusterError(_port_in_use(task, e.strerror or type(e).__name__)) from None
    return s


#: seconds between two looks at the peers' ports while waiting for them (wait_for_peers)
PEER_POLL = 0.25
#: seconds a task keeps listening after it has seen every peer, so that they see it too
PEER_LINGER = 4 * PEER_POLL + 1.0  # polls, plus a peer's one-second connect timeout


def wait_for_peers(task: ClusterTask, timeout: float) -> None:
    """Before TensorFlow starts: wait up to `timeout` seconds until every peer's TF_CONFIG port
    answers, listening meanwhile on this task's own port so that the peers' own wait sees this
    one. Raises ClusterError naming the peers that never answered (a worker not started, a
    closed port, a wrong address): one line and exit 2, where TensorFlow's own wait would end
    only in the watchdog's kill (exit 137; TensorFlow holds the interpreter lock while it
    waits). A peer counts once it has answered (it may be starting TensorFlow, its port closed
    for a few seconds, when looked at again); after the last one this task listens
    `PEER_LINGER` seconds more, so that a peer started last, which sees everyone at once, is
    seen too. TensorFlow's join that follows keeps the watchdog
    for what this cannot see: a peer that answered and then never joined."""
    waiting = task.peers()
    if not waiting:
        return
    listener = _bind_own_port(task)
    try:
        listener.listen(64)
        listener.setblocking(False)
        deadline = time.monotonic() + timeout
        while True:
            waiting = [(n, a) for n, a in waiting
                       if not _reachable(a, timeout=min(1.0, max(0.05, deadline -
                                                                  time.monotonic())))]
            _drain(listener)  # the peers' looks at this port, closed so the queue stays short
            if not waiting:
                # still listening for a moment: a peer that started last sees everyone at once
                # and would otherwise close its port before the others looked again
                end = time.monotonic() + PEER_LINGER
                while time.monotonic() < end:
                    time.sleep(PEER_POLL / 5)
                    _drain(listener)
                return
            if time.monotonic() >= deadline:
                down = ", ".join(f"{n} at {a}" for n, a in waiting)
                raise ClusterError(f"{_not_formed(task, timeout)} (unreachable: {down}); "
                                   f"{_RERUN}")
            time.sleep(PEER_POLL)
    finally:
        listener.close()


def _drain(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # BlockingIOError: no more
            return
        conn.close()


def _not_formed(task: ClusterTask, timeout: float) -> str:
    return (f"{task.name}: the multi-worker cluster in {TF_CONFIG} did not form within "
            f"--cluster_timeout={timeout:g}s")


def _port_in_use(task: ClusterTask, why: str) -> str:
    return (f"{task.name}: cannot listen on port {task.address.rpartition(':')[2]} given to "
            f"this task in {TF_CONFIG} ({why}); stop the program that holds it or give this "
            "task another port (the same TF_CONFIG cluster on every worker)")


_WATCHDOG = r"""
import json, os, select, signal, socket, sys
pid, timeout, head, tail, peers = sys.argv[1:6]
ready, _, _ = select.select([sys.stdin], [], [], float(timeout))
if ready:
    sys.exit(0)
def up(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
        return True
    except OSError:
        return False
peers = json.loads(peers)
down = [f"{n} at {a}" for n, a in peers if not up(a)]
who = ("unreachable: " + ", ".join(down)) if down else     "peers " + ", ".join(f"{n} at {a}" for n, a in peers)
print(f"error: {head} ({who}); {tail}", file=sys.stderr, flush=True)
os.kill(int(pid), signal.SIGKILL)
"""


def _start_watchdog(task: ClusterTask, timeout: float):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout),
         _not_formed(task, timeout), _RERUN,
         json.dumps(task.peers())], stdin=subprocess.PIPE)


_RERUN = ("start the same command on every worker, or rerun them all to resume from the last "
          "checkpoint")


_TOO_LATE = ("--strategy=multi-worker: TensorFlow was already running when the strategy was "
             "created; call tfminv.distribute.start('multi-worker') at program start, before any "
             "other TensorFlow call")


def cluster_failure(err: BaseException, task: ClusterTask | None = None,
                    timeout: float | None = None) -> ClusterError:
    """A one-line ClusterError for a TensorFlow error raised by a lost or missing peer."""
    task = task or _state["task"]
    if task is None:
        return ClusterError(f"multi-worker run failed: {_first_line(err)}")
    unreachable = [f"{n} at {a}" for n, a in task.peers() if not _reachable(a)]
    who = ("unreachable: " + ", ".join(unreachable)) if unreachable else \
        "peers " + ", ".join(f"{n} at {a}" for n, a in task.peers())
    wait = f" within --cluster_timeout={timeout:g}s" if timeout else ""
    return ClusterError(
        f"{task.name}: the multi-worker cluster in {TF_CONFIG} did not answer{wait} ({who}); "
        f"start the same command on every worker, or rerun them all to resume from the last "
        f"checkpoint [{_first_line(err)}]")


def _first_line(err: BaseException) -> str:
    return first_line(getattr(err, "message", None) or err, 200)


def _reachable(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def is_tf_cluster_error(err: BaseException) -> bool:
    """Whether `err` is a TensorFlow error from a lost peer of a running multi-worker program."""
    if _state["task"] is None:
        return False
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(err, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                            tf.errors.AbortedError, tf.errors.CancelledError,
                            tf.errors.InternalError))


def strategy():
    """The program's strategy, or None when `start` has not been called."""
    return _state["strategy"]


def strategy_name() -> str | None:
    return _state["name"]


def current_task() -> ClusterTask | None:
    """The TF_CONFIG task of a started multi-worker program (None otherwise)."""
    return _state["task"]


def is_multi_worker() -> bool:
    t = _state["task"]
    return t is not None and t.num_workers > 1


def is_chief() -> bool:
    """True unless this is a non-chief worker of a started multi-worker program."""
    t = _state["task"]
    return t is None or t.is_chief


_temp_dirs: list[str] = []


def write_dir(path, what: str = "out") -> Path:
    """`path` on the chief; on other workers a fresh temporary folder (removed at exit), so
    they run the same code without overwriting the chief's results or caches."""
    if is_chief():
        return Path(path)
    t = _state["task"]
    d = tempfile.mkdtemp(prefix=f"tfminv-{t.task_type}{t.task_index}-{what}-")
    if not _temp_dirs:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _temp_dirs])
    _temp_dirs.append(d)
    return Path(d)


def broadcast_from_chief(array):
    """The chief's `array` on every worker (an all-reduce where the others add zeros); a no-op
    outside multi-worker runs. Every worker must call it at the same point of the program."""
    import numpy as np

    if not is_multi_worker():
        return array
    import tensorflow as tf

    s = _state["strategy"]
    a = np.ascontiguousarray(array)
    zeros = np.zeros_like(a)

    def value(ctx):
        return a if ctx.replica_id_in_sync_group == 0 else zeros

    try:
        per_replica = s.experimental_distribute_values_from_function(value)
        out = s.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    except Exception as e:  # noqa: BLE001 - only cluster failures are translated
        if is_tf_cluster_error(e):
            raise cluster_failure(e) from None
        raise
    return np.asarray(out.numpy(), dtype=a.dtype)

def all_true(flag: bool) -> bool:
    """Whether `flag` is true on every worker (each replica contributes its worker's flag and
    the mean is 1 only when all do); `flag` itself outside multi-worker runs. Every worker must
    call it at the same point of the program."""
    import numpy as np

    if not is_multi_worker():
        return bool(flag)
    import tensorflow as tf

    s = _state["strategy"]
    value = np.array([1.0 if flag else 0.0], np.float32)
    try:
        per_replica = s.experimental_distribute_values_from_function(lambda ctx: value)
        out = s.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)
    except Exception as e:  # noqa: BLE001 - only cluster failures are translated
        if is_tf_cluster_error(e):
            raise cluster_failure(e) from None
        raise
    return bool(np.asarray(out.numpy()).reshape(-1)[0] > 0.999)


def barrier() -> None:
    """Return only once every worker has called it (a no-op outside multi-worker runs): what the
    chief wrote before its call is then there for the others to read. Every worker must call it
    at the same point of the program."""
    import numpy as np

    broadcast_from_chief(np.zeros(1, np.float32))
