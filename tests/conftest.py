"""Fixtures shared by every suite: a throwaway PostgreSQL server and store targets.

PostgreSQL: a private cluster (initdb + pg_ctl on a loopback port in a temp dir)
starts once per session; each test gets a fresh database. Without PostgreSQL's
binaries the PostgreSQL variants skip, unless JUKICORE_REQUIRE_POSTGRES=1 (as
in CI), when they fail.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jukicore.testing import NO_SERVER, TempPostgres, find_pg_bin


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempPostgres | None]:
    if find_pg_bin() is None:
        if os.environ.get("JUKICORE_REQUIRE_POSTGRES") == "1":
            pytest.fail("JUKICORE_REQUIRE_POSTGRES=1 but PostgreSQL's binaries are not installed")
        yield None
        return
    server = TempPostgres().start()
    try:
        yield server
    finally:
        server.stop()


_db_counter = itertools.count()


@pytest.fixture
def pg_databases(pg_server: TempPostgres | None) -> Iterator[Callable[[str], str]]:
    """Make fresh PostgreSQL databases (``make(label)`` returns a URI), dropped after the
    test; without PostgreSQL's binaries the test skips."""
    made: list[str] = []

    def make(label: str) -> str:
        if pg_server is None:
            pytest.skip(NO_SERVER)
        name = f"{label}_{os.getpid()}_{next(_db_counter)}"
        made.append(name)
        return pg_server.create_database(name)

    yield make
    for name in made:
        assert pg_server is not None
        pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path,
              pg_databases: Callable[[str], str]) -> str:
    """A location for a fresh store: a SQLite file path or a PostgreSQL URI."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return pg_databases("db")


@dataclass(frozen=True)
class CliOperator:
    """The operator :func:`cli_operator` puts in the environment."""

    card: Path
    operator: str = "admin1"
    password: str = "Test-admin-passw0rd"
    pin: str = "test-card-pin"

    def make_admin(self, target: str | Path) -> None:
        """Make this operator the first admin of the store at ``target`` (made by the
        library, which creates no operator), as ``node init`` does from the environment."""
        from jukicore.access.operators import bootstrap_admin
        from jukicore.store import connect

        b = connect(target)
        try:
            bootstrap_admin(b, self.operator, name="Test Admin", password=self.password,
                            card_path=self.card, card_pin=self.pin)
        finally:
            b.close()


@pytest.fixture
def cli_operator(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> CliOperator:
    """Credentials for the CLI in the environment (what an operator's shell would hold):
    ``register init`` / ``node init`` make ``admin1`` the first admin with the card
    (written by the first store, reused by every other store of the test), and every
    command that acts on a store logs in as ``admin1`` with that card."""
    who = CliOperator(tmp_path_factory.mktemp("operator") / "admin1.card")
    for name, value in {
        "JUKICORE_ADMIN_ID": who.operator, "JUKICORE_ADMIN_NAME": "Test Admin",
        "JUKICORE_ADMIN_PASSWORD": who.password, "JUKICORE_ADMIN_CARD": str(who.card),
        "JUKICORE_ADMIN_CARD_PIN": who.pin,
        "JUKICORE_OPERATOR": who.operator, "JUKICORE_PASSWORD": who.password,
        "JUKICORE_CARD": str(who.card), "JUKICORE_CARD_PIN": who.pin,
    }.items():
        monkeypatch.setenv(name, value)
    return who


def _upper_store(tmp_path_factory: pytest.TempPathFactory, cli_operator: CliOperator,
                 node_id: str, kind: str) -> Path:
    from jukicore.identity import create_identity_store

    path = tmp_path_factory.mktemp(kind) / f"{kind}.sqlite"
    create_identity_store(path, node_id=node_id, kind=kind).close()
    cli_operator.make_admin(path)
    return path


@pytest.fixture
def center_store(tmp_path_factory: pytest.TempPathFactory, cli_operator: CliOperator) -> Path:
    """The center's store (SQLite), whose first admin is ``cli_operator``: the ``--node``
    of the ``codes`` commands that issue codes from a registry."""
    return _upper_store(tmp_path_factory, cli_operator, "center", "center")


@pytest.fixture
def pref_store(tmp_path_factory: pytest.TempPathFactory, cli_operator: CliOperator) -> Path:
    """Tokyo's store (prefecture 130001, SQLite), whose first admin is ``cli_operator``:
    the ``--node`` of ``codes block split`` of the blocks the center gives 130001."""
    return _upper_store(tmp_path_factory, cli_operator, "130001", "prefecture")
