"""The paper's data allocation (Table 1) as data: which images train/test the target classifier,
which are the victims, and which auxiliary sets the attacker may use.

A `SplitRef` names a slice of a dataset split: optional class filter, then a seeded shuffle, then
the fraction [start, end) of the shuffled rows. Built-in allocations: `facescrub`, `mnist`. Any
other allocation is a JSON file with the same fields (`get("my_alloc.json")`), e.g.

    {"name": "digits", "image_size": 32, "num_classes": 5, "label_names": ["0","1","2","3","4"],
     "target_train": {"dataset": "mnist", "split": "train", "image_size": 32,
                      "classes": [0,1,2,3,4], "fraction": [0, 0.8]},
     "target_test": {...}, "victims": {...}, "aux": {"generic": {...}}, "default_aux": "generic"}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SplitRef:
    """A reproducible slice of one dataset split.

    classes: keep only these labels (in this order for `relabel`); fraction: [start, end) of the
    rows after a shuffle seeded with `seed` (None: keep file order); relabel: map `classes[i]` to i;
    limit: at most this many rows (after slicing).
    """

    dataset: str
    split: str
    image_size: int | None = None
    classes: tuple | None = None
    fraction: tuple = (0.0, 1.0)
    seed: int | None = 666
    relabel: bool = False
    limit: int | None = None

    def __post_init__(self):
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        fr = tuple(float(f) for f in self.fraction)
        if len(fr) != 2 or not 0.0 <= fr[0] <= fr[1] <= 1.0:
            raise ConfigError(f"SplitRef fraction={self.fraction!r}; expected [start, end) with "
                              "0 <= start <= end <= 1")
        object.__setattr__(self, "fraction", fr)
        if self.relabel and not self.classes:
            raise ConfigError("SplitRef relabel=True needs `classes`")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes) if self.classes is not None else None
        d["fraction"] = list(self.fraction)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "SplitRef") -> "SplitRef":
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected an object with dataset/split/..., got {d!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown or "dataset" not in d or "split" not in d:
            raise ConfigError(f"{where}: keys {sorted(d)}; expected dataset, split and optionally "
                              f"{sorted(names - {'dataset', 'split'})}")
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class Allocation:
    """Target classifier data, victims, and named auxiliary sets of one experiment family."""

    name: str
    image_size: int
    num_classes: int
    label_names: tuple
    target_train: SplitRef
    target_test: SplitRef
    victims: SplitRef
    aux: dict
    default_aux: str

    def __post_init__(self):
        object.__setattr__(self, "label_names", tuple(self.label_names))
        if len(self.label_names) != self.num_classes:
            raise ConfigError(f"allocation {self.name!r}: {len(self.label_names)} label_names but "
                              f"num_classes={self.num_classes}")
        if self.default_aux not in self.aux:
            raise ConfigError(f"allocation {self.name!r}: default_aux={self.default_aux!r}; "
                              f"expected one of {sorted(self.aux)}")

    def to_dict(self) -> dict:
        return {"name": self.name, "image_size": self.image_size, "num_classes": self.num_classes,
                "label_names": list(self.label_names),
                "target_train": self.target_train.to_dict(),
                "target_test": self.target_test.to_dict(), "victims": self.victims.to_dict(),
                "aux": {k: v.to_dict() for k, v in self.aux.items()},
                "default_aux": self.default_aux}

    @classmethod
    def from_dict(cls, d: dict, where: str = "allocation") -> "Allocation":
        need = ("name", "image_size", "num_classes", "label_names", "target_train", "target_test",
                "victims", "aux", "default_aux")
        missing = [k for k in need if k not in d]
        if missing:
            raise ConfigError(f"{where}: missing keys {missing}; expected {list(need)}")
        if not isinstance(d["aux"], dict) or not d["aux"]:
            raise ConfigError(f"{where}: aux must be a non-empty object name -> SplitRef")
        return cls(
            name=d["name"], image_size=int(d["image_size"]), num_classes=int(d["num_classes"]),
            label_names=tuple(d["label_names"]),
            target_train=SplitRef.from_dict(d["target_train"], f"{where}: target_train"),
            target_test=SplitRef.from_dict(d["target_test"], f"{where}: target_test"),
            victims=SplitRef.from_dict(d["victims"], f"{where}: victims"),
            aux={k: SplitRef.from_dict(v, f"{where}: aux.{k}") for k, v in d["aux"].items()},
            default_aux=d["default_aux"])


FACESCRUB_NAMES = ("Alec Baldwin", "America Ferrera", "Angie Harmon", "Bill Hader",
                   "Daniel Radcliffe", "Fran Drescher", "Gerard Butler", "Kristin Chenoweth",
                   "Lorraine Bracco", "Michael Vartan", "Peri Gilpin", "Steve Carell")

FACESCRUB = Allocation(
    name="facescrub", image_size=64, num_classes=len(FACESCRUB_NAMES),
    label_names=FACESCRUB_NAMES,
    target_train=SplitRef("facescrub", "all", 64, fraction=(0.0, 0.8)),
    target_test=SplitRef("facescrub", "all", 64, fraction=(0.8, 1.0)),
    victims=SplitRef("facescrub", "all", 64, fraction=(0.9, 1.0)),
    aux={"same": SplitRef("facescrub", "all", 64, fraction=(0.8, 0.9)),
         "generic": SplitRef("celeba", "all", 64),
         "distinct": SplitRef("cifar10", "all", 64)},
    default_aux="generic",
)

_D04 = (0, 1, 2, 3, 4)
MNIST = Allocation(
    name="mnist", image_size=32, num_classes=5, label_names=tuple(str(d) for d in _D04),
    target_train=SplitRef("mnist", "train", 32, classes=_D04, fraction=(0.0, 0.8)),
    target_test=SplitRef("mnist", "test", 32, classes=_D04),
    victims=SplitRef("mnist", "test", 32, classes=_D04),
    aux={"same": SplitRef("mnist", "train", 32, classes=_D04, fraction=(0.8, 1.0)),
         "generic": SplitRef("mnist", "train", 32, classes=(5, 6, 7, 8, 9)),
         "distinct": SplitRef("cifar10", "all", 32)},
    default_aux="generic",
)

BUILTIN = {"facescrub": FACESCRUB, "mnist": MNIST}


def get(name_or_path) -> Allocation:
    """A built-in allocation by name, or one defined by a JSON file (a path ending in .json)."""
    if isinstance(name_or_path, Allocation):
        return name_or_path
    key = str(name_or_path)
    if key in BUILTIN:
        return BUILTIN[key]
    p = Path(key)
    if key.endswith(".json") or p.is_file():
        if not p.is_file():
            raise ConfigError(f"allocation file {p} not found; expected a JSON file or one of "
                              f"{sorted(BUILTIN)}")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"allocation file {p}: invalid JSON ({e})") from e
        return Allocation.from_dict(d, str(p))
    raise ConfigError(f"unknown allocation {key!r}; expected one of {sorted(BUILTIN)} or a path "
                      "to a .json file")


def select(n: int, labels: np.ndarray, ref: SplitRef) -> np.ndarray:
    """Row indices of a split (with these labels) selected by `ref`, in shuffled order."""
    idx = np.arange(n)
    if ref.classes is not None:
        idx = idx[np.isin(labels, ref.classes)]
    if ref.seed is not None:
        idx = idx[np.random.RandomState(ref.seed).permutation(len(idx))]
    a, b = (int(round(f * len(idx))) for f in ref.fraction)
    idx = idx[a:b]
    if ref.limit is not None:
        idx = idx[:ref.limit]
    return idx


def materialize(ref: SplitRef, *, data_dir=None, records_dir=None, normalize: str = "unit"):
    """Load the ImageSet a SplitRef names (building records if needed)."""
    from tfminv.data import build, records, to_imageset

    records._check_normalize(normalize)
    path = build.ensure(ref.dataset, ref.image_size, data_dir=data_dir, records_dir=records_dir)
    images, labels, attributes, meta = records.read_arrays(path, ref.split)
    idx = select(len(labels), labels, ref)  # select on uint8 rows, convert only those to float
    name = (f"{ref.dataset}/{ref.split}"
            + (f"[classes={list(ref.classes)}]" if ref.classes is not None else "")
            + (f"[{ref.fraction[0]:g}:{ref.fraction[1]:g}]" if ref.fraction != (0.0, 1.0) else ""))
    out = to_imageset(images[idx], labels[idx], None if attributes is None else attributes[idx],
                      meta, path, name, normalize)
    if ref.relabel:
        lut = {c: i for i, c in enumerate(ref.classes)}
        out.labels = np.array([lut[int(v)] for v in out.labels], np.int64)
        names = out.label_names
        out.label_names = tuple(names[c] if c < len(names) else str(c) for c in ref.classes)
    return out
