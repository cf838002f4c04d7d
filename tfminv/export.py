"""Export classifiers and inverters as SavedModels in TF Serving's layout.

    BASE/NAME/VERSION/saved_model.pb, variables/, assets.extra/tf_serving_warmup_requests
    BASE/models.config          (ModelServerConfig, base paths on this machine)
    BASE/models.docker.config   (the same with base paths under /models, for the docker image)

Signatures (`serving_default`, documented in docs/serving.md):
    classifier: inputs["images"] float32 [None, H, W, C] in [0, 1] -> outputs["probabilities"] [None, m]
    inverter:   inputs["predictions"] float32 [None, m] -> outputs["images"] [None, H, W, C]
An inverter built with `k` carries its Truncation layer, so a client posts the raw prediction.

A model trained under a mixed precision policy (the CPU default, mixed_bfloat16) is exported as
its float32 twin (same weights, float32 compute; `float32_model`): the served graph and the
self-check then compute alike. Measured on a bf16-trained target: eager and `tf.function` bf16
logits of the same model differ by up to 0.03, so a bf16 graph could not be checked against
the eager model at any useful tolerance, while float32 graph and eager agree to 1e-6. The
float32 export answers within bf16 rounding of the bf16 model (logged at export).

CLI: python -m tfminv.export --export_dir=BASE --classifier=target=PATH.keras \
         --inverter=inv_top3=PATH.keras [--version=N]
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, TfminvError, first_line
from tfminv.io_utils import atomic_dir, atomic_path, clean_stale

log = logging.getLogger(__name__)

CLASSIFIER_INPUT, CLASSIFIER_OUTPUT = "images", "probabilities"
INVERTER_INPUT, INVERTER_OUTPUT = "predictions", "images"
SIGNATURE = "serving_default"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
DOCKER_MODELS_DIR = "/models"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ConfigError(f"model name {name!r}: expected letters, digits, '_', '.', '-' "
                          "(it becomes a directory and a URL path segment)")
    return name


def versions(model_dir: str | os.PathLike) -> list[int]:
    """Integer version directories under BASE/NAME (what TF Serving considers), sorted."""
    d = Path(model_dir)
    if not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_dir: str | os.PathLike) -> int:
    vs = versions(model_dir)
    return (vs[-1] + 1) if vs else 1


def ends_in_softmax(model) -> bool:
    """Whether a Keras model's last layer already outputs probabilities."""
    import keras

    last = model.layers[-1] if getattr(model, "layers", None) else None
    act = getattr(last, "activation", None)
    if last is not None and type(last).__name__ == "Softmax":
        return True
    return act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"


def _layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _layers(layer)


def compute_dtypes(model) -> set[str]:
    """The compute dtypes of a model's layers (nested models included)."""
    out = set()
    for layer in [model, *_layers(model)]:
        policy = getattr(layer, "dtype_policy", None)
        if policy is not None and getattr(policy, "compute_dtype", None):
            out.add(str(policy.compute_dtype))
    return out


def float32_model(model):
    """`model` itself if every layer computes in float32, else a float32 twin: the same
    architecture cloned with a float32 dtype policy and the same weights (mixed precision keeps
    its variables in float32, so nothing is rounded). None when the model cannot be cloned
    (a subclassed model)."""
    import keras

    if compute_dtypes(model) <= {"float32"}:
        return model

    def to_float32(layer):
        cfg = layer.get_config()
        if "dtype" in cfg:
            cfg["dtype"] = "float32"
        return layer.__class__.from_config(cfg)

    try:
        twin = keras.models.clone_model(model, clone_function=to_float32, recursive=True)
        twin.set_weights(model.get_weights())
    except Exception as e:  # noqa: BLE001 - Keras refuses many kinds of model differently
        log.info("export: cannot clone %s in float32 (%s); exporting it as it computes",
                 getattr(model, "name", "model"), first_line(e))
        return None
    return twin


def _tolerance(dtypes: set[str], rtol: float, atol: float) -> tuple[float, float]:
    """The self-check's tolerance for a graph computing in `dtypes`: the float32 one, or 8
    units of the narrowest dtype's rounding (bf16: 2**-7 -> 0.0625) for a model exported in
    reduced precision (graph and eager round differently)."""
    eps = {"bfloat16": 2.0 ** -7, "float16": 2.0 ** -10}
    worst = max((eps[d] for d in dtypes if d in eps), default=0.0)
    return max(rtol, 8 * worst), max(atol, 8 * worst)


def export_model(model, out_dir: str | os.PathLike, *, input_name: str, output_name: str,
                 postprocess=None, warmup_inputs: np.ndarray | None = None,
                 model_name: str | None = None, rtol: float = 1e-4, atol: float = 1e-5) -> Path:
    """Write `model` as a SavedModel with one `serving_default` signature, atomically.

    `postprocess` (a TF function on the output, e.g. softmax) runs inside the graph. A model
    computing in reduced precision is exported as its float32 twin (`float32_model`). The
    export is reloaded and checked against the (exported) Keras model on `warmup_inputs` before
    it is renamed into place; the same inputs become TF Serving warm-up requests. Temporary
    folders of earlier exports whose writer died are removed first.
    """
    import keras
    import tensorflow as tf

    original = model
    model = float32_model(original)
    if model is None:
        model = original
        rtol, atol = _tolerance(compute_dtypes(model), rtol, atol)
    in_shape = tuple(model.input_shape)
    if warmup_inputs is None:
        raise ConfigError("export_model: warmup_inputs are required (one or more example inputs)")
    warmup_inputs = np.asarray(warmup_inputs, np.float32)
    if warmup_inputs.shape[1:] != in_shape[1:]:
        raise ConfigError(f"export_model: warm-up inputs have shape {warmup_inputs.shape[1:]}, "
                          f"the model expects {in_shape[1:]}")

    def serve(x):
        y = model(x, training=False)
        y = tf.cast(y, tf.float32)
        if postprocess is not None:
            y = postprocess(y)
        return {output_name: y}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[
        tf.TensorSpec((None,) + in_shape[1:], tf.float32, name=input_name)])
    out_dir = Path(out_dir)
    clean_stale_exports(out_dir.parent)
    with atomic_dir(out_dir) as tmp:
        archive.write_out(str(tmp), verbose=False)
        # Self-check: the reloaded graph must reproduce the Keras model.
        fn = tf.saved_model.load(str(tmp)).signatures[SIGNATURE]
        got = fn(**{input_name: tf.constant(warmup_inputs)})[output_name].numpy()
        want = model(warmup_inputs, training=False)
        want = tf.cast(want, tf.float32)
        want = (postprocess(want) if postprocess is not None else want).numpy()
        if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
            raise TfminvError(f"export to {out_dir}: reloaded SavedModel disagrees with the Keras "
                              f"model (max abs diff {np.max(np.abs(got - want)):.3g})")
        write_warmup(tmp / WARMUP_FILE, model_name or out_dir.parent.name, input_name,
                     warmup_inputs)
    if model is not original:
        trained = tf.cast(original(warmup_inputs, training=False), tf.float32)
        trained = (postprocess(trained) if postprocess is not None else trained).numpy()
        log.info("export %s: computes in float32 (trained in %s); answers differ from the "
                 "trained model's by up to %.3g on the warm-up inputs", out_dir,
                 "/".join(sorted(compute_dtypes(original) - {"float32"})),
                 float(np.max(np.abs(got - trained))))
    return out_dir


def clean_stale_exports(model_dir: str | os.PathLike) -> list[Path]:
    """Remove the temporary version folders (`.N.*.tmp`) that killed exports left in
    BASE/NAME; a folder whose writer is still alive (it holds its lock) is kept."""
    d = Path(model_dir)
    if not d.is_dir():
        return []
    removed = []
    for tmp in d.glob(".*.tmp"):
        final = tmp.name[1:].rsplit(".", 2)[0]  # .{final}.{mkdtemp's random part}.tmp
        if final:
            removed += clean_stale(d / final)
    return removed


def write_warmup(path: Path, model_name: str, input_name: str, inputs: np.ndarray) -> None:
    """Warm-up requests: a TFRecord of PredictionLog protos, one request per input row."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as w:
        for row in inputs:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = model_name
            req.model_spec.signature_name = SIGNATURE
            req.inputs[input_name].CopyFrom(tf.make_tensor_proto(row[None]))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req))
            w.write(log.SerializeToString())


def read_warmup(path: str | os.PathLike) -> list:
    """Parse a warm-up file back into PredictionLog protos."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for rec in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        logs.append(prediction_log_pb2.PredictionLog.FromString(rec))
    return logs


def _version_dir(base, name, version, overwrite):
    _check_name(name)
    model_dir = Path(base) / name
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ConfigError(f"--version must be a positive integer, got {version}")
    out = model_dir / str(version)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists: pass another --version or overwrite=True")
    return out


def export_classifier(model, base_dir, name: str = "classifier", version: int | None = None, *,
                      softmax: bool | None = None, warmup_inputs=None, num_warmup: int = 2,
                      overwrite: bool = False, seed: int = 0) -> Path:
    """Export a classifier to BASE/NAME/VERSION: images -> probabilities (softmax in the graph).

    `softmax=None` adds the softmax unless the model already ends in one.
    """
    import tensorflow as tf

    out = _version_dir(base_dir, name, version, overwrite)
    if softmax is None:
        softmax = not ends_in_softmax(model)
    if warmup_inputs is None:
        shape = (num_warmup,) + tuple(model.input_shape[1:])
        if any(d is None for d in shape):
            raise ConfigError(f"export_classifier {name}: the model takes images of any size "
                              f"{tuple(model.input_shape)}; pass warmup_inputs of the size it "
                              "serves")
        warmup_inputs = np.random.default_rng(seed).random(shape, dtype=np.float32)
    return export_model(model, out, input_name=CLASSIFIER_INPUT, output_name=CLASSIFIER_OUTPUT,
                        postprocess=tf.nn.softmax if softmax else None,
                        warmup_inputs=warmup_inputs, model_name=name)


def export_inverter(model, base_dir, name: str = "inverter", version: int | None = None, *,
                    warmup_inputs=None, num_warmup: int = 2, overwrite: bool = False,
                    seed: int = 0) -> Path:
    """Export an inverter to BASE/NAME/VERSION: raw prediction vectors -> images."""
    out = _version_dir(base_dir, name, version, overwrite)
    if warmup_inputs is None:
        m = int(model.input_shape[-1])
        z = np.random.default_rng(seed).normal(size=(num_warmup, m)) * 3
        warmup_inputs = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(np.float32)
    return export_model(model, out, input_name=INVERTER_INPUT, output_name=INVERTER_OUTPUT,
                        warmup_inputs=warmup_inputs, model_name=name)


def models_config_text(base_dir, names=None, base_path_prefix: str | None = None) -> str:
    """A ModelServerConfig text proto serving every model under BASE (or `names`)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    base = Path(base_dir)
    if names is None:
        names = sorted(p.name for p in base.iterdir() if p.is_dir() and versions(p))
    prefix = base_path_prefix or str(base.resolve())
    cfg = model_server_config_pb2.ModelServerConfig()
    for n in names:
        c = cfg.model_config_list.config.add()
        c.name = n
        c.base_path = f"{prefix.rstrip('/')}/{n}"
        c.model_platform = "tensorflow"
    return text_format.MessageToString(cfg)


def write_models_config(base_dir, names=None) -> tuple[Path, Path]:
    """Write BASE/models.config (local paths) and BASE/models.docker.config (/models/...)."""
    base = Path(base_dir)
    paths = []
    for fname, prefix in (("models.config", None), ("models.docker.config", DOCKER_MODELS_DIR)):
        with atomic_path(base / fname) as tmp:
            tmp.write_text(models_config_text(base, names, prefix))
        paths.append(base / fname)
    return tuple(paths)


def read_models_config(path) -> dict[str, Path]:
    """Parse a models.config into {name: base_path}."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = Path(path)
    try:
        cfg = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    except (OSError, text_format.ParseError) as e:
        raise ConfigError(f"{path}: not a readable ModelServerConfig text proto: {e}") from None
    return {c.name: Path(c.base_path) for c in cfg.model_config_list.config}


def _check_keras_file(path: str) -> Path:
    from tfminv.oracles.checks import LEGACY_SUFFIXES, check_keras_archive

    p = Path(path)
    if not p.is_file() or p.suffix not in (".keras",) + LEGACY_SUFFIXES:
        raise ConfigError(f"{path}: expected an existing .keras model file")
    return check_keras_archive(p)


def _load_keras(path: str):
    """The model in a .keras (or legacy .h5) file; one ConfigError line for anything else."""
    from tfminv.oracles.checks import load_keras_model

    model = load_keras_model(_check_keras_file(path))
    shape = model.input_shape
    if isinstance(shape, list) or not isinstance(shape, tuple):
        raise ConfigError(f"{path}: the model takes {len(shape)} inputs; an exported model "
                          "takes one tensor")
    return model


def _parse_named(value: str, flag: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep:
        path, name = value, Path(value).stem
    if not path:
        raise ConfigError(f"--{flag}={value!r}: expected NAME=PATH.keras or PATH.keras")
    return _check_name(name), path


def export_files(base_dir, classifiers=(), inverters=(), *, version: int | None = None,
                 softmax: bool | None = None, num_warmup: int = 2,
                 overwrite: bool = False) -> list[tuple[str, str]]:
    """Export saved Keras files for TF Serving (what `python -m tfminv.export` runs):
    classifiers / inverters are 'NAME=PATH.keras' or 'PATH.keras' (name = the file's stem),
    each checked before TensorFlow is imported (ConfigError naming the flag and value); then
    `export_classifier` / `export_inverter` into base_dir/NAME/VERSION and the models.config
    of base_dir. Returns (what, path) pairs in the order written: ('classifier NAME', dir),
    ('inverter NAME', dir), ('config', file)."""
    if not classifiers and not inverters:
        raise ConfigError("nothing to export: pass --classifier and/or --inverter")
    base = Path(base_dir)
    clfs = [_parse_named(v, "classifier") for v in classifiers]
    invs = [_parse_named(v, "inverter") for v in inverters]
    for _, path in clfs + invs:  # fail on a bad path before importing TensorFlow
        _check_keras_file(path)
    done = []
    for name, path in clfs:
        done.append((f"classifier {name}", str(export_classifier(
            _load_keras(path), base, name, version, softmax=softmax, num_warmup=num_warmup,
            overwrite=overwrite))))
    for name, path in invs:
        done.append((f"inverter {name}", str(export_inverter(
            _load_keras(path), base, name, version, num_warmup=num_warmup,
            overwrite=overwrite))))
    return done + [("config", str(p)) for p in write_models_config(base)]


def main(argv):
    from absl import flags

    F = flags.FLAGS
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {argv[1:]}")
    softmax = {"auto": None, "true": True, "false": False}[F.softmax]
    for what, path in export_files(F.export_dir, F.classifier, F.inverter, version=F.version,
                                   softmax=softmax, num_warmup=F.num_warmup,
                                   overwrite=F.overwrite):
        print(f"{what}: {path}")


def _define_flags():
    from absl import flags

    flags.DEFINE_string("export_dir", None, "BASE folder: models go to BASE/NAME/VERSION/.")
    flags.DEFINE_multi_string("classifier", [], "NAME=PATH.keras (or PATH.keras: name = stem); "
                              "exported as images -> probabilities.")
    flags.DEFINE_multi_string("inverter", [], "NAME=PATH.keras; exported as predictions -> images "
                              "(with its Truncation layer, if it has one).")
    flags.DEFINE_integer("version", None, "Version directory (default: one above the highest).")
    flags.DEFINE_enum("softmax", "auto", ["auto", "true", "false"],
                      "Add a softmax to classifier outputs (auto: unless the model ends in one).")
    flags.DEFINE_integer("num_warmup", 2, "Warm-up requests written to assets.extra/.")
    flags.DEFINE_boolean("overwrite", False, "Replace an existing version directory.")
    flags.mark_flag_as_required("export_dir")


def run():
    from tfminv import cli

    _define_flags()

    cli.run(main)


if __name__ == "__main__":
    run()
