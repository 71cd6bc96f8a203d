"""Data access of the municipal register: every statement that applying notifications runs.

:class:`Batch` is the state of one ``apply`` transaction: its read caches and prefetch, the
reads and writes of residents, households, history, retired codes and the code pool, and the
buffered append-only rows (history, notification log, audit, outbox). The rules
(:mod:`.notifications`, :mod:`.households`) call its named methods and hold no SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jukicore import audit
from jukicore.errors import CodeSpaceExhaustedError, NotFoundError
from jukicore.identity.items import IDENTITY_COLUMNS, IDENTITY_ITEMS
from jukicore.store.backend import Session

from ._checks import Rejected, conflict, fmt_code
from ._schema import RESIDENT, RESIDENT_COLUMNS, TRACKED_ITEMS

__all__ = ["INSERT_OUTBOX", "INSERT_RES", "RES_COLS", "SELECT_PRIOR", "SELECT_RES", "Batch",
           "HistoryRow", "Prior", "Rejected", "fmt_code"]

RES_COLS: tuple[str, ...] = tuple(c.name for c in RESIDENT_COLUMNS)
_DATE_COLS = frozenset(c.name for c in RESIDENT_COLUMNS if c.type == "date")
SELECT_RES = "SELECT " + ", ".join(RES_COLS) + " FROM residents"
INSERT_RES = (
    "INSERT INTO residents (" + ", ".join(RES_COLS) + ") VALUES (" + ", ".join("?" * len(RES_COLS))
    + ")"
)
_IDENTITY = IDENTITY_ITEMS
assert set(TRACKED_ITEMS) >= set(_IDENTITY)  # a change of the six items has its history
#: The outbox row of a change: the municipality, the identity info, the notification.
_OUTBOX_ITEMS = tuple(c.name for c in IDENTITY_COLUMNS)
_OUTBOX_DATES = frozenset(c.name for c in IDENTITY_COLUMNS if c.type == "date")
INSERT_OUTBOX = (f"INSERT INTO outbox (lg_code, {', '.join(_OUTBOX_ITEMS)}, notification_id,"
                 f" recorded_at) VALUES ({', '.join('?' * (len(_OUTBOX_ITEMS) + 3))})")
SELECT_PRIOR = ("SELECT notification_id, digest, kind, notified_date, event_date, resident_code"
                " FROM notifications")
_SET_HEAD = "UPDATE households SET head_person_id = ? WHERE household_id = ?"
_SET_HOUSEHOLD_ADDRESS = "UPDATE households SET address = ? WHERE household_id = ?"


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


@dataclass(frozen=True)
class Prior:
    """What the notification log holds of an applied notification id."""

    digest: str | None  # None: applied before schema version 5
    kind: str
    notified_date: dt.date | None
    event_date: dt.date | None
    resident_code: int | None


class HistoryRow(NamedTuple):
    """A history row that is in force (not voided), as the rules read it."""

    id: int
    item: str
    old_value: str | None
    event_date: dt.date
    reason: str


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
    #: the record updates of this batch, for the services that follow the register
    #: (jukicore.cards), when the register has any (else None: nothing is kept): (code
    #: before, reason, items changed, My Number before, new code, event date, notification
    #: id)
    updates: list[tuple[int, str, tuple[str, ...], int | None, int | None, dt.date,
                        str | None]] | None = None
    #: notification ids of this batch already in the register, with what the log holds of
    #: them (None: ask per row)
    known_ids: dict[str, Prior] | None = None
    # Read caches, filled up front by prefetch() and on reads. Every write to a cached
    # record or household goes through this class and drops its entry, so a hit is always
    # the current state of this transaction.
    _by_code: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: code -> the latest removed record (除票) holding it, or None: read up front for the
    #: codes a day's rows name; any write to a record holding the code drops its entry
    _removed: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    _code_of: dict[int, int] = field(default_factory=dict)
    _households: dict[int, tuple[int, str, dt.date | None] | None] = field(default_factory=dict)
    #: My Numbers the rows name, read up front: those replaced before this batch (history
    #: only grows, and this batch's replacements are in replaced_numbers), and who held each
    #: when the batch began (valid until this batch writes a record holding the number, or
    #: changes such a record's code: see _numbers_touched)
    _mn_prefetched: set[int] = field(default_factory=set)
    _mn_replaced_before: set[int] = field(default_factory=set)
    _mn_holders: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    now_p: Any = None  # self.now as a parameter

    def __post_init__(self) -> None:
        self.now_p = self.s.ts(self.now)

    @classmethod
    def begin(cls, s: Session, *, lg_code: str, prefecture: str, municipality: str, actor: str,
              actor_kind: str, now: dt.datetime, today: dt.date) -> Batch:
        """The batch of the transaction ``s``: the next person and household ids and the
        outbox sequence continue from what the register holds."""
        return cls(
            s=s, lg_code=lg_code, prefecture=prefecture, municipality=municipality, actor=actor,
            actor_kind=actor_kind, now=now, today=today,
            next_person_id=int(s.scalar("SELECT coalesce(max(person_id), 0) FROM residents")) + 1,
            next_household_id=int(
                s.scalar("SELECT coalesce(max(household_id), 0) FROM households")) + 1,
            outbox_seq=int(s.scalar("SELECT value FROM meta WHERE key = 'outbox_seq'")),
        )

    # -- prefetch (one query per 500 keys instead of one per row) ------------------------

    def prefetch(self, nids: list[str], codes: list[int], household_ids: list[int],
                 my_numbers: Sequence[int] = ()) -> None:
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
        for part in _chunks(sorted(set(codes))):
            self._removed.update(dict.fromkeys(part))  # none unless found below
            marks = ", ".join("?" * len(part))
            for row in self.s.query(f"{SELECT_RES} WHERE resident_code IN ({marks}) AND status"
                                    " = 'removed' ORDER BY person_id", part):
                p = self._person(row)
                self._removed[int(p["resident_code"])] = p  # the latest one last
        for part in _chunks(sorted(hids)):
            self._households.update(dict.fromkeys(part))  # absent unless found below
            marks = ", ".join("?" * len(part))
            for hid, head, addr, gone in self.s.query(
                    "SELECT household_id, head_person_id, address, dissolved_on FROM households"
                    f" WHERE household_id IN ({marks})", part):
                self._households[int(hid)] = (int(head), str(addr), self.s.pd(gone))
        for part in _chunks(sorted(set(my_numbers))):
            marks = ", ".join("?" * len(part))
            self._mn_replaced_before.update(int(v) for (v,) in self.s.query(
                "SELECT DISTINCT old_value FROM history WHERE item = 'my_number'"
                f" AND old_value IN ({marks})", [fmt_code(n, 12) for n in part]))
            holders: dict[int, list[tuple[int, int]]] = {n: [] for n in part}
            for number, pid, rc in self.s.query(
                    "SELECT my_number, person_id, resident_code FROM residents"
                    f" WHERE my_number IN ({marks})", part):
                holders[int(number)].append((int(pid), int(rc)))
            self._mn_holders.update(holders)
            self._mn_prefetched.update(part)

    def prior(self, row: tuple[Any, ...]) -> Prior:
        pd = self.s.pd
        return Prior(None if row[1] is None else str(row[1]), str(row[2]), pd(row[3]),
                     pd(row[4]), None if row[5] is None else int(row[5]))

    def _remember(self, p: dict[str, Any]) -> None:
        self._by_code[int(p["resident_code"])] = p
        self._code_of[int(p["person_id"])] = int(p["resident_code"])

    def _forget(self, person_id: int, *codes: int | None) -> None:
        """Drop what the caches hold of a record about to be written (and of the ``codes``
        it held or will hold)."""
        code = self._code_of.pop(int(person_id), None)
        if code is not None:
            self._by_code.pop(code, None)
            self._removed.pop(code, None)
        for c in codes:
            if c is not None:
                self._removed.pop(int(c), None)

    def _household_write(self, sql: str, params: tuple[Any, ...], household_id: int) -> None:
        """Every write to ``households`` (keeps the household cache exact)."""
        self._households.pop(int(household_id), None)
        self.s.execute(sql, params)

    # -- reads -----------------------------------------------------------------------

    def prior_notification(self, nid: str) -> Prior | None:
        """What the notification log holds of ``nid`` (None: never applied)."""
        if self.known_ids is not None:
            return self.known_ids.get(nid)
        rows = self.s.query(f"{SELECT_PRIOR} WHERE notification_id = ?", (nid,))
        return self.prior(rows[0]) if rows else None

    def person_by_code(self, code: int, column: str = "resident_code") -> dict[str, Any]:
        hit = self._by_code.get(code)
        if hit is not None:
            return dict(hit)
        rows = self.s.query(SELECT_RES + " WHERE resident_code = ? AND status = 'resident'",
                            (code,))
        if rows:
            return self._person(rows[0])
        if self.is_retired(code):
            # the same answer whether the holder lives or not
            raise conflict(f"resident code {fmt_code(code)} was retired by a code change:"
                           " a notification names the current code", column)
        gone = self.s.query(
            "SELECT r.removal_reason FROM history h JOIN residents r ON r.person_id = h.person_id"
            " WHERE h.resident_code = ? AND r.status = 'removed' ORDER BY r.person_id DESC"
            " LIMIT 1",
            (code,),
        )
        if gone:
            raise conflict(
                f"resident {fmt_code(code)} was removed ({gone[0][0]}): no further notifications",
                column,
            )
        raise Rejected(NotFoundError(f"no resident with code {fmt_code(code)}"), column)

    def person_by_id(self, person_id: int) -> dict[str, Any]:
        """The record ``person_id`` (current or removed; it must exist)."""
        rows = self.s.query(SELECT_RES + " WHERE person_id = ?", (person_id,))
        return self._person(rows[0])

    def latest_removed(self, code: int) -> dict[str, Any] | None:
        """The latest removed record (除票) holding ``code``, if any."""
        if code in self._removed:
            found = self._removed[code]
            return None if found is None else dict(found)
        rows = self.s.query(SELECT_RES + " WHERE resident_code = ? AND status = 'removed'"
                            " ORDER BY person_id DESC LIMIT 1", (code,))
        return self._person(rows[0]) if rows else None

    def code_on_record(self, code: int) -> bool:
        """Whether any record, current or removed, holds ``code``."""
        return bool(self.s.query("SELECT 1 FROM residents WHERE resident_code = ?", (code,)))

    def is_retired(self, code: int) -> bool:
        """Whether ``code`` was retired by a code change."""
        return bool(self.s.query("SELECT 1 FROM retired_codes WHERE code = ?", (code,)))

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

    def has_members(self, household_id: int) -> bool:
        """Whether a current resident belongs to household ``household_id``."""
        return bool(self.s.query(
            "SELECT 1 FROM residents WHERE household_id = ? AND status = 'resident' LIMIT 1",
            (household_id,)))

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

    def later_history(self, person_id: int, after: dt.date) -> list[HistoryRow]:
        """The history rows in force of ``person_id`` dated after ``after``, in the order they
        were recorded (the rows this batch buffered are written first)."""
        self.flush_history()
        out = []
        for hid, item, old, ev, reason in self.s.query(
                "SELECT id, item, old_value, event_date, reason FROM history"
                " WHERE person_id = ? AND event_date > ? AND voided_by IS NULL ORDER BY id",
                (person_id, self.s.d(after))):
            event_date = self.s.pd(ev)
            assert event_date is not None  # the column is NOT NULL
            out.append(HistoryRow(int(hid), str(item), None if old is None else str(old),
                                  event_date, str(reason)))
        return out

    def my_number_replaced(self, number: int) -> bool:
        """Whether ``number`` was replaced, by this batch or before (a history row holds it as
        the old value)."""
        if number in self.replaced_numbers:
            return True
        if number in self._mn_prefetched:
            return number in self._mn_replaced_before
        return bool(self.s.query(
            "SELECT 1 FROM history WHERE item = 'my_number' AND old_value = ? LIMIT 1",
            (fmt_code(number, 12),)))

    def my_number_holders(self, number: int) -> list[tuple[int, int]]:
        """(person id, resident code) of every record, current or removed, holding ``number``."""
        if number in self._mn_holders:
            return list(self._mn_holders[number])
        return [(int(pid), int(rc)) for pid, rc in self.s.query(
            "SELECT person_id, resident_code FROM residents WHERE my_number = ?", (number,))]

    def card_holders(self, card_number: str) -> list[tuple[int, int]]:
        """(person id, resident code) of every record, current or removed, holding this
        residence card (or special permanent resident certificate) number."""
        return [(int(pid), int(rc)) for pid, rc in self.s.query(
            "SELECT person_id, resident_code FROM residents WHERE residence_card_number = ?",
            (card_number,))]

    def item_changed_on(self, person_id: int, item: str) -> dt.date | None:
        """The event date of the latest change in force of ``item`` of ``person_id`` (None:
        never changed since the record came, by a notification or a load)."""
        self.flush_history()
        at = self.s.scalar("SELECT max(event_date) FROM history WHERE person_id = ?"
                           " AND item = ? AND voided_by IS NULL", (person_id, item))
        return self.s.pd(at)

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
        self._forget(person["person_id"], person["resident_code"], diff.get("resident_code"))
        self._numbers_touched(person, diff)
        sets = ", ".join(f"{k} = ?" for k in diff)
        d = self.s.d
        params = [d(v) if k in _DATE_COLS else v for k, v in diff.items()]
        updated_on = max(person["updated_on"], event_date)
        self.s.execute(
            f"UPDATE residents SET {sets}, updated_on = ? WHERE person_id = ?",
            [*params, d(updated_on), person["person_id"]],
        )
        code_before = person["resident_code"]
        if self.updates is not None:
            self.updates.append((int(code_before), reason, tuple(diff), person["my_number"],
                                 diff.get("resident_code"), event_date, nid))
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

    def _numbers_touched(self, person: dict[str, Any], values: dict[str, Any]) -> None:
        """A write of ``values`` to ``person``'s record: the holders read up front of the
        My Numbers it held or will hold are stale from now on (asked again)."""
        if "my_number" in values or "resident_code" in values:
            for n in (person.get("my_number"), values.get("my_number")):
                if n is not None:
                    self._mn_holders.pop(int(n), None)

    def set_record(self, person: dict[str, Any], values: dict[str, Any],
                   updated_on: dt.date) -> None:
        """Write items of a record without history rows (the caller accounts for them: a
        correction voids the rows these values replace)."""
        self._forget(person["person_id"], person["resident_code"], values.get("resident_code"))
        self._numbers_touched(person, values)
        d = self.s.d
        sets = ", ".join(f"{k} = ?" for k in values)
        self.s.execute(f"UPDATE residents SET {sets}, updated_on = ? WHERE person_id = ?",
                       [*(d(v) if k in _DATE_COLS else v for k, v in values.items()),
                        d(updated_on), person["person_id"]])
        person.update(values)
        person["updated_on"] = updated_on

    def create(self, person: dict[str, Any], reason: str, nid: str) -> None:
        d = self.s.d
        self.last_person_id = int(person["person_id"])
        self._forget(person["person_id"], person["resident_code"])
        self._numbers_touched({"my_number": None}, person)
        values = [d(person[c]) if c in _DATE_COLS else person[c] for c in RES_COLS]
        self.s.execute(INSERT_RES, values)
        self.history.append(
            (person["person_id"], person["resident_code"], "status", None, RESIDENT,
             d(person["resident_since"]), self.now_p, reason, nid)
        )
        self.to_outbox(person, person["resident_since"], reason, nid)

    def add_history(self, person_id: int, code: int, item: str, old: str | None, new: Any,
                    event_date: dt.date, reason: str, nid: str | None) -> None:
        """Buffer a history row (``new`` as the item's value; ``old`` already its text)."""
        self.history.append((person_id, code, item, old, _text(item, new),
                             self.s.d(event_date), self.now_p, reason, nid))

    def void_history(self, ids: list[int], nid: str) -> None:
        """Mark history rows voided by notification ``nid`` (they stay, out of force)."""
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        self.s.execute(f"UPDATE history SET voided_by = ? WHERE id IN ({marks})", [nid, *ids])

    def retire_code(self, code: int, person_id: int, on: dt.date, nid: str) -> None:
        self.s.execute(
            "INSERT INTO retired_codes (code, person_id, retired_on, notification_id)"
            " VALUES (?, ?, ?, ?)",
            (code, person_id, self.s.d(on), nid),
        )

    def create_household(self, household_id: int, head_id: int, address: str,
                         on: dt.date) -> None:
        self._household_write(
            "INSERT INTO households (household_id, head_person_id, address, created_on,"
            " dissolved_on) VALUES (?, ?, ?, ?, NULL)",
            (household_id, head_id, address, self.s.d(on)), household_id,
        )

    def set_household_head(self, household_id: int, head_id: int) -> None:
        self._household_write(_SET_HEAD, (head_id, household_id), household_id)

    def set_household_address(self, household_id: int, address: str) -> None:
        self._household_write(_SET_HOUSEHOLD_ADDRESS, (address, household_id), household_id)

    def dissolve_household(self, household_id: int, on: dt.date) -> None:
        self._household_write("UPDATE households SET dissolved_on = ? WHERE household_id = ?",
                              (self.s.d(on), household_id), household_id)

    def redate_dissolution(self, household_id: int, head_id: int, was: dt.date,
                           on: dt.date) -> None:
        """Move the dissolution of a household that ``head_id`` heads from ``was`` to ``on``
        (nothing when it was not dissolved on ``was`` under that head)."""
        d = self.s.d
        self._household_write(
            "UPDATE households SET dissolved_on = ? WHERE household_id = ?"
            " AND head_person_id = ? AND dissolved_on = ?",
            (d(on), household_id, head_id, d(was)), household_id)

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

    def log_notification(self, nid: str, kind: str, person_id: int | None, code: int,
                         notified: dt.date, event_date: dt.date, digest: str) -> None:
        """Buffer the notification log row and the audit entry of an applied notification."""
        d = self.s.d
        self.notifications.append(
            (nid, kind, person_id, code, d(notified), d(event_date), self.now_p, self.actor,
             digest)
        )
        self.audit.append(audit.entry(self.s, self.actor, f"notify.{kind}", fmt_code(code),
                                      notification_id=nid, at=self.now_p,
                                      actor_kind=self.actor_kind))

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
