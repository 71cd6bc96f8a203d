"""Applying notifications (届出): validation and the changes each kind makes.

Each row is validated completely against the register's current state (reads
only) before anything is written, so a rejected row changes nothing. Writes
for accepted rows go straight to the resident and household tables (later rows
of the same batch see them); the append-only rows (history, notification log,
audit, outbox) are buffered and written with ``executemany`` before the
transaction commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jukicore import audit
from jukicore.codes import is_valid_my_number, is_valid_resident_code
from jukicore.errors import (
    CodeSpaceExhaustedError,
    ConflictError,
    InvalidInputError,
    JukiError,
    NotFoundError,
)
from jukicore.identity.items import IDENTITY_COLUMNS, IDENTITY_ITEMS
from jukicore.store.backend import Session

from ._schema import HEAD, REMOVED, RESIDENT, RESIDENT_COLUMNS, TRACKED_ITEMS
from .events import KINDS

RES_COLS: tuple[str, ...] = tuple(c.name for c in RESIDENT_COLUMNS)
_DATE_COLS = frozenset(c.name for c in RESIDENT_COLUMNS if c.type == "date")
SELECT_RES = "SELECT " + ", ".join(RES_COLS) + " FROM residents"
INSERT_RES = (
    "INSERT INTO residents (" + ", ".join(RES_COLS) + ") VALUES (" + ", ".join("?" * len(RES_COLS))
    + ")"
)
_IDENTITY = IDENTITY_ITEMS
#: The outbox row of a change: the municipality, the identity info, the notification.
_OUTBOX_ITEMS = tuple(c.name for c in IDENTITY_COLUMNS)
_OUTBOX_DATES = frozenset(c.name for c in IDENTITY_COLUMNS if c.type == "date")
INSERT_OUTBOX = (f"INSERT INTO outbox (lg_code, {', '.join(_OUTBOX_ITEMS)}, notification_id,"
                 f" recorded_at) VALUES ({', '.join('?' * (len(_OUTBOX_ITEMS) + 3))})")

#: How far ahead a move-out may be planned (転出予定日), in days after the notification.
MOVE_OUT_LEAD_DAYS = 14


class Rejected(JukiError):
    """Internal: a row is rejected (carries the public error to report)."""

    def __init__(self, error: JukiError, column: str | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.column = column


def _invalid(msg: str, column: str | None = None) -> Rejected:
    return Rejected(InvalidInputError(msg), column)


def _conflict(msg: str, column: str | None = None) -> Rejected:
    return Rejected(ConflictError(msg), column)


def fmt_code(code: int | None, width: int = 11) -> str | None:
    return None if code is None else str(int(code)).zfill(width)


def _text(item: str, value: Any) -> str | None:
    if value is None:
        return None
    if item == "resident_code":
        return fmt_code(value)
    if item == "my_number":
        return fmt_code(value, 12)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def valid_resident_code(code: int) -> bool:
    """Whether an 11-digit resident code has its check digit (the rule lives in jukicore.codes)."""
    return bool(is_valid_resident_code(int(code)))


def valid_my_number(number: int) -> bool:
    return bool(is_valid_my_number(int(number)))


@dataclass(frozen=True)
class Prior:
    """What the notification log holds of an applied notification id."""

    digest: str | None  # None: applied before schema version 5
    kind: str
    notified_date: dt.date | None
    event_date: dt.date | None
    resident_code: int | None


SELECT_PRIOR = ("SELECT notification_id, digest, kind, notified_date, event_date, resident_code"
                " FROM notifications")

#: Kinds whose log row holds the resident code the notification named.
_NAMED_CODE_KINDS = frozenset({"death", "move_out", "move_within", "household_change",
                               "name_change", "my_number", "ex_officio_removal",
                               "move_out_correction"})


def _canonical(v: Any) -> Any:
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return [_canonical(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in sorted(v.items())}
    return v


def row_digest(r: dict[str, Any]) -> str:
    """SHA-256 of a normalized notification: every non-null column (a false flag counts as
    absent), in name order, as canonical JSON. Columns added to EVENT_SCHEMA later do not
    change the digest of a row that leaves them null."""
    items = {k: v if type(v) is str or type(v) is int or v is True else _canonical(v)
             for k, v in r.items() if v is not None and v is not False}
    payload = json.dumps(items, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Batch:
    """State of one ``apply`` transaction."""

    s: Session
    lg_code: str
    prefecture: str
    municipality: str
    actor: str
    actor_kind: str
    now: dt.datetime
    today: dt.date
    next_person_id: int
    next_household_id: int
    outbox_seq: int
    history: list[tuple[Any, ...]] = field(default_factory=list)
    notifications: list[tuple[Any, ...]] = field(default_factory=list)
    audit: list[tuple[Any, ...]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    #: notification id -> digest of the rows this batch applied
    seen_ids: dict[str, str] = field(default_factory=dict)
    #: My Numbers replaced by this batch (their history rows are not written yet)
    replaced_numbers: set[int] = field(default_factory=set)
    last_person_id: int | None = None
    #: notification ids of this batch already in the register, with what the log holds of
    #: them (None: ask per row)
    known_ids: dict[str, Prior] | None = None
    # Read caches, filled up front by prefetch() and on reads. Every write to a cached
    # record or household goes through this class and drops its entry, so a hit is always
    # the current state of this transaction.
    _by_code: dict[int, dict[str, Any]] = field(default_factory=dict)
    _code_of: dict[int, int] = field(default_factory=dict)
    _households: dict[int, tuple[int, str, dt.date | None] | None] = field(default_factory=dict)
    now_p: Any = None  # self.now as a parameter

    def __post_init__(self) -> None:
        self.now_p = self.s.ts(self.now)

    # -- prefetch (one query per 500 keys instead of one per row) ------------------------

    def prefetch(self, nids: list[str], codes: list[int], household_ids: list[int]) -> None:
        known: dict[str, Prior] = {}
        for part in _chunks(sorted(set(nids))):
            marks = ", ".join("?" * len(part))
            for row in self.s.query(f"{SELECT_PRIOR} WHERE notification_id IN ({marks})", part):
                known[str(row[0])] = self.prior(row)
        self.known_ids = known
        hids: set[int] = set(household_ids)
        for part in _chunks(sorted(set(codes))):
            marks = ", ".join("?" * len(part))
            for row in self.s.query(
                    f"{SELECT_RES} WHERE resident_code IN ({marks}) AND status = 'resident'", part):
                p = self._person(row)
                self._remember(p)
                hids.add(int(p["household_id"]))
        for part in _chunks(sorted(hids)):
            self._households.update(dict.fromkeys(part))  # absent unless found below
            marks = ", ".join("?" * len(part))
            for hid, head, addr, gone in self.s.query(
                    "SELECT household_id, head_person_id, address, dissolved_on FROM households"
                    f" WHERE household_id IN ({marks})", part):
                self._households[int(hid)] = (int(head), str(addr), self.s.pd(gone))

    def prior(self, row: tuple[Any, ...]) -> Prior:
        pd = self.s.pd
        return Prior(None if row[1] is None else str(row[1]), str(row[2]), pd(row[3]),
                     pd(row[4]), None if row[5] is None else int(row[5]))

    def _remember(self, p: dict[str, Any]) -> None:
        self._by_code[int(p["resident_code"])] = p
        self._code_of[int(p["person_id"])] = int(p["resident_code"])

    def _forget(self, person_id: int) -> None:
        code = self._code_of.pop(int(person_id), None)
        if code is not None:
            self._by_code.pop(code, None)

    def household_write(self, sql: str, params: tuple[Any, ...], household_id: int) -> None:
        """Every write to ``households`` (keeps the household cache exact)."""
        self._households.pop(int(household_id), None)
        self.s.execute(sql, params)

    # -- reads -----------------------------------------------------------------------

    def person_by_code(self, code: int, column: str = "resident_code") -> dict[str, Any]:
        hit = self._by_code.get(code)
        if hit is not None:
            return dict(hit)
        rows = self.s.query(SELECT_RES + " WHERE resident_code = ? AND status = 'resident'",
                            (code,))
        if rows:
            return self._person(rows[0])
        if self.s.query("SELECT 1 FROM retired_codes WHERE code = ?", (code,)):
            # the same answer whether the holder lives or not
            raise _conflict(f"resident code {fmt_code(code)} was retired by a code change:"
                            " a notification names the current code", column)
        gone = self.s.query(
            "SELECT r.removal_reason FROM history h JOIN residents r ON r.person_id = h.person_id"
            " WHERE h.resident_code = ? AND r.status = 'removed' ORDER BY r.person_id DESC"
            " LIMIT 1",
            (code,),
        )
        if gone:
            raise _conflict(
                f"resident {fmt_code(code)} was removed ({gone[0][0]}): no further notifications",
                column,
            )
        raise Rejected(NotFoundError(f"no resident with code {fmt_code(code)}"), column)

    def _person(self, row: tuple[Any, ...]) -> dict[str, Any]:
        p = dict(zip(RES_COLS, row, strict=True))
        pd = self.s.pd
        for name in _DATE_COLS:
            p[name] = pd(p[name])
        return p

    def members(self, household_id: int) -> list[dict[str, Any]]:
        rows = self.s.query(
            SELECT_RES + " WHERE household_id = ? AND status = 'resident' ORDER BY person_id",
            (household_id,),
        )
        return [self._person(r) for r in rows]

    def household(self, household_id: int) -> tuple[int, str, dt.date | None] | None:
        household_id = int(household_id)
        if household_id in self._households:
            return self._households[household_id]
        rows = self.s.query(
            "SELECT head_person_id, address, dissolved_on FROM households WHERE household_id = ?",
            (household_id,),
        )
        out = None if not rows else (int(rows[0][0]), str(rows[0][1]), self.s.pd(rows[0][2]))
        self._households[household_id] = out
        return out

    def code_status(self, code: int) -> tuple[bool, bool, bool]:
        """(held by a current resident, retired, waiting in this municipality's pool of codes
        never issued): one round trip."""
        if code in self._by_code:
            return True, False, False
        row = self.s.query(
            "SELECT (SELECT count(*) FROM residents WHERE resident_code = ?"
            " AND status = 'resident'), (SELECT count(*) FROM retired_codes WHERE code = ?),"
            " (SELECT count(*) FROM code_pool WHERE code = ?)",
            (code, code, code))[0]
        return bool(row[0]), bool(row[1]), bool(row[2])

    def take_code(self) -> int:
        rows = self.s.query("SELECT pos, code FROM code_pool ORDER BY pos LIMIT 1")
        if not rows:
            raise Rejected(
                CodeSpaceExhaustedError(
                    "the municipality's code block is empty: import a new block"
                )
            )
        self.s.execute("DELETE FROM code_pool WHERE pos = ?", (rows[0][0],))
        return int(rows[0][1])

    # -- writes ----------------------------------------------------------------------

    def update(
        self,
        person: dict[str, Any],
        changes: dict[str, Any],
        event_date: dt.date,
        reason: str,
        nid: str | None,
        *,
        previous_code: int | None = None,
    ) -> None:
        diff = {k: v for k, v in changes.items() if person[k] != v}
        if self.last_person_id is None:
            self.last_person_id = int(person["person_id"])
        if not diff:
            return
        self._forget(person["person_id"])
        sets = ", ".join(f"{k} = ?" for k in diff)
        d = self.s.d
        params = [d(v) if k in _DATE_COLS else v for k, v in diff.items()]
        updated_on = max(person["updated_on"], event_date)
        self.s.execute(
            f"UPDATE residents SET {sets}, updated_on = ? WHERE person_id = ?",
            [*params, d(updated_on), person["person_id"]],
        )
        code_before = person["resident_code"]
        rec = self.now_p
        ev = d(event_date)
        if diff.get("my_number") is not None and person["my_number"] is not None:
            self.replaced_numbers.add(int(person["my_number"]))
        for k, v in diff.items():
            self.history.append(
                (person["person_id"], code_before, k, _text(k, person[k]), _text(k, v), ev, rec,
                 reason, nid)
            )
        person.update(diff)
        person["updated_on"] = updated_on
        if any(k in diff for k in _IDENTITY):
            self.to_outbox(person, event_date, reason, nid, previous_code=previous_code)

    def create(self, person: dict[str, Any], reason: str, nid: str) -> None:
        d = self.s.d
        self.last_person_id = int(person["person_id"])
        self._forget(person["person_id"])
        values = [d(person[c]) if c in _DATE_COLS else person[c] for c in RES_COLS]
        self.s.execute(INSERT_RES, values)
        self.history.append(
            (person["person_id"], person["resident_code"], "status", None, RESIDENT,
             d(person["resident_since"]), self.now_p, reason, nid)
        )
        self.to_outbox(person, person["resident_since"], reason, nid)

    def to_outbox(
        self,
        p: dict[str, Any],
        change_date: dt.date,
        reason: str,
        nid: str | None,
        *,
        previous_code: int | None = None,
    ) -> None:
        self.outbox_seq += 1
        change: dict[str, Any] = {"seq": self.outbox_seq, "previous_resident_code": previous_code,
                                  "change_date": change_date, "change_reason": reason}
        row: list[Any] = [self.lg_code]
        for c in _OUTBOX_ITEMS:
            v = change[c] if c in change else p[c]
            row.append(self.s.d(v) if c in _OUTBOX_DATES else v)
        self.outbox.append((*row, nid, self.now_p))

    def flush_history(self) -> None:
        """Write the buffered history rows now (a read of the history follows)."""
        if self.history:
            self.s.executemany(
                "INSERT INTO history (person_id, resident_code, item, old_value, new_value,"
                " event_date, recorded_at, reason, notification_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self.history,
            )
            self.history.clear()

    def flush(self) -> None:
        s = self.s
        self.flush_history()
        s.executemany(
            "INSERT INTO notifications (notification_id, kind, person_id, resident_code,"
            " notified_date, event_date, recorded_at, actor, digest)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.notifications,
        )
        audit.write_many(s, self.audit)
        s.executemany(INSERT_OUTBOX, self.outbox)
        s.execute("UPDATE meta SET value = ? WHERE key = 'outbox_seq'", (str(self.outbox_seq),))
        self.history.clear()
        self.notifications.clear()
        self.audit.clear()
        self.outbox.clear()


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


# -- validation helpers --------------------------------------------------------------------


def _req(r: dict[str, Any], *names: str) -> None:
    for n in names:
        v = r.get(n)
        if v is None or (isinstance(v, str) and not v.strip()):
            raise _invalid(f"{r['kind']} needs {n}", n)


def _opt_text(v: Any) -> str | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    return str(v)


def _address(b: Batch, r: dict[str, Any]) -> dict[str, Any]:
    _req(r, "postal_code", "town", "street")
    pc = str(r["postal_code"])
    if len(pc) != 7 or not pc.isdigit():
        raise _invalid(f"postal code must be 7 digits, got {pc!r}", "postal_code")
    building = _opt_text(r.get("building"))
    full = f"{b.prefecture}{b.municipality}{r['town']}{r['street']}"
    if building:
        full += f" {building}"
    return {
        "postal_code": pc,
        "prefecture": b.prefecture,
        "municipality": b.municipality,
        "lg_code": b.lg_code,
        "town": r["town"],
        "street": r["street"],
        "building": building,
        "address": full,
    }


def _check_code_value(r: dict[str, Any], column: str) -> int:
    code = int(r[column])
    if not valid_resident_code(code):
        raise _invalid(f"{fmt_code(code)} is not a valid resident code (check digit)", column)
    return code


def _target(b: Batch, r: dict[str, Any], event_date: dt.date, *,
            retroactive: bool = False) -> dict[str, Any]:
    """The current record the row names; its event date not before the record's last change
    (``retroactive``: the caller checks that itself, see :func:`_plan_retroactive`)."""
    _req(r, "resident_code")
    code = _check_code_value(r, "resident_code")
    p = b.person_by_code(code)
    if event_date < p["updated_on"] and not retroactive:
        raise _conflict(
            f"event date {event_date} is before the record's last change ({p['updated_on']}):"
            " dates must be in order",
            "event_date",
        )
    if event_date < p["birth_date"]:
        raise _invalid(f"event date {event_date} is before the date of birth", "event_date")
    return p


def _relationship(r: dict[str, Any], *, head_ok: bool) -> str:
    _req(r, "relationship")
    rel = str(r["relationship"]).strip()
    if rel == HEAD and not head_ok:
        raise _conflict("a household has one head: use a household change (new_head)",
                        "relationship")
    return rel


@dataclass
class _Leave:
    """What happens to a household when someone leaves it (validated, not yet written)."""

    household_id: int
    new_head: dict[str, Any] | None
    dissolve: bool


def _plan_leave(b: Batch, r: dict[str, Any], p: dict[str, Any], also_leaving: set[int]) -> _Leave:
    hid = int(p["household_id"])
    hh = b.household(hid)
    head_id = hh[0] if hh else None
    remaining = [m for m in b.members(hid) if m["person_id"] not in also_leaving]
    if p["person_id"] != head_id or not remaining:
        if r.get("new_head_code") is not None and p["person_id"] != head_id:
            raise _invalid("new_head_code is only for the head of a household", "new_head_code")
        return _Leave(hid, None, dissolve=not remaining)
    if r.get("new_head_code") is None:
        raise _conflict(
            f"{fmt_code(p['resident_code'])} heads household {hid} and others remain:"
            " name the new head (new_head_code)",
            "new_head_code",
        )
    nh = int(r["new_head_code"])
    match = [m for m in remaining if m["resident_code"] == nh]
    if not match:
        raise _conflict(
            f"new head {fmt_code(nh)} is not a current member of household {hid}", "new_head_code"
        )
    return _Leave(hid, match[0], dissolve=False)


def _do_leave(b: Batch, leave: _Leave, ev: dt.date, reason: str, nid: str) -> None:
    if leave.new_head is not None:
        b.update(leave.new_head, {"relationship": HEAD}, ev, reason, nid)
        b.household_write(
            "UPDATE households SET head_person_id = ? WHERE household_id = ?",
            (leave.new_head["person_id"], leave.household_id), leave.household_id,
        )
    elif leave.dissolve:
        b.household_write(
            "UPDATE households SET dissolved_on = ? WHERE household_id = ?",
            (b.s.d(ev), leave.household_id), leave.household_id,
        )


def _new_household_id(b: Batch, r: dict[str, Any]) -> int:
    hid = r.get("household_id")
    if hid is None:
        hid = b.next_household_id
    elif b.household(int(hid)) is not None:
        raise _conflict(f"household {hid} already exists", "household_id")
    hid = int(hid)
    b.next_household_id = max(b.next_household_id, hid + 1)
    return hid


def _create_household(b: Batch, hid: int, head_id: int, address: str, ev: dt.date) -> None:
    b.household_write(
        "INSERT INTO households (household_id, head_person_id, address, created_on, dissolved_on)"
        " VALUES (?, ?, ?, ?, NULL)",
        (hid, head_id, address, b.s.d(ev)), hid,
    )


def _active_household(b: Batch, hid: int) -> tuple[int, str]:
    hh = b.household(hid)
    if hh is None or hh[2] is not None or not b.s.query(
            "SELECT 1 FROM residents WHERE household_id = ? AND status = 'resident' LIMIT 1",
            (hid,)):
        raise Rejected(NotFoundError(f"no current household {hid}"), "household_id")
    return hh[0], hh[1]


def _names(r: dict[str, Any]) -> dict[str, Any]:
    _req(r, "family_name", "given_name", "family_name_kana", "given_name_kana")
    return {k: str(r[k]) for k in ("family_name", "given_name", "family_name_kana",
                                   "given_name_kana")}


def _sex(r: dict[str, Any]) -> int:
    _req(r, "sex")
    sex = int(r["sex"])
    if sex not in (1, 2):
        raise _invalid(f"sex must be 1 (male) or 2 (female), got {sex}", "sex")
    return sex


# -- the kinds ---------------------------------------------------------------------------


def _new_person(b: Batch, **fields: Any) -> dict[str, Any]:
    p: dict[str, Any] = dict.fromkeys(RES_COLS)
    p.update(fields)
    p["person_id"] = b.next_person_id
    b.next_person_id += 1
    p["status"] = RESIDENT
    p["updated_on"] = p["resident_since"]
    return p


def _birth(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    names = _names(r)
    sex = _sex(r)
    if r.get("birth_date") is not None and r["birth_date"] != ev:
        raise _invalid("a birth's event date is the date of birth", "birth_date")
    _req(r, "household_id")
    hid = int(r["household_id"])
    head_id, _ = _active_household(b, hid)
    rel = _relationship(r, head_ok=False)
    head = b.s.query(SELECT_RES + " WHERE person_id = ?", (head_id,))
    h = b._person(head[0])
    if ev < h["address_since"]:
        raise _conflict("the household did not live at its address on the date of birth",
                        "event_date")
    code = b.take_code()
    p = _new_person(
        b,
        resident_code=code,
        **names,
        birth_date=ev,
        sex=sex,
        household_id=hid,
        relationship=rel,
        domicile=_opt_text(r.get("domicile")) or h["domicile"],
        domicile_head=_opt_text(r.get("domicile_head")) or h["domicile_head"],
        **{k: h[k] for k in ("postal_code", "prefecture", "municipality", "lg_code", "town",
                             "street", "building", "address")},
        resident_since=ev,
        address_since=ev,
    )
    b.create(p, "birth", nid)
    return code


def _move_in(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    names = _names(r)
    sex = _sex(r)
    _req(r, "birth_date", "previous_address")
    birth = r["birth_date"]
    if birth > ev:
        raise _invalid("date of birth after the move-in date", "birth_date")
    addr = _address(b, r)
    from_abroad = bool(r.get("from_abroad"))
    code: int | None = None
    if r.get("resident_code") is not None:
        code = _check_code_value(r, "resident_code")
        in_use, retired, unissued = b.code_status(code)
        if in_use:
            raise _conflict(f"resident code {fmt_code(code)} belongs to a current resident",
                            "resident_code")
        if retired:
            raise _conflict(f"resident code {fmt_code(code)} was retired", "resident_code")
        if unissued:
            raise _conflict(f"resident code {fmt_code(code)} is in this municipality's block of "
                            "codes never issued: no one moving in can hold it", "resident_code")
        _check_returning(b, code, birth, sex)
    elif not from_abroad:
        raise _invalid("a move-in from another municipality carries the resident code",
                       "resident_code")
    mn = r.get("my_number")
    if mn is not None:
        _check_my_number(b, int(mn), code)
    hid_in = r.get("household_id")
    joining = hid_in is not None and b.household(int(hid_in)) is not None
    if joining:
        hid = int(hid_in)  # type: ignore[arg-type]
        _, hh_addr = _active_household(b, hid)
        rel = _relationship(r, head_ok=False)
        if hh_addr != addr["address"]:
            raise _conflict(f"household {hid} lives at another address", "household_id")
    else:
        rel = _relationship(r, head_ok=True)
        if rel != HEAD:
            raise _conflict("a new household's first member is its head (世帯主)", "relationship")
        hid = _new_household_id(b, r)
    if code is None:
        code = b.take_code()
    p = _new_person(
        b,
        resident_code=code,
        my_number=None if mn is None else int(mn),
        **names,
        birth_date=birth,
        sex=sex,
        household_id=hid,
        relationship=rel,
        domicile=_opt_text(r.get("domicile")),
        domicile_head=_opt_text(r.get("domicile_head")),
        **addr,
        resident_since=ev,
        address_since=ev,
        previous_address=str(r["previous_address"]),
        move_in_notified=r["notified_date"],
    )
    b.create(p, "move_in", nid)
    if not joining:
        _create_household(b, hid, p["person_id"], addr["address"], ev)
    return code


#: Removal reasons after which the same person may move in again with their code.
_RETURNABLE = ("moved_out", "ex_officio")


def _check_returning(b: Batch, code: int, birth: dt.date, sex: int) -> None:
    """A code on a 除票 of this register moves in only as the same person coming back.

    The latest removed record holding ``code`` must have been removed by a move-out (or
    ex officio: the person still lives) and have the same date of birth and sex; a code
    whose holder died, or a different identity, is refused.
    """
    rows = b.s.query(
        "SELECT removal_reason, birth_date, sex FROM residents WHERE resident_code = ?"
        " AND status = 'removed' ORDER BY person_id DESC LIMIT 1", (code,))
    if not rows:
        return
    reason, born, held_sex = rows[0][0], b.s.pd(rows[0][1]), int(rows[0][2])
    if reason not in _RETURNABLE:
        raise _conflict(f"resident code {fmt_code(code)} belongs to a removed record ({reason}):"
                        " it cannot move in again", "resident_code")
    if born != birth:
        raise _conflict(f"resident code {fmt_code(code)} belongs to a removed record with another"
                        " date of birth: not the same person", "birth_date")
    if held_sex != sex:
        raise _conflict(f"resident code {fmt_code(code)} belongs to a removed record with another"
                        " sex: not the same person", "sex")


#: Items a move within the municipality sets: the only changes a retroactive death voids.
_MOVE_ITEMS = frozenset({"postal_code", "prefecture", "municipality", "lg_code", "town",
                         "street", "building", "address", "address_since"})


@dataclass
class _Retro:
    """A death dated before moves recorded for the person: what to void and restore."""

    void_ids: list[int]
    restore: dict[str, Any]


def _plan_retroactive(b: Batch, p: dict[str, Any], ev: dt.date) -> _Retro:
    """Reads only. A death dated before the record's last change is accepted when every
    change recorded after the date of death is a move within the municipality (the whole
    household moved, the dead person with it): those history rows are voided (they stay,
    marked ``voided_by`` the death's notification id) and the record's address items go back
    to their values on the date of death. Anything else after that date stays a conflict."""
    b.flush_history()  # earlier rows of this batch may have moved the person
    later = b.s.query(
        "SELECT id, item, old_value, reason FROM history WHERE person_id = ? AND event_date > ?"
        " AND voided_by IS NULL ORDER BY event_date, id", (p["person_id"], b.s.d(ev)))
    other = sorted({str(reason) for _, item, _, reason in later
                    if reason != "move_within" or item not in _MOVE_ITEMS})
    if not later or other:
        what = f" ({', '.join(other)} recorded after it)" if other else ""
        raise _conflict(
            f"event date {ev} is before the record's last change ({p['updated_on']}){what}:"
            " dates must be in order (only moves within the municipality recorded after a"
            " death are voided by it)",
            "event_date")
    restore: dict[str, Any] = {}
    for _, item, old, _ in later:
        if item not in restore:
            restore[item] = old
    if "address_since" in restore:
        restore["address_since"] = dt.date.fromisoformat(str(restore["address_since"]))
    if max(p["resident_since"], restore.get("address_since", p["address_since"])) > ev:
        raise _conflict(f"event date {ev} is before the record's address was set",
                        "event_date")
    return _Retro([int(row[0]) for row in later], restore)


def _void(b: Batch, p: dict[str, Any], retro: _Retro, ev: dt.date, nid: str) -> None:
    marks = ", ".join("?" * len(retro.void_ids))
    b.s.execute(f"UPDATE history SET voided_by = ? WHERE id IN ({marks})",
                [nid, *retro.void_ids])
    b._forget(p["person_id"])
    d = b.s.d
    sets = ", ".join(f"{k} = ?" for k in retro.restore)
    b.s.execute(f"UPDATE residents SET {sets}, updated_on = ? WHERE person_id = ?",
                [*(d(v) if k in _DATE_COLS else v for k, v in retro.restore.items()), d(ev),
                 p["person_id"]])
    p.update(retro.restore)
    p["updated_on"] = ev


def _remove(b: Batch, r: dict[str, Any], ev: dt.date, nid: str, kind: str) -> int:
    p = _target(b, r, ev, retroactive=kind == "death")
    retro = _plan_retroactive(b, p, ev) if ev < p["updated_on"] else None
    leaving = [p]
    if kind == "move_out" and r.get("whole_household"):
        hh = b.household(int(p["household_id"]))
        if hh is None or hh[0] != p["person_id"]:
            raise _conflict("only the head moves out a whole household", "whole_household")
        leaving = b.members(int(p["household_id"]))
    if kind == "move_out":
        _req(r, "destination")
    leave = _plan_leave(b, r, p, {m["person_id"] for m in leaving})
    reason_code = {"death": "died", "move_out": "moved_out", "ex_officio_removal": "ex_officio"}
    for m in leaving:
        if m["person_id"] != p["person_id"] and ev < m["updated_on"]:
            raise _conflict(f"event date before the last change of {fmt_code(m['resident_code'])}",
                            "event_date")
    if retro is not None:
        _void(b, p, retro, ev, nid)
    _do_leave(b, leave, ev, kind, nid)
    if retro is not None and leave.dissolve and "address" in retro.restore:
        b.household_write("UPDATE households SET address = ? WHERE household_id = ?",
                          (retro.restore["address"], leave.household_id), leave.household_id)
    for m in leaving:
        changes: dict[str, Any] = {
            "status": REMOVED,
            "removal_reason": reason_code[kind],
            "removal_date": ev,
        }
        if kind == "move_out":
            changes["move_out_destination"] = str(r["destination"])
        b.update(m, changes, ev, kind, nid)
    return int(p["resident_code"])


def _move_within(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    p = _target(b, r, ev)
    addr = _address(b, r)
    if addr["address"] == p["address"]:
        raise _conflict("the new address is the current address", "street")
    hid = int(p["household_id"])
    hh = b.household(hid)
    is_head = hh is not None and hh[0] == p["person_id"]
    changes = {**addr, "address_since": ev}
    if r.get("whole_household"):
        if not is_head:
            raise _conflict("only the head moves a whole household", "whole_household")
        if r.get("household_id") not in (None, hid):
            raise _conflict("a whole household moves as itself: file a merge after the move",
                            "household_id")
        members = b.members(hid)
        for m in members:
            if ev < m["updated_on"]:
                raise _conflict(
                    f"event date before the last change of {fmt_code(m['resident_code'])}",
                    "event_date")
        for m in members:
            b.update(m, changes, ev, "move_within", nid)
        b.household_write("UPDATE households SET address = ? WHERE household_id = ?",
                          (addr["address"], hid), hid)
        return int(p["resident_code"])
    members = b.members(hid)
    target_hid = r.get("household_id")
    if len(members) == 1 and target_hid in (None, hid):  # alone: the household moves along
        if _opt_text(r.get("relationship")) not in (None, HEAD):
            raise _conflict("the only member of a household is its head (世帯主): name the"
                            " household to join (household_id)", "relationship")
        b.update(p, changes, ev, "move_within", nid)
        b.household_write("UPDATE households SET address = ? WHERE household_id = ?",
                          (addr["address"], hid), hid)
        return int(p["resident_code"])
    leave = _plan_leave(b, r, p, {p["person_id"]})
    if target_hid is not None and b.household(int(target_hid)) is not None:
        thid = int(target_hid)
        _, t_addr = _active_household(b, thid)
        if t_addr != addr["address"]:
            raise _conflict(f"household {thid} lives at another address", "household_id")
        rel = _relationship(r, head_ok=False)
        _do_leave(b, leave, ev, "move_within", nid)
        b.update(p, {**changes, "household_id": thid, "relationship": rel}, ev, "move_within", nid)
    else:
        if _opt_text(r.get("relationship")) not in (None, HEAD):
            raise _conflict("a new household's first member is its head (世帯主)",
                            "relationship")
        nhid = _new_household_id(b, r)
        _do_leave(b, leave, ev, "move_within", nid)
        b.update(p, {**changes, "household_id": nhid, "relationship": HEAD}, ev, "move_within",
                 nid)
        _create_household(b, nhid, p["person_id"], addr["address"], ev)
    return int(p["resident_code"])


def _household_change(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    _req(r, "household_action")
    action = str(r["household_action"])
    p = _target(b, r, ev)
    hid = int(p["household_id"])
    hh = b.household(hid)
    head_id = hh[0] if hh else None
    if action == "new_head":
        if p["person_id"] == head_id:
            raise _conflict(f"{fmt_code(p['resident_code'])} already heads household {hid}",
                            "resident_code")
        rel = _relationship(r, head_ok=False)  # the former head's new relationship
        old = b.s.query(SELECT_RES + " WHERE person_id = ?", (head_id,))
        former = b._person(old[0])
        if ev < former["updated_on"]:
            raise _conflict("event date before the former head's last change", "event_date")
        restated = _restated(b, r, hid, {p["person_id"], former["person_id"]})
        b.update(former, {"relationship": rel}, ev, "household_change", nid)
        b.update(p, {"relationship": HEAD}, ev, "household_change", nid)
        for m, new_rel in restated:
            b.update(m, {"relationship": new_rel}, ev, "household_change", nid)
        b.household_write("UPDATE households SET head_person_id = ? WHERE household_id = ?",
                          (p["person_id"], hid), hid)
    elif action == "split":
        if len(b.members(hid)) == 1:
            raise _conflict("a household of one cannot split", "household_action")
        leave = _plan_leave(b, r, p, {p["person_id"]})
        nhid = _new_household_id(b, r)
        _do_leave(b, leave, ev, "household_change", nid)
        b.update(p, {"household_id": nhid, "relationship": HEAD}, ev, "household_change", nid)
        _create_household(b, nhid, p["person_id"], p["address"], ev)
    elif action == "merge":
        _req(r, "household_id")
        thid = int(r["household_id"])
        if thid == hid:
            raise _conflict(f"already a member of household {thid}", "household_id")
        _, t_addr = _active_household(b, thid)
        if t_addr != p["address"]:
            raise _conflict(f"household {thid} lives at another address: file a move",
                            "household_id")
        rel = _relationship(r, head_ok=False)
        leave = _plan_leave(b, r, p, {p["person_id"]})
        _do_leave(b, leave, ev, "household_change", nid)
        b.update(p, {"household_id": thid, "relationship": rel}, ev, "household_change", nid)
    elif action == "relationship":
        if p["person_id"] == head_id:
            raise _conflict(f"{fmt_code(p['resident_code'])} heads household {hid}: its"
                            " relationship is 世帯主 (use new_head)", "resident_code")
        rel = _relationship(r, head_ok=False)
        if rel == p["relationship"]:
            raise _conflict(f"the relationship is already {rel}", "relationship")
        b.update(p, {"relationship": rel}, ev, "household_change", nid)
    else:
        raise _invalid(f"household_action must be new_head, relationship, split or merge, not"
                       f" {action!r}", "household_action")
    return int(p["resident_code"])


def _restated(b: Batch, r: dict[str, Any], hid: int,
              excluded: set[int]) -> list[tuple[dict[str, Any], str]]:
    """The members and new relationships a new_head change restates (validated, not written):
    current members of the household other than the new and the former head, once each."""
    col = "restated_relationships"
    entries = r.get(col) or []
    members = {int(m["resident_code"]): m for m in b.members(hid)
               if m["person_id"] not in excluded}
    out: list[tuple[dict[str, Any], str]] = []
    seen: set[int] = set()
    for e in entries:
        code, rel = (e or {}).get("resident_code"), _opt_text((e or {}).get("relationship"))
        if code is None or rel is None:
            raise _invalid("each restated relationship names a resident_code and a"
                           " relationship", col)
        code = int(code)
        if code in seen:
            raise _invalid(f"{fmt_code(code)} is restated twice", col)
        seen.add(code)
        if code not in members:
            raise _conflict(f"{fmt_code(code)} is not another member of household {hid} (the"
                            " new and the former head's relationships have their own columns)",
                            col)
        rel = rel.strip()
        if rel == HEAD:
            raise _conflict("a household has one head: the new head is the row's resident",
                            col)
        out.append((members[code], rel))
    return out


def _name_change(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    p = _target(b, r, ev)
    names = {k: str(r[k]) for k in ("family_name", "given_name", "family_name_kana",
                                    "given_name_kana") if _opt_text(r.get(k)) is not None}
    if not names:
        raise _invalid("a name change needs at least one new name or reading", "family_name")
    if all(p[k] == v for k, v in names.items()):
        raise _conflict("the new name is the current name", "family_name")
    b.update(p, names, ev, "name_change", nid)
    return int(p["resident_code"])


def _code_change(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    p = _target(b, r, ev)
    old = int(p["resident_code"])
    new = b.take_code()
    b.s.execute(
        "INSERT INTO retired_codes (code, person_id, retired_on, notification_id)"
        " VALUES (?, ?, ?, ?)",
        (old, p["person_id"], b.s.d(ev), nid),
    )
    b.update(p, {"resident_code": new}, ev, "code_change", nid, previous_code=old)
    return new


#: Items a removal sets (their history rows are redated by a move-out correction).
_REMOVAL_ITEMS = ("status", "removal_reason", "removal_date", "move_out_destination")


def _move_out_correction(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    """Close a planned move-out (転出予定日) at the earlier, actual move-in date the new
    municipality reported (転入通知): the 除票's removal is redated to ``event_date``.

    The removal's history rows are voided (``voided_by``) and recorded again at the
    corrected date under this notification; one outbox entry (same code, status removed,
    the corrected date, reason move_out_correction) tells the prefecture and the center.
    """
    _req(r, "resident_code")
    code = _check_code_value(r, "resident_code")
    rows = b.s.query(SELECT_RES + " WHERE resident_code = ? AND status = 'removed'"
                     " ORDER BY person_id DESC LIMIT 1", (code,))
    if not rows:
        if b.s.query("SELECT 1 FROM retired_codes WHERE code = ?", (code,)):
            raise _conflict(f"resident code {fmt_code(code)} was retired by a code change:"
                            " a notification names the current code", "resident_code")
        if b.s.query("SELECT 1 FROM residents WHERE resident_code = ?", (code,)):
            raise _conflict(f"resident {fmt_code(code)} has not moved out", "resident_code")
        raise Rejected(NotFoundError(f"no record with resident code {fmt_code(code)}"),
                       "resident_code")
    p = b._person(rows[0])
    if p["removal_reason"] != "moved_out":
        raise _conflict(f"resident {fmt_code(code)} was removed ({p['removal_reason']}), not"
                        " moved out: nothing to correct", "resident_code")
    planned = p["removal_date"]
    if ev >= planned:
        raise _conflict(f"the corrected date {ev} is not before the recorded move-out date"
                        f" {planned}: a correction only closes the record earlier",
                        "event_date")
    if ev < max(p["resident_since"], p["birth_date"]):
        raise _conflict(f"the corrected date {ev} is before the record began", "event_date")
    b.flush_history()
    removal_ids: list[int] = []
    for hid, item, ev_date in b.s.query(
            "SELECT id, item, event_date FROM history WHERE person_id = ? AND event_date > ?"
            " AND voided_by IS NULL ORDER BY id", (p["person_id"], b.s.d(ev))):
        if item in _REMOVAL_ITEMS and b.s.pd(ev_date) == planned:
            removal_ids.append(int(hid))
        else:
            raise _conflict(f"{item} of {fmt_code(code)} changed after {ev}: the record cannot"
                            " close earlier", "event_date")
    b.last_person_id = int(p["person_id"])
    d = b.s.d
    if removal_ids:
        marks = ", ".join("?" * len(removal_ids))
        b.s.execute(f"UPDATE history SET voided_by = ? WHERE id IN ({marks})",
                    [nid, *removal_ids])
    b.s.execute("UPDATE residents SET removal_date = ?, updated_on = ? WHERE person_id = ?",
                (d(ev), d(ev), p["person_id"]))
    b.household_write(
        "UPDATE households SET dissolved_on = ? WHERE household_id = ? AND head_person_id = ?"
        " AND dissolved_on = ?", (d(ev), p["household_id"], p["person_id"], d(planned)),
        int(p["household_id"]))
    values = {"status": REMOVED, "removal_reason": p["removal_reason"], "removal_date": ev,
              "move_out_destination": p["move_out_destination"]}
    olds = {"status": RESIDENT}
    for item in _REMOVAL_ITEMS:
        if values[item] is not None:
            b.history.append((p["person_id"], code, item, olds.get(item),
                              _text(item, values[item]), d(ev), b.now_p,
                              "move_out_correction", nid))
    p.update(removal_date=ev, updated_on=ev)
    b.to_outbox(p, ev, "move_out_correction", nid)
    return code


def _check_my_number(b: Batch, number: int, code: int | None,
                     person_id: int | None = None) -> None:
    """A My Number once recorded for a person is never recorded for anyone else.

    Refused: a number replaced before (leaked numbers never come back, not even to their
    holder), and a number held by any record, current or 除票, of another person (same
    person: the same record, or a record holding the same resident code).
    """
    if not valid_my_number(number):
        raise _invalid(f"{fmt_code(number, 12)} is not a valid My Number (check digit)",
                       "my_number")
    if number in b.replaced_numbers or b.s.query(
            "SELECT 1 FROM history WHERE item = 'my_number' AND old_value = ? LIMIT 1",
            (fmt_code(number, 12),)):
        raise _conflict(f"My Number {fmt_code(number, 12)} was replaced: it is never recorded"
                        " again", "my_number")
    rows = b.s.query("SELECT person_id, resident_code FROM residents WHERE my_number = ?",
                     (number,))
    if any(int(pid) != person_id and int(rc) != code for pid, rc in rows):
        raise _conflict("this My Number belongs to another person", "my_number")


def _my_number(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    p = _target(b, r, ev)
    _req(r, "my_number")
    number = int(r["my_number"])
    _check_my_number(b, number, int(p["resident_code"]), int(p["person_id"]))
    if p["my_number"] == number:
        raise _conflict("this My Number is already recorded", "my_number")
    b.update(p, {"my_number": number}, ev, "my_number", nid)
    return int(p["resident_code"])


Handler = Callable[[Batch, dict[str, Any], dt.date, str], int]

HANDLERS: dict[str, Handler] = {
    "birth": _birth,
    "death": lambda b, r, ev, nid: _remove(b, r, ev, nid, "death"),
    "move_in": _move_in,
    "move_out": lambda b, r, ev, nid: _remove(b, r, ev, nid, "move_out"),
    "move_within": _move_within,
    "household_change": _household_change,
    "name_change": _name_change,
    "code_change": _code_change,
    "my_number": _my_number,
    "ex_officio_removal": lambda b, r, ev, nid: _remove(b, r, ev, nid, "ex_officio_removal"),
    "move_out_correction": _move_out_correction,
}
assert set(HANDLERS) == set(KINDS)


def _prior(b: Batch, nid: str) -> Prior | None:
    if b.known_ids is not None:
        return b.known_ids.get(nid)
    rows = b.s.query(f"{SELECT_PRIOR} WHERE notification_id = ?", (nid,))
    return b.prior(rows[0]) if rows else None


def already_applied(b: Batch, nid: str, r: dict[str, Any], digest: str) -> bool:
    """Whether this notification id was applied before with the same content (a repeat:
    skipped). The same id with other content is a conflict. An id applied before schema
    version 5 has no digest: the repeat must match what the log holds (kind, dates, and the
    resident code for kinds that name one)."""
    def clash() -> Rejected:
        return _conflict(f"notification id {nid!r} was applied before with other content",
                         "notification_id")

    if nid in b.seen_ids:
        if b.seen_ids[nid] != digest:
            raise clash()
        return True
    prior = _prior(b, nid)
    if prior is None:
        return False
    if prior.digest is not None:
        if prior.digest != digest:
            raise clash()
        return True
    same = (prior.kind == r.get("kind") and prior.notified_date == r.get("notified_date")
            and prior.event_date == r.get("event_date"))
    if same and prior.kind in _NAMED_CODE_KINDS and r.get("resident_code") is not None:
        same = prior.resident_code == int(r["resident_code"])
    if not same:
        raise clash()
    return True


def apply_row(b: Batch, r: dict[str, Any]) -> int | None:
    """Validate and apply one notification; returns the resident code it concerns.

    Returns None when the notification was applied before (idempotence). Raises
    :class:`Rejected` when the row is refused (nothing has been written then).
    """
    nid = _opt_text(r.get("notification_id"))
    if nid is None:
        raise _invalid("every notification needs a notification_id", "notification_id")
    kind = r.get("kind")
    if kind not in HANDLERS:
        raise _invalid(f"unknown kind {kind!r} (one of {', '.join(KINDS)})", "kind")
    digest = row_digest(r)
    if already_applied(b, nid, r, digest):
        return None
    notified = r.get("notified_date")
    ev = r.get("event_date")
    if notified is None:
        raise _invalid("notified_date is required", "notified_date")
    if ev is None:
        raise _invalid("event_date is required", "event_date")
    if notified > b.today:
        raise _invalid(f"notified date {notified} is in the future", "notified_date")
    if kind == "move_out":
        if ev > notified + dt.timedelta(days=MOVE_OUT_LEAD_DAYS):
            raise _invalid(
                f"planned move-out date more than {MOVE_OUT_LEAD_DAYS} days after the notification",
                "event_date",
            )
    elif ev > notified:
        raise _invalid(f"event date {ev} is after the notified date {notified}", "event_date")
    if r.get("restated_relationships") and not (
            kind == "household_change" and r.get("household_action") == "new_head"):
        raise _invalid("restated_relationships go with a household_change new_head (one"
                       " member: household_action 'relationship')", "restated_relationships")
    b.last_person_id = None
    code = HANDLERS[kind](b, r, ev, nid)
    b.seen_ids[nid] = digest
    pid = b.last_person_id
    b.notifications.append(
        (nid, kind, pid, code, b.s.d(notified), b.s.d(ev), b.now_p, b.actor, digest)
    )
    b.audit.append(audit.entry(b.s, b.actor, f"notify.{kind}", fmt_code(code),
                               notification_id=nid, at=b.now_p, actor_kind=b.actor_kind))
    return code


assert set(TRACKED_ITEMS) >= set(_IDENTITY)
