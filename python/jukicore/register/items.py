"""The record items of Article 7 and of foreign residents (Article 30-45) in notifications.

Which kinds take which items, the changes a ``record_items`` or a
``residence_status_change`` makes, and the check of a record's items as they will be
after a notification (the rules themselves are :func:`jukicore.validate.record_item_problems`,
the one validation; this module adds what needs the register: a card number held by
another person, the start of a loss of nationality). Reads and writes go through
:class:`~.data.Batch`. None of these items ever reaches the outbox: they are not identity
confirmation info (``Batch.update`` writes an outbox row only when one of the six items
changes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from jukicore.validate import (
    INDEFINITE_STATUSES,
    TRANSITION_DAYS,
    record_item_problems,
)

from ._checks import conflict, invalid, target
from ._schema import ARTICLE7_ITEMS, FOREIGN_ITEMS, RECORD_ITEMS, RESIDENT_SCHEMA
from .data import Batch

__all__ = ["CLEARING_KINDS", "ITEM_KINDS", "check_items", "given_items", "record_items",
           "residence_status_change", "row_items_allowed"]

#: The record items each kind takes (a kind not listed takes none).
ITEM_KINDS: dict[str, frozenset[str]] = {
    # a newborn: national health insurance from birth; a foreign newborn's nationality and
    # status (birth_transition, 出生による経過滞在者)
    "birth": frozenset({"nhi_since", "nationality", "foreign_status"}),
    "move_in": frozenset(RECORD_ITEMS),
    "record_items": frozenset(ARTICLE7_ITEMS),
    "residence_status_change": frozenset(FOREIGN_ITEMS),
}
#: Kinds that may end items (``cleared_items``), and which.
CLEARING_KINDS: dict[str, frozenset[str]] = {
    "record_items": frozenset(ARTICLE7_ITEMS),
    "residence_status_change": frozenset(FOREIGN_ITEMS),
}

_SCHEMA = pa.schema([RESIDENT_SCHEMA.field(n) for n in
                     ("birth_date", "resident_since", *RECORD_ITEMS)])
#: Foreign items that do not apply to each foreign status.
_NOT_APPLICABLE: dict[str | None, frozenset[str]] = {
    "mid_long_term": frozenset(),
    "special_permanent": frozenset({"residence_status", "period_of_stay", "stay_expires_on"}),
    "temporary_refuge": frozenset({"residence_status", "residence_card_number"}),
    "provisional_stay": frozenset({"residence_status", "residence_card_number"}),
    "birth_transition": frozenset({"residence_status", "period_of_stay", "stay_expires_on",
                                   "residence_card_number"}),
    "nationality_loss_transition": frozenset({"residence_status", "period_of_stay",
                                              "stay_expires_on", "residence_card_number"}),
}


def given_items(r: dict[str, Any]) -> dict[str, Any]:
    """The record items a notification row gives (non-null)."""
    return {k: r[k] for k in RECORD_ITEMS if r.get(k) is not None}


def row_items_allowed(r: dict[str, Any], kind: str) -> None:
    """A row gives only the items its kind takes, and ``cleared_items`` only with a kind
    that ends items."""
    allowed = ITEM_KINDS.get(kind, frozenset())
    for k in given_items(r):
        if k not in allowed:
            takes = ", ".join(sorted(allowed)) or "no record items"
            raise invalid(f"a {kind} notification does not take {k} (it takes {takes})", k)
    if r.get("cleared_items") and kind not in CLEARING_KINDS:
        raise invalid("cleared_items go with record_items or residence_status_change",
                      "cleared_items")


def check_items(b: Batch, p: dict[str, Any], ev: dt.date, changed: Iterable[str]) -> None:
    """The record ``p`` as it will be after a notification dated ``ev`` that sets the items
    ``changed``: the rules of :func:`jukicore.validate.record_item_problems`, and a residence
    card number held by no other person (a record holding the same resident code is the
    same person). Reads only; raises :class:`~._checks.Rejected`."""
    changed = set(changed)
    if not changed:
        return
    row = {n: [p.get(n)] for n in _SCHEMA.names}
    problems = record_item_problems(pa.Table.from_pydict(row, schema=_SCHEMA), ev,
                                    changed=changed)
    if problems:
        first = problems[0]
        raise invalid(f"{first.column}: {first.reason}", first.column)
    card = p.get("residence_card_number")
    if "residence_card_number" in changed and card is not None:
        code = p.get("resident_code")
        if any(pid != p.get("person_id") and (code is None or rc != code)
               for pid, rc in b.card_holders(str(card))):
            raise conflict("this residence card or certificate number belongs to another"
                           " person", "residence_card_number")


def _changes(r: dict[str, Any], p: dict[str, Any], allowed: frozenset[str],
             kind: str) -> dict[str, Any]:
    """The items a row sets (given values) and ends (``cleared_items``)."""
    changes = {k: v for k, v in given_items(r).items() if k in allowed}
    cleared = r.get("cleared_items") or []
    for k in cleared:
        if k not in allowed:
            raise invalid(f"cleared_items: {k!r} is not an item a {kind} ends (one of"
                          f" {', '.join(sorted(allowed))})", "cleared_items")
        if k in changes:
            raise invalid(f"cleared_items: {k} is given a value as well", "cleared_items")
    if len(set(cleared)) != len(cleared):
        raise invalid("cleared_items: an item is named twice", "cleared_items")
    if not changes and not cleared:
        raise invalid(f"a {kind} notification needs at least one item or cleared_items",
                      next(iter(sorted(allowed))))
    changes.update(dict.fromkeys(cleared))
    return changes


def _unchanged(p: dict[str, Any], changes: dict[str, Any]) -> None:
    if all(p[k] == v for k, v in changes.items()):
        raise conflict("the items are the current ones: nothing changes",
                       next(iter(changes)))


def record_items(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    """A change of the Article 7 items (electoral roll, national health insurance, late-stage
    elderly medical care, long-term care insurance, national pension, child allowance), by
    notification or ex officio: the given items are set, ``cleared_items`` end."""
    p = target(b, r, ev)
    changes = _changes(r, p, CLEARING_KINDS["record_items"], "record_items")
    _unchanged(p, changes)
    check_items(b, {**p, **changes}, ev, changes)
    b.update(p, changes, ev, "record_items", nid)
    return int(p["resident_code"])


def residence_status_change(b: Batch, r: dict[str, Any], ev: dt.date, nid: str) -> int:
    """The immigration services' notice (Article 30-50) of a foreign resident's change:
    status of residence, period of stay and its expiry (a renewal), card number, foreign
    status (e.g. a birth transition granted special permanent residence), nationality; a
    Japanese national's loss of nationality (``nationality_loss_transition``); a foreign
    resident's acquisition of Japanese nationality (``cleared_items`` with nationality).

    Items the row does not give and that do not apply to the resulting status end with
    the change (e.g. period and expiry when permanent residence is granted)."""
    p = target(b, r, ev)
    changes = _changes(r, p, CLEARING_KINDS["residence_status_change"],
                       "residence_status_change")
    after = {**p, **changes}
    status = after["foreign_status"]
    if after["nationality"] is None:  # a Japanese national: no foreign item applies
        ends = set(FOREIGN_ITEMS)
    else:
        ends = set(_NOT_APPLICABLE.get(status, frozenset()))
    if status == "mid_long_term" and after["residence_status"] in INDEFINITE_STATUSES:
        ends |= {"period_of_stay", "stay_expires_on"}
    for k in ends:
        if k not in changes and p[k] is not None:
            changes[k] = None
    _unchanged(p, changes)
    after = {**p, **changes}
    was = p["foreign_status"]
    if after["foreign_status"] == "nationality_loss_transition":
        if p["nationality"] is not None and was != "nationality_loss_transition":
            raise conflict("nationality_loss_transition is a Japanese national's loss of"
                           " nationality: this resident is a foreign national",
                           "foreign_status")
        if was == "nationality_loss_transition":
            since = b.item_changed_on(int(p["person_id"]), "foreign_status")
            if since is not None and ev > since + dt.timedelta(days=TRANSITION_DAYS):
                raise invalid(f"foreign_status: a person who lost Japanese nationality on"
                              f" {since} stays at most {TRANSITION_DAYS} days without a"
                              " status of residence (入管法 第22条の2)", "foreign_status")
    elif p["nationality"] is None and after["nationality"] is not None:
        raise conflict("a Japanese national who loses nationality becomes a"
                       " nationality_loss_transition (国籍喪失による経過滞在者) first",
                       "foreign_status")
    if after["foreign_status"] == "birth_transition" and was != "birth_transition":
        raise conflict("birth_transition is recorded at birth (or a move-in) only",
                       "foreign_status")
    check_items(b, after, ev, changes)
    b.update(p, changes, ev, "residence_status_change", nid)
    return int(p["resident_code"])
