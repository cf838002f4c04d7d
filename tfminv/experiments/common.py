"""Flags and helpers shared by the experiment binaries.

Importing this module defines the common absl flags (data/cache/output folders, training
budget, precision, strategy, target). `prepare(dataset)` materialises an allocation within the
budget flags, gets the target oracle (the allocation's own cached classifier, or `--target`)
and the independent evaluation classifier, and queries the target (cached) for the auxiliary
and victim predictions. `main(fn)` runs a binary and turns TfminvError into a one-line message.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
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
flags.DEFINE_integer("batch_size", 128, "training batch size (authors: 128)")
flags.DEFINE_integer("max_aux", 0, "use at most this many auxiliary images (0: all)")
flags.DEFINE_integer("max_victims", 0, "evaluate on at most this many victims (0: all)")
flags.DEFINE_integer("max_train", 0, "train the target on at most this many images (0: all)")
flags.DEFINE_integer("seed", 1, "random seed (authors: 1)")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                  "dtype policy; auto = mixed_float16 on GPU, the measured CPU default on CPU")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi-worker"],
                  "tf.distribute strategy for training")
flags.DEFINE_string("target", "", "oracle spec of the target (keras:PATH.keras, savedmodel:DIR, "
                    "rest:URL, grpc:HOST:PORT/NAME, http-json:URL#SCHEMA.json); empty: train or "
                    "reuse the allocation's own classifier")
flags.DEFINE_string("aux", "", "auxiliary set name of the allocation (empty: its default)")
flags.DEFINE_enum("select_on", "aux_val", ["aux_val", "target_train"],
                  "inverter model selection: held-out auxiliary data (honest default) or the "
                  "target's training data (the authors' choice)")
flags.DEFINE_float("aux_val_fraction", 0.1, "share of the auxiliary set held out for selection")
flags.DEFINE_integer("verbose", 1, "Keras fit verbosity (1: progress bar, 2: one line/epoch)")


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


def train_config(epochs: int | None = None):
    """TrainConfig from the flags."""
    from tfminv.training import TrainConfig

    return TrainConfig(epochs=FLAGS.epochs if epochs is None else epochs,
                       batch_size=FLAGS.batch_size, seed=FLAGS.seed, precision=FLAGS.precision,
                       strategy=FLAGS.strategy, verbose=FLAGS.verbose)


def limited(ref, n):
    """`ref` capped at n images (0 or None: unchanged); budget flags use it."""
    if n and n > 0:
        return dataclasses.replace(ref, limit=int(n) if ref.limit is None else min(ref.limit, n))
    return ref


@dataclasses.dataclass
class Setup:
    """Everything an attack experiment needs, the target reachable only through `oracle`."""

    allocation: object
    aux_name: str
    train_set: object          # the target's training data (for the oracle floor baseline)
    aux_set: object
    victims: object
    oracle: object
    target_info: dict
    eval_model: object
    eval_info: dict
    aux_preds: np.ndarray
    victim_preds: np.ndarray
    seconds: dict


def prepare(dataset: str, aux_name: str | None = None) -> Setup:
    """Materialise the allocation (within the budget flags), get target and evaluation
    classifiers (cached), and the target's predictions on aux and victims (cached)."""
    from tfminv.attacks.predictions import query_cached
    from tfminv.data import allocations
    from tfminv.training import targets

    t0 = time.perf_counter()
    seconds = {}
    alloc = allocations.get(dataset)
    alloc = dataclasses.replace(alloc, target_train=limited(alloc.target_train, FLAGS.max_train),
                                victims=limited(alloc.victims, FLAGS.max_victims))
    aux_name = aux_name or FLAGS.aux or alloc.default_aux
    if aux_name not in alloc.aux:
        raise ConfigError(f"--aux={aux_name!r}: allocation {alloc.name!r} has auxiliary sets "
                          f"{sorted(alloc.aux)}")
    kw = dict(data_dir=FLAGS.data_dir, records_dir=FLAGS.records_dir)
    train_set = allocations.materialize(alloc.target_train, **kw)
    test_set = allocations.materialize(alloc.target_test, **kw)
    victims = allocations.materialize(alloc.victims, **kw)
    aux_set = allocations.materialize(limited(alloc.aux[aux_name], FLAGS.max_aux), **kw)
    seconds["data"] = time.perf_counter() - t0

    clf_cfg = train_config(FLAGS.clf_epochs or FLAGS.epochs)
    t = time.perf_counter()
    if FLAGS.target:
        from tfminv.oracles import from_spec

        oracle = from_spec(FLAGS.target)
        target_info = {"identity": oracle.identity(), "spec": FLAGS.target}
    else:
        model, target_info = targets.get_or_train_classifier(
            alloc, role="target", width=FLAGS.width, config=clf_cfg, cache_dir=FLAGS.cache_dir,
            train_set=train_set, test_set=test_set)
        oracle = targets.target_oracle(model, target_info)
    seconds["target"] = time.perf_counter() - t
    t = time.perf_counter()
    eval_model, eval_info = targets.get_or_train_classifier(
        alloc, role="eval", width=FLAGS.width, config=clf_cfg, cache_dir=FLAGS.cache_dir,
        train_set=train_set, test_set=test_set)
    seconds["eval_classifier"] = time.perf_counter() - t
    t = time.perf_counter()
    aux_preds = query_cached(oracle, aux_set, FLAGS.cache_dir)
    victim_preds = query_cached(oracle, victims, FLAGS.cache_dir)
    seconds["queries"] = time.perf_counter() - t
    return Setup(alloc, aux_name, train_set, aux_set, victims, oracle, target_info, eval_model,
                 eval_info, aux_preds, victim_preds, seconds)


def selection_data(setup: Setup):
    """(train_preds, train_images, val, label) for inverter training per --select_on.

    aux_val: a seeded --aux_val_fraction of the auxiliary set is held out. target_train: the
    target is queried on (up to 2,000 of) its own training images - the authors' choice, which
    a real attacker cannot make; results are labelled with it.
    """
    from tfminv.attacks.predictions import query_cached

    n = len(setup.aux_set)
    order = np.random.default_rng(FLAGS.seed).permutation(n)
    if FLAGS.select_on == "aux_val":
        n_val = max(1, int(round(n * FLAGS.aux_val_fraction)))
        val_idx, tr_idx = order[:n_val], order[n_val:]
        val = (setup.aux_preds[val_idx], setup.aux_set.images[val_idx])
        return setup.aux_preds[tr_idx], setup.aux_set.images[tr_idx], val, "aux_val"
    tt = setup.train_set.images[:2000]
    val = (query_cached(setup.oracle, tt, FLAGS.cache_dir), tt)
    return setup.aux_preds, setup.aux_set.images, val, "target_train (authors)"


def figure_victims(labels, n: int) -> np.ndarray:
    """Indices of up to n victims covering as many classes as possible (first of each class)."""
    labels = np.asarray(labels)
    picked = []
    for c in np.unique(labels):
        picked.append(int(np.flatnonzero(labels == c)[0]))
    rest = [i for i in range(len(labels)) if i not in set(picked)]
    return np.array((picked + rest)[:n], dtype=int)


def out_dir(default_name: str):
    from pathlib import Path

    return Path(FLAGS.out_dir) if FLAGS.out_dir else Path("runs") / default_name


def main(fn):
    """Run `fn(argv)` under absl; a TfminvError prints one line and exits with code 2."""
    from tfminv import cli

    cli.run(fn, before=_warn_cpu_budget)


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


def inverter_workdir(setup: Setup):
    """Cache folder of the inverters trained against this setup's target (one per target)."""
    import re

    ident = re.sub(r"[^A-Za-z0-9_.-]+", "_", setup.target_info["identity"])[:100]
    return paths_cache() / "inverters" / ident
