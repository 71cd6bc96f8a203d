"""Who asks, with what right, and what the certificate then says.

:func:`compose` is pure: it turns records (dicts of the register's resident columns)
and a request into a :class:`Composition`, the certificate's content, independent of
where the records came from. A municipality composes from its own register
(:class:`jukicore.certificates.Certificates`); issue 14's wide-area issuance (広域交付)
composes, with ``wide_area=True``, from a record fetched from another municipality:
domicile and its head are then never shown, and only the person or the whole
household may be asked for.

:func:`judge_right` decides the requester's right from the requester's (or, for a
proxy, the principal's) record and the members' records: the person themself, a
member of the same household, or a proxy with a letter of attorney. Anyone else has
no right.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from jukicore.errors import InvalidInputError

from .items import (
    LABELS,
    OMITTED,
    OPTIONAL_ITEMS,
    RECORD_ITEMS,
    SHOWN_OMITTED,
    WIDE_AREA_ITEMS,
    format_value,
)

__all__ = [
    "PHOTO_ID_KINDS",
    "CardHolder",
    "CardPin",
    "Composition",
    "PhotoId",
    "Requester",
    "Right",
    "card_holder",
    "compose",
    "judge_right",
    "member_fields",
]

Kind = Literal["residence", "removed"]
Scope = Literal["person", "household", "members"]
RightKind = Literal["self", "household"]

#: Photo identification an operator may record (kind -> what it is), by the seeds'
#: 「官公署交付の顔写真付き身分証明書（運転免許証・パスポート等）」.
PHOTO_ID_KINDS: dict[str, str] = {
    "driver_license": "運転免許証",
    "passport": "旅券",
    "my_number_card": "個人番号カード",
    "resident_card_photo": "写真付き住民基本台帳カード",
    "residence_card": "在留カード",
    "special_permanent_resident_certificate": "特別永住者証明書",
    "other_official_photo_id": "官公署発行の顔写真付き証明書",
}

_ID_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be text, not {type(value).__name__}")
    v = value.strip()
    if not v:
        raise InvalidInputError(f"{what} is empty")
    if len(v) > limit:
        raise InvalidInputError(f"{what} is longer than {limit} characters")
    if _CONTROL.search(v):
        raise InvalidInputError(f"{what} contains a control character")
    return v


def _code(value: object, what: str) -> int:
    from jukicore.validate import parse_resident_code

    try:
        return parse_resident_code(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what}: {exc}") from None


@dataclass(frozen=True)
class PhotoId:
    """A photo identification the operator saw and records: its kind
    (:data:`PHOTO_ID_KINDS`) and number; never its image."""

    kind: str
    number: str

    def __post_init__(self) -> None:
        if self.kind not in PHOTO_ID_KINDS:
            raise InvalidInputError(f"unknown photo ID kind {str(self.kind)[:40]!r}; one of "
                                    f"{', '.join(PHOTO_ID_KINDS)}")
        if not isinstance(self.number, str) or not _ID_NUMBER.fullmatch(self.number):
            raise InvalidInputError("a photo ID number is 1 to 32 of A-Z a-z 0-9 and -")

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.number}"


@dataclass(frozen=True)
class CardPin:
    """A card and the PIN its holder entered at the counter: what a requester identified
    by card + PIN gives :meth:`Certificates.issue`, which has the PIN checked by the cards
    service before anything else (the PIN is never shown: ``repr`` leaves it out)."""

    card_id: str
    pin: str = field(repr=False)

    def __post_init__(self) -> None:
        _text(self.card_id, "card id", 64)
        if not isinstance(self.pin, str):
            raise InvalidInputError("a card PIN is text")

    @property
    def ref(self) -> str:
        return f"card:{self.card_id}"


@dataclass(frozen=True)
class CardHolder:
    """The holder of a card whose PIN was verified: the card's id and the resident code
    the card system answered. Made by :func:`card_holder` (which asks the cards
    service). :meth:`Certificates.issue` makes it itself from a :class:`CardPin` and
    refuses one given from outside (it could not tell it was verified); the pure
    :func:`judge_right` takes it, for a verification done elsewhere."""

    card_id: str
    resident_code: int

    def __post_init__(self) -> None:
        _text(self.card_id, "card id", 64)
        object.__setattr__(self, "resident_code", _code(self.resident_code, "card holder"))

    @property
    def ref(self) -> str:
        return f"card:{self.card_id}"


class PinVerifier(Protocol):
    """What :func:`card_holder` needs of the cards service (``jukicore.cards.Cards``)."""

    def verify_pin(self, card_id: Any, pin: str, *, actor: Any, now: Any) -> int: ...


def card_holder(cards: PinVerifier, card_id: str | int, pin: str, *, actor: Any,
                now: Any = None) -> CardHolder:
    """Check the card's PIN with the cards service and return its verified holder.

    ``cards`` is a ``jukicore.cards.Cards(register, pin_key)``: its ``verify_pin``
    counts the attempt (three wrong ones lock the card), audits it, and raises
    :class:`~jukicore.errors.PermissionDeniedError` on a wrong PIN or an unusable card;
    on success it answers the holder's resident code."""
    code = cards.verify_pin(card_id, pin, actor=actor, now=now)
    return CardHolder(str(card_id), int(code))


@dataclass(frozen=True)
class Requester:
    """Who stands at the counter.

    ``identity``: a :class:`PhotoId` the operator recorded, or a :class:`CardPin`
    (card + PIN; verified, it becomes a :class:`CardHolder`). ``name``: the requester's
    name as the photo ID shows it (needed with a photo ID). ``resident_code``: the
    requester's own code when registered here (a card holder's is the card's). A proxy
    gives ``proxy_for`` (the principal's resident code) and ``letter`` (the reference of
    the letter of attorney, recorded)."""

    identity: PhotoId | CardPin | CardHolder
    name: str | None = None
    resident_code: int | str | None = None
    proxy_for: int | str | None = None
    letter: str | None = None

    def checked(self) -> Requester:
        """This requester with its values checked and codes as ints (or an
        :class:`InvalidInputError`)."""
        if not isinstance(self.identity, PhotoId | CardPin | CardHolder):
            raise InvalidInputError("a requester's identity is a PhotoId or a CardPin, not "
                                    f"{type(self.identity).__name__}")
        name = None if self.name is None else _text(self.name, "requester name", 100)
        if isinstance(self.identity, PhotoId) and name is None:
            raise InvalidInputError("a requester identified by a photo ID needs the name it"
                                    " shows")
        code = None if self.resident_code is None else _code(self.resident_code,
                                                              "requester resident code")
        if isinstance(self.identity, CardHolder):
            if code is not None and code != self.identity.resident_code:
                raise InvalidInputError("the requester's resident code is not the card's")
            code = self.identity.resident_code
        proxy = None if self.proxy_for is None else _code(self.proxy_for, "proxy_for")
        letter = None if self.letter is None else _text(self.letter, "letter of attorney", 200)
        if proxy is not None and letter is None:
            raise InvalidInputError("a proxy needs a letter of attorney (its reference)")
        if letter is not None and proxy is None:
            raise InvalidInputError("a letter of attorney needs the principal (proxy_for)")
        if proxy is not None and name is None:
            raise InvalidInputError("a proxy needs their name")
        if proxy is None and code is None and not isinstance(self.identity, CardPin):
            raise InvalidInputError("a requester acting for themself needs their resident code"
                                    " (or a card); anyone else acts as a proxy with a letter")
        return Requester(self.identity, name, code, proxy, letter)

    @property
    def is_proxy(self) -> bool:
        return self.proxy_for is not None

    @property
    def principal(self) -> int:
        """Whose right the request rests on: the principal's code for a proxy, else the
        requester's own."""
        code = self.proxy_for if self.proxy_for is not None else self.resident_code
        assert code is not None  # checked()
        return int(code)


@dataclass(frozen=True)
class Right:
    """The right a request rests on: ``self`` (only the principal's own record) or
    ``household`` (records of the principal's household), and whether a proxy asks."""

    kind: RightKind
    proxy: bool

    @property
    def label(self) -> str:
        return ("proxy:" if self.proxy else "") + self.kind


def _norm_name(text: str) -> str:
    return "".join(unicodedata.normalize("NFC", text).split())


def full_name(record: Mapping[str, Any]) -> str:
    return f"{record['family_name']}\u3000{record['given_name']}"


def judge_right(requester: Requester, principal: Mapping[str, Any] | None,
                members: Sequence[Mapping[str, Any]], *,
                requester_record: Mapping[str, Any] | None = None) -> Right | str:
    """The right ``requester`` (checked) has to the ``members``' records, or why it has
    none (a text).

    ``principal``: the record of the person whose right counts (the requester's own,
    or the principal's for a proxy); None when not in this register. The principal is
    the person when every member is the principal (by resident code); a member of the
    household when the principal is a current resident and every member belongs to the
    principal's household. ``requester_record``: the requester's own record when
    registered here, whose name must match the photo ID's."""
    if principal is None:
        who = "the principal" if requester.is_proxy else "the requester"
        return f"{who} is not in this register"
    if (requester_record is not None and requester.name is not None
            and isinstance(requester.identity, PhotoId)
            and _norm_name(requester.name) != _norm_name(
                str(requester_record["family_name"]) + str(requester_record["given_name"]))):
        return "the name on the photo ID is not the requester's name in the register"
    if not members:
        return "no records asked for"
    codes = {int(m["resident_code"]) for m in members}
    if codes == {int(principal["resident_code"])}:
        return Right("self", requester.is_proxy)
    if principal.get("status") == "resident" and all(
            m["household_id"] == principal["household_id"] for m in members):
        return Right("household", requester.is_proxy)
    who = "the principal" if requester.is_proxy else "the requester"
    return (f"{who} is neither the person nor a member of the person's household: no right"
            " to these records")


@dataclass(frozen=True)
class Composition:
    """A certificate's content: what it is (``kind``: a copy of the current record,
    住民票の写し, or of a removed record, 除票の写し), for whom (``scope``), which optional
    items it shows (``items``), the household's address and head, and each member's
    printed values in the order of :func:`member_fields`."""

    kind: Kind
    scope: Scope
    items: tuple[str, ...]
    address: str
    head: str
    members: tuple[tuple[str, ...], ...]
    wide_area: bool = False
    codes: tuple[int, ...] = field(default=(), compare=False)

    def fields(self) -> tuple[str, ...]:
        return member_fields(self.items, self.kind)

    def rows(self, i: int) -> list[tuple[str, str]]:
        """Member ``i`` as (label, value) rows, in print order."""
        return [(LABELS[f], v) for f, v in zip(self.fields(), self.members[i], strict=True)]

    @property
    def title(self) -> str:
        if self.kind == "removed":
            return "除票の写し"
        base = "世帯全員の住民票の写し" if self.scope == "household" else "住民票の写し"
        return base + ("（広域交付）" if self.wide_area else "")

    @property
    def certification(self) -> str:
        original = "除票" if self.kind == "removed" else "住民票"
        return f"この写しは、{original}の原本と相違ないことを証明する。"

    def to_json(self) -> dict[str, Any]:
        return {"k": self.kind, "s": self.scope, "w": int(self.wide_area),
                "i": list(self.items), "a": self.address, "h": self.head,
                "m": [list(m) for m in self.members]}

    @classmethod
    def from_json(cls, doc: Any) -> Composition:
        """The composition a payload carries (:meth:`to_json`); a malformed one is an
        :class:`InvalidInputError`."""
        try:
            kind, scope = doc["k"], doc["s"]
            items = tuple(doc["i"])
            if kind not in ("residence", "removed") or scope not in (
                    "person", "household", "members"):
                raise ValueError("unknown kind or scope")
            if any(not isinstance(i, str) or i not in OPTIONAL_ITEMS for i in items):
                raise ValueError("unknown item")
            width = len(member_fields(items, kind))
            members = tuple(tuple(str(v) for v in m) for m in doc["m"])
            if not members or any(len(m) != width for m in members):
                raise ValueError("members of the wrong shape")
            if not isinstance(doc["a"], str) or not isinstance(doc["h"], str):
                raise ValueError("address and head are text")
            return cls(kind, scope, items, doc["a"], doc["h"], members, bool(doc["w"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a certificate's content: {exc}") from None


_BASE = ("name", "kana", "birth_date", "sex")
_ADDRESS = ("resident_since", "address_since", "move_in_notified", "previous_address")
_REMOVAL = ("removal_date", "removal_reason", "move_out_destination")


def member_fields(items: Iterable[str], kind: str) -> tuple[str, ...]:
    """The fields printed for each member, in order: the base items, the optional items
    (those not requested that the layout shows as 「省略」 included), the removal."""
    chosen = set(items)
    out: list[str] = list(_BASE)
    for item in OPTIONAL_ITEMS:
        if item in chosen or item in SHOWN_OMITTED:
            out += RECORD_ITEMS[item]
    out += _ADDRESS
    if kind == "removed":
        out += _REMOVAL
    return tuple(out)


def _order(members: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The head (世帯主) first, then by person (the order of the register)."""
    return sorted(members, key=lambda m: (m.get("relationship") != "世帯主",
                                          m.get("person_id") or 0, m["resident_code"]))


def compose(records: Sequence[Mapping[str, Any]], *, items: Iterable[str] = (),
            kind: Kind = "residence", scope: Scope = "person", head: str | None = None,
            wide_area: bool = False) -> Composition:
    """The certificate of ``records`` (the members, as dicts of the register's resident
    columns) showing the base items and the optional ``items`` (already allowed by the
    requester's right). ``head``: the household head's name (default: the member whose
    relationship is 世帯主, else 「―」).

    A requested item that the records do not hold (a register without the column) is an
    :class:`InvalidInputError`, as is domicile in a wide-area issuance or a choice of
    members there."""
    chosen = frozenset(items)
    unknown = chosen - set(OPTIONAL_ITEMS)
    if unknown:
        raise InvalidInputError(f"unknown certificate items: {', '.join(sorted(unknown))}")
    if not records:
        raise InvalidInputError("a certificate needs at least one record")
    if wide_area:
        if "domicile" in chosen:
            raise InvalidInputError("a wide-area certificate (広域交付) never shows the domicile"
                                    " and its head (本籍・筆頭者)")
        barred = chosen - set(WIDE_AREA_ITEMS)
        if barred:
            raise InvalidInputError(f"a wide-area certificate (広域交付) shows only the items"
                                    f" {', '.join(WIDE_AREA_ITEMS)}, not"
                                    f" {', '.join(sorted(barred))}")
        if scope == "members":
            raise InvalidInputError("a wide-area certificate is for the person or the whole"
                                    " household only")
    for item in sorted(chosen):
        lacking = [c for c in RECORD_ITEMS[item] if c not in records[0]]
        if lacking:
            raise InvalidInputError(f"item {item!r} is not recorded by this register")
    ordered = _order(records)
    fields = member_fields(chosen, kind)
    members: list[tuple[str, ...]] = []
    for rec in ordered:
        row: list[str] = []
        for f in fields:
            if f == "name":
                row.append(full_name(rec))
            elif f == "kana":
                row.append(f"{rec['family_name_kana']}\u3000{rec['given_name_kana']}")
            elif f in ("domicile", "domicile_head", *SHOWN_OMITTED) and not (
                    f in chosen or (f == "domicile_head" and "domicile" in chosen)):
                row.append(OMITTED)
            else:
                row.append(format_value(f, rec.get(f)))
        members.append(tuple(row))
    if head is None:
        heads = [full_name(r) for r in ordered if r.get("relationship") == "世帯主"]
        head = heads[0] if heads else "―"
    address = str(ordered[0].get("address") or "―")
    return Composition(kind, scope, tuple(i for i in OPTIONAL_ITEMS if i in chosen), address,
                       head, tuple(members), wide_area,
                       tuple(int(r["resident_code"]) for r in ordered))
