"""Helpers and fixtures of the register suite: every test runs on SQLite and on PostgreSQL.

The throwaway PostgreSQL server and the store locations come from
tests/conftest.py, shared with every suite.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from jukicore.codes import CodeBlock, CodeRegistry, my_number_check_digit, resident_code_check_digit
from jukicore.register import Actor, Register, create_register
from jukicore.register._schema import MIGRATIONS
from jukicore.store.backend import Session

LG = "131016"  # 千代田区 (valid check digit)
PREF = "東京都"
MUNI = "千代田区"
TODAY = dt.date(2024, 6, 3)

ADMIN = Actor.operator("admin", LG, "admin")
# counter work replayed at any hour: under a supervisor's override (audited; the working
# hours themselves are tested in tests/access)
CLERK = Actor.operator("clerk1", LG, "clerk").with_override(
    Actor.operator("supervisor1", LG, "supervisor"), "test: counter days replayed")


def make_code(body: int) -> int:
    """The resident code with this 10-digit body (check digit by jukicore.codes)."""
    return body * 10 + resident_code_check_digit(body)


def make_my_number(body: int) -> int:
    """The My Number with this 11-digit body."""
    return body * 10 + my_number_check_digit(body)


def make_block(n: int, holder: str = LG) -> CodeBlock:
    """A block of ``n`` fresh codes for ``holder`` (from the CSPRNG)."""
    return CodeRegistry().allocate_block(n, holder)


def tiny_municipality(households: int = 6) -> tuple[pa.Table, pa.Table]:
    """A hand-made municipality (schema of jukicore.synth's residents/households tables)."""
    rows: list[dict[str, Any]] = []
    hh_rows: list[dict[str, Any]] = []
    pid = itertools.count(1)
    for h in range(1, households + 1):
        town = ["丸の内", "大手町", "神田"][h % 3]
        street = f"{h}丁目{h + 2}番{h + 5}号"
        address = f"{PREF}{MUNI}{town}{street}"
        family = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺"][h % 6]
        kana = ["サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ"][h % 6]
        size = 1 + (h % 4)  # 2, 3, 4, 1, 2, 3
        members = [("世帯主", "太郎", "タロウ", 1, 1970), ("妻", "花子", "ハナコ", 2, 1972),
                   ("子", "一郎", "イチロウ", 1, 2000), ("子", "二郎", "ジロウ", 1, 2003)][:size]
        head_id = None
        for rel, given, gkana, sex, year in members:
            p = next(pid)
            head_id = head_id or p
            rows.append({
                "person_id": p, "family_name": family, "given_name": given,
                "family_name_kana": kana, "given_name_kana": gkana,
                "birth_date": dt.date(year, 1 + h % 12, 10 + h), "sex": sex,
                "household_id": h, "relationship": rel,
                "domicile": f"{PREF}{MUNI}{town}{h}番地", "domicile_head": f"{family}太郎",
                "postal_code": "1000005", "prefecture": PREF, "municipality": MUNI,
                "lg_code": LG, "town": town, "street": street, "building": None,
                "address": address, "resident_since": dt.date(2005, 4, 1),
                "address_since": dt.date(2010, 5, h), "previous_address": None,
                "move_in_notified": None,
            })
        hh_rows.append({"household_id": h, "head_person_id": head_id, "address": address,
                        "size": size})
    schema = pa.schema([
        ("person_id", pa.int64()), ("family_name", pa.string()), ("given_name", pa.string()),
        ("family_name_kana", pa.string()), ("given_name_kana", pa.string()),
        ("birth_date", pa.date32()), ("sex", pa.int8()), ("household_id", pa.int64()),
        ("relationship", pa.string()), ("domicile", pa.string()), ("domicile_head", pa.string()),
        ("postal_code", pa.string()), ("prefecture", pa.string()), ("municipality", pa.string()),
        ("lg_code", pa.string()), ("town", pa.string()), ("street", pa.string()),
        ("building", pa.string()), ("address", pa.string()), ("resident_since", pa.date32()),
        ("address_since", pa.date32()), ("previous_address", pa.string()),
        ("move_in_notified", pa.date32()),
    ])
    hh_schema = pa.schema([("household_id", pa.int64()), ("head_person_id", pa.int64()),
                           ("address", pa.string()), ("size", pa.int32())])
    return (pa.Table.from_pylist(rows, schema=schema),
            pa.Table.from_pylist(hh_rows, schema=hh_schema))


# -- stores --------------------------------------------------------------------------------


@pytest.fixture
def store_target(db_target: str) -> str:
    """A location for a fresh register (tests/conftest.py: SQLite path or PostgreSQL URI)."""
    return db_target


@pytest.fixture
def empty_register(store_target: str) -> Iterator[Register]:
    reg = create_register(store_target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                          actor=ADMIN)
    reg.import_code_block(make_block(200), actor=ADMIN)
    yield reg
    reg.close()


#: The day the tiny municipality is loaded in the ``register`` fixture: the register's
#: history starts there (Register.history_start), a while before TODAY.
LOAD_DAY = dt.date(2023, 4, 1)


def load_on(reg: Register, day: dt.date, monkeypatch: pytest.MonkeyPatch,
            residents: pa.Table, households: pa.Table | None = None) -> None:
    """Bulk-load as if on ``day`` (the load has no date of its own: it takes the clock's)."""
    from jukicore import audit
    from jukicore.register import store

    at = dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC)
    with monkeypatch.context() as m:
        m.setattr(store, "utcnow", lambda: at)
        m.setattr(audit, "utcnow", lambda: at)  # (the load's audit entry dates the history)
        reg.load(residents, households, actor=ADMIN)


@pytest.fixture
def register(empty_register: Register, monkeypatch: pytest.MonkeyPatch) -> Register:
    """A register with the tiny municipality loaded on LOAD_DAY (15 residents in 6
    households)."""
    residents, households = tiny_municipality()
    load_on(empty_register, LOAD_DAY, monkeypatch, residents, households)
    return empty_register


def code_of(reg: Register, person_id: int) -> int:
    t = reg.residents(actor=ADMIN, include_removed=True)
    idx = t.column("person_id").to_pylist().index(person_id)
    return int(t.column("resident_code")[idx].as_py())


def ev(kind: str, nid: str, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"notification_id": nid, "kind": kind, "notified_date": TODAY,
                           "event_date": TODAY}
    out.update(fields)
    return out


#: An address in the register's municipality that no household of tiny_municipality uses.
ADDR = {"postal_code": "1010021", "town": "外神田", "street": "1丁目1番1号"}


def move_in(nid: str, **kw: Any) -> dict[str, Any]:
    """A move-in of 山田健 from Osaka, as head of a new household at ADDR; ``kw`` overrides."""
    base = ev("move_in", nid, event_date=TODAY - dt.timedelta(days=2),
              resident_code=make_code(4242), family_name="山田", given_name="健",
              family_name_kana="ヤマダ", given_name_kana="ケン", birth_date=dt.date(1990, 4, 1),
              sex=1, relationship="世帯主", previous_address="大阪府大阪市北区1番地", **ADDR)
    base.update(kw)
    return base


def undo_migrations(s: Session, first_version: int) -> None:
    """Take a register back to the schema before ``first_version``: what that version and
    every later one made (tables, indexes, added columns) goes, newest first, and their
    rows of ``schema_version`` with it. Data steps (UPDATE, INSERT) go with their tables;
    any other step is a failure here, to be taught to this function."""
    steps = [q for m in MIGRATIONS if m.version >= first_version for q in m.statements(s.ddl)]
    for stmt in reversed(steps):
        if made := re.match(r"CREATE (?:UNIQUE )?(TABLE|INDEX) (?:IF NOT EXISTS )?(\w+)", stmt):
            s.execute(f"DROP {made.group(1)} IF EXISTS {made.group(2)}")
        elif added := re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", stmt):
            s.execute(f"ALTER TABLE {added.group(1)} DROP COLUMN {added.group(2)}")
        else:
            assert re.match(r"(UPDATE|INSERT) ", stmt), f"cannot undo: {stmt[:80]}"
    s.execute("DELETE FROM schema_version WHERE version >= ?", (first_version,))
