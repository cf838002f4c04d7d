"""End to end: train a small MNIST classifier, export it and an inverter, serve both with the
in-process TF Serving stand-in, attack through REST and gRPC, reconstruct through the client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow_serving")

from tfminv import export  # noqa: E402
from tfminv.data import load_split  # noqa: E402
from tfminv.errors import ConfigError, DataError, OracleError  # noqa: E402
from tfminv.models import build_classifier, build_inverter  # noqa: E402
from tfminv.oracles import RetryPolicy, TransientOracleError, from_spec  # noqa: E402
from tfminv.oracles.grpc import GrpcOracle  # noqa: E402
from tfminv.serving import InverterClient, ModelServer, ServingError  # noqa: E402

K, WIDTH, N_TRAIN, N_VICTIMS = 3, 0.0625, 512, 64


class Hook:
    """Fault injection: raise or sleep on the next few predicts."""

    def __init__(self):
        self.actions = []
        self.calls = 0

    def __call__(self, protocol, name):
        self.calls += 1
        if self.actions:
            act = self.actions.pop(0)
            if isinstance(act, ServingError):
                raise act
            time.sleep(act)


@pytest.fixture(scope="module")
def world(tmp_path_factory, data_dir, records_dir):
    keras.utils.set_random_seed(0)
    train = load_split("mnist", "train", data_dir=data_dir, records_dir=records_dir, limit=N_TRAIN)
    test = load_split("mnist", "test", data_dir=data_dir, records_dir=records_dir, limit=N_TRAIN)
    m = len(train.label_names)
    clf = build_classifier(m, train.images.shape[1], width=WIDTH, name="target")
    clf.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = clf.fit(train.images, train.labels, batch_size=64, epochs=2, verbose=0)
    # a tiny inverter with the truncation inside, trained one epoch on the target's answers
    aux_probs = keras.ops.convert_to_numpy(keras.ops.softmax(clf.predict(train.images, verbose=0)))
    inv = build_inverter(m, train.images.shape[1], width=WIDTH, k=K, name="inverter")
    inv.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss="mse")
    inv.fit(aux_probs, train.images, batch_size=64, epochs=1, verbose=0)

    base = tmp_path_factory.mktemp("serving")
    export.export_classifier(clf, base, "target")
    export.export_inverter(inv, base, f"inverter_top{K}")
    export.write_models_config(base)
    hook = Hook()
    server = ModelServer(model_config_file=base / "models.config", hook=hook).start()
    yield dict(clf=clf, inv=inv, victims=test.images[:N_VICTIMS], server=server, hook=hook,
               base=base, losses=hist.history["loss"], m=m)
    server.stop()


def keras_probs(clf, x):
    return keras.ops.convert_to_numpy(keras.ops.softmax(clf(x, training=False)))


def test_end_to_end_rest_and_grpc(world, tmp_path):
    clf, inv, x, srv = world["clf"], world["inv"], world["victims"], world["server"]
    assert world["losses"][-1] < world["losses"][0]  # the target did train
    want = keras_probs(clf, x)
    preds = {}
    for spec in ("rest:" + srv.rest_url("target"), "grpc:" + srv.grpc_target("target"),
                 "rest:" + srv.rest_url("target", 1), "grpc:" + srv.grpc_target("target", 1)):
        oracle = from_spec(spec, batch_size=25, timeout=20)
        got = oracle(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=spec)
        assert oracle.num_queries == N_VICTIMS and oracle.output_dim == world["m"]
        preds[spec.split(":")[0]] = got
    # reconstruct the victims from their (raw) predictions through the served inverter
    ref = keras.ops.convert_to_numpy(inv(preds["rest"], training=False))
    for server in (f"rest:{srv.rest_url(f'inverter_top{K}')}",
                   f"grpc:{srv.grpc_target(f'inverter_top{K}')}"):
        client = InverterClient(server, batch_size=20, timeout=20)
        rec = client.reconstruct(preds["rest"])
        client.close()
        assert rec.shape == x.shape
        np.testing.assert_allclose(rec, ref, rtol=1e-5, atol=1e-6, err_msg=server)


def test_client_cli_writes_pngs(world, tmp_path):
    import cv2

    srv, inv, clf, x = world["server"], world["inv"], world["clf"], world["victims"][:4]
    np.save(tmp_path / "victims.npy", x)
    out_dir = tmp_path / "recon"
    cmd = [sys.executable, "-m", "tfminv.serving.client",
           f"--server=rest:{srv.rest_url(f'inverter_top{K}')}",
           f"--target=rest:{srv.rest_url('target')}", f"--images={tmp_path / 'victims.npy'}",
           f"--out_dir={out_dir}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-3000:]
    pngs = sorted(out_dir.glob("recon_*.png"))
    assert len(pngs) == 4
    ref = keras.ops.convert_to_numpy(inv(keras_probs(clf, x), training=False))
    for p, r in zip(pngs, ref):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert img.shape == r.shape[:2] and img.dtype == np.uint8
        assert np.abs(img.astype(np.float32) - np.clip(r[..., 0], 0, 1) * 255).max() <= 1.0


def test_reconstruct_files_is_the_client_command_as_a_function(world, tmp_path):
    from tfminv.serving import reconstruct_files

    srv, inv, clf, x = world["server"], world["inv"], world["clf"], world["victims"][:3]
    preds = keras_probs(clf, x)
    np.save(tmp_path / "preds.npy", preds)
    paths = reconstruct_files(f"rest:{srv.rest_url(f'inverter_top{K}')}", tmp_path / "out",
                              predictions=str(tmp_path / "preds.npy"), prefix="r")
    assert [p.name for p in paths] == sorted(p.name for p in (tmp_path / "out").glob("r_*.png"))
    assert len(paths) == 3
    with pytest.raises(ConfigError, match="exactly one of --predictions or --images"):
        reconstruct_files("rest:http://127.0.0.1:1/v1/models/x", tmp_path / "o2")
    with pytest.raises(ConfigError, match="--images needs --target"):
        reconstruct_files("rest:http://127.0.0.1:1/v1/models/x", tmp_path / "o2", images="x.npy")
    assert not (tmp_path / "o2").exists()


def test_rest_contract_and_errors(world):
    srv, x = world["server"], world["victims"][:2]
    status = json.load(urllib.request.urlopen(srv.rest_url("target"), timeout=10))
    assert status["model_version_status"][0] == {
        "version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    o = from_spec("rest:" + srv.rest_url("nosuchmodel"), retries=0)
    with pytest.raises(OracleError, match="HTTP 404.*Servable not found"):
        o(x)
    o = from_spec("rest:" + srv.rest_url("target", 9), retries=0)
    with pytest.raises(OracleError, match="HTTP 404.*Specific\\(target, 9\\)"):
        o(x)
    o = from_spec("rest:" + srv.rest_url("target"), retries=0)
    with pytest.raises(OracleError, match="HTTP 400.*shape") as e:
        o(np.zeros((1, 8, 8, 1), np.float32))
    assert not isinstance(e.value, TransientOracleError)


def test_grpc_retries_timeouts_and_errors(world):
    srv, hook, x = world["server"], world["hook"], world["victims"][:3]
    sleeps = []
    o = GrpcOracle(srv.grpc_target("target"), timeout=5,
                   retry=RetryPolicy(retries=2, backoff=0.01, jitter=0, sleep=sleeps.append))
    hook.actions = [ServingError("UNAVAILABLE", "warming up")]
    before = hook.calls
    np.testing.assert_allclose(o(x), keras_probs(world["clf"], x), rtol=1e-5, atol=1e-6)
    assert hook.calls - before == 2 and sleeps == [0.01]
    with pytest.raises(OracleError, match="INVALID_ARGUMENT.*shape") as e:
        o(np.zeros((1, 8, 8, 1), np.float32))
    assert not isinstance(e.value, TransientOracleError)
    o = GrpcOracle(srv.grpc_target("target"), timeout=0.3,
                   retry=RetryPolicy(retries=1, backoff=0, sleep=lambda s: None))
    hook.actions = [3.0, 3.0]
    t0 = time.monotonic()
    with pytest.raises(TransientOracleError, match="giving up after 2.*DEADLINE_EXCEEDED"):
        o(x)
    assert time.monotonic() - t0 < 2.5  # two 0.3 s deadlines, not the server's 3 s
    with pytest.raises(OracleError, match="NOT_FOUND"):
        GrpcOracle(srv.grpc_target("nosuchmodel"), retry=RetryPolicy(retries=0))(x)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = GrpcOracle(f"127.0.0.1:{closed}/target", timeout=2,
                      retry=RetryPolicy(retries=1, backoff=0, sleep=lambda s: None))
    with pytest.raises(TransientOracleError, match="giving up after 2.*UNAVAILABLE"):
        down(x)
    assert down.num_queries == 0
    hook.actions = []


def test_savedmodel_oracle_and_client_input_checks(world):
    x = world["victims"][:5]
    o = from_spec(f"savedmodel:{world['base'] / 'target'}")
    np.testing.assert_allclose(o(x), keras_probs(world["clf"], x), rtol=1e-5, atol=1e-6)
    assert o.identity().startswith("savedmodel:")
    with pytest.raises(DataError, match="finite prediction vectors"):
        InverterClient("rest:" + world["server"].rest_url(f"inverter_top{K}")).reconstruct(
            np.full((1, world["m"]), np.nan, np.float32))
    with pytest.raises(ConfigError, match="inverter server"):
        InverterClient("http://localhost:8501/v1/models/x")


def test_model_server_needs_models(tmp_path):
    with pytest.raises(ConfigError, match="no models"):
        ModelServer({})
    with pytest.raises(ConfigError, match="no SavedModel versions under"):
        ModelServer({"x": tmp_path})
