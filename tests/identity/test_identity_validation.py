"""The identity store's apply goes through the one validation (jukicore.validate):
every bad value refuses the batch naming its row and column, and changes nothing.
Any Arrow object is accepted. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from jukicore.codes import CodeRegistry, is_valid_resident_code
from jukicore.errors import InvalidInputError
from jukicore.identity.store import IDENTITY_SCHEMA, IdentityStore, create_identity_store

MUNI = "131016"
D = dt.date(2024, 4, 1)
_codes = CodeRegistry().generate(50)


@pytest.fixture
def store(db_target: str) -> Iterator[IdentityStore]:
    st = create_identity_store(db_target, node_id="130001", kind="prefecture")
    yield st
    st.close()


def change(seq: int, **kw: Any) -> dict[str, Any]:
    row = {"seq": seq, "resident_code": int(_codes[seq]), "previous_resident_code": None,
           "family_name": "佐藤", "given_name": "花子", "birth_date": dt.date(1980, 1, 2),
           "sex": 2, "address": "東京都千代田区丸の内1丁目1番1号", "status": "resident",
           "change_date": D, "change_reason": "load"}
    row.update(kw)
    return row


def _apply(st: IdentityStore, rows: list[dict[str, Any]] | Any, sender: str = MUNI,
           n: int | None = None) -> Any:
    n = len(rows) if n is None else n
    data = rows
    if isinstance(rows, list):
        try:  # types inferred: a negative code stays negative
            data = pa.Table.from_pylist(rows)
        except OverflowError:  # 2**64 - 1 fits the schema's uint64
            data = pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA)
    return st.apply_changes(sender=sender, packet_id=f"p-{id(data)}", first_seq=1, last_seq=n,
                            changes=data, actor=st.node_id)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"family_name": "佐\x00藤"}, "family_name"),
    ({"given_name": " 花子"}, "given_name"),
    ({"address": "東京都\n千代田区"}, "address"),
    ({"birth_date": dt.date(1800, 1, 1)}, "birth_date"),
    ({"birth_date": dt.date.today() + dt.timedelta(days=1)}, "birth_date"),
    ({"change_date": dt.date(1, 1, 1)}, "change_date"),
    ({"sex": 9}, "sex"),
    ({"status": "alive"}, "status"),
    ({"change_reason": "whatever"}, "change_reason"),
    ({"resident_code": 2**64 - 1}, "resident_code"),
    ({"resident_code": -1}, "resident_code"),
    ({"resident_code": 12345678901}, "resident_code"),
    ({"previous_resident_code": 123456789012}, "previous_resident_code"),
    ({"family_name": None}, "family_name"),
]


@pytest.mark.parametrize(("bad", "column"), BAD)
def test_bad_value_refuses_the_batch_naming_row_and_column(store: IdentityStore,
                                                           bad: dict[str, Any],
                                                           column: str) -> None:
    assert not is_valid_resident_code(12345678901)
    before = store.content_digest()
    rows = [change(1), change(2, **bad), change(3)]
    with pytest.raises(InvalidInputError) as e:
        _apply(store, rows)
    assert [(r.row, r.column) for r in e.value.rows] == [(1, column)]
    assert store.content_digest() == before and store.count() == 0


@pytest.mark.parametrize("sender", ["131017", "999997", "13101", "１３１０１６", "../x"])
def test_unknown_sender_is_refused(store: IdentityStore, sender: str) -> None:
    before = store.content_digest()
    with pytest.raises(InvalidInputError, match="sender"):
        _apply(store, [change(1)], sender=sender)
    assert store.content_digest() == before


def test_invalid_utf8_is_refused(store: IdentityStore) -> None:
    base = pa.Table.from_pylist([change(1), change(2)], schema=IDENTITY_SCHEMA)
    raw = [b"\xe4\xbd", "鈴木".encode()]
    offsets = np.cumsum([0, *[len(b) for b in raw]]).astype(np.int32)
    names = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(offsets.tobytes()),
                                                   pa.py_buffer(b"".join(raw))])
    bad = base.set_column(base.column_names.index("family_name"), "family_name", names)
    before = store.content_digest()
    with pytest.raises(InvalidInputError) as e:
        _apply(store, bad, n=2)
    assert [(r.row, r.column) for r in e.value.rows] == [(0, "family_name")]
    assert store.content_digest() == before


@pytest.mark.parametrize("producer", ["polars", "duckdb", "pandas"])
def test_any_arrow_object(store: IdentityStore, producer: str) -> None:
    import duckdb
    import pandas as pd
    import polars as pl

    t = pa.Table.from_pylist([change(1), change(2)], schema=IDENTITY_SCHEMA)
    data = {"polars": lambda: pl.from_arrow(t), "duckdb": lambda: duckdb.from_arrow(t),
            "pandas": lambda: pd.DataFrame(t.to_pandas(types_mapper=pd.ArrowDtype))}[producer]()
    res = _apply(store, data, n=2)
    assert res.applied == 2 and store.count() == 2
