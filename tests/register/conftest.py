"""Fixtures of the register suite (helpers live in regkit.py)."""

from regkit import (  # fixtures, registered here for pytest
    empty_register,
    register,
    store_target,
)

__all__ = ["empty_register", "register", "store_target"]
