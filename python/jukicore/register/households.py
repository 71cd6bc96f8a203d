"""Households (世帯): the rules of who heads, joins, leaves, splits and merges.

Used by the notification rules (:mod:`.notifications`) whenever a notification moves someone
into or out of a household, and for the household change (世帯変更届) itself. Every read and
write goes through the transaction's :class:`~.data.Batch`; like every rule, these validate
completely before they write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from jukicore.errors import NotFoundError

from ._checks import (
    Rejected,
    conflict,
    fmt_code,
    invalid,
    opt_text,
    relationship,
    req,
    target,
)
from ._schema import HEAD
from .data import Batch

__all__ = ["Leave", "active_household", "do_leave", "household_change", "new_household_id",
           "plan_leave"]


@dataclass
class Leave:
    """What happens to a household when someone leaves it (validated, not yet written)."""

    household_id: int
    new_head: dict[str, Any] | None
    dissolve: bool


def plan_leave(b: Batch, r: dict[str, Any], p: dict[str, Any], also_leaving: set[int]) -> Leave:
    hid = int(p["household_id"])
    hh = b.household(hid)
    head_id = hh[0] if hh else None
    remaining = [m for m in b.members(hid) if m["person_id"] not in also_leaving]
    if p["person_id"] != head_id or not remaining:
        if r.get("new_head_code") is not None and p["person_id"] != head_id:
            raise invalid("new_head_code is only for the head of a household", "new_head_code")
        return Leave(hid, None, dissolve=not remaining)
    if r.get("new_head_code") is None:
        raise conflict(
            f"{fmt_code(p['resident_code'])} heads household {hid} and others remain:"
            " name the new head (new_head_code)",
            "new_head_code",
        )
    nh = int(r["new_head_code"])
    match = [m for m in remaining if m["resident_code"] == nh]
    if not match:
        raise conflict(
            f"new head {fmt_code(nh)} is not a current member of household {hid}", "new_head_code"
        )
    return Leave(hid, match[0], dissolve=False)


def do_leave(b: Batch, leave: Leave, ev: dt.date, reason: str, nid: str) -> None:
    if leave.new_head is not None:
        b.update(leave.new_head, {"relationship": HEAD}, ev, reason, nid)
        b.set_household_head(leave.household_id, leave.new_head["person_id"])
    elif leave.dissolve:
        b.dissolve_household(leave.household_id, ev)


def new_household_id(b: Batch, r: dict[str, Any]) -> int:
    hid = r.get("household_id")
    if hid is None:
        hid = b.next_household_id
    elif b.household(int(hid)) is not None:
        raise conflict(f"household {hid} already exists", "household_id")
    hid = int(hid)
    b.next_household_id = max(b.next_household_id, hid + 1)
    return hid


def active_household(b: Batch, hid: int) -> tuple[int, str]:
    """(head person id, address) of a household that exists, is not dissolved and has a
    current member."""
    hh = b.household(hid)
    if hh is None or hh[2] is not None or not b.has_members(hid):
        raise Rejected(NotFoundError(f"no current household {hid}"), "household_id")
    return hh[0], hh[1]


def household_change(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    req(r, "household_action")
    action = str(r["household_action"])
    p = target(b, r, ev)
    hid = int(p["household_id"])
    hh = b.household(hid)
    head_id = hh[0] if hh else None
    if action == "new_head":
        if p["person_id"] == head_id:
            raise conflict(f"{fmt_code(p['resident_code'])} already heads household {hid}",
                           "resident_code")
        rel = relationship(r, head_ok=False)  # the former head's new relationship
        former = b.person_by_id(head_id)  # type: ignore[arg-type]  # p's household has a head
        if ev < former["updated_on"]:
            raise conflict("event date before the former head's last change", "event_date")
        restated = _restated(b, r, hid, {p["person_id"], former["person_id"]})
        b.update(former, {"relationship": rel}, ev, "household_change", nid)
        b.update(p, {"relationship": HEAD}, ev, "household_change", nid)
        for m, new_rel in restated:
            b.update(m, {"relationship": new_rel}, ev, "household_change", nid)
        b.set_household_head(hid, p["person_id"])
    elif action == "split":
        if len(b.members(hid)) == 1:
            raise conflict("a household of one cannot split", "household_action")
        leave = plan_leave(b, r, p, {p["person_id"]})
        nhid = new_household_id(b, r)
        do_leave(b, leave, ev, "household_change", nid)
        b.update(p, {"household_id": nhid, "relationship": HEAD}, ev, "household_change", nid)
        b.create_household(nhid, p["person_id"], p["address"], ev)
    elif action == "merge":
        req(r, "household_id")
        thid = int(r["household_id"])
        if thid == hid:
            raise conflict(f"already a member of household {thid}", "household_id")
        _, t_addr = active_household(b, thid)
        if t_addr != p["address"]:
            raise conflict(f"household {thid} lives at another address: file a move",
                           "household_id")
        rel = relationship(r, head_ok=False)
        leave = plan_leave(b, r, p, {p["person_id"]})
        do_leave(b, leave, ev, "household_change", nid)
        b.update(p, {"household_id": thid, "relationship": rel}, ev, "household_change", nid)
    elif action == "relationship":
        if p["person_id"] == head_id:
            raise conflict(f"{fmt_code(p['resident_code'])} heads household {hid}: its"
                           " relationship is 世帯主 (use new_head)", "resident_code")
        rel = relationship(r, head_ok=False)
        if rel == p["relationship"]:
            raise conflict(f"the relationship is already {rel}", "relationship")
        b.update(p, {"relationship": rel}, ev, "household_change", nid)
    else:
        raise invalid(f"household_action must be new_head, relationship, split or merge, not"
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
        code, rel = (e or {}).get("resident_code"), opt_text((e or {}).get("relationship"))
        if code is None or rel is None:
            raise invalid("each restated relationship names a resident_code and a"
                          " relationship", col)
        code = int(code)
        if code in seen:
            raise invalid(f"{fmt_code(code)} is restated twice", col)
        seen.add(code)
        if code not in members:
            raise conflict(f"{fmt_code(code)} is not another member of household {hid} (the"
                           " new and the former head's relationships have their own columns)",
                           col)
        rel = rel.strip()
        if rel == HEAD:
            raise conflict("a household has one head: the new head is the row's resident",
                           col)
        out.append((members[code], rel))
    return out
