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

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest
from fuzzcases import (
    LOAD_CASES,
    LOAD_RELATED,
    RELATED,
    USES,
    WRONG_TYPES,
    base_event,
    draw_case,
    fresh_arrival,
    load_table,
    new_register,
    with_value,
)
from fuzzkit import (
    TODAY,
    U64_MAX,
    Stores,
    assert_refused,
    error_class,
    fuzz,
    names_column,
)
from hypothesis import given
from hypothesis import strategies as st
from regkit import ADMIN, CLERK

from jukicore.register import Register


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


@pytest.mark.parametrize("make", ["polars", "reader", "table"])
def test_apply_any_arrow_object(loaded: Stores[Register], make: str) -> None:
    """Register.apply takes any Arrow table-like object: a valid arrival is applied."""
    import polars as pl

    from jukicore.register import events_table

    table = events_table([fresh_arrival()])
    obj: Any = {"polars": lambda: pl.from_arrow(table),
                "reader": lambda: pa.RecordBatchReader.from_batches(table.schema,
                                                                    table.to_batches()),
                "table": lambda: table}[make]()
    with loaded.example() as reg:
        try:
            report = reg.apply(obj, actor=CLERK, today=TODAY)
        except Exception as exc:
            pytest.fail(f"a {make} table of events was refused: {type(exc).__name__}: {exc}")
        assert report.applied == 1, report.rejected
