"""What every experiment binary shares (the only module below them that reads absl flags).

A binary is the same few lines for every scenario:

    common.define_flags(TruncationConfig)           # its flags, generated from the fields

    def run(argv):
        config = common.config(TruncationConfig)     # flags -> config
        return common.publish(run_truncation(config), "tfminv.experiments.truncation")

    def main():
        common.main(run, TruncationConfig)

`define_flags(Cls)` defines one absl flag per field of the config dataclass (name, default,
help and choices from its `tfminv.settings.setting`) plus the binary-only `RunOptions`, so a
flag cannot drift from the library's setting. `config(Cls)` reads them back into a config.
`main(run, Cls)` builds the config (every pure check of the flags, then its `preflight`:
those that need the allocation's description) and checks the output folder
BEFORE TensorFlow is imported or any data is read, then runs `run` under `tfminv.cli.run`
(user errors: one line, exit 2; Ctrl-C: one line saying how to resume, exit 130).
`publish(result, binary)` writes the result to --out_dir with `command_line(binary)` in
run.json and prints its table.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from absl import flags

from tfminv.errors import ConfigError
from tfminv.scenarios.base import ScenarioConfig  # noqa: F401 - public here (no TensorFlow)
from tfminv.settings import is_list, setting, settings_of

FLAGS = flags.FLAGS

#: files a binary writes into --out_dir under these names (checked before any work)
OUTPUT_FILES = ("results.json", "results.md", "run.json", "report.html", "report.md",
                "reconstructions.png", "leakage_utility.png")


@dataclasses.dataclass
class RunOptions:
    """Settings of a binary run that no scenario reads (flags generated like a config's)."""

    out_dir: str | None = setting(None, "where results.json, results.md and figures go "
                                  "(default runs/<experiment>_<dataset>)")
    cluster_timeout: float = setting(300.0, "multi-worker: seconds to wait for every worker of "
                                     "TF_CONFIG to join before giving up")
    deterministic: bool = setting(False, "bit-for-bit reproducible runs on one machine: "
                                  "deterministic TensorFlow ops and everything seeded with "
                                  "--seed (slower; see tfminv.determinism)")


_DEFINED: list[str] = []  # flag names define_flags created, in order (for command_line)


class _ItemListParser(flags.ListParser):
    """A comma-separated list whose items are converted (int or float); a bad item is a flag
    error naming the flag (absl: 'flag --k=a,2: expected comma-separated integers')."""

    def __init__(self, kind, what):
        super().__init__()
        self._kind, self._what = kind, what

    def parse(self, argument):
        items = super().parse(argument)
        try:
            return [self._kind(v) for v in items if str(v).strip() != ""]
        except (TypeError, ValueError):
            raise ValueError(f"expected comma-separated {self._what}") from None

    def flag_type(self):
        return f"comma separated list of {self._what}"


_LISTS = {"int_list": (int, "integers"), "float_list": (float, "numbers")}


def _define(field: dataclasses.Field, s, module_name: str) -> None:
    name, default, kw = field.name, field.default, dict(module_name=module_name)
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    if is_list(field, s):
        value = None if default is None else list(default)
        if s.flag_type in _LISTS:
            flags.DEFINE(_ItemListParser(*_LISTS[s.flag_type]), name, value, s.help,
                         serializer=flags.CsvListSerializer(","), **kw)
        else:
            flags.DEFINE_list(name, None if value is None else [str(v) for v in value], s.help,
                              **kw)
    elif s.choices is not None:
        flags.DEFINE_enum(name, default, [str(c) for c in s.choices], s.help, **kw)
    elif isinstance(default, bool) or kind.startswith("bool"):
        flags.DEFINE_boolean(name, default, s.help, **kw)
    elif isinstance(default, int) or kind.startswith("int"):
        flags.DEFINE_integer(name, default, s.help, **kw)
    elif isinstance(default, float) or kind.startswith("float"):
        flags.DEFINE_float(name, default, s.help, **kw)
    else:
        flags.DEFINE_string(name, default, s.help, **kw)


def define_flags(cls, module_name: str | None = None, key=None):
    """Define an absl flag for every field of config dataclass `cls` declared with `setting`
    (and `flag=True`), and for `RunOptions`; returns `cls`. The flags belong to the calling
    module (so its --help lists them). key: when given, only these flag names belong to it;
    the others belong to this module, so --help stays focused and --helpfull lists them all."""
    if module_name is None:  # absl names a module run as __main__ by sys.argv[0]
        module_name = sys._getframe(1).f_globals.get("__name__", "__main__")
        if module_name == "__main__":
            module_name = sys.argv[0]
    for klass in (cls, RunOptions):
        for name, (field, s) in settings_of(klass).items():
            if not s.flag:
                continue
            if name in FLAGS:  # a second binary in one process: only the same definition
                if FLAGS[name].default != _flag_default(field.default) or \
                        not FLAGS[name].help.endswith(s.help):
                    raise flags.DuplicateFlagError(f"--{name} is already defined differently "
                                                   f"(by another binary in this process)")
                continue
            _define(field, s, module_name if key is None or name in key else __name__)
            _DEFINED.append(name)
    return cls


def _flag_default(value):
    return list(value) if isinstance(value, tuple) else value


def config(cls=None):
    """Config dataclass `cls` (default ScenarioConfig) from the parsed flags: every field with a
    flag takes the flag's value (lists as tuples), the others their default."""
    cls = cls or ScenarioConfig
    values = {}
    for name, (field, s) in settings_of(cls).items():
        if name in FLAGS:
            v = FLAGS[name].value
            values[name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)


def publish(result, binary: str) -> int:
    """A binary's last step: write `result` (a ScenarioResult or AuditResult) to --out_dir
    (default runs/<result.name>) with `command_line(binary)` in run.json; print its table and
    the files written."""
    from tfminv.reporting.results import markdown_table

    out = out_dir(result.name)
    written = result.write(out, command=command_line(binary))
    print(markdown_table(result.rows, result.columns))
    print(f"wrote {out}/" + ", ".join(Path(p).name for p in written))
    return 0


def out_dir(default_name: str) -> Path:
    """--out_dir, else runs/<default_name>; in a multi-worker run only the chief's is real."""
    from tfminv import distribute

    return distribute.write_dir(Path(FLAGS.out_dir) if FLAGS.out_dir
                                else Path("runs") / default_name)


def check_out_dir(path) -> None:
    """Refuse, before any work, an output folder the results could not be written to: a file
    where the folder (or one of its parents) should be, a folder where results.json (or another
    output file) should be, or a parent folder this user cannot write."""
    p = Path(path)
    what = f"--out_dir={path}"
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what}: is a file; expected a folder for the results")
    if p.is_dir():
        for name in OUTPUT_FILES:
            if (p / name).is_dir():
                raise ConfigError(f"{what}: {p / name} is a folder; the binary writes a file "
                                  "there (move it away or choose another --out_dir)")
        why = _cannot_write_in(p)
        if why:
            raise ConfigError(f"{what}: folder is not writable (creating a file there "
                              f"fails: {why})")
        return
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{what}: {parent} is a file; expected a folder")
    why = _cannot_write_in(parent) if parent.exists() else None
    if why:
        raise ConfigError(f"{what}: cannot create it in {parent} (creating a file there "
                          f"fails: {why})")


def _cannot_write_in(folder: Path) -> str | None:
    """Why a file cannot be created in `folder` (None: it can), found by creating and removing
    an empty one: permission bits (os.access) say yes to root everywhere, also on /proc or a
    read-only mount, where the run would fail only when it writes its results."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".tfminv-write-check-")
    except OSError as e:
        return e.strerror or type(e).__name__
    os.close(fd)
    os.unlink(name)
    return None


def main(fn, cls=None):
    """Run binary `fn(argv)` under `tfminv.cli.run`. First (after the flags are parsed, before
    TensorFlow is imported): `config(cls)` -- every pure check of the flags -- and the output
    folder; a TfminvError prints one line and exits 2."""
    from tfminv import cli

    def early():
        config(cls).preflight()
        check_out_dir(FLAGS.out_dir or "runs/_")

    cli.run(fn, early=early, before=_before, interrupted=cli.RESUME_HINT)


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
              f"hours on a CPU. For a CPU budget add e.g. {cpu_budget_flags()}", file=sys.stderr)


def cpu_budget_flags() -> str:
    """The quick-CPU-run flags that apply to this command: --clf_epochs only where a classifier
    is trained (not when the user brings target and data: --victims)."""
    own = "victims" in FLAGS and bool(FLAGS.victims)
    return "--width=0.25 --epochs=10" + ("" if own else " --clf_epochs=20")


def command_line(binary: str) -> str:
    """The one command-line recorder of every binary (run.json, REPRODUCTION.md):
    `python -m BINARY` plus each generated flag that was given or differs from its default,
    shell-quoted, in definition order."""
    import shlex

    parts = []
    for name in _DEFINED:
        flag = FLAGS[name]
        if flag.present or flag.value != flag.default:
            parts.append(shlex.quote(flag.serialize()))
    return " ".join(["python -m", binary, *parts])
