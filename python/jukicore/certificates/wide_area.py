"""Wide-area certificates of residence (住民票の写しの広域交付, 住民基本台帳法第12条の4).

A resident of municipality Y asks at the counter of another municipality X for the
certificate of themself or of their household. X checks the requester's identity at
its counter, asks Y over the network for the record (:data:`PATH`, served by a
municipality to municipalities), composes the certificate with ``wide_area=True``,
renders and signs it with X's keys and records the issuance and X's fee
(:meth:`jukicore.certificates.Certificates.issue_wide_area`).

Y (:func:`provide`, the route's handler) checks the request itself: the requester is
the person or a current member of the person's household (never a proxy), the person
is a current resident of Y (a removed record, 除票, is not issued this way: the seeds
do not provide for it), the scope is the person or the whole household, and the items
are those a wide-area certificate may show (:data:`~jukicore.certificates.items.
WIDE_AREA_ITEMS`: never the domicile and its head). Y answers only those items of the
members and records the provision (``certificate_wide_provision``) with its audit
entries in one transaction. The same request id from the same municipality is answered
again with the same data (recomputed from the register as of the first answer's time and
checked against the digest recorded; nothing recorded twice); the same id with another
request, or once the record changed since, is a :class:`~jukicore.errors.ConflictError`
(ask anew with a new id). The provision keeps digests, never a copy of the data.

Identity: a photo ID is checked by X's operator; Y checks that the name on it is the
requester's name in its register. A card (My Number card, resident register card) was
issued by Y, which holds its PIN's digest: X sends the card id and the PIN inside the
request (over mutual TLS only; never stored, never in a digest), and Y's cards service
checks it as it does at its own counter (the attempt counted, three wrong ones lock the
card). Y's server then needs its pin key (:func:`jukicore.cards.pin.node_pin_key`: the file
:data:`PIN_KEY_ENV` names, or ``pin.key`` in the node's directory).

A crash between the two steps is resumed by asking again with the same request id:
Y answers the same data and records nothing new; X records the issuance once
(``certificate_wide_request``: one certificate per request id).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jukicore import audit
from jukicore.access import actors as perm
from jukicore.access.actors import Actor
from jukicore.access.policy import JST, read_detail
from jukicore.cards.pin import PIN_KEY_ENV
from jukicore.errors import ConflictError, InvalidInputError
from jukicore.store.backend import Session, utcnow

from .compose import CardHolder, CardPin, PhotoId, Requester, Right, judge_right
from .items import OPTIONAL_ITEMS, WIDE_AREA_ITEMS, expand_items
from .schema import PROVISION_SCHEMA, WIDE_PROVISION_TABLE, WIDE_REQUEST_TABLE

if TYPE_CHECKING:
    from jukicore.network.service import Peer, ServeContext
    from jukicore.register import Register

__all__ = ["PATH", "PIN_KEY_ENV", "REQUEST_SCHEMA", "ROUTES", "Call", "ask",
           "check_request_id", "new_request_id", "parse_answer", "provide", "provisions",
           "request_body", "requests", "verified_requester"]

#: The route at the residence municipality.
PATH = "/v1/certificates/wide-area"
#: The audit action of a provision at the residence municipality.
PROVIDED = "certificate.provide"

#: ``call(peer_node_id, path, body) -> answer``: how the issuing side reaches Y (the
#: network client's ``NodeClient(...).call_json``; in tests, ``call_local``).
Call = Callable[[str, str, dict[str, Any]], Mapping[str, Any]]

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,79}")
_CODE = re.compile(r"\d{11}")
#: The base items' record columns Y sends (dates as ISO text, sex as 1/2).
_BASE_FIELDS = ("family_name", "given_name", "family_name_kana", "given_name_kana",
                "birth_date", "sex", "address", "resident_since", "address_since",
                "move_in_notified", "previous_address")
_DATES = ("birth_date", "resident_since", "address_since", "move_in_notified")
_REQUEST_KEYS = {"request_id", "resident_code", "scope", "items", "requester", "operator"}
_REQUESTER_KEYS = {"resident_code", "name", "identity", "proxy_for"}
_TEXT_LIMIT = 200
#: Most members an answer may hold (a household larger than this is refused at Y).
MAX_MEMBERS = 20


def new_request_id(lg_code: str, now: dt.datetime | None = None) -> str:
    """A fresh request id of municipality ``lg_code``: ``<lg>-<JST date>-<random hex>``."""
    moment = (now or utcnow()).astimezone(JST)
    return f"{lg_code}-{moment:%Y%m%d}-{secrets.token_hex(8)}"


def check_request_id(value: object) -> str:
    """A request id (8 to 80 of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit),
    or an :class:`InvalidInputError`."""
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise InvalidInputError("a wide-area request id is 8 to 80 characters of A-Z a-z 0-9"
                                " . _ - (starting with a letter or a digit)")
    return value


def _code_text(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInputError(f"{what}: a resident code is 11 digits")
    from jukicore.validate import parse_resident_code

    try:
        return str(parse_resident_code(value)).zfill(11)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what}: {exc}") from None


def _text(value: object, what: str, limit: int = _TEXT_LIMIT) -> str:
    """A text of 1 to ``limit`` characters without control characters (it goes into the
    audit log), stripped."""
    from .compose import _text as checked

    return checked(value, what, limit)


# -- the request (X) ------------------------------------------------------------------------


def request_body(request_id: str, code: int | str, *, household: bool, items: Sequence[str],
                 requester: Requester, operator: Actor | str) -> dict[str, Any]:
    """The JSON body X sends to Y for a checked, non-proxy ``requester`` (identity: a
    :class:`PhotoId` checked at X's counter, or a :class:`CardPin` for Y to check)."""
    ident = requester.identity
    identity: dict[str, Any]
    if isinstance(ident, PhotoId):
        identity = {"kind": "photo_id", "photo_id_kind": ident.kind, "number": ident.number}
    elif isinstance(ident, CardPin):
        identity = {"kind": "card", "card_id": ident.card_id, "pin": ident.pin}
    else:
        raise InvalidInputError("a wide-area request identifies the requester by a photo ID"
                                " or a card and its PIN")
    return {
        "request_id": check_request_id(request_id),
        "resident_code": _code_text(code, "resident code"),
        "scope": "household" if household else "person",
        "items": [i for i in OPTIONAL_ITEMS if i in set(items)],
        "requester": {
            "resident_code": None if requester.resident_code is None
            else _code_text(requester.resident_code, "requester resident code"),
            "name": requester.name,
            "identity": identity,
            "proxy_for": None if requester.proxy_for is None
            else _code_text(requester.proxy_for, "proxy_for"),
        },
        "operator": str(operator),
    }


def _digest(body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical request, the PIN left out (a 4-digit PIN's digest would
    give the PIN away) and the operator too (another operator may resume a request cut
    off; the provision names the first)."""
    doc = json.loads(json.dumps(body))
    doc.pop("operator", None)
    ident = doc.get("requester", {}).get("identity")
    if isinstance(ident, dict):
        ident.pop("pin", None)
    canon = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


class _Request:
    """A wide-area request as Y reads it (checked shape; rights come later)."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        if not isinstance(body, Mapping):
            raise InvalidInputError("a wide-area request is a JSON object")
        extra = set(body) - _REQUEST_KEYS
        missing = (_REQUEST_KEYS - {"operator"}) - set(body)
        if extra or missing:
            raise InvalidInputError(
                "a wide-area request has the keys " + ", ".join(sorted(_REQUEST_KEYS))
                + (f"; unknown: {', '.join(sorted(str(k)[:40] for k in extra))}" if extra
                   else "") + (f"; missing: {', '.join(sorted(missing))}" if missing else ""))
        self.request_id = check_request_id(body["request_id"])
        self.code = int(_code_text(body["resident_code"], "resident_code"))
        if body["scope"] not in ("person", "household"):
            raise InvalidInputError("a wide-area certificate is of the person or the whole"
                                    " household (scope 'person' or 'household')")
        self.scope: str = body["scope"]
        raw_items = body["items"]
        if not isinstance(raw_items, list) or len(raw_items) > len(OPTIONAL_ITEMS):
            raise InvalidInputError("items is a list of item names")
        self.items = expand_items([str(i)[:60] if not isinstance(i, str) else i
                                   for i in raw_items])
        self.operator = _text(body.get("operator") or "unnamed", "operator")
        req = body["requester"]
        if not isinstance(req, Mapping) or set(req) - _REQUESTER_KEYS:
            raise InvalidInputError("requester is an object of "
                                    + ", ".join(sorted(_REQUESTER_KEYS)))
        self.proxy_for = req.get("proxy_for")
        self.requester_code = None if req.get("resident_code") is None else int(
            _code_text(req["resident_code"], "requester resident_code"))
        self.name = None if req.get("name") is None else _text(req["name"], "requester name",
                                                               100)
        ident = req.get("identity")
        if not isinstance(ident, Mapping):
            raise InvalidInputError("requester.identity is an object")
        self.identity: PhotoId | CardPin
        if ident.get("kind") == "photo_id" and set(ident) == {"kind", "photo_id_kind",
                                                               "number"}:
            self.identity = PhotoId(ident["photo_id_kind"], ident["number"])
            if self.name is None or self.requester_code is None:
                raise InvalidInputError("a requester identified by a photo ID gives the name it"
                                        " shows and their resident code")
        elif ident.get("kind") == "card" and set(ident) == {"kind", "card_id", "pin"}:
            self.identity = CardPin(_text(ident["card_id"], "card id", 64), ident["pin"])
        else:
            raise InvalidInputError("requester.identity is {kind: photo_id, photo_id_kind,"
                                    " number} or {kind: card, card_id, pin}")
        self.digest = _digest(body)


# -- the answer (Y) -------------------------------------------------------------------------


def _member_doc(rec: Mapping[str, Any], items: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"resident_code": str(int(rec["resident_code"])).zfill(11)}
    for f in _BASE_FIELDS:
        v = rec.get(f)
        out[f] = v.isoformat() if isinstance(v, dt.date) else v
    out["sex"] = int(rec["sex"])
    if "relationship" in items:
        out["relationship"] = rec.get("relationship")
    return out


def _members_at_y(s: Session, code: int, scope: str) -> list[dict[str, Any]] | None:
    from .service import _current, _records

    first = _current(s, code)
    if first is None:
        return None
    if scope == "person":
        return [first]
    return _records(s, "household_id = ? AND status = 'resident'", (first["household_id"],))


def _order(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(members, key=lambda m: (m.get("relationship") != "世帯主",
                                          m.get("person_id") or 0, m["resident_code"]))


def _pin_key(node_path: Any) -> Any:
    from jukicore.cards.pin import node_pin_key

    return node_pin_key(node_path if node_path is not None else ".")


def provide(register: Register, requester_lg: str, body: Mapping[str, Any], *,
            now: dt.datetime | None = None, pin_key: Any = None,
            node_path: Any = None) -> dict[str, Any]:
    """Y's side of a wide-area request from municipality ``requester_lg`` (the peer the
    handshake authenticated): check it, answer the allowed items of the members, record
    the provision. See the module's text. ``pin_key``: Y's pin key for a card request
    (default: the node's, :func:`jukicore.cards.pin.node_pin_key` of ``node_path``)."""
    from jukicore.network.node import role_of

    if role_of(requester_lg) != "municipality":
        raise InvalidInputError("a wide-area certificate is asked for by a municipality")
    if requester_lg == register.lg_code:
        raise InvalidInputError("a municipality issues its own residents' certificates from"
                                " its own register, not by a wide-area request")
    req = _Request(body)
    actor = Actor.node(register.lg_code, register.lg_code, "cs")
    gate = register.policy
    target = str(req.code).zfill(11)
    gate.precheck(actor, perm.CERT_PROVIDE, target=target)
    # a repeated request is answered again from its record, before any check that counts
    with gate.session(actor, perm.CERT_PROVIDE, now=now, target=target, write=False) as s:
        again = _replay(s, register, requester_lg, req)
    if again is not None:
        return again
    if req.proxy_for is not None:
        _deny(gate, actor, target, "a proxy may not ask for a wide-area certificate (広域交付):"
                                   " only the person or a member of their household")
    barred = req.items - set(WIDE_AREA_ITEMS)
    if barred:
        _deny(gate, actor, target, "a wide-area certificate (広域交付) never shows "
              + ", ".join(sorted(barred)) + f"; it shows only {', '.join(WIDE_AREA_ITEMS)}"
              " (never the domicile and its head, 本籍・筆頭者)")
    holder: CardHolder | None = None
    if isinstance(req.identity, CardPin):
        from jukicore.cards import Cards
        from jukicore.certificates.compose import card_holder

        cards = Cards(register, pin_key if pin_key is not None else _pin_key(node_path))
        # counted and audited by the cards service in its own transaction (the card's
        # chip's retry counter, kept where the card was issued)
        holder = card_holder(cards, req.identity.card_id, req.identity.pin, actor=actor,
                             now=now)
        if req.requester_code is not None and req.requester_code != holder.resident_code:
            raise InvalidInputError("the requester's resident code is not the card's")
    moment = (now or utcnow()).astimezone(dt.UTC).replace(microsecond=0)
    with gate.session(actor, perm.CERT_PROVIDE, now=now, target=target) as s:
        again = _replay(s, register, requester_lg, req)  # a twin committed meanwhile
        if again is not None:
            return again
        members = _members_at_y(s, req.code, req.scope)
        if members is None:
            gate.deny(f"{target} is not a current resident of {register.lg_code}: a wide-area"
                      " certificate is issued for a current resident only (not a 除票)")
        assert members is not None
        if len(members) > MAX_MEMBERS:
            raise InvalidInputError(f"the household has {len(members)} members: more than"
                                    f" {MAX_MEMBERS}")
        from .service import _current

        requester_code = holder.resident_code if holder else req.requester_code
        assert requester_code is not None
        own = _current(s, requester_code)
        identity = holder if holder is not None else req.identity
        requester = Requester(identity, req.name, requester_code)
        right = judge_right(requester, own, members, requester_record=own)
        if isinstance(right, str):
            gate.deny(right.replace("this register", f"the register of {register.lg_code}"))
        assert isinstance(right, Right)
        members = _order(members)
        answer = _answer(s, register, req, members, right, requester_code, moment)
        _record(s, requester_lg, req, members, right, identity, requester_code, moment,
                answer)
        codes = [str(int(m["resident_code"])).zfill(11) for m in members]
        why = f"wide-area certificate for {requester_lg}, request {req.request_id}"
        audit.write_many(s, [audit.entry(s, actor, "register.read", c,
                                         read_detail("certificate of residence (広域交付)",
                                                     None, why)) for c in codes])
        audit.write(s, actor, PROVIDED, target,
                    f"request {req.request_id} of {requester_lg} ({req.operator[:100]}):"
                    f" {req.scope}, {len(codes)} member(s); items:"
                    f" {','.join(sorted(req.items)) or 'none'}; right: {right.label};"
                    f" identity: {type(identity).__name__}")
    return answer


def _deny(gate: Any, actor: Actor, target: str, reason: str) -> None:
    with gate.session(actor, perm.CERT_PROVIDE, target=target, write=False):
        gate.deny(reason)


def _answer_digest(answer: Mapping[str, Any]) -> str:
    canon = json.dumps(answer, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def _replay(s: Session, register: Register, requester_lg: str, req: _Request
            ) -> dict[str, Any] | None:
    """The answer already given to this request (recomputed; checked by its digest), or
    None when the request is new."""
    rows = s.query(f"SELECT request_digest, answer_digest, provided_at, right_kind,"
                   f" requester_code, member_codes FROM {WIDE_PROVISION_TABLE.name}"
                   " WHERE requester_lg = ? AND request_id = ?", (requester_lg, req.request_id))
    if not rows:
        return None
    request_digest, answer_digest, at, right_kind, requester_code, codes = rows[0]
    if request_digest != req.digest:
        raise ConflictError(f"request {req.request_id} of {requester_lg} was answered already"
                            " for another request: a new request needs a new id")
    members = _members_at_y(s, req.code, req.scope)
    answer = None
    if members is not None:
        members = _order(members)
        if ",".join(str(int(m["resident_code"])).zfill(11) for m in members) == codes:
            answer = _answer(s, register, req, members, Right(right_kind, False),
                             int(requester_code), _aware(at))
    if answer is None or _answer_digest(answer) != answer_digest:
        raise ConflictError(f"request {req.request_id} of {requester_lg} was answered already"
                            " and the record changed since: ask again with a new request id")
    return answer


def _answer(s: Session, register: Register, req: _Request, members: list[dict[str, Any]],
            right: Right, requester_code: int, moment: dt.datetime) -> dict[str, Any]:
    from .service import Certificates

    head = Certificates._head(s, members[0])
    return {
        "request_id": req.request_id,
        "home": register.lg_code,
        "municipality": f"{register.prefecture}{register.municipality}",
        "provided_at": moment.isoformat(),
        "scope": req.scope,
        "items": [i for i in OPTIONAL_ITEMS if i in req.items],
        "right": right.kind,
        "requester_code": str(requester_code).zfill(11),
        "head": head,
        "members": [_member_doc(m, req.items) for m in members],
    }


def _record(s: Session, requester_lg: str, req: _Request, members: list[dict[str, Any]],
            right: Right, identity: PhotoId | CardHolder | CardPin, requester_code: int,
            moment: dt.datetime, answer: Mapping[str, Any]) -> None:
    row = {
        "requester_lg": requester_lg,
        "request_id": req.request_id,
        "provided_at": s.ts(moment),
        "requester_actor": req.operator[:_TEXT_LIMIT],
        "scope": req.scope,
        "subject_code": req.code,
        "member_codes": ",".join(str(int(m["resident_code"])).zfill(11) for m in members),
        "items": ",".join(i for i in OPTIONAL_ITEMS if i in req.items),
        "identity_kind": "photo_id" if isinstance(identity, PhotoId) else "card",
        "identity_ref": identity.ref,
        "requester_code": requester_code,
        "right_kind": right.label,
        "request_digest": req.digest,
        "answer_digest": _answer_digest(answer),
    }
    names = WIDE_PROVISION_TABLE.names
    s.execute(f"INSERT INTO {WIDE_PROVISION_TABLE.name} ({', '.join(names)}) VALUES"
              f" ({', '.join('?' * len(names))})", tuple(row[n] for n in names))


def provisions(register: Register, *, actor: Actor, since: dt.datetime | None = None,
               now: dt.datetime | None = None) -> pa.Table:
    """The records provided to other municipalities for wide-area certificates (since
    ``since``), oldest first, as Arrow (:data:`~jukicore.certificates.schema.
    PROVISION_SCHEMA`: who asked, for whom, which members and items, the identity and
    right; not the data sent). Supervisors and admins; the read is audited."""
    gate = register.policy
    with gate.session(actor, perm.CERT_LIST, now=now) as s:
        from .service import since_clause

        where, params = since_clause(s, since, "provided_at")
        names = PROVISION_SCHEMA.names
        rows = s.query(f"SELECT {', '.join(names)} FROM {WIDE_PROVISION_TABLE.name}{where}"
                       " ORDER BY provided_at, requester_lg, request_id", params)
        out: list[dict[str, Any]] = []
        for r in rows:
            d = dict(zip(names, r, strict=True))
            d["member_codes"] = [int(c) for c in str(d["member_codes"]).split(",") if c]
            d["items"] = [i for i in str(d["items"]).split(",") if i]
            d["provided_at"] = _aware(d["provided_at"])
            out.append(d)
        table = pa.Table.from_pylist(out, schema=PROVISION_SCHEMA)
        audit.write(s, actor, "register.read", None,
                    read_detail("wide-area provisions", table.num_rows, None))
    return table


#: The wide-area requests an issuing municipality made (:func:`requests`).
REQUEST_SCHEMA: pa.Schema = pa.schema([
    pa.field("request_id", pa.string(), False),
    pa.field("home_lg_code", pa.string(), False),
    pa.field("issuance_id", pa.string(), False),
    pa.field("issued_at", pa.timestamp("us", "UTC"), False),
])


def requests(register: Register, *, actor: Actor, since: dt.datetime | None = None,
             now: dt.datetime | None = None) -> pa.Table:
    """The wide-area requests this municipality made and the certificate each gave
    (:data:`REQUEST_SCHEMA`; join ``issuance_id`` to
    :meth:`~jukicore.certificates.Certificates.issuances` for who asked, the fee...),
    oldest first. Supervisors and admins; the read is audited."""
    gate = register.policy
    with gate.session(actor, perm.CERT_LIST, now=now) as s:
        from .service import since_clause

        where, params = since_clause(s, since, "issued_at")
        rows = s.query(f"SELECT request_id, home_lg_code, issuance_id, issued_at FROM"
                       f" {WIDE_REQUEST_TABLE.name}{where} ORDER BY issued_at, request_id",
                       params)
        table = pa.Table.from_pylist(
            [{"request_id": r[0], "home_lg_code": r[1], "issuance_id": r[2],
              "issued_at": _aware(r[3])} for r in rows], schema=REQUEST_SCHEMA)
        audit.write(s, actor, "register.read", None,
                    read_detail("wide-area requests made", table.num_rows, None))
    return table


def _aware(at: Any) -> dt.datetime:
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    if isinstance(at, dt.datetime) and at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    assert isinstance(at, dt.datetime)
    return at


# -- the answer, read at X ------------------------------------------------------------------


def parse_answer(answer: object, body: Mapping[str, Any], home: str
                 ) -> tuple[list[dict[str, Any]], str, Right, int]:
    """The members' records (dicts of the resident columns that :func:`compose` reads), the
    household head's name, the right Y judged and the requester's resident code (the
    card's, for a card), from Y's ``answer`` to ``body``.

    X trusts Y's register, not the shape of its answer: anything else than the request's
    items, a member missing the person asked about, a household answer to a person's
    request, or a value of the wrong type is an :class:`InvalidInputError` (nothing is
    issued)."""
    where = f"the answer of {home}"
    try:
        if not isinstance(answer, Mapping):
            raise ValueError("not an object")
        if answer.get("request_id") != body["request_id"] or answer.get("home") != home:
            raise ValueError("it answers another request")
        if answer.get("scope") != body["scope"] or list(answer.get("items", ())) != list(
                body["items"]):
            raise ValueError("its scope or items are not the request's")
        right = Right(answer["right"], False) if answer.get("right") in (
            "self", "household") else None
        if right is None:
            raise ValueError("no right")
        head = answer.get("head")
        if not isinstance(head, str) or not head or len(head) > _TEXT_LIMIT:
            raise ValueError("no household head")
        members = answer.get("members")
        if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
            raise ValueError("no members")
        allowed = {"resident_code", *_BASE_FIELDS} | (
            {"relationship"} if "relationship" in body["items"] else set())
        records: list[dict[str, Any]] = []
        for i, m in enumerate(members):
            if not isinstance(m, Mapping) or set(m) != allowed:
                raise ValueError(f"member {i} holds other fields than the request's items")
            rec = _member_record(m, i)
            records.append(rec)
        codes = [int(r["resident_code"]) for r in records]
        if int(body["resident_code"]) not in codes or len(set(codes)) != len(codes):
            raise ValueError("the person asked about is not among the members")
        if body["scope"] == "person" and codes != [int(body["resident_code"])]:
            raise ValueError("a person's certificate answered with other members")
        asked_by = body["requester"]["resident_code"]
        by = answer.get("requester_code")
        if not isinstance(by, str) or not _CODE.fullmatch(by) or (
                asked_by is not None and by != asked_by):
            raise ValueError("the requester's resident code is not the request's")
        if right.kind == "self" and codes != [int(by)]:
            raise ValueError("the right 'self' for other members")
        if right.kind == "household" and int(by) not in codes and body["scope"] == "household":
            raise ValueError("a household's right by someone outside it")
    except (KeyError, TypeError, ValueError, InvalidInputError) as exc:
        raise InvalidInputError(f"{where} is not a wide-area record: {exc}") from None
    return records, head, right, int(by)


def _member_record(m: Mapping[str, Any], i: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"person_id": i + 1}
    if not isinstance(m["resident_code"], str) or not _CODE.fullmatch(m["resident_code"]):
        raise ValueError(f"member {i}: resident_code")
    rec["resident_code"] = int(m["resident_code"])
    for f in _BASE_FIELDS:
        v = m[f]
        if f in _DATES:
            if v is None and f != "birth_date":
                rec[f] = None
                continue
            if not isinstance(v, str):
                raise ValueError(f"member {i}: {f}")
            rec[f] = dt.date.fromisoformat(v)
        elif f == "sex":
            if v not in (1, 2) or isinstance(v, bool):
                raise ValueError(f"member {i}: sex")
            rec[f] = v
        elif f == "previous_address" and v is None:
            rec[f] = None
        else:
            if not isinstance(v, str) or not v or len(v) > _TEXT_LIMIT:
                raise ValueError(f"member {i}: {f}")
            rec[f] = v
    if "relationship" in m:
        if not isinstance(m["relationship"], str) or not m["relationship"]:
            raise ValueError(f"member {i}: relationship")
        rec["relationship"] = m["relationship"]
    return rec


# -- the route ------------------------------------------------------------------------------


def _handler(ctx: ServeContext, peer: Peer, body: dict[str, Any]) -> dict[str, Any]:
    from jukicore.register import open_register

    if peer.kind != "node":
        raise InvalidInputError("a wide-area certificate is asked for by a municipality")
    with open_register(ctx.node.store_target()) as reg:
        if reg.lg_code != ctx.node_id:
            raise ConflictError(f"the node's register is {reg.lg_code}'s, not {ctx.node_id}'s")
        return provide(reg, peer.id, body, node_path=ctx.node.path)


def _routes() -> tuple[Any, ...]:
    from jukicore.network.service import json_route

    return (json_route(PATH, _handler, callers=("municipality",), serves=("municipality",),
                       name="certificates.wide-area"),)


#: The routes of this module (mounted by ``jukicore node serve``).
ROUTES = _routes()


def ask(call: Call, home: str, body: dict[str, Any]
        ) -> tuple[list[dict[str, Any]], str, Right, int]:
    """Ask ``home`` with ``call`` and read its answer (:func:`parse_answer`)."""
    answer = call(home, PATH, body)
    return parse_answer(answer, body, home)


def verified_requester(req: Requester, code: int) -> Requester:
    """``req`` as recorded at X once Y answered: a card's holder is the code Y's cards
    service answered."""
    if isinstance(req.identity, CardPin):
        return replace(req, identity=CardHolder(req.identity.card_id, code),
                       resident_code=code)
    return req

