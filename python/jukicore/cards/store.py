"""The counter's cards on the municipality's register: :class:`Cards`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from jukicore import audit
from jukicore.access import actors as perm
from jukicore.access.actors import Actor
from jukicore.access.policy import JST, read_detail
from jukicore.errors import (
    BadRow,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.register._checks import fmt_code
from jukicore.register.store import Register, as_arrow_table
from jukicore.store.backend import Session, content_digest, utcnow
from jukicore.validate import parse_resident_code

from . import rules
from ._schema import CARD_COLUMNS, CARD_SCHEMA
from .pin import PinKey

__all__ = ["Cards"]

_COLS = tuple(c.name for c in CARD_COLUMNS)
_DATES = frozenset(c.name for c in CARD_COLUMNS if c.type == "date")
_SELECT = f"SELECT {', '.join(_COLS)} FROM cards"
_OUT = CARD_SCHEMA.names
#: Most failed PINs in a row before the card locks.
MAX_FAILURES = 3


class _Bad(Exception):
    """Internal: one row of a table refused (column, reason, conflict or invalid)."""

    def __init__(self, column: str, reason: str, conflict: bool = True) -> None:
        super().__init__(reason)
        self.column, self.reason, self.conflict = column, reason, conflict


def _day(today: dt.date | None, now: dt.datetime | None) -> dt.date:
    """The day of the work: ``today``, else ``now``'s (else the clock's) Japanese date."""
    if today is not None:
        if not isinstance(today, dt.date) or isinstance(today, dt.datetime):
            raise InvalidInputError(f"today is a date, not {type(today).__name__}")
        return today
    moment = now or utcnow()
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(JST).date()


class Cards:
    """The resident register cards and My Number cards of one municipality's register.

    ``pin_key``: the node's :class:`~jukicore.cards.pin.PinKey` (kept outside the store);
    the operations that set or check a PIN need it. Every method takes the acting
    :class:`~jukicore.access.Actor`, goes through the register's policy and writes its
    audit entries in the transaction of its change; a refused request changes nothing.
    """

    def __init__(self, register: Register, pin_key: PinKey | None) -> None:
        if not isinstance(register, Register):
            raise InvalidInputError("Cards works on a jukicore Register")
        if pin_key is not None and not isinstance(pin_key, PinKey):
            raise InvalidInputError("the pin key is a jukicore.cards.PinKey (PinKey.load(path))")
        self._reg = register
        self._b = register._b
        self._gate = register.policy
        self._key = pin_key
        self.lg_code = register.lg_code

    # -- helpers ---------------------------------------------------------------------------

    def _pin_key(self) -> PinKey:
        if self._key is None:
            raise InvalidInputError("this operation sets or checks a PIN: give Cards the"
                                    " node's pin key (PinKey.load(path))")
        return self._key

    @contextmanager
    def _session(self, actor: Actor, permission: str, now: dt.datetime | None,
                 target: str | None = None) -> Iterator[Session]:
        with self._gate.session(actor, permission, now=now, target=target) as s:
            yield s

    def _row(self, s: Session, card_id: str) -> dict[str, Any]:
        rows = s.query(f"{_SELECT} WHERE card_id = ?", (card_id,))
        if not rows:
            raise NotFoundError(f"no card {card_id} in the register of {self.lg_code}")
        return self._card(s, rows[0])

    @staticmethod
    def _card(s: Session, row: tuple[Any, ...]) -> dict[str, Any]:
        out = dict(zip(_COLS, row, strict=True))
        for k in _DATES:
            out[k] = s.pd(out[k])
        return out

    @staticmethod
    def _holder(s: Session, code: int) -> dict[str, Any] | None:
        """The current resident holding ``code`` here (None: none)."""
        rows = s.query("SELECT birth_date, my_number, move_in_notified FROM residents"
                       " WHERE resident_code = ? AND status = 'resident'", (code,))
        if not rows:
            return None
        born, number, moved_in = rows[0]
        return {"birth_date": s.pd(born), "my_number": number,
                "move_in_notified": s.pd(moved_in)}

    @staticmethod
    def _set(s: Session, card_id: str, values: dict[str, Any]) -> None:
        values = {k: (s.d(v) if k in _DATES else v) for k, v in values.items()}
        sets = ", ".join(f"{k} = ?" for k in values)
        s.execute(f"UPDATE cards SET {sets}, updated_at = ? WHERE card_id = ?",
                  [*values.values(), s.ts(utcnow()), card_id])

    def _fee(self, s: Session, kind: str) -> int:
        return self._gate.fee(s, rules.fee_service(kind))

    @staticmethod
    def _public(card: dict[str, Any], today: dt.date) -> dict[str, Any]:
        """A card as the API shows it (never its PIN), with its state on ``today``."""
        out = {k: card.get(k) for k in _OUT}
        out["state"] = rules.effective_state(card["state"], card["expires_on"], today)
        out["resident_code"] = fmt_code(card["resident_code"])
        return out

    def _transition(self, s: Session, actor: Actor, card: dict[str, Any], to: str,
                    operation: str, today: dt.date, detail: str,
                    values: dict[str, Any] | None = None) -> dict[str, Any]:
        state = rules.effective_state(card["state"], card.get("expires_on"), today)
        why = rules.refused_transition(state, to, operation)
        if why is not None:
            raise ConflictError(f"card {card['card_id']}: {why}")
        changes = {"state": to, **(values or {})}
        self._set(s, card["card_id"], changes)
        audit.write(s, actor, f"card.{operation}", card["card_id"],
                    f"{state} -> {to}" + (f": {detail}" if detail else ""))
        card.update(changes)
        return card

    # -- applications and issue --------------------------------------------------------------

    def _rows(self, applications: Any, *, card_ids: bool) -> list[dict[str, Any]]:
        if isinstance(applications, list | tuple):
            rows = list(applications)
            if not all(isinstance(r, dict) for r in rows):
                raise InvalidInputError("applications are a table or a list of dicts")
        else:
            rows = as_arrow_table(applications, "applications").to_pylist()
        known = {"resident_code", "kind", "applied_on"} | ({"card_id"} if card_ids else set())
        unknown = {str(k) for r in rows for k in r} - known
        if unknown:
            raise InvalidInputError(f"unknown application columns: {', '.join(sorted(unknown))}"
                                    f" (expected {', '.join(sorted(known))})")
        if not rows:
            raise InvalidInputError("no applications given")
        return rows

    def _new_card(self, s: Session, r: dict[str, Any], today: dt.date,
                  taken: set[tuple[int, str]]) -> dict[str, Any]:
        """An application's card (not written), or :class:`_Bad`."""
        try:
            code = parse_resident_code(r.get("resident_code"))
        except InvalidInputError as exc:
            raise _Bad("resident_code", str(exc), False) from None
        try:
            kind = rules.check_kind(r.get("kind"))
        except InvalidInputError as exc:
            raise _Bad("kind", str(exc), False) from None
        applied = r.get("applied_on")
        if applied is None:
            applied = today
        if not isinstance(applied, dt.date) or isinstance(applied, dt.datetime):
            raise _Bad("applied_on", "applied_on is a date", False)
        if applied > today:
            raise _Bad("applied_on", f"applied on {applied}, after today ({today})", False)
        if kind in rules.JUKI_KINDS and today > rules.JUKI_CLOSED:
            raise _Bad("kind", f"resident register cards are no longer issued (issuance"
                       f" closed on {rules.JUKI_CLOSED}; {today} is after it)")
        if kind == rules.MYNUMBER and applied < rules.MYNUMBER_OPENED:
            raise _Bad("applied_on", f"My Number cards are issued from"
                       f" {rules.MYNUMBER_OPENED}", False)
        holder = self._holder(s, code)
        if holder is None:
            raise _Bad("resident_code", f"{fmt_code(code)} is not a current resident of"
                       f" {self.lg_code}")
        if applied < holder["birth_date"]:
            raise _Bad("applied_on", "applied before the holder's birth", False)
        if kind == rules.MYNUMBER and holder["my_number"] is None:
            raise _Bad("resident_code", f"{fmt_code(code)} has no My Number recorded")
        family = "juki" if kind in rules.JUKI_KINDS else rules.MYNUMBER
        if (code, family) in taken:
            raise _Bad("resident_code", f"{fmt_code(code)} applies twice for a {family} card"
                       " in this table")
        for cid, other, state, expires in s.query(
                "SELECT card_id, kind, state, expires_on FROM cards WHERE resident_code = ?",
                (code,)):
            live = rules.effective_state(str(state), s.pd(expires), today) in rules.LIVE
            if not live:
                continue
            if (other in rules.JUKI_KINDS) == (kind in rules.JUKI_KINDS):
                raise _Bad("resident_code", f"{fmt_code(code)} already holds card {cid}"
                           f" ({other}, {state})")
            if other == rules.MYNUMBER:
                raise _Bad("kind", f"{fmt_code(code)} holds My Number card {cid}: a resident"
                           " register card is not issued beside it")
        taken.add((code, family))
        return {"resident_code": code, "kind": kind, "applied_on": applied,
                "birth_date": holder["birth_date"]}

    def _next_ids(self, s: Session, n: int) -> list[str]:
        last = s.scalar("SELECT max(card_id) FROM cards WHERE issuer = ?", (self.lg_code,))
        start = 0 if last is None else int(str(last).rsplit("-", 1)[1])
        if start + n > 999_999_999:
            raise ConflictError("this municipality's card serials are used up")
        return [f"{self.lg_code}-{start + i:09d}" for i in range(1, n + 1)]

    @staticmethod
    def _refuse(bad: list[tuple[int, _Bad]], what: str) -> None:
        rows = [BadRow(i, b.reason, b.column) for i, b in bad]
        msg = f"{len(bad)} of the {what} refused: nothing recorded"
        if any(not b.conflict for _, b in bad):
            raise InvalidInputError(msg, rows)
        raise ConflictError(msg, rows)

    def _insert(self, s: Session, card: dict[str, Any]) -> None:
        values = [s.d(card.get(c)) if c in _DATES else card.get(c) for c in _COLS]
        s.execute(f"INSERT INTO cards ({', '.join(_COLS)}) VALUES"
                  f" ({', '.join('?' * len(_COLS))})", values)

    def apply(self, applications: Any, *, actor: Actor, today: dt.date | None = None,
              now: dt.datetime | None = None) -> pa.Table:
        """Record applications for cards (state ``applied``): a table (any Arrow table, or
        a list of dicts) of ``resident_code``, ``kind`` (juki_basic, juki_photo, mynumber)
        and optionally ``applied_on`` (default: today). Returns the cards (:data:`CARD_SCHEMA`).
        One bad row refuses the whole table (InvalidInputError / ConflictError naming every
        bad row); nothing is recorded then."""
        return self._create(applications, actor, today, now, issue=False)

    def issue(self, applications: Any, *, actor: Actor, today: dt.date | None = None,
              now: dt.datetime | None = None) -> pa.Table:
        """Issue cards (state ``issued``; handed over later by :meth:`activate`).

        Each row is either ``card_id`` (an application recorded by :meth:`apply`) or a new
        application (``resident_code``, ``kind``, optionally ``applied_on``), applied for
        and issued at once. The expiry is set here (docs/cards.md), and the fee of the
        kind in force is recorded. A resident register card is refused after 2015-12-28;
        a holder keeps one live card of each family (a resident register card is not
        issued beside a My Number card). Returns the issued cards; one bad row refuses
        the whole table and nothing changes."""
        return self._create(applications, actor, today, now, issue=True)

    def _create(self, applications: Any, actor: Actor, today: dt.date | None,
                now: dt.datetime | None, *, issue: bool) -> pa.Table:
        self._gate.precheck(actor, perm.CARD_ISSUE)
        day = _day(today, now)
        rows = self._rows(applications, card_ids=issue)
        out: list[dict[str, Any]] = []
        with self._session(actor, perm.CARD_ISSUE, now) as s:
            bad: list[tuple[int, _Bad]] = []
            plans: list[tuple[str, dict[str, Any]]] = []
            taken: set[tuple[int, str]] = set()
            seen: set[str] = set()
            for i, r in enumerate(rows):
                try:
                    if issue and r.get("card_id") is not None:
                        if any(r.get(k) is not None for k in ("resident_code", "kind",
                                                              "applied_on")):
                            raise _Bad("card_id", "a row names an applied card (card_id) or"
                                       " a new application, not both", False)
                        plans.append(("issue", self._applied_card(s, r["card_id"], day,
                                                                  seen)))
                    else:
                        plans.append(("new", self._new_card(s, r, day, taken)))
                except _Bad as b:
                    bad.append((i, b))
            if bad:
                self._refuse(bad, "applications")
            fresh = [p for what, p in plans if what == "new"]
            ids = iter(self._next_ids(s, len(fresh)))
            at = utcnow()
            for what, p in plans:
                if what == "new":
                    card = {"card_id": next(ids), "kind": p["kind"],
                            "resident_code": p["resident_code"], "state": rules.APPLIED,
                            "issuer": self.lg_code, "applied_on": p["applied_on"],
                            "fee": self._fee(s, p["kind"]), "pin_failures": 0,
                            "updated_at": s.ts(at)}
                    self._insert(s, card)
                    audit.write(s, actor, "card.apply", card["card_id"],
                                f"{card['kind']} for {fmt_code(card['resident_code'])},"
                                f" fee {card['fee']} yen")
                    birth = p["birth_date"]
                else:
                    card, birth = p["card"], p["birth_date"]
                if issue:
                    expires = rules.card_expiry(card["kind"], day, birth)
                    values: dict[str, Any] = {"issued_on": day, "expires_on": expires}
                    if card["kind"] == rules.MYNUMBER:
                        values["cert_expires_on"] = min(expires,
                                                        rules.certificate_expiry(day, birth))
                    self._transition(s, actor, card, rules.ISSUED, "issue", day,
                                     f"valid to {expires}", values)
                out.append(self._public(self._row(s, card["card_id"]), day))
        return pa.Table.from_pylist(_typed(out), schema=CARD_SCHEMA)

    def _applied_card(self, s: Session, card_id: Any, today: dt.date,
                      seen: set[str]) -> dict[str, Any]:
        try:
            cid = rules.check_card_id(card_id)
        except InvalidInputError as exc:
            raise _Bad("card_id", str(exc), False) from None
        if cid in seen:
            raise _Bad("card_id", f"card {cid} is named twice", False)
        seen.add(cid)
        rows = s.query(f"{_SELECT} WHERE card_id = ?", (cid,))
        if not rows:
            raise _Bad("card_id", f"no card {cid} here")
        card = self._card(s, rows[0])
        if card["state"] != rules.APPLIED:
            raise _Bad("card_id", f"card {cid} is {card['state']}, not applied")
        if card["kind"] in rules.JUKI_KINDS and today > rules.JUKI_CLOSED:
            raise _Bad("card_id", f"resident register cards are no longer issued (issuance"
                       f" closed on {rules.JUKI_CLOSED}; {today} is after it)")
        holder = self._holder(s, int(card["resident_code"]))
        if holder is None:
            raise _Bad("card_id", f"the holder of {cid} is no longer a resident here")
        return {"card": card, "birth_date": holder["birth_date"]}

    # -- hand-over, PINs ---------------------------------------------------------------

    def activate(self, card_id: str, pin: str, *, actor: Actor, today: dt.date | None = None,
                 now: dt.datetime | None = None) -> dict[str, Any]:
        """Hand an issued card over (``issued`` -> ``active``) with the PIN its holder
        chose (4 digits). Handing over a My Number card collects the holder's resident
        register card (collected; one never handed over is voided). Returns the card."""
        self._gate.precheck(actor, perm.CARD_ISSUE)
        cid = rules.check_card_id(card_id)
        rules.check_pin(pin)
        day = _day(today, now)
        key = self._pin_key()
        stored = key.hash(cid, pin)  # outside the transaction: it takes a while
        with self._session(actor, perm.CARD_ISSUE, now, cid) as s:
            card = self._row(s, cid)
            if self._holder(s, int(card["resident_code"])) is None:
                raise ConflictError(f"card {cid}: its holder is no longer a resident here")
            self._transition(s, actor, card, rules.ACTIVE, "activate", day, "handed over",
                             {"activated_on": day, "pin_hash": stored,
                              "pin_key_id": key.key_id, "pin_failures": 0})
            if card["kind"] == rules.MYNUMBER:
                self._collect_juki(s, actor, int(card["resident_code"]), cid, day)
            return self._public(card, day)

    def _collect_juki(self, s: Session, actor: Actor, code: int, by: str,
                      day: dt.date) -> None:
        live = ", ".join(f"'{x}'" for x in sorted(rules.LIVE | {rules.EXPIRED, rules.VOIDED}))
        for row in s.query(f"{_SELECT} WHERE resident_code = ? AND kind IN (?, ?)"
                           f" AND state IN ({live}) ORDER BY card_id",
                           (code, *rules.JUKI_KINDS)):
            card = self._card(s, row)
            state = rules.effective_state(card["state"], card["expires_on"], day)
            detail = f"the holder received My Number card {by}"
            if rules.TRANSITIONS.get((state, rules.COLLECTED)) == "collect":
                self._transition(s, actor, card, rules.COLLECTED, "collect", day, detail)
            elif rules.TRANSITIONS.get((state, rules.VOIDED)) == "void":
                self._transition(s, actor, card, rules.VOIDED, "void", day, detail)

    def verify_pin(self, card_id: str, pin: str, *, actor: Actor,
                   now: dt.datetime | None = None) -> int:
        """Check a card's PIN; returns the holder's resident code.

        Refused with :class:`PermissionDeniedError`: a wrong PIN, a card locked (three
        wrong PINs in a row), suspended, expired, voided or otherwise not usable here
        (its holder moved out: see :meth:`verify_pin_special_move`). Each attempt is
        reserved (one conditional UPDATE, committed) before the PIN is checked, so that
        concurrent attempts never get more than three tries; the count and the lock are
        committed whatever the caller does next. A success resets the count."""
        return self._verify(card_id, pin, actor, now, special_move=False)

    def verify_pin_special_move(self, card_id: str, pin: str, *, actor: Actor,
                                now: dt.datetime | None = None) -> int:
        """:meth:`verify_pin` for the special move-in/out (転入転出の特例), the one use a
        resident register card keeps after its holder moved out."""
        return self._verify(card_id, pin, actor, now, special_move=True)

    def _unusable(self, s: Session, card: dict[str, Any], day: dt.date,
                  special_move: bool) -> str | None:
        state = rules.effective_state(card["state"], card["expires_on"], day)
        if state == rules.LOCKED or (state == rules.ACTIVE
                                     and card["pin_failures"] >= MAX_FAILURES):
            return f"card {card['card_id']} is locked after {MAX_FAILURES} wrong PINs: the" \
                   " PIN is reset at the counter"
        if state != rules.ACTIVE:
            return f"card {card['card_id']} is {state}"
        if card["pin_hash"] is None:
            return f"card {card['card_id']} has no PIN"
        juki = card["kind"] in rules.JUKI_KINDS
        if card["moved_out_on"] is not None:
            if special_move:  # the special move-in: the use between move-out and move-in
                return None
            if juki:
                return f"card {card['card_id']}: its holder moved out; it serves only the" \
                       " special move-in/out"
            return f"card {card['card_id']}: its holder moved out; it is used again only" \
                   " after continued use is recorded at the new municipality"
        if special_move and not juki:
            return None if self._holder(s, int(card["resident_code"])) else \
                f"card {card['card_id']}: its holder is not a resident here"
        if self._holder(s, int(card["resident_code"])) is None:
            return f"card {card['card_id']}: its holder is not a resident here"
        return None

    def _verify(self, card_id: str, pin: str, actor: Actor, now: dt.datetime | None,
                special_move: bool) -> int:
        self._gate.precheck(actor, perm.CARD_VERIFY)
        cid = rules.check_card_id(card_id)
        rules.check_pin(pin)
        key = self._pin_key()
        day = _day(None, now)
        with self._session(actor, perm.CARD_VERIFY, now, cid) as s:
            card = self._row(s, cid)
            why = self._unusable(s, card, day, special_move)
            if why is not None:
                self._gate.deny(why)
            if card["pin_key_id"] != key.key_id:
                raise InvalidInputError(f"card {cid}: its PIN is under another pin key than"
                                        " the one given (check the node's key file)")
            # the attempt is reserved (and committed) before the PIN is checked
            got = s.query("UPDATE cards SET pin_failures = pin_failures + 1, updated_at = ?"
                          " WHERE card_id = ? AND state = 'active' AND pin_failures < ?"
                          " RETURNING pin_failures, pin_hash",
                          (s.ts(utcnow()), cid, MAX_FAILURES))
            if not got:  # other attempts took the last tries meanwhile
                self._gate.deny(f"card {cid} is locked after {MAX_FAILURES} wrong PINs")
            audit.write(s, actor, "card.pin_attempt", cid,
                        f"attempt {int(got[0][0])} of {MAX_FAILURES}")
        attempt, stored = int(got[0][0]), str(got[0][1])
        ok = key.verify(stored, cid, pin)
        with self._b.session() as s:
            if ok:
                s.execute("UPDATE cards SET pin_failures = 0, updated_at = ? WHERE card_id = ?"
                          " AND state = 'active' AND pin_failures > 0",
                          (s.ts(utcnow()), cid))
                audit.write(s, actor, "card.pin_verified", cid, "PIN correct: count reset")
            else:
                locked = s.query("UPDATE cards SET state = 'locked', updated_at = ?"
                                 " WHERE card_id = ? AND state = 'active'"
                                 " AND pin_failures >= ? RETURNING card_id",
                                 (s.ts(utcnow()), cid, MAX_FAILURES))
                audit.write(s, actor, "card.pin_failed", cid,
                            f"wrong PIN (attempt {attempt} of {MAX_FAILURES})")
                if locked:
                    audit.write(s, actor, "card.lock", cid,
                                f"active -> locked: {MAX_FAILURES} wrong PINs in a row")
        if not ok:
            left = max(MAX_FAILURES - attempt, 0)
            raise PermissionDeniedError(
                f"card {cid}: wrong PIN" + (f" ({left} tries left)" if left else
                                            ": the card is locked (reset at the counter)"))
        return int(card["resident_code"])

    def reset_pin(self, card_id: str, pin: str, *, identity_document: str, actor: Actor,
                  today: dt.date | None = None, now: dt.datetime | None = None
                  ) -> dict[str, Any]:
        """At the counter, after an identity check (``identity_document``: the document
        seen, recorded): set a new PIN and clear the count; a locked card is active again
        (``locked`` -> ``active``); an active one keeps its state (a forgotten PIN)."""
        self._gate.precheck(actor, perm.CARD_RESET)
        cid = rules.check_card_id(card_id)
        rules.check_pin(pin)
        doc = rules.check_identity_document(identity_document)
        day = _day(today, now)
        key = self._pin_key()
        stored = key.hash(cid, pin)
        with self._session(actor, perm.CARD_RESET, now, cid) as s:
            card = self._row(s, cid)
            state = rules.effective_state(card["state"], card["expires_on"], day)
            values = {"pin_hash": stored, "pin_key_id": key.key_id, "pin_failures": 0}
            detail = f"PIN reset after an identity check ({doc})"
            if state == rules.ACTIVE:
                self._set(s, cid, values)
                audit.write(s, actor, "card.reset_pin", cid, f"active: {detail}")
                card.update(values)
            else:
                self._transition(s, actor, card, rules.ACTIVE, "reset_pin", day, detail,
                                 values)
            return self._public(card, day)

    # -- lost cards -------------------------------------------------------------------

    def suspend(self, card_id: str, *, actor: Actor, today: dt.date | None = None,
                now: dt.datetime | None = None) -> dict[str, Any]:
        """Suspend a card reported lost (by phone: the ``hotline`` may, for any
        municipality): ``active`` or ``locked`` -> ``suspended``."""
        self._gate.precheck(actor, perm.CARD_SUSPEND)
        cid = rules.check_card_id(card_id)
        day = _day(today, now)
        with self._session(actor, perm.CARD_SUSPEND, now, cid) as s:
            card = self._row(s, cid)
            self._transition(s, actor, card, rules.SUSPENDED, "suspend", day,
                             "reported lost")
            return self._public(card, day)

    def resume(self, card_id: str, *, identity_document: str, actor: Actor,
               today: dt.date | None = None, now: dt.datetime | None = None
               ) -> dict[str, Any]:
        """Resume a suspended card at the counter after an identity check (recorded):
        ``suspended`` -> ``active``, or ``locked`` when its PIN was locked."""
        self._gate.precheck(actor, perm.CARD_RESET)
        cid = rules.check_card_id(card_id)
        doc = rules.check_identity_document(identity_document)
        day = _day(today, now)
        with self._session(actor, perm.CARD_RESET, now, cid) as s:
            card = self._row(s, cid)
            to = rules.LOCKED if card["pin_failures"] >= MAX_FAILURES else rules.ACTIVE
            self._transition(s, actor, card, to, "resume", day,
                             f"found; identity checked ({doc})")
            return self._public(card, day)

    # -- moves, voiding, collection ------------------------------------------------------

    def continue_use(self, card_id: str, *, resident_code: int | str, identity_document: str,
                     actor: Actor, issued_on: dt.date | None = None, pin: str | None = None,
                     today: dt.date | None = None, now: dt.datetime | None = None
                     ) -> dict[str, Any]:
        """Record continued use (継続利用) of a My Number card after its holder moved in:
        within 90 days of the move-in notification (day 90 yes, day 91 no), after an
        identity check (recorded). A card of this register (the holder came back) is
        usable again; a card of another municipality is recorded here (``issued_on``
        from the card, the PIN its holder enters, set under this node's pin key), with
        its expiry from the holder's date of birth. The signing certificate stays revoked
        (the address changed). A resident register card is refused: after a move it
        serves only the special move-in/out."""
        self._gate.precheck(actor, perm.CARD_ISSUE)
        cid = rules.check_card_id(card_id)
        code = parse_resident_code(resident_code)
        doc = rules.check_identity_document(identity_document)
        day = _day(today, now)
        stored = None
        key = None
        if pin is not None:
            rules.check_pin(pin)
            key = self._pin_key()
            stored = key.hash(cid, pin)
        if issued_on is not None and (not isinstance(issued_on, dt.date)
                                      or isinstance(issued_on, dt.datetime)):
            raise InvalidInputError("issued_on is a date")
        with self._session(actor, perm.CARD_ISSUE, now, cid) as s:
            return self.continue_use_in(s, actor, cid, code=code, document=doc, day=day,
                                        issued_on=issued_on, stored=stored, key=key)

    def continue_use_in(self, s: Session, actor: Actor, cid: str, *, code: int,
                        document: str, day: dt.date, issued_on: dt.date | None,
                        stored: str | None, key: PinKey | None) -> dict[str, Any]:
        """:meth:`continue_use` in the caller's transaction ``s`` (a session of the
        register's policy; the values already checked): the special move-in
        (jukicore.moves) records the move-in and the card's continued use together.
        ``stored``: the PIN's hash under ``key`` (a card carried in)."""
        holder = self._holder(s, code)
        if holder is None:
            raise ConflictError(f"{fmt_code(code)} is not a current resident here")
        moved_in = holder["move_in_notified"]
        if moved_in is None:
            raise ConflictError(f"{fmt_code(code)} has no move-in recorded here: continued"
                                " use follows a move-in")
        days = (day - moved_in).days
        if days < 0:
            raise InvalidInputError(f"today ({day}) is before the move-in notification"
                                    f" ({moved_in})")
        if days > rules.CONTINUE_DAYS:
            raise ConflictError(
                f"continued use is recorded within {rules.CONTINUE_DAYS} days of the"
                f" move-in notification ({moved_in}); {day} is day {days}: the card"
                " can no longer continue")
        rows = s.query(f"{_SELECT} WHERE card_id = ?", (cid,))
        detail = (f"continued use {days} days after the move-in of {moved_in};"
                  f" identity checked ({document})")
        if rows:
            card = self._card(s, rows[0])
            if card["kind"] != rules.MYNUMBER:
                raise ConflictError(f"card {cid} is a resident register card: after a"
                                    " move it serves only the special move-in/out")
            if int(card["resident_code"]) != code:
                raise ConflictError(f"card {cid} is not {fmt_code(code)}'s")
            state = rules.effective_state(card["state"], card["expires_on"], day)
            if state not in (rules.ACTIVE, rules.LOCKED) or card["moved_out_on"] is None:
                raise ConflictError(f"card {cid} is {state}"
                                    + ("" if card["moved_out_on"] else
                                       ", its holder never moved out")
                                    + ": no continued use to record")
            values: dict[str, Any] = {"moved_out_on": None, "continued_on": day}
            if card["sign_revoked_on"] is None:
                values["sign_revoked_on"] = day
            self._set(s, cid, values)
            card.update(values)
            audit.write(s, actor, "card.continue_use", cid, detail)
            return self._public(card, day)
        if cid.startswith(f"{self.lg_code}-"):
            raise NotFoundError(f"no card {cid} in the register of {self.lg_code}")
        if issued_on is None or stored is None or key is None:
            raise InvalidInputError(f"card {cid} was issued elsewhere: give its issue date"
                                    " (issued_on) and the PIN its holder enters")
        if not rules.MYNUMBER_OPENED <= issued_on <= moved_in:
            raise InvalidInputError(f"a My Number card carried in was issued from"
                                    f" {rules.MYNUMBER_OPENED} to the move-in ({moved_in})")
        if holder["my_number"] is None:
            raise ConflictError(f"{fmt_code(code)} has no My Number recorded here")
        for other, kind, state, expires in s.query(
                "SELECT card_id, kind, state, expires_on FROM cards"
                " WHERE resident_code = ?", (code,)):
            if kind == rules.MYNUMBER and rules.effective_state(
                    str(state), s.pd(expires), day) in rules.LIVE:
                raise ConflictError(f"{fmt_code(code)} already holds My Number card"
                                    f" {other} here")
        expires_on = rules.card_expiry(rules.MYNUMBER, issued_on, holder["birth_date"])
        if day > expires_on:
            raise ConflictError(f"card {cid} expired on {expires_on}")
        card = {"card_id": cid, "kind": rules.MYNUMBER, "resident_code": code,
                "state": rules.ACTIVE, "issuer": cid.split("-", 1)[0],
                "applied_on": issued_on, "issued_on": issued_on, "activated_on": day,
                "expires_on": expires_on,
                "cert_expires_on": min(expires_on, rules.certificate_expiry(
                    issued_on, holder["birth_date"])),
                "sign_revoked_on": day, "fee": 0, "continued_on": day,
                "pin_hash": stored, "pin_key_id": key.key_id, "pin_failures": 0,
                "updated_at": s.ts(utcnow())}
        self._insert(s, card)
        audit.write(s, actor, "card.continue_use", cid,
                    f"carried in from {card['issuer']}: {detail}")
        return self._public(card, day)

    def void(self, card_id: str, reason: str, *, actor: Actor, today: dt.date | None = None,
             now: dt.datetime | None = None) -> dict[str, Any]:
        """Void a card (``reason``: one of :data:`~jukicore.cards.rules.VOID_REASONS`)."""
        self._gate.precheck(actor, perm.CARD_ISSUE)
        cid = rules.check_card_id(card_id)
        if reason not in rules.VOID_REASONS:
            raise InvalidInputError(f"a card is voided for one of {', '.join(rules.VOID_REASONS)}")
        day = _day(today, now)
        with self._session(actor, perm.CARD_ISSUE, now, cid) as s:
            card = self._row(s, cid)
            self._transition(s, actor, card, rules.VOIDED, "void", day, reason)
            return self._public(card, day)

    def collect(self, card_id: str, *, actor: Actor, today: dt.date | None = None,
                now: dt.datetime | None = None) -> dict[str, Any]:
        """Take a card back at the counter (returned, expired or voided): ``collected``."""
        self._gate.precheck(actor, perm.CARD_ISSUE)
        cid = rules.check_card_id(card_id)
        day = _day(today, now)
        with self._session(actor, perm.CARD_ISSUE, now, cid) as s:
            card = self._row(s, cid)
            self._transition(s, actor, card, rules.COLLECTED, "collect", day, "returned")
            return self._public(card, day)

    # -- reads and configuration -------------------------------------------------------

    def list(self, *, actor: Actor, resident_code: int | str | None = None,
             state: str | None = None, today: dt.date | None = None,
             now: dt.datetime | None = None, purpose: str | None = None) -> pa.Table:
        """The cards (:data:`CARD_SCHEMA`, never a PIN), each in its state on ``today``
        (expired by date included); of one holder, or in one state, on request. A read of
        personal data: the policy's read permission and quota, and its audit entry."""
        self._gate.precheck(actor, perm.READ)
        code = None if resident_code is None else parse_resident_code(resident_code)
        if state is not None and state not in rules.STATES:
            raise InvalidInputError(f"a card state is one of {', '.join(rules.STATES)}")
        day = _day(today, now)
        where, params = ("WHERE resident_code = ?", (code,)) if code is not None else ("", ())
        with self._gate.session(actor, perm.READ, now=now,
                                target=None if code is None else fmt_code(code)) as s:
            cards = [self._public(self._card(s, r), day)
                     for r in s.query(f"{_SELECT} {where} ORDER BY card_id", params)]
            if state is not None:
                cards = [c for c in cards if c["state"] == state]
            what = "cards" if code is None else f"cards of {fmt_code(code)}"
            if code is None:
                self._gate.charge(s, actor, perm.READ, len(cards))
            audit.write(s, actor, "register.read", None if code is None else fmt_code(code),
                        read_detail(what, None if code is not None else len(cards), purpose))
        return pa.Table.from_pylist(_typed(cards), schema=CARD_SCHEMA)

    def fees(self) -> dict[str, int]:
        """The fee (yen) per kind in force here (no personal data)."""
        with self._b.session(write=False) as s:
            return {k: self._fee(s, k) for k in rules.KINDS}

    def set_fee(self, kind: str, yen: int, *, actor: Actor,
                now: dt.datetime | None = None) -> int:
        """Set this municipality's fee for ``kind``: the policy setting
        ``fee.card_KIND`` (admins: ``policy.configure``, audited as every setting)."""
        self._gate.precheck(actor, perm.CONFIGURE)
        kind = rules.check_kind(kind)
        if isinstance(yen, bool) or not isinstance(yen, int):
            raise InvalidInputError("a fee is a whole number of yen")
        return int(self._gate.configure(actor, f"fee.{rules.fee_service(kind)}", str(yen),
                                        now=now))

    def content_digest(self) -> str:
        """SHA-256 over the cards (equal digests: nothing changed; the fees are policy
        settings, in the register's digest)."""
        with self._b.session(write=False) as s:
            return content_digest(s, [f"{_SELECT} ORDER BY card_id"])

    def counts(self) -> dict[str, int]:
        """Cards per stored state (no personal data)."""
        with self._b.session(write=False) as s:
            got = dict(s.query("SELECT state, count(*) FROM cards GROUP BY state"))
        return {st: int(got.get(st, 0)) for st in rules.STATES}


def _typed(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "resident_code": int(c["resident_code"])} for c in cards]

