"""The special move-in/out (転入転出の特例, 住民基本台帳法 第24条の2): both ends.

**At the old municipality A** (:meth:`SpecialMoves.move_out`): a move-out filed by mail
or online by a holder of a My Number card or a resident register card names the planned
move-out date, the new municipality B, the new address and the card. In one transaction
A applies the usual ``move_out`` notification (planned date; the record becomes a 除票,
the card records ``moved_out_on``), keeps the move-out data (転出証明書情報: the record's
items the move-out certificate carries, frozen as canonical JSON with its SHA-256) for B
alone, and writes its audit entry.

**At the new municipality B** (:meth:`SpecialMoves.move_in`): the resident comes to the
counter with the card and its PIN, within 14 days of arrival and within 30 days of the
planned move-out date. B fetches the data from A (:data:`FETCH_PATH`; A checks that the
caller is the municipality the move-out named, the card is the one filed, the windows,
and the PIN, through :meth:`jukicore.cards.Cards.verify_pin_special_move` with A's pin
key: the PIN hash lives where the card was issued), then records in ONE transaction the
usual ``move_in`` notification (the same resident code, continuing), the My Number card's
continued use (:meth:`jukicore.cards.Cards.continue_use_in`: the card is recorded at B,
its PIN, just checked by A, hashed under B's pin key) and the pending confirmation. It
then confirms to A (:data:`CONFIRM_PATH`); A closes the move-out (final; its data is
dropped and never served again; a move-out date after the arrival is redated to it by
the usual ``move_out_correction``) in one transaction, and B marks the confirmation
done.

**Crashes.** A failure before B's commit (the fetch refused or unreachable) leaves
nothing at B. A failure after it leaves the move-in recorded with its confirmation
pending: :func:`resume` (``jukicore move resume``) sends every pending confirmation
again. A's confirmation is idempotent (the same move-in confirmed twice changes nothing
the second time and answers the same); a fetch answers the same data every time while
the move-out is open.

``call(peer_node_id, path, body) -> dict`` is how B reaches A (the network client's
``NodeClient(...).call_json``; in tests :func:`jukicore.network.service.call_local`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from jukicore import audit
from jukicore.access import actors as perm
from jukicore.access.actors import Actor
from jukicore.access.policy import JST, read_detail
from jukicore.cards import Cards, PinKey, rules
from jukicore.cards.pin import node_pin_key
from jukicore.errors import (
    ConflictError,
    InvalidInputError,
    JukiError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.network.service import Peer, Route, ServeContext, json_route
from jukicore.register._checks import fmt_code
from jukicore.register._schema import FOREIGN_ITEMS, HEAD, RECORD_ITEMS
from jukicore.register.store import Register, open_register
from jukicore.store.backend import Session, content_digest, utcnow
from jukicore.validate import check_lg_code, parse_resident_code, text_problem

from ._schema import MOVE_IN_SCHEMA, MOVE_INS, MOVE_OUT_SCHEMA, MOVE_OUTS

__all__ = ["ARRIVAL_DAYS", "CONFIRM_PATH", "FETCH_PATH", "PLANNED_DAYS", "ROUTES", "Call",
           "SpecialMoves", "data_digest", "node_pin_key", "resume"]

#: The special move-in is notified within this many days of the arrival (第22条: 14 days).
ARRIVAL_DAYS = 14
#: ... and within this many days of the planned move-out date (施行令 第24条の2 ... : 30 days).
PLANNED_DAYS = 30
#: A's route: the move-out data, to the municipality the move-out named.
FETCH_PATH = "/v1/special-move/move-out"
#: A's route: B confirms the move-in; A closes the move-out.
CONFIRM_PATH = "/v1/special-move/confirm"
#: How a special move-out was filed.
FILED_BY = ("mail", "online")
#: The version of the move-out data's layout.
DATA_VERSION = 1

Call = Callable[[str, str, dict[str, Any]], Mapping[str, Any]]

_OUT_COLS = tuple(c.name for c in MOVE_OUTS.columns)
_IN_COLS = tuple(c.name for c in MOVE_INS.columns)
_OUT_DATES = frozenset(c.name for c in MOVE_OUTS.columns if c.type == "date")
_IN_DATES = frozenset(c.name for c in MOVE_INS.columns if c.type == "date")
_ID = re.compile(r"[\x21-\x7e]{1,64}")
#: Items of the record the move-out data carries (転出証明書: 住民基本台帳法施行令 第23条,
#: Article 7's items of the record; an assumption from the law, not in the seeds).
_RECORD = ("resident_code", "my_number", "family_name", "given_name", "family_name_kana",
           "given_name_kana", "birth_date", "sex", "household_id", "relationship", "domicile",
           "domicile_head", "postal_code", "address", "resident_since", "address_since",
           "person_id", *RECORD_ITEMS)


_TS = frozenset(c.name for t in (MOVE_OUTS, MOVE_INS) for c in t.columns if c.type == "ts")


def _as_ts(value: Any) -> dt.datetime | None:
    """A stored time as an aware UTC datetime (SQLite keeps text, PostgreSQL naive UTC)."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value))
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _canonical(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def data_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the move-out data's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(_canonical(data).encode()).hexdigest()


def _japan_today() -> dt.date:
    return utcnow().astimezone(JST).date()


def _date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InvalidInputError(f"{what} is a date, not {type(value).__name__}")
    return value


def _iso(value: Any, what: str) -> dt.date:
    """A date of a request's body (ISO text)."""
    if not isinstance(value, str) or len(value) != 10:
        raise InvalidInputError(f"{what}: a date as YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{what}: {value!r} is not a date") from None


def _move_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInputError(f"{what}: 1 to 64 printable ASCII characters, no spaces")
    return value


def _text(value: Any, what: str, limit: int = 300) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} is a text")
    problem = text_problem(value, limit)
    if problem is not None or not value:
        raise InvalidInputError(f"{what}: {problem or 'empty'}")
    return value


def _body(body: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A request body holding exactly ``keys``."""
    extra = sorted(set(body) - set(keys))
    missing = [k for k in keys if k not in body]
    if extra or missing:
        raise InvalidInputError("the request " + "; ".join(
            ([f"lacks {', '.join(missing)}"] if missing else [])
            + ([f"holds unknown items {', '.join(extra)}"] if extra else [])))
    return dict(body)


def _windows(moved_in_on: dt.date, notified_on: dt.date, planned_on: dt.date | None) -> None:
    """The special move-in's two windows (both ends check them); ConflictError outside."""
    if moved_in_on > notified_on:
        raise InvalidInputError(f"the arrival ({moved_in_on}) is after the move-in"
                                f" notification ({notified_on})")
    late = (notified_on - moved_in_on).days
    if late > ARRIVAL_DAYS:
        raise ConflictError(f"a special move-in is notified within {ARRIVAL_DAYS} days of the"
                            f" arrival ({moved_in_on}); {notified_on} is day {late}")
    if planned_on is not None:
        after = (notified_on - planned_on).days
        if after > PLANNED_DAYS:
            raise ConflictError(
                f"a special move-in is notified within {PLANNED_DAYS} days of the planned"
                f" move-out date ({planned_on}); {notified_on} is day {after}: the move-in"
                " needs the move-out certificate now")


class SpecialMoves:
    """The special move-in/out at one municipality's register: its move-outs (as the
    old municipality) and its move-ins (as the new one).

    ``pin_key``: the node's pin key (:func:`node_pin_key`): A checks a card's PIN with it,
    B stores a continued My Number card's PIN under it."""

    def __init__(self, register: Register, pin_key: PinKey | None = None) -> None:
        if not isinstance(register, Register):
            raise InvalidInputError("SpecialMoves works on a jukicore Register")
        self._reg = register
        self._b = register._b
        self._gate = register.policy
        self.cards = Cards(register, pin_key)
        self._key = pin_key
        self.lg_code = register.lg_code

    # -- helpers -------------------------------------------------------------------------

    def _today(self, today: dt.date | None, now: dt.datetime | None) -> dt.date:
        if today is not None:
            return _date(today, "today")
        moment = now or utcnow()
        return moment.date() if moment.tzinfo is None else moment.astimezone(JST).date()

    @staticmethod
    def _row(s: Session, table: str, cols: tuple[str, ...], dates: frozenset[str],
             where: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = s.query(f"SELECT {', '.join(cols)} FROM {table} WHERE {where}", params)
        if not rows:
            return None
        out = dict(zip(cols, rows[0], strict=True))
        for k in dates:
            out[k] = s.pd(out[k])
        for k in _TS.intersection(out):
            out[k] = _as_ts(out[k])
        return out

    def _out_row(self, s: Session, move_out_id: str) -> dict[str, Any] | None:
        return self._row(s, "special_move_outs", _OUT_COLS, _OUT_DATES, "move_out_id = ?",
                         (move_out_id,))

    def _in_row(self, s: Session, where: str, params: tuple[Any, ...]
                ) -> dict[str, Any] | None:
        return self._row(s, "special_move_ins", _IN_COLS, _IN_DATES, where, params)

    @staticmethod
    def _public_out(row: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: row[k] for k in MOVE_OUT_SCHEMA.names}
        out["resident_code"] = fmt_code(int(row["resident_code"]))
        return out

    @staticmethod
    def _public_in(row: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: row[k] for k in MOVE_IN_SCHEMA.names}
        out["resident_code"] = fmt_code(int(row["resident_code"]))
        return out

    # -- A: the special move-out ---------------------------------------------------------

    def move_out(self, *, notification_id: str, resident_code: int | str, card_id: str,
                 destination_lg: str, destination: str, planned_on: dt.date,
                 filed_by: str = "mail", filed_on: dt.date | None = None,
                 new_head_code: int | str | None = None, actor: Actor,
                 today: dt.date | None = None, now: dt.datetime | None = None
                 ) -> dict[str, Any]:
        """Record a special move-out (特例転出) filed by mail or online with a card.

        In one transaction: the usual ``move_out`` notification (``notification_id``,
        event date ``planned_on``, notified ``filed_on``, default today; ``new_head_code``
        when a head leaves members behind), and the move-out data kept for
        ``destination_lg`` alone. The card must be the person's and active here. The same
        notification id with the same content again answers the same record (nothing
        changes); with other content it is a ConflictError. Returns the record (never
        its data)."""
        self._gate.precheck(actor, perm.NOTIFY)
        nid = _move_id(notification_id, "notification_id")
        code = parse_resident_code(resident_code)
        cid = rules.check_card_id(card_id)
        m = check_lg_code(destination_lg)
        if destination_lg == self.lg_code:
            raise InvalidInputError("a move within the municipality is a move_within (転居),"
                                    " not a move-out")
        dest = _text(destination, "destination")
        if not any(dest.startswith(f"{m.prefecture}{name}") for name in m.names):
            raise InvalidInputError(f"the destination {dest!r} is not in {m.prefecture}"
                                    f"{m.name} ({destination_lg})")
        if filed_by not in FILED_BY:
            raise InvalidInputError(f"a special move-out is filed by {' or '.join(FILED_BY)}")
        day = self._today(today, now)
        filed = day if filed_on is None else _date(filed_on, "filed_on")
        planned = _date(planned_on, "planned_on")
        head = None if new_head_code is None else parse_resident_code(new_head_code)
        with self._gate.session(actor, perm.NOTIFY, now=now, target=fmt_code(code)) as s:
            prior = self._out_row(s, nid)
            if prior is not None:
                same = (int(prior["resident_code"]), prior["card_id"],
                        prior["destination_lg"], prior["destination"], prior["planned_on"],
                        prior["filed_on"], prior["filed_by"]) == (
                    code, cid, destination_lg, dest, planned, filed, filed_by)
                if not same:
                    raise ConflictError(f"special move-out {nid} was recorded before with"
                                        " other content")
                return self._public_out(prior)
            record = self._record(s, code)
            card = self._filed_card(s, cid, code, day)
            data = self._data(s, record, card, nid=nid, to=destination_lg, destination=dest,
                              planned=planned, filed=filed, filed_by=filed_by)
            row: dict[str, Any] = {
                "notification_id": nid, "kind": "move_out", "resident_code": code,
                "notified_date": filed, "event_date": planned, "destination": dest}
            if head is not None:
                row["new_head_code"] = head
            self._reg.apply_in(s, [row], actor=actor, today=day)
            text = _canonical(data)
            values = {"move_out_id": nid, "resident_code": code, "card_id": cid,
                      "destination_lg": destination_lg, "destination": dest,
                      "planned_on": planned, "filed_on": filed, "filed_by": filed_by,
                      "state": "open", "data": text, "data_digest": data_digest(data),
                      "fetches": 0, "filed_at": utcnow(), "closed_at": None,
                      "move_in_id": None, "moved_in_on": None, "move_in_notified_on": None,
                      "corrected": None}
            self._insert(s, "special_move_outs", _OUT_COLS, _OUT_DATES, values)
            values = self._out_row(s, nid) or values  # as stored (times to the microsecond)
            audit.write(s, actor, "special_move.out", fmt_code(code),
                        f"special move-out filed by {filed_by} with card {cid}: to"
                        f" {destination_lg}, planned {planned.isoformat()}",
                        notification_id=nid)
            return self._public_out(values)

    @staticmethod
    def _insert(s: Session, table: str, cols: tuple[str, ...], dates: frozenset[str],
                values: Mapping[str, Any]) -> None:
        def db(k: str, v: Any) -> Any:
            if v is None:
                return None
            if k in dates:
                return s.d(v)
            return s.ts(v) if isinstance(v, dt.datetime) else v

        s.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES"
                  f" ({', '.join('?' * len(cols))})", [db(c, values[c]) for c in cols])

    @staticmethod
    def _record(s: Session, code: int) -> dict[str, Any]:
        rows = s.query(f"SELECT {', '.join(_RECORD)} FROM residents WHERE resident_code = ?"
                       " AND status = 'resident'", (code,))
        if not rows:
            raise NotFoundError(f"no current resident with resident code {fmt_code(code)}")
        return dict(zip(_RECORD, rows[0], strict=True))

    def _filed_card(self, s: Session, cid: str, code: int, day: dt.date) -> dict[str, Any]:
        rows = s.query("SELECT kind, resident_code, state, issuer, issued_on, expires_on,"
                       " moved_out_on FROM cards WHERE card_id = ?", (cid,))
        if not rows:
            raise NotFoundError(f"no card {cid} in the register of {self.lg_code}")
        kind, holder, state, issuer, issued, expires, moved = rows[0]
        if int(holder) != code:
            raise ConflictError(f"card {cid} is not {fmt_code(code)}'s")
        state = rules.effective_state(str(state), s.pd(expires), day)
        if state != rules.ACTIVE or moved is not None:
            raise ConflictError(f"card {cid} is {state if moved is None else 'moved out'}:"
                                " a special move-out is filed with an active card")
        return {"card_id": cid, "kind": str(kind), "issuer": str(issuer),
                "issued_on": s.pd(issued), "expires_on": s.pd(expires)}

    def _data(self, s: Session, record: dict[str, Any], card: dict[str, Any], *, nid: str,
              to: str, destination: str, planned: dt.date, filed: dt.date,
              filed_by: str) -> dict[str, Any]:
        """The move-out data (転出証明書情報) of ``record``: what B's move-in needs, as
        JSON values (dates ISO, codes zero-padded)."""
        def js(v: Any) -> Any:
            return v.isoformat() if isinstance(v, dt.date) else v

        hh = s.query("SELECT r.family_name, r.given_name FROM households h JOIN residents r"
                     " ON r.person_id = h.head_person_id WHERE h.household_id = ?",
                     (record["household_id"],))
        head_name = f"{hh[0][0]} {hh[0][1]}" if hh else None
        person = {k: js(record[k]) for k in _RECORD
                  if k not in ("person_id", "household_id", *RECORD_ITEMS)}
        person["resident_code"] = fmt_code(int(record["resident_code"]))
        person["my_number"] = fmt_code(record["my_number"], 12)
        person["sex"] = int(record["sex"])
        person["household_head"] = (None if record["relationship"] == HEAD else head_name)
        return {
            "version": DATA_VERSION, "move_out_id": nid, "from": self.lg_code,
            "from_name": f"{self._reg.prefecture}{self._reg.municipality}", "to": to,
            "destination": destination, "planned_on": planned.isoformat(),
            "filed_on": filed.isoformat(), "filed_by": filed_by, "person": person,
            "items": {k: js(record[k]) for k in RECORD_ITEMS if record[k] is not None},
            "card": {k: js(v) for k, v in card.items()},
        }

    # -- A: the routes' work -------------------------------------------------------------

    def serve_fetch(self, peer: str, body: Mapping[str, Any], *, actor: Actor
                    ) -> dict[str, Any]:
        """A's answer to B's fetch (:data:`FETCH_PATH`): the move-out data of the resident
        ``body["resident_code"]``, to the municipality the move-out named only, after
        the windows and the card's PIN were checked. Refused: no such move-out
        (NotFoundError), another municipality or another card (PermissionDeniedError,
        audited as a denial; no PIN attempt spent), a move-out closed or outside the
        windows (ConflictError), a wrong PIN (PermissionDeniedError; the attempt counts
        toward the card's lock, as at a counter)."""
        self._gate.precheck(actor, perm.SPECIAL_MOVE)
        b = _body(body, ("resident_code", "card_id", "pin", "moved_in_on", "notified_on"))
        code = parse_resident_code(b["resident_code"])
        cid = rules.check_card_id(b["card_id"])
        pin = rules.check_pin(b["pin"])
        moved_in = _iso(b["moved_in_on"], "moved_in_on")
        notified = _iso(b["notified_on"], "notified_on")
        self._not_future(notified)
        with self._gate.session(actor, perm.SPECIAL_MOVE, target=fmt_code(code),
                                write=False) as s:
            row = self._open_for(s, code, peer)
            if row["card_id"] != cid:
                self._gate.deny(f"card {cid} is not the card special move-out"
                                f" {row['move_out_id']} was filed with")
            if notified < row["filed_on"]:
                raise InvalidInputError(f"the move-in notification ({notified}) is before"
                                        f" the move-out was filed ({row['filed_on']})")
            _windows(moved_in, notified, row["planned_on"])
        if self._key is None:
            raise InvalidInputError(f"node {self.lg_code} has no pin key: it cannot check a"
                                    " card's PIN")
        # the card as of the day of the move-in notification (B's date, bounded above by
        # the filing and the windows): a card valid that day serves
        holder = self.cards.verify_pin_special_move(
            cid, pin, actor=actor, now=dt.datetime.combine(notified, dt.time(12), JST))
        if holder != code:  # the card changed holders meanwhile: never the data
            raise PermissionDeniedError(f"card {cid} is not {fmt_code(code)}'s")
        with self._gate.session(actor, perm.SPECIAL_MOVE, target=fmt_code(code)) as s:
            row = self._open_for(s, code, peer)
            s.execute("UPDATE special_move_outs SET fetches = fetches + 1 WHERE"
                      " move_out_id = ? AND state = 'open'", (row["move_out_id"],))
            audit.write(s, actor, "special_move.provide", fmt_code(code),
                        f"move-out data to {peer} (card {cid} and its PIN checked;"
                        f" arrival {moved_in}, notified {notified})",
                        notification_id=row["move_out_id"])
        return {"move_out_id": row["move_out_id"], "from": self.lg_code,
                "data": json.loads(row["data"]), "data_digest": row["data_digest"]}

    @staticmethod
    def _not_future(day: dt.date) -> None:
        """A date the caller states, no later than tomorrow by this node's clock (Japan)."""
        if day > _japan_today() + dt.timedelta(days=1):
            raise InvalidInputError(f"{day} is in the future")

    def _open_for(self, s: Session, code: int, peer: str) -> dict[str, Any]:
        """The special move-out of ``code`` (the latest), for ``peer``, still open."""
        rows = s.query("SELECT move_out_id FROM special_move_outs WHERE resident_code = ?"
                       " ORDER BY filed_at DESC, move_out_id DESC", (code,))
        if not rows:
            raise NotFoundError(f"no special move-out of {fmt_code(code)} at {self.lg_code}")
        row = self._out_row(s, str(rows[0][0]))
        assert row is not None
        if row["destination_lg"] != peer:
            self._gate.deny(f"special move-out {row['move_out_id']} names"
                            f" {row['destination_lg']}, not {peer}")
        if row["state"] != "open":
            raise ConflictError(f"special move-out {row['move_out_id']} is closed: its data"
                                " is not served again")
        return row

    def serve_confirm(self, peer: str, body: Mapping[str, Any], *, actor: Actor
                      ) -> dict[str, Any]:
        """A's answer to B's confirmation (:data:`CONFIRM_PATH`): close the move-out in one
        transaction (final; its data dropped; a planned date after the arrival redated to
        the arrival by a ``move_out_correction``). Idempotent: the same confirmation
        again changes nothing and answers the same; another move-in for a closed
        move-out is a ConflictError."""
        self._gate.precheck(actor, perm.SPECIAL_MOVE)
        b = _body(body, ("move_out_id", "resident_code", "move_in_id", "moved_in_on",
                         "notified_on", "data_digest"))
        mid = _move_id(b["move_out_id"], "move_out_id")
        code = parse_resident_code(b["resident_code"])
        in_id = _move_id(b["move_in_id"], "move_in_id")
        moved_in = _iso(b["moved_in_on"], "moved_in_on")
        notified = _iso(b["notified_on"], "notified_on")
        digest = b["data_digest"]
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise InvalidInputError("data_digest: 64 hexadecimal digits")
        self._not_future(notified)
        with self._gate.session(actor, perm.SPECIAL_MOVE, target=fmt_code(code)) as s:
            row = self._out_row(s, mid)
            if row is None or int(row["resident_code"]) != code:
                raise NotFoundError(f"no special move-out {mid} of {fmt_code(code)} at"
                                    f" {self.lg_code}")
            if row["destination_lg"] != peer:
                self._gate.deny(f"special move-out {mid} names {row['destination_lg']},"
                                f" not {peer}")
            if row["data_digest"] != digest:
                raise ConflictError(f"the data confirmed is not the data of special move-out"
                                    f" {mid}")
            if row["state"] == "closed":
                if (row["move_in_id"], row["moved_in_on"], row["move_in_notified_on"]) != (
                        in_id, moved_in, notified):
                    raise ConflictError(f"special move-out {mid} was closed by another"
                                        f" move-in ({row['move_in_id']})")
                return self._closed_answer(row)
            if not row["fetches"]:
                raise ConflictError(f"special move-out {mid}: its data was never fetched (the"
                                    " card's PIN never checked): nothing to confirm")
            if moved_in > notified:
                raise InvalidInputError("the arrival is after the move-in notification")
            corrected = 0
            detail = ""
            if moved_in < row["planned_on"]:
                try:
                    self._reg.apply_in(s, [{
                        "notification_id": _correction_id(mid), "kind": "move_out_correction",
                        "resident_code": code, "notified_date": notified,
                        "event_date": moved_in}], actor=actor, today=notified)
                    corrected = 1
                    detail = f"; the move-out date redated from {row['planned_on']}"
                except (ConflictError, InvalidInputError, NotFoundError) as exc:
                    detail = f"; the move-out date kept ({exc})"
            closed = utcnow()
            s.execute("UPDATE special_move_outs SET state = 'closed', data = NULL,"
                      " closed_at = ?, move_in_id = ?, moved_in_on = ?,"
                      " move_in_notified_on = ?, corrected = ? WHERE move_out_id = ?",
                      (s.ts(closed), in_id, s.d(moved_in), s.d(notified), corrected, mid))
            audit.write(s, actor, "special_move.close", fmt_code(code),
                        f"closed on the move-in {in_id} at {peer} (arrival {moved_in},"
                        f" notified {notified}){detail}", notification_id=mid)
            row.update(state="closed", move_in_id=in_id, moved_in_on=moved_in,
                       move_in_notified_on=notified, corrected=corrected)
            return self._closed_answer(row)

    @staticmethod
    def _closed_answer(row: Mapping[str, Any]) -> dict[str, Any]:
        kept = row["moved_in_on"] if row["corrected"] else row["planned_on"]
        return {"move_out_id": row["move_out_id"], "state": "closed",
                "removal_date": kept.isoformat(), "corrected": bool(row["corrected"])}

    # -- B: the special move-in ----------------------------------------------------------

    def move_in(self, *, notification_id: str, from_lg: str, resident_code: int | str,
                card_id: str, pin: str, moved_in_on: dt.date, postal_code: str, town: str,
                street: str, building: str | None = None, household_id: int | None = None,
                relationship: str | None = None, call: Call, actor: Actor,
                today: dt.date | None = None, now: dt.datetime | None = None
                ) -> dict[str, Any]:
        """The special move-in (特例転入) at this municipality's counter.

        ``today`` is the day of the notification; ``moved_in_on`` the arrival. The
        resident presents ``card_id`` and enters ``pin``; ``from_lg`` is the municipality
        they moved out of, ``resident_code`` the code the card holds. The new address
        (``postal_code``, ``town``, ``street``, ``building``) and household
        (``household_id`` to join one, with ``relationship``; else a new household
        headed by the resident) are as for a ``move_in``.

        Refused before anything is written anywhere: bad input, outside the windows
        (ConflictError), and every refusal of A's (:meth:`serve_fetch`). The move-in, the
        card's continued use and the pending confirmation are one transaction; then the
        confirmation is sent: the answer says ``state`` ``confirmed``, or ``pending``
        with the ``error`` that stopped it (resent by :func:`resume`). The same
        notification id again answers the same record (and resends a pending
        confirmation)."""
        self._gate.precheck(actor, perm.NOTIFY)
        self._gate.precheck(actor, perm.CARD_ISSUE)
        nid = _move_id(notification_id, "notification_id")
        check_lg_code(from_lg)
        origin = str(from_lg)
        if origin == self.lg_code:
            raise InvalidInputError("a special move-in comes from another municipality")
        code = parse_resident_code(resident_code)
        cid = rules.check_card_id(card_id)
        rules.check_pin(pin)
        day = self._today(today, now)
        arrival = _date(moved_in_on, "moved_in_on")
        _windows(arrival, day, None)
        if self._key is None:
            raise InvalidInputError("the special move-in needs this node's pin key (the"
                                    " continued card's PIN is stored under it)")
        counter: dict[str, Any] = {"postal_code": postal_code, "town": town, "street": street,
                                   "building": building, "household_id": household_id,
                                   "relationship": relationship}
        with self._b.session(write=False) as s:
            prior = self._in_row(s, "move_in_id = ?", (nid,))
            if prior is None:
                other = self._in_row(s, "from_lg = ? AND resident_code = ?", (origin, code))
                if other is not None:
                    raise ConflictError(f"{fmt_code(code)} moved in from {origin} by special"
                                        f" move-in {other['move_in_id']} already")
        if prior is not None:
            same = (prior["from_lg"], int(prior["resident_code"]), prior["card_id"],
                    prior["moved_in_on"], prior["notified_on"]) == (origin, code, cid,
                                                                     arrival, day)
            if not same:
                raise ConflictError(f"special move-in {nid} was recorded before with other"
                                    " content")
            if prior["state"] == "pending":
                return self._confirm(prior, call, actor, now)
            return self._public_in(prior)
        self._check_counter(nid, counter, day)
        answer = call(origin, FETCH_PATH, {
            "resident_code": fmt_code(code), "card_id": cid, "pin": pin,
            "moved_in_on": arrival.isoformat(), "notified_on": day.isoformat()})
        data, mid, digest = self._check_answer(answer, origin, code, cid)
        planned = _iso(data.get("planned_on"), "the data's planned_on")
        if day < _iso(data.get("filed_on"), "the data's filed_on"):
            raise ConflictError("the move-in is notified before the move-out was filed")
        _windows(arrival, day, planned)
        card = data["card"]
        continued = card.get("kind") == rules.MYNUMBER
        stored = self._key.hash(cid, pin) if continued else None
        row = _move_in_row(data, origin, nid=nid, day=day, arrival=arrival, code=code,
                           counter=counter)
        with self._gate.session(actor, perm.NOTIFY, now=now, target=fmt_code(code)) as s:
            if self._in_row(s, "move_in_id = ? OR (from_lg = ? AND move_out_id = ?)",
                            (nid, origin, mid)) is not None:
                raise ConflictError(f"special move-out {mid} of {origin} was moved in here"
                                    " already (a concurrent request)")
            self._reg.apply_in(s, [row], actor=actor, today=day)
            if continued:
                self.cards.continue_use_in(
                    s, actor, cid, code=code, document="mynumber_card", day=day,
                    issued_on=_iso(card.get("issued_on"), "the card's issued_on"),
                    stored=stored, key=self._key)
            values = {"move_in_id": nid, "from_lg": origin, "move_out_id": mid,
                      "resident_code": code, "card_id": cid, "moved_in_on": arrival,
                      "notified_on": day, "planned_on": planned, "data_digest": digest,
                      "card_continued": int(continued), "state": "pending", "attempts": 0,
                      "last_error": None, "recorded_at": utcnow(), "confirmed_at": None,
                      "removal_date": None}
            self._insert(s, "special_move_ins", _IN_COLS, _IN_DATES, values)
            audit.write(s, actor, "special_move.in", fmt_code(code),
                        f"special move-in from {origin} (move-out {mid}, planned {planned});"
                        f" arrival {arrival}; card {cid} "
                        + ("continues (My Number card)" if continued else
                           "does not continue (a resident register card)"),
                        notification_id=nid)
        return self._confirm(values, call, actor, now)

    def _check_counter(self, nid: str, counter: dict[str, Any], day: dt.date) -> None:
        """The counter's part of the move-in (address, household), checked by the
        register's one validation before A is asked (a typo costs no fetch)."""
        from jukicore.register import KINDS
        from jukicore.register.store import _normalize_events
        from jukicore.validate import find_problems

        row = {"notification_id": nid, "kind": "move_in", "notified_date": day,
               "event_date": day, **{k: v for k, v in counter.items() if v is not None}}
        table, bad = _normalize_events([row])
        mine = set(counter)
        problems = [p for p in [*bad, *find_problems(table, today=day, lg_code=self.lg_code,
                                                      kinds=KINDS)] if p.column in mine]
        if problems:
            raise InvalidInputError("the move-in's address or household is not valid",
                                    problems)
        full = (f"{self._reg.prefecture}{self._reg.municipality}{counter['town']}"
                f"{counter['street']}" + (f" {counter['building']}" if counter["building"]
                                          else ""))
        hid = counter["household_id"]
        with self._b.session(write=False) as s:
            hh = [] if hid is None else s.query(
                "SELECT address FROM households WHERE household_id = ?"
                " AND dissolved_on IS NULL", (int(hid),))
        if hh and hh[0][0] != full:
            raise ConflictError(f"household {hid} lives at another address")
        if not hh and counter["relationship"] not in (None, HEAD):
            raise ConflictError("a new household's first member is its head (世帯主): name"
                                " the household to join (household_id)")

    @staticmethod
    def _check_answer(answer: Mapping[str, Any], origin: str, code: int, cid: str
                      ) -> tuple[dict[str, Any], str, str]:
        try:
            data, mid, digest = answer["data"], answer["move_out_id"], answer["data_digest"]
            ok = (isinstance(data, dict) and isinstance(data.get("person"), dict)
                  and isinstance(data.get("card"), dict) and isinstance(mid, str))
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise InvalidInputError(f"{origin} answered no move-out data")
        _move_id(mid, "the answer's move_out_id")
        if data_digest(data) != digest:
            raise ConflictError(f"the move-out data from {origin} does not match its digest")
        if data.get("from") != origin or data.get("move_out_id") != mid:
            raise ConflictError(f"the move-out data is not {origin}'s move-out {mid}")
        if data["person"].get("resident_code") != fmt_code(code) or \
                data["card"].get("card_id") != cid:
            raise ConflictError("the move-out data is of another person or card")
        return data, mid, str(digest)

    def _confirm(self, row: Mapping[str, Any], call: Call, actor: Actor,
                 now: dt.datetime | None) -> dict[str, Any]:
        """Send the confirmation of a pending move-in; record its outcome."""
        body = {"move_out_id": row["move_out_id"],
                "resident_code": fmt_code(int(row["resident_code"])),
                "move_in_id": row["move_in_id"],
                "moved_in_on": row["moved_in_on"].isoformat(),
                "notified_on": row["notified_on"].isoformat(),
                "data_digest": row["data_digest"]}
        nid = str(row["move_in_id"])
        target = fmt_code(int(row["resident_code"]))
        try:
            answer = call(str(row["from_lg"]), CONFIRM_PATH, body)
            if not isinstance(answer, Mapping):
                raise ConflictError(f"{row['from_lg']} answered no confirmation")
            removal = _iso(answer.get("removal_date"), "the answer's removal_date")
            if answer.get("state") != "closed" or answer.get("move_out_id") != row[
                    "move_out_id"]:
                raise ConflictError(f"{row['from_lg']} did not close move-out"
                                    f" {row['move_out_id']}")
        except JukiError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            with self._gate.session(actor, perm.NOTIFY, now=now, target=target) as s:
                s.execute("UPDATE special_move_ins SET attempts = attempts + 1,"
                          " last_error = ? WHERE move_in_id = ? AND state = 'pending'",
                          (error, nid))
                audit.write(s, actor, "special_move.confirm_pending", target,
                            f"confirmation to {row['from_lg']} not delivered: {error}",
                            notification_id=nid)
                got = self._in_row(s, "move_in_id = ?", (nid,))
            assert got is not None
            return self._public_in(got)
        with self._gate.session(actor, perm.NOTIFY, now=now, target=target) as s:
            done = s.query("UPDATE special_move_ins SET state = 'confirmed', last_error ="
                           " NULL, confirmed_at = ?, removal_date = ? WHERE move_in_id = ?"
                           " AND state = 'pending' RETURNING move_in_id",
                           (s.ts(utcnow()), s.d(removal), nid))
            if done:
                audit.write(s, actor, "special_move.confirmed", target,
                            f"{row['from_lg']} closed move-out {row['move_out_id']}"
                            f" (move-out date {removal})", notification_id=nid)
            got = self._in_row(s, "move_in_id = ?", (nid,))
        assert got is not None
        return self._public_in(got)

    def resume(self, call: Call, *, actor: Actor, now: dt.datetime | None = None
               ) -> pa.Table:
        """Send every pending confirmation again (after a crash or an outage between B's
        commit and A's confirmation), oldest first. Returns the move-ins it tried
        (:data:`MOVE_IN_SCHEMA`), each with its state now."""
        self._gate.precheck(actor, perm.NOTIFY)
        with self._gate.session(actor, perm.NOTIFY, now=now, write=False) as s:
            ids = [str(r[0]) for r in s.query(
                "SELECT move_in_id FROM special_move_ins WHERE state = 'pending'"
                " ORDER BY recorded_at, move_in_id")]
            rows = [self._in_row(s, "move_in_id = ?", (i,)) for i in ids]
        out = [self._confirm(r, call, actor, now) for r in rows if r is not None]
        return _table(out, MOVE_IN_SCHEMA)

    # -- reads ---------------------------------------------------------------------------

    def move_outs(self, *, actor: Actor, now: dt.datetime | None = None,
                  purpose: str | None = None) -> pa.Table:
        """The special move-outs filed here (:data:`MOVE_OUT_SCHEMA`; never their data):
        a read of personal data, audited."""
        return self._list("special_move_outs", MOVE_OUT_SCHEMA, _OUT_DATES, "filed_at",
                          actor, now, purpose)

    def move_ins(self, *, actor: Actor, now: dt.datetime | None = None,
                 purpose: str | None = None) -> pa.Table:
        """The special move-ins recorded here (:data:`MOVE_IN_SCHEMA`), pending or
        confirmed: a read of personal data, audited."""
        return self._list("special_move_ins", MOVE_IN_SCHEMA, _IN_DATES, "recorded_at",
                          actor, now, purpose)

    def _list(self, table: str, schema: pa.Schema, dates: frozenset[str], order: str,
              actor: Actor, now: dt.datetime | None, purpose: str | None) -> pa.Table:
        self._gate.precheck(actor, perm.READ)
        cols = tuple(schema.names)
        with self._gate.session(actor, perm.READ, now=now) as s:
            rows = []
            for r in s.query(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}, 1"):
                d = dict(zip(cols, r, strict=True))
                for k in dates:
                    d[k] = s.pd(d[k])
                for k in _TS.intersection(d):
                    d[k] = _as_ts(d[k])
                rows.append(d)
            self._gate.charge(s, actor, perm.READ, len(rows))
            audit.write(s, actor, "register.read", None,
                        read_detail(table.replace("_", " "), len(rows), purpose))
        return pa.Table.from_pylist(rows, schema=schema)

    def content_digest(self) -> str:
        """SHA-256 over the register (:meth:`Register.content_digest`), its cards and both
        tables of the special move-in/out: equal digests mean nothing changed."""
        with self._b.session(write=False) as s:
            mine = content_digest(s, [
                f"SELECT {', '.join(_OUT_COLS)} FROM special_move_outs ORDER BY move_out_id",
                f"SELECT {', '.join(_IN_COLS)} FROM special_move_ins ORDER BY move_in_id"])
        both = f"{self._reg.content_digest()}{self.cards.content_digest()}{mine}"
        return hashlib.sha256(both.encode()).hexdigest()


def _move_in_row(data: Mapping[str, Any], origin: str, *, nid: str, day: dt.date,
                 arrival: dt.date, code: int, counter: Mapping[str, Any]) -> dict[str, Any]:
    """The ``move_in`` notification of the move-out data and the counter's input; data
    malformed by the old municipality is an InvalidInputError naming it (the register's
    validation then checks every value, as for any move-in)."""
    try:
        person = data["person"]
        row: dict[str, Any] = {
            "notification_id": nid, "kind": "move_in", "notified_date": day,
            "event_date": arrival, "resident_code": code,
            "previous_address": person.get("address"),
            **{k: person.get(k) for k in ("family_name", "given_name", "family_name_kana",
                                          "given_name_kana", "domicile", "domicile_head")},
            "birth_date": _iso(person.get("birth_date"), "the data's birth_date"),
            "sex": person.get("sex"),
            "my_number": None if person.get("my_number") is None else int(person["my_number"]),
            **{k: v for k, v in counter.items() if v is not None},
        }
        if "relationship" not in row:
            row["relationship"] = HEAD
        items = data.get("items") or {}
        if not isinstance(items, dict):
            raise TypeError("the items are not an object")
        for k in FOREIGN_ITEMS:  # the person's status travels; Article 7's enrolments
            if items.get(k) is not None:  # (insurance, pension ...) begin anew here
                row[k] = (_iso(items[k], f"the data's {k}") if k == "stay_expires_on"
                          else items[k])
    except InvalidInputError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"the move-out data from {origin} is malformed"
                                f" ({type(exc).__name__}: {exc})") from None
    return row


def _correction_id(move_out_id: str) -> str:
    """The id of the move-out correction a confirmation applies (one per move-out)."""
    return "special-move-correction-" + hashlib.sha256(move_out_id.encode()).hexdigest()[:32]


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([{**r, "resident_code": int(r["resident_code"])}
                                 for r in rows], schema=schema)


def resume(register: Register, call: Call, *, actor: Actor,
           now: dt.datetime | None = None) -> pa.Table:
    """:meth:`SpecialMoves.resume` (no pin key needed): every pending confirmation again."""
    return SpecialMoves(register).resume(call, actor=actor, now=now)


# -- the routes (A serves them to B) ------------------------------------------------------


def _node_actor(ctx: ServeContext) -> Actor:
    return Actor.node(ctx.node_id, ctx.node_id, "cs")


def _fetch(ctx: ServeContext, peer: Peer, body: dict[str, Any]) -> dict[str, Any]:
    with open_register(ctx.node.store_target()) as reg:
        key = node_pin_key(ctx.node.path)
        return SpecialMoves(reg, key).serve_fetch(peer.id, body, actor=_node_actor(ctx))


def _confirm(ctx: ServeContext, peer: Peer, body: dict[str, Any]) -> dict[str, Any]:
    with open_register(ctx.node.store_target()) as reg:
        return SpecialMoves(reg).serve_confirm(peer.id, body, actor=_node_actor(ctx))


#: The special move-in/out's services: served by a municipality, called by a municipality.
ROUTES: tuple[Route, ...] = (
    json_route(FETCH_PATH, _fetch, callers=("municipality",), serves=("municipality",),
               name="special-move-out"),
    json_route(CONFIRM_PATH, _confirm, callers=("municipality",), serves=("municipality",),
               name="special-move-confirm"),
)
