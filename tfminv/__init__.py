"""tfminv: measure how much a classifier's predictions leak about its inputs.

Implements training-based model inversion with truncation alignment (Yang et al., CCS 2019).
Importing the package is cheap: TensorFlow is imported only by the modules that need it, and
the public entry points below are attributes loaded on first use:

    tfminv.run_inversion(target, aux_images, victim_images, victim_labels, k=1)
    tfminv.run_audit(target, aux_images, victim_images, victim_labels, policies="identity;label")
    tfminv.run_audit(AuditConfig(...))  (the same function's typed form: the audit scenario,
      tfminv.scenarios.run_audit, what the audit binary runs)
    tfminv.InversionInputs, tfminv.InversionConfig, tfminv.InversionResults, tfminv.InversionRow
    tfminv.LeakageCallback (a Keras callback that measures leakage while a model trains)
"""

__version__ = "0.1.0"

_LAZY = {"run_inversion": "tfminv.leakage", "run_audit": "tfminv.leakage",
         "InversionInputs": "tfminv.leakage", "InversionConfig": "tfminv.leakage",
         "InversionResults": "tfminv.results",
         "InversionRow": "tfminv.results", "LeakageCallback": "tfminv.callbacks"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfminv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
