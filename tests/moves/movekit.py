"""Helpers of the special move-in/out suite: two municipalities' nodes (A: 千代田区, where
people move out; B: 新宿区, where they move in) and a third (C: 渋谷区), each with its
register and pin key, on SQLite or on PostgreSQL; B reaches A through call_local, exactly
as the server runs the routes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from regkit import LOAD_DAY, load_on, make_block, make_code, make_my_number, tiny_municipality

from jukicore.cards import Cards, create_pin_key
from jukicore.moves import ROUTES, SpecialMoves
from jukicore.network.node import Node, create_node
from jukicore.network.service import Peer, ServeContext, call_local
from jukicore.register import Actor, Register, open_register

PASSWORD = "correct horse battery staple"
A, B, C = "131016", "131041", "131130"
PREF = "130001"
D = dt.date
FILED = D(2024, 6, 3)
PLANNED = D(2024, 6, 10)
#: the day of the special move-in in most tests
NOTIFIED = D(2024, 6, 12)
#: counter staff of each municipality (supervisors: no working hours to override)
STAFF = {lg: Actor.operator(f"sup-{lg}", lg, "supervisor") for lg in (A, B, C)}
ADMINS = {lg: Actor.operator(f"admin-{lg}", lg, "admin") for lg in (A, B, C)}
NAMES = {A: "千代田区", B: "新宿区", C: "渋谷区"}
#: a new address in B (新宿区)
NEW_ADDRESS = {"postal_code": "1600022", "town": "新宿", "street": "3丁目1番1号"}
DESTINATION = "東京都新宿区新宿3丁目1番1号"


@dataclass
class Town:
    node: Node
    reg: Register
    moves: SpecialMoves

    @property
    def lg(self) -> str:
        return self.node.node_id

    @property
    def cards(self) -> Cards:
        return self.moves.cards

    def digest(self) -> str:
        return self.moves.content_digest()


@dataclass
class Towns:
    a: Town
    b: Town
    c: Town
    ctx_a: ServeContext

    def call(self, caller: str = B, *, kind: str = "node",
             fail: Callable[[str], None] | None = None
             ) -> Callable[[str, str, dict[str, Any]], dict[str, Any]]:
        """``call`` as ``caller`` would make it to A (``fail(path)`` may raise first)."""
        def call(peer_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            assert peer_id == A
            if fail is not None:
                fail(path)
            out: dict[str, Any] = call_local(self.ctx_a, ROUTES, Peer(kind, caller),  # type: ignore[arg-type]
                                             path, body)
            return out
        return call

    def digests(self) -> tuple[str, str]:
        return self.a.digest(), self.b.digest()


@pytest.fixture(params=["sqlite", "postgresql"])
def towns(request: pytest.FixtureRequest, tmp_path: Path,
          pg_databases: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Towns]:
    made = []
    for lg in (A, B, C):
        store = None if request.param == "sqlite" else pg_databases(f"move_{lg}")
        node = create_node(tmp_path / lg, lg, store=store, password=PASSWORD,
                           prefecture="東京都", municipality=NAMES[lg])
        create_pin_key(node.path / "pin.key")
        reg = open_register(node.store_target())
        made.append(Town(node, reg, SpecialMoves(reg, _key(node))))
    a = made[0]
    residents, households = tiny_municipality()
    a.reg.import_code_block(make_block(100, A), actor=ADMINS[A])
    load_on(a.reg, LOAD_DAY, monkeypatch, residents, households)
    towns = Towns(*made, ServeContext.open(a.node, PASSWORD))
    yield towns
    for t in made:
        t.reg.close()


def _key(node: Node) -> Any:
    from jukicore.moves import node_pin_key

    return node_pin_key(node.path)


def code_of(reg: Register, person_id: int) -> int:
    t = reg.residents(actor=ADMINS[reg.lg_code], include_removed=True)
    idx = t.column("person_id").to_pylist().index(person_id)
    return int(t.column("resident_code")[idx].as_py())


def card_holder(towns: Towns, person_id: int, *, kind: str = "mynumber", pin: str = "4321",
                day: dt.date = FILED) -> tuple[int, str]:
    """Person ``person_id`` of A with a My Number (for a My Number card) and an active
    card of ``kind`` (PIN ``pin``), issued on ``day``; returns (resident code, card id)."""
    a = towns.a
    code = code_of(a.reg, person_id)
    if kind == "mynumber":
        a.reg.notify(actor=STAFF[A], today=day, notification_id=f"mn-{person_id}",
                     kind="my_number", notified_date=day, event_date=day,
                     resident_code=code, my_number=make_my_number(31_000_000_000 + person_id))
    t = a.cards.issue([{"resident_code": code, "kind": kind}], actor=STAFF[A], today=day)
    cid = str(t.column("card_id")[0].as_py())
    a.cards.activate(cid, pin, actor=STAFF[A], today=day)
    return code, cid


def file_out(towns: Towns, code: int, cid: str, nid: str = "out-1", **kw: Any
             ) -> dict[str, Any]:
    args: dict[str, Any] = {
        "notification_id": nid, "resident_code": code, "card_id": cid,
        "destination_lg": B, "destination": DESTINATION, "planned_on": PLANNED,
        "filed_on": FILED, "actor": STAFF[A], "today": FILED}
    args.update(kw)
    return towns.a.moves.move_out(**args)


def move_in(towns: Towns, code: int, cid: str, *, nid: str = "in-1", pin: str = "4321",
            arrival: dt.date = PLANNED, today: dt.date = NOTIFIED,
            at: Town | None = None, call: Any = None, **kw: Any) -> dict[str, Any]:
    town = at or towns.b
    args: dict[str, Any] = {
        "notification_id": nid, "from_lg": A, "resident_code": code, "card_id": cid,
        "pin": pin, "moved_in_on": arrival, "actor": STAFF[town.lg], "today": today,
        "call": call or towns.call(town.lg), **NEW_ADDRESS}
    args.update(kw)
    return town.moves.move_in(**args)


__all__ = [
    "ADMINS",
    "DESTINATION",
    "FILED",
    "NEW_ADDRESS",
    "NOTIFIED",
    "PASSWORD",
    "PLANNED",
    "PREF",
    "STAFF",
    "A",
    "B",
    "C",
    "D",
    "Town",
    "Towns",
    "card_holder",
    "code_of",
    "file_out",
    "make_code",
    "move_in",
    "towns",
]
