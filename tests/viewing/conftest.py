"""Fixtures of the viewing suite: the register suite's tiny municipality (regkit.py) with
one resident dead (a removed record that a viewing must never show), on SQLite and on
PostgreSQL, and the desk of register viewing on it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "register"))
sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("viewkit")

from regkit import (  # noqa: E402  fixtures, registered here for pytest
    empty_register,
    register,
    store_target,
)
from viewkit import desk  # noqa: E402

__all__ = ["desk", "empty_register", "register", "store_target"]
