"""Malformed values per column for the register's and the nodes' entry points, shared by
the API fuzz tests and the CLI fuzz tests.

Tiny municipality (person ids, tests/register/regkit.py): household 1: 1 head, 2 妻;
household 2: 3 head, 4, 5; household 3: 6 head, 7, 8, 9; household 4: 10 alone;
household 5: 11 head, 12; household 6: 13 head, 14, 15.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pyarrow as pa
from fuzzkit import (
    ANCIENT_DATES,
    BAD_KANA,
    BAD_NAMES,
    BAD_POSTAL,
    FUTURE_DATES,
    I64_MAX,
    TODAY,
    U64_MAX,
    wrong_check,
)
from hypothesis import strategies as st
from regkit import ADDR, ADMIN, LG, MUNI, PREF, make_block, make_code, make_my_number
from regkit import tiny_municipality as tiny

from jukicore.register import Register, create_register

_ids = itertools.count()

D = dt.timedelta
_ids = itertools.count()

def _surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


#: Values no text item may hold (names, addresses, relationship, domicile, ...).
BAD_TEXT = [*(v for v in BAD_NAMES if v.strip()), "\x00", "a\x00", "\ud800"]
#: The same in an Arrow table (which cannot hold a lone surrogate: "utf8" is invalid UTF-8).
LOAD_TEXT = [*(v for v in BAD_TEXT if not _surrogate(v)), "utf8"]
LOAD_KANA = [*(v for v in BAD_KANA if not _surrogate(v)), "utf8"]
BAD_CODES = [wrong_check("resident_code", 424242), 123456789012, U64_MAX, I64_MAX, 2**63]
BAD_MY_NUMBERS = [wrong_check("my_number", 12345678), 1234567890123, U64_MAX, 2**63]
BAD_SEX = [0, 3, 9, -1, 127]
BAD_DATES = ANCIENT_DATES + FUTURE_DATES


def new_register(target: str, *, loaded: bool) -> Register:
    reg = create_register(target, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN)
    reg.import_code_block(make_block(600), actor=ADMIN)
    if loaded:
        residents, households = tiny()
        reg.load(residents, households, actor=ADMIN)
    return reg



# -- Register.load ------------------------------------------------------------


def load_table() -> pa.Table:
    """tiny_municipality's residents with their own resident codes and My Numbers, fresh at
    each call (a table wrongly loaded by one example does not make the next one clash)."""
    res, _ = tiny()
    n = res.num_rows
    first = 7_000_000 + 100 * next(_ids)
    res = res.append_column("resident_code", pa.array(
        [make_code(first + i) for i in range(n)], pa.uint64()))
    return res.append_column("my_number", pa.array(
        [make_my_number(first + i) for i in range(n)], pa.uint64()))


LOAD_CASES: dict[str, list[Any]] = {
    "person_id": ["duplicate"],
    "family_name": LOAD_TEXT,
    "given_name": LOAD_TEXT,
    "family_name_kana": LOAD_KANA,
    "given_name_kana": LOAD_KANA,
    "birth_date": BAD_DATES,
    "sex": BAD_SEX,
    "household_id": [-1],
    "relationship": LOAD_TEXT,
    "domicile": LOAD_TEXT,
    "postal_code": BAD_POSTAL,
    "prefecture": ["大阪府", *LOAD_TEXT],
    "municipality": ["大阪市", *LOAD_TEXT],
    "lg_code": ["131024", "13101６", "13101", "1310166", *LOAD_TEXT],
    "town": LOAD_TEXT,
    "street": LOAD_TEXT,
    "building": LOAD_TEXT,
    "address": LOAD_TEXT,
    "resident_since": BAD_DATES,
    "address_since": BAD_DATES,
    "move_in_notified": FUTURE_DATES,
    "resident_code": [*BAD_CODES, "duplicate"],
    "my_number": [*BAD_MY_NUMBERS, "duplicate"],
}
LOAD_RELATED = {
    "birth_date": {"birth_date", "resident_since", "address_since"},
    "resident_since": {"resident_since", "address_since"},
    "address_since": {"resident_since", "address_since"},
    "household_id": {"household_id", "relationship"},
    "relationship": {"relationship", "household_id"},
    "address": {"address", "town", "street"},
    "prefecture": {"prefecture", "lg_code"},
    "municipality": {"municipality", "lg_code"},
}


def with_value(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    col = table.column(column).combine_chunks()
    if value == "utf8":
        vals = col.cast(pa.binary()).to_pylist()
        vals[row] = b"\xff\xfe\x00"
        new = pa.array(vals, pa.binary()).view(pa.string())
    else:
        vals = col.to_pylist()
        vals[row] = vals[(row + 1) % len(vals)] if value == "duplicate" else value
        new = pa.array(vals, col.type if not isinstance(value, int) or value >= 0
                       or not pa.types.is_unsigned_integer(col.type) else pa.int64())
    return table.set_column(table.column_names.index(column), column, new)



# -- notifications ------------------------------------------------------------


def nid() -> str:
    return f"fz{next(_ids)}"


def code_of(reg: Register, pid: int) -> int:
    t = reg.residents(actor=ADMIN, include_removed=True).to_pylist()
    return int(next(r["resident_code"] for r in t if r["person_id"] == pid))


NAMES = {"family_name": "山田", "given_name": "花", "family_name_kana": "ヤマダ",
         "given_name_kana": "ハナ"}


def base_event(reg: Register, kind: str) -> dict[str, Any]:
    """A valid notification of ``kind`` against the tiny municipality."""
    e: dict[str, Any] = {"notification_id": nid(), "kind": kind, "notified_date": TODAY,
                         "event_date": TODAY - D(1)}
    if kind == "birth":
        e.update(NAMES, household_id=1, relationship="子", sex=2)
    elif kind == "move_in":
        fresh = 5_000_000 + next(_ids)  # a move-in wrongly applied leaves the next one valid
        e.update(NAMES, resident_code=make_code(fresh), birth_date=dt.date(1990, 4, 1), sex=2,
                 relationship="世帯主", previous_address="大阪府大阪市北区1番地",
                 my_number=make_my_number(fresh), **ADDR)
    elif kind in ("death", "code_change", "ex_officio_removal"):
        e["resident_code"] = code_of(reg, {"death": 2, "code_change": 6,
                                           "ex_officio_removal": 8}[kind])
    elif kind == "move_out":
        e.update(resident_code=code_of(reg, 4), destination="大阪府大阪市北区1番地",
                 event_date=TODAY + D(3))
    elif kind == "move_within":
        e.update(resident_code=code_of(reg, 10), **ADDR)
    elif kind == "household_change":
        e.update(resident_code=code_of(reg, 5), household_action="split")
    elif kind == "name_change":
        e.update(resident_code=code_of(reg, 3), family_name="新田", family_name_kana="ニッタ")
    elif kind == "my_number":
        e.update(resident_code=code_of(reg, 7), my_number=make_my_number(777))
    return e


_NAME_COLS = ("family_name", "given_name")
_KANA_COLS = ("family_name_kana", "given_name_kana")
_ADDR_COLS = ("postal_code", "town", "street", "building")
#: kind -> the columns it uses (beyond notification_id, kind and the two dates)
USES: dict[str, tuple[str, ...]] = {
    "birth": (*_NAME_COLS, *_KANA_COLS, "sex", "birth_date", "relationship", "domicile",
              "domicile_head"),
    "move_in": (*_NAME_COLS, *_KANA_COLS, "resident_code", "birth_date", "sex", "relationship",
                *_ADDR_COLS, "previous_address", "my_number", "domicile", "domicile_head"),
    "death": ("resident_code",),
    "move_out": ("resident_code", "destination"),
    "move_within": ("resident_code", *_ADDR_COLS),
    "household_change": ("resident_code", "household_action"),
    "name_change": ("resident_code", *_NAME_COLS, *_KANA_COLS),
    "code_change": ("resident_code",),
    "my_number": ("resident_code", "my_number"),
    "ex_officio_removal": ("resident_code",),
}
_COMMON = ("notification_id", "kind", "notified_date", "event_date")


def bad_values(kind: str, column: str) -> list[Any]:
    if column == "notification_id":
        return ["\x00", "a\x00b", " ", "\ud800"]
    if column == "kind":
        return ["Birth", "birth ", "", "転入", "\x00", "move-in", "unknown"]
    if column in ("notified_date", "event_date"):
        future = FUTURE_DATES if kind != "move_out" or column != "event_date" \
            else [TODAY + D(15), TODAY + D(400)]
        return ANCIENT_DATES + future
    if column == "birth_date":
        return BAD_DATES
    if column in ("resident_code", "new_head_code"):
        return BAD_CODES
    if column == "my_number":
        return BAD_MY_NUMBERS
    if column in _KANA_COLS:
        return BAD_KANA
    if column == "postal_code":
        return BAD_POSTAL
    if column == "sex":
        return BAD_SEX
    if column == "household_action":
        return ["", "New_head", "dissolve", "split\x00"]
    if column == "building":
        return [v for v in BAD_TEXT if v.strip()]
    return BAD_TEXT


#: column -> other columns an error about it may rightly name
RELATED = {"notified_date": {"event_date"}, "event_date": {"notified_date", "birth_date"},
           "birth_date": {"event_date"}, "town": {"street"}, "street": {"town"},
           "family_name_kana": {"family_name"}, "given_name_kana": {"given_name"}}


def draw_case(data: st.DataObject) -> tuple[str, str, Any]:
    kind = data.draw(st.sampled_from(sorted(USES)), label="kind")
    column = data.draw(st.sampled_from((*_COMMON, *USES[kind])), label="column")
    return kind, column, data.draw(st.sampled_from(bad_values(kind, column)), label="value")


def fresh_arrival() -> dict[str, Any]:
    """A valid move-in from abroad (a code from the pool, a new household)."""
    return {"notification_id": nid(), "kind": "move_in", "notified_date": TODAY,
            "event_date": TODAY - D(2), "from_abroad": True, **NAMES,
            "birth_date": dt.date(1985, 1, 2), "sex": 1, "relationship": "世帯主",
            "previous_address": "アメリカ合衆国", **ADDR}



# -- node files ------------------------------------------------------------


def node_json_variants(doc: dict[str, Any]) -> list[bytes]:
    raw = json.dumps(doc).encode()
    return [
        b"", raw[: len(raw) // 2], b"\xff\xfe" + raw, b"[]", b"null", b"{}", b"42",
        json.dumps({**doc, "node_id": 131016}).encode(),
        json.dumps({**doc, "node_id": None}).encode(),
        json.dumps({**doc, "node_id": "１３１０１６"}).encode(),
        json.dumps({**doc, "node_id": "../x"}).encode(),
        json.dumps({**doc, "role": "center"}).encode(),
        json.dumps({**doc, "role": ["municipality"]}).encode(),
        json.dumps({**doc, "store": None}).encode(),
        json.dumps({**doc, "store": 5}).encode(),
        json.dumps({**doc, "store": "/nonexistent/dir/store.sqlite"}).encode(),
        json.dumps({**doc, "store": "postgresql://127.0.0.1:1/none"}).encode(),
        json.dumps({k: v for k, v in doc.items() if k != "store"}).encode(),
    ]


def trust_json_variants(doc: dict[str, Any]) -> list[bytes]:
    raw = json.dumps(doc).encode()
    peer = next(iter(doc["peers"]))
    keys = doc["peers"][peer]["keys"]

    def with_key(**kw: Any) -> bytes:
        d = json.loads(raw)
        d["peers"][peer]["keys"] = [{**keys[0], **kw}]
        return json.dumps(d).encode()

    return [
        b"", raw[: len(raw) // 2], b"\xff" + raw, b"[]", b"null", b"{}",
        json.dumps({**doc, "version": 99}).encode(),
        json.dumps({**doc, "peers": []}).encode(),
        json.dumps({**doc, "peers": {peer: None}}).encode(),
        json.dumps({**doc, "peers": {"../x": doc["peers"][peer]}}).encode(),
        json.dumps({**doc, "peers": {peer: {**doc["peers"][peer], "keys": None}}}).encode(),
        json.dumps({**doc, "peers": {peer: {**doc["peers"][peer], "keys": [5]}}}).encode(),
        with_key(signing_public="not base64!"), with_key(signing_public="AAAA"),
        with_key(encryption_public=None), with_key(valid_from="yesterday"),
        with_key(valid_from=None), with_key(retired_at="2020-13-01"), with_key(revoked="no"),
    ]


#: Values of the wrong type for a column (a dict row is not typed).
WRONG_TYPES = {"sex": ["男", 1.5, 2**70], "event_date": ["2024-13-45", 20240601, "昨日"],
               "resident_code": ["abc", -1, 1.5, "１２３４５６７８９０１"],
               "household_id": ["一", 2**70], "my_number": [-5, "x"],
               "family_name": [123, b"\xff"], "whole_household": ["yes"]}
