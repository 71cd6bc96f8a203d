"""Fuzz jukicore.codes: every function that takes a scalar or a column of codes.

Property: a well-formed input (an ``int``/numpy integer in range, or a string of exactly the
right number of ASCII digits) gets the right answer in kind (checked against the check-digit
rules of DESIGN.md section 3, written out independently here); anything else raises
:class:`~jukicore.errors.InvalidInputError` (a JukiError and a ValueError) whose ``rows``
name exactly the bad positions of a column, and changes nothing (registry, block, issuer).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from fuzzkit import (
    U64_MAX,
    assert_refused,
    digit_strings,
    fuzz,
    malformed_digit_text,
    nested,
    not_an_int_or_str,
    odd_ints,
    oracle_check_digit,
    with_check,
    wrong_check,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jukicore import errors
from jukicore.codes import (
    CodeBlock,
    CodeRegistry,
    MyNumberIssuer,
    format_code,
    is_valid_lg_code,
    is_valid_my_number,
    is_valid_resident_code,
    lg_code_check_digit,
    my_number_check_digit,
    resident_code_check_digit,
)

# kind -> (body digits, check-digit function, full digits, validity function)
KINDS: dict[str, tuple[int, Callable[[Any], Any], int, Callable[[Any], Any]]] = {
    "resident_code": (10, resident_code_check_digit, 11, is_valid_resident_code),
    "my_number": (11, my_number_check_digit, 12, is_valid_my_number),
    "lg_code": (5, lg_code_check_digit, 6, is_valid_lg_code),
}


def well_formed(value: object, digits: int) -> int | None:
    """The value as an int when it is a well-formed ``digits``-digit code, else None."""
    if isinstance(value, str):
        return int(value) if re.fullmatch(rf"[0-9]{{{digits}}}", value, re.ASCII) else None
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer) and 0 <= int(value) < 10**digits:
        return int(value)
    return None


def expected(kind: str, role: str, v: int) -> object:
    """The right answer for one well-formed value: a check digit, or validity."""
    if role == "body":
        return oracle_check_digit(kind, v)
    return oracle_check_digit(kind, v // 10) == v % 10


def scalar_inputs(digits: int) -> st.SearchStrategy[Any]:
    n = digits
    in_range = st.integers(0, 10**n - 1)
    return st.one_of(
        digit_strings(n), in_range, in_range.map(np.uint64), in_range.map(np.int64),
        malformed_digit_text(n), odd_ints(n), not_an_int_or_str(),
        st.sampled_from([np.int8(-1), np.uint8(7), np.float64(1.0), np.bool_(True),
                         np.uint64(U64_MAX), np.int64(-(2**63)), np.str_("1" * n)]),
    )


def call(fn: Callable[[Any], Any], value: Any) -> tuple[Any, BaseException | None]:
    try:
        return fn(value), None
    except Exception as exc:  # judged by the caller: only InvalidInputError may come out
        return None, exc


@pytest.mark.parametrize("role", ["body", "full"])
@pytest.mark.parametrize("kind", sorted(KINDS))
@fuzz(80)
@given(data=st.data())
def test_scalar(kind: str, role: str, data: st.DataObject) -> None:
    body, check_fn, full, valid_fn = KINDS[kind]
    digits, fn = (body, check_fn) if role == "body" else (full, valid_fn)
    value = data.draw(scalar_inputs(digits), label="value")
    out, exc = call(fn, value)
    v = well_formed(value, digits)
    if v is None:
        assert exc is not None, f"malformed {value!r} accepted, answered {out!r}"
        assert isinstance(exc, errors.InvalidInputError), f"{type(exc).__name__}: {exc}"
        assert exc.rows == ()
        return
    assert exc is None, f"well-formed {value!r} refused: {type(exc).__name__}: {exc}"
    assert type(out) is (int if role == "body" else bool)
    assert out == expected(kind, role, v)


@pytest.mark.parametrize("width", [5, 6, 10, 11, 12])
@fuzz(60)
@given(data=st.data())
def test_format_code_scalar(width: int, data: st.DataObject) -> None:
    value = data.draw(scalar_inputs(width), label="value")
    out, exc = call(lambda x: format_code(x, width), value)
    v = well_formed(value, width)
    if v is None:
        assert isinstance(exc, errors.InvalidInputError), f"{value!r}: {exc!r} / {out!r}"
        return
    assert exc is None and out == f"{v:0{width}d}"


@fuzz(30)
@given(width=st.one_of(st.integers(-3, 20), st.sampled_from([None, 1.5, "11", U64_MAX])))
def test_format_code_width(width: Any) -> None:
    out, exc = call(lambda x: format_code(x, width), 1)
    if width in (5, 6, 10, 11, 12):
        assert exc is None and out == f"{1:0{width}d}"
    else:
        assert isinstance(exc, errors.InvalidInputError), f"width {width!r}: {exc!r} / {out!r}"


# -- columns ------------------------------------------------------------------------------


def check_column(fn: Callable[[Any], Any], column: Any, values: list[Any], kind: str, role: str,
                 digits: int, *, lenient: bool = False) -> None:
    """``values`` are the column's elements as Python objects (None for a null).

    ``lenient``: the container's element type is one the API may refuse as a whole
    (bytes, dictionary-encoded): a whole-column InvalidInputError is then fine too.
    """
    out, exc = call(fn, column)
    parsed = [well_formed(v, digits) for v in values]
    bad = {i for i, v in enumerate(parsed) if v is None}
    if exc is not None:
        assert isinstance(exc, errors.InvalidInputError), \
            f"{type(exc).__name__} leaked for {type(column).__name__}: {exc}"
        if lenient and not exc.rows:
            return
        assert bad, f"a well-formed column refused: {exc}"
        assert {r.row for r in exc.rows} == bad, \
            f"rows named {sorted(r.row for r in exc.rows)}, bad rows are {sorted(bad)}"
        return
    assert not bad, f"malformed rows {sorted(bad)} accepted ({[values[i] for i in bad]!r})"
    assert isinstance(out, np.ndarray) and out.shape == (len(values),)
    want = [expected(kind, role, v) for v in parsed if v is not None]
    assert out.tolist() == want


def column_values(digits: int) -> st.SearchStrategy[list[Any]]:
    good = st.one_of(digit_strings(digits), st.integers(0, 10**digits - 1))
    bad = st.one_of(malformed_digit_text(digits), odd_ints(digits), not_an_int_or_str(),
                    nested())
    return st.lists(st.one_of(good, good, bad), max_size=8)


@pytest.mark.parametrize("role", ["body", "full"])
@pytest.mark.parametrize("kind", sorted(KINDS))
@fuzz(60)
@given(data=st.data())
def test_python_sequences(kind: str, role: str, data: st.DataObject) -> None:
    body, check_fn, full, valid_fn = KINDS[kind]
    digits, fn = (body, check_fn) if role == "body" else (full, valid_fn)
    values = data.draw(column_values(digits), label="values")
    container = data.draw(st.sampled_from(["list", "tuple", "object-array"]), label="as")
    col: Any = {"list": list, "tuple": tuple}.get(container, lambda v: np.array(
        [*v, None], dtype=object)[:-1])(values)
    check_column(fn, col, values, kind, role, digits)


_NUMPY_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                 np.uint64, np.float32, np.float64, np.bool_, np.complex64, "datetime64[D]",
                 "U12", "S12"]


@pytest.mark.parametrize("role", ["body", "full"])
@pytest.mark.parametrize("kind", sorted(KINDS))
@fuzz(60)
@given(data=st.data())
def test_numpy_arrays(kind: str, role: str, data: st.DataObject) -> None:
    body, check_fn, full, valid_fn = KINDS[kind]
    digits, fn = (body, check_fn) if role == "body" else (full, valid_fn)
    dtype = np.dtype(data.draw(st.sampled_from(_NUMPY_DTYPES), label="dtype"))
    shape = data.draw(st.sampled_from([(0,), (1,), (3,), (7,), (), (2, 2)]), label="shape")
    if dtype.kind == "U":
        elements: st.SearchStrategy[Any] = st.one_of(
            digit_strings(digits), malformed_digit_text(digits).filter(
                lambda s: "\x00" not in s and "\ud800" not in s))
        arr = data.draw(hnp.arrays(dtype, shape, elements=elements), label="array")
    elif dtype.kind == "S":
        elements = st.one_of(digit_strings(digits).map(str.encode),
                             st.binary(max_size=12).filter(lambda b: not b.endswith(b"\0")))
        arr = data.draw(hnp.arrays(dtype, shape, elements=elements), label="array")
    else:
        arr = data.draw(hnp.arrays(dtype, shape), label="array")
    out, exc = call(fn, arr)
    if arr.ndim != 1 or dtype.kind in "fbcM":
        assert isinstance(exc, errors.InvalidInputError), \
            f"{dtype} shape {shape}: {type(exc).__name__ if exc else 'accepted'}: {exc or out}"
        return
    if dtype.kind == "S":  # bytes: digit strings or a refusal of the whole column
        values: list[Any] = [b.decode("ascii", "replace") for b in arr.tolist()]
        check_column(fn, arr, values, kind, role, digits, lenient=True)
        return
    check_column(fn, arr, arr.tolist(), kind, role, digits)


def _arrow_array(draw: st.DrawFn, digits: int) -> tuple[Any, list[Any], bool]:
    """(an Arrow array of an odd type, its elements for the oracle, lenient)."""
    kind = draw(st.sampled_from([
        "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "float64", "bool",
        "string", "large_string", "string_view", "binary", "large_binary", "dictionary",
        "list", "struct", "decimal", "date32", "timestamp", "null", "chunked", "chunked0"]))
    n = draw(st.integers(0, 6))
    strs = st.one_of(st.none(), digit_strings(digits), malformed_digit_text(digits).filter(
        lambda s: "\ud800" not in s))
    if kind.startswith(("int", "uint")):
        t = getattr(pa, kind)()
        info = np.iinfo(t.to_pandas_dtype())
        vals = draw(st.lists(st.one_of(st.none(), st.integers(int(info.min), int(info.max)),
                                       st.integers(0, 10**digits - 1).filter(
                                           lambda v: v <= info.max)), min_size=n, max_size=n))
        return pa.array(vals, t), vals, False
    if kind in ("string", "large_string", "string_view"):
        vals = draw(st.lists(strs, min_size=n, max_size=n))
        return pa.array(vals, getattr(pa, kind)()), vals, False
    if kind in ("binary", "large_binary"):
        vals = draw(st.lists(strs, min_size=n, max_size=n))
        enc = [None if v is None else v.encode() for v in vals]
        return pa.array(enc, getattr(pa, kind)()), vals, True
    if kind == "dictionary":
        vals = draw(st.lists(strs, min_size=n, max_size=n))
        return pa.array(vals, pa.string()).dictionary_encode(), vals, True
    if kind == "chunked":
        vals = draw(st.lists(st.integers(0, 10**digits - 1), min_size=n, max_size=n))
        cut = draw(st.integers(0, n))
        return pa.chunked_array([vals[:cut], vals[cut:]], pa.uint64()), vals, False
    if kind == "chunked0":
        return pa.chunked_array([], pa.uint64()), [], False
    odd = {
        "float64": lambda: pa.array(draw(st.lists(st.floats(), min_size=n, max_size=n))),
        "bool": lambda: pa.array([True] * n),
        "list": lambda: pa.array([[1, 2]] * n, pa.list_(pa.int64())),
        # (a one-field struct is a one-column table, taken as its column: see test_arrow_inputs)
        "struct": lambda: pa.array([{"a": 1, "b": 2}] * n),
        "decimal": lambda: pa.array([12345678901] * n, pa.decimal128(20, 0)),
        "date32": lambda: pa.array([0] * n, pa.date32()),
        "timestamp": lambda: pa.array([0] * n, pa.timestamp("s")),
        "null": lambda: pa.nulls(n),
    }[kind]()
    return odd, [_NO_CODE] * n, False


#: An element of a column whose type holds no codes (float, struct, date, ...).
_NO_CODE = object()


@pytest.mark.parametrize("role", ["body", "full"])
@pytest.mark.parametrize("kind", sorted(KINDS))
@fuzz(60)
@given(data=st.data())
def test_arrow_arrays(kind: str, role: str, data: st.DataObject) -> None:
    body, check_fn, full, valid_fn = KINDS[kind]
    digits, fn = (body, check_fn) if role == "body" else (full, valid_fn)
    arr, values, lenient = data.draw(st.composite(lambda d: _arrow_array(d, digits))(),
                                     label="arrow")
    if len(arr) == 0 or (values and values[0] is _NO_CODE):
        # empty, or of a type that holds no codes at all (float, struct, date, ...):
        # refused as a whole, or (empty) an empty answer
        out, exc = call(fn, arr)
        if exc is None and len(arr) == 0:
            assert isinstance(out, np.ndarray) and out.shape == (0,)
            return
        assert isinstance(exc, errors.InvalidInputError), \
            f"{arr.type} column: {type(exc).__name__ if exc else 'accepted'}: {exc or out}"
        return
    check_column(fn, arr, values, kind, role, digits, lenient=lenient)


@pytest.mark.parametrize("kind", sorted(KINDS))
@fuzz(60)
@given(data=st.data())
def test_polars_series(kind: str, data: st.DataObject) -> None:
    _, _, digits, fn = KINDS[kind]
    dtype = data.draw(st.sampled_from(["Int64", "UInt64", "Int32", "String", "Float64",
                                       "Boolean"]), label="dtype")
    n = data.draw(st.integers(0, 6), label="n")
    if dtype in ("Int64", "UInt64", "Int32"):
        lo = 0 if dtype == "UInt64" else -(2**31)
        hi = {"Int64": 2**63 - 1, "UInt64": U64_MAX, "Int32": 2**31 - 1}[dtype]
        vals: list[Any] = data.draw(st.lists(st.one_of(
            st.none(), st.integers(lo, hi), st.integers(0, min(hi, 10**digits - 1))),
            min_size=n, max_size=n), label="values")
    elif dtype == "String":
        vals = data.draw(st.lists(st.one_of(st.none(), digit_strings(digits),
                                            malformed_digit_text(digits).filter(
                                                lambda s: "\ud800" not in s)),
                                  min_size=n, max_size=n), label="values")
    else:
        vals = [1.0 if dtype == "Float64" else True] * n
    series = pl.Series("codes", vals, dtype=getattr(pl, dtype))
    if dtype in ("Float64", "Boolean"):  # no codes in such a column: refused, or (empty)
        out, exc = call(fn, series)          # an empty answer, as for Arrow arrays
        if exc is None and n == 0:
            assert isinstance(out, np.ndarray) and out.shape == (0,)
            return
        assert isinstance(exc, errors.InvalidInputError), \
            f"polars {dtype}: {type(exc).__name__ if exc else 'accepted'}: {exc or out}"
        return
    check_column(fn, series, vals, kind, "full", digits)


# -- stateful objects: a refusal changes nothing ----------------------------------------------


def _code_values() -> st.SearchStrategy[Any]:
    return st.one_of(malformed_digit_text(11), odd_ints(11), not_an_int_or_str(),
                     st.integers(0, 10**10 - 1).map(lambda b: wrong_check("resident_code", b)),
                     st.lists(st.integers(0, 10**10 - 1).map(
                         lambda b: wrong_check("resident_code", b)), min_size=1, max_size=3))


@fuzz(80)
@given(value=_code_values())
def test_registry_refuses_and_keeps(value: Any) -> None:
    reg = CodeRegistry()
    known = reg.generate(5)
    before = len(reg)
    _, exc = call(reg.add, value)
    assert isinstance(exc, errors.InvalidInputError), f"{value!r}: {exc!r}"
    assert len(reg) == before and reg.contains(known).all()
    _, exc = call(reg.contains, value)
    assert exc is None or isinstance(exc, errors.InvalidInputError), repr(exc)
    assert (value in reg) is False


@fuzz(60)
@given(n=st.one_of(odd_ints(0).filter(lambda v: v < 0 or v > 10**10),
                   st.sampled_from([1.5, None, "3", True, np.float64(2.0), 2**64, U64_MAX])),
       holder=st.one_of(st.just("131016"), malformed_digit_text(6),
                        st.integers(0, 99999).map(lambda b: str(wrong_check("lg_code", b))),
                        not_an_int_or_str()))
def test_registry_generate_and_allocate(n: Any, holder: Any) -> None:
    reg = CodeRegistry()
    reg.generate(3)
    _, exc = call(reg.generate, n)
    assert_refused(exc or AssertionError(f"generate({n!r}) accepted"), invalid=False)
    _, exc = call(lambda h: reg.allocate_block(n, h), holder)
    assert_refused(exc or AssertionError(f"allocate_block({n!r}, {holder!r}) accepted"),
                   invalid=False)
    assert len(reg) == 3


@fuzz(60)
@given(n=st.one_of(st.integers(-5, -1), st.integers(6, 2**70),
                   st.sampled_from([1.5, None, "2", True, U64_MAX])),
       holder=st.one_of(st.just("131016"), malformed_digit_text(6), not_an_int_or_str()))
def test_block_take_and_split_refuse(n: Any, holder: Any) -> None:
    block = CodeRegistry().allocate_block(5, "131016")
    codes = block.codes.copy()
    for op in (block.take, lambda k: block.split(k, holder)):
        _, exc = call(op, n)
        assert_refused(exc or AssertionError(f"{n!r} accepted"), invalid=False)
        assert np.array_equal(block.codes, codes)


@fuzz(80)
@given(data=st.data())
def test_block_bytes_corrupted(data: st.DataObject) -> None:
    block = CodeRegistry().allocate_block(4, "131016")
    raw = bytearray(block.to_bytes())
    how = data.draw(st.sampled_from(["truncate", "flip", "append", "empty"]), label="how")
    if how == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1), label="at")]
    elif how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw[i] ^= data.draw(st.integers(1, 255), label="mask")
    elif how == "append":
        raw += data.draw(st.binary(min_size=1, max_size=64), label="tail")
    else:
        raw = bytearray()
    _, exc = call(CodeBlock.from_bytes, bytes(raw))
    assert isinstance(exc, errors.CorruptFileError), f"{how}: {exc!r}"


@cache
def _issuer() -> tuple[MyNumberIssuer, int, int]:
    """One issuer for the whole test (making one costs a table): a code and its number."""
    issuer = MyNumberIssuer(b"k" * 32)
    code = with_check("resident_code", 1234567890)
    return issuer, code, issuer.issue(code)


@fuzz(40)
@given(value=_code_values())
def test_issuer_refuses_and_keeps(value: Any) -> None:
    issuer, code, number = _issuer()
    counts = (issuer.issued_count, issuer.holder_count, issuer.retired_count)
    _, exc = call(issuer.issue, value)
    assert isinstance(exc, errors.InvalidInputError), f"{value!r}: {exc!r}"
    for args in ((value, number), (code, value)):
        _, exc = call(lambda a: issuer.replace(*a), args)
        assert_refused(exc or AssertionError(f"replace{args!r} accepted"))
    assert (issuer.issued_count, issuer.holder_count, issuer.retired_count) == counts == (1, 1, 0)
