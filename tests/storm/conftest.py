"""The storm tests build bridges the way the fault tests do (`make_bridge`, tests/faults/conftest.py)."""

from tests.faults.conftest import make_bridge

__all__ = ["make_bridge"]
