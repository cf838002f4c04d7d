"""Training-time defences of the target classifier against model inversion.

A defence is one spec string, parsed once by `parse` (pure Python, no TensorFlow, so a binary
can check it before anything starts):

- ``none``: the undefended classifier, trained exactly as without this module (same cache key).
- ``ls:S``: label smoothing with signed strength S in (-1, 1): the target distribution is
  (1 - S) * onehot(y) + S / m over m classes; the loss is its cross-entropy with the softmax,
  written out here because it must accept S < 0 (negative smoothing: Struppek et al., ICLR 2024,
  found that positive smoothing helps inversion attacks and negative smoothing hinders them).
- ``mid:BETA``: MID (Wang et al., AAAI 2021), a variational information bottleneck between the
  penultimate features f and the prediction: a Dense head gives mu and log sigma^2 of a
  Gaussian code z (half the width of f, as in the authors' code), training samples
  z = mu + sigma * eps and adds BETA * KL(N(mu, sigma^2) || N(0, I)) (summed over the code,
  averaged over the batch) to the cross-entropy; at inference the code is its mean mu, so the
  served classifier is deterministic. The log-variance bias starts at -10 (sigma ~ 0.0067, the
  authors' softplus(x - 5) parameterisation at x = 0).
- ``bido:A,B``: BiDO-HSIC (Peng et al., KDD 2022): loss = CE + A * sum_z nHSIC(x, z)
  - B * sum_z nHSIC(y, z) over the latent layers z (here the input of every Dense layer of the
  classifier: the flattened conv features and the penultimate features), y one-hot. nHSIC is
  the normalised HSIC of the authors' code: sum(R_a * R_b^T), R = K_c (K_c + 1e-5 m I)^-1,
  K_c = K H over a batch of m, with Gaussian kernels exp(-|a - b|^2 / (2 sigma^2 d)), sigma = 5
  and d the dimension of a (so one sigma fits layers of any width).
- ``dpsgd:NOISE,CLIP[,DELTA]``: DP-SGD (Abadi et al., CCS 2016): per-example gradients (`tf.vectorized_map`
  of one example's gradient, over chunks of the batch sized to a memory budget from the
  parameter and activation counts: `tfminv.defences.train.DP_CHUNK_BYTES`), each clipped to L2 norm CLIP,
  summed, Gaussian noise of standard deviation NOISE * CLIP added, divided by the batch size,
  then the configured optimiser (Adam: post-processing, so the guarantee holds). Epsilon at
  DELTA (default: the largest power of ten below 1/N) comes from `dp_accounting`'s RDP
  accountant for epochs * N / B Poisson-subsampled Gaussian steps at q = B / N, the standard
  DP-SGD analysis; training draws shuffled fixed-size batches, for which that analysis is the
  customary approximation (as in TensorFlow Privacy's compute_dp_sgd_privacy). Batch
  normalisation would mix examples (and its moving statistics would leak outside the
  accounting), so under DP-SGD the classifier runs in inference mode: BatchNorm layers are
  per-channel affine maps on their initial statistics (mean 0, variance 1), dropout and any
  augmentation layers are off.
  The epsilon covers the training rows only: the model selection on the validation rows (also
  private) is outside it.
- ``tl:N``: transfer learning (TL-DMI, Ho et al., CVPR 2024): pre-train the same classifier, with
  a head over the public classes, on labelled public auxiliary images, then copy every layer but
  the head and train only the last N layers that hold weights (BatchNorm counts as one) on the
  private data; frozen BatchNorm layers keep the public statistics.

Every defence wraps a classifier from `tfminv.models.build_classifier` (any width, class count or
image size: the penultimate features are the input of its last Dense layer), and the model
served afterwards is an ordinary logits classifier (`fit_defended`).

Why not TensorFlow Privacy: tensorflow-privacy 0.9.0, its latest release (checked with
``pip index versions`` and the wheel's metadata), requires numpy ~=1.21 (this project runs
numpy 2), dp-accounting ==0.4.3 (0.6.0 here), tensorflow-probability ~=0.22 and
packaging ~=22.0, and its DP optimisers subclass ``tf.keras.optimizers.legacy`` (Keras 2), so it
cannot be installed beside TensorFlow 2.21 / Keras 3 / numpy 2. The accounting uses
`dp_accounting` 0.6.0 directly; the clipping and noise are the few lines in `train.py`.
"""

from __future__ import annotations

import dataclasses
import math

from tfminv.errors import ConfigError

NAMES = ("none", "ls", "mid", "bido", "dpsgd", "tl")
#: the ones trained by a wrapper model with its own training step (the others by plain `fit`)
WRAPPED = ("ls", "mid", "bido", "dpsgd")
SYNTAX = ("none | ls:S (-1 < S < 1) | mid:BETA (>= 0) | bido:A,B (>= 0) | "
          "dpsgd:NOISE,CLIP[,DELTA] (NOISE >= 0, CLIP > 0, 0 < DELTA < 1/N) | tl:N (N >= 1)")

#: the one-line help of a `defence` setting (for `tfminv.settings.setting`)
HELP = f"training-time defence of the target classifier: {SYNTAX}"


@dataclasses.dataclass(frozen=True)
class Defence:
    """A parsed defence: `name` (one of NAMES) and its numbers `params` (see the module doc)."""

    name: str
    params: tuple = ()

    def __str__(self) -> str:
        if self.name == "none":
            return "none"
        return f"{self.name}:" + ",".join(_fmt(p) for p in self.params)

    @property
    def wrapped(self) -> bool:
        return self.name in WRAPPED


def _fmt(v) -> str:
    return str(int(v)) if isinstance(v, int) else repr(float(v))


def parse(spec) -> Defence:
    """The Defence of a spec string (or a Defence, returned as is); ConfigError naming the spec
    and the expected syntax for anything else."""
    if isinstance(spec, Defence):
        return spec
    text = str(spec if spec is not None else "none").strip()
    if text in ("", "none"):
        return Defence("none")
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    if name not in NAMES:
        raise ConfigError(f"defence {text!r}: unknown name {name!r}; expected {SYNTAX}")
    parts = [p.strip() for p in rest.split(",")] if rest.strip() else []
    counts = {"ls": (1, 1), "mid": (1, 1), "bido": (2, 2), "dpsgd": (2, 3), "tl": (1, 1),
              "none": (0, 0)}[name]
    if not counts[0] <= len(parts) <= counts[1]:
        raise ConfigError(f"defence {text!r}: {name} takes {counts[0]}"
                          f"{'' if counts[0] == counts[1] else f'-{counts[1]}'} number(s) "
                          f"after ':'; expected {SYNTAX}")
    try:
        if name == "tl":
            if not parts[0].lstrip("+").isdigit():
                raise ValueError(parts[0])
            values = (int(parts[0]),)
        else:
            values = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"defence {text!r}: {','.join(parts)!r} is not a number list; "
                          f"expected {SYNTAX}") from None
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"defence {text!r}: strengths must be finite")
    _check_range(text, name, values)
    return Defence(name, values)


def _check_range(text, name, v) -> None:
    bad = None
    if name == "ls" and not -1.0 < v[0] < 1.0:
        bad = f"label smoothing S={v[0]} is outside (-1, 1)"
    elif name == "mid" and v[0] < 0:
        bad = f"MID beta={v[0]} is negative"
    elif name == "bido" and min(v) < 0:
        bad = f"BiDO weights {v[0]}, {v[1]} must be >= 0"
    elif name == "dpsgd":
        if v[0] < 0:
            bad = f"DP-SGD noise multiplier {v[0]} is negative"
        elif v[1] <= 0:
            bad = f"DP-SGD clipping norm {v[1]} must be > 0"
        elif len(v) > 2 and not 0 < v[2] < 1:
            bad = f"DP-SGD delta {v[2]} must be in (0, 1/N)"
    elif name == "tl" and v[0] < 1:
        bad = f"transfer learning must train at least the last layer, got N={v[0]}"
    if bad:
        raise ConfigError(f"defence {text!r}: {bad}; expected {SYNTAX}")


def default_delta(n: int) -> float:
    """The largest power of ten strictly below 1/n (1e-5 for 10,000 <= n < 100,000), the DP-SGD
    delta when the spec gives none."""
    k = math.floor(math.log10(n)) + 1
    return 10.0 ** (-k)


def dp_delta(defence, n: int) -> float:
    d = parse(defence)
    return d.params[2] if len(d.params) > 2 else default_delta(n)


def check(defence, *, n_train: int | None, batch_size: int, strategy: str = "default",
          precision: str = "auto", aux=None) -> Defence:
    """ConfigError (one line) for a defence that cannot train on this data and config, raised
    before any training: DP-SGD with a batch size that does not divide the N training rows, a
    delta >= 1/N or streamed input (N unknown) or float16; a wrapped defence under a distributed
    strategy (its training step is single-device); transfer learning without labelled public
    images. Returns the parsed Defence."""
    d = parse(defence)
    if d.wrapped and strategy != "default":
        raise ConfigError(f"defence {d}: --strategy={strategy} is not supported (its training "
                          "step runs on one device); use --strategy=default")
    if d.name == "dpsgd":
        if n_train is None:
            raise ConfigError(f"defence {d}: DP-SGD needs the training images in memory "
                              "(N for the accounting), not a streamed dataset")
        n, b = int(n_train), int(batch_size)
        if n % b:
            raise ConfigError(f"defence {d}: --batch_size={b} does not divide the {n} training "
                              f"images; DP-SGD needs equal batches (e.g. --batch_size="
                              f"{_divisor_near(n, b)})")
        delta = dp_delta(d, n)
        if not delta < 1.0 / n:
            raise ConfigError(f"defence {d}: delta={delta:g} must be below 1/N = {1.0 / n:.3g} "
                              f"for the N={n} training images")
        if precision == "mixed_float16":
            raise ConfigError(f"defence {d}: --precision=mixed_float16 is not supported "
                              "(per-example gradients are not loss-scaled); use float32 or "
                              "mixed_bfloat16")
    if d.name == "tl":
        if aux is None or len(aux) != 2 or aux[1] is None:
            raise ConfigError(f"defence {d}: transfer learning needs labelled public auxiliary "
                              "images (aux=(images, labels))")
        import numpy as np

        if len(np.unique(np.asarray(aux[1]))) < 2:
            raise ConfigError(f"defence {d}: the public auxiliary images hold fewer than 2 "
                              "classes; pre-training needs at least 2")
    return d


def _divisor_near(n: int, b: int) -> int:
    divs = [k for k in range(1, n + 1) if n % k == 0]
    return min(divs, key=lambda k: (abs(k - b), -k))


def cache_key_part(defence, aux=None) -> dict:
    """The fragment a defended classifier adds to its cache key: {} for 'none' (so undefended
    keys stay what they are), else {'defence': canonical spec, 'defence_code': the code version
    of kind 'defended' (`tfminv.training.code_version`: this package, its training module and
    the classifier builder)}, so a change to a defence's code trains its models again ('tl'
    trains with the plain recipe, whose own code version leaves the defence's code out);
    transfer learning also keys by `aux`, a JSON-able description of the public images it
    pre-trains on (required)."""
    from tfminv.training import code_version

    d = parse(defence)
    if d.name == "none":
        return {}
    out = {"defence": str(d), "defence_code": code_version.version("defended")}
    if d.name == "tl":
        if aux is None:
            raise ConfigError(f"defence {d}: the cache key needs a description of the public "
                              "auxiliary images it pre-trains on")
        out["defence_aux"] = aux
    return out


def dp_epsilon(noise: float, *, batch_size: int, n: int, epochs: int, delta: float) -> float:
    """Epsilon of DP-SGD at `delta` for epochs * n / batch_size steps of the Gaussian mechanism
    (noise multiplier `noise`) on Poisson samples at rate batch_size / n, from dp_accounting's
    RDP accountant (add-or-remove-one neighbours); inf when noise is 0."""
    if noise <= 0:
        return math.inf
    import dp_accounting
    from dp_accounting import rdp

    steps = int(epochs) * (int(n) // int(batch_size))
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(int(batch_size) / int(n),
                                            dp_accounting.GaussianDpEvent(float(noise))), steps)
    accountant = rdp.RdpAccountant()
    accountant.compose(event)
    return float(accountant.get_epsilon(float(delta)))


def fit_defended(defence, build_fn, x, y, *, config, workdir, val=None, aux=None,
                 meta: dict | None = None, monitor: str = "val_loss"):
    """Train `build_fn()` (a logits classifier, uncompiled) on (x, y) under `defence`; returns
    (served model, info). See `tfminv.defences.train.fit_defended`."""
    from tfminv.defences.train import fit_defended as _fit

    return _fit(defence, build_fn, x, y, config=config, workdir=workdir, val=val, aux=aux,
                meta=meta, monitor=monitor)


__all__ = ["Defence", "NAMES", "HELP", "SYNTAX", "parse", "check", "cache_key_part",
           "dp_epsilon", "dp_delta", "default_delta", "fit_defended"]
