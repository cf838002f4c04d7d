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

    classes: keep only these labels (in this order for `relabel`); min_per_class /
    max_per_class: keep only the labels with at least / at most this many rows in the split
    (counted after the `classes` filter); fraction: [start, end) of the rows after a shuffle
    seeded with `seed` (None: keep file order); stratify: apply `fraction` within each label
    instead (each label's rows shuffled with `seed`; an interior cut is kept inside 1..n-1 so
    every label has rows on both sides), the union then shuffled; relabel: map `classes[i]`
    (or the i-th smallest label kept by the count filter) to i; limit: at most this many rows
    (after slicing).
    """

    dataset: str
    split: str
    image_size: int | None = None
    classes: tuple | None = None
    fraction: tuple = (0.0, 1.0)
    seed: int | None = 666
    relabel: bool = False
    limit: int | None = None
    min_per_class: int | None = None
    max_per_class: int | None = None
    stratify: bool = False

    def __post_init__(self):
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        fr = tuple(float(f) for f in self.fraction)
        if len(fr) != 2 or not 0.0 <= fr[0] <= fr[1] <= 1.0:
            raise ConfigError(f"SplitRef fraction={self.fraction!r}; expected [start, end) with "
                              "0 <= start <= end <= 1")
        object.__setattr__(self, "fraction", fr)
        if self.relabel and not self.classes and self.min_per_class is None \
                and self.max_per_class is None:
            raise ConfigError("SplitRef relabel=True needs `classes` or a per-class count filter")
        if self.stratify and self.seed is None:
            raise ConfigError("SplitRef stratify=True needs a seed")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for f in ("min_per_class", "max_per_class", "stratify"):  # absent when unset: old
            if not d[f]:                                          # cache keys stay valid
                d.pop(f)
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

CELEBA_IDS = "celeba_ids"
CELEBA_IDS_DEFAULT_MIN = 20


def celeba_ids(min_images: int = CELEBA_IDS_DEFAULT_MIN, *, heldout: float = 0.2,
               seed: int = 666, data_dir=None) -> Allocation:
    """The paper-scale face allocation on CelebA's identity-disjoint test split.

    target = the identities with at least `min_images` images in `celeba_identities`
    (20 -> 471 identities, 9,379 training / 2,344 held-out images), relabelled 0..m-1 in
    CelebA-id order; each identity's images are split by a seeded shuffle into target training
    [0, 1 - heldout) and held-out [1 - heldout, 1); target_test = victims = the held-out
    images. Auxiliary sets: generic = CelebA #1-#10000 (train split, no person in common),
    generic_reframed = the same images framed by the face detector like the target's crops,
    same = the test-split people below the cut-off (same kind of photo, other people),
    distinct = CIFAR-10 at 64x64. Counting the identities reads the raw label arrays only.
    """
    from tfminv.data.sources import celeba_identities as src

    if isinstance(min_images, bool) or not isinstance(min_images, (int, np.integer)) \
            or min_images < 2:
        raise ConfigError(f"allocation {CELEBA_IDS}: min_images={min_images!r}; expected an "
                          "integer >= 2 (each identity needs training and held-out images)")
    if not 0.0 < heldout < 1.0:
        raise ConfigError(f"allocation {CELEBA_IDS}: heldout={heldout!r}; expected 0 < heldout < 1")
    ids, counts = src.identity_counts(data_dir)
    keep = np.flatnonzero(counts >= min_images)
    if len(keep) < 2:
        raise ConfigError(f"allocation {CELEBA_IDS}: min_images={min_images} leaves {len(keep)} "
                          f"identities (largest has {int(counts.max()) if len(counts) else 0} "
                          "images); expected a cut-off leaving at least 2")
    name = CELEBA_IDS if min_images == CELEBA_IDS_DEFAULT_MIN else f"{CELEBA_IDS}_min{min_images}"
    ds, split = "celeba_identities", "all"
    cut = 1.0 - heldout
    target = dict(min_per_class=int(min_images), stratify=True, relabel=True, seed=seed)
    held = SplitRef(ds, split, 64, fraction=(cut, 1.0), **target)
    aux = {"generic": SplitRef("celeba", "all", 64),
           "generic_reframed": SplitRef("celeba_reframed", "all", 64),
           "distinct": SplitRef("cifar10", "all", 64)}
    if (counts < min_images).any():
        aux["same"] = SplitRef(ds, split, 64, max_per_class=int(min_images) - 1)
    return Allocation(
        name=name, image_size=64, num_classes=len(keep),
        label_names=tuple(f"celeba_{int(ids[c])}" for c in keep),
        target_train=SplitRef(ds, split, 64, fraction=(0.0, cut), **target),
        target_test=held, victims=held, aux=aux, default_aux="generic")


def names() -> list[str]:
    """Names `get` accepts besides JSON files."""
    return sorted(BUILTIN) + [CELEBA_IDS, f"{CELEBA_IDS}_min<N>"]


def get(name_or_path) -> Allocation:
    """A built-in allocation by name, or one defined by a JSON file (a path ending in .json).

    `celeba_ids` is the paper-scale face allocation with the default cut-off (20 images per
    identity); `celeba_ids_minN` uses the cut-off N (see `celeba_ids`).
    """
    if isinstance(name_or_path, Allocation):
        return name_or_path
    key = str(name_or_path)
    if key in BUILTIN:
        return BUILTIN[key]
    if key == CELEBA_IDS:
        return celeba_ids()
    if key.startswith(CELEBA_IDS + "_min"):
        tail = key[len(CELEBA_IDS) + 4:]
        if not tail.isdigit():
            raise ConfigError(f"allocation {key!r}: expected {CELEBA_IDS}_min<N> with an integer "
                              "N >= 2 (images per identity)")
        return celeba_ids(int(tail))
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
    raise ConfigError(f"unknown allocation {key!r}; expected one of {names()} or a path "
                      "to a .json file")


def kept_classes(labels: np.ndarray, ref: SplitRef) -> np.ndarray | None:
    """The labels `ref` keeps (sorted; `ref.classes` order when given), None: no label filter."""
    labels = np.asarray(labels)
    if ref.min_per_class is None and ref.max_per_class is None:
        return None if ref.classes is None else np.asarray(ref.classes)
    pool = labels if ref.classes is None else labels[np.isin(labels, ref.classes)]
    values, counts = np.unique(pool, return_counts=True)
    ok = np.ones(len(values), bool)
    if ref.min_per_class is not None:
        ok &= counts >= ref.min_per_class
    if ref.max_per_class is not None:
        ok &= counts <= ref.max_per_class
    kept = values[ok]
    if ref.classes is not None:
        kept = np.asarray([c for c in ref.classes if c in set(kept.tolist())])
    return kept


def _cut(f: float, n: int) -> int:
    """Row count before fraction f of n rows; interior cuts keep 1..n-1 rows on each side."""
    c = int(round(f * n))
    return min(max(c, 1), n - 1) if 0.0 < f < 1.0 and n >= 2 else c


def select(n: int, labels: np.ndarray, ref: SplitRef) -> np.ndarray:
    """Row indices of a split (with these labels) selected by `ref`, in shuffled order."""
    idx = np.arange(n)
    labels = np.asarray(labels)
    keep = kept_classes(labels, ref)
    if keep is not None:
        idx = idx[np.isin(labels, keep)]
    if ref.stratify:
        rng = np.random.RandomState(ref.seed)
        parts = []
        for c in np.unique(labels[idx]):
            rows = idx[labels[idx] == c]
            rows = rows[rng.permutation(len(rows))]
            parts.append(rows[_cut(ref.fraction[0], len(rows)):_cut(ref.fraction[1], len(rows))])
        idx = np.concatenate(parts) if parts else idx[:0]
        # one more seeded shuffle so that `limit` takes rows of many labels
        idx = idx[np.random.RandomState(ref.seed + 1).permutation(len(idx))]
    else:
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
            + (f"[{ref.min_per_class or ''}..{ref.max_per_class or ''} per class]"
               if ref.min_per_class is not None or ref.max_per_class is not None else "")
            + (f"[{ref.fraction[0]:g}:{ref.fraction[1]:g}{' per class' if ref.stratify else ''}]"
               if ref.fraction != (0.0, 1.0) else ""))
    out = to_imageset(images[idx], labels[idx], None if attributes is None else attributes[idx],
                      meta, path, name, normalize)
    if ref.relabel:
        classes = [int(c) for c in kept_classes(labels, ref)]
        lut = {c: i for i, c in enumerate(classes)}
        out.labels = np.array([lut[int(v)] for v in out.labels], np.int64)
        names = out.label_names
        out.label_names = tuple(names[c] if c < len(names) else str(c) for c in classes)
    return out
