"""One definition per setting: a config dataclass field carries its default, help and choices.

    @dataclasses.dataclass
    class TruncationConfig(ScenarioConfig):
        k: tuple = setting((10,), "size of the released top-k prediction: one value or a list",
                           flag_type="int_list")

The binaries' absl flags are generated from these fields (`tfminv.experiments.common`), so a
flag's default and help cannot drift from the library's. Pure Python: no TensorFlow, no absl.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

#: metadata key under which a field's `Setting` is stored
KEY = "tfminv.setting"


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a field tells the command line about itself.

    help: the one-line help (also the flag's help). choices: allowed values (a flag enum; the
    config's own validation still decides). flag_type: how the command line spells it when the
    Python type alone does not say: 'int_list' / 'str_list' (comma-separated), 'enum', or None
    (inferred from the default). flag: False for a library-only setting with no flag.
    """

    help: str
    choices: tuple | None = None
    flag_type: str | None = None
    flag: bool = True


def setting(default: Any, help: str, *, choices: Sequence | None = None,
            flag_type: str | None = None, flag: bool = True):
    """A dataclass field with its default and its command-line description (see module doc).

    Mutable defaults (lists, dicts) are refused: use a tuple."""
    if isinstance(default, (list, dict, set)):
        raise TypeError(f"setting default {default!r}: use an immutable value (a tuple)")
    meta = Setting(help=help, choices=tuple(choices) if choices is not None else None,
                   flag_type=flag_type, flag=flag)
    return dataclasses.field(default=default, metadata={KEY: meta})


def described(field: dataclasses.Field) -> Setting | None:
    """The `Setting` of a dataclass field, or None for a field declared without `setting`."""
    return field.metadata.get(KEY)


def settings_of(cls) -> dict[str, tuple[dataclasses.Field, Setting]]:
    """name -> (field, Setting) for every field of dataclass `cls` declared with `setting`."""
    out = {}
    for f in dataclasses.fields(cls):
        s = described(f)
        if s is not None:
            out[f.name] = (f, s)
    return out
