"""Serving exported models: inverter clients (REST/gRPC) and an in-process TF Serving stand-in."""

__all__ = ["InverterClient", "reconstruct_files", "write_pngs", "ModelServer", "ServerLimits", "ServingError"]

_LAZY = {"InverterClient": "tfminv.serving.client", "write_pngs": "tfminv.serving.client",
         "reconstruct_files": "tfminv.serving.client",
         "ModelServer": "tfminv.serving.testing_server",
         "ServingError": "tfminv.serving.testing_server",
         "ServerLimits": "tfminv.serving.testing_server"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfminv.serving' has no attribute {name!r}")
