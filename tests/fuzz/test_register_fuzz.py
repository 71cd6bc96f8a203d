"""Fuzz the municipal register's entry points on SQLite and PostgreSQL.

* ``Register.load``: a valid residents table with one malformed value in one column at
  one row (every column of the load schema) is refused with an InvalidInputError whose
  ``rows`` name that row and column, and the register's content digest is unchanged.
* ``Register.notify`` / ``Register.apply``: a notification of each kind with one malformed
  value in one of the columns it uses is refused (a JukiError and a ValueError naming the
  column) and changes nothing; in a batch between two valid notifications it is exactly one
  rejected row (its position and column), and the two valid rows are still applied.

Tiny municipality (person ids, tests/register/regkit.py): household 1: 1 head, 2 妻;
household 2: 3 head, 4, 5; household 3: 6 head, 7, 8, 9; household 4: 10 alone;
household 5: 11 head, 12; household 6: 13 head, 14, 15.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest
from fuzzkit import (
    ANCIENT_DATES,
    BAD_KANA,
    BAD_NAMES,
    BAD_POSTAL,
    FUTURE_DATES,
    I64_MAX,
    TODAY,
    U64_MAX,
    Stores,
    assert_refused,
    error_class,
    fuzz,
    names_column,
    wrong_check,
)
from hypothesis import given
from hypothesis import strategies as st
from regkit import ADDR, ADMIN, CLERK, LG, MUNI, PREF, make_block, make_code, make_my_number
from regkit import tiny_municipality as tiny

from jukicore.register import Register, create_register

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


@pytest.fixture
def empty(targets: Callable[[], str]) -> Iterator[Stores[Register]]:
    stores = Stores(targets, lambda t: new_register(t, loaded=False))
    yield stores
    stores.close()


@pytest.fixture
def loaded(targets: Callable[[], str]) -> Iterator[Stores[Register]]:
    stores = Stores(targets, lambda t: new_register(t, loaded=True))
    yield stores
    stores.close()


# -- Register.load ----------------------------------------------------------------------------


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


def _bad_utf8() -> pa.Array:
    """Invalid UTF-8 in a string column (as a bulk path that skips validation sees it)."""
    return pa.array([b"\xff\xfe", b"ok"], pa.binary()).view(pa.string())


#: column -> (malformed values, columns an error about it may name)
LOAD_CASES: dict[str, list[Any]] = {
    "person_id": [-1, "duplicate"],
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


@fuzz(25)
@given(data=st.data())
def test_load_one_bad_value(empty: Stores[Register], data: st.DataObject) -> None:
    column = data.draw(st.sampled_from(sorted(LOAD_CASES)), label="column")
    value = data.draw(st.sampled_from(LOAD_CASES[column]), label="value")
    base = load_table()
    row = data.draw(st.integers(0, base.num_rows - 1), label="row")
    table = with_value(base, column, row, value)
    with empty.example() as reg:
        load_refused(reg, table, column, row, value)


def load_refused(empty: Register, table: pa.Table, column: str, row: int, value: Any) -> None:
    before = empty.content_digest()
    try:
        empty.load(table, actor=ADMIN)
    except Exception as exc:
        assert_refused(exc)
        assert empty.content_digest() == before, "a refused load changed the register"
        cols = LOAD_RELATED.get(column, {column})
        rows = getattr(exc, "rows", ())
        assert any(r.column in cols and r.row in (row, (row + 1) % table.num_rows)
                   for r in rows), f"the error names no row {row} / column {column}: {exc}"
    else:
        pytest.fail(f"loaded a table with {column}={value!r} at row {row}")


def test_load_valid_base_table(empty: Stores[Register]) -> None:
    """The fuzz's base table loads (so every refusal above is the malformed value's)."""
    report = empty.get().load(load_table(), actor=ADMIN)
    assert report.residents == 15


@pytest.mark.parametrize("make", ["polars", "reader", "batch"])
def test_load_any_arrow_object(empty: Stores[Register], make: str) -> None:
    """Register.load takes any Arrow table-like object, not only a pa.Table."""
    import polars as pl

    table = load_table()
    obj: Any = {"polars": lambda: pl.from_arrow(table),
                "reader": lambda: pa.RecordBatchReader.from_batches(table.schema,
                                                                    table.to_batches()),
                "batch": lambda: table.combine_chunks().to_batches()[0]}[make]()
    reg = empty.get()
    before = reg.content_digest()
    try:
        report = reg.load(obj, actor=ADMIN)
    except Exception as exc:
        assert_refused(exc)
        assert reg.content_digest() == before
        pytest.fail(f"a {make} table was refused: {type(exc).__name__}: {exc}")
    assert report.residents == 15


# -- notifications --------------------------------------------------------------------------


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


@fuzz(30)
@given(data=st.data())
def test_notify_one_bad_value(loaded: Stores[Register], data: st.DataObject) -> None:
    case = draw_case(data)
    with loaded.example() as reg:
        notify_refused(reg, *case)


def notify_refused(loaded: Register, kind: str, column: str, value: Any) -> None:
    accepted = {column} | RELATED.get(column, set())
    event = {**base_event(loaded, kind), column: value}
    before = loaded.content_digest()
    try:
        loaded.notify(actor=CLERK, today=TODAY, **event)
    except Exception as exc:
        assert_refused(exc)
        assert loaded.content_digest() == before, f"refused {kind} changed the register"
        assert names_column(exc, accepted), f"the error names no column {column}: {exc}"
    else:
        pytest.fail(f"{kind} with {column}={value!r} was applied")

    # The same row between two valid ones: one rejected row, the others applied.
    count = loaded.counts()["residents"]
    bad = {**base_event(loaded, kind), column: value}
    try:
        report = loaded.apply([fresh_arrival(), bad, fresh_arrival()], actor=CLERK, today=TODAY)
    except Exception as exc:
        pytest.fail(f"one bad row aborted the batch: {type(exc).__name__}: {exc}")
    assert report.applied == 2, report
    assert [(r.row, r.column in accepted) for r in report.rejected] == [(1, True)], \
        report.rejected
    cls = error_class(report.rejected[0].error)
    assert cls is not None and issubclass(cls, ValueError), report.rejected[0]
    assert loaded.counts()["residents"] == count + 2


def test_base_events_are_valid(loaded: Stores[Register]) -> None:
    """Every base notification applies (so each refusal above is the malformed value's)."""
    reg = loaded.get()
    for kind in USES:
        report = reg.apply([base_event(reg, kind)], actor=CLERK, today=TODAY)
        assert report.rejected == (), (kind, report.rejected)


#: Values of the wrong type for a column (a dict row is not typed).
WRONG_TYPES = {"sex": ["男", 1.5, 2**70], "event_date": ["2024-13-45", 20240601, "昨日"],
               "resident_code": ["abc", -1, 1.5, "１２３４５６７８９０１"],
               "household_id": ["一", 2**70], "my_number": [-5, "x"],
               "family_name": [123, b"\xff"], "whole_household": ["yes"]}


@fuzz(20)
@given(case=st.sampled_from([(c, v) for c, vs in WRONG_TYPES.items() for v in vs]))
def test_notify_wrong_type(loaded: Stores[Register], case: tuple[str, Any]) -> None:
    with loaded.example() as reg:
        wrong_type_refused(reg, *case)


def wrong_type_refused(loaded: Register, column: str, value: Any) -> None:
    kind = "name_change" if column in ("family_name", "household_id", "whole_household") \
        else "move_in"
    event = {**base_event(loaded, kind), column: value}
    before = loaded.content_digest()
    try:
        loaded.notify(actor=CLERK, today=TODAY, **event)
    except Exception as exc:
        assert_refused(exc)
        assert loaded.content_digest() == before, "a refused notification changed the register"
        assert names_column(exc, column), f"the error names no column {column}: {exc}"
    else:
        pytest.fail(f"{column}={value!r} was applied")


@fuzz(15)
@given(code=st.one_of(st.sampled_from(["abc", "", "１２３４５６７８９０１", "-1", " 1", "1e5"]),
                      st.sampled_from([-1, U64_MAX, 2**64, 1.5, None])))
def test_lookups_refuse_malformed_codes(loaded: Stores[Register], code: Any) -> None:
    """resident() and history() with a malformed code: an InvalidInputError, not a bare
    ValueError/OverflowError or a silent "not found"."""
    reg = loaded.get()
    for lookup in (reg.resident, reg.history):
        try:
            lookup(code, actor=ADMIN)
        except Exception as exc:
            assert_refused(exc)
            assert not isinstance(exc, LookupError), f"{code!r}: {type(exc).__name__}: {exc}"
        else:
            pytest.fail(f"{lookup.__name__}({code!r}) answered")
