"""Fuzz IdentityStore.apply_changes (a prefecture's or the center's store) on SQLite and
PostgreSQL: a valid batch with one malformed value in one column at one row, or malformed
arguments, is refused with a JukiError and a ValueError (naming the row and the column for a
value of the table) and leaves the store's content digest unchanged.
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
    BAD_NAMES,
    I64_MAX,
    TODAY,
    U64_MAX,
    Stores,
    assert_refused,
    fuzz,
    with_check,
    wrong_check,
)
from hypothesis import given
from hypothesis import strategies as st

from jukicore.identity import IDENTITY_SCHEMA, IdentityStore, create_identity_store

SENDER = "131016"  # 千代田区
PREF = "130001"
_ids = itertools.count()


@pytest.fixture
def stores(targets: Callable[[], str]) -> Iterator[Stores[IdentityStore]]:
    s = Stores(targets, lambda t: create_identity_store(t, node_id=PREF, kind="prefecture"))
    yield s
    s.close()


def batch(n: int = 4) -> pa.Table:
    """A valid batch of ``n`` move-ins (fresh codes at each call), seq 1..n."""
    first = 3_000_000 + 100 * next(_ids)
    return pa.Table.from_pylist([{
        "seq": i + 1, "resident_code": with_check("resident_code", first + i),
        "previous_resident_code": None, "family_name": "山田", "given_name": f"花{i}",
        "birth_date": dt.date(1980 + i, 1, 2), "sex": 1 + i % 2,
        "address": "東京都千代田区丸の内1丁目1番1号", "status": "resident",
        "change_date": TODAY - dt.timedelta(days=2), "change_reason": "move_in",
    } for i in range(n)], schema=IDENTITY_SCHEMA)


BAD_TEXT = [*(v for v in BAD_NAMES if not any("\ud800" <= c <= "\udfff" for c in v)), "utf8"]
#: column -> malformed values for one row
#: The identity store judges dates by the real clock (packets are applied as they arrive):
#: a birth after today, a change more than the 14 days a planned move-out may lie ahead.
_LATER = [dt.date.today() + dt.timedelta(days=15), dt.date.today() + dt.timedelta(days=400),
          dt.date(9999, 12, 31)]
CASES: dict[str, list[Any]] = {
    "resident_code": [wrong_check("resident_code", 31), 123456789012, U64_MAX, I64_MAX],
    "previous_resident_code": [wrong_check("resident_code", 32), 123456789012, U64_MAX,
                               "same"],
    "family_name": BAD_TEXT,
    "given_name": BAD_TEXT,
    "birth_date": [*ANCIENT_DATES, *_LATER],
    "sex": [0, 3, -1, 9],
    "address": BAD_TEXT,
    "status": ["alive", "", "RESIDENT", "resident ", "\x00"],
    "change_date": [*ANCIENT_DATES, *_LATER],
    "change_reason": ["unknown", "", "\x00", "move_in "],
}


def with_value(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    col = table.column(column).combine_chunks()
    typ = IDENTITY_SCHEMA.field(column).type
    if value == "utf8":
        vals = col.cast(pa.binary()).to_pylist()
        vals[row] = b"\xff\xfe\x00"
        new = pa.array(vals, pa.binary()).view(pa.string())
    else:
        vals = col.to_pylist()
        vals[row] = table.column("resident_code")[row].as_py() if value == "same" else value
        if isinstance(value, int) and value < 0 and pa.types.is_unsigned_integer(typ):
            typ = pa.int64()
        new = pa.array(vals, typ)
    i = table.column_names.index(column)
    return table.set_column(i, pa.field(column, new.type), new)


def refused(store: IdentityStore, table: pa.Table, *, column: str | None = None,
            row: int | None = None, **kw: Any) -> None:
    args: dict[str, Any] = {"sender": SENDER, "packet_id": f"p{next(_ids)}", "first_seq": 1,
                            "last_seq": 4, "actor": PREF}
    args.update(kw)
    before = store.content_digest()
    try:
        store.apply_changes(changes=table, **args)
    except Exception as exc:
        assert_refused(exc)
        assert store.content_digest() == before, "a refused batch changed the store"
        if column is not None:
            rows = getattr(exc, "rows", ())
            assert any(r.row == row and r.column == column for r in rows), \
                f"the error names no row {row} / column {column}: {exc}"
    else:
        pytest.fail(f"applied ({column}={table.column(column)[row] if column else kw})")


@fuzz(25)
@given(data=st.data())
def test_one_bad_value(stores: Stores[IdentityStore], data: st.DataObject) -> None:
    column = data.draw(st.sampled_from(sorted(CASES)), label="column")
    value = data.draw(st.sampled_from(CASES[column]), label="value")
    base = batch()
    row = data.draw(st.integers(0, base.num_rows - 1), label="row")
    with stores.example() as store:
        refused(store, with_value(base, column, row, value), column=column, row=row)


@fuzz(20)
@given(arg=st.sampled_from([
    ("sender", "999999"), ("sender", "131017"), ("sender", "../x"), ("sender", ""),
    ("sender", "center"), ("sender", PREF), ("sender", "１３１０１６"), ("sender", "131016\x00"),
    ("packet_id", ""), ("packet_id", "\x00"), ("packet_id", "../../x"),
    ("first_seq", 0), ("first_seq", -1), ("first_seq", True), ("first_seq", 2**64),
    ("first_seq", 1.5), ("last_seq", 2**64), ("last_seq", "4"), ("last_seq", None),
    ("changes", "rows"), ("changes", None), ("changes", "empty")]))
def test_bad_arguments(stores: Stores[IdentityStore], arg: tuple[str, Any]) -> None:
    name, value = arg
    table: Any = batch()
    if name == "changes":  # not a table, or a table without the columns
        table = {"rows": table.to_pylist(), None: None, "empty": pa.table({})}[value]
    with stores.example() as store:
        refused(store, table, **({} if name == "changes" else {name: value}))


@fuzz(15)
@given(mutation=st.sampled_from(["gap", "repeat", "reverse", "negative", "extra-column",
                                 "missing-column", "polars"]))
def test_bad_tables(stores: Stores[IdentityStore], mutation: str) -> None:
    """Sequence damage, columns that must not leave a municipality, other Arrow objects."""
    import polars as pl

    t = batch()
    seq = t.column("seq").to_pylist()
    if mutation == "polars":  # a valid batch in another Arrow library: applied
        with stores.example() as store:
            result = store.apply_changes(sender=SENDER, packet_id=f"p{next(_ids)}",
                                         first_seq=1, last_seq=4, changes=pl.from_arrow(t),
                                         actor=PREF)
            assert result.applied == 4
        stores.close()  # the next example starts from an empty store again
        return
    if mutation == "extra-column":
        t = t.append_column("domicile", pa.array(["東京都千代田区1番地"] * 4))
    elif mutation == "missing-column":
        t = t.drop_columns(["address"])
    else:
        seq = {"gap": [1, 2, 4, 5], "repeat": [1, 2, 2, 3], "reverse": [4, 3, 2, 1],
               "negative": [-1, 0, 1, 2]}[mutation]
        t = t.set_column(0, IDENTITY_SCHEMA.field("seq"), pa.array(seq, pa.int64()))
    with stores.example() as store:
        refused(store, t, first_seq=max(min(seq), 1), last_seq=max(seq))


def test_base_batch_is_valid(stores: Stores[IdentityStore]) -> None:
    """The fuzz's base batch applies (so each refusal above is the malformed value's)."""
    result = stores.get().apply_changes(sender=SENDER, packet_id="ok", first_seq=1,
                                        last_seq=4, changes=batch(), actor=PREF)
    assert result.applied == 4
