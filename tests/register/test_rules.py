"""The register's rules for notifications (issue 9): codes and My Numbers of removed
records, retroactive deaths, households, purge, notification ids, lookups, move-out
corrections. Every test runs on SQLite and PostgreSQL.

Tiny municipality (person ids): household 1: 1 head, 2 妻; household 2: 3 head, 4, 5;
household 3: 6 head, 7, 8, 9; household 4: 10 alone; household 5: 11 head, 12;
household 6: 13 head, 14, 15.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from regkit import ADMIN, CLERK, TODAY, code_of, ev, make_my_number, move_in

from jukicore.register import Register

D = dt.timedelta


def person(reg: Register, pid: int) -> dict[str, Any]:
    t = reg.residents(actor=ADMIN, include_removed=True).to_pylist()
    return next(r for r in t if r["person_id"] == pid)


def apply_ok(reg: Register, *events: dict[str, Any], today: dt.date = TODAY) -> list[int | None]:
    rep = reg.apply(list(events), actor=CLERK, today=today)
    assert rep.rejected == (), rep.rejected
    return rep.resident_codes.to_pylist()  # type: ignore[no-any-return]


def rejected(reg: Register, event: dict[str, Any], error: str, words: str,
             column: str | None = None, today: dt.date = TODAY) -> None:
    """The event is rejected with ``error`` mentioning ``words``, and nothing changed."""
    before = reg.content_digest()
    rep = reg.apply([event], actor=CLERK, today=today)
    assert rep.applied == 0 and len(rep.rejected) == 1, rep
    r = rep.rejected[0]
    assert r.error == error, r
    assert words in r.reason, r
    if column is not None:
        assert r.column == column, r
    assert reg.content_digest() == before


def _identity_of(reg: Register, pid: int) -> dict[str, Any]:
    p = person(reg, pid)
    return {"family_name": p["family_name"], "given_name": p["given_name"],
            "family_name_kana": p["family_name_kana"], "given_name_kana": p["given_name_kana"],
            "birth_date": p["birth_date"], "sex": p["sex"]}


# -- 1. a code of a 除票 moves in only as the same person coming back ------------------------


def test_dead_residents_code_cannot_move_in(register: Register) -> None:
    code = code_of(register, 10)
    apply_ok(register, ev("death", "d1", resident_code=code, event_date=TODAY - D(5)))
    # not even with the dead person's own identity: two records would hold one code
    rejected(register, move_in("i1", resident_code=code, **_identity_of(register, 10)),
             "ConflictError", "died", "resident_code")
    rejected(register, move_in("i2", resident_code=code), "ConflictError", "died",
             "resident_code")
    assert register.counts()["residents"] == 14


def test_moved_out_code_moves_in_only_as_the_same_person(register: Register) -> None:
    code = code_of(register, 10)
    apply_ok(register, ev("move_out", "o1", resident_code=code, event_date=TODAY - D(5),
                          destination="大阪府大阪市北区"))
    ident = _identity_of(register, 10)
    other_birth = {**ident, "birth_date": ident["birth_date"] - D(1)}
    rejected(register, move_in("i1", resident_code=code, **other_birth), "ConflictError",
             "date of birth", "birth_date")
    rejected(register, move_in("i2", resident_code=code, **{**ident, "sex": 3 - ident["sex"]}),
             "ConflictError", "sex", "sex")
    # the same person (new name after a marriage is fine) comes back: a new record
    (back,) = apply_ok(register, move_in("i3", resident_code=code,
                                         **{**ident, "family_name": "山本"}))
    assert back == code
    assert register.counts()["removed"] == 1
    assert register.resident(code, actor=ADMIN)["status"] == "resident"


def test_ex_officio_removed_code_may_come_back_as_the_same_person(register: Register) -> None:
    code = code_of(register, 10)
    apply_ok(register, ev("ex_officio_removal", "x1", resident_code=code,
                          event_date=TODAY - D(5)))
    ident = _identity_of(register, 10)
    rejected(register, move_in("i1", resident_code=code,
                               **{**ident, "birth_date": dt.date(1999, 9, 9)}),
             "ConflictError", "not the same person", "birth_date")
    apply_ok(register, move_in("i2", resident_code=code, **ident))


# -- 2. a My Number recorded once is never recorded for anyone else --------------------------


def test_replaced_my_number_is_never_given_to_anyone(register: Register) -> None:
    a, b = code_of(register, 1), code_of(register, 3)
    leaked, fresh = make_my_number(111), make_my_number(222)
    apply_ok(register, ev("my_number", "m1", resident_code=a, my_number=leaked,
                          event_date=TODAY - D(9)))
    apply_ok(register, ev("my_number", "m2", resident_code=a, my_number=fresh,
                          event_date=TODAY - D(8)))  # replaced (leaked)
    rejected(register, ev("my_number", "m3", resident_code=b, my_number=leaked),
             "ConflictError", "replaced", "my_number")
    # nor back to its former holder
    rejected(register, ev("my_number", "m4", resident_code=a, my_number=leaked),
             "ConflictError", "replaced", "my_number")
    rejected(register, move_in("i1", my_number=leaked), "ConflictError", "replaced",
             "my_number")
    rejected(register, move_in("i2", resident_code=None, from_abroad=True,
                               previous_address="アメリカ合衆国", my_number=leaked),
             "ConflictError", "replaced", "my_number")


def test_my_number_of_a_removed_record_stays_its_holders(register: Register) -> None:
    dead, moved, other = code_of(register, 10), code_of(register, 12), code_of(register, 3)
    n_dead, n_moved = make_my_number(333), make_my_number(444)
    apply_ok(register,
             ev("my_number", "m1", resident_code=dead, my_number=n_dead, event_date=TODAY - D(9)),
             ev("my_number", "m2", resident_code=moved, my_number=n_moved,
                event_date=TODAY - D(9)))
    apply_ok(register, ev("death", "d1", resident_code=dead, event_date=TODAY - D(5)),
             ev("move_out", "o1", resident_code=moved, event_date=TODAY - D(5),
                destination="大阪府大阪市北区"))
    rejected(register, ev("my_number", "m3", resident_code=other, my_number=n_dead),
             "ConflictError", "another person", "my_number")
    rejected(register, move_in("i1", my_number=n_moved), "ConflictError", "another person",
             "my_number")
    # the person who moved out comes back with their own number
    apply_ok(register, move_in("i2", resident_code=moved, my_number=n_moved,
                               **_identity_of(register, 12)))
    assert register.resident(moved, actor=ADMIN)["status"] == "resident"
