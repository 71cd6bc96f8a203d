"""Identifiers: check digits, resident-code allocation, code blocks, My Numbers.

Codes are ``uint64`` in numpy and Arrow and are shown as zero-padded digit
strings. Every function here takes a scalar (``int`` or digit ``str``) or a
column (numpy array, pyarrow ``Array``/``ChunkedArray``, any object with the
Arrow PyCapsule interface such as a polars Series, or a list) and answers in
kind: a Python ``int``/``bool`` for a scalar, a numpy array for a column.

Malformed input (a wrong length, a non-digit, a negative number, a float,
``None``) is never coerced: it raises :class:`~jukicore.errors.InvalidInputError`
whose ``rows`` name every bad position.

Check-digit rules (DESIGN.md section 3) live in the Rust core
(``rust/core/src/checkdigit.rs``). The resident-code rule is an assumption:
the official formula is in a 2002 ministry notice we could not obtain, so the
My Number rule's form is applied to the 10 body digits (weights
5,4,3,2,7,6,5,4,3,2 left to right, mod 11, 0 when the remainder is 0 or 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from jukicore import _jukicore
from jukicore._files import PRIVATE_FILE, read_regular, write_atomic
from jukicore.errors import (
    BadRow,
    CodeSpaceExhaustedError,
    ConflictError,
    CorruptFileError,
    FileError,
    InvalidInputError,
    JukiError,
)

__all__ = [
    "CodeBlock",
    "CodeRegistry",
    "MyNumberIssuer",
    "allocate_block_file",
    "complete_pending",
    "format_code",
    "is_valid_lg_code",
    "is_valid_my_number",
    "is_valid_resident_code",
    "lg_code_check_digit",
    "my_number_check_digit",
    "resident_code_check_digit",
    "split_block_file",
    "update_registry",
]

U64Array: TypeAlias = npt.NDArray[np.uint64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
U8Array: TypeAlias = npt.NDArray[np.uint8]
Scalar: TypeAlias = int | str
Column: TypeAlias = Any  # numpy array, pyarrow array, Arrow PyCapsule object, list or tuple
_Kind = Literal["resident_code", "my_number", "lg_code"]

RESIDENT_CODE_DIGITS: Final = 11
MY_NUMBER_DIGITS: Final = 12
LG_CODE_DIGITS: Final = 6
_DIGITS_RE: Final = {n: re.compile(rf"[0-9]{{{n}}}") for n in (5, 6, 10, 11, 12)}


# --------------------------------------------------------------------------
# Input normalisation


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, int | str | np.integer | np.floating | float)


def _scalar_to_int(value: object, digits: int, what: str) -> int:
    """One scalar as an int with at most ``digits`` digits, or InvalidInputError."""
    reason = _scalar_problem(value, digits, what)
    if reason is not None:
        raise InvalidInputError(reason)
    return int(value)  # type: ignore[call-overload, no-any-return]


def _shown(value: object, what: str) -> str:
    """A value as an error message shows it: a My Number (valid or not) only by its last
    two characters (a message may end up in a log or a rejected-row report)."""
    if "My Number" in what:
        return f"a value ending {str(value)[-2:]!r}"
    return repr(value) if isinstance(value, str) else str(value)


def _scalar_problem(value: object, digits: int, what: str) -> str | None:
    if value is None:
        return f"a {what} is missing (None)"
    if isinstance(value, bool | np.bool_):
        return f"a {what} must be an integer or a digit string, not a bool"
    if isinstance(value, str):
        if _DIGITS_RE[digits].fullmatch(value) is None:
            return (f"{_shown(value, what)} is not a {what}: it must be exactly {digits}"
                    " ASCII digits")
        return None
    if isinstance(value, int | np.integer):
        v = int(value)
        if v < 0:
            return f"{_shown(v, what)} is negative; a {what} is {digits} digits"
        if v >= 10**digits:
            return f"{_shown(v, what)} has more than {digits} digits; not a {what}"
        return None
    return f"a {what} must be an integer or a digit string, not {type(value).__name__}"


def _from_sequence(values: Sequence[object], digits: int, what: str) -> U64Array:
    out = np.empty(len(values), dtype=np.uint64)
    bad: list[BadRow] = []
    for i, v in enumerate(values):
        reason = _scalar_problem(v, digits, what)
        if reason is None:
            out[i] = int(v)  # type: ignore[call-overload]
        else:
            bad.append(BadRow(i, reason))
    if bad:
        raise InvalidInputError(f"malformed {what} column", bad)
    return out


def _from_numpy(arr: npt.NDArray[Any], digits: int, what: str) -> U64Array:
    if arr.ndim != 1:
        raise InvalidInputError(f"a {what} column must be one-dimensional, got shape {arr.shape}")
    kind = arr.dtype.kind
    limit = 10**digits
    if kind == "u":
        out = np.ascontiguousarray(arr, dtype=np.uint64)
        if out.size == 0 or int(out.max()) < limit:  # one pass, no mask: the common case
            return out
        over = np.flatnonzero(out >= np.uint64(limit))
        if over.size:
            raise InvalidInputError(
                f"malformed {what} column",
                [BadRow(int(i), f"{_shown(int(out[i]), what)} has more than {digits} digits")
                 for i in over],
            )
        return out
    if kind == "i":
        wide = arr.astype(np.int64, copy=False)
        bad_idx = np.flatnonzero((wide < 0) | (wide >= limit))
        if bad_idx.size:
            rows = [
                BadRow(
                    int(i),
                    f"{_shown(int(wide[i]), what)} is negative"
                    if wide[i] < 0
                    else f"{_shown(int(wide[i]), what)} has more than {digits} digits",
                )
                for i in bad_idx
            ]
            raise InvalidInputError(f"malformed {what} column", rows)
        return np.ascontiguousarray(wide, dtype=np.uint64)
    if kind in "US":
        return _from_arrow(pa.array(arr.astype("U")), digits, what)
    if kind == "O":
        return _from_sequence(arr.tolist(), digits, what)
    raise InvalidInputError(
        f"a {what} column must hold integers or digit strings, not {arr.dtype} values"
    )


def _from_arrow(arr: pa.Array | pa.ChunkedArray, digits: int, what: str) -> U64Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_struct(arr.type):  # a one-column table (duckdb, polars/pandas frames)
        if arr.type.num_fields != 1:
            raise InvalidInputError(
                f"expected a {what} column, got a table of {arr.type.num_fields} columns")
        arr = arr.field(0)
    if pa.types.is_dictionary(arr.type):  # categorical strings (polars: string_view values)
        arr = pc.take(_from_string_view(arr.dictionary), arr.indices)
    arr = _from_string_view(arr)
    t = arr.type
    null_rows = [BadRow(int(i), f"a {what} is missing (null)") for i in _null_positions(arr)]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        ok = pc.match_substring_regex(arr, f"^[0-9]{{{digits}}}$")
        bad = pc.and_(pc.invert(ok), pc.is_valid(arr))
        bad_idx = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
        rows = null_rows + [
            BadRow(int(i), f"{_shown(arr[int(i)].as_py(), what)} is not exactly {digits}"
                           " ASCII digits")
            for i in bad_idx
        ]
        if rows:
            raise InvalidInputError(f"malformed {what} column", sorted(rows, key=lambda r: r.row))
        return np.ascontiguousarray(pc.cast(arr, pa.uint64()).to_numpy(zero_copy_only=False))
    if pa.types.is_integer(t):
        if null_rows:  # name every bad row: the nulls and what the values say
            try:
                _from_numpy(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False), digits, what)
            except InvalidInputError as exc:
                nulls = {r.row for r in null_rows}
                null_rows += [r for r in exc.rows if r.row not in nulls]
            raise InvalidInputError(f"malformed {what} column",
                                    sorted(null_rows, key=lambda r: r.row))
        return _from_numpy(arr.to_numpy(zero_copy_only=False), digits, what)
    if pa.types.is_null(t):
        if null_rows:
            raise InvalidInputError(f"malformed {what} column", null_rows)
        return np.empty(0, dtype=np.uint64)
    raise InvalidInputError(f"a {what} column must hold integers or digit strings, not {t}")


def _from_string_view(arr: pa.Array) -> pa.Array:
    """A ``string_view`` column (polars' default strings) as ``large_string``; any other
    column as it is."""
    if not pa.types.is_string_view(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.large_string())
    except pa.ArrowNotImplementedError:  # pyarrow before 18 has no such cast
        return pa.array(arr.to_pylist(), pa.large_string())


def _null_positions(arr: pa.Array) -> npt.NDArray[np.intp]:
    if arr.null_count == 0:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(pc.is_null(arr).to_numpy(zero_copy_only=False))


#: What a malformed column can make numpy, pyarrow or a foreign Arrow producer raise;
#: each becomes an InvalidInputError.
_COLUMN_ERRORS: Final = (pa.ArrowException, OverflowError, TypeError, AttributeError,
                         UnicodeDecodeError, ValueError)


def _as_column(values: Column, digits: int, what: str) -> U64Array:
    """Any supported column as a contiguous uint64 numpy array, or InvalidInputError."""
    try:
        return _as_column_unchecked(values, digits, what)
    except JukiError:
        raise
    except _COLUMN_ERRORS as exc:
        raise InvalidInputError(
            f"cannot read the {what} column ({type(values).__name__}): {exc}") from exc


def _foreign(convert: Callable[[Any], Any], values: Any, what: str) -> Any:
    """Import a foreign Arrow object; whatever its producer raises is an InvalidInputError."""
    try:
        return convert(values)
    except Exception as exc:
        raise InvalidInputError(
            f"cannot read the {what} column from {type(values).__name__}: "
            f"{type(exc).__name__}: {exc}") from exc


def _as_column_unchecked(values: Column, digits: int, what: str) -> U64Array:
    if isinstance(values, np.ndarray):
        return _from_numpy(values, digits, what)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return _from_arrow(values, digits, what)
    if isinstance(values, list | tuple):
        return _from_sequence(values, digits, what)
    if hasattr(values, "__arrow_c_array__"):
        return _from_arrow(_foreign(pa.array, values, what), digits, what)
    if hasattr(values, "__arrow_c_stream__"):
        return _from_arrow(_foreign(pa.chunked_array, values, what), digits, what)
    if type(values).__module__.partition(".")[0] == "pandas":  # pandas before 3
        return _from_arrow(_foreign(pa.array, values, what), digits, what)
    raise InvalidInputError(
        f"expected a {what} or a column of them, got {type(values).__name__}"
    )


def _normalise(values: Scalar | Column, digits: int, what: str) -> tuple[U64Array, bool]:
    """(column, was_scalar) for any accepted input."""
    if _is_scalar(values):
        return np.array([_scalar_to_int(values, digits, what)], dtype=np.uint64), True
    return _as_column(values, digits, what), False


# --------------------------------------------------------------------------
# Check digits

_BODY: Final[dict[_Kind, tuple[int, str]]] = {
    "resident_code": (10, "resident code body"),
    "my_number": (11, "My Number body"),
    "lg_code": (5, "local government code body"),
}
_FULL: Final[dict[_Kind, tuple[int, str]]] = {
    "resident_code": (11, "resident code"),
    "my_number": (12, "My Number"),
    "lg_code": (6, "local government code"),
}


def _check_digit(kind: _Kind, bodies: Scalar | Column) -> int | U8Array:
    digits, what = _BODY[kind]
    col, scalar = _normalise(bodies, digits, what)
    out = _jukicore.check_digits(kind, col)
    return int(out[0]) if scalar else out


def _is_valid(kind: _Kind, codes: Scalar | Column) -> bool | BoolArray:
    digits, what = _FULL[kind]
    col, scalar = _normalise(codes, digits, what)
    out = _jukicore.validate(kind, col)
    return bool(out[0]) if scalar else out


@overload
def resident_code_check_digit(body10: Scalar) -> int: ...
@overload
def resident_code_check_digit(body10: Column) -> U8Array: ...
def resident_code_check_digit(body10: Scalar | Column) -> int | U8Array:
    """Check digit of a 10-digit resident-code body (documented assumption, see module)."""
    return _check_digit("resident_code", body10)


@overload
def is_valid_resident_code(code: Scalar) -> bool: ...
@overload
def is_valid_resident_code(code: Column) -> BoolArray: ...
def is_valid_resident_code(code: Scalar | Column) -> bool | BoolArray:
    """Whether an 11-digit resident code carries the right check digit."""
    return _is_valid("resident_code", code)


@overload
def my_number_check_digit(body11: Scalar) -> int: ...
@overload
def my_number_check_digit(body11: Column) -> U8Array: ...
def my_number_check_digit(body11: Scalar | Column) -> int | U8Array:
    """Check digit of an 11-digit My Number body."""
    return _check_digit("my_number", body11)


@overload
def is_valid_my_number(number: Scalar) -> bool: ...
@overload
def is_valid_my_number(number: Column) -> BoolArray: ...
def is_valid_my_number(number: Scalar | Column) -> bool | BoolArray:
    """Whether a 12-digit My Number carries the right check digit."""
    return _is_valid("my_number", number)


@overload
def lg_code_check_digit(body5: Scalar) -> int: ...
@overload
def lg_code_check_digit(body5: Column) -> U8Array: ...
def lg_code_check_digit(body5: Scalar | Column) -> int | U8Array:
    """Check digit of a 5-digit JIS X 0401/0402 local government code."""
    return _check_digit("lg_code", body5)


@overload
def is_valid_lg_code(code: Scalar) -> bool: ...
@overload
def is_valid_lg_code(code: Column) -> BoolArray: ...
def is_valid_lg_code(code: Scalar | Column) -> bool | BoolArray:
    """Whether a 6-digit local government code carries the right check digit."""
    return _is_valid("lg_code", code)


@overload
def format_code(codes: Scalar, width: int = RESIDENT_CODE_DIGITS) -> str: ...
@overload
def format_code(codes: Column, width: int = RESIDENT_CODE_DIGITS) -> npt.NDArray[np.str_]: ...
def format_code(
    codes: Scalar | Column, width: int = RESIDENT_CODE_DIGITS
) -> str | npt.NDArray[np.str_]:
    """Codes as zero-padded digit strings of ``width`` digits (leading zeros kept)."""
    if isinstance(width, bool) or not isinstance(width, int) or width not in _DIGITS_RE:
        raise InvalidInputError(f"width must be one of {sorted(_DIGITS_RE)}, got {width}")
    col, scalar = _normalise(codes, width, f"{width}-digit code")
    if scalar:
        return f"{int(col[0]):0{width}d}"
    text = pc.utf8_lpad(pc.cast(pa.array(col), pa.string()), width, "0")
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=f"<U{width}")


# --------------------------------------------------------------------------
# Resident-code registry and blocks


def _holder(holder: str) -> str:
    if not isinstance(holder, str) or not is_valid_lg_code(holder):
        raise InvalidInputError(
            f"a block holder is a 6-digit local government code with a valid check digit, "
            f"got {holder!r}"
        )
    return holder


#: Resident-code bodies: no request can ask for more codes than exist.
_CODE_SPACE: Final = 10**10


def _count(n: object, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 0:
        raise InvalidInputError(f"{what} must be a non-negative integer, got {n!r}")
    if int(n) > _CODE_SPACE:
        raise InvalidInputError(f"{what} must be at most 10^10 (every resident code), got {n}")
    return int(n)


class CodeRegistry:
    """Every resident code ever issued, nationwide (held by the center).

    ``generate`` draws fresh codes uniformly from the 10^10 bodies with a
    CSPRNG (ChaCha20 seeded by the operating system), without bias, never
    repeating a code ever issued, retired ones included; a batch comes in
    random order. The set costs about 2.1 bytes per code in memory and
    2 bytes per code on disk.

    Thread safety: one registry may be shared by threads. Each call runs under
    the registry's own lock (taken with the GIL released), so concurrent
    ``generate``/``allocate_block``/``add`` calls never hand out one code twice.
    Between processes, use :func:`allocate_block_file` (or lock the file yourself):
    the file is the state, and two processes saving it would lose each other's codes.
    """

    __slots__ = ("_core",)

    def __init__(self) -> None:
        self._core = _jukicore.RegistryCore()

    def generate(self, n: int) -> U64Array:
        """Issue ``n`` fresh resident codes (uint64), recorded as issued."""
        return self._core.generate(_count(n))

    def add(self, codes: Scalar | Column) -> int:
        """Record existing codes as issued; returns how many were new.

        Malformed codes are reported by row; if there are none, codes with a
        wrong check digit are reported by row. Either way nothing is recorded.
        """
        col, _ = _normalise(codes, RESIDENT_CODE_DIGITS, "resident code")
        return int(self._core.add(col))

    @overload
    def contains(self, codes: Scalar) -> bool: ...
    @overload
    def contains(self, codes: Column) -> BoolArray: ...
    def contains(self, codes: Scalar | Column) -> bool | BoolArray:
        """Whether each code was ever issued."""
        col, scalar = _normalise(codes, RESIDENT_CODE_DIGITS, "resident code")
        out = self._core.contains(col)
        return bool(out[0]) if scalar else out

    def __contains__(self, code: object) -> bool:
        if not _is_scalar(code):
            return False
        try:
            return bool(self.contains(code))
        except InvalidInputError:
            return False

    def __len__(self) -> int:
        return len(self._core)

    def memory_bytes(self) -> int:
        """Bytes the registry holds in memory."""
        return int(self._core.memory_bytes())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the registry atomically (versioned, SHA-256 checksummed; mode 0600)."""
        self._core.save(Path(path))  # mode 0600 from creation; an OSError: a FileError

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CodeRegistry:
        """Read a registry; truncation or corruption raises CorruptFileError.

        A block allocation that a crash or a failed write interrupted
        (:func:`allocate_block_file`) is completed first.
        """
        p = Path(path)
        complete_pending(p)
        return cls._load_raw(p)

    @classmethod
    def _load_raw(cls, path: Path) -> CodeRegistry:
        reg = cls.__new__(cls)
        reg._core = _jukicore.RegistryCore.load(path)
        return reg

    def allocate_block(self, n: int, holder: str) -> CodeBlock:
        """Hand ``n`` fresh codes to ``holder`` (a prefecture or municipality).

        The codes are recorded as issued here, so no other block, and no later
        ``generate``, can ever contain them.
        """
        holder = _holder(holder)
        return CodeBlock._new(self.generate(n), holder, parent_id=None)


_BLOCK_KIND: Final = "CODEBLK"
_BLOCK_VERSION: Final = 1
#: A block of every resident code is 80 GB; nothing larger is read as a block or intent.
_MAX_BLOCK_BYTES: Final = 8 * _CODE_SPACE * 2 + (1 << 20)
#: Block ids name files (``blocks/{id}.block``): letters, digits, ``-`` and ``_`` only.
_BLOCK_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _block_id(block_id: object) -> str:
    if not isinstance(block_id, str) or _BLOCK_ID_RE.fullmatch(block_id) is None:
        raise InvalidInputError(
            f"a block id is 1 to 64 ASCII letters, digits, '-' or '_', got {block_id!r}")
    return block_id


class CodeBlock:
    """Fresh resident codes handed down center -> prefecture -> municipality.

    A block holds codes the center's registry has already recorded as issued,
    in random order. A prefecture ``split``s sub-blocks for its municipalities;
    a municipality ``take``s codes for births, move-ins from abroad and
    resident-code changes, offline. Because every code of every block was
    drawn once from the one national registry, two holders never share a code.
    The holder persists the block after each take (``to_bytes``/``save``).

    Thread safety: ``take`` and ``split`` run under the block's own lock, so
    threads sharing one block never receive the same code. Splitting a block
    *file* goes through :func:`split_block_file`, which also locks the file
    against other processes and survives a crash between its two writes.
    """

    __slots__ = ("_codes", "_lock", "block_id", "holder", "parent_id")
    _codes: U64Array
    _lock: threading.Lock
    block_id: str
    holder: str
    parent_id: str | None

    def __init__(self) -> None:
        raise TypeError("use CodeRegistry.allocate_block, CodeBlock.split or CodeBlock.from_codes")

    @classmethod
    def _new(cls, codes: U64Array, holder: str, parent_id: str | None,
             block_id: str | None = None) -> CodeBlock:
        block = object.__new__(cls)
        block._lock = threading.Lock()
        block._codes = np.ascontiguousarray(codes, dtype=np.uint64)
        block._codes.flags.writeable = False
        block.holder = holder
        block.parent_id = parent_id
        block.block_id = uuid.uuid4().hex if block_id is None else _block_id(block_id)
        return block

    @classmethod
    def from_codes(cls, codes: Column, holder: str, block_id: str | None = None,
                   parent_id: str | None = None) -> CodeBlock:
        """A block over existing codes (for example restored from a store)."""
        col = _as_column(codes, RESIDENT_CODE_DIGITS, "resident code")
        valid = _jukicore.validate("resident_code", col)
        bad = [BadRow(int(i), "wrong check digit") for i in np.flatnonzero(~valid)]
        if bad:
            raise InvalidInputError("invalid resident codes in a block", bad)
        uniq, first = np.unique(col, return_index=True)
        if uniq.size != col.size:
            dup = np.setdiff1d(np.arange(col.size), first)
            raise InvalidInputError(
                "a block cannot hold a code twice",
                [BadRow(int(i), f"{int(col[i]):011d} repeats") for i in dup],
            )
        if parent_id is not None:
            parent_id = _block_id(parent_id)
        return cls._new(col.copy(), _holder(holder), parent_id, block_id)

    @property
    def codes(self) -> U64Array:
        """The remaining codes (read-only view)."""
        return self._codes

    def __len__(self) -> int:
        return int(self._codes.size)

    def __repr__(self) -> str:
        return (
            f"CodeBlock(block_id={self.block_id!r}, holder={self.holder!r}, "
            f"remaining={len(self)})"
        )

    def _cut(self, n: int, purpose: str) -> U64Array:
        n = _count(n)
        with self._lock:
            if n > len(self):
                raise CodeSpaceExhaustedError(
                    f"block {self.block_id} of {self.holder} has {len(self)} codes left, "
                    f"{n} needed to {purpose}"
                )
            head = self._codes[:n].copy()
            self._codes = self._codes[n:]
            return head

    def take(self, n: int) -> U64Array:
        """Remove and return the next ``n`` codes; nothing is removed if too few remain."""
        return self._cut(n, "take")

    def split(self, n: int, holder: str) -> CodeBlock:
        """Move ``n`` codes into a child block for ``holder`` (in memory; to split a block
        file, use :func:`split_block_file`, which survives a crash between its writes)."""
        holder = _holder(holder)
        return CodeBlock._new(self._cut(n, "split"), holder, parent_id=self.block_id)

    def to_bytes(self) -> bytes:
        """The block as a versioned, checksummed jukicore container."""
        with self._lock:
            codes = self._codes
        meta = "\n".join([self.block_id, self.holder, self.parent_id or ""]).encode()
        return _jukicore.container_pack(
            _BLOCK_KIND, _BLOCK_VERSION, [meta, codes.astype("<u8").tobytes()]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CodeBlock:
        """A block from :meth:`to_bytes`; anything else raises CorruptFileError."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(f"a code block is bytes, got {type(data).__name__}")
        _, sections = _jukicore.container_unpack(bytes(data), _BLOCK_KIND, [_BLOCK_VERSION])
        if len(sections) != 2 or len(sections[1]) % 8:
            raise CorruptFileError("a code block has two sections: metadata and codes")
        try:
            fields = bytes(sections[0]).decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise CorruptFileError("code block metadata is not UTF-8") from None
        if len(fields) != 3:
            raise CorruptFileError("code block metadata is malformed")
        block_id, holder, parent = fields
        codes = np.frombuffer(bytes(sections[1]), dtype="<u8").astype(np.uint64)
        try:
            return cls.from_codes(codes, holder, block_id=block_id, parent_id=parent or None)
        except InvalidInputError as exc:
            raise CorruptFileError(f"code block content is invalid: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the block atomically."""
        write_atomic(path, self.to_bytes(), mode=PRIVATE_FILE)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CodeBlock:
        """Read a block file (a regular file only). A split of this block that a crash or
        a failed write interrupted (:func:`split_block_file`) is completed first."""
        p = Path(path)
        complete_pending(p)
        return cls._load_raw(p)

    @classmethod
    def _load_raw(cls, path: Path) -> CodeBlock:
        try:
            return cls.from_bytes(read_regular(path, max_bytes=_MAX_BLOCK_BYTES))
        except CorruptFileError as exc:
            raise CorruptFileError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------
# Two-file steps: a recorded intent that the next run completes
#
# Splitting a block file writes two files (the parent without the codes, the
# child with them); allocating a block writes the registry and the block. A
# failed write or a crash between the two must never leave a code in two
# blocks, nor a code in a block that the registry does not record as issued.
# So each step first writes one intent file beside the file it starts from
# (``.{name}.intent``, atomically: the step's commit point), then the files in
# the safe order (parent before child; registry before block), then removes
# the intent. Whoever opens that file next (``CodeBlock.load``,
# ``CodeRegistry.load``, every ``codes`` command) completes a pending intent
# first. Each step holds an exclusive lock on ``.{name}.lock`` (``flock``) so
# two processes never split one block or extend one registry at once.

_INTENT_KIND: Final = "CODEINT"
_INTENT_VERSION: Final = 1
_path_locks: dict[str, threading.RLock] = {}
_path_locks_guard = threading.Lock()
_held = threading.local()


def _intent_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.intent")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive use of ``path`` by this thread and process (re-entrant in a thread)."""
    key = os.path.abspath(path)
    with _path_locks_guard:
        rlock = _path_locks.setdefault(key, threading.RLock())
    with rlock:
        depth: dict[str, int] = getattr(_held, "depth", None) or {}
        _held.depth = depth
        if depth.get(key):
            depth[key] += 1
            try:
                yield
            finally:
                depth[key] -= 1
            return
        lock_path = path.with_name(f".{path.name}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        except OSError as exc:
            raise FileError(f"cannot lock {path}: {exc.strerror or exc}") from exc
        try:
            import fcntl  # POSIX only; imported here so that `import jukicore.codes` works anywhere

            fcntl.flock(fd, fcntl.LOCK_EX)
            depth[key] = 1
            try:
                yield
            finally:
                depth[key] = 0
        finally:
            os.close(fd)  # releases the flock


def _sync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_intent(start: Path, op: str, target: Path, child: bytes, parent: bytes) -> Path:
    meta = json.dumps({"op": op, "target": str(target)}).encode()
    intent = _intent_path(start)
    write_atomic(intent, _jukicore.container_pack(
        _INTENT_KIND, _INTENT_VERSION, [meta, child, parent]), mode=PRIVATE_FILE)
    return intent


def _drop_intent(start: Path) -> None:
    intent = _intent_path(start)
    try:
        intent.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FileError(f"cannot remove {intent}: {exc.strerror or exc}") from exc
    _sync_dir(intent)


def _new_file(target: Path, what: str) -> Path:
    """``target`` for a new block file: it must not exist (a block is never overwritten)."""
    target = Path(target)
    if os.path.lexists(target):
        raise ConflictError(f"{target} already exists; a new {what} never replaces a file")
    if not target.parent.is_dir():
        raise FileError(f"cannot write {target}: no such directory {target.parent}")
    return target


def _distinct(target: Path, start: Path, what: str) -> None:
    """The new block file must not be ``start`` (nor its intent or lock file)."""
    own = {os.path.realpath(p) for p in (start, _intent_path(start),
                                         start.with_name(f".{start.name}.lock"))}
    if os.path.realpath(target) in own:
        raise InvalidInputError(f"the new block's file {target} must differ from {what}'s")


def complete_pending(path: str | os.PathLike[str]) -> bool:
    """Complete a block split or allocation that was interrupted at ``path`` (a block
    file or a registry file); returns whether there was one.

    Called by :meth:`CodeBlock.load`, :meth:`CodeRegistry.load` and every file step
    here, so callers rarely need it. When the child's file name was meanwhile taken
    by another block, :class:`ConflictError` is raised and the intent is kept: the
    codes then sit in no block, never in two.
    """
    p = Path(path)
    if not os.path.lexists(_intent_path(p)):
        return False
    with _locked(p):
        intent = _intent_path(p)
        if not os.path.lexists(intent):  # another process completed it meanwhile
            return False
        raw = read_regular(intent, max_bytes=_MAX_BLOCK_BYTES)
        try:
            _, (meta_b, child_b, parent_b) = _jukicore.container_unpack(
                raw, _INTENT_KIND, [_INTENT_VERSION])
            meta = json.loads(bytes(meta_b).decode("utf-8"))
            op, target = meta["op"], Path(meta["target"])
            child = CodeBlock.from_bytes(bytes(child_b))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(f"{intent}: unreadable intent: {exc}") from None
        if op == "split":
            current = CodeBlock._load_raw(p)
            if np.intersect1d(current.codes, child.codes).size:  # parent not yet written
                write_atomic(p, bytes(parent_b), mode=PRIVATE_FILE)
        elif op == "allocate":
            registry = CodeRegistry._load_raw(p) if p.exists() else CodeRegistry()
            if not registry.contains(child.codes).all():  # registry not yet written
                registry.add(child.codes)
                registry.save(p)
        else:
            raise CorruptFileError(f"{intent}: unknown step {op!r}")
        if os.path.lexists(target):
            present = CodeBlock._load_raw(target)
            if present.block_id != child.block_id:
                raise ConflictError(
                    f"cannot complete the {op} recorded in {intent}: {target} now holds "
                    f"another block ({present.block_id}); its {len(child)} codes are in "
                    f"no block")
        else:
            write_atomic(target, bytes(child_b), mode=PRIVATE_FILE)
        _drop_intent(p)
        return True


def _run_step(start: Path, first_write: Callable[[], None], first_done: Callable[[], bool],
              target: Path, child_bytes: bytes) -> None:
    """After the intent: the first write (rolled back with the intent if it left the
    file unchanged), then the child (rolled forward by the next run if it fails)."""
    try:
        first_write()
    except BaseException:
        try:
            unchanged = not first_done()
        except BaseException:
            unchanged = False  # cannot tell: keep the intent, rolling forward is safe
        if unchanged:
            _drop_intent(start)  # nothing happened
        raise
    try:
        write_atomic(target, child_bytes, mode=PRIVATE_FILE)
    except FileError as exc:
        raise FileError(
            f"{exc}; the step is recorded in {_intent_path(start)} and the next command "
            f"on {start} completes it") from exc
    _drop_intent(start)


def split_block_file(source: str | os.PathLike[str], n: int, holder: str,
                     out: str | os.PathLike[str]) -> CodeBlock:
    """Move ``n`` codes of the block file ``source`` into a new block file ``out`` for
    ``holder``, atomically across both files; returns the child block.

    A failed write or a crash leaves either nothing changed or a recorded intent that
    the next use of ``source`` completes; a code is never in both files.
    """
    src = Path(source)
    target = _new_file(Path(out), "block")
    _distinct(target, src, "the parent block")
    with _locked(src):
        complete_pending(src)
        parent = CodeBlock._load_raw(src)
        child = parent.split(n, holder)
        child_bytes = child.to_bytes()
        target = _new_file(target, "block")
        _write_intent(src, "split", target.absolute(), child_bytes, parent.to_bytes())
        _run_step(src, lambda: parent.save(src),
                  lambda: not np.intersect1d(CodeBlock._load_raw(src).codes,
                                             child.codes).size,
                  target, child_bytes)
    return child


def allocate_block_file(registry: str | os.PathLike[str], n: int, holder: str,
                        out: str | os.PathLike[str]) -> CodeBlock:
    """Allocate a block of ``n`` fresh codes for ``holder`` from the registry file
    ``registry`` (created if absent) into a new block file ``out``; returns the block.

    The registry records the codes before the block file holds them; a failed write
    or a crash leaves either nothing changed or a recorded intent that the next use of
    the registry completes.
    """
    reg_path = Path(registry)
    target = _new_file(Path(out), "block")
    _distinct(target, reg_path, "the registry")
    holder = _holder(holder)
    n = _count(n)
    with _locked(reg_path):
        complete_pending(reg_path)
        reg = CodeRegistry._load_raw(reg_path) if reg_path.exists() else CodeRegistry()
        block = reg.allocate_block(n, holder)
        block_bytes = block.to_bytes()
        target = _new_file(target, "block")
        _write_intent(reg_path, "allocate", target.absolute(), block_bytes, b"")
        _run_step(reg_path, lambda: reg.save(reg_path),
                  lambda: reg_path.exists()
                  and bool(CodeRegistry._load_raw(reg_path).contains(block.codes).all()),
                  target, block_bytes)
    return block


@contextlib.contextmanager
def update_registry(path: str | os.PathLike[str]) -> Iterator[CodeRegistry]:
    """The registry file at ``path`` (new if absent) for an update by this process alone:
    locked, any interrupted step completed, and saved atomically when the block exits
    without an exception (on an exception nothing is saved)."""
    p = Path(path)
    with _locked(p):
        complete_pending(p)
        reg = CodeRegistry._load_raw(p) if p.exists() else CodeRegistry()
        yield reg
        reg.save(p)


# --------------------------------------------------------------------------
# My Number


class MyNumberIssuer:
    """The center's My Number issuer.

    A number's 11-digit body is HMAC-SHA-256 of the resident code under the
    center's key (see ``rust/core/src/mynumber.rs`` for the construction),
    so without the key a number cannot be computed from a code nor a code from
    a number. Every number has a valid check digit and is unique forever: the
    issuer remembers every number ever issued, including those replaced after
    a leak, and never issues one twice. The key is never saved with the state.

    Thread safety: one issuer may be shared by threads; each call runs under the
    issuer's own lock (taken with the GIL released).
    """

    __slots__ = ("_core",)

    def __init__(self, key: bytes) -> None:
        self._core = _jukicore.IssuerCore(_key(key))

    @overload
    def issue(self, resident_codes: Scalar) -> int: ...
    @overload
    def issue(self, resident_codes: Column) -> U64Array: ...
    def issue(self, resident_codes: Scalar | Column) -> int | U64Array:
        """One My Number per resident code (uint64, 12 digits).

        Invalid codes, codes repeated in the input, and codes that already hold
        a number are reported by row, and then nothing is issued.
        """
        col, scalar = _normalise(resident_codes, RESIDENT_CODE_DIGITS, "resident code")
        out = self._core.issue(col)
        return int(out[0]) if scalar else out

    def replace(self, resident_code: Scalar, leaked_number: Scalar) -> int:
        """Retire a leaked number for good and issue the resident a fresh one."""
        code = _scalar_to_int(resident_code, RESIDENT_CODE_DIGITS, "resident code")
        leaked = _scalar_to_int(leaked_number, MY_NUMBER_DIGITS, "My Number")
        return int(self._core.replace(code, leaked))

    @property
    def issued_count(self) -> int:
        """Numbers ever issued, retired ones included."""
        return int(self._core.issued_count())

    @property
    def holder_count(self) -> int:
        return int(self._core.holder_count())

    @property
    def retired_count(self) -> int:
        return int(self._core.retired_count())

    def memory_bytes(self) -> int:
        return int(self._core.memory_bytes())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the issuer's state (never the key) atomically (mode 0600)."""
        self._core.save(Path(path))  # mode 0600 from creation; an OSError: a FileError

    @classmethod
    def load(cls, key: bytes, path: str | os.PathLike[str]) -> MyNumberIssuer:
        p = Path(path)
        k = _key(key)
        issuer = cls.__new__(cls)
        issuer._core = _jukicore.IssuerCore.load(k, p)
        return issuer


def _key(key: object) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidInputError(f"the issuing key must be bytes, got {type(key).__name__}")
    return bytes(key)
