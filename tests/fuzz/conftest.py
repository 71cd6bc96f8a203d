"""Fixtures of the fuzz suite: stores on SQLite and PostgreSQL (tests/conftest.py's
``db_target``), the register suite's hand-made municipality and the sync suite's network.

The helpers of those suites (tests/register/regkit.py, tests/network/netkit.py) are imported,
not copied: the fuzz suite attacks the very stores the other suites build.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent.parent
for _suite in ("register", "network"):
    if str(_TESTS / _suite) not in sys.path:
        sys.path.append(str(_TESTS / _suite))


@pytest.fixture(params=["sqlite", "postgresql"])
def targets(request: pytest.FixtureRequest, tmp_path: Path,
            pg_databases: Callable[[str], str]) -> Callable[[], str]:
    """Fresh store locations on one database (by param): a SQLite file or a PostgreSQL
    database (dropped after the test) per call."""
    n = itertools.count()
    if request.param == "sqlite":
        return lambda: str(tmp_path / f"fuzz{next(n)}.db")
    return lambda: pg_databases("fuzz")
