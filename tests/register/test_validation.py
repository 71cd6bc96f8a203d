"""The one validation (jukicore.validate) at the register's entries: apply and load.

Every test runs on SQLite and PostgreSQL; every refusal changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from regkit import (
    ADMIN,
    CLERK,
    LG,
    MUNI,
    PREF,
    TODAY,
    code_of,
    make_block,
    make_code,
    make_my_number,
    move_in,
    tiny_municipality,
)

from jukicore.errors import ConflictError, InvalidInputError, NotFoundError
from jukicore.register import Register, create_register, open_register

D = dt.timedelta


# -- apply: one bad value is one rejected row, naming its column ---------------------------

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"birth_date": dt.date(1800, 1, 1)}, "birth_date"),
    ({"birth_date": dt.date(1, 1, 1)}, "birth_date"),
    ({"birth_date": TODAY + D(1)}, "birth_date"),
    ({"resident_code": 123456789012}, "resident_code"),  # 12 digits
    ({"resident_code": 2**64 - 1}, "resident_code"),
    ({"resident_code": -5}, "resident_code"),
    ({"resident_code": make_code(4242) // 10 * 10 + (make_code(4242) + 1) % 10},
     "resident_code"),  # wrong check digit
    ({"my_number": 1234567890123}, "my_number"),  # 13 digits
    ({"my_number": 2**64 - 1}, "my_number"),
    ({"my_number": make_my_number(12345) ^ 1}, "my_number"),
    ({"family_name": " 山田"}, "family_name"),
    ({"family_name": "山田\u3000"}, "family_name"),
    ({"family_name": "山\x00田"}, "family_name"),
    ({"given_name": "健\n"}, "given_name"),
    ({"given_name": "健\u202e"}, "given_name"),
    ({"family_name": "山" * 51}, "family_name"),
    ({"family_name_kana": "やまだ"}, "family_name_kana"),  # hiragana
    ({"family_name_kana": "ﾔﾏﾀﾞ"}, "family_name_kana"),  # half-width
    ({"family_name_kana": "Yamada"}, "family_name_kana"),
    ({"given_name_kana": "ケン ジ"}, "given_name_kana"),  # ASCII space
    ({"postal_code": "١٠١٠٠٢١"}, "postal_code"),  # Arabic-Indic digits pass str.isdigit
    ({"postal_code": "１０１００２１"}, "postal_code"),  # full-width digits
    ({"postal_code": "101002"}, "postal_code"),
    ({"postal_code": "0600000"}, "postal_code"),  # Sapporo's, not Chiyoda's
    ({"sex": 0}, "sex"),
    ({"sex": 300}, "sex"),  # out of int8 range
    ({"town": "外神田\x7f"}, "town"),
    ({"street": "1" * 101}, "street"),
    ({"previous_address": "大阪府\x00"}, "previous_address"),
    ({"notification_id": "x" * 65}, "notification_id"),
    ({"household_id": -3}, "household_id"),
]


@pytest.mark.parametrize(("change", "column"), BAD_VALUES)
def test_apply_rejects_a_bad_value_as_one_row(register: Register, change: dict[str, Any],
                                              column: str) -> None:
    before = register.content_digest()
    good = move_in("ok1", family_name="佐々木", postal_code="1010021")
    bad = move_in("bad1", **{"resident_code": make_code(777), **change})
    rep = register.apply([bad], actor=CLERK, today=TODAY)
    assert rep.applied == 0 and len(rep.rejected) == 1, rep
    r = rep.rejected[0]
    assert (r.row, r.column, r.error) == (0, column, "InvalidInputError"), r
    assert column in r.reason
    assert register.content_digest() == before
    # in a batch, the other rows still apply
    rep = register.apply([good, bad], actor=CLERK, today=TODAY)
    assert rep.applied == 1 and [(x.row, x.column) for x in rep.rejected] == [(1, column)]


def test_apply_future_event_and_year_floor(register: Register) -> None:
    code = code_of(register, 1)
    before = register.content_digest()
    rep = register.apply([
        {"notification_id": "f1", "kind": "name_change", "notified_date": TODAY,
         "event_date": dt.date(1800, 1, 1), "resident_code": code, "given_name": "一"},
        {"notification_id": "f2", "kind": "death", "notified_date": TODAY + D(3),
         "event_date": TODAY + D(3), "resident_code": code},
    ], actor=CLERK, today=TODAY)
    assert [(r.row, r.column) for r in rep.rejected] == [(0, "event_date"), (1, "notified_date")]
    assert register.content_digest() == before


def test_apply_rejects_invalid_utf8_and_surrogates(register: Register) -> None:
    before = register.content_digest()
    # invalid UTF-8 bytes in a string column, as a C-interface producer may hand them over
    raw = [b"\xff\xfe", "山田".encode()]
    offsets = np.cumsum([0, *[len(b) for b in raw]]).astype(np.int32)
    names = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(offsets.tobytes()),
                                                   pa.py_buffer(b"".join(raw))])
    rows = [move_in("u1", resident_code=make_code(501)),
            move_in("u2", resident_code=make_code(502))]
    table = pa.Table.from_pylist(rows)
    table = table.set_column(table.column_names.index("family_name"), "family_name", names)
    rep = register.apply(table, actor=CLERK, today=TODAY)
    assert rep.applied == 1
    assert [(r.row, r.column) for r in rep.rejected] == [(0, "family_name")]
    assert "UTF-8" in rep.rejected[0].reason
    after_good = register.content_digest()
    assert after_good != before
    rep = register.apply([move_in("u3", resident_code=make_code(503), given_name="\ud800")],
                         actor=CLERK, today=TODAY)
    assert [(r.row, r.column) for r in rep.rejected] == [(0, "given_name")]
    assert register.content_digest() == after_good


def test_apply_codes_as_strings_and_out_of_range_in_a_day(register: Register) -> None:
    """A day's table with one huge and one negative code: two rejected rows, the rest
    applied (the whole batch used to abort with an OverflowError / ArrowInvalid)."""
    code = code_of(register, 1)
    table = pa.table({
        "notification_id": ["a", "b", "c"],
        "kind": ["name_change"] * 3,
        "notified_date": [TODAY] * 3,
        "event_date": [TODAY] * 3,
        "resident_code": pa.array([str(code).zfill(11), "-1", "18446744073709551616"]),
        "given_name": ["一", "二", "三"],
    })
    before = register.content_digest()
    rep = register.apply(table, actor=CLERK, today=TODAY)
    assert rep.applied == 1
    assert [(r.row, r.column) for r in rep.rejected] == [(1, "resident_code"),
                                                         (2, "resident_code")]
    assert register.content_digest() != before


def test_apply_odd_inputs_are_typed_errors(register: Register) -> None:
    before = register.content_digest()
    with pytest.raises(InvalidInputError):
        register.apply(42, actor=CLERK, today=TODAY)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        register.apply(["not a dict"], actor=CLERK, today=TODAY)  # type: ignore[list-item]
    rep = register.apply([{"notification_id": "x1", "kind": "death", "notified_date": TODAY,
                           "event_date": TODAY, "resident_code": [1, 2]}],
                         actor=CLERK, today=TODAY)
    assert [(r.row, r.column) for r in rep.rejected] == [(0, "resident_code")]
    assert register.content_digest() == before


# -- load ----------------------------------------------------------------------------------


def _with(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    return table.set_column(table.column_names.index(column), column,
                            pa.array(values, table.schema.field(column).type))


def test_load_names_every_bad_row_and_changes_nothing(empty_register: Register) -> None:
    residents, households = tiny_municipality()
    before = empty_register.content_digest()
    bad = _with(residents, "given_name", 3, "太\x00郎")
    bad = _with(bad, "birth_date", 5, dt.date(1800, 1, 1))
    bad = _with(bad, "postal_code", 7, "١٠٠٠٠٠٥")
    bad = _with(bad, "family_name_kana", 9, "さとう")
    bad = _with(bad, "resident_since", 10, TODAY + D(30))
    bad = _with(bad, "address_since", 11, dt.date(1960, 1, 1))  # before birth
    bad = _with(bad, "municipality", 12, "新宿区")
    with pytest.raises(InvalidInputError) as e:
        empty_register.load(bad, households, actor=ADMIN, today=TODAY)
    assert [(r.row, r.column) for r in e.value.rows] == [
        (3, "given_name"), (5, "birth_date"), (7, "postal_code"), (9, "family_name_kana"),
        (10, "resident_since"), (11, "address_since"), (12, "municipality")]
    assert "(and 2 more)" in str(e.value)
    assert empty_register.content_digest() == before


def test_load_invalid_utf8_is_refused(empty_register: Register) -> None:
    residents, households = tiny_municipality(1)
    raw = [b"Sat\xc3", *[v.encode() for v in residents.column("family_name").to_pylist()[1:]]]
    offsets = np.cumsum([0, *[len(b) for b in raw]]).astype(np.int32)
    col = pa.Array.from_buffers(pa.string(), len(raw), [None, pa.py_buffer(offsets.tobytes()),
                                                        pa.py_buffer(b"".join(raw))])
    bad = residents.set_column(residents.column_names.index("family_name"), "family_name", col)
    before = empty_register.content_digest()
    with pytest.raises(InvalidInputError) as e:
        empty_register.load(bad, households, actor=ADMIN, today=TODAY)
    assert [(r.row, r.column) for r in e.value.rows] == [(0, "family_name")]
    assert empty_register.content_digest() == before


def test_and_n_more_is_exact(empty_register: Register) -> None:
    residents, households = tiny_municipality(10)  # 25 residents
    n = residents.num_rows
    bad = residents.set_column(residents.column_names.index("postal_code"), "postal_code",
                               pa.array(["12345"] * n))
    with pytest.raises(InvalidInputError) as e:
        empty_register.load(bad, households, actor=ADMIN, today=TODAY)
    assert len(e.value.rows) == n
    assert f"(and {n - 5} more)" in str(e.value)


def test_load_twice_is_refused_and_changes_nothing(empty_register: Register) -> None:
    residents, households = tiny_municipality()
    empty_register.load(residents, households, actor=ADMIN, today=TODAY)
    before = empty_register.content_digest()
    counts = empty_register.counts()
    with pytest.raises(ConflictError, match="15 of 15 residents are already in the register"):
        empty_register.load(residents, households, actor=ADMIN, today=TODAY)
    assert empty_register.content_digest() == before and empty_register.counts() == counts
    # one person already registered among new ones: the whole load is refused
    one = residents.slice(0, 1).set_column(
        residents.column_names.index("person_id"), "person_id", pa.array([1], pa.int64()))
    with pytest.raises(ConflictError, match="1 of 1 residents") as e:
        empty_register.load(one, None, actor=ADMIN, today=TODAY)
    assert [(r.row, r.column) for r in e.value.rows] == [(0, "family_name")]
    assert empty_register.content_digest() == before


def test_load_twice_with_codes_is_refused(empty_register: Register) -> None:
    residents, households = tiny_municipality(2)
    codes = pa.array(make_block(residents.num_rows).codes, pa.uint64())
    with_codes = residents.append_column("resident_code", codes)
    empty_register.load(with_codes, households, actor=ADMIN, today=TODAY)
    before = empty_register.content_digest()
    with pytest.raises(ConflictError, match="5 of 5 residents are already in the register"):
        empty_register.load(with_codes, households, actor=ADMIN, today=TODAY)
    assert empty_register.content_digest() == before


def test_load_odd_inputs_are_typed_errors(empty_register: Register) -> None:
    residents, households = tiny_municipality(2)
    before = empty_register.content_digest()
    with pytest.raises(InvalidInputError, match="Arrow table"):
        empty_register.load("residents.parquet", None, actor=ADMIN)
    listy = residents.set_column(residents.column_names.index("sex"), "sex",
                                 pa.array([[1]] * residents.num_rows))
    with pytest.raises(InvalidInputError) as e:
        empty_register.load(listy, households, actor=ADMIN, today=TODAY)
    assert {r.column for r in e.value.rows} == {"sex"}
    negative = _with(residents, "person_id", 0, -1)
    with pytest.raises(InvalidInputError) as e:
        empty_register.load(negative, households, actor=ADMIN, today=TODAY)
    assert e.value.rows[0].column == "person_id"
    assert empty_register.content_digest() == before


# -- init / open -----------------------------------------------------------------------


def test_create_register_checks_the_lg_code(db_target: str, tmp_path: Any) -> None:
    for lg, pref, muni, words in [
        ("131017", PREF, MUNI, "check digit"),
        ("13101", PREF, MUNI, "6 ASCII digits"),
        ("１３１０１６", PREF, MUNI, "6 ASCII digits"),
        ("131041", PREF, MUNI, "新宿区"),  # 新宿区's code
        (LG, "大阪府", MUNI, "東京都"),
        ("999997", PREF, MUNI, "not a known municipality"),
    ]:
        with pytest.raises(InvalidInputError, match=words):
            create_register(db_target, lg_code=lg, prefecture=pref, municipality=muni,
                            actor=ADMIN)
    if not db_target.startswith("postgres"):
        assert not (tmp_path / "store.db").exists()
    with create_register(db_target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                         actor=ADMIN) as reg:
        assert reg.lg_code == LG


def test_open_missing_sqlite_store_never_creates_it(tmp_path: Any) -> None:
    from jukicore.identity import open_identity_store

    typo = tmp_path / "typo.db"
    with pytest.raises(NotFoundError, match="does not exist"):
        open_register(typo)
    assert not typo.exists()
    with pytest.raises(NotFoundError):
        open_register(f"sqlite:///{typo}")
    assert not typo.exists()
    with pytest.raises(NotFoundError):
        open_identity_store(typo)
    assert not typo.exists()
    assert list(tmp_path.iterdir()) == []
