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

from tfminv.errors import ConfigError, DataError


POOL = "pool"


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
    parts: tuple | None = None
    disjoint_from: "SplitRef | None" = None

    def __post_init__(self):
        if self.parts is not None:
            object.__setattr__(self, "parts", tuple(self.parts))
            if self.dataset != POOL or not self.parts or \
                    not all(isinstance(p, SplitRef) and p.parts is None for p in self.parts):
                raise ConfigError(f"SplitRef parts: expected dataset={POOL!r} and a non-empty "
                                  "list of plain SplitRefs (unions do not nest)")
        elif self.dataset == POOL:
            raise ConfigError(f"SplitRef dataset={POOL!r} needs `parts` (the sets pooled)")
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
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for f in ("min_per_class", "max_per_class", "stratify", "parts",  # absent when unset:
                  "disjoint_from"):                                       # old cache keys stay
            if not d[f]:                                                  # valid
                d.pop(f)
        d["classes"] = list(self.classes) if self.classes is not None else None
        d["fraction"] = list(self.fraction)
        if self.parts:
            d["parts"] = [p.to_dict() for p in self.parts]
        if self.disjoint_from is not None:
            d["disjoint_from"] = self.disjoint_from.to_dict()
        return d

    @property
    def label(self) -> str:
        """How results name this set: the dataset, or 'a + b + c' for a pooled set."""
        return " + ".join(p.dataset for p in self.parts) if self.parts else self.dataset

    @classmethod
    def from_dict(cls, d: dict, where: str = "SplitRef") -> "SplitRef":
        """A SplitRef from its JSON object; ConfigError naming `where` and the key whose value
        has the wrong type (checked here, so nothing fails later with a traceback)."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected an object with dataset/split/..., got {d!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown or "dataset" not in d or "split" not in d:
            raise ConfigError(f"{where}: keys {sorted(d)}; expected dataset, split and optionally "
                              f"{sorted(names - {'dataset', 'split'})}")
        d = dict(d)
        for key, check in _REF_TYPES.items():
            if key in d:
                d[key] = check(d[key], f"{where}.{key}")
        if isinstance(d.get("parts"), (list, tuple)):
            d["parts"] = tuple(p if isinstance(p, SplitRef) else
                               cls.from_dict(p, f"{where}.parts[{i}]")
                               for i, p in enumerate(d["parts"]))
        try:
            return cls(**d)
        except ConfigError as e:  # the value checks of __post_init__, named by file and key
            raise ConfigError(f"{where}: {e}") from None


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
                              f"num_classes={self.num_classes}; expected one name per class")
        if self.default_aux not in self.aux:
            raise ConfigError(f"allocation {self.name!r}: default_aux={self.default_aux!r}; "
                              f"expected one of {sorted(self.aux)}")
        check_classes(self)

    def aux_ref(self, name: str) -> SplitRef:
        """The auxiliary set `name` names: one of `aux`, or a union written 'a + b + c' of
        this allocation's plain sets and the public face sets (`union_ref`); ConfigError
        naming the options otherwise."""
        if name in self.aux:
            return self.aux[name]
        if "+" in str(name):
            plain = {k: v for k, v in self.aux.items() if v.parts is None}
            return union_ref(name, plain, self.image_size, self.target_train, f"--aux={name}")
        raise ConfigError(f"--aux={name!r}: allocation {self.name!r} has auxiliary sets "
                          f"{sorted(self.aux)} (or a union such as 'generic + celeba_wild')")

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
        _str(d["name"], f"{where}: name")
        size = _int(1)(d["image_size"], f"{where}: image_size")
        m = _int(2)(d["num_classes"], f"{where}: num_classes")
        names = d["label_names"]
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) and
                                                  not isinstance(n, bool) for n in names):
            raise _bad(f"{where}: label_names", names, f"a list of {m} names")
        _str(d["default_aux"], f"{where}: default_aux")
        target_train = SplitRef.from_dict(d["target_train"], f"{where}: target_train")
        plain = {k: SplitRef.from_dict(v, f"{where}: aux.{k}") for k, v in d["aux"].items()
                 if not isinstance(v, (str, list))}
        aux = {}
        for k, v in d["aux"].items():
            aux[k] = plain[k] if k in plain else union_ref(
                v, plain, size, target_train, f"{where}: aux.{k}")
        target_test = SplitRef.from_dict(d["target_test"], f"{where}: target_test")
        victims = SplitRef.from_dict(d["victims"], f"{where}: victims")
        try:
            return cls(name=d["name"], image_size=size, num_classes=m,
                       label_names=tuple(str(n) for n in names), target_train=target_train,
                       target_test=target_test, victims=victims, aux=aux,
                       default_aux=d["default_aux"])
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None


def _bad(where, value, expected):
    return ConfigError(f"{where}={json.dumps(value, default=str)[:60]}; expected {expected}")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _str(v, where):
    if not isinstance(v, str) or not v:
        raise _bad(where, v, "a non-empty string")
    return v


def _int(lo, optional=False):
    def check(v, where):
        if v is None and optional:
            return None
        if not _is_int(v) or v < lo:
            raise _bad(where, v, f"an integer >= {lo}" + (" or null" if optional else ""))
        return int(v)
    return check


def _bool(v, where):
    if not isinstance(v, bool):
        raise _bad(where, v, "true or false")
    return v


def _classes(v, where):
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or not all(_is_int(c) for c in v):
        raise _bad(where, v, "a list of integer labels or null")
    return tuple(int(c) for c in v)


def _fraction(v, where):
    if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(
            isinstance(f, (int, float)) and not isinstance(f, bool) for f in v):
        raise _bad(where, v, "[start, end) with 0 <= start <= end <= 1")
    return tuple(float(f) for f in v)


def _parts(v, where):
    if not isinstance(v, (list, tuple)) or not v:
        raise _bad(where, v, "a non-empty list of SplitRef objects")
    return v


def _ref_or_none(v, where):
    if v is None or isinstance(v, SplitRef):
        return v
    return SplitRef.from_dict(v, where)


_REF_TYPES = {"dataset": _str, "split": _str, "image_size": _int(1, optional=True),
              "classes": _classes, "fraction": _fraction, "seed": _int(0, optional=True),
              "relabel": _bool, "limit": _int(1, optional=True),
              "min_per_class": _int(0, optional=True), "max_per_class": _int(0, optional=True),
              "stratify": _bool, "parts": _parts, "disjoint_from": _ref_or_none}


def check_classes(alloc) -> None:
    """ConfigError, at once, when the victims or the held-out test slice name classes the
    target is not trained on (without it the target trains for minutes, then the attack meets
    an empty victim set)."""
    train = alloc.target_train
    for role in ("victims", "target_test"):
        ref = getattr(alloc, role)
        if ref.classes is None or ref.relabel:
            continue
        if train.relabel:  # another label space: checked when the sets are read
            continue
        if train.classes is not None:
            missing = [c for c in ref.classes if c not in set(train.classes)]
            known = f"the target's classes {list(train.classes)}"
        else:
            missing = [c for c in ref.classes if not 0 <= c < alloc.num_classes]
            known = f"labels 0..{alloc.num_classes - 1} (num_classes={alloc.num_classes})"
        if missing:
            raise ConfigError(f"allocation {alloc.name!r}: {role}.classes {missing} do not exist "
                              f"in the allocation; expected {known}")


def check_num_outputs(alloc, m: int, what: str = "target") -> None:
    """ConfigError when a target's prediction vectors (length m) do not have one entry per
    class of the allocation (a 10-class target against a 5-class allocation would be attacked
    with the wrong victims' labels and reference points)."""
    if int(m) != int(alloc.num_classes):
        raise ConfigError(f"{what} answers {m} scores per image but allocation {alloc.name!r} has "
                          f"{alloc.num_classes} classes ({', '.join(alloc.label_names[:5])}"
                          f"{', ...' if alloc.num_classes > 5 else ''}); expected a target "
                          "trained on this allocation's classes (or an allocation that matches it)")


#: the public face sets a union may name besides an allocation's own auxiliary sets: CelebA
#: #1-#10000, the same photos framed by the face detector, and the three `extra_faces_aux` sets
PUBLIC_FACE_SETS = ("celeba", "celeba_reframed", "celeba_wild", "utkface", "fer2013")
#: what `--aux=public` pools on a face allocation: one crop per photo of every public face set,
#: plus the allocation's `same` set when its people are not the target's (celeba_ids)
PUBLIC = "public"
PUBLIC_PARTS = ("celeba", "celeba_wild", "utkface", "fer2013")


def union_ref(value, plain: dict, image_size: int, target_train: SplitRef,
              where: str = "aux") -> SplitRef:
    """A pooled SplitRef from a union: 'a + b + c' or a list of names / SplitRef objects.

    A name is one of `plain` (the allocation's own sets, e.g. 'same', 'generic') or a public
    face set (PUBLIC_FACE_SETS, read at `image_size`); repeated names count once. The pool is
    checked against `target_train`'s people when it is built (`tfminv.data.pool`)."""
    items = [x.strip() for x in value.split("+")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise _bad(where, value, "a union such as 'generic + celeba_wild + same'")
    parts, seen = [], set()
    for i, item in enumerate(items):
        if isinstance(item, SplitRef):
            ref = item
        elif isinstance(item, dict):
            ref = SplitRef.from_dict(item, f"{where}[{i}]")
        elif isinstance(item, str) and item in plain:
            ref = plain[item]
        elif isinstance(item, str) and item in PUBLIC_FACE_SETS:
            ref = SplitRef(item, "all", image_size)
        else:
            raise ConfigError(f"{where}: the union names an unknown set {str(item)[:60]!r}; "
                              "expected names "
                              f"among {sorted(plain)} (this allocation's sets) or "
                              f"{list(PUBLIC_FACE_SETS)} (public face sets)")
        if ref.parts is not None:
            raise ConfigError(f"{where}: {item!r} is itself a union; unions do not nest")
        if ref not in seen:
            seen.add(ref)
            parts.append(ref)
    return SplitRef(POOL, "all", image_size, parts=tuple(parts), disjoint_from=target_train)


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
         "distinct": SplitRef("cifar10", "all", 64),
         # the target's own people are in `same`, so the public pool leaves it out
         PUBLIC: union_ref(PUBLIC_PARTS, {}, 64,
                           SplitRef("facescrub", "all", 64, fraction=(0.0, 0.8)))},
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
    distinct = CIFAR-10 at 64x64, public = CelebA #1-#10000 + same + the `extra_faces_aux`
    sets (celeba_wild, utkface, fer2013) pooled (`union_ref`; checked identity-disjoint from
    the target where identities are known). Counting the identities reads the raw label arrays
    only.
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
    train = SplitRef(ds, split, 64, fraction=(0.0, cut), **target)
    aux[PUBLIC] = union_ref(PUBLIC_PARTS[:1] + (("same",) if "same" in aux else ())
                            + PUBLIC_PARTS[1:], aux, 64, train)
    return Allocation(
        name=name, image_size=64, num_classes=len(keep),
        label_names=tuple(f"celeba_{int(ids[c])}" for c in keep),
        target_train=train, target_test=held, victims=held, aux=aux, default_aux="generic")


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


def records_for(ref: SplitRef, *, data_dir=None, records_dir=None):
    """The records folder holding the rows `ref` selects from: the dataset's records, or for a
    pooled set the pool's own (`tfminv.data.pool.ensure`), built if needed."""
    from tfminv.data import build

    if ref.parts is not None:
        from tfminv.data import pool

        return pool.ensure(ref, data_dir=data_dir, records_dir=records_dir)
    return build.ensure(ref.dataset, ref.image_size, data_dir=data_dir, records_dir=records_dir)


def check_selected(ref: SplitRef, labels: np.ndarray, idx: np.ndarray, where: str) -> None:
    """DataError when `ref.classes` names labels the split does not hold, or nothing is left."""
    if ref.classes is not None:
        present = set(np.unique(labels).tolist())
        missing = [c for c in ref.classes if c not in present]
        if missing:
            raise DataError(f"{where}: classes {missing} do not exist in {ref.dataset}/{ref.split} "
                            f"(labels present: {_span(sorted(present))})")
    if len(idx) == 0 and len(labels):
        raise DataError(f"{where}: selects no images of {ref.dataset}/{ref.split} "
                        f"({len(labels)} rows); expected a non-empty slice")


def _span(values) -> str:
    if not values:
        return "none"
    if values == list(range(values[0], values[-1] + 1)) and len(values) > 3:
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values[:10])) + (" ..." if len(values) > 10 else "")


def materialize(ref: SplitRef, *, data_dir=None, records_dir=None, normalize: str = "unit"):
    """Load the ImageSet a SplitRef names (building records if needed)."""
    from tfminv.data import records, to_imageset

    records._check_normalize(normalize)
    path = records_for(ref, data_dir=data_dir, records_dir=records_dir)
    images, labels, attributes, meta = records.read_arrays(path, ref.split)
    idx = select(len(labels), labels, ref)  # select on uint8 rows, convert only those to float
    check_selected(ref, labels, idx, f"SplitRef {ref.label}/{ref.split}")
    name = ((f"{ref.dataset}/{ref.split}" if ref.parts is None else f"pool({ref.label})")
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
