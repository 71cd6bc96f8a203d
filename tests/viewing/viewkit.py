"""Helpers and fixtures of the viewing suite."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from regkit import ADMIN, LG, TODAY, ev

from jukicore.access.actors import Actor
from jukicore.access.policy import JST
from jukicore.register import Register
from jukicore.viewing import Viewings

CLERK = Actor.operator("clerk1", LG, "clerk")
CLERK2 = Actor.operator("clerk2", LG, "clerk")
BOSS = Actor.operator("boss1", LG, "supervisor")
BOSS2 = Actor.operator("boss2", LG, "supervisor")
#: Monday 3 June 2024 (regkit's TODAY), 10:00 in Japan: within a clerk's hours
WORK = dt.datetime(2024, 6, 3, 10, 0, tzinfo=JST)
JUNE = (dt.date(2024, 6, 1), dt.date(2024, 6, 30))
#: the person who died (a removed record, 除票): 田中二郎 of 丸の内, born 2003-04-13 (in
#: both requests' ranges had he lived)
DEAD = "田中　二郎"


def at(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), JST)


def private_request(desk: Viewings, actor: Actor = CLERK, *, now: dt.datetime = WORK,
                    **kw: Any) -> int:
    """A survey by a university (Art. 11-2 (1)(i)) asking for 丸の内 and 神田."""
    args: dict[str, Any] = {
        "kind": "private", "requester": "東都大学社会学研究室", "purpose": "survey",
        "summary": "地域住民の生活意識に関する学術調査", "viewers": ["山田太郎", "鈴木花子"],
        "period_from": JUNE[0], "period_to": JUNE[1],
        "handling": "施錠できる書庫で保管し調査後に廃棄",
        "representative": "教授 東都一郎", "towns": ["丸の内", "神田"]}
    args.update(kw)
    return desk.request(**args, actor=actor, now=now)


def public_request(desk: Viewings, actor: Actor = CLERK, *, now: dt.datetime = WORK,
                   **kw: Any) -> int:
    """A public body's statutory duty (Art. 11): the Self-Defense Forces' recruitment."""
    args: dict[str, Any] = {
        "kind": "public", "requester": "自衛隊東京地方協力本部", "purpose": "statutory_duty",
        "summary": "自衛官の募集事務", "legal_basis": "自衛隊法第97条第1項",
        "viewers": ["防衛次郎"], "period_from": JUNE[0], "period_to": dt.date(2024, 7, 31),
        "born_from": dt.date(1999, 1, 1), "born_to": dt.date(2004, 12, 31)}
    args.update(kw)
    return desk.request(**args, actor=actor, now=now)


def audit_rows(reg: Register) -> list[dict[str, Any]]:
    with reg._b.session(write=False) as s:
        rows = s.query("SELECT actor, action, target, detail FROM audit ORDER BY seq")
    return [dict(zip(("actor", "action", "target", "detail"), r, strict=True)) for r in rows]


class Unchanged:
    """Asserts that nothing but ``access.denied`` entries was written in between."""

    def __init__(self, desk: Viewings) -> None:
        self.desk = desk
        self.digest = desk.content_digest()
        self.n = len(audit_rows(desk._reg))

    def check(self, denied: int) -> list[dict[str, Any]]:
        """Nothing changed; ``denied`` access.denied entries were written: those."""
        assert self.desk.content_digest() == self.digest
        new = audit_rows(self.desk._reg)[self.n:]
        assert [e["action"] for e in new] == ["access.denied"] * denied, new
        return new


@pytest.fixture
def desk(register: Register) -> Viewings:
    """Viewing at the tiny municipality, in which 田中二郎 died (a 除票)."""
    res = register.residents(actor=ADMIN).to_pylist()
    code = next(r["resident_code"] for r in res
                if (r["family_name"], r["given_name"]) == ("田中", "二郎"))
    rep = register.apply([ev("death", "dead1", resident_code=code)], actor=ADMIN, today=TODAY)
    assert rep.ok, rep.rejected
    return Viewings(register)
