"""A notification's content digest, computed for a whole table in Rust
(``_jukicore.record_digests``), is byte for byte the Python definition
(``notifications.row_digest``): registers store these digests, so a re-sent notification
is recognised whatever computed its digest."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jukicore import InvalidInputError
from jukicore._jukicore import record_digests
from jukicore.register.events import EVENT_SCHEMA
from jukicore.register.notifications import row_digest

# any text, control characters, quotes, backslashes, non-BMP characters and U+2028 included
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def _value(t: pa.DataType) -> st.SearchStrategy[Any]:
    if pa.types.is_string(t):
        return _text
    if pa.types.is_date32(t):
        return st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31))
    if pa.types.is_boolean(t):
        return st.booleans()
    if pa.types.is_integer(t):
        bits = t.bit_width
        if pa.types.is_signed_integer(t):
            return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return st.integers(0, 2 ** bits - 1)
    if pa.types.is_list(t):
        return st.lists(st.none() | _value(t.value_type), max_size=3)
    if pa.types.is_struct(t):
        return st.fixed_dictionaries({f.name: st.none() | _value(f.type) for f in t})
    raise AssertionError(f"no strategy for {t}")


_rows = st.lists(st.fixed_dictionaries({}, optional={f.name: st.none() | _value(f.type)
                                                     for f in EVENT_SCHEMA}), max_size=8)


@settings(max_examples=300, deadline=None)
@given(_rows)
def test_table_digests_equal_the_row_definition(rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    batches = table.combine_chunks().to_batches()
    got = record_digests(batches[0]) if batches else []
    assert got == [row_digest(r) for r in table.to_pylist()]


def test_known_digests_never_change() -> None:
    """Digests already stored in registers: the bytes of the definition are fixed."""
    rows = [{"notification_id": "N-1", "kind": "birth", "event_date": dt.date(2026, 11, 30),
             "sex": 2, "whole_household": False, "from_abroad": True,
             "restated_relationships": [{"resident_code": 1, "relationship": "子"}]},
            {}]
    batch = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA).to_batches()[0]
    expected = [row_digest(r) for r in pa.Table.from_pylist(rows, schema=EVENT_SCHEMA).to_pylist()]
    assert record_digests(batch) == expected
    # sha256(b'{}'): a row of nothing but nulls and false flags
    assert expected[1] == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    # sha256 of the canonical JSON written out by hand
    assert expected[0] == hashlib.sha256(
        '{"event_date":"2026-11-30","from_abroad":true,"kind":"birth","notification_id":"N-1",'
        '"restated_relationships":[{"relationship":"子","resident_code":1}],"sex":2}'
        .encode()).hexdigest()
    assert expected[0] == "0a595b577363a88dbffeb02d9020deb1e51d213a73303a41bde1698446d369dd"


def test_not_a_record_batch_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="record batch"):
        record_digests(pa.array([1, 2, 3]))
    with pytest.raises(InvalidInputError, match="Arrow array"):
        record_digests([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no canonical JSON"):
        record_digests(pa.RecordBatch.from_pydict({"x": pa.array([1.5])}))
