"""Cards follow their holders' records, in the transaction of the notification.

:meth:`jukicore.register.Register.apply` calls :func:`follow_updates` with the record
updates of its batch (when the register holds any card), before it commits:

* a death voids every card of the deceased, and so does a removal ex officio (職権消除:
  the holder is no longer registered anywhere, and a card is only ever a resident's);
* a My Number replaced (a number recorded over another, after a leak) voids the My
  Number card;
* a resident-code change voids the resident register card (it stores only that code);
  the My Number card follows its holder to the new code;
* a change of name or address (name change, move within the municipality, move out)
  revokes the My Number card's signing certificate (署名用電子証明書);
* a move out of the municipality is recorded on the card (``moved_out_on``): a resident
  register card then serves only the special move-in/out, a My Number card only after
  continued use at the new municipality (:meth:`jukicore.cards.Cards.continue_use`).

Each change has its audit entry, naming the notification, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from jukicore import audit
from jukicore.access.actors import Actor
from jukicore.store.backend import Session, utcnow

from . import rules

__all__ = ["follow_updates", "has_cards"]

_REASONS = frozenset({"death", "ex_officio_removal", "move_out", "code_change", "my_number",
                      "name_change", "move_within"})
#: Items of the signing certificate that a change revokes it for (name and address).
_SIGNED_ITEMS = frozenset({"family_name", "given_name", "address"})

Update = tuple[int, str, tuple[str, ...], int | None, int | None, dt.date, str | None]


def has_cards(s: Session) -> bool:
    """Whether the register holds any card (else nothing to follow)."""
    return bool(s.query("SELECT 1 FROM cards LIMIT 1"))


def _chunks(values: list[int], size: int = 500) -> list[list[int]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def follow_updates(s: Session, updates: Sequence[Update], *, actor: Actor,
                   today: dt.date) -> None:
    """Apply to the cards what the batch's record ``updates`` mean for them (see the
    module), with their audit entries, in the session ``s`` of the batch."""
    ups = [u for u in updates if u[1] in _REASONS]
    if not ups:
        return
    by_code: dict[int, list[dict[str, Any]]] = {}
    live = ", ".join(f"'{st}'" for st in sorted(rules.LIVE))
    for part in _chunks(sorted({u[0] for u in ups})):
        marks = ", ".join("?" * len(part))
        for cid, kind, code, state, expires, revoked, moved in s.query(
                "SELECT card_id, kind, resident_code, state, expires_on, sign_revoked_on,"
                f" moved_out_on FROM cards WHERE resident_code IN ({marks})"
                f" AND state IN ({live}) ORDER BY card_id", part):
            by_code.setdefault(int(code), []).append(
                {"card_id": str(cid), "kind": str(kind), "state": str(state),
                 "expires_on": s.pd(expires), "sign_revoked_on": s.pd(revoked),
                 "moved_out_on": s.pd(moved)})
    if not by_code:
        return
    at = s.ts(utcnow())
    entries: list[tuple[Any, ...]] = []

    def write(card: dict[str, Any], values: dict[str, Any], action: str, detail: str,
              nid: str | None) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        s.execute(f"UPDATE cards SET {sets}, updated_at = ? WHERE card_id = ?",
                  [*values.values(), at, card["card_id"]])
        entries.append(audit.entry(s, actor, action, card["card_id"], detail,
                                   notification_id=nid, at=at))

    for code, reason, items, mn_before, new_code, ev, nid in ups:
        cards = by_code.get(code)
        if not cards:
            continue
        why = f"notification {nid} ({reason})"
        for card in list(cards):
            state = rules.effective_state(card["state"], card["expires_on"], today)
            if state not in rules.LIVE:
                continue  # expired by date: nothing to void or revoke
            mynumber = card["kind"] == rules.MYNUMBER
            void = None
            if reason == "death" and "status" in items:
                void = "death"
            elif reason == "ex_officio_removal" and "status" in items:
                void = "removed_ex_officio"  # no longer a resident anywhere: no card
            elif reason == "my_number" and "my_number" in items and mn_before is not None \
                    and mynumber:
                void = "my_number_replaced"
            elif reason == "code_change" and new_code is not None:
                if mynumber:  # the card follows its holder to the new code
                    write(card, {"resident_code": int(new_code)}, "card.holder_code",
                          f"holder's resident code changed: {why}", nid)
                    cards.remove(card)
                    by_code.setdefault(int(new_code), []).append(card)
                    continue
                void = "code_change"
            if void is not None:
                write(card, {"state": rules.VOIDED}, "card.void", f"{state} -> voided:"
                      f" {void}, {why}", nid)
                cards.remove(card)
                continue
            if mynumber and card["sign_revoked_on"] is None and state != rules.APPLIED and (
                    _SIGNED_ITEMS.intersection(items)
                    or (reason == "move_out" and "status" in items)):
                write(card, {"sign_revoked_on": s.d(today)}, "card.revoke_signing",
                      f"signing certificate revoked (name or address changed): {why}", nid)
                card["sign_revoked_on"] = today
            if reason == "move_out" and "status" in items and card["moved_out_on"] is None:
                write(card, {"moved_out_on": s.d(ev)}, "card.moved_out",
                      f"holder moved out on {ev.isoformat()}: {why}", nid)
                card["moved_out_on"] = ev
    audit.write_many(s, entries)
