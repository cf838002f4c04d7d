"""Attacks that learn about a target only through an Oracle's released predictions."""
