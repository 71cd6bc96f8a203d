"""Match keys of names and addresses (the rules: ``docs/normalization.md``).

A key is what a lookup compares: 渡邊 ユーコ and 渡辺 ゆうこ give one name key, 1丁目2番3号
and １－２－３ one address key. Keys are derived, never stored in place of the text.

``name_key`` / ``address_key`` take one ``str``; ``name_keys`` / ``address_keys`` take a
column and answer in kind: a list (of ``str`` or ``None``) gives a list, a
``pyarrow.Array`` or ``ChunkedArray`` of type string or large_string gives one of the
same type (string_view: large_string), any other Arrow array (``__arrow_c_array__``)
a ``pyarrow.Array``, an Arrow stream (``__arrow_c_stream__``: a polars Series, ...) a
``pyarrow.ChunkedArray``. Nulls stay null. Anything else raises
:class:`jukicore.errors.InvalidInputError` (a ``ValueError``).
"""

from __future__ import annotations

from typing import Any, overload

import pyarrow as pa

from jukicore import _jukicore
from jukicore.errors import BadRow, InvalidInputError

__all__ = ["address_key", "address_keys", "name_key", "name_keys"]


def _one(s: object, fn: Any, what: str) -> str:
    if not isinstance(s, str):
        raise InvalidInputError(f"{what} key of a str, not {type(s).__name__}")
    out = fn(pa.array([s], pa.string()))
    return str(out[0].as_py())


def name_key(s: str) -> str:
    """The match key of a family or given name."""
    return _one(s, _jukicore.name_keys, "a name")


def address_key(s: str) -> str:
    """The match key of an address."""
    return _one(s, _jukicore.address_keys, "an address")


def _column(col: object, fn: Any, what: str) -> Any:
    if isinstance(col, str):
        raise InvalidInputError(f"{what} keys of a column; for one str use {what}_key")
    if isinstance(col, list | tuple):
        bad = [BadRow(i, f"not a str but {type(v).__name__}")
               for i, v in enumerate(col) if v is not None and not isinstance(v, str)]
        if bad:
            raise InvalidInputError(f"{what} keys of strings only", bad)
        out: list[str | None] = fn(pa.array(col, pa.string())).to_pylist()
        return out
    if isinstance(col, pa.Array) and pa.types.is_string_view(col.type):
        return fn(col.cast(pa.large_string()))
    if not isinstance(col, pa.ChunkedArray) and hasattr(col, "__arrow_c_array__"):
        return fn(col)
    if not isinstance(col, pa.ChunkedArray) and hasattr(col, "__arrow_c_stream__"):
        col = pa.chunked_array(col)  # polars, duckdb ... (a stream of arrays)
    if isinstance(col, pa.ChunkedArray):
        chunked: Any = col
        typ = chunked.type
        if pa.types.is_string_view(typ):
            chunked, typ = chunked.cast(pa.large_string()), pa.large_string()
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise InvalidInputError(f"{what} keys of a string column, not {typ}")
        return pa.chunked_array([fn(c) for c in chunked.chunks], type=typ)
    raise InvalidInputError(
        f"{what} keys of a list of str, a pyarrow Array or ChunkedArray or another Arrow "
        f"array, not {type(col).__name__}")


@overload
def name_keys(col: list[str | None] | tuple[str | None, ...]) -> list[str | None]: ...
@overload
def name_keys(col: Any) -> Any: ...
def name_keys(col: Any) -> Any:
    """The name keys of a column (list, pyarrow Array or ChunkedArray, Arrow array)."""
    return _column(col, _jukicore.name_keys, "name")


@overload
def address_keys(col: list[str | None] | tuple[str | None, ...]) -> list[str | None]: ...
@overload
def address_keys(col: Any) -> Any: ...
def address_keys(col: Any) -> Any:
    """The address keys of a column (list, pyarrow Array or ChunkedArray, Arrow array)."""
    return _column(col, _jukicore.address_keys, "address")
