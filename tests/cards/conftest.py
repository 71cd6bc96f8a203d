"""Fixtures of the cards suite: a register (tests/register/regkit.py) and its cards."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "register"))

from cardkit import cards, pin_key
from regkit import empty_register, register, store_target

__all__ = ["cards", "empty_register", "pin_key", "register", "store_target"]
