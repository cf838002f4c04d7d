"""One definition per setting: a config dataclass field carries its default, help and choices.

    @dataclasses.dataclass
    class TruncationConfig(ScenarioConfig):
        k: tuple = setting((10,), "size of the released top-k prediction: one value or a list",
                           flag_type="int_list", minimum=1)

The binaries' absl flags are generated from these fields (`tfminv.experiments.common.
define_flags`), so a flag's default, help and choices cannot drift from the library's, and
`check(config)` (called by each config's `__post_init__`) applies the pure checks a field
declares (choices, minimum) before any data is read or TensorFlow imported. Pure Python: no
TensorFlow, no absl.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

#: metadata key under which a field's `Setting` is stored
KEY = "tfminv.setting"

#: flag_type values: how a field is spelt on the command line when its default does not say
FLAG_TYPES = ("int_list", "float_list", "str_list", "enum")


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a field tells the command line about itself.

    help: the one-line help (also the flag's help). choices: allowed values (an enum flag, or
    for a list setting the allowed items). flag_type: how the command line spells it when the
    Python type alone does not say: 'int_list' / 'float_list' / 'str_list' (comma-separated),
    'enum', or None (inferred from the default). flag: False for a library-only setting with no
    flag. minimum: the smallest allowed value (of each item, for a list).
    """

    help: str
    choices: tuple | None = None
    flag_type: str | None = None
    flag: bool = True
    minimum: float | None = None


def setting(default: Any, help: str, *, choices: Sequence | None = None,
            flag_type: str | None = None, flag: bool = True, minimum: float | None = None):
    """A dataclass field with its default and its command-line description (see module doc).

    Mutable defaults (lists, dicts) are refused: use a tuple."""
    if isinstance(default, (list, dict, set)):
        raise TypeError(f"setting default {default!r}: use an immutable value (a tuple)")
    if flag_type is not None and flag_type not in FLAG_TYPES:
        raise TypeError(f"flag_type={flag_type!r}: expected one of {FLAG_TYPES}")
    meta = Setting(help=help, choices=tuple(choices) if choices is not None else None,
                   flag_type=flag_type, flag=flag, minimum=minimum)
    return dataclasses.field(default=default, metadata={KEY: meta})


def described(field: dataclasses.Field) -> Setting | None:
    """The `Setting` of a dataclass field, or None for a field declared without `setting`."""
    return field.metadata.get(KEY)


def settings_of(cls) -> dict[str, tuple[dataclasses.Field, Setting]]:
    """name -> (field, Setting) for every field of dataclass `cls` (or of an instance) declared
    with `setting`."""
    out = {}
    for f in dataclasses.fields(cls):
        s = described(f)
        if s is not None:
            out[f.name] = (f, s)
    return out


def is_list(field: dataclasses.Field, s: Setting) -> bool:
    """Whether the setting is a comma-separated list on the command line."""
    return (s.flag_type or "").endswith("_list") or (
        s.flag_type is None and isinstance(field.default, tuple))


def spelled(value) -> str:
    """A value as the command line spells it (lists comma-separated)."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def check(config, names=None) -> None:
    """The pure checks every field of `config` declares (choices, minimum; a list is never
    empty), in field order; `names`: only those fields.

    A failure raises ConfigError naming the setting (as the command line spells it, which is
    also the field's name) and what was expected."""
    from tfminv.errors import ConfigError

    for name, (field, s) in settings_of(config).items():
        if names is not None and name not in names:
            continue
        value = getattr(config, name)
        items = list(value) if is_list(field, s) and isinstance(value, (tuple, list)) else \
            [value]
        if is_list(field, s) and not items:
            raise ConfigError(f"--{name}=: expected at least one value"
                              + (f" of {list(s.choices)}" if s.choices is not None else ""))
        if s.choices is not None:
            bad = [v for v in items if v not in s.choices]
            if bad:
                what = "a subset of" if is_list(field, s) else "one of"
                shown = spelled(value) if is_list(field, s) else repr(value)
                raise ConfigError(f"--{name}={shown}: expected {what} "
                                  f"{list(s.choices)}")
        if s.minimum is not None:
            for v in items:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"--{name}={spelled(value)!r}: expected "
                                      f"{'numbers' if len(items) > 1 else 'a number'} >= "
                                      f"{s.minimum:g}")
                if not v >= s.minimum:
                    raise ConfigError(f"--{name}={spelled(value)}: expected "
                                      f"{'values' if is_list(field, s) else 'a value'} >= "
                                      f"{s.minimum:g}" + _zero_note(field, s))


def _zero_note(field, s) -> str:
    return " (0: all)" if s.minimum == 0 and "0: all" in s.help else ""
