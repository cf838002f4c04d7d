"""Code versions: a hash of the source that made a model, part of every trained model's key.

A cached model is reused only when the code that would train it now is the code that trained
it: its builder's module (and every `tfminv.models` module that one imports: the layer set),
the kind's own training module, and the training recipe (`RECIPE`: config, the training loop,
the selecting and guarding callbacks, the multi-worker step, losses, precision, the hold-out
split). Without this, a change to a builder or a layer silently reused models trained by the
old code (what once moved committed FaceScrub class-inference numbers).

Each module is hashed as its normalised syntax tree: parsed, docstrings removed, written back
with `ast.unparse` (so comments, docstrings and layout do not change a version; any change to
the code does, a pure refactor included: that retrains, never reuses stale weights). What is
not hashed does not change weights: the run's bookkeeping (`fit`, `commit`, `checkpoints`,
`workers`: a resumed run is bit-identical to an uninterrupted one, tests/test_training_commit.py)
and its display (`progress`, `timing`). Library versions (TensorFlow, Keras) are recorded in
run.json, not keyed. No TensorFlow: sources are read from files, not imported.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

#: the training recipe's modules: part of every kind's version
RECIPE = ("tfminv.training.config", "tfminv.training.recipe", "tfminv.training.callbacks",
          "tfminv.training.multiworker", "tfminv.training.losses", "tfminv.training.precision",
          "tfminv.data.splits")
#: the modules that define each kind of trained model (builder, its own training code); the
#: `FOLLOW` modules they import are added, transitively
KINDS = {
    "classifier": ("tfminv.models.classifier", "tfminv.training.targets"),
    "inverter": ("tfminv.models.inverter", "tfminv.attacks.inversion"),
    "joint": ("tfminv.models.joint", "tfminv.training.joint"),
    "local_api": ("tfminv.faceapi.local_api",),
    "surrogate": ("tfminv.models.classifier", "tfminv.models.losses", "tfminv.attacks.surrogate"),
    "identity": ("tfminv.models.inverter", "tfminv.models.losses", "tfminv.attacks.inversion",
                 "tfminv.attacks.identity", "tfminv.models.classifier",
                 "tfminv.attacks.surrogate", "tfminv.attacks.realism", "tfminv.models.prior"),
    "prior": ("tfminv.models.prior", "tfminv.attacks.realism"),
    "defended": ("tfminv.models.classifier", "tfminv.defences", "tfminv.defences.train"),
}
#: imports followed from a defining module (the builders and layers)
FOLLOW = ("tfminv.models",)


def module_file(name: str) -> Path:
    """The source file of module `name` (tfminv's own without importing them)."""
    if name == "tfminv" or name.startswith("tfminv."):
        base = PACKAGE.joinpath(*name.split(".")[1:])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        raise ModuleNotFoundError(f"code version: no module {name} in {PACKAGE}")
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(f"code version: no module {name}")
    return Path(spec.origin)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalised_source(text: str) -> str:
    """`text` as its syntax tree written back: no comments, docstrings or layout."""
    return ast.unparse(_strip_docstrings(ast.parse(text)))


@functools.lru_cache(maxsize=None)
def _file_hash(path: str, mtime_ns: int, size: int) -> tuple[str, tuple[str, ...]]:
    text = Path(path).read_text(encoding="utf-8")
    tree = ast.parse(text)
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports.append(node.module)
            imports += [f"{node.module}.{a.name}" for a in node.names]
    digest = hashlib.sha256(normalised_source(text).encode()).hexdigest()[:16]
    return digest, tuple(imports)


def module_hash(name: str) -> tuple[str, tuple[str, ...]]:
    """(hash of the module's normalised source, the modules it imports)."""
    path = module_file(name)
    st = path.stat()
    return _file_hash(str(path), st.st_mtime_ns, st.st_size)


def _is_module(name: str) -> bool:
    try:
        module_file(name)
        return True
    except (ModuleNotFoundError, ImportError, ValueError):
        return False


def modules(kind: str | None) -> dict[str, str]:
    """module name -> hash for every module that defines `kind` (None: the recipe alone)."""
    if kind is not None and kind not in KINDS:
        from tfminv.errors import ConfigError

        raise ConfigError(f"code version: unknown model kind {kind!r}; expected one of "
                          f"{sorted(KINDS)}")
    todo = list(RECIPE) + list(KINDS.get(kind, ()))
    out: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in out:
            continue
        digest, imports = module_hash(name)
        out[name] = digest
        todo += [m for m in imports if m.startswith(FOLLOW) and m not in out and _is_module(m)]
    return dict(sorted(out.items()))


def version(kind: str | None) -> str:
    """Short hash of every module that defines `kind` (a cache key part)."""
    blob = ";".join(f"{k}={v}" for k, v in modules(kind).items())
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def record(kind: str | None) -> dict:
    """What run.json / info.json record: the kind, its version, each module's hash and the
    library versions."""
    from importlib import metadata

    libs = {}
    for lib in ("tensorflow", "keras"):
        try:
            libs[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            libs[lib] = None
    return {"kind": kind or "recipe", "version": version(kind), "modules": modules(kind),
            "libraries": libs}
