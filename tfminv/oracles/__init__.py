"""The black-box boundary: everything the attacker learns about a target comes through an Oracle.

Remote oracles (REST, gRPC, HTTP JSON) are imported on demand; `from_spec` builds any of them.
"""

from tfminv.oracles.base import (CallableOracle, KerasOracle, Oracle, RemoteOracle, RetryPolicy,
                                 TransientOracleError)
from tfminv.oracles.spec import from_spec, parse_spec

__all__ = ["Oracle", "CallableOracle", "KerasOracle", "RemoteOracle", "RetryPolicy",
           "TransientOracleError", "from_spec", "parse_spec", "SavedModelOracle", "RestOracle",
           "GrpcOracle", "HttpJsonOracle"]

_LAZY = {"SavedModelOracle": "tfminv.oracles.savedmodel", "RestOracle": "tfminv.oracles.rest",
         "GrpcOracle": "tfminv.oracles.grpc", "HttpJsonOracle": "tfminv.oracles.http_json"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfminv.oracles' has no attribute {name!r}")
