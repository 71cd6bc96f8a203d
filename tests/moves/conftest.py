"""Fixtures of the special move-in/out suite (helpers live in movekit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "register"))

from movekit import towns

__all__ = ["towns"]
