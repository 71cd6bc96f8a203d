"""The rules of the two cards that hold no data: kinds, states, transitions, dates, fees.

Everything here is pure (no store, no clock): :mod:`jukicore.cards.store` applies it.
docs/cards.md explains each rule and where it comes from.
"""

from __future__ import annotations

import datetime as dt
import re

from jukicore.errors import InvalidInputError

__all__ = [
    "CARD_ID",
    "CONTINUE_DAYS",
    "FINAL",
    "IDENTITY_DOCUMENTS",
    "JUKI_CLOSED",
    "JUKI_KINDS",
    "KINDS",
    "LIVE",
    "MYNUMBER",
    "MYNUMBER_OPENED",
    "STATES",
    "TRANSITIONS",
    "VOID_REASONS",
    "age_reached_on",
    "anniversary",
    "card_expiry",
    "certificate_expiry",
    "check_card_id",
    "check_identity_document",
    "check_kind",
    "check_pin",
    "effective_state",
    "fee_service",
    "nth_birthday_after",
    "refused_transition",
]

JUKI_BASIC = "juki_basic"  #: resident register card without photo (住基カード 写真なし)
JUKI_PHOTO = "juki_photo"  #: with photo: usable as photo identification (写真付き)
MYNUMBER = "mynumber"  #: My Number card (個人番号カード)
JUKI_KINDS = (JUKI_BASIC, JUKI_PHOTO)
KINDS = (*JUKI_KINDS, MYNUMBER)

#: The last day a resident register card could be issued (住基カードの交付終了).
JUKI_CLOSED = dt.date(2015, 12, 28)
#: The first day a My Number card could be issued (個人番号カードの交付開始).
MYNUMBER_OPENED = dt.date(2016, 1, 1)
#: A resident register card is valid for this many years from its issue.
JUKI_YEARS = 10
#: Days after the move-in notification within which continued use must be recorded.
CONTINUE_DAYS = 90


def fee_service(kind: str) -> str:
    """The fee of issuing a card of ``kind``, as the policy names it (``fee.card_KIND``:
    defaults in :data:`jukicore.access.policy.DEFAULT_FEES`, each municipality may set
    its own: Cards.set_fee)."""
    return f"card_{kind}"

# -- states ---------------------------------------------------------------------------------

APPLIED, ISSUED, ACTIVE, LOCKED = "applied", "issued", "active", "locked"
SUSPENDED, EXPIRED, VOIDED, COLLECTED = "suspended", "expired", "voided", "collected"
STATES = (APPLIED, ISSUED, ACTIVE, LOCKED, SUSPENDED, EXPIRED, VOIDED, COLLECTED)
#: States a card reaches expiry from (by date: reads take ``today``).
DATED = frozenset({ISSUED, ACTIVE, LOCKED, SUSPENDED})
#: States of a card that still exists for its holder (one live card of a kind each).
LIVE = frozenset({APPLIED, ISSUED, ACTIVE, LOCKED, SUSPENDED})
#: No way out.
FINAL = frozenset({COLLECTED})

#: Every transition the law allows, (from, to) -> the operation that makes it. Anything
#: else is refused with a ConflictError and changes nothing.
TRANSITIONS: dict[tuple[str, str], str] = {
    (APPLIED, ISSUED): "issue",
    (APPLIED, VOIDED): "void",
    (ISSUED, ACTIVE): "activate",
    (ISSUED, VOIDED): "void",
    (ISSUED, EXPIRED): "expire",
    (ACTIVE, LOCKED): "lock",
    (ACTIVE, SUSPENDED): "suspend",
    (ACTIVE, VOIDED): "void",
    (ACTIVE, COLLECTED): "collect",
    (ACTIVE, EXPIRED): "expire",
    (LOCKED, ACTIVE): "reset_pin",
    (LOCKED, SUSPENDED): "suspend",
    (LOCKED, VOIDED): "void",
    (LOCKED, COLLECTED): "collect",
    (LOCKED, EXPIRED): "expire",
    (SUSPENDED, ACTIVE): "resume",
    (SUSPENDED, LOCKED): "resume",
    (SUSPENDED, VOIDED): "void",
    (SUSPENDED, COLLECTED): "collect",
    (SUSPENDED, EXPIRED): "expire",
    (EXPIRED, COLLECTED): "collect",
    (VOIDED, COLLECTED): "collect",
}

#: Why a card is voided (the register's notifications void with the first three).
VOID_REASONS = ("death", "removed_ex_officio", "my_number_replaced", "code_change", "damaged",
                "holder_request",
                "issued_in_error", "not_collected")

#: Documents an operator may record as the identity check at the counter.
IDENTITY_DOCUMENTS = ("mynumber_card", "juki_photo_card", "drivers_license", "passport",
                      "residence_card", "other_photo_id", "two_documents")


def refused_transition(state: str, to: str, operation: str) -> str | None:
    """Why ``operation`` may not take a card from ``state`` to ``to``; None when the
    table allows it."""
    if TRANSITIONS.get((state, to)) == operation:
        return None
    allowed = sorted(f"{a}->{b}" for (a, b), op in TRANSITIONS.items() if op == operation)
    return (f"a card in state {state!r} cannot be taken to {to!r} by {operation}"
            f" (allowed: {', '.join(allowed) or 'none'})")


def effective_state(state: str, expires_on: dt.date | None, today: dt.date) -> str:
    """The state on ``today``: a live card past its last valid day is ``expired``."""
    if state in DATED and expires_on is not None and today > expires_on:
        return EXPIRED
    return state


# -- dates ------------------------------------------------------------------------------


def anniversary(start: dt.date, years: int) -> dt.date:
    """The day ``years`` after ``start`` in the calendar: its anniversary; for 29 February
    in a common year, 28 February (民法143条2項: a period whose last month has no
    corresponding day ends on that month's last day; 年齢計算ニ関スル法律 counts ages
    the same way)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a common year
        return start.replace(year=start.year + years, day=28)


def age_reached_on(birth: dt.date, age: int) -> dt.date:
    """The day a person born on ``birth`` reaches ``age`` (満年齢), by 年齢計算ニ関スル法律
    (an age counts from the day of birth) and 民法143条: the period of ``age`` years ends
    at the end of the day before the anniversary (the day before the birthday), or, for
    someone born on 29 February in a common year, at the end of 28 February. The law
    holds the age reached on that day (someone whose 18th birthday is the day after an
    election votes in it)."""
    try:
        return birth.replace(year=birth.year + age) - dt.timedelta(days=1)
    except ValueError:  # 29 February in a common year: the last day of February
        return birth.replace(year=birth.year + age, day=28)


def nth_birthday_after(birth: dt.date, day: dt.date, n: int) -> dt.date:
    """The ``n``-th birthday strictly after ``day`` (a birthday on ``day`` itself does not
    count); someone born on 29 February has their birthday on 28 February in a common
    year (see :func:`anniversary`)."""
    if n < 1:
        raise InvalidInputError("n counts birthdays from 1")
    first_year = day.year if anniversary(birth, day.year - birth.year) > day else day.year + 1
    return anniversary(birth, first_year + n - 1 - birth.year)


def card_expiry(kind: str, issued_on: dt.date, birth: dt.date | None) -> dt.date:
    """A card's last valid day: a resident register card's 10th anniversary of its issue;
    a My Number card's 10th birthday after its issue for someone 18 or older on the day of
    issue, the 5th for someone younger (番号法施行令・施行規則)."""
    if kind in JUKI_KINDS:
        return anniversary(issued_on, JUKI_YEARS)
    if birth is None:
        raise InvalidInputError("a My Number card's expiry needs the holder's date of birth")
    adult = issued_on >= age_reached_on(birth, 18)
    return nth_birthday_after(birth, issued_on, 10 if adult else 5)


def certificate_expiry(issued_on: dt.date, birth: dt.date) -> dt.date:
    """The last valid day of a My Number card's electronic certificates: the 5th birthday
    after the card's issue (never after the card's own expiry)."""
    return nth_birthday_after(birth, issued_on, 5)


# -- inputs ------------------------------------------------------------------------------

#: A card's id: the issuing municipality's 6-digit code and a serial of 9 digits.
CARD_ID = re.compile(r"[0-9]{6}-[0-9]{9}")


def check_card_id(card_id: object) -> str:
    if not isinstance(card_id, str) or not CARD_ID.fullmatch(card_id):
        raise InvalidInputError("a card id is the issuing municipality's 6-digit code, '-'"
                                " and 9 digits (e.g. 131016-000000001)")
    return card_id


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise InvalidInputError(f"a card kind is one of {', '.join(KINDS)}, not {kind!r}")
    return str(kind)


def check_pin(pin: object) -> str:
    """A card PIN: exactly four ASCII digits (the message never shows it)."""
    if not isinstance(pin, str) or len(pin) != 4 or not pin.isascii() or not pin.isdigit():
        raise InvalidInputError("a card PIN is exactly 4 digits (0-9)")
    return pin


def check_identity_document(document: object) -> str:
    if document not in IDENTITY_DOCUMENTS:
        raise InvalidInputError("the identity check names the document seen, one of "
                                f"{', '.join(IDENTITY_DOCUMENTS)}")
    return str(document)
