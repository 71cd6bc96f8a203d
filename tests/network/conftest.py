"""Fixtures of the sync tests (helpers live in netkit.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from netkit import PASSWORD, Network, build_network


@pytest.fixture(autouse=True)
def node_password(monkeypatch: pytest.MonkeyPatch, cli_operator: object) -> None:
    """Every node of these tests is protected by netkit's PASSWORD, found in the environment
    as an operator's nightly script would find it; so are the credentials of the
    operator (``cli_operator``, every store's first admin) whose login the CLI uses."""
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)


@pytest.fixture
def identity_target(request: pytest.FixtureRequest,
                    pg_databases: Callable[[str], str]) -> Callable[[str], str]:
    """Make a store location for a prefecture/center: SQLite or PostgreSQL (by param)."""
    dialect = getattr(request, "param", "sqlite")

    def make(name: str) -> str:
        return f"{name}.sqlite" if dialect == "sqlite" else pg_databases(f"sync_{name}")

    return make


@pytest.fixture
def network(tmp_path: Path, identity_target: Callable[[str], str]) -> Network:
    return build_network(tmp_path, identity_target)


@pytest.fixture(params=["sqlite", "postgresql"])
def full_network(request: pytest.FixtureRequest, tmp_path: Path,
                 pg_databases: Callable[[str], str]) -> Network:
    """The network with every store, the municipality's register included, on SQLite or
    on PostgreSQL."""
    def make(name: str) -> str:
        return f"{name}.sqlite" if request.param == "sqlite" else pg_databases(f"sync_{name}")

    return build_network(tmp_path, make, register_on_target=True)
