"""One audit schema for every tier and one writer (jukicore.audit)."""

from __future__ import annotations

import re
from pathlib import Path

import jukicore
from jukicore.audit import AUDIT_TABLE
from jukicore.identity import create_identity_store
from jukicore.register import Actor, create_register
from jukicore.store import connect

LG = "131016"
ADMIN = Actor.operator("admin", LG, "admin")


def _audit_rows(target: str) -> list[tuple[object, ...]]:
    be = connect(target)
    try:
        with be.session(write=False) as s:
            names = ", ".join(c.name for c in AUDIT_TABLE.columns if c.name != "id")
            return s.query(f"SELECT {names} FROM audit ORDER BY id")
    finally:
        be.close()


def test_a_register_writes_entries_of_the_one_shape(db_target: str) -> None:
    with create_register(db_target, lg_code=LG, prefecture="東京都", municipality="千代田区",
                         actor=ADMIN):
        pass
    rows = _audit_rows(db_target)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("operator:admin@131016", "operator", "register.init", LG)]


def test_an_identity_store_writes_entries_of_the_one_shape(db_target: str) -> None:
    """An upper store's entries name the node as their actor (kind ``node``)."""
    with create_identity_store(db_target, node_id="center", kind="center"):
        pass
    rows = _audit_rows(db_target)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("center", "node", "identity.init", "center")]


def test_no_audit_insert_outside_the_audit_package() -> None:
    root = Path(jukicore.__file__).parent
    found = [f"{p.relative_to(root)}:{n}" for p in sorted(root.rglob("*.py"))
             if not p.relative_to(root).as_posix().startswith("audit/")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"INSERT INTO audit\b", line)]
    assert not found, found
