"""The black-box boundary: everything the attacker learns about a target comes through an Oracle."""

from tfminv.oracles.base import CallableOracle, KerasOracle, Oracle

__all__ = ["Oracle", "CallableOracle", "KerasOracle"]
