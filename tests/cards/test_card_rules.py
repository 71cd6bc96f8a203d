"""The cards' date rules and transition table (pure: no store)."""

from __future__ import annotations

import datetime as dt

import pytest

from jukicore.cards import rules
from jukicore.errors import InvalidInputError

D = dt.date


@pytest.mark.parametrize(("birth", "age", "reached"), [
    (D(2000, 4, 2), 18, D(2018, 4, 1)),    # the day before the birthday (民法143条)
    (D(2000, 4, 1), 6, D(2006, 3, 31)),
    (D(2004, 2, 29), 18, D(2022, 2, 28)),  # common year: the end of February
    (D(2004, 2, 29), 20, D(2024, 2, 28)),  # leap year: the day before 29 February
    (D(2004, 3, 1), 18, D(2022, 2, 28)),
])
def test_age_reached_on(birth: dt.date, age: int, reached: dt.date) -> None:
    assert rules.age_reached_on(birth, age) == reached


def test_anniversary_of_29_february() -> None:
    assert rules.anniversary(D(2004, 2, 29), 1) == D(2005, 2, 28)
    assert rules.anniversary(D(2004, 2, 29), 4) == D(2008, 2, 29)
    assert rules.anniversary(D(2010, 6, 30), 10) == D(2020, 6, 30)


def test_nth_birthday_after_skips_the_day_itself() -> None:
    born = D(1990, 5, 10)
    assert rules.nth_birthday_after(born, D(2024, 5, 9), 1) == D(2024, 5, 10)
    assert rules.nth_birthday_after(born, D(2024, 5, 10), 1) == D(2025, 5, 10)
    assert rules.nth_birthday_after(born, D(2024, 5, 11), 10) == D(2034, 5, 10)
    leap = D(2004, 2, 29)
    assert rules.nth_birthday_after(leap, D(2022, 2, 27), 1) == D(2022, 2, 28)
    assert rules.nth_birthday_after(leap, D(2022, 2, 28), 1) == D(2023, 2, 28)
    assert rules.nth_birthday_after(leap, D(2023, 3, 1), 1) == D(2024, 2, 29)
    with pytest.raises(InvalidInputError):
        rules.nth_birthday_after(leap, D(2022, 2, 28), 0)


# (birth, issued_on, expected expiry): a minor at issue gets the 5th birthday after issue,
# someone 18 or older (from the day before the 18th birthday, by the law) the 10th.
_EXPIRY = [
    (D(2000, 4, 2), D(2018, 3, 31), D(2022, 4, 2)),   # day before reaching 18: 17 -> 5th
    (D(2000, 4, 2), D(2018, 4, 1), D(2027, 4, 2)),    # reaches 18 that day -> 10th
    (D(2000, 4, 2), D(2018, 4, 2), D(2028, 4, 2)),    # the birthday itself: not "after"
    (D(2004, 2, 29), D(2022, 2, 27), D(2026, 2, 28)),  # leap birth, 17: 5th birthday
    (D(2004, 2, 29), D(2022, 2, 28), D(2032, 2, 29)),  # reaches 18 on 28 Feb: 10th
    (D(2004, 2, 29), D(2022, 3, 1), D(2032, 2, 29)),
]


@pytest.mark.parametrize(("birth", "issued", "expires"), _EXPIRY)
def test_my_number_card_expiry(birth: dt.date, issued: dt.date, expires: dt.date) -> None:
    assert rules.card_expiry(rules.MYNUMBER, issued, birth) == expires
    cert = rules.certificate_expiry(issued, birth)
    assert cert == rules.nth_birthday_after(birth, issued, 5) <= expires


def test_juki_card_ten_years() -> None:
    assert rules.card_expiry("juki_basic", D(2012, 2, 29), None) == D(2022, 2, 28)
    assert rules.card_expiry("juki_photo", D(2015, 12, 28), None) == D(2025, 12, 28)
    with pytest.raises(InvalidInputError):
        rules.card_expiry(rules.MYNUMBER, D(2020, 1, 1), None)


def test_effective_state_by_date() -> None:
    last = D(2030, 1, 1)
    assert rules.effective_state("active", last, last) == "active"
    assert rules.effective_state("active", last, last + dt.timedelta(days=1)) == "expired"
    assert rules.effective_state("voided", last, D(2040, 1, 1)) == "voided"
    assert rules.effective_state("applied", None, D(2040, 1, 1)) == "applied"


def test_transition_table_is_closed() -> None:
    for (a, b), op in rules.TRANSITIONS.items():
        assert a in rules.STATES and b in rules.STATES and a != b
        assert rules.refused_transition(a, b, op) is None
    assert not any(a == "collected" for a, _ in rules.TRANSITIONS)  # final
    assert rules.refused_transition("active", "issued", "issue") is not None
    assert rules.refused_transition("suspended", "active", "activate") is not None


@pytest.mark.parametrize("pin", ["123", "12345", "12a4", "１２３４", " 123", None, 1234,
                                 b"1234", "", "٠١٢٣"])
def test_pin_is_four_ascii_digits(pin: object) -> None:
    with pytest.raises(InvalidInputError) as err:
        rules.check_pin(pin)
    assert str(pin) not in str(err.value) or pin in ("", None)


@pytest.mark.parametrize("cid", ["131016-00000001", "131016000000001", "13101-000000001",
                                 "131016-00000000１", None, 5, "131016-000000001\n"])
def test_card_id_form(cid: object) -> None:
    with pytest.raises(InvalidInputError):
        rules.check_card_id(cid)
