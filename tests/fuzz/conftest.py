"""Fixtures of the fuzz suite: stores on SQLite and PostgreSQL (tests/conftest.py's
``db_target``), the register suite's hand-made municipality and the sync suite's network.

The helpers of those suites (tests/register/regkit.py, tests/sync/netkit.py) are imported,
not copied: the fuzz suite attacks the very stores the other suites build.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent
for _suite in ("register", "sync"):
    if str(_TESTS / _suite) not in sys.path:
        sys.path.append(str(_TESTS / _suite))
