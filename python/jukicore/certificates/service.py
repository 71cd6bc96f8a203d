"""Issuing certificates of residence at a municipality's counter, from its register."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jukicore import audit
from jukicore.access import actors as perm
from jukicore.access.actors import Actor
from jukicore.access.policy import JST, read_detail
from jukicore.errors import ConflictError, InvalidInputError, NotFoundError
from jukicore.register._schema import RESIDENT_SCHEMA, RETENTION_YEARS
from jukicore.store.backend import Session, rows_to_arrow, utcnow

from .compose import (
    CardHolder,
    CardPin,
    Composition,
    PinVerifier,
    Requester,
    Right,
    card_holder,
    compose,
    full_name,
    judge_right,
)
from .items import expand_items
from .payload import Payload, digest, encode_payload, qr_png
from .render import render_pdf
from .schema import ISSUANCE_SCHEMA, ISSUANCE_TABLE, WIDE_REQUEST_TABLE
from .sign import sign_pdf

if TYPE_CHECKING:
    from cryptography import x509

    from jukicore.network.crypto import NodeKeys
    from jukicore.register import Register

__all__ = ["Certificates", "Issued"]

#: Most members one certificate may hold (a household larger than this is issued in parts).
MAX_MEMBERS = 20
_COLS = ", ".join(RESIDENT_SCHEMA.names)


@dataclass(frozen=True)
class Issued:
    """A certificate issued: the signed PDF, its record (one row of
    :data:`~jukicore.certificates.schema.ISSUANCE_SCHEMA`) and its QR payload."""

    pdf: bytes
    record: pa.Table
    payload: bytes

    @property
    def issuance_id(self) -> str:
        return str(self.record.column("issuance_id")[0].as_py())


def _records(s: Session, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    rows = s.query(f"SELECT {_COLS} FROM residents WHERE {where}", params)
    return rows_to_arrow(rows, RESIDENT_SCHEMA).to_pylist() if rows else []


def _current(s: Session, code: int) -> dict[str, Any] | None:
    found = _records(s, "resident_code = ? AND status = 'resident'", (code,))
    return found[0] if found else None


def _latest_removed(s: Session, code: int) -> dict[str, Any] | None:
    found = _records(s, "resident_code = ? AND status = 'removed'", (code,))
    if not found:
        return None
    return max(found, key=lambda r: (r["removal_date"] or dt.date.min, r["person_id"]))


def _home(home: object, own: str) -> str:
    """The residence municipality of a wide-area request: another municipality's code."""
    from jukicore.network.node import role_of

    if not isinstance(home, str) or role_of(home) != "municipality":
        raise InvalidInputError("home is the local government code of a municipality")
    if home == own:
        raise InvalidInputError("a resident of this municipality gets a certificate from its"
                                " register (issue), not by a wide-area request")
    return home


def _codes_of(who: int | str | Sequence[int | str]) -> list[int]:
    from jukicore.validate import parse_resident_code

    many = list(who) if isinstance(who, list | tuple) else [who]
    if not many:
        raise InvalidInputError("a certificate needs at least one resident code")
    if len(many) > MAX_MEMBERS:
        raise InvalidInputError(f"at most {MAX_MEMBERS} members per certificate")
    codes = [parse_resident_code(c) for c in many]
    if len(set(codes)) != len(codes):
        raise InvalidInputError("a member is named twice")
    return codes


class Certificates:
    """The counter's certificates of residence at one municipality.

    ``register``: the municipality's :class:`~jukicore.register.Register`; ``keys``: its
    node's current key generation (:class:`~jukicore.network.crypto.NodeKeys`, node id =
    the register's local government code), which signs the PDFs and the QR payloads;
    ``mayor``: the certifier as printed (default ``<municipality>長``; give the title and
    name, e.g. 「千代田区長　山田　一郎」); ``office``: a line printed under it;
    ``certificate``: the node's X.509 certificate (default:
    :func:`jukicore.network.x509.node_certificate` of ``keys``, valid from
    ``key_valid_from``)."""

    def __init__(self, register: Register, keys: NodeKeys, *, mayor: str | None = None,
                 office: str | None = None, certificate: x509.Certificate | None = None,
                 key_valid_from: dt.datetime | None = None,
                 cards: PinVerifier | None = None) -> None:
        from jukicore.network.x509 import node_certificate

        if keys.node_id != register.lg_code:
            raise ConflictError(f"the keys are node {keys.node_id}'s, not the register's"
                                f" ({register.lg_code})")
        self.register = register
        self.keys = keys
        self.municipality = f"{register.prefecture}{register.municipality}"
        self.mayor = (mayor or f"{self.municipality}長").strip()
        if not self.mayor or len(self.mayor) > 100:
            raise InvalidInputError("the certifier (mayor) is 1 to 100 characters")
        self.office = office
        #: the cards service that checks a requester's card + PIN (``jukicore.cards.Cards``
        #: of this register); without it a CardPin requester is refused
        self.cards = cards
        self.certificate = certificate or node_certificate(
            keys, "municipality", valid_from=key_valid_from
            or dt.datetime(2000, 1, 1, tzinfo=dt.UTC))

    # -- issuing -------------------------------------------------------------------------

    def issue(self, who: int | str | Sequence[int | str], *, requester: Requester,
              actor: Actor, items: Iterable[str] | str = (), household: bool = False,
              removed: bool = False, now: dt.datetime | None = None) -> Issued:
        """Issue a certificate of ``who``: one resident code (the person; with
        ``household``, the person's whole household), or several codes of one household
        (chosen members). ``removed``: a copy of the removed record(s) (除票の写し) instead
        of the current one. ``items``: the optional items asked for
        (:data:`~jukicore.certificates.items.OPTIONAL_ITEMS`, or the groups ``article7``
        and ``foreign``); everything else is omitted.

        The requester's right is checked against the register: the person, a member of
        the person's current household, or a proxy with a letter of attorney for one of
        them; My Number only for the person or their household asking themselves. A
        refusal changes nothing but its ``access.denied`` audit entry
        (:class:`~jukicore.errors.PermissionDeniedError`); bad input changes nothing
        (:class:`~jukicore.errors.InvalidInputError`); an unknown record is a
        :class:`~jukicore.errors.NotFoundError`.

        In one transaction: the records read (one ``register.read`` entry each, purpose
        the issuance), the fee in force recorded, the certificate composed, rendered,
        its payload signed and drawn as a QR code, the PDF signed (PAdES), the issuance
        recorded and audited (``certificate.issue``)."""
        self.register.policy.precheck(actor, perm.CERTIFY)
        codes = _codes_of(who)
        req = _requester(requester)
        chosen = expand_items(items)
        if isinstance(req.identity, CardPin):
            if self.cards is None:
                raise InvalidInputError("card + PIN needs the cards service: Certificates(...,"
                                        " cards=jukicore.cards.Cards(register, pin_key))")
            # the attempt is counted and audited by the cards service in its own
            # transaction (three wrong ones lock the card), whatever happens next
            holder = card_holder(self.cards, req.identity.card_id, req.identity.pin,
                                 actor=actor, now=now)
            req = replace(requester, identity=holder).checked()
        if household and len(codes) > 1:
            raise InvalidInputError("a whole household is asked for by one member's code")
        scope = "household" if household else "members" if len(codes) > 1 else "person"
        moment = now or utcnow()
        if moment.tzinfo is None:
            raise InvalidInputError("now must be timezone-aware")
        moment = moment.astimezone(dt.UTC).replace(microsecond=0)
        gate = self.register.policy
        with gate.session(actor, perm.CERTIFY, now=now, target=str(codes[0]).zfill(11)) as s:
            members = self._members(s, codes, scope, removed, moment)
            principal, own = self._principal(s, req, removed)
            right = judge_right(req, principal, members, requester_record=own)
            if isinstance(right, str):
                gate.deny(right)
            assert isinstance(right, Right)
            if "my_number" in chosen and right.proxy:
                gate.deny("My Number is shown only to the person or a member of their"
                          " household asking in person, never to a proxy")
            gate.charge(s, actor, perm.READ, len(members))
            head = self._head(s, members[0])
            composition = compose(members, items=chosen,
                                  kind="removed" if removed else "residence",
                                  scope=scope, head=head)  # type: ignore[arg-type]
            number, fee, record, qr_bytes, pdf = self._sign_and_record(
                s, composition, req, right, actor, moment)
            detail_read = read_detail("certificate of residence", None, f"certificate {number}")
            audit.write_many(s, [audit.entry(s, actor, "register.read",
                                             str(c).zfill(11), detail_read)
                                 for c in composition.codes])
            audit.write(s, actor, "certificate.issue", str(composition.codes[0]).zfill(11),
                        f"{number}: {composition.title}, {len(composition.codes)} member(s);"
                        f" items: {','.join(composition.items) or 'none'}; right:"
                        f" {right.label}; identity: {type(req.identity).__name__}; fee {fee}"
                        f" yen; key {self.keys.signing_key_id}")
        return Issued(pdf, record, qr_bytes)

    def issue_wide_area(self, who: int | str, *, home: str, call: Any,
                        requester: Requester, actor: Actor, items: Iterable[str] | str = (),
                        household: bool = False, request_id: str | None = None,
                        now: dt.datetime | None = None) -> Issued:
        """Issue a wide-area certificate (広域交付) of ``who``, a resident of the
        municipality ``home`` (its local government code), asked through ``call``
        (``call(node_id, path, body) -> answer``: the network client's ``call_json``).

        The requester is the person or a member of their household (never a proxy),
        identified here by a :class:`PhotoId` (with the name it shows and their resident
        code) or by their card and PIN (:class:`CardPin`, checked by ``home``, which issued
        the card). ``household``: the whole household; ``items``: among
        :data:`~jukicore.certificates.items.WIDE_AREA_ITEMS` (never the domicile).
        ``request_id``: to resume a request cut off by a crash (default: a new one);
        ``home`` answers the same id with the same data.

        This operator's right to issue (and the hours) is checked before ``home`` is
        asked; a refusal there, or here, changes nothing here but an ``access.denied``
        entry. With ``home``'s answer, in one transaction: the certificate composed
        (``wide_area=True``), rendered, signed with this node's keys, the issuance
        recorded with this municipality's fee (``fee.certificate``) and the request
        (``certificate_wide_request``: one certificate per request id) and audited."""
        from . import wide_area as wide
        from .items import WIDE_AREA_ITEMS

        gate = self.register.policy
        gate.precheck(actor, perm.CERTIFY)
        codes = _codes_of(who)
        if len(codes) != 1:
            raise InvalidInputError("a wide-area certificate is of one person or of their whole"
                                    " household: give one resident code")
        home = _home(home, self.register.lg_code)
        req = _requester(requester)
        chosen = expand_items(items)
        rid = wide.check_request_id(request_id) if request_id is not None else \
            wide.new_request_id(self.register.lg_code, now)
        moment = now or utcnow()
        if moment.tzinfo is None:
            raise InvalidInputError("now must be timezone-aware")
        moment = moment.astimezone(dt.UTC).replace(microsecond=0)
        target = str(codes[0]).zfill(11)
        if req.is_proxy:
            with gate.session(actor, perm.CERTIFY, now=now, target=target):
                gate.deny("a proxy may not ask for a wide-area certificate (広域交付): only the"
                          " person or a member of their household, at the residence"
                          " municipality for a proxy")
        barred = chosen - set(WIDE_AREA_ITEMS)
        if barred:
            with gate.session(actor, perm.CERTIFY, now=now, target=target):
                gate.deny("a wide-area certificate (広域交付) never shows "
                          + ", ".join(sorted(barred)) + " (never the domicile and its head,"
                          " 本籍・筆頭者)")
        body = wide.request_body(rid, codes[0], household=household, items=sorted(chosen),
                                 requester=req, operator=actor)
        # the operator may issue now (hours, override) and the request id is free here,
        # before anyone is asked
        with gate.session(actor, perm.CERTIFY, now=now, target=target) as s:
            self._wide_request_free(s, rid)
        records, head, right, by = wide.ask(call, home, body)
        req = wide.verified_requester(req, by)
        scope = "household" if household else "person"
        with gate.session(actor, perm.CERTIFY, now=now, target=target) as s:
            self._wide_request_free(s, rid)
            gate.charge(s, actor, perm.READ, len(records))
            composition = compose(records, items=chosen, kind="residence",
                                  scope=scope, head=head, wide_area=True)  # type: ignore[arg-type]
            number, fee, record, qr_bytes, pdf = self._sign_and_record(
                s, composition, req, right, actor, moment)
            s.execute(f"INSERT INTO {WIDE_REQUEST_TABLE.name} (request_id, home_lg_code,"
                      " issuance_id, issued_at) VALUES (?, ?, ?, ?)",
                      (rid, home, number, s.ts(moment)))
            detail_read = read_detail(f"certificate of residence (広域交付) from {home}", None,
                                      f"certificate {number}")
            audit.write_many(s, [audit.entry(s, actor, "register.read",
                                             str(c).zfill(11), detail_read)
                                 for c in composition.codes])
            audit.write(s, actor, "certificate.issue", target,
                        f"{number}: {composition.title}, {len(composition.codes)} member(s)"
                        f" of {home} (request {rid}); items:"
                        f" {','.join(composition.items) or 'none'}; right: {right.label};"
                        f" identity: {type(req.identity).__name__}; fee {fee} yen; key"
                        f" {self.keys.signing_key_id}")
        return Issued(pdf, record, qr_bytes)

    def _sign_and_record(self, s: Session, composition: Composition, req: Requester,
                         right: Right, actor: Actor, moment: dt.datetime
                         ) -> tuple[str, int, pa.Table, bytes, bytes]:
        """Number, fee, render, sign and record one certificate in the session ``s``:
        ``(number, fee, record, qr_bytes, pdf)``."""
        number = f"{self.register.lg_code}-{moment.astimezone(JST):%Y%m%d}-" \
                 f"{secrets.token_hex(5)}"
        fee = self.register.policy.fee(s, "certificate")
        payload = Payload(number, self.keys.node_id, self.keys.signing_key_id, moment,
                          self.register.lg_code, self.municipality, self.mayor, composition)
        qr_bytes = encode_payload(payload, self.keys.signing)
        pdf = sign_pdf(render_pdf(payload, qr_png(qr_bytes), office=self.office),
                       self.keys, self.certificate, when=moment,
                       reason=f"{composition.title} {number}")
        record = self._record(payload, composition, req, right, actor, fee, qr_bytes, pdf)
        self._write(s, record)
        return number, fee, record, qr_bytes, pdf

    @staticmethod
    def _wide_request_free(s: Session, request_id: str) -> None:
        done = s.query(f"SELECT issuance_id FROM {WIDE_REQUEST_TABLE.name} WHERE request_id"
                       " = ?", (request_id,))
        if done:
            raise ConflictError(f"wide-area request {request_id} was issued already as"
                                f" {done[0][0]}")

    def _members(self, s: Session, codes: list[int], scope: str, removed: bool,
                 now: dt.datetime) -> list[dict[str, Any]]:
        first = _latest_removed(s, codes[0]) if removed else _current(s, codes[0])
        if first is None:
            what = "removed record (除票)" if removed else "current resident"
            raise NotFoundError(f"no {what} with resident code {str(codes[0]).zfill(11)}")
        if removed:
            self._check_retention(first, now)
        if scope == "household":
            if removed:
                members = [r for r in _records(
                    s, "household_id = ? AND status = 'removed' AND removal_date = ?",
                    (first["household_id"], s.d(first["removal_date"])))]
            else:
                members = _records(s, "household_id = ? AND status = 'resident'",
                                   (first["household_id"],))
            if len(members) > MAX_MEMBERS:
                raise InvalidInputError(f"the household has {len(members)} members: at most"
                                        f" {MAX_MEMBERS} per certificate, ask for members")
            return members
        members = [first]
        for code in codes[1:]:
            rec = _latest_removed(s, code) if removed else _current(s, code)
            if rec is None or rec["household_id"] != first["household_id"]:
                raise InvalidInputError(f"{str(code).zfill(11)} is not a member of the same"
                                        " household")
            if removed:
                self._check_retention(rec, now)
            members.append(rec)
        return members

    @staticmethod
    def _check_retention(rec: dict[str, Any], now: dt.datetime) -> None:
        day = rec["removal_date"]
        today = now.astimezone(JST).date()
        try:
            end = day.replace(year=day.year + RETENTION_YEARS)
        except ValueError:  # 29 February
            end = day.replace(year=day.year + RETENTION_YEARS, day=28)
        if today >= end:
            raise NotFoundError(f"the removed record of {str(rec['resident_code']).zfill(11)}"
                                f" is past its retention of {RETENTION_YEARS} years")

    @staticmethod
    def _principal(s: Session, req: Requester, removed: bool
                   ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the principal's record, the requester's own record when registered here)."""
        own = None
        if req.resident_code is not None:
            own = _current(s, int(req.resident_code)) or _latest_removed(
                s, int(req.resident_code))
        if req.proxy_for is None:
            return own, own
        code = int(req.proxy_for)
        return _current(s, code) or _latest_removed(s, code), own

    @staticmethod
    def _head(s: Session, member: dict[str, Any]) -> str | None:
        rows = s.query("SELECT head_person_id FROM households WHERE household_id = ?",
                       (member["household_id"],))
        if not rows:
            return None
        head = _records(s, "person_id = ?", (int(rows[0][0]),))
        return full_name(head[0]) if head else None

    def _record(self, payload: Payload, c: Composition, req: Requester, right: Right,
                actor: Actor, fee: int, qr_bytes: bytes, pdf: bytes) -> pa.Table:
        identity = req.identity
        row = {
            "issuance_id": payload.number,
            "issued_at": payload.issued_at,
            "actor": str(actor),
            "kind": c.kind,
            "scope": c.scope,
            "subject_code": c.codes[0],
            "member_codes": list(c.codes),
            "items": list(c.items),
            "identity_kind": "card" if isinstance(identity, CardHolder) else "photo_id",
            "identity_ref": identity.ref,
            "requester_name": req.name,
            "requester_code": req.resident_code,
            "right_kind": right.label,
            "principal_code": req.principal,
            "letter": req.letter,
            "fee": fee,
            "node_id": payload.node_id,
            "key_id": payload.key_id,
            "payload_digest": digest(qr_bytes),
            "pdf_digest": hashlib.sha256(pdf).hexdigest(),
        }
        return pa.Table.from_pylist([row], schema=ISSUANCE_SCHEMA)

    @staticmethod
    def _write(s: Session, record: pa.Table) -> None:
        row = record.to_pylist()[0]
        values = []
        for col in ISSUANCE_TABLE.columns:
            v = row[col.name]
            if col.name == "member_codes":
                v = ",".join(str(c).zfill(11) for c in v)
            elif col.name == "items":
                v = ",".join(v)
            elif col.type == "ts":
                v = s.ts(v)
            values.append(v)
        names = ", ".join(ISSUANCE_TABLE.names)
        s.execute(f"INSERT INTO {ISSUANCE_TABLE.name} ({names}) VALUES"
                  f" ({', '.join('?' * len(values))})", tuple(values))

    # -- the record of issuances -------------------------------------------------------------

    def issuances(self, *, actor: Actor, since: dt.datetime | None = None,
                  now: dt.datetime | None = None) -> pa.Table:
        """The certificates issued (since ``since``), oldest first, as Arrow
        (:data:`~jukicore.certificates.schema.ISSUANCE_SCHEMA`). Supervisors and admins;
        the read is audited (``register.read``, with the count)."""
        return self.issuances_of(self.register, actor=actor, since=since, now=now)

    @staticmethod
    def issuances_of(register: Register, *, actor: Actor, since: dt.datetime | None = None,
                     now: dt.datetime | None = None) -> pa.Table:
        """:meth:`issuances` of ``register`` (no keys needed)."""
        gate = register.policy
        with gate.session(actor, perm.CERT_LIST, now=now) as s:
            where, params = since_clause(s, since, "issued_at")
            rows = s.query(f"SELECT {', '.join(ISSUANCE_TABLE.names)} FROM"
                           f" {ISSUANCE_TABLE.name}{where} ORDER BY issued_at, issuance_id",
                           params)
            out = _to_arrow(rows)
            audit.write(s, actor, "register.read", None,
                        read_detail("certificates issued", out.num_rows, None))
        return out

    def count(self) -> int:
        """How many certificates were issued (no personal data)."""
        with self.register._b.session(write=False) as s:
            return int(s.scalar(f"SELECT count(*) FROM {ISSUANCE_TABLE.name}"))


def _requester(requester: Any) -> Requester:
    """The requester checked (a card holder must come as CardPin: its PIN is checked here
    or at the card's municipality, never taken on trust)."""
    if not isinstance(requester, Requester):
        raise InvalidInputError("requester must be a jukicore.certificates.Requester")
    if isinstance(requester.identity, CardHolder):
        raise InvalidInputError("a card holder is identified by the card and its PIN here:"
                                " give CardPin(card_id, pin), not a CardHolder")
    return requester.checked()


def since_clause(s: Session, since: dt.datetime | None, column: str
                 ) -> tuple[str, tuple[Any, ...]]:
    """``(" WHERE column >= ?", (since,))`` for a listing since a moment (timezone-aware),
    or nothing."""
    if since is None:
        return "", ()
    if since.tzinfo is None:
        raise InvalidInputError("since must be timezone-aware")
    return f" WHERE {column} >= ?", (s.ts(since),)


def _to_arrow(rows: list[tuple[Any, ...]]) -> pa.Table:
    names = ISSUANCE_TABLE.names
    out: list[dict[str, Any]] = []
    for r in rows:
        d = dict(zip(names, r, strict=True))
        d["member_codes"] = [int(c) for c in str(d["member_codes"]).split(",") if c]
        d["items"] = [i for i in str(d["items"]).split(",") if i]
        at = d["issued_at"]
        if isinstance(at, str):
            at = dt.datetime.fromisoformat(at)
        if isinstance(at, dt.datetime) and at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        d["issued_at"] = at
        out.append(d)
    return pa.Table.from_pylist(out, schema=ISSUANCE_SCHEMA)



