"""Applying notifications (届出): validation and the changes each kind makes.

Each row is validated completely against the register's current state (reads
only) before anything is written, so a rejected row changes nothing. Writes
for accepted rows go straight to the resident and household tables (later rows
of the same batch see them); the append-only rows (history, notification log,
audit, outbox) are buffered and written with ``executemany`` before the
transaction commits.

This module holds the rules only: every read and write goes through a named method
of :class:`~.data.Batch` (register/data.py), the household rules are in
:mod:`.households`, the row checks every rule shares in ``_checks.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jukicore.errors import NotFoundError
from jukicore.validate import MOVE_OUT_LEAD_DAYS

from ._checks import (
    Rejected,
    check_code_value,
    conflict,
    fmt_code,
    invalid,
    opt_text,
    relationship,
    req,
    target,
    valid_my_number,
    valid_resident_code,
)
from ._schema import HEAD, REMOVED, RESIDENT
from .data import RES_COLS, Batch, Prior
from .events import KINDS
from .households import (
    active_household,
    do_leave,
    household_change,
    new_household_id,
    plan_leave,
)
from .items import (
    check_items,
    given_items,
    record_items,
    residence_status_change,
    row_items_allowed,
)

__all__ = ["HANDLERS", "MOVE_OUT_LEAD_DAYS", "Batch", "Prior", "Rejected", "already_applied",
           "apply_row", "fmt_code", "row_digest", "valid_my_number", "valid_resident_code"]


#: Kinds whose log row holds the resident code the notification named.
_NAMED_CODE_KINDS = frozenset({"death", "move_out", "move_within", "household_change",
                               "name_change", "my_number", "ex_officio_removal",
                               "move_out_correction", "record_items",
                               "residence_status_change"})


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
    change the digest of a row that leaves them null.

    This is the definition; ``_jukicore.record_digests`` computes the same digests for a
    whole table in one call (Register.apply uses it), and a property test holds the two
    equal. Registers store these digests: the bytes may never change."""
    items = {k: v if type(v) is str or type(v) is int or v is True else _canonical(v)
             for k, v in r.items() if v is not None and v is not False}
    payload = json.dumps(items, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _address(b: Batch, r: dict[str, Any]) -> dict[str, Any]:
    req(r, "postal_code", "town", "street")
    pc = str(r["postal_code"])
    if len(pc) != 7 or not pc.isdigit():
        raise invalid(f"postal code must be 7 digits, got {pc!r}", "postal_code")
    building = opt_text(r.get("building"))
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


def _names(r: dict[str, Any]) -> dict[str, Any]:
    req(r, "family_name", "given_name", "family_name_kana", "given_name_kana")
    return {k: str(r[k]) for k in ("family_name", "given_name", "family_name_kana",
                                   "given_name_kana")}


def _sex(r: dict[str, Any]) -> int:
    req(r, "sex")
    sex = int(r["sex"])
    if sex not in (1, 2):
        raise invalid(f"sex must be 1 (male) or 2 (female), got {sex}", "sex")
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
        raise invalid("a birth's event date is the date of birth", "birth_date")
    req(r, "household_id")
    hid = int(r["household_id"])
    head_id, _ = active_household(b, hid)
    rel = relationship(r, head_ok=False)
    h = b.person_by_id(head_id)
    if ev < h["address_since"]:
        raise conflict("the household did not live at its address on the date of birth",
                       "event_date")
    items = given_items(r)
    if items.get("foreign_status") not in (None, "birth_transition"):
        raise invalid("foreign_status: a foreign newborn is a birth_transition (出生による"
                      "経過滞在者) until granted a status", "foreign_status")
    check_items(b, {**dict.fromkeys(RES_COLS), **items, "birth_date": ev, "resident_since": ev},
                ev, items)
    code = b.take_code()
    p = _new_person(
        b,
        resident_code=code,
        **names,
        birth_date=ev,
        sex=sex,
        household_id=hid,
        relationship=rel,
        domicile=opt_text(r.get("domicile")) or h["domicile"],
        domicile_head=opt_text(r.get("domicile_head")) or h["domicile_head"],
        **{k: h[k] for k in ("postal_code", "prefecture", "municipality", "lg_code", "town",
                             "street", "building", "address")},
        resident_since=ev,
        address_since=ev,
        **items,
    )
    b.create(p, "birth", nid)
    return code


def _move_in(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    names = _names(r)
    sex = _sex(r)
    req(r, "birth_date", "previous_address")
    birth = r["birth_date"]
    if birth > ev:
        raise invalid("date of birth after the move-in date", "birth_date")
    addr = _address(b, r)
    from_abroad = bool(r.get("from_abroad"))
    code: int | None = None
    if r.get("resident_code") is not None:
        code = check_code_value(r, "resident_code")
        in_use, retired, unissued = b.code_status(code)
        if in_use:
            raise conflict(f"resident code {fmt_code(code)} belongs to a current resident",
                           "resident_code")
        if retired:
            raise conflict(f"resident code {fmt_code(code)} was retired", "resident_code")
        if unissued:
            raise conflict(f"resident code {fmt_code(code)} is in this municipality's block of "
                           "codes never issued: no one moving in can hold it", "resident_code")
        _check_returning(b, code, birth, sex)
    elif not from_abroad:
        raise invalid("a move-in from another municipality carries the resident code",
                      "resident_code")
    mn = r.get("my_number")
    if mn is not None:
        _check_my_number(b, int(mn), code)
    hid_in = r.get("household_id")
    joining = hid_in is not None and b.household(int(hid_in)) is not None
    if joining:
        hid = int(hid_in)  # type: ignore[arg-type]
        _, hh_addr = active_household(b, hid)
        rel = relationship(r, head_ok=False)
        if hh_addr != addr["address"]:
            raise conflict(f"household {hid} lives at another address", "household_id")
    else:
        rel = relationship(r, head_ok=True)
        if rel != HEAD:
            raise conflict("a new household's first member is its head (世帯主)", "relationship")
        hid = new_household_id(b, r)
    items = given_items(r)
    check_items(b, {**dict.fromkeys(RES_COLS), **items, "resident_code": code,
                    "birth_date": birth, "resident_since": ev}, ev, items)
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
        domicile=opt_text(r.get("domicile")),
        domicile_head=opt_text(r.get("domicile_head")),
        **addr,
        resident_since=ev,
        address_since=ev,
        previous_address=str(r["previous_address"]),
        move_in_notified=r["notified_date"],
        **items,
    )
    b.create(p, "move_in", nid)
    if not joining:
        b.create_household(hid, p["person_id"], addr["address"], ev)
    return code


#: Removal reasons after which the same person may move in again with their code.
_RETURNABLE = ("moved_out", "ex_officio")


def _check_returning(b: Batch, code: int, birth: dt.date, sex: int) -> None:
    """A code on a 除票 of this register moves in only as the same person coming back.

    The latest removed record holding ``code`` must have been removed by a move-out (or
    ex officio: the person still lives) and have the same date of birth and sex; a code
    whose holder died, or a different identity, is refused.
    """
    removed = b.latest_removed(code)
    if removed is None:
        return
    reason, born, held_sex = removed["removal_reason"], removed["birth_date"], int(removed["sex"])
    if reason not in _RETURNABLE:
        raise conflict(f"resident code {fmt_code(code)} belongs to a removed record ({reason}):"
                       " it cannot move in again", "resident_code")
    if born != birth:
        raise conflict(f"resident code {fmt_code(code)} belongs to a removed record with another"
                       " date of birth: not the same person", "birth_date")
    if held_sex != sex:
        raise conflict(f"resident code {fmt_code(code)} belongs to a removed record with another"
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
    # in date order (the history read writes this batch's earlier rows first: they may have
    # moved the person)
    later = sorted(b.later_history(p["person_id"], ev), key=lambda h: (h.event_date, h.id))
    other = sorted({h.reason for h in later
                    if h.reason != "move_within" or h.item not in _MOVE_ITEMS})
    if not later or other:
        what = f" ({', '.join(other)} recorded after it)" if other else ""
        raise conflict(
            f"event date {ev} is before the record's last change ({p['updated_on']}){what}:"
            " dates must be in order (only moves within the municipality recorded after a"
            " death are voided by it)",
            "event_date")
    restore: dict[str, Any] = {}
    for h in later:
        if h.item not in restore:
            restore[h.item] = h.old_value
    if "address_since" in restore:
        restore["address_since"] = dt.date.fromisoformat(str(restore["address_since"]))
    if max(p["resident_since"], restore.get("address_since", p["address_since"])) > ev:
        raise conflict(f"event date {ev} is before the record's address was set",
                       "event_date")
    return _Retro([h.id for h in later], restore)


def _void(b: Batch, p: dict[str, Any], retro: _Retro, ev: dt.date, nid: str) -> None:
    b.void_history(retro.void_ids, nid)
    b.set_record(p, retro.restore, ev)


def _remove(b: Batch, r: dict[str, Any], ev: dt.date, nid: str, kind: str) -> int:
    p = target(b, r, ev, retroactive=kind == "death")
    retro = _plan_retroactive(b, p, ev) if ev < p["updated_on"] else None
    leaving = [p]
    if kind == "move_out" and r.get("whole_household"):
        hh = b.household(int(p["household_id"]))
        if hh is None or hh[0] != p["person_id"]:
            raise conflict("only the head moves out a whole household", "whole_household")
        leaving = b.members(int(p["household_id"]))
    if kind == "move_out":
        req(r, "destination")
    leave = plan_leave(b, r, p, {m["person_id"] for m in leaving})
    reason_code = {"death": "died", "move_out": "moved_out", "ex_officio_removal": "ex_officio"}
    for m in leaving:
        if m["person_id"] != p["person_id"] and ev < m["updated_on"]:
            raise conflict(f"event date before the last change of {fmt_code(m['resident_code'])}",
                           "event_date")
    if retro is not None:
        _void(b, p, retro, ev, nid)
    do_leave(b, leave, ev, kind, nid)
    if retro is not None and leave.dissolve and "address" in retro.restore:
        b.set_household_address(leave.household_id, retro.restore["address"])
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
    p = target(b, r, ev)
    addr = _address(b, r)
    if addr["address"] == p["address"]:
        raise conflict("the new address is the current address", "street")
    hid = int(p["household_id"])
    hh = b.household(hid)
    is_head = hh is not None and hh[0] == p["person_id"]
    changes = {**addr, "address_since": ev}
    if r.get("whole_household"):
        if not is_head:
            raise conflict("only the head moves a whole household", "whole_household")
        if r.get("household_id") not in (None, hid):
            raise conflict("a whole household moves as itself: file a merge after the move",
                           "household_id")
        members = b.members(hid)
        for m in members:
            if ev < m["updated_on"]:
                raise conflict(
                    f"event date before the last change of {fmt_code(m['resident_code'])}",
                    "event_date")
        for m in members:
            b.update(m, changes, ev, "move_within", nid)
        b.set_household_address(hid, addr["address"])
        return int(p["resident_code"])
    members = b.members(hid)
    target_hid = r.get("household_id")
    if len(members) == 1 and target_hid in (None, hid):  # alone: the household moves along
        if opt_text(r.get("relationship")) not in (None, HEAD):
            raise conflict("the only member of a household is its head (世帯主): name the"
                           " household to join (household_id)", "relationship")
        b.update(p, changes, ev, "move_within", nid)
        b.set_household_address(hid, addr["address"])
        return int(p["resident_code"])
    leave = plan_leave(b, r, p, {p["person_id"]})
    if target_hid is not None and b.household(int(target_hid)) is not None:
        thid = int(target_hid)
        _, t_addr = active_household(b, thid)
        if t_addr != addr["address"]:
            raise conflict(f"household {thid} lives at another address", "household_id")
        rel = relationship(r, head_ok=False)
        do_leave(b, leave, ev, "move_within", nid)
        b.update(p, {**changes, "household_id": thid, "relationship": rel}, ev, "move_within", nid)
    else:
        if opt_text(r.get("relationship")) not in (None, HEAD):
            raise conflict("a new household's first member is its head (世帯主)",
                           "relationship")
        nhid = new_household_id(b, r)
        do_leave(b, leave, ev, "move_within", nid)
        b.update(p, {**changes, "household_id": nhid, "relationship": HEAD}, ev, "move_within",
                 nid)
        b.create_household(nhid, p["person_id"], addr["address"], ev)
    return int(p["resident_code"])


def _name_change(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    p = target(b, r, ev)
    names = {k: str(r[k]) for k in ("family_name", "given_name", "family_name_kana",
                                    "given_name_kana") if opt_text(r.get(k)) is not None}
    if not names:
        raise invalid("a name change needs at least one new name or reading", "family_name")
    if all(p[k] == v for k, v in names.items()):
        raise conflict("the new name is the current name", "family_name")
    b.update(p, names, ev, "name_change", nid)
    return int(p["resident_code"])


def _code_change(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    p = target(b, r, ev)
    old = int(p["resident_code"])
    new = b.take_code()
    b.retire_code(old, p["person_id"], ev, nid)
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
    req(r, "resident_code")
    code = check_code_value(r, "resident_code")
    p = b.latest_removed(code)
    if p is None:
        if b.is_retired(code):
            raise conflict(f"resident code {fmt_code(code)} was retired by a code change:"
                           " a notification names the current code", "resident_code")
        if b.code_on_record(code):
            raise conflict(f"resident {fmt_code(code)} has not moved out", "resident_code")
        raise Rejected(NotFoundError(f"no record with resident code {fmt_code(code)}"),
                       "resident_code")
    if p["removal_reason"] != "moved_out":
        raise conflict(f"resident {fmt_code(code)} was removed ({p['removal_reason']}), not"
                       " moved out: nothing to correct", "resident_code")
    planned = p["removal_date"]
    if ev >= planned:
        raise conflict(f"the corrected date {ev} is not before the recorded move-out date"
                       f" {planned}: a correction only closes the record earlier",
                       "event_date")
    if ev < max(p["resident_since"], p["birth_date"]):
        raise conflict(f"the corrected date {ev} is before the record began", "event_date")
    removal_ids: list[int] = []
    for h in b.later_history(p["person_id"], ev):
        if h.item in _REMOVAL_ITEMS and h.event_date == planned:
            removal_ids.append(h.id)
        else:
            raise conflict(f"{h.item} of {fmt_code(code)} changed after {ev}: the record"
                           " cannot close earlier", "event_date")
    b.last_person_id = int(p["person_id"])
    b.void_history(removal_ids, nid)
    b.set_record(p, {"removal_date": ev}, ev)
    b.redate_dissolution(int(p["household_id"]), p["person_id"], planned, ev)
    values = {"status": REMOVED, "removal_reason": p["removal_reason"], "removal_date": ev,
              "move_out_destination": p["move_out_destination"]}
    olds = {"status": RESIDENT}
    for item in _REMOVAL_ITEMS:
        if values[item] is not None:
            b.add_history(p["person_id"], code, item, olds.get(item), values[item], ev,
                          "move_out_correction", nid)
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
        # a My Number (valid or not) never appears whole in a message or a report
        raise invalid(f"the My Number ending {number % 100:02d} is not valid (check"
                      " digit)", "my_number")
    if b.my_number_replaced(number):
        raise conflict(f"the My Number ending {number % 100:02d} was replaced: it is"
                       " never recorded again", "my_number")
    if any(pid != person_id and rc != code for pid, rc in b.my_number_holders(number)):
        raise conflict("this My Number belongs to another person", "my_number")


def _my_number(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    p = target(b, r, ev)
    req(r, "my_number")
    number = int(r["my_number"])
    _check_my_number(b, number, int(p["resident_code"]), int(p["person_id"]))
    if p["my_number"] == number:
        raise conflict("this My Number is already recorded", "my_number")
    b.update(p, {"my_number": number}, ev, "my_number", nid)
    return int(p["resident_code"])


Handler = Callable[[Batch, dict[str, Any], dt.date, str], int]

HANDLERS: dict[str, Handler] = {
    "birth": _birth,
    "death": lambda b, r, ev, nid: _remove(b, r, ev, nid, "death"),
    "move_in": _move_in,
    "move_out": lambda b, r, ev, nid: _remove(b, r, ev, nid, "move_out"),
    "move_within": _move_within,
    "household_change": household_change,
    "name_change": _name_change,
    "code_change": _code_change,
    "my_number": _my_number,
    "ex_officio_removal": lambda b, r, ev, nid: _remove(b, r, ev, nid, "ex_officio_removal"),
    "move_out_correction": _move_out_correction,
    "record_items": record_items,
    "residence_status_change": residence_status_change,
}
assert set(HANDLERS) == set(KINDS)


def already_applied(b: Batch, nid: str, r: dict[str, Any], digest: str) -> bool:
    """Whether this notification id was applied before with the same content (a repeat:
    skipped). The same id with other content is a conflict. An id applied before schema
    version 5 has no digest: the repeat must match what the log holds (kind, dates, and the
    resident code for kinds that name one)."""
    def clash() -> Rejected:
        return conflict(f"notification id {nid!r} was applied before with other content",
                        "notification_id")

    if nid in b.seen_ids:
        if b.seen_ids[nid] != digest:
            raise clash()
        return True
    prior = b.prior_notification(nid)
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


def apply_row(b: Batch, r: dict[str, Any], digest: str | None = None) -> int | None:
    """Validate and apply one notification; returns the resident code it concerns.

    ``digest``: the row's :func:`row_digest`, when the caller computed it for a whole
    table at once (``_jukicore.record_digests``, the same bytes); else computed here.
    Returns None when the notification was applied before (idempotence). Raises
    :class:`Rejected` when the row is refused (nothing has been written then).
    """
    nid = opt_text(r.get("notification_id"))
    if nid is None:
        raise invalid("every notification needs a notification_id", "notification_id")
    kind = r.get("kind")
    if kind not in HANDLERS:
        raise invalid(f"unknown kind {kind!r} (one of {', '.join(KINDS)})", "kind")
    if digest is None:
        digest = row_digest(r)
    if already_applied(b, nid, r, digest):
        return None
    notified = r.get("notified_date")
    ev = r.get("event_date")
    if notified is None:
        raise invalid("notified_date is required", "notified_date")
    if ev is None:
        raise invalid("event_date is required", "event_date")
    if notified > b.today:
        raise invalid(f"notified date {notified} is in the future", "notified_date")
    if kind == "move_out":
        if ev > notified + dt.timedelta(days=MOVE_OUT_LEAD_DAYS):
            raise invalid(
                f"planned move-out date more than {MOVE_OUT_LEAD_DAYS} days after the notification",
                "event_date",
            )
    elif ev > notified:
        raise invalid(f"event date {ev} is after the notified date {notified}", "event_date")
    if r.get("restated_relationships") and not (
            kind == "household_change" and r.get("household_action") == "new_head"):
        raise invalid("restated_relationships go with a household_change new_head (one"
                      " member: household_action 'relationship')", "restated_relationships")
    row_items_allowed(r, kind)
    b.last_person_id = None
    code = HANDLERS[kind](b, r, ev, nid)
    b.seen_ids[nid] = digest
    b.log_notification(nid, kind, b.last_person_id, code, notified, ev, digest)
    return code
