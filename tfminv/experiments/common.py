"""Flags and helpers shared by the experiment binaries (the only module below them that reads
absl flags).

Importing this module defines the common absl flags (data/cache/output folders, training
budget, precision, strategy, target, selection). `config(Cls, **own)` turns them into a
`tfminv.scenarios` config; `publish(result, command)` writes a ScenarioResult to --out_dir and
prints it; `main(fn)` runs a binary and turns TfminvError into a one-line message (exit 2).
`prepare`, `train_config` and `paths_cache` are flag-reading shortcuts over
`tfminv.scenarios.base` for binaries without a scenario config (the audit).
"""

from __future__ import annotations

import sys

from absl import flags

from tfminv.errors import ConfigError

FLAGS = flags.FLAGS

flags.DEFINE_string("data_dir", None, "raw datasets folder (default $TFMINV_DATA_DIR)")
flags.DEFINE_string("records_dir", None, "built TFRecords folder (default $TFMINV_RECORDS_DIR)")
flags.DEFINE_string("cache_dir", None, "trained targets, predictions, checkpoints "
                    "(default $TFMINV_CACHE_DIR)")
flags.DEFINE_string("out_dir", None, "where results.json, results.md and figures go "
                    "(default runs/<experiment>_<dataset>)")
flags.DEFINE_integer("epochs", 100, "inverter training epochs (authors: 100)")
flags.DEFINE_integer("clf_epochs", 0, "target/evaluation classifier epochs (0: same as --epochs)")
flags.DEFINE_float("width", 1.0, "channel width multiplier of classifier and inverter "
                   "(authors: 1.0; CPU runs: 0.25-0.5)")
flags.DEFINE_integer("batch_size", 128, "global training batch size, split across replicas; the "
                     "learning rate is not scaled (authors: 128)")
flags.DEFINE_integer("max_aux", 0, "use at most this many auxiliary images (0: all)")
flags.DEFINE_integer("max_victims", 0, "evaluate on at most this many victims (0: all)")
flags.DEFINE_integer("max_train", 0, "train the target on at most this many images (0: all)")
flags.DEFINE_integer("seed", 1, "random seed (authors: 1)")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                  "dtype policy; auto = mixed_float16 on GPU, the measured CPU default on CPU")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi-worker"],
                  "tf.distribute strategy for training (multi-worker reads TF_CONFIG; see "
                  "docs/distributed.md)")
flags.DEFINE_float("cluster_timeout", 300.0, "multi-worker: seconds to wait for every worker "
                   "of TF_CONFIG to join before giving up")
flags.DEFINE_integer("concurrency", 1, "remote --target: requests in flight at once")
flags.DEFINE_float("rate_limit", 0.0, "remote --target: at most this many requests per second "
                   "(0: no limit)")
flags.DEFINE_string("target", "", "oracle spec of the target (keras:PATH.keras, savedmodel:DIR, "
                    "rest:URL, grpc:HOST:PORT/NAME, http-json:URL#SCHEMA.json); empty: train or "
                    "reuse the allocation's own classifier")
flags.DEFINE_string("aux", "", "auxiliary set name of the allocation (empty: its default)")
flags.DEFINE_enum("select_on", "aux_val", ["aux_val", "target_train"],
                  "inverter model selection: held-out auxiliary data (honest default) or the "
                  "target's training data (the authors' choice)")
flags.DEFINE_float("aux_val_fraction", 0.1, "share of the auxiliary set held out for selection")
flags.DEFINE_bool("stream_aux", False, "read the auxiliary set from its records on demand "
                  "(queries, inverter training, mean-aux baseline) instead of loading it: for "
                  "sets larger than memory (truncation, auxiliary, class_inference)")
flags.DEFINE_enum("aux_augment", "", ["", "flip"], "attacker-side augmentation of the "
                  "auxiliary set: 'flip' adds the mirror image of every training image, queried "
                  "like the rest (1.9x the queries; truncation, auxiliary, class_inference, "
                  "audit)")
flags.DEFINE_integer("verbose", 1, "Keras fit verbosity (1: progress bar, 2: one line/epoch)")
flags.DEFINE_float("eval_width", 0.0, "width of the independent evaluation classifier "
                   "(0: half of --width)")
flags.DEFINE_integer("eval_epochs", 0, "evaluation classifier epochs (0: as --clf_epochs)")
flags.DEFINE_enum("eval_augment", "", ["", "flip", "flip+shift"],
                  "training-time augmentation of the evaluation classifier")
flags.DEFINE_enum("clf_monitor", "val_loss", ["val_loss", "val_accuracy"],
                  "model selection of target and evaluation classifiers on their held-out 10%")
flags.DEFINE_enum("clf_init", "keras", ["keras", "torch"],
                  "kernel init of target and evaluation classifiers: Keras' glorot_uniform or "
                  "PyTorch's default (trains the 471-class face classifier faster)")
flags.DEFINE_boolean("deterministic", False, "bit-for-bit reproducible runs on one machine: "
                     "deterministic TensorFlow ops and everything seeded with --seed (slower; see "
                     "tfminv.determinism)")


def parse_ints(value, flag: str = "--k") -> list[int]:
    """'1,3,5' -> [1, 3, 5]; names the flag when a value is not a positive integer."""
    out = []
    for part in str(value).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = int(part)
        except ValueError:
            raise ConfigError(f"{flag}={value!r}: expected comma-separated integers") from None
        if v < 1:
            raise ConfigError(f"{flag}={value!r}: values must be >= 1")
        out.append(v)
    if not out:
        raise ConfigError(f"{flag}={value!r}: expected at least one integer")
    return out


def config(cls=None, **own):
    """A scenario config (`tfminv.scenarios.base.ScenarioConfig` or a subclass) from the common
    flags plus the binary's own settings `own`."""
    import dataclasses

    from tfminv.scenarios.base import ScenarioConfig

    cls = cls or ScenarioConfig
    shared = {f.name: FLAGS[f.name].value for f in dataclasses.fields(ScenarioConfig)
              if f.name in FLAGS and f.name not in own}
    return cls(**shared, **own)


def dataset_flag(default: str = "facescrub", what: str = "allocation to attack"):
    """Define --dataset: any allocation name of tfminv.data.allocations or a JSON file."""
    flags.DEFINE_string("dataset", default, f"{what}: an allocation name (built-in: facescrub, "
                        "mnist, ...) or a JSON allocation file")


def publish(result, command: str) -> int:
    """A binary's last step: write `result` (a ScenarioResult) to --out_dir (default
    runs/<result.name>) with `command` in run.json, print the table and the files written."""
    from tfminv.reporting.results import markdown_table

    out = out_dir(result.name)
    result.write(out, command=command)
    print(markdown_table(result.rows, result.columns))
    print(f"wrote {out}/" + ", ".join(["results.json", "results.md",
                                       *(f.filename for f in result.figures)]))
    return 0


# Flag-reading shortcuts over tfminv.scenarios.base, for binaries that build no scenario config.

def train_config(epochs: int | None = None):
    """TrainConfig from the flags."""
    return config().train_config(epochs)


def prepare(dataset: str, aux_name: str | None = None):
    """`tfminv.scenarios.base.prepare` with the common flags and --dataset=`dataset`."""
    from tfminv.scenarios.base import prepare as _prepare

    return _prepare(config(dataset=dataset), aux_name)


def out_dir(default_name: str):
    from pathlib import Path

    from tfminv import distribute

    # multi-worker: the chief writes the results, other workers a temporary folder
    return distribute.write_dir(Path(FLAGS.out_dir) if FLAGS.out_dir
                                else Path("runs") / default_name)


def main(fn):
    """Run `fn(argv)` under absl; a TfminvError prints one line and exits with code 2."""
    from tfminv import cli

    cli.run(fn, before=_before)


def _before():
    if FLAGS.deterministic:  # before any TensorFlow op runs
        from tfminv import determinism

        determinism.enable(FLAGS.seed)
    _warn_cpu_budget()


def _warn_cpu_budget():
    """The authors' settings are GPU-sized: say so up front instead of silently running for a day."""
    if FLAGS.width < 1.0 or FLAGS.epochs < 50:
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        print("note: no GPU found; the authors' settings (--width=1.0, --epochs>=50) take many "
              "hours on a CPU. For a CPU budget add e.g. --width=0.25 --epochs=10 --clf_epochs=20",
              file=sys.stderr)


def paths_cache():
    """The cache folder from --cache_dir / $TFMINV_CACHE_DIR."""
    from tfminv import paths

    return paths.cache_dir(FLAGS.cache_dir)


def command_line(binary: str) -> str:
    """`python -m BINARY` plus the flags (of this module and the binary) set away from default."""
    import sys as _sys

    parts, seen = [], set()
    for module in (__name__, binary, "__main__"):
        for flag in FLAGS.get_flags_for_module(_sys.modules.get(module, module)):
            if flag.name not in seen and (flag.present or flag.value != flag.default):
                seen.add(flag.name)
                parts.append(flag.serialize())
    return " ".join(["python -m", binary, *parts])


def command(module: str, argv=None) -> str:
    """The command line as given (sys.argv), for run.json and REPRODUCTION.md.

    absl strips the flags from the argv it hands to the binary's main, hence sys.argv."""
    import shlex

    args = sys.argv[1:] if sys.argv and "tfminv" in " ".join(sys.argv[:1]) else list(argv[1:])
    return f"python -m tfminv.experiments.{module} " + " ".join(shlex.quote(a) for a in args)
