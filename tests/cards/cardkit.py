"""Helpers of the cards suite: people with chosen birth dates, a pin key, digests."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from regkit import ADDR, ADMIN, CLERK, make_code, make_my_number, move_in

from jukicore.cards import Cards, PinKey, create_pin_key
from jukicore.register import Register

_bodies = itertools.count(7_000_000_001)


@pytest.fixture
def pin_key(tmp_path: Path) -> PinKey:
    return create_pin_key(tmp_path / "pin.key")


@pytest.fixture
def cards(register: Register, pin_key: PinKey) -> Cards:
    return Cards(register, pin_key)


def person(reg: Register, birth: dt.date, *, moved_in: dt.date,
           my_number: bool = True, **kw: Any) -> int:
    """A person born on ``birth`` moving in on ``moved_in`` (with a My Number unless told
    otherwise), head of a new household; returns the resident code."""
    body = next(_bodies)
    code = make_code(body)
    fields = move_in(f"in-{body}", resident_code=code, birth_date=birth,
                     event_date=moved_in, notified_date=moved_in,
                     given_name=f"健{body % 1000}", **kw)
    if my_number:
        fields["my_number"] = make_my_number(body * 10 + 3)
    got = reg.notify(actor=ADMIN, today=moved_in, **fields)
    assert got == code
    return code


def digest(reg: Register, cards: Cards) -> tuple[str, str]:
    """What a refused request must leave as it was: the register (audit of changes
    included) and the cards."""
    return reg.content_digest(), cards.content_digest()


def issue_one(cards: Cards, code: int, kind: str, day: dt.date) -> str:
    t = cards.issue([{"resident_code": code, "kind": kind}], actor=CLERK, today=day)
    return str(t.column("card_id")[0].as_py())


def active_card(cards: Cards, code: int, kind: str, day: dt.date, pin: str = "1234") -> str:
    cid = issue_one(cards, code, kind, day)
    cards.activate(cid, pin, actor=CLERK, today=day)
    return cid


def audit_actions(reg: Register, target: str | None = None) -> list[str]:
    log = reg.audit_log(actor=ADMIN)
    rows = log.to_pylist()
    return [r["action"] for r in rows if target is None or r["target"] == target]


__all__ = ["ADDR", "active_card", "audit_actions", "digest", "issue_one", "person"]
