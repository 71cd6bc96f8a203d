"""The Rust boundary: every core error reaches Python as its documented class of
``jukicore.errors`` (imported by the bindings, never looked up by name), with the
offending rows as ``BadRow``s and an I/O error as a ``FileError`` carrying its errno
and path; identifier kinds and container tags are checked in the core; Arrow columns
cross through the PyCapsule interface and anything else handed over is refused.

``CoreError::Random`` (the operating system's random source failing) becomes a plain
``JukiError``; it cannot be provoked from here.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from jukicore import _jukicore
from jukicore.codes import CodeBlock, CodeRegistry, MyNumberIssuer
from jukicore.errors import (
    BadRow,
    CodeSpaceExhaustedError,
    ConflictError,
    CorruptFileError,
    FileError,
    InvalidInputError,
    JukiError,
)

KEY = bytes(range(32))


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# ------------------------------------------------------------ one class per variant


def test_invalid_rows_become_invalid_input_error_with_every_bad_row(tmp_path: Path) -> None:
    reg = CodeRegistry()
    good = reg.generate(3)
    reg.save(tmp_path / "before.bin")
    wrong = [int(c) - 1 if int(c) % 10 else int(c) + 1 for c in good]  # wrong check digits
    fresh = int(CodeRegistry().generate(1)[0])
    with pytest.raises(InvalidInputError) as caught:
        reg.add(np.array([fresh, *wrong, fresh], dtype=np.uint64))
    err = caught.value
    assert type(err) is InvalidInputError and isinstance(err, ValueError | JukiError)
    assert all(type(r) is BadRow for r in err.rows)
    assert [r.row for r in err.rows] == [1, 2, 3] and err.total == 3
    assert "wrong check digit" in err.rows[0].reason and "row 1:" in str(err)
    # Nothing recorded: not even the valid code of row 0.
    assert len(reg) == 3 and not reg.contains(fresh)
    reg.save(tmp_path / "after.bin")
    assert len(CodeRegistry.load(tmp_path / "after.bin")) == 3


def test_many_bad_rows_all_arrive() -> None:
    bad = np.full(1000, 12345678901, dtype=np.uint64)  # check digit should be 3
    with pytest.raises(InvalidInputError, match=r"\(and 995 more\)") as caught:
        CodeRegistry().add(bad)
    assert [r.row for r in caught.value.rows] == list(range(1000))


def test_invalid_scalar_becomes_invalid_input_error_without_rows() -> None:
    with pytest.raises(InvalidInputError, match="at least") as caught:
        MyNumberIssuer(b"short")
    assert type(caught.value) is InvalidInputError and caught.value.rows == ()
    issuer = MyNumberIssuer(KEY)
    code = int(CodeRegistry().generate(1)[0])
    number = issuer.issue(code)
    other = int(CodeRegistry().generate(1)[0])
    with pytest.raises(InvalidInputError, match="was not issued"):
        issuer.replace(other, number)
    assert (issuer.issued_count, issuer.retired_count) == (1, 0)


def test_conflicts_become_conflict_error_with_rows() -> None:
    issuer = MyNumberIssuer(KEY)
    codes = CodeRegistry().generate(3)
    issuer.issue(codes[:1])
    with pytest.raises(ConflictError) as caught:
        issuer.issue(np.array([codes[1], codes[0], codes[2]], dtype=np.uint64))
    err = caught.value
    assert type(err) is ConflictError and isinstance(err, ValueError)
    assert [(type(r), r.row) for r in err.rows] == [(BadRow, 1)]
    assert "already holds a My Number" in err.rows[0].reason
    assert (issuer.issued_count, issuer.holder_count) == (1, 1)  # nothing issued
    number = int(issuer.issue(codes[1]))
    issuer.replace(int(codes[1]), number)
    with pytest.raises(ConflictError, match="already replaced") as again:
        issuer.replace(int(codes[1]), number)
    assert again.value.rows == ()
    assert (issuer.issued_count, issuer.retired_count) == (3, 1)


def test_corrupt_container_becomes_corrupt_file_error(tmp_path: Path) -> None:
    reg = CodeRegistry()
    reg.generate(100)
    path = tmp_path / "reg.bin"
    reg.save(path)
    data = bytearray(path.read_bytes())
    data[40] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="checksum") as caught:
        CodeRegistry.load(path)
    assert type(caught.value) is CorruptFileError and str(path) in str(caught.value)
    assert path.read_bytes() == bytes(data)  # a failed load changes nothing
    with pytest.raises(CorruptFileError, match="magic"):
        CodeBlock.from_bytes(b"x" * 100)
    with pytest.raises(CorruptFileError, match="truncated"):
        MyNumberIssuer.load(KEY, _write(tmp_path / "short", b"JUKICORE"))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_exhausted_code_space_becomes_code_space_exhausted_error() -> None:
    reg = CodeRegistry()
    reg.generate(1)
    with pytest.raises(CodeSpaceExhaustedError, match="only 9999999999") as caught:
        reg.generate(10**10)
    assert type(caught.value) is CodeSpaceExhaustedError
    assert isinstance(caught.value, RuntimeError | JukiError)
    assert len(reg) == 1


@pytest.mark.parametrize("direct", [False, True], ids=["api", "binding"])
def test_io_errors_become_file_errors_with_errno_and_path(tmp_path: Path, direct: bool) -> None:
    reg, issuer = CodeRegistry(), MyNumberIssuer(KEY)
    reg.generate(5)
    missing = tmp_path / "no-such-dir" / "state.bin"
    calls: list[tuple[str, Callable[[Path], object]]] = [
        ("write", reg._core.save if direct else reg.save),
        ("write", issuer._core.save if direct else issuer.save),
        ("read", _jukicore.RegistryCore.load if direct else CodeRegistry.load),
        ("read", functools.partial(_jukicore.IssuerCore.load if direct
                                   else MyNumberIssuer.load, KEY)),
    ]
    for action, call in calls:
        with pytest.raises(FileError) as caught:
            call(missing)
        err = caught.value
        assert type(err) is FileError, call
        assert isinstance(err, OSError) and isinstance(err, JukiError)
        assert err.errno == errno.ENOENT
        assert str(err) == f"cannot {action} {missing}: No such file or directory"
    assert _listing(tmp_path) == []


def test_a_directory_as_target_is_a_file_error_and_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    reg = CodeRegistry()
    reg.generate(5)
    with pytest.raises(FileError, match=r"cannot write .*/d: ") as caught:
        reg.save(tmp_path / "d")
    assert caught.value.errno == errno.EISDIR
    assert _listing(tmp_path) == ["d"] and _listing(tmp_path / "d") == []
    with pytest.raises(FileError, match=r"cannot read .*/d: not a regular file") as read:
        CodeRegistry.load(tmp_path / "d")
    assert read.value.errno is None


# ------------------------------------------------- kinds and container tags (core)


@pytest.mark.parametrize("kind", ["bogus", "", "ResidentCode", "resident code", "LG_CODE",
                                  "lg_code "])
def test_unknown_identifier_kinds_are_invalid_input(kind: str) -> None:
    col = np.zeros(1, dtype=np.uint64)
    for call in (_jukicore.check_digits, _jukicore.validate):
        with pytest.raises(InvalidInputError, match="unknown identifier kind"):
            call(kind, col)


def test_known_identifier_kinds_still_work() -> None:
    col = np.array([12345678901], dtype=np.uint64)
    assert _jukicore.check_digits("my_number", col).tolist() == [8]
    assert _jukicore.validate("my_number", np.array([123456789018], dtype=np.uint64)).tolist() \
        == [True]
    assert _jukicore.check_digits("lg_code", np.array([13113], dtype=np.uint64)).tolist() == [0]
    assert _jukicore.validate("resident_code", np.array([1], dtype=np.uint64)).tolist() == [False]


@pytest.mark.parametrize("kind", ["", "NINECHARS", "CODE BLK", "CODEBLK ", " X", "コード",
                                  "A\x00", "A\t", "\x7f"])
def test_odd_container_kinds_are_invalid_input(kind: str) -> None:
    good = _jukicore.container_pack("CODEBLK", 1, [b"a"])
    with pytest.raises(InvalidInputError, match="container kind"):
        _jukicore.container_pack(kind, 1, [b"a"])
    with pytest.raises(InvalidInputError, match="container kind"):
        _jukicore.container_unpack(good, kind, [1])


def test_container_tags_are_space_padded_and_checked() -> None:
    packed = _jukicore.container_pack("AB", 7, [b"xyz", b""])
    assert packed[:16] == b"JUKICOREAB      "
    assert _jukicore.container_unpack(packed, "AB", [7]) == (7, [b"xyz", b""])
    with pytest.raises(CorruptFileError, match="expected \"ABC\""):
        _jukicore.container_unpack(packed, "ABC", [7])
    full = _jukicore.container_pack("TESTKIND", 1, [])
    assert full[8:16] == b"TESTKIND"


# ------------------------------------------- Arrow through the PyCapsule interface


class _CapsuleOnly:
    """An Arrow producer that is not pyarrow: nothing but ``__arrow_c_array__``."""

    def __init__(self, arr: pa.Array) -> None:
        self._arr = arr

    def __arrow_c_array__(self, requested_schema: object = None) -> object:
        return self._arr.__arrow_c_array__(requested_schema)


@pytest.mark.parametrize("typ", [pa.string(), pa.large_string()])
def test_text_flags_read_any_arrow_string_array_at_its_offset(typ: pa.DataType) -> None:
    values = [None, "ok", " x", None, "a\tb", "", "長すぎる名前", None, "y"]
    arr = pa.array(values, typ)
    want = [_jukicore.TEXT_NULL, 0, _jukicore.TEXT_SURROUNDING, _jukicore.TEXT_NULL,
            _jukicore.TEXT_CONTROL, _jukicore.TEXT_EMPTY, _jukicore.TEXT_TOO_LONG,
            _jukicore.TEXT_NULL, 0]
    for start in range(len(values)):  # every bit offset of the validity bitmap
        for producer in (arr.slice(start), _CapsuleOnly(arr.slice(start))):
            assert _jukicore.text_flags(producer, 5).tolist() == want[start:]


def test_text_flags_flag_bytes_that_are_not_utf8() -> None:
    arr = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(
        np.array([0, 2, 3], dtype=np.int32).tobytes()), pa.py_buffer(b"ok\xff")])
    assert _jukicore.text_flags(arr, 5).tolist() == [0, _jukicore.TEXT_NOT_UTF8]


def test_text_flags_refuse_what_is_not_a_string_array() -> None:
    with pytest.raises(InvalidInputError, match="string column, not Int64"):
        _jukicore.text_flags(pa.array([1, 2]), 5)
    with pytest.raises(InvalidInputError, match="expected an Arrow array"):
        _jukicore.text_flags(["a", "b"], 5)  # type: ignore[arg-type]


class _Fake:
    def __init__(self, answer: object) -> None:
        self._answer = answer

    def __arrow_c_array__(self, requested_schema: object = None) -> object:
        return self._answer

    def __arrow_c_schema__(self) -> object:
        return self._answer


def test_a_producer_handing_over_something_else_is_invalid_input() -> None:
    arr = pa.array(["a"])
    schema_capsule, array_capsule = arr.__arrow_c_array__()
    key = bytes(32)
    for answer in (None, (1, 2), (schema_capsule,), (array_capsule, schema_capsule)):
        for call in (lambda obj: _jukicore.text_flags(obj, 5),
                     lambda obj: _jukicore.aead_seal_array(key, b"abcd", b"", obj)):
            with pytest.raises(InvalidInputError, match="expected an Arrow array"):
                call(_Fake(answer))
    sealed = _jukicore.aead_seal_array(key, b"abcd", b"", arr)
    for answer in (None, array_capsule):
        with pytest.raises(InvalidInputError, match="expected an Arrow data type"):
            _jukicore.aead_open_array(key, b"abcd", b"", sealed, _Fake(answer))  # type: ignore[arg-type]
    assert _jukicore.aead_open_array(key, b"abcd", b"", sealed, pa.field("x", pa.string())) \
        .to_pylist() == ["a"]
