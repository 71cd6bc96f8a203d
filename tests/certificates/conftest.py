"""Fixtures of the certificates suite: a register with the tiny municipality (SQLite and
PostgreSQL), the municipality's node keys and a trust store that holds them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "register"))
sys.path.insert(0, str(Path(__file__).parent))

from certkit import certs, keys, trust
from regkit import empty_register, register, store_target

__all__ = ["certs", "empty_register", "keys", "register", "store_target", "trust"]
