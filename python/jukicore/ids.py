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

import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from . import _jukicore
from ._files import write_atomic
from .errors import BadRow, CodeSpaceExhaustedError, CorruptFileError, InvalidInputError

__all__ = [
    "CodeBlock",
    "CodeRegistry",
    "MyNumberIssuer",
    "format_code",
    "is_valid_lg_code",
    "is_valid_my_number",
    "is_valid_resident_code",
    "lg_code_check_digit",
    "my_number_check_digit",
    "resident_code_check_digit",
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


def _scalar_problem(value: object, digits: int, what: str) -> str | None:
    if value is None:
        return f"a {what} is missing (None)"
    if isinstance(value, bool | np.bool_):
        return f"a {what} must be an integer or a digit string, not a bool"
    if isinstance(value, str):
        if _DIGITS_RE[digits].fullmatch(value) is None:
            return f"{value!r} is not a {what}: it must be exactly {digits} ASCII digits"
        return None
    if isinstance(value, int | np.integer):
        v = int(value)
        if v < 0:
            return f"{v} is negative; a {what} is {digits} digits"
        if v >= 10**digits:
            return f"{v} has more than {digits} digits; not a {what}"
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
                [BadRow(int(i), f"{int(out[i])} has more than {digits} digits") for i in over],
            )
        return out
    if kind == "i":
        wide = arr.astype(np.int64, copy=False)
        bad_idx = np.flatnonzero((wide < 0) | (wide >= limit))
        if bad_idx.size:
            rows = [
                BadRow(
                    int(i),
                    f"{int(wide[i])} is negative"
                    if wide[i] < 0
                    else f"{int(wide[i])} has more than {digits} digits",
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
    t = arr.type
    null_rows = [BadRow(int(i), f"a {what} is missing (null)") for i in _null_positions(arr)]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        ok = pc.match_substring_regex(arr, f"^[0-9]{{{digits}}}$")
        bad = pc.and_(pc.invert(ok), pc.is_valid(arr))
        bad_idx = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
        rows = null_rows + [
            BadRow(int(i), f"{arr[int(i)].as_py()!r} is not exactly {digits} ASCII digits")
            for i in bad_idx
        ]
        if rows:
            raise InvalidInputError(f"malformed {what} column", sorted(rows, key=lambda r: r.row))
        return np.ascontiguousarray(pc.cast(arr, pa.uint64()).to_numpy(zero_copy_only=False))
    if pa.types.is_integer(t):
        if null_rows:
            raise InvalidInputError(f"malformed {what} column", null_rows)
        return _from_numpy(arr.to_numpy(zero_copy_only=False), digits, what)
    if pa.types.is_null(t):
        if null_rows:
            raise InvalidInputError(f"malformed {what} column", null_rows)
        return np.empty(0, dtype=np.uint64)
    raise InvalidInputError(f"a {what} column must hold integers or digit strings, not {t}")


def _null_positions(arr: pa.Array) -> npt.NDArray[np.intp]:
    if arr.null_count == 0:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(pc.is_null(arr).to_numpy(zero_copy_only=False))


def _as_column(values: Column, digits: int, what: str) -> U64Array:
    """Any supported column as a contiguous uint64 numpy array, or InvalidInputError."""
    if isinstance(values, np.ndarray):
        return _from_numpy(values, digits, what)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return _from_arrow(values, digits, what)
    if isinstance(values, list | tuple):
        return _from_sequence(values, digits, what)
    if hasattr(values, "__arrow_c_array__"):
        return _from_arrow(pa.array(values), digits, what)
    if hasattr(values, "__arrow_c_stream__"):
        return _from_arrow(pa.chunked_array(values), digits, what)
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
    if width not in _DIGITS_RE:
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


def _count(n: object, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 0:
        raise InvalidInputError(f"{what} must be a non-negative integer, got {n!r}")
    return int(n)


class CodeRegistry:
    """Every resident code ever issued, nationwide (held by the center).

    ``generate`` draws fresh codes uniformly from the 10^10 bodies with a
    CSPRNG (ChaCha20 seeded by the operating system), without bias, never
    repeating a code ever issued, retired ones included; a batch comes in
    random order. The set costs about 2.1 bytes per code in memory and
    2 bytes per code on disk.
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
        """Write the registry atomically (versioned, SHA-256 checksummed)."""
        self._core.save(Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CodeRegistry:
        """Read a registry; truncation or corruption raises CorruptFileError."""
        reg = cls.__new__(cls)
        reg._core = _jukicore.RegistryCore.load(Path(path))
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


class CodeBlock:
    """Fresh resident codes handed down center -> prefecture -> municipality.

    A block holds codes the center's registry has already recorded as issued,
    in random order. A prefecture ``split``s sub-blocks for its municipalities;
    a municipality ``take``s codes for births, move-ins from abroad and
    resident-code changes, offline. Because every code of every block was
    drawn once from the one national registry, two holders never share a code.
    The holder persists the block after each take (``to_bytes``/``save``).
    """

    __slots__ = ("_codes", "block_id", "holder", "parent_id")
    _codes: U64Array
    block_id: str
    holder: str
    parent_id: str | None

    def __init__(self) -> None:
        raise TypeError("use CodeRegistry.allocate_block, CodeBlock.split or CodeBlock.from_codes")

    @classmethod
    def _new(cls, codes: U64Array, holder: str, parent_id: str | None,
             block_id: str | None = None) -> CodeBlock:
        block = object.__new__(cls)
        block._codes = np.ascontiguousarray(codes, dtype=np.uint64)
        block._codes.flags.writeable = False
        block.holder = holder
        block.parent_id = parent_id
        block.block_id = block_id or uuid.uuid4().hex
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
        if n > len(self):
            raise CodeSpaceExhaustedError(
                f"block {self.block_id} of {self.holder} has {len(self)} codes left, "
                f"{n} needed to {purpose}"
            )
        head = self._codes[:n].copy()
        rest = self._codes[n:]
        self._codes = rest
        return head

    def take(self, n: int) -> U64Array:
        """Remove and return the next ``n`` codes; nothing is removed if too few remain."""
        return self._cut(n, "take")

    def split(self, n: int, holder: str) -> CodeBlock:
        """Move ``n`` codes into a child block for ``holder``."""
        holder = _holder(holder)
        return CodeBlock._new(self._cut(n, "split"), holder, parent_id=self.block_id)

    def to_bytes(self) -> bytes:
        """The block as a versioned, checksummed jukicore container."""
        meta = "\n".join([self.block_id, self.holder, self.parent_id or ""]).encode()
        return _jukicore.container_pack(
            _BLOCK_KIND, _BLOCK_VERSION, [meta, self._codes.astype("<u8").tobytes()]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CodeBlock:
        _, sections = _jukicore.container_unpack(bytes(data), _BLOCK_KIND, [_BLOCK_VERSION])
        if len(sections) != 2 or len(sections[1]) % 8:
            raise CorruptFileError("a code block has two sections: metadata and codes")
        fields = bytes(sections[0]).decode().split("\n")
        if len(fields) != 3:
            raise CorruptFileError("code block metadata is malformed")
        block_id, holder, parent = fields
        codes = np.frombuffer(bytes(sections[1]), dtype="<u8").astype(np.uint64)
        return cls.from_codes(codes, holder, block_id=block_id, parent_id=parent or None)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the block atomically."""
        write_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CodeBlock:
        try:
            return cls.from_bytes(Path(path).read_bytes())
        except CorruptFileError as exc:
            raise CorruptFileError(f"{path}: {exc}") from None


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
        """Write the issuer's state (never the key) atomically."""
        self._core.save(Path(path))

    @classmethod
    def load(cls, key: bytes, path: str | os.PathLike[str]) -> MyNumberIssuer:
        issuer = cls.__new__(cls)
        issuer._core = _jukicore.IssuerCore.load(_key(key), Path(path))
        return issuer


def _key(key: object) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidInputError(f"the issuing key must be bytes, got {type(key).__name__}")
    return bytes(key)
