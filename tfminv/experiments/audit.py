"""Leakage audit of a classifier under release policies, with an attacker aligned to each policy.

    python -m tfminv.experiments.audit           # bundled FaceScrub-12 target, CelebA auxiliary set
    python -m tfminv.experiments.audit --target=savedmodel:/path/to/model --aux=celeba \\
        --policies="identity;topk:3;topk:1;round:1;label;gaussian:0.1" --out_dir=my_audit
    python -m tfminv.experiments.audit --target=keras:my_model.keras --aux=folder:public_faces/ \\
        --victims=npz:private.npz --policies='identity;topk:1' --out_dir=out/

With --victims (or a user data spec as --aux) the audit runs on the user's own data:
--aux and --victims take folder:DIR, npz:FILE, tfds:NAME:SPLIT or records:DIR[:SPLIT]
(tfminv.data.specs), --target is required, and attack accuracy is judged by --eval_model, or,
with victim labels and no --eval_model, by the target itself (labelled as biased upward).

For each policy: reconstruction MSE/PSNR/SSIM, attack accuracy (independent evaluation
classifier) and utility (top-1 accuracy of the released vector on the victims). Writes
results.json, results.md, run.json, leakage_utility.png, reconstructions.png, report.html
(self-contained) and report.md to --out_dir. Victims and the evaluation classifier come from
--dataset's allocation; a user's --target must use that allocation's class order. Budget
flags (--width, --epochs, --clf_epochs, --max_aux, --max_victims) are shared with the other
experiments.
"""

from __future__ import annotations

import shlex
import sys
import time

from absl import flags

from tfminv.experiments import common

common.dataset_flag(what="allocation to audit (victims, evaluation classifier, bundled target "
                    "and auxiliary sets)")
flags.DEFINE_string("policies", None, "release policies separated by ';', each composable with "
                    "'|', e.g. 'identity;topk:3;topk:3|round:2;label' (default: identity, top-3, "
                    "top-1, round to 1 decimal, label only, Gaussian 0.1, reverse sigmoid 1,0.1, "
                    "temperature 4)")
flags.DEFINE_integer("figure_n", 12, "victims shown in the reconstruction grid")
flags.DEFINE_integer("audit_seed", 0, "seed of the auxiliary train/validation split and of the "
                     "policies' noise draws (training seeds come from --seed)")
flags.DEFINE_string("title", None, "report title")
flags.DEFINE_string("victims", None, "the user's victims: folder:DIR, npz:FILE, tfds:NAME:SPLIT "
                    "or records:DIR[:SPLIT] (labels from class sub-folders / 'labels'); with it "
                    "--aux must be such a spec too and --target is required")
flags.DEFINE_string("eval_model", None, "judge of attack accuracy on user data (any --target "
                    "form); default: the target itself, labelled as biased upward")
flags.DEFINE_string("input_range", "0,1", "the target's expected input scale 'lo,hi' (user data): "
                    "0,1 or 0,255")
flags.DEFINE_enum("outputs", "auto", ["auto", "probabilities", "logits"], "what the target "
                  "answers (user data); auto: from the model's last layer or the answers")
flags.DEFINE_string("tfds_data_dir", None, "prepared TFDS data dir for tfds: specs (default "
                    "$TFDS_DATA_DIR); never downloads")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
flags.register_validator("aux_val_fraction", lambda v: 0.0 < v < 1.0,
                         message="--aux_val_fraction must be in (0, 1)")
FLAGS = flags.FLAGS


def _command() -> str:
    """The command line as given (flags set explicitly), quoted for a shell."""
    given = [f"--{f.name}={f.value}" for module in (sys.modules[__name__], common)
             for f in FLAGS.get_flags_for_module(module) if f.present]
    return " ".join(["python -m tfminv.experiments.audit", *map(shlex.quote, given)])


def run_user(policies):
    """--aux / --victims name the user's own images: flags -> one run_audit call -> report."""
    import tfminv
    from tfminv import audit
    from tfminv.data import specs
    from tfminv.errors import ConfigError

    if not FLAGS.target or not FLAGS.victims or not specs.is_spec(FLAGS.aux):
        raise ConfigError("--victims, --aux and --target go together for an audit of your own "
                          "data: e.g. --target=keras:model.keras --aux=folder:DIR "
                          "--victims=npz:FILE")
    aux = specs.load(FLAGS.aux, what="--aux", tfds_data_dir=FLAGS.tfds_data_dir)
    victims = specs.load(FLAGS.victims, what="--victims", tfds_data_dir=FLAGS.tfds_data_dir)
    cut = lambda a, n: a if a is None or not n else a[:n]  # noqa: E731 - budget flags
    result = tfminv.run_audit(
        audit.target_spec(FLAGS.target), cut(aux.images, FLAGS.max_aux),
        cut(victims.images, FLAGS.max_victims), cut(victims.labels, FLAGS.max_victims),
        policies=policies, width=FLAGS.width, eval_model=FLAGS.eval_model or None,
        outputs=FLAGS.outputs, input_range=FLAGS.input_range, cache_dir=FLAGS.cache_dir,
        val_fraction=FLAGS.aux_val_fraction, seed=FLAGS.audit_seed,
        config=common.train_config(), aux_augment=FLAGS.aux_augment, progress=print)
    out = common.out_dir("audit_user")
    files = result.write_report(
        out, title=FLAGS.title or "Leakage audit", grid_count=FLAGS.figure_n,
        command=_command(),
        extra={"aux_set": FLAGS.aux, "victims_set": FLAGS.victims})
    print(result.table())
    print(f"wrote {', '.join(str(p) for p in files.values())}")
    return 0


def run(argv):
    from tfminv import audit
    from tfminv.data import allocations, specs
    from tfminv.errors import ConfigError
    from tfminv.policies import parse_list

    t0 = time.perf_counter()
    policies = parse_list(FLAGS.policies or audit.DEFAULT_POLICIES)  # fail fast on a bad spec
    if FLAGS.select_on != "aux_val":
        raise ConfigError("--select_on: the audit selects inverters on held-out auxiliary data "
                          "only (aux_val); a real attacker has no access to the target's data")
    if FLAGS.stream_aux:
        raise ConfigError("--stream_aux: the audit releases the auxiliary set through each "
                          "policy in memory; run it without --stream_aux")
    if FLAGS.victims or specs.is_spec(FLAGS.aux):
        return run_user(policies)
    alloc = allocations.get(FLAGS.dataset)
    aux_name = audit.aux_name(alloc, FLAGS.aux or alloc.default_aux)
    FLAGS.target = audit.target_spec(FLAGS.target)
    s = common.prepare(FLAGS.dataset, aux_name)
    ident = s.target_info["identity"].replace(":", "_").replace("/", "_")
    result = audit.run_audit(
        s.oracle, s.aux_set, s.victims, policies, config=common.train_config(),
        width=FLAGS.width, eval_model=s.eval_model, train_set=s.train_set,
        cache_dir=FLAGS.cache_dir, workdir=common.paths_cache() / "audit_inverters" / ident,
        val_fraction=FLAGS.aux_val_fraction, seed=FLAGS.audit_seed,
        aux_augment=FLAGS.aux_augment, progress=print)
    target = (FLAGS.target or f"bundled {alloc.name} classifier (width {s.target_info['width']}, "
              f"{s.target_info['epochs']} epochs, test accuracy "
              f"{s.target_info['test_accuracy']:.3f})")
    extra = {"dataset": alloc.name, "aux_set": f"{aux_name} ({s.aux_set.name})", "target": target,
             "eval_classifier": {k: s.eval_info.get(k) for k in ("width", "epochs", "test_accuracy")},
             "oracle_queries": s.oracle.num_queries,
             "prepare_seconds": {k: round(v, 1) for k, v in s.seconds.items()},
             "total_seconds": round(time.perf_counter() - t0, 1)}
    out = common.out_dir(f"audit_{alloc.name}")
    files = audit.write_report(
        result, out, title=FLAGS.title or f"Leakage audit: {alloc.name} target, "
                                          f"{s.aux_set.name.split('/')[0]} auxiliary set",
        command=_command(),
        extra=extra, grid_count=FLAGS.figure_n)
    print(f"wrote {', '.join(str(p) for p in files.values())}")
    return 0


def main():
    common.main(run)


if __name__ == "__main__":
    sys.exit(main())
