"""The one validation of values, shared by every entry point.

The bulk load (:meth:`jukicore.register.Register.load`), notifications
(:meth:`jukicore.register.Register.apply`) and the identity store's apply
(:meth:`jukicore.identity.IdentityStore.apply_changes`, which packet apply goes
through) check their values here, column by column and vectorized (Arrow compute
and numpy; a Python loop only to name the rows of a column that could not even be
converted). The rules (docs/register.md, "Validation"):

* **dates**: not before :data:`DATE_FLOOR`; birth, event, ``resident_since`` and
  ``address_since`` dates not after ``today`` (a move-out's planned date excepted:
  its lead time is a notification rule); ``resident_since`` / ``address_since`` not
  before the date of birth;
* **codes**: resident codes (11 digits), My Numbers (12) and local government codes
  (6) must carry their check digit (the rules live in :mod:`jukicore.codes` and Rust);
  a value out of range (12 digits, 2^64-1, negative) is a bad row like any other;
* **text**: valid Unicode (UTF-8), no control characters (NUL included) nor
  bidirectional-override / BOM characters, no surrounding spaces (ASCII or
  ideographic), at most :data:`MAX_LENGTHS` characters;
* **kana** (``*_kana``): full-width katakana only (U+30A1..U+30FE: the long vowel
  mark ー, the middle dot ・ and the iteration marks included), words separated by
  one ideographic space (U+3000); no hiragana, half-width kana or Latin letters;
* **postal codes**: exactly 7 ASCII digits whose first three are used in the
  municipality (from ``_data/municipalities.json``, generated from Japan Post's
  KEN_ALL by ``tools/gen_municipalities.py``);
* **enumerations**: sex 1 or 2, status ``resident``/``removed``, notification kinds,
  change reasons, household actions;
* **senders**: a municipality's valid, known local government code;
* **record items** (Article 7 and the foreign residents' items, Article 30-45): their
  kinds and formats column by column here, the rules between items, ages and dates
  record by record in :func:`record_item_problems` (docs/register.md, "Record items").
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore import _jukicore as _core
from jukicore.codes import (
    is_valid_lg_code,
    is_valid_my_number,
    is_valid_resident_code,
    lg_code_check_digit,
)
from jukicore.errors import BadRow, InvalidInputError

__all__ = [
    "DATE_FLOOR",
    "ELECTORAL_ROLL",
    "FOREIGN_STATUSES",
    "INDEFINITE_STATUSES",
    "KANA_PATTERN",
    "MAX_LENGTHS",
    "MOVE_OUT_LEAD_DAYS",
    "PENSION_KINDS",
    "REFUSED_CHARACTERS",
    "RESIDENCE_CARD_PATTERN",
    "RESIDENCE_STATUSES",
    "Municipality",
    "age_reached_on",
    "anniversary",
    "check_lg_code",
    "check_sender",
    "coerce_column",
    "coerce_values",
    "find_problems",
    "first_per_row",
    "municipality",
    "parse_resident_code",
    "record_item_problems",
    "sorted_rows",
    "valid_codes",
]

#: No date before this (the Meiji era's first year): no living person, no register
#: event is older; years such as 0001 or 1800 are typing errors.
DATE_FLOOR: Final = dt.date(1868, 1, 1)

#: Maximum length (characters) of each text column; any other text: ``_DEFAULT_MAX``.
MAX_LENGTHS: Final[dict[str, int]] = {
    "notification_id": 64,
    "family_name": 50,
    "given_name": 50,
    "family_name_kana": 100,
    "given_name_kana": 100,
    "relationship": 20,
    "household_action": 20,
    "domicile_head": 100,
    "town": 100,
    "street": 100,
    "building": 100,
    "postal_code": 7,
    "prefecture": 10,
    "municipality": 50,
    "lg_code": 6,
    "address": 300,
    "domicile": 300,
    "previous_address": 300,
    "destination": 300,
    "move_out_destination": 300,
    "status": 20,
    "change_reason": 40,
    "removal_reason": 20,
    "kind": 40,
    "nationality": 50,
    "foreign_status": 40,
    "residence_status": 40,
    "period_of_stay": 20,
    "residence_card_number": 12,
}
_DEFAULT_MAX: Final = 300

_KANA_CHAR = r"[\x{30A1}-\x{30FE}]"
#: Full-width katakana words separated by single ideographic spaces (RE2 syntax).
KANA_PATTERN: Final = rf"^{_KANA_CHAR}+(\x{{3000}}{_KANA_CHAR}+)*$"
#: Refused in any text (checked in Rust, :func:`text_flags`): C0 and C1
#: controls (NUL included), DEL, bidi embeddings/overrides/isolates (U+202A..U+202E,
#: U+2066..U+2069) and the BOM (U+FEFF); and at either end: a space, U+00A0, U+3000.
REFUSED_CHARACTERS: Final = "U+0000..U+001F, U+007F..U+009F, U+202A..U+202E, U+2066..U+2069, U+FEFF"
_POSTAL: Final = r"^[0-9]{7}$"
_DATA_FILE: Final = Path(__file__).resolve().parent / "_data" / "municipalities.json"

SEXES: Final = (1, 2)
STATUSES: Final = ("resident", "removed")
HOUSEHOLD_ACTIONS: Final = ("new_head", "split", "merge", "relationship")
#: How far after its notification a move-out may be planned (転出予定日), in days.
MOVE_OUT_LEAD_DAYS: Final = 14
#: How far after ``today`` an identity change may be dated: a move-out's planned date.
CHANGE_LEAD_DAYS: Final = MOVE_OUT_LEAD_DAYS

# -- record items (Article 7; foreign residents, Article 30-45) ---------------------------

#: electoral_roll: 1 registered in the electoral roll (選挙人名簿登録), 0 not.
ELECTORAL_ROLL: Final = (0, 1)
#: pension_kind: national pension insured kind (国民年金 第1号/第2号/第3号被保険者).
PENSION_KINDS: Final = (1, 2, 3)
#: foreign_status: the kinds of foreign residents of Article 30-45.
FOREIGN_STATUSES: Final = (
    "mid_long_term",  # 中長期在留者 (出入国管理及び難民認定法 第19条の3)
    "special_permanent",  # 特別永住者 (入管特例法)
    "temporary_refuge",  # 一時庇護許可者 (入管法 第18条の2)
    "provisional_stay",  # 仮滞在許可者 (入管法 第61条の2の4)
    "birth_transition",  # 出生による経過滞在者 (入管法 第22条の2)
    "nationality_loss_transition",  # 国籍喪失による経過滞在者 (入管法 第22条の2)
)
#: Statuses of residence (在留資格) a mid- to long-term resident can hold: the Immigration
#: Control Act's appended tables (別表第一, 第二) without 外交, 公用 and 短期滞在, whose
#: holders are not mid- to long-term residents (入管法 第19条の3) and are not registered.
#: 高度専門職, 特定技能 and 技能実習 are written with their 号 (and イ/ロ/ハ), as on the card.
RESIDENCE_STATUSES: Final = (
    "教授", "芸術", "宗教", "報道",
    "高度専門職1号イ", "高度専門職1号ロ", "高度専門職1号ハ", "高度専門職2号",
    "経営・管理", "法律・会計業務", "医療", "研究", "教育", "技術・人文知識・国際業務",
    "企業内転勤", "介護", "興行", "技能", "特定技能1号", "特定技能2号",
    "技能実習1号イ", "技能実習1号ロ", "技能実習2号イ", "技能実習2号ロ", "技能実習3号イ",
    "技能実習3号ロ", "文化活動", "留学", "研修", "家族滞在", "特定活動",
    "永住者", "日本人の配偶者等", "永住者の配偶者等", "定住者",
)
#: Statuses of residence without a period of stay (no period, no expiry).
INDEFINITE_STATUSES: Final = ("永住者", "高度専門職2号")
#: A residence card (在留カード) or special permanent resident certificate (特別永住者証明書)
#: number: two Latin capitals, eight digits, two Latin capitals (ASCII).
RESIDENCE_CARD_PATTERN: Final = r"^[A-Z]{2}[0-9]{8}[A-Z]{2}$"
#: A period of stay (在留期間) as written on the card: years, months and/or days, e.g.
#: 5年, 3年, 1年6月, 4年3月, 6月 (ASCII digits, no leading zero).
_PERIOD_PATTERN: Final = r"^(?:([1-9][0-9]?)年)?(?:([1-9][0-9]?)月)?(?:([1-9][0-9]?)日)?$"
#: Nationalities a foreign resident cannot have (a Japanese national's is null).
_JAPAN: Final = ("日本", "日本国", "japan")
#: Days a person born in Japan or who lost Japanese nationality stays without a status
#: (入管法 第22条の2第1項: 60日を限り).
TRANSITION_DAYS: Final = 60


# -- municipalities -------------------------------------------------------------------------


@dataclass(frozen=True)
class Municipality:
    lg_code: str
    prefecture: str
    name: str
    postal_prefixes: frozenset[str]

    @property
    def names(self) -> tuple[str, ...]:
        """The name as KEN_ALL writes it, and without its district (石狩郡当別町, 当別町)."""
        m = re.fullmatch(r".+?郡(.+[町村])", self.name)
        return (self.name,) if m is None else (self.name, m.group(1))


@cache
def _municipalities() -> dict[str, Municipality]:
    raw = json.loads(_DATA_FILE.read_text(encoding="utf-8"))["municipalities"]
    return {code: Municipality(code, pref, name, frozenset(prefixes))
            for code, (pref, name, prefixes) in raw.items()}


def municipality(lg_code: str) -> Municipality | None:
    """The municipality (or designated-city ward) with this 6-digit code, if known."""
    return _municipalities().get(lg_code)


def _lg_code_problem(lg_code: object) -> str | None:
    if not isinstance(lg_code, str) or re.fullmatch(r"[0-9]{6}", lg_code) is None:
        return f"a local government code is 6 ASCII digits, got {lg_code!r}"
    if not is_valid_lg_code(lg_code):
        expected = lg_code_check_digit(lg_code[:5])
        return f"local government code {lg_code} has a wrong check digit (expected {expected})"
    if municipality(lg_code) is None:
        return f"local government code {lg_code} is not a known municipality"
    return None


def check_lg_code(lg_code: object, prefecture: str | None = None,
                  municipality_name: str | None = None) -> Municipality:
    """The known municipality of ``lg_code``; with names given, they must be its names.
    Raises :class:`InvalidInputError` otherwise."""
    problem = _lg_code_problem(lg_code)
    if problem is not None:
        raise InvalidInputError(problem)
    m = municipality(str(lg_code))
    assert m is not None
    if prefecture is not None and prefecture != m.prefecture:
        raise InvalidInputError(
            f"local government code {lg_code} is in {m.prefecture}, not {prefecture!r}")
    if municipality_name is not None and municipality_name not in m.names:
        raise InvalidInputError(
            f"local government code {lg_code} is {m.name}, not {municipality_name!r}")
    return m


def check_sender(sender: object) -> None:
    """A sender of identity changes is a known municipality (valid local government code)."""
    problem = _lg_code_problem(sender)
    if problem is not None:
        raise InvalidInputError(f"unknown sender: {problem}")


# -- conversion -------------------------------------------------------------------------


def _value_problem(v: Any, typ: pa.DataType) -> tuple[Any, str | None]:
    """One value converted to ``typ``'s Python form, or the reason it cannot be."""
    if pa.types.is_integer(typ):
        if isinstance(v, bool | np.bool_):
            return None, "a number is expected, not a bool"
        if isinstance(v, float | np.floating) and float(v).is_integer():
            v = int(v)
        if isinstance(v, str):
            if re.fullmatch(r"[0-9]{1,20}", v) is None:
                return None, f"{v[:40]!r} is not a number of ASCII digits"
            v = int(v)
        if not isinstance(v, int | np.integer):
            return None, f"a number is expected, not {type(v).__name__}"
        v = int(v)
        info = np.iinfo(typ.to_pandas_dtype())
        if v < int(info.min) or v > int(info.max):
            return None, f"{v} is out of range"
        return v, None
    if pa.types.is_date(typ):
        if isinstance(v, dt.datetime):
            v = v.date()
        if isinstance(v, str):
            if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", v) is None:
                return None, f"{v[:40]!r} is not a date (YYYY-MM-DD)"
            try:
                v = dt.date.fromisoformat(v)
            except ValueError:
                return None, f"{v!r} is not a date"
        if not isinstance(v, dt.date):
            return None, f"a date is expected, not {type(v).__name__}"
        return v, None
    if pa.types.is_boolean(typ):
        if isinstance(v, bool | np.bool_):
            return bool(v), None
        if v in (0, 1):
            return bool(v), None
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true", None
        return None, f"true or false is expected, not {v!r}"[:80]
    if pa.types.is_string(typ):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                return None, "not valid UTF-8 text"
        if not isinstance(v, str):
            return None, f"text is expected, not {type(v).__name__}"
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return None, "not valid Unicode text (a lone surrogate)"
        return v, None
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        if isinstance(v, str | bytes | Mapping) or not isinstance(v, Sequence | np.ndarray):
            return None, f"a list is expected, not {type(v).__name__}"
        items: list[Any] = []
        for k, item in enumerate(v):
            conv, problem = (None, None) if item is None else _value_problem(
                item, typ.value_type)
            if problem is not None:
                return None, f"item {k}: {problem}"
            items.append(conv)
        return items, None
    if pa.types.is_struct(typ):
        if not isinstance(v, Mapping):
            return None, f"a mapping is expected, not {type(v).__name__}"
        names = [f.name for f in typ]
        unknown = sorted(set(map(str, v)) - set(names))
        if unknown:
            return None, f"unknown fields {unknown}"
        fields: dict[str, Any] = {}
        for f in typ:
            conv, problem = (None, None) if v.get(f.name) is None else _value_problem(
                v[f.name], f.type)
            if problem is None and isinstance(conv, str):
                problem = text_problem(conv)
            if problem is not None:
                return None, f"{f.name}: {problem}"
            fields[f.name] = conv
        return fields, None
    return None, f"cannot convert to {typ}"  # pragma: no cover - no other column types


def coerce_values(values: Sequence[Any], typ: pa.DataType,
                  name: str) -> tuple[pa.Array, list[BadRow]]:
    """Python values as an Arrow array of ``typ``; unconvertible values become null and
    are listed as bad rows of column ``name``."""
    out: list[Any] = []
    bad: list[BadRow] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        conv, problem = _value_problem(v, typ)
        if problem is not None:
            bad.append(BadRow(i, problem, name))
        out.append(conv)
    return pa.array(out, typ), bad


def _invalid_utf8_rows(col: pa.ChunkedArray) -> list[int]:
    """Rows of a string column whose bytes are not valid UTF-8 (data from a C interface
    is not validated on import)."""
    rows: list[int] = []
    offset = 0
    for chunk in col.chunks:
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:
            raw = chunk.view(pa.binary()) if pa.types.is_string(chunk.type) else \
                chunk.view(pa.large_binary())
            for i, b in enumerate(raw.to_pylist()):
                if b is not None:
                    try:
                        b.decode("utf-8")
                    except UnicodeDecodeError:
                        rows.append(offset + i)
        offset += len(chunk)
    return rows


#: pyarrow < 16 has no string_view type
_is_string_view = getattr(pa.types, "is_string_view", lambda t: False)


def coerce_column(col: Any, typ: pa.DataType, name: str) -> tuple[pa.ChunkedArray, list[BadRow]]:
    """An Arrow column cast to ``typ``: values that do not convert (a negative or too
    large number, a malformed date, invalid UTF-8) become null and are bad rows."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col], col.type)
    elif not isinstance(col, pa.ChunkedArray):
        col = pa.chunked_array(col)
    if _is_string_view(col.type) or pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
    if pa.types.is_string(col.type):
        broken = _invalid_utf8_rows(col)
        if broken:
            keep = np.ones(len(col), dtype=bool)
            keep[broken] = False
            col = pc.if_else(pa.array(keep), col, pa.nulls(len(col), col.type))
            bad = [BadRow(i, "not valid UTF-8 text", name) for i in broken]
            cast, more = coerce_column(col, typ, name)
            return cast, sorted([*bad, *more], key=lambda r: r.row)
    if col.type == typ:
        return col, []
    try:
        return col.cast(typ), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
        pass
    try:
        values = col.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"column {name!r} cannot be read as {typ}: {exc}") from exc
    arr, bad = coerce_values(values, typ, name)
    return pa.chunked_array([arr], typ), bad


# -- checks -------------------------------------------------------------------------


class _Found:
    """Problems found, as (row, column, reason), column by column."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.rows: list[BadRow] = []

    def mask(self, mask: Any, column: str, reason: str) -> None:
        """Rows where ``mask`` (numpy, or Arrow boolean: null is False) is true."""
        if isinstance(mask, pa.ChunkedArray | pa.Array):
            mask = _np_bool(mask)
        if not mask.any():  # the common case, and cheaper than an empty flatnonzero
            return
        idx = np.flatnonzero(mask)
        self.rows.extend(BadRow(int(i), reason, column) for i in idx)


def _np_bool(mask: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """An Arrow boolean column as numpy, null as False."""
    if mask.null_count:
        mask = pc.fill_null(mask, False)
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _np_valid(col: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per value, whether it is not null."""
    if not col.null_count:
        return np.ones(len(col), dtype=bool)
    return _np_bool(pc.is_valid(col))


def _np_days(col: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    """A date column as numpy ``datetime64[D]``; a null is NaT, which compares False."""
    return np.asarray(col.to_numpy(), dtype="datetime64[D]")


def _str(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col if pa.types.is_string(col.type) else col.cast(pa.string())


def text_flags(col: pa.ChunkedArray | pa.Array, limit: int) -> np.ndarray[Any, Any]:
    """Per value of a string column, the flags of the one text rule (Rust,
    ``jukicore_core::text``): ``TEXT_NULL``, ``TEXT_EMPTY``, ``TEXT_CONTROL`` (a refused
    character), ``TEXT_SURROUNDING`` (a space, U+00A0 or U+3000 at either end),
    ``TEXT_TOO_LONG`` (more than ``limit`` characters), ``TEXT_NOT_UTF8``."""
    parts = [_core.text_flags(chunk, limit)  # each chunk through the Arrow C data interface
             for chunk in (col.chunks if isinstance(col, pa.ChunkedArray) else [col])
             if len(chunk)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)


_PROBLEMS: Final = (_core.TEXT_NOT_UTF8 | _core.TEXT_CONTROL | _core.TEXT_SURROUNDING
                    | _core.TEXT_TOO_LONG)


def text_problem(value: str, limit: int = _DEFAULT_MAX) -> str | None:
    """The reason one text breaks the text rule, or None (for texts outside a column)."""
    flags = int(text_flags(pa.array([value], pa.string()), limit)[0])
    for flag, reason in _TEXT_REASONS:
        if flags & flag:
            return reason.format(limit=limit)
    return None


#: Each problem flag of :func:`text_flags` and its reason ({limit}: the column's limit).
_TEXT_REASONS: Final = (
    (_core.TEXT_NOT_UTF8, "not valid UTF-8 text"),
    (_core.TEXT_CONTROL, "control character (NUL, newline, tab ...) in text"),
    (_core.TEXT_SURROUNDING, "surrounding spaces"),
    (_core.TEXT_TOO_LONG, "longer than {limit} characters"),
)


def _all_null(col: pa.ChunkedArray | pa.Array) -> bool:
    """Nothing to check in the column (a single notification leaves most columns null:
    the compute calls' fixed cost then dominates)."""
    return bool(col.null_count == len(col))


def _text(f: _Found, col: pa.ChunkedArray, name: str, *, required: bool = False) -> None:
    if not required and _all_null(col):
        return
    limit = MAX_LENGTHS.get(name, _DEFAULT_MAX)
    flags = text_flags(_str(col), limit)
    if required:
        f.mask(flags & _core.TEXT_NULL, name, "required item missing")
        f.mask(flags & _core.TEXT_EMPTY, name, "required item is empty")
    if not (flags & _PROBLEMS).any():
        return
    for flag, reason in _TEXT_REASONS:
        f.mask(flags & flag, name, reason.format(limit=limit))


def _kana(f: _Found, col: pa.ChunkedArray, name: str) -> None:
    if _all_null(col):
        return
    col = _str(col)
    ok = _np_bool(pc.match_substring_regex(col, KANA_PATTERN))  # null: False
    f.mask(_np_valid(col) & ~ok, name,
           "not full-width katakana (words separated by one ideographic space)")


def _postal(f: _Found, col: pa.ChunkedArray, name: str, lg_code: str | None) -> None:
    if _all_null(col):
        return
    col = _str(col)
    ok = _np_bool(pc.match_substring_regex(col, _POSTAL))  # null: False
    f.mask(_np_valid(col) & ~ok, name, "a postal code is exactly 7 ASCII digits")
    m = municipality(lg_code) if lg_code is not None else None
    if m is not None and ok.any():
        prefix = pc.utf8_slice_codeunits(col, 0, 3)
        inside = _np_bool(pc.is_in(prefix, value_set=_value_set(
            tuple(sorted(m.postal_prefixes)), pa.string())))
        f.mask(ok & ~inside, name, f"postal code not used in {m.prefecture}{m.name}")


def _dates(f: _Found, col: pa.ChunkedArray, name: str, *, latest: dt.date | None) -> None:
    if _all_null(col):
        return
    days = _np_days(col)
    f.mask(days < np.datetime64(DATE_FLOOR), name, f"date before {DATE_FLOOR.isoformat()}")
    if latest is not None:
        f.mask(days > np.datetime64(latest), name,
               f"date in the future (after {latest.isoformat()})")


def _event_dates(f: _Found, ev: pa.ChunkedArray, notified: pa.ChunkedArray,
                 kind: pa.ChunkedArray, today: dt.date) -> None:
    """A notification's event date: not after its notified date (itself not after
    ``today``), a move-out's planned date at most :data:`MOVE_OUT_LEAD_DAYS` after it."""
    if _all_null(ev):
        return
    _dates(f, ev, "event_date", latest=None)
    ev_d, notified_d = _np_days(ev), _np_days(notified)
    move_out = _np_bool(pc.equal(kind, "move_out"))
    f.mask((ev_d > notified_d) & ~move_out, "event_date",
           "the event date is after the notified date")
    lead = notified_d + np.timedelta64(MOVE_OUT_LEAD_DAYS, "D")
    f.mask(move_out & (ev_d > lead), "event_date",
           f"planned move-out date more than {MOVE_OUT_LEAD_DAYS} days after the notified date")
    # without a notified date (rejected for that): still no event after today
    f.mask(np.isnat(notified_d) & ~move_out & (ev_d > np.datetime64(today)), "event_date",
           f"date in the future (after {today.isoformat()})")


def parse_resident_code(value: Any) -> int:
    """A resident code given to a query: an int or a string of exactly 11 ASCII digits,
    with its check digit; anything else is an InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, int | str | np.integer):
        raise InvalidInputError(
            f"a resident code is an int or a string of 11 digits, not {type(value).__name__}")
    if not is_valid_resident_code(value):
        raise InvalidInputError(f"{value!r} is not a valid resident code (check digit)")
    return int(value)


def valid_codes(codes: Any, digits: int = 11) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per code (uint64), whether it is a well-formed resident code (``digits`` 11) or My
    Number (12); out of range: False."""
    arr = np.asarray(codes, dtype=np.uint64)
    ok = arr < np.uint64(10**digits)
    out = np.zeros(arr.shape, dtype=bool)
    if ok.any():
        check = is_valid_resident_code if digits == 11 else is_valid_my_number
        out[ok] = check(arr[ok])
    return out


def _codes(f: _Found, col: pa.ChunkedArray, name: str, digits: int = 11) -> None:
    if _all_null(col):
        return
    valid = _np_valid(col)
    values = (pc.fill_null(col, 0) if col.null_count else col).to_numpy().astype(np.uint64)
    what = "resident code (11 digits)" if digits == 11 else "My Number (12 digits)"
    f.mask(valid & ~valid_codes(values, digits), name,
           f"not a valid {what}: wrong length or check digit")


def _enum(f: _Found, col: pa.ChunkedArray, name: str, allowed: Iterable[Any],
          what: str = "must be") -> None:
    if _all_null(col):
        return
    allowed = tuple(allowed)
    inside = _np_bool(pc.is_in(col, value_set=_value_set(allowed, col.type)))
    shown = ", ".join(str(a) for a in allowed)
    f.mask(_np_valid(col) & ~inside, name, f"{what} one of {shown}")


@cache
def _value_set(allowed: tuple[Any, ...], typ: pa.DataType) -> pa.Array:
    return pa.array(allowed, typ)


def _positive(f: _Found, col: pa.ChunkedArray, name: str) -> None:
    if _all_null(col):
        return
    f.mask(pc.less_equal(col, 0), name, "must be a positive number")


_NAME_COLS: Final = ("family_name", "given_name")
_KANA_COLS: Final = ("family_name_kana", "given_name_kana")


def find_problems(table: pa.Table, *, today: dt.date, lg_code: str | None = None,
                  required: Sequence[str] = (), kinds: Sequence[str] | None = None,
                  change_reasons: Sequence[str] | None = None) -> list[BadRow]:
    """Every problem of every row of ``table`` (already cast to its schema's types), in
    column order. Columns the table lacks are not checked; ``required`` columns must be
    non-null and non-empty. ``lg_code``: postal codes must be this municipality's."""
    f = _Found(table.num_rows)
    names = table.column_names
    kind_col = table.column("kind") if "kind" in names else None
    for name, col in zip(names, table.columns, strict=True):
        req = name in required
        if not req and col.null_count == f.n:
            continue  # nothing to check (most columns of a single notification)
        typ = col.type
        if req and not pa.types.is_string(typ):
            f.mask(pc.is_null(col), name, "required item missing")
        if name in ("resident_code", "new_head_code", "previous_resident_code"):
            _codes(f, col, name, 11)
        elif name == "my_number":
            _codes(f, col, name, 12)
        elif name == "sex":
            _enum(f, col, name, SEXES)
        elif name == "status":
            _text(f, col, name, required=req)
            _enum(f, col, name, STATUSES)
        elif name == "kind" and kinds is not None:
            _text(f, col, name, required=req)
            _enum(f, col, name, kinds, "unknown kind: not")
        elif name == "change_reason" and change_reasons is not None:
            _text(f, col, name, required=req)
            _enum(f, col, name, change_reasons)
        elif name == "household_action":
            _text(f, col, name, required=req)
            _enum(f, col, name, HOUSEHOLD_ACTIONS)
        elif name in ("electoral_roll", "pension_kind"):
            _enum(f, col, name, ELECTORAL_ROLL if name == "electoral_roll" else PENSION_KINDS)
        elif name in _ITEM_FORMATS:
            _text(f, col, name, required=req)
            _item_format(f, col, name)
        elif name in ("household_id", "person_id", "head_person_id", "seq"):
            _positive(f, col, name)
        elif name == "postal_code":
            _text(f, col, name, required=req)
            _postal(f, col, name, lg_code)
        elif name == "lg_code":
            _text(f, col, name, required=req)
            if lg_code is not None:
                f.mask(pc.not_equal(col, lg_code), name, f"not this municipality ({lg_code})")
        elif name in _KANA_COLS:
            _text(f, col, name, required=req)
            _kana(f, col, name)
        elif pa.types.is_string(typ):
            _text(f, col, name, required=req)
        elif pa.types.is_date(typ):
            if name == "event_date" and kind_col is not None and "notified_date" in names:
                _event_dates(f, col, table.column("notified_date"), kind_col, today)
            elif name == "change_date":
                _dates(f, col, name, latest=today + dt.timedelta(days=CHANGE_LEAD_DAYS))
            elif name in ("removal_date", "updated_on", "stay_expires_on"):
                _dates(f, col, name, latest=None)
            else:
                _dates(f, col, name, latest=today)
    if "birth_date" in names and not _all_null(table.column("birth_date")):
        birth = _np_days(table.column("birth_date"))
        for name in ("resident_since", "address_since"):
            if name in names:
                f.mask(_np_days(table.column(name)) < birth, name, "before the date of birth")
    return f.rows


#: Text items checked against their kinds or formats (beyond the text rule).
_ITEM_FORMATS: Final = ("nationality", "foreign_status", "residence_status", "period_of_stay",
                        "residence_card_number")


def _item_format(f: _Found, col: pa.ChunkedArray, name: str) -> None:
    if _all_null(col):
        return
    col = _str(col)
    valid = _np_valid(col)
    if name == "foreign_status":
        _enum(f, col, name, FOREIGN_STATUSES)
    elif name == "residence_status":
        inside = _np_bool(pc.is_in(col, value_set=_value_set(RESIDENCE_STATUSES, pa.string())))
        f.mask(valid & ~inside, name,
               "not a status of residence (在留資格) of a mid- to long-term resident, as"
               " written on the card (e.g. 留学, 技術・人文知識・国際業務, 特定技能1号)")
    elif name == "residence_card_number":
        ok = _np_bool(pc.match_substring_regex(col, RESIDENCE_CARD_PATTERN))
        f.mask(valid & ~ok, name, "a residence card or special permanent resident certificate"
               " number is 2 Latin capitals, 8 digits and 2 Latin capitals (e.g. AB12345678CD)")
    elif name == "period_of_stay":
        ok = _np_bool(pc.match_substring_regex(col, _PERIOD_PATTERN)) & _np_bool(
            pc.not_equal(col, ""))
        f.mask(valid & ~ok, name,
               "a period of stay is years, months and/or days as on the card (e.g. 3年, 6月,"
               " 1年6月)")
    elif name == "nationality":
        folded = pc.utf8_lower(pc.utf8_normalize(col, "NFKC"))  # ＪＡＰＡＮ, Japan: japan
        japan = _np_bool(pc.is_in(folded, value_set=_value_set(_JAPAN, pa.string())))
        f.mask(japan, name, "a Japanese national has no nationality item (null): only a foreign"
               " resident's nationality or region is recorded")


def _day_of(col: Any, n: int) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    """A date column, a date or None as ``n`` numpy days (None: NaT)."""
    if col is None:
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    if isinstance(col, dt.date):
        return np.full(n, np.datetime64(col, "D"), dtype="datetime64[D]")
    return _np_days(col)


def add_months(days: np.ndarray[Any, Any], months: Any) -> np.ndarray[Any, Any]:
    """Each date plus ``months`` calendar months, on the same day of the month; a day the
    month lacks runs over into the next month (29 February + 12 months: 1 March)."""
    d = np.asarray(days, dtype="datetime64[D]")
    nat = np.isnat(d)
    safe = np.where(nat, np.datetime64("2000-01-01"), d)
    month = safe.astype("datetime64[M]")
    into = safe - month.astype("datetime64[D]")
    out = (month + np.asarray(months, dtype=np.int64)).astype("datetime64[D]") + into
    return np.where(nat, np.datetime64("NaT"), out)


def anniversary(birth: np.ndarray[Any, Any], years: int) -> np.ndarray[Any, Any]:
    """The ``years``-th birthday (a 29 February birth's is 1 March in other years)."""
    return add_months(birth, 12 * years)


def age_reached_on(birth: np.ndarray[Any, Any], years: int) -> np.ndarray[Any, Any]:
    """The day a person reaches ``years`` of age in law (年齢計算ニ関スル法律, 民法 第143条):
    the day before the birthday (28 February for a 29 February birth in other years).
    National pension (国民年金法 第8条, 第9条) and long-term care insurance (介護保険法
    第10条) begin and end on that day."""
    return anniversary(birth, years) - np.timedelta64(1, "D")


def _period_parts(col: pa.ChunkedArray) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(months, days) of each period of stay (0, 0 where null or malformed)."""
    if _all_null(col):
        return np.zeros(len(col), dtype=np.int64), np.zeros(len(col), dtype=np.int64)
    parts = pc.extract_regex(_str(col), r"^(?:(?P<y>[1-9][0-9]?)年)?(?:(?P<m>[1-9][0-9]?)月)?"
                                        r"(?:(?P<d>[1-9][0-9]?)日)?$")

    def num(field: str) -> np.ndarray[Any, Any]:
        v = pc.struct_field(parts, field)
        v = pc.if_else(pc.equal(v, ""), pa.scalar(None, pa.string()), v)
        return np.asarray(pc.fill_null(v.cast(pa.int64()), 0).to_numpy(zero_copy_only=False),
                          dtype=np.int64)

    return num("y") * 12 + num("m"), num("d")


def record_item_problems(table: pa.Table, event: pa.ChunkedArray | dt.date, *,
                         changed: Iterable[str] | None = None) -> list[BadRow]:
    """The rules between a record's items (Article 7 and the foreign residents' items),
    per row of ``table``: records as they are (load) or will be after a notification
    (apply), with ``birth_date``, ``resident_since`` and the item columns (a missing item
    column is null). ``event``: the date the items are recorded at (the event date; a
    load: today). ``changed``: the items the notification sets, whose rules of age and
    date apply (None: every item, as in a load); the rules between items always apply.
    Formats are checked by :func:`find_problems`. The rules and their sources: docs/register.md.
    """
    n = table.num_rows
    names = set(table.column_names)
    f = _Found(n)
    if n == 0:
        return f.rows

    def col(name: str) -> pa.ChunkedArray:
        if name in names:
            return table.column(name)
        return pa.chunked_array([pa.nulls(n, pa.string())], pa.string())

    def has(name: str) -> np.ndarray[Any, Any]:
        return _np_valid(col(name)) if name in names else np.zeros(n, dtype=bool)

    def days(name: str) -> np.ndarray[Any, Any]:
        return _day_of(table.column(name) if name in names else None, n)

    def eq(name: str, value: Any) -> np.ndarray[Any, Any]:
        return _np_bool(pc.equal(col(name), value)) if name in names else np.zeros(n, bool)

    todo = None if changed is None else set(changed)

    def dated(name: str) -> bool:
        return todo is None or name in todo

    ev = _day_of(event, n)
    birth = days("birth_date")
    # -- Article 7 items ----------------------------------------------------------------
    for name in ("nhi_since", "elderly_care_since", "ltc_insurance_since", "pension_since",
                 "child_allowance_since"):
        if name in names and dated(name):
            d = days(name)
            f.mask(d > ev, name, "dated after the event it is recorded at")
            f.mask(d < birth, name, "before the date of birth")
    if dated("electoral_roll"):
        roll = eq("electoral_roll", 1)
        f.mask(roll & ~(age_reached_on(birth, 18) <= ev), "electoral_roll",
               "the electoral roll registers people of 18 or older (公職選挙法 第9条)")
        since = days("resident_since")
        f.mask(roll & ~(add_months(since, 3) <= ev), "electoral_roll",
               "the electoral roll registers residents of three months or more (公職選挙法"
               " 第21条)")
    f.mask(eq("electoral_roll", 1) & has("nationality"), "electoral_roll",
           "a foreign resident is not registered in the electoral roll (公職選挙法 第9条: a"
           " Japanese national)")
    f.mask(has("nhi_since") & has("elderly_care_since"), "nhi_since",
           "national health insurance ends when late-stage elderly medical care begins"
           " (国民健康保険法 第6条第8号): clear nhi_since")
    if dated("nhi_since"):
        f.mask(has("nhi_since") & (anniversary(birth, 75) <= ev), "nhi_since",
               "a person of 75 or older is insured by late-stage elderly medical care, not"
               " national health insurance (高齢者の医療の確保に関する法律 第50条)")
    if dated("elderly_care_since"):
        f.mask(has("elderly_care_since") & ~(age_reached_on(birth, 65)
                                             <= days("elderly_care_since")),
               "elderly_care_since", "late-stage elderly medical care begins at 75 (65 to 74"
               " with a certified disability; 高齢者の医療の確保に関する法律 第50条):"
               " not before 65")
    if dated("ltc_insurance_since"):
        f.mask(has("ltc_insurance_since") & ~(age_reached_on(birth, 40)
                                              <= days("ltc_insurance_since")),
               "ltc_insurance_since", "long-term care insurance begins at 40 (介護保険法 第9条,"
               " 第10条)")
    kind_set, since_set = has("pension_kind"), has("pension_since")
    f.mask(kind_set & ~since_set, "pension_since", "pension_kind needs pension_since")
    f.mask(since_set & ~kind_set, "pension_kind", "pension_since needs pension_kind")
    if dated("pension_kind") or dated("pension_since"):
        k1or3 = eq("pension_kind", 1) | eq("pension_kind", 3)
        at20, at60 = age_reached_on(birth, 20), age_reached_on(birth, 60)
        f.mask(k1or3 & ~((at20 <= ev) & (ev < at60)), "pension_kind",
               "national pension kinds 1 and 3 insure people of 20 to 59 (国民年金法 第7条)")
        f.mask(k1or3 & ~(at20 <= days("pension_since")), "pension_since",
               "national pension kinds 1 and 3 begin at 20 (国民年金法 第8条)")
        f.mask(eq("pension_kind", 2) & ~(ev < age_reached_on(birth, 70)), "pension_kind",
               "national pension kind 2 insures employees under 70 (厚生年金保険法 第9条)")
    # -- foreign residents (Article 30-45) -------------------------------------------------
    national = ~has("nationality")
    for name in ("foreign_status", "residence_status", "period_of_stay", "stay_expires_on",
                 "residence_card_number"):
        f.mask(national & has(name), name,
               "a Japanese national (nationality null) has no foreign residents' items")
    f.mask(~national & ~has("foreign_status"), "foreign_status",
           "a foreign resident needs foreign_status (Article 30-45)")
    mid = eq("foreign_status", "mid_long_term")
    special = eq("foreign_status", "special_permanent")
    refuge = eq("foreign_status", "temporary_refuge") | eq("foreign_status", "provisional_stay")
    birth_tr = eq("foreign_status", "birth_transition")
    indefinite = np.zeros(n, dtype=bool)
    if "residence_status" in names:
        indefinite = _np_bool(pc.is_in(col("residence_status"), value_set=_value_set(
            INDEFINITE_STATUSES, pa.string())))
    needs = {
        "residence_status": mid,
        "period_of_stay": (mid & ~indefinite) | refuge,
        "stay_expires_on": (mid & ~indefinite) | refuge,
        "residence_card_number": mid | special,
    }
    for name, need in needs.items():
        f.mask(need & ~has(name), name, f"required for this foreign status ({name})")
        f.mask(~national & ~need & has(name), name,
               "does not apply to this foreign status" + (
                   " (a status of residence without a period of stay)"
                   if name in ("period_of_stay", "stay_expires_on") else ""))
    if "period_of_stay" in names and not _all_null(col("period_of_stay")):
        months, pdays = _period_parts(col("period_of_stay"))
        period = has("period_of_stay")
        f.mask(period & mid & ((months < 3) | ((months == 3) & (pdays == 0))), "period_of_stay",
               "a mid- to long-term resident's period of stay is longer than 3 months"
               " (入管法 第19条の3)")
        f.mask(period & ((months > 60) | ((months == 60) & (pdays > 0))),
               "period_of_stay", "a period of stay is at most 5 years (入管法施行規則 別表第二)")
        f.mask(period & eq("foreign_status", "temporary_refuge")
               & ((months > 6) | ((months == 6) & (pdays > 0))), "period_of_stay",
               "a temporary refuge's period of landing is at most 6 months (入管法 第18条の2)")
        if dated("stay_expires_on") or dated("period_of_stay"):
            latest = add_months(ev, months + 3) + pdays.astype("timedelta64[D]")
            f.mask(period & (days("stay_expires_on") > latest), "stay_expires_on",
                   "later than the period of stay allows from the event date (a renewal runs"
                   " from the old expiry, at most 3 months ahead)")
    if dated("stay_expires_on"):
        f.mask(has("stay_expires_on") & (days("stay_expires_on") < ev), "stay_expires_on",
               "the period of stay has expired by the event date")
    if dated("foreign_status") or dated("nationality"):
        last_day: np.ndarray[Any, Any] = birth + np.timedelta64(TRANSITION_DAYS, "D")
        f.mask(birth_tr & (ev > last_day), "foreign_status",
               f"a person born in Japan stays at most {TRANSITION_DAYS} days without a status"
               " of residence (入管法 第22条の2)")
    return f.rows


def first_per_row(rows: Iterable[BadRow]) -> dict[int, BadRow]:
    """The first problem found of each row."""
    out: dict[int, BadRow] = {}
    for r in rows:
        out.setdefault(r.row, r)
    return out


def sorted_rows(rows: Iterable[BadRow]) -> list[BadRow]:
    """Problems by row, then in the order found (column order)."""
    return sorted(rows, key=lambda r: r.row)
