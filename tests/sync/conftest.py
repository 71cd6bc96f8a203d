"""Fixtures of the sync tests (helpers live in netkit.py)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netkit import Network, build_network

from jukicore.register.pgtemp import TempPostgres

_counter = itertools.count()


@pytest.fixture
def identity_target(request: pytest.FixtureRequest, tmp_path: Path,
                    pg_server: TempPostgres | None) -> Callable[[str], str]:
    """Make a store location for a prefecture/center: SQLite or PostgreSQL (by param)."""
    dialect = getattr(request, "param", "sqlite")
    made: list[str] = []

    def make(name: str) -> str:
        if dialect == "sqlite":
            return f"{name}.sqlite"
        if pg_server is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed: install "
                        "PostgreSQL, or set JUKICORE_REQUIRE_POSTGRES=1 to fail instead")
        db = f"sync_{os.getpid()}_{next(_counter)}_{name}"
        made.append(db)
        return pg_server.create_database(db)

    return make


@pytest.fixture
def network(tmp_path: Path, identity_target: Callable[[str], str]) -> Iterator[Network]:
    yield build_network(tmp_path, identity_target)
