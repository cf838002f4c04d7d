"""Training-time defences (tfminv.defences): spec parsing and early errors, and for each defence
a tiny classifier trained a few steps on synthetic images, checking what the defence moves."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from tfminv import defences
from tfminv.errors import ConfigError

SIZE, M = (16, 16, 1), 3


def _data(n=60, seed=0, classes=M):
    """Learnable images: class c lights one 4x4 square (of `classes` places), plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(0.2, 0.05, (n, *SIZE)).astype("float32")
    for i, c in enumerate(y):
        r, col = divmod(int(c) * 4, 12)
        x[i, 2 + r * 4:6 + r * 4, 2 + col:6 + col, 0] += 0.7
    return np.clip(x, 0, 1), y.astype("int64")


def _build(classes=M, size=SIZE, width=0.05):
    from tfminv.models import build_classifier

    return lambda: build_classifier(classes, size, width)


def _config(**kw):
    from tfminv.training import TrainConfig

    base = dict(epochs=3, batch_size=20, learning_rate=2e-3, precision="float32", verbose=0)
    return TrainConfig(**{**base, **kw})


def _wrapper(spec, seed=1, build=None):
    import keras

    from tfminv.defences.train import DefendedClassifier

    keras.utils.set_random_seed(seed)
    model = DefendedClassifier((build or _build())(), spec, seed=seed)
    model.compile(optimizer=_config().optimizer())
    return model


# -- specs and early errors (pure Python) -------------------------------------------------------

@pytest.mark.parametrize("spec, canonical", [
    ("none", "none"), ("", "none"), ("ls:0.1", "ls:0.1"), ("ls:-0.05", "ls:-0.05"),
    ("mid:0.01", "mid:0.01"), ("bido:0.05,0.5", "bido:0.05,0.5"),
    ("dpsgd:1.1,1", "dpsgd:1.1,1.0"), ("dpsgd:1.1,1.0,1e-6", "dpsgd:1.1,1.0,1e-06"),
    ("tl:2", "tl:2")])
def test_parse_canonical(spec, canonical):
    assert str(defences.parse(spec)) == canonical
    assert defences.parse(canonical) == defences.parse(spec)


@pytest.mark.parametrize("spec, words", [
    ("foo:1", "unknown name 'foo'"), ("ls:1", "outside (-1, 1)"), ("ls:-1.0", "outside"),
    ("ls:abc", "not a number"), ("ls", "takes 1"), ("mid:-0.1", "negative"),
    ("bido:1", "takes 2"), ("bido:-1,1", ">= 0"), ("dpsgd:-1,1", "negative"),
    ("dpsgd:1,0", "clipping norm 0.0 must be > 0"), ("dpsgd:1,1,1.5", "delta"),
    ("dpsgd:1", "takes 2-3"), ("tl:0", "at least the last layer"), ("tl:1.5", "not a number"),
    ("ls:nan", "finite")])
def test_parse_errors_are_one_line(spec, words):
    with pytest.raises(ConfigError) as e:
        defences.parse(spec)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert repr(spec) in str(e.value) or spec in str(e.value)


def test_parse_and_checks_do_not_import_tensorflow():
    code = ("import sys; from tfminv import defences as d; d.parse('dpsgd:1,1');"
            "d.cache_key_part('ls:0.1');"
            "d.check('dpsgd:1,1', n_train=100, batch_size=20);"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_check_dpsgd_data_errors():
    with pytest.raises(ConfigError, match=r"--batch_size=32 does not divide the 100 training"):
        defences.check("dpsgd:1,1", n_train=100, batch_size=32)
    with pytest.raises(ConfigError, match=r"delta=0.01 must be below 1/N"):
        defences.check("dpsgd:1,1,0.01", n_train=100, batch_size=20)
    with pytest.raises(ConfigError, match="streamed"):
        defences.check("dpsgd:1,1", n_train=None, batch_size=20)
    with pytest.raises(ConfigError, match="--strategy=mirrored"):
        defences.check("mid:0.1", n_train=100, batch_size=20, strategy="mirrored")
    with pytest.raises(ConfigError, match="labelled public"):
        defences.check("tl:2", n_train=100, batch_size=20)
    assert defences.check("dpsgd:1,1", n_train=100, batch_size=20).name == "dpsgd"
    for n in (100, 999, 1000, 54321):
        assert defences.default_delta(n) < 1.0 / n <= 10 * defences.default_delta(n)


def test_cache_key_part():
    assert defences.cache_key_part("none") == {}
    from tfminv.training import code_version

    code = code_version.version("defended")
    assert defences.cache_key_part("ls:+0.10") == {"defence": "ls:0.1", "defence_code": code}
    assert defences.cache_key_part("tl:2", aux={"set": "celeba"}) == {
        "defence": "tl:2", "defence_code": code, "defence_aux": {"set": "celeba"}}
    with pytest.raises(ConfigError, match="pre-trains on"):
        defences.cache_key_part("tl:2")


def test_epsilon_from_dp_accounting():
    import dp_accounting
    from dp_accounting import pld

    eps = [defences.dp_epsilon(s, batch_size=50, n=1000, epochs=5, delta=1e-4)
           for s in (0.8, 1.1, 2.0, 4.0)]
    assert all(a > b for a, b in zip(eps, eps[1:])), eps
    assert defences.dp_epsilon(0.0, batch_size=50, n=1000, epochs=5, delta=1e-4) == math.inf
    # the same event composed by another of dp_accounting's accountants agrees closely
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.05, dp_accounting.GaussianDpEvent(1.1)), 100)
    from dp_accounting import rdp

    same = rdp.RdpAccountant().compose(event).get_epsilon(1e-4)
    assert eps[1] == pytest.approx(same, rel=1e-12)
    other = pld.PLDAccountant().compose(event).get_epsilon(1e-4)
    assert other <= eps[1] <= 1.3 * other, (other, eps[1])


# -- the defences at work --------------------------------------------------------------------

def _confidence(model, x):
    logits = model.predict(x, verbose=0)
    p = np.exp(logits - logits.max(1, keepdims=True))
    return float((p / p.sum(1, keepdims=True)).max(1).mean())


def test_label_smoothing_sign_moves_confidence(tmp_path):
    x, y = _data()
    cfg = _config(epochs=10, learning_rate=1e-2)  # near convergence: seeds 1-3 all order
    conf = {}                                      # ls:0.3 ~0.5 < none ~0.9 < ls:-0.3 ~1.0
    for spec in ("none", "ls:0.3", "ls:-0.3"):
        model, info = defences.fit_defended(spec, _build(), x, y, config=cfg,
                                            workdir=tmp_path / spec.replace(":", "_"))
        assert info["defence"] == spec
        conf[spec] = _confidence(model, x)
    # 'none' is today's plain training: same run record, no wrapper folder
    from tfminv.training import code_version

    assert json.loads((tmp_path / "none" / "run.json").read_text())["meta"] == {
        "code": code_version.version(None)}
    assert not (tmp_path / "none" / "defended").exists()
    assert json.loads((tmp_path / "ls_0.3" / "run.json").read_text())["meta"] == {
        "defence": "ls:0.3", "defence_code": code_version.version("defended"),
        "code": code_version.version("defended")}
    assert conf["ls:0.3"] < conf["none"] < conf["ls:-0.3"], conf
    # the smoothed loss itself, against the closed form, also for a negative strength
    from tfminv.defences.train import smoothed_cross_entropy

    logits = np.array([[2.0, 0.0, -1.0]], "float32")
    logp = logits - np.log(np.exp(logits).sum())
    for s in (0.2, -0.2):
        target = (1 - s) * np.eye(3)[0] + s / 3
        assert np.isclose(float(smoothed_cross_entropy(np.array([0]), logits, s, 3)[0]),
                          -(target * logp).sum(), atol=1e-6)


def test_mid_kl_in_loss_and_deterministic_inference(tmp_path):
    import keras

    x, y = _data()
    a, b = _wrapper("mid:0.0"), _wrapper("mid:1.0")
    b.set_weights(a.get_weights())
    la, _, ea = a.defended_loss(x[:20], y[:20], training=False)
    lb, _, eb = b.defended_loss(x[:20], y[:20], training=False)  # same seed: same noise
    assert float(ea["kl"]) > 0
    assert np.isclose(float(lb) - float(la), float(eb["kl"]), rtol=1e-5)

    model, info = defences.fit_defended("mid:0.01", _build(), x, y, config=_config(),
                                        workdir=tmp_path / "mid", val=(x[:15], y[:15]))
    assert info["strengths"] == [0.01]
    hist = (tmp_path / "mid" / "defended" / "history.csv").read_text()
    assert "kl" in hist.splitlines()[0]
    p1, p2 = model.predict(x, verbose=0), model(x, training=False).numpy()
    assert np.allclose(p1, p2, atol=1e-6) and p1.shape == (len(x), M)
    # the served file is a plain functional classifier (no wrapper class), with the VIB mean
    saved = json.loads(__import__("zipfile").ZipFile(tmp_path / "mid" / "model.keras")
                       .read("config.json"))
    assert saved["class_name"] == "Functional"
    assert "vib_mu" in {layer.name for layer in model.layers}
    assert "vib_logvar" not in {layer.name for layer in model.layers}
    loaded = keras.models.load_model(tmp_path / "mid" / "model.keras")
    assert np.allclose(loaded.predict(x, verbose=0), p1, atol=1e-5)
    # a second call reuses the saved run (no training: the run folder is untouched)
    before = (tmp_path / "mid" / "defended" / "history.csv").stat().st_mtime_ns
    again, info2 = defences.fit_defended("mid:0.01", _build(), x, y, config=_config(),
                                         workdir=tmp_path / "mid", val=(x[:15], y[:15]))
    assert info2 == info and np.allclose(again.predict(x, verbose=0), p1, atol=1e-5)
    assert (tmp_path / "mid" / "defended" / "history.csv").stat().st_mtime_ns == before
    # killed after training but before the served copy was written: the wrapper run is
    # reloaded (its class is registered) and only the served copy is written again
    (tmp_path / "mid" / "model.keras").unlink()
    (tmp_path / "mid" / "run.json").unlink()
    again, info3 = defences.fit_defended("mid:0.01", _build(), x, y, config=_config(),
                                         workdir=tmp_path / "mid", val=(x[:15], y[:15]))
    assert info3 == info and np.allclose(again.predict(x, verbose=0), p1, atol=1e-5)
    assert (tmp_path / "mid" / "defended" / "history.csv").stat().st_mtime_ns == before
    assert (tmp_path / "mid" / "model.keras").exists()
    with pytest.raises(ConfigError, match="different settings"):
        defences.fit_defended("mid:0.01", _build(), x, y, config=_config(epochs=4),
                              workdir=tmp_path / "mid", val=(x[:15], y[:15]))


def test_bido_terms():
    import tensorflow as tf

    from tfminv.defences.train import hsic

    rng = np.random.default_rng(0)
    a = tf.constant(rng.normal(size=(64, 2)), tf.float32)
    noise = tf.constant(rng.normal(size=(64, 2)), tf.float32)
    assert float(hsic(a, a)) > 3 * float(hsic(a, noise))
    assert float(hsic(a, a * a)) > 3 * float(hsic(a, noise))

    x, y = _data(40)
    plain, weighted = _wrapper("bido:0,0"), _wrapper("bido:0.5,2")
    weighted.set_weights(plain.get_weights())
    l0, _, e0 = plain.defended_loss(x, y, training=False)
    l1, _, e1 = weighted.defended_loss(x, y, training=False)
    assert float(e1["hsic_xz"]) > 0 and float(e1["hsic_yz"]) > 0
    assert np.isclose(float(l1) - float(l0),
                      0.5 * float(e1["hsic_xz"]) - 2.0 * float(e1["hsic_yz"]), rtol=1e-4)
    # over the same steps from the same start, the A term lowers the input dependence of the
    # latents in the training steps (seeds 1-3: 14.4 -> 13.1, 14.2 -> 12.8, 13.6 -> 12.1) and
    # the B term raises their label dependence at inference (there the training steps' value
    # sits at its ceiling, about 2 per latent layer for 3 classes; seeds 1-3 at B = 20: 1.83 ->
    # 1.96, 3.18 -> 3.29, 2.74 -> 2.81)
    last, label_dep = {}, {}
    for spec in ("bido:0,0", "bido:5,0", "bido:0,20"):
        m = _wrapper(spec)
        m.set_weights(plain.get_weights())
        hist = m.fit(x, y, batch_size=20, epochs=4, verbose=0).history
        last[spec] = hist["hsic_xz"][-1]
        label_dep[spec] = _hsic_y(m, x, y)
    assert last["bido:5,0"] < last["bido:0,0"] - 0.5, last
    assert label_dep["bido:0,20"] > label_dep["bido:0,0"] + 0.03, label_dep


def _hsic_y(model, x, y):
    import tensorflow as tf

    from tfminv.defences.train import hsic

    *zs, _ = model.latents(x, training=False)
    onehot = tf.one_hot(y, M)
    return sum(float(hsic(onehot, z)) for z in zs)


def test_dpsgd_per_example_gradients_clip_and_noise():
    import tensorflow as tf

    x, y = _data(8)
    model = _wrapper("dpsgd:0.0,0.05")
    grads, _, _ = model.per_example_gradients(x, y)
    variables = model.train_variables()
    # the vectorised Jacobian equals one gradient per example computed one by one
    for i in (0, 5):
        with tf.GradientTape() as tape:
            logit = model.served(x[i:i + 1], training=False)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y[i:i + 1], logit)[0]
        ref = tape.gradient(loss, variables)
        for g, r in zip(grads, ref):
            assert np.allclose(g[i].numpy(), r.numpy(), atol=1e-5)
    clipped, norms = model.clip_gradients(grads)
    after = np.sqrt(sum(np.square(g.numpy()).reshape(len(x), -1).sum(1) for g in clipped))
    assert (norms.numpy() > 0.05).any()
    assert np.all(after <= 0.05 * (1 + 1e-4)), after
    small = norms.numpy() <= 0.05
    assert np.allclose(after[small], norms.numpy()[small], rtol=1e-5)
    # in chunks (a loop over 3 + 3 + 2 examples): the same sum of clipped gradients
    model.dp_chunk = 3
    sums, _, losses3, norms3 = model.clipped_sum(tf.constant(x), tf.constant(y))
    assert norms3.shape == (len(x),) and losses3.shape == (len(x),)
    for total, c in zip(sums, clipped):
        assert np.allclose(total.numpy(), c.numpy().sum(0), atol=1e-5)
    assert np.allclose(norms3.numpy(), norms.numpy(), rtol=1e-5)
    model.dp_chunk = None
    # noise 0: the update direction is the mean clipped gradient; noise > 0 changes it by
    # about NOISE * CLIP / B per coordinate
    quiet, _, _, _ = model.private_gradients(x, y)
    for g, c in zip(quiet, clipped):
        assert np.allclose(g.numpy(), c.numpy().mean(0), atol=1e-6)
    noisy = _wrapper("dpsgd:2.0,0.05")
    noisy.set_weights(model.get_weights())
    loud, _, _, _ = noisy.private_gradients(x, y)
    diff = np.concatenate([(a - b).numpy().ravel() for a, b in zip(loud, quiet)])
    assert abs(diff.std() / (2.0 * 0.05 / len(x)) - 1) < 0.1


def test_dpsgd_fit_records_epsilon(tmp_path):
    x, y = _data(60)
    cfg = _config(epochs=2)
    eps = {}
    for spec in ("dpsgd:0.8,1.0", "dpsgd:2.0,1.0"):
        model, info = defences.fit_defended(spec, _build(), x[:40], y[:40], config=cfg,
                                            workdir=tmp_path / spec.replace(":", "_"),
                                            val=(x[40:], y[40:]))
        assert info["delta"] == 0.01 and info["steps"] == 4
        assert info["epsilon"] == round(defences.dp_epsilon(
            float(spec.split(":")[1].split(",")[0]), batch_size=20, n=40, epochs=2,
            delta=0.01), 4)
        run = json.loads((tmp_path / spec.replace(":", "_") / "run.json").read_text())
        assert run["defence_info"]["epsilon"] == info["epsilon"]
        assert model.predict(x, verbose=0).shape == (60, M)
        eps[spec] = info["epsilon"]
    assert eps["dpsgd:2.0,1.0"] < eps["dpsgd:0.8,1.0"]
    with pytest.raises(ConfigError, match="does not divide"):
        defences.fit_defended("dpsgd:1,1", _build(), x[:50], y[:50], config=cfg,
                              workdir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_transfer_learning_trains_only_last_layers(tmp_path):
    import keras

    from tfminv.defences.train import weighted_layers

    x, y = _data(40)
    xa, ya = _data(60, seed=3, classes=4)  # public images of 4 other classes
    model, info = defences.fit_defended("tl:2", _build(), x, y, config=_config(epochs=2),
                                        workdir=tmp_path / "tl", aux=(xa, ya + 10))
    assert info["tuned_layers"] == ["fc1", "logits"] and info["public_classes"] == 4
    pre = keras.models.load_model(tmp_path / "tl" / "pretrain" / "model.keras")
    pre_w = {layer.name: layer.get_weights() for layer in weighted_layers(pre)}
    for layer in weighted_layers(model):
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(),
                                                        pre_w.get(layer.name, [])))
        if layer.name in ("conv0", "bn0", "conv2", "bn2"):
            assert same, layer.name
        if layer.name == "fc1":
            assert not same, layer.name
    assert model.predict(x, verbose=0).shape == (40, M)
    with pytest.raises(ConfigError, match="only 8 layers with weights"):
        defences.fit_defended("tl:9", _build(), x, y, config=_config(), workdir=tmp_path / "t9",
                              aux=(xa, ya))


@pytest.mark.parametrize("spec", ["ls:-0.1", "mid:0.01", "bido:0.05,0.5", "dpsgd:1.0,1.0"])
def test_every_wrapped_defence_trains_a_face_classifier(spec):
    """The face trunk (4 blocks, 64x64x3, another class count) as well as the digit one."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 64, 64, 3)).astype("float32")
    y = np.arange(8) % 5
    model = _wrapper(spec, build=_build(5, (64, 64, 3), 0.02))
    model.dp_chunk = 3  # DP-SGD: the chunked loop inside the compiled training step
    before = [w.copy() for w in model.served.get_weights()]
    logs = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][-1])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.served.get_weights()))
    assert model.served.predict(x, verbose=0).shape == (8, 5)


def _one_by_one_clipped_sum(model, x, y, clip):
    """The reference: each example's gradient from its own tape, clipped, summed in Python."""
    import tensorflow as tf

    variables = model.train_variables()
    total = [np.zeros(v.shape, "float32") for v in variables]
    norms = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            logit = model.served(x[i:i + 1], training=False)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y[i:i + 1], logit)[0]
        grads = [g.numpy() for g in tape.gradient(loss, variables)]
        norm = np.sqrt(sum(np.square(g).sum() for g in grads))
        norms.append(norm)
        for t, g in zip(total, grads):
            t += g * min(1.0, clip / norm)
    return total, np.array(norms)


def test_dpsgd_chunks_give_the_unchunked_clipped_sum():
    """Any chunk size, with a padded last chunk (7 = 3 + 3 + 1 padded to 3 + 3 + 3, 7 = 5 + 2
    padded) and an unknown batch size inside a tf.function, sums the same clipped gradients as
    one example at a time: padded examples are masked out."""
    import tensorflow as tf

    x, y = _data(7)
    model = _wrapper("dpsgd:0.0,0.05")
    ref, ref_norms = _one_by_one_clipped_sum(model, x, y, 0.05)
    assert (ref_norms > 0.05).any() and (ref_norms < 10).all()
    dynamic = tf.function(model.clipped_sum, input_signature=[
        tf.TensorSpec([None, *SIZE], tf.float32), tf.TensorSpec([None], tf.int64)])
    for chunk in (1, 3, 5, 7, 50):
        model.dp_chunk = chunk
        for fn in (model.clipped_sum, dynamic):
            sums, logits, losses, norms = fn(tf.constant(x), tf.constant(y))
            assert logits.shape == (7, M) and losses.shape == (7,) and norms.shape == (7,)
            assert np.allclose(norms.numpy(), ref_norms, rtol=1e-4), chunk
            for total, r in zip(sums, ref):
                assert np.allclose(total.numpy(), r, atol=1e-5), chunk
        dynamic = tf.function(model.clipped_sum, input_signature=dynamic.input_signature)


def test_dpsgd_chunk_size_counts_activations(monkeypatch):
    """The chunk comes from the memory of one example's gradient, activations included: the
    64x64 face classifier at width 0.25 has about as many activation floats as parameters,
    so its chunk is at most half of what the parameter count alone would allow."""
    from tfminv.defences import train

    model = _wrapper("dpsgd:1.0,1.0", build=_build(12, (64, 64, 1), 0.25))
    ghost = model._ghost_variables()
    assert len(ghost) == 4  # fc1 and logits: kernel and bias, clipped from their in/outputs
    params = sum(int(np.prod(v.shape)) for v in model.train_variables() if id(v) not in ghost)
    per_example = model.per_example_bytes()
    assert per_example >= train.DP_BYTES_FACTOR * 4 * (params + 64 * 64 * 8)
    by_params = train.DP_CHUNK_BYTES // (train.DP_BYTES_FACTOR * 4 * params)
    assert 1 <= model.chunk_size() <= by_params // 2
    monkeypatch.setattr(train, "DP_CHUNK_BYTES", per_example * 3 + 1)
    assert model.chunk_size() == 3
    monkeypatch.setattr(train, "DP_CHUNK_BYTES", 1)
    assert model.chunk_size() == 1


def test_dpsgd_dense_layers_cost_no_per_example_memory_and_other_graphs_fall_back():
    """The Dense layers' per-example gradients are never materialised (their norms come from
    |x_i|^2 |d_i|^2): a 471-class face classifier, 10.8 M of its 11.1 M parameters in Dense
    layers, gets chunks of tens of examples, not 2. A classifier that is not a chain (a skip
    connection) gets no ghost plan and the full per-example path, with the same clipped sum
    as one example at a time."""
    import keras
    import tensorflow as tf

    big = _wrapper("dpsgd:1.0,1.0", build=_build(471, (64, 64, 1), 0.25))
    dense = sum(int(np.prod(v.shape)) for v in big.train_variables()
                if id(v) in big._ghost_variables())
    assert dense > 10_000_000 and big.chunk_size() >= 20

    def residual():
        inp = keras.Input(SIZE)
        h = keras.layers.Flatten()(inp)
        a = keras.layers.Dense(8, activation="relu")(h)
        b = keras.layers.Dense(8)(a)
        out = keras.layers.Dense(M)(keras.layers.Add()([a, b]))
        return keras.Model(inp, out)

    x, y = _data(7)
    model = _wrapper("dpsgd:0.0,0.05", build=residual)
    assert model._dp.ghost == () and model._dp.chain is None
    ref, ref_norms = _one_by_one_clipped_sum(model, x, y, 0.05)
    model.dp_chunk = 3
    sums, _, _, norms = model.clipped_sum(tf.constant(x), tf.constant(y))
    assert np.allclose(norms.numpy(), ref_norms, rtol=1e-4)
    for total, r in zip(sums, ref):
        assert np.allclose(total.numpy(), r, atol=1e-5)
