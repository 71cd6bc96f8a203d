"""Fixtures of the code tests: the store whose operator issues codes from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from jukicore.access.operators import bootstrap_admin
from jukicore.identity import create_identity_store


@pytest.fixture
def center_store(tmp_path_factory: pytest.TempPathFactory, cli_operator: object) -> Path:
    """The center's store, whose first admin is the suite's ``cli_operator`` (its
    credentials in the environment): ``--node`` of the ``codes`` commands that record."""
    path = tmp_path_factory.mktemp("center") / "center.sqlite"
    with create_identity_store(path, node_id="center", kind="center") as store:
        bootstrap_admin(store, cli_operator.operator,  # type: ignore[attr-defined]
                        name="Test Admin", password=cli_operator.password,  # type: ignore[attr-defined]
                        card_path=cli_operator.card, card_pin=cli_operator.pin)  # type: ignore[attr-defined]
    return path
