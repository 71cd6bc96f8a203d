"""What every notification rule shares: the rejection of a row and the checks of its fields.

Imported by the data access (:mod:`.data`), the household rules (:mod:`.households`) and the
notification rules (:mod:`.notifications`); it imports none of them at run time.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from jukicore.codes import is_valid_my_number, is_valid_resident_code
from jukicore.errors import ConflictError, InvalidInputError, JukiError

from ._schema import HEAD

if TYPE_CHECKING:
    from .data import Batch


class Rejected(JukiError):
    """Internal: a row is rejected (carries the public error to report)."""

    def __init__(self, error: JukiError, column: str | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.column = column


def invalid(msg: str, column: str | None = None) -> Rejected:
    return Rejected(InvalidInputError(msg), column)


def conflict(msg: str, column: str | None = None) -> Rejected:
    return Rejected(ConflictError(msg), column)


def fmt_code(code: int | None, width: int = 11) -> str | None:
    return None if code is None else str(int(code)).zfill(width)


def valid_resident_code(code: int) -> bool:
    """Whether an 11-digit resident code has its check digit (the rule lives in jukicore.codes)."""
    return bool(is_valid_resident_code(int(code)))


def valid_my_number(number: int) -> bool:
    return bool(is_valid_my_number(int(number)))


def req(r: dict[str, Any], *names: str) -> None:
    for n in names:
        v = r.get(n)
        if v is None or (isinstance(v, str) and not v.strip()):
            raise invalid(f"{r['kind']} needs {n}", n)


def opt_text(v: Any) -> str | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    return str(v)


def check_code_value(r: dict[str, Any], column: str) -> int:
    code = int(r[column])
    if not valid_resident_code(code):
        raise invalid(f"{fmt_code(code)} is not a valid resident code (check digit)", column)
    return code


def relationship(r: dict[str, Any], *, head_ok: bool) -> str:
    req(r, "relationship")
    rel = str(r["relationship"]).strip()
    if rel == HEAD and not head_ok:
        raise conflict("a household has one head: use a household change (new_head)",
                       "relationship")
    return rel


def target(b: Batch, r: dict[str, Any], event_date: dt.date, *,
           retroactive: bool = False) -> dict[str, Any]:
    """The current record the row names; its event date not before the record's last change
    (``retroactive``: the caller checks that itself, see ``notifications._plan_retroactive``)."""
    req(r, "resident_code")
    code = check_code_value(r, "resident_code")
    p = b.person_by_code(code)
    if event_date < p["updated_on"] and not retroactive:
        raise conflict(
            f"event date {event_date} is before the record's last change ({p['updated_on']}):"
            " dates must be in order",
            "event_date",
        )
    if event_date < p["birth_date"]:
        raise invalid(f"event date {event_date} is before the date of birth", "event_date")
    return p
