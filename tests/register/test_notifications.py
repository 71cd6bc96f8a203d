"""Each notification kind: what it changes, and every invalid case changing nothing.

Tiny municipality (person ids): household 1: 1 head, 2 妻; household 2: 3 head, 4, 5;
household 3: 6 head, 7, 8, 9; household 4: 10 alone; household 5: 11 head, 12;
household 6: 13 head, 14, 15.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from regkit import (
    ADDR,
    ADMIN,
    CLERK,
    TODAY,
    code_of,
    ev,
    make_block,
    make_code,
    make_my_number,
    move_in,
    tiny_municipality,
)

from jukicore.errors import ConflictError, InvalidInputError, NotFoundError
from jukicore.register import Register, events_table

D = dt.timedelta


def person(reg: Register, pid: int) -> dict[str, Any]:
    t = reg.residents(actor=ADMIN, include_removed=True).to_pylist()
    return next(r for r in t if r["person_id"] == pid)


def apply_ok(reg: Register, *events: dict[str, Any]) -> list[int | None]:
    rep = reg.apply(list(events), actor=CLERK, today=TODAY)
    assert rep.rejected == (), rep.rejected
    return rep.resident_codes.to_pylist()  # type: ignore[no-any-return]


def rejected(reg: Register, event: dict[str, Any], error: str, words: str) -> None:
    """The event is rejected with ``error`` mentioning ``words``, and nothing changed."""
    before = reg.content_digest()
    rep = reg.apply([event], actor=CLERK, today=TODAY)
    assert rep.applied == 0 and len(rep.rejected) == 1, rep
    r = rep.rejected[0]
    assert r.error == error, r
    assert words in r.reason, r
    assert reg.content_digest() == before


# -- birth ---------------------------------------------------------------------------------


def birth(nid: str = "b1", **kw: Any) -> dict[str, Any]:
    base = ev("birth", nid, event_date=TODAY - D(3), household_id=1, relationship="子",
              family_name="鈴木", given_name="三郎", family_name_kana="スズキ",
              given_name_kana="サブロウ", sex=1)
    base.update(kw)
    return base


def test_birth_creates_a_resident_with_a_fresh_code(register: Register) -> None:
    pool = register.counts()["code_pool"]
    (code,) = apply_ok(register, birth())
    assert code is not None
    rec = register.resident(code, actor=ADMIN)
    head = person(register, 1)
    assert rec["birth_date"] == rec["resident_since"] == TODAY - D(3)
    assert rec["household_id"] == 1 and rec["relationship"] == "子"
    assert rec["address"] == head["address"] and rec["domicile"] == head["domicile"]
    assert register.counts()["code_pool"] == pool - 1
    hist = register.history(code, actor=ADMIN).to_pylist()
    assert [(h["item"], h["old_value"], h["new_value"], h["reason"]) for h in hist] == [
        ("status", None, "resident", "birth")]


@pytest.mark.parametrize(("change", "error", "words"), [
    ({"given_name": None}, "InvalidInputError", "given_name"),
    ({"sex": 3}, "InvalidInputError", "sex"),
    ({"household_id": 99}, "NotFoundError", "household 99"),
    ({"relationship": "世帯主"}, "ConflictError", "one head"),
    ({"event_date": TODAY + D(1)}, "InvalidInputError", "after the notified date"),
    ({"notified_date": TODAY + D(1), "event_date": TODAY + D(1)}, "InvalidInputError", "future"),
    ({"kind": "adoption"}, "InvalidInputError", "unknown kind"),
    ({"notification_id": None}, "InvalidInputError", "notification_id"),
])
def test_birth_invalid(register: Register, change: dict[str, Any], error: str, words: str) -> None:
    rejected(register, birth(**change), error, words)


def test_birth_with_no_codes_left_is_rejected(empty_register: Register) -> None:
    residents, households = tiny_municipality()
    empty_register.load(residents, households, actor=ADMIN)
    left = empty_register.counts()["code_pool"]
    events = [birth(f"b{i}") for i in range(left)]
    apply_ok(empty_register, *events)
    rejected(empty_register, birth("b-last"), "CodeSpaceExhaustedError", "code block")


# -- death and ex officio removal ------------------------------------------------------------


def test_death_removes_and_keeps_the_record(register: Register) -> None:
    code = code_of(register, 2)
    apply_ok(register, ev("death", "d1", resident_code=code, event_date=TODAY - D(1)))
    rec = register.resident(code, actor=ADMIN)
    assert (rec["status"], rec["removal_reason"], rec["removal_date"]) == (
        "removed", "died", TODAY - D(1))
    assert register.counts()["removed"] == 1
    assert 2 not in register.residents(actor=ADMIN).column("person_id").to_pylist()


def test_death_of_a_head_names_the_new_head(register: Register) -> None:
    head, wife = code_of(register, 1), code_of(register, 2)
    rejected(register, ev("death", "d1", resident_code=head), "ConflictError", "new head")
    rejected(register, ev("death", "d1", resident_code=head, new_head_code=code_of(register, 3)),
             "ConflictError", "not a current member")
    apply_ok(register, ev("death", "d1", resident_code=head, new_head_code=wife))
    assert person(register, 2)["relationship"] == "世帯主"
    hh = register.households(actor=ADMIN).to_pylist()
    assert next(h for h in hh if h["household_id"] == 1)["head_resident_code"] == wife


def test_removed_resident_takes_no_more_notifications(register: Register) -> None:
    code = code_of(register, 10)
    apply_ok(register, ev("ex_officio_removal", "x1", resident_code=code))
    assert person(register, 10)["removal_reason"] == "ex_officio"
    rejected(register, ev("move_out", "m1", resident_code=code, destination="大阪府"),
             "ConflictError", "removed")
    rejected(register, ev("death", "d2", resident_code=code), "ConflictError", "removed")


def test_unknown_or_malformed_code(register: Register) -> None:
    rejected(register, ev("death", "d1", resident_code=make_code(123)), "NotFoundError",
             "no resident")
    bad = make_code(123) + 1 if make_code(123) % 10 != 9 else make_code(123) - 1
    rejected(register, ev("death", "d1", resident_code=bad), "InvalidInputError", "check digit")
    rejected(register, ev("death", "d1"), "InvalidInputError", "resident_code")


def test_death_before_birth_or_out_of_order(register: Register) -> None:
    code = code_of(register, 2)
    rejected(register, ev("death", "d1", resident_code=code, event_date=dt.date(1950, 1, 1)),
             "InvalidInputError", "date of birth")
    rejected(register, ev("death", "d1", resident_code=code, event_date=dt.date(2009, 1, 1)),
             "ConflictError", "in order")
    apply_ok(register, ev("name_change", "n1", resident_code=code, given_name="花江"))
    rejected(register, ev("death", "d1", resident_code=code, event_date=TODAY - D(5)),
             "ConflictError", "in order")


# -- move in / move out --------------------------------------------------------------------


def test_move_in_family_and_from_abroad(register: Register) -> None:
    codes = apply_ok(
        register,
        move_in("i1", household_id=500),
        move_in("i2", household_id=500, resident_code=make_code(4343), given_name="由美",
                given_name_kana="ユミ", sex=2, relationship="妻"),
        move_in("i3", resident_code=None, from_abroad=True, previous_address="アメリカ合衆国",
                street="2丁目2番2号", my_number=make_my_number(77)),
    )
    assert codes[:2] == [make_code(4242), make_code(4343)]
    assert codes[2] is not None  # drawn from the code pool
    rec = register.resident(make_code(4343), actor=ADMIN)
    assert rec["household_id"] == 500 and rec["move_in_notified"] == TODAY
    assert rec["previous_address"] == "大阪府大阪市北区1番地"
    assert rec["address"] == "東京都千代田区外神田1丁目1番1号"
    hh = {h["household_id"]: h for h in register.households(actor=ADMIN).to_pylist()}
    assert hh[500]["size"] == 2 and hh[500]["head_resident_code"] == make_code(4242)
    mn = register.resident(codes[2], actor=ADMIN)["my_number"]
    assert mn == str(make_my_number(77)).zfill(12)


@pytest.mark.parametrize(("change", "error", "words"), [
    ({"relationship": "子"}, "ConflictError", "head"),
    ({"resident_code": None}, "InvalidInputError", "resident code"),
    ({"postal_code": "12-3456"}, "InvalidInputError", "postal code"),
    ({"previous_address": None}, "InvalidInputError", "previous_address"),
    ({"birth_date": TODAY}, "InvalidInputError", "birth"),
    ({"household_id": 2, "relationship": "同居人"}, "ConflictError", "another address"),
    ({"my_number": make_my_number(5) + 1 if make_my_number(5) % 10 != 9 else 0},
     "InvalidInputError", "My Number"),
])
def test_move_in_invalid(register: Register, change: dict[str, Any], error: str,
                         words: str) -> None:
    rejected(register, move_in("i1", **change), error, words)


def test_move_in_with_a_current_residents_code(register: Register) -> None:
    rejected(register, move_in("i1", resident_code=code_of(register, 1)), "ConflictError",
             "current resident")


def test_move_in_with_a_code_never_issued_is_one_rejected_row(register: Register) -> None:
    # A code still in this municipality's block was never issued to anyone: a move-in
    # carrying it is refused as a row (else a later birth could take the same code).
    block = make_block(3)
    register.import_code_block(block, actor=ADMIN)
    rejected(register, move_in("i1", resident_code=int(block.codes[0])), "ConflictError",
             "never issued")


def test_move_out_and_back_keeps_the_old_record(register: Register) -> None:
    code = code_of(register, 10)
    apply_ok(register, ev("move_out", "o1", resident_code=code, event_date=TODAY + D(10),
                          destination="大阪府大阪市北区"))
    rec = person(register, 10)
    assert (rec["status"], rec["removal_reason"], rec["removal_date"],
            rec["move_out_destination"]) == ("removed", "moved_out", TODAY + D(10),
                                              "大阪府大阪市北区")
    # back again later with the same code (the same person): a new record, the 除票 stays
    ident = {k: rec[k] for k in ("family_name", "given_name", "family_name_kana",
                                 "given_name_kana", "birth_date", "sex")}
    rep = register.apply([move_in("i9", resident_code=code, notified_date=TODAY + D(30),
                                  event_date=TODAY + D(29), **ident)],
                         actor=CLERK, today=TODAY + D(30))
    assert rep.applied == 1
    assert register.counts()["removed"] == 1
    assert register.resident(code, actor=ADMIN)["status"] == "resident"
    assert len(register.history(code, actor=ADMIN)) >= 4


def test_move_out_rules(register: Register) -> None:
    head, member = code_of(register, 3), code_of(register, 4)
    rejected(register, ev("move_out", "o1", resident_code=member, destination="x",
                          event_date=TODAY + D(15)), "InvalidInputError", "planned")
    rejected(register, ev("move_out", "o1", resident_code=member), "InvalidInputError",
             "destination")
    rejected(register, ev("move_out", "o1", resident_code=member, destination="x",
                          whole_household=True), "ConflictError", "only the head")
    apply_ok(register, ev("move_out", "o1", resident_code=head, destination="福岡県",
                          whole_household=True))
    assert {person(register, p)["status"] for p in (3, 4, 5)} == {"removed"}
    assert 2 not in register.households(actor=ADMIN).column("household_id").to_pylist()


# -- move within, household changes --------------------------------------------------------------


def test_move_within_whole_household(register: Register) -> None:
    head = code_of(register, 6)
    apply_ok(register, ev("move_within", "w1", resident_code=head, whole_household=True,
                          **ADDR))
    for p in (6, 7, 8, 9):
        rec = person(register, p)
        assert rec["address"] == "東京都千代田区外神田1丁目1番1号"
        assert rec["address_since"] == TODAY
    hist = register.history(code_of(register, 7), actor=ADMIN).to_pylist()
    assert {h["item"] for h in hist} == {"postal_code", "town", "street", "address",
                                         "address_since"}
    assert all(h["reason"] == "move_within" and h["notification_id"] == "w1" for h in hist)


def test_move_within_alone_splits_the_household(register: Register) -> None:
    child = code_of(register, 8)
    apply_ok(register, ev("move_within", "w1", resident_code=child, **ADDR))
    rec = person(register, 8)
    assert rec["relationship"] == "世帯主" and rec["household_id"] not in (3,)
    rejected(register, ev("move_within", "w2", resident_code=code_of(register, 7),
                          whole_household=True, **{**ADDR, "street": "9丁目9番9号"}),
             "ConflictError", "only the head")
    rejected(register, ev("move_within", "w3", resident_code=child, **ADDR), "ConflictError",
             "current address")


def test_household_new_head_split_merge(register: Register) -> None:
    wife = code_of(register, 12)
    apply_ok(register, ev("household_change", "h1", resident_code=wife,
                          household_action="new_head", relationship="夫"))
    assert person(register, 12)["relationship"] == "世帯主"
    assert person(register, 11)["relationship"] == "夫"
    # split: a child leaves to head a household of its own at the same address
    child = code_of(register, 15)
    apply_ok(register, ev("household_change", "h2", resident_code=child,
                          household_action="split", household_id=700))
    assert person(register, 15)["household_id"] == 700
    # merge back
    apply_ok(register, ev("household_change", "h3", resident_code=child,
                          household_action="merge", household_id=6, relationship="子"))
    assert person(register, 15)["household_id"] == 6
    sizes = {h["household_id"]: h["size"] for h in register.households(actor=ADMIN).to_pylist()}
    assert 700 not in sizes and sizes[6] == 3


@pytest.mark.parametrize(("pid", "change", "error", "words"), [
    (12, {"household_action": "adopt"}, "InvalidInputError", "household_action"),
    (11, {"household_action": "new_head", "relationship": "夫"}, "ConflictError",
     "already heads"),
    (12, {"household_action": "new_head"}, "InvalidInputError", "relationship"),
    (10, {"household_action": "split"}, "ConflictError", "of one"),
    (11, {"household_action": "split"}, "ConflictError", "new head"),
    (12, {"household_action": "merge", "household_id": 1, "relationship": "子"},
     "ConflictError", "another address"),
    (12, {"household_action": "merge", "household_id": 5, "relationship": "子"},
     "ConflictError", "already a member"),
    (12, {"household_action": "merge", "household_id": 42, "relationship": "子"},
     "NotFoundError", "household 42"),
])
def test_household_change_invalid(register: Register, pid: int, change: dict[str, Any],
                                  error: str, words: str) -> None:
    rejected(register, ev("household_change", "h1", resident_code=code_of(register, pid),
                          **change), error, words)


# -- name, code, My Number -------------------------------------------------------------------


def test_name_change_history_and_outbox(register: Register) -> None:
    code = code_of(register, 2)
    seq = register.counts()["outbox"]
    apply_ok(register, ev("name_change", "n1", resident_code=code, family_name="佐々木",
                          family_name_kana="ササキ"))
    hist = register.history(code, actor=ADMIN).to_pylist()
    assert {(h["item"], h["old_value"], h["new_value"]) for h in hist} == {
        ("family_name", "鈴木", "佐々木"), ("family_name_kana", "スズキ", "ササキ")}
    out = register.outbox(actor=ADMIN, after_seq=seq).to_pylist()
    assert len(out) == 1 and out[0]["seq"] == seq + 1
    assert (out[0]["family_name"], out[0]["change_reason"], out[0]["change_date"]) == (
        "佐々木", "name_change", TODAY)
    # kana alone is not identity info: no outbox row
    apply_ok(register, ev("name_change", "n2", resident_code=code, given_name_kana="ハナ"))
    assert register.counts()["outbox"] == seq + 1
    rejected(register, ev("name_change", "n3", resident_code=code), "InvalidInputError",
             "at least one")
    rejected(register, ev("name_change", "n4", resident_code=code, family_name="佐々木"),
             "ConflictError", "current name")


def test_outbox_carries_only_identity_info(register: Register) -> None:
    cols = set(register.outbox(actor=ADMIN).column_names)
    assert not cols & {"domicile", "domicile_head", "household_id", "relationship", "my_number",
                       "family_name_kana", "given_name_kana"}
    assert {"family_name", "given_name", "birth_date", "sex", "address", "resident_code",
            "change_date", "change_reason"} <= cols


def test_code_change_retires_the_old_code_for_good(register: Register) -> None:
    old = code_of(register, 4)
    (new,) = apply_ok(register, ev("code_change", "c1", resident_code=old))
    assert new is not None and new != old
    assert register.resident(new, actor=ADMIN)["person_id"] == 4
    rejected(register, ev("death", "d1", resident_code=old), "ConflictError", "retired")
    rejected(register, move_in("i1", resident_code=old), "ConflictError", "retired")
    # the history is found under either code
    assert register.history(old, actor=ADMIN).equals(register.history(new, actor=ADMIN))
    out = register.outbox(actor=ADMIN).to_pylist()[-1]
    assert (out["resident_code"], out["previous_resident_code"]) == (new, old)


def test_my_number_assignment(register: Register) -> None:
    a, b = code_of(register, 1), code_of(register, 2)
    number = make_my_number(123456)
    apply_ok(register, ev("my_number", "m1", resident_code=a, my_number=number))
    assert register.resident(a, actor=ADMIN)["my_number"] == str(number).zfill(12)
    rejected(register, ev("my_number", "m2", resident_code=b, my_number=number),
             "ConflictError", "another person")
    rejected(register, ev("my_number", "m3", resident_code=a, my_number=number),
             "ConflictError", "already recorded")
    rejected(register, ev("my_number", "m4", resident_code=b), "InvalidInputError", "my_number")


# -- batches -------------------------------------------------------------------------------


def test_bulk_apply_reports_every_rejected_row(register: Register) -> None:
    events = [
        ev("name_change", "n1", resident_code=code_of(register, 1), given_name="次郎"),
        ev("death", "d1", resident_code=make_code(1)),
        birth("b1"),
        ev("my_number", "m1", resident_code=code_of(register, 2)),
    ]
    rep = register.apply(events, actor=CLERK, today=TODAY)
    assert rep.applied == 2 and rep.duplicates == 0
    assert [(r.row, r.notification_id, r.error) for r in rep.rejected] == [
        (1, "d1", "NotFoundError"), (3, "m1", "InvalidInputError")]
    assert rep.rejected_table().num_rows == 2
    nids = set(register.notifications(actor=ADMIN).column("notification_id").to_pylist())
    assert nids == {"n1", "b1"}


def test_apply_is_idempotent(register: Register) -> None:
    events = [birth("b1"), ev("name_change", "n1", resident_code=code_of(register, 3),
                              given_name="三郎")]
    first = register.apply(events, actor=CLERK, today=TODAY)
    digest = register.content_digest()
    again = register.apply(events, actor=CLERK, today=TODAY)
    assert (first.applied, again.applied, again.duplicates) == (2, 0, 2)
    assert register.content_digest() == digest
    # the same id twice in one batch applies once
    rep = register.apply([birth("b2"), birth("b2")], actor=CLERK, today=TODAY)
    assert (rep.applied, rep.duplicates) == (1, 1)


def test_later_rows_see_earlier_rows(register: Register) -> None:
    rep = register.apply([move_in("i1", household_id=900),
                          move_in("i2", household_id=900, resident_code=make_code(4343),
                                  relationship="子"),
                          ev("move_out", "o1", resident_code=make_code(4343), destination="x")],
                         actor=CLERK, today=TODAY)
    assert rep.applied == 3, rep.rejected


def test_arrow_table_input_and_bad_columns(register: Register) -> None:
    table = events_table([ev("name_change", "n1", resident_code=code_of(register, 1),
                             given_name="一")])
    assert register.apply(table, actor=CLERK, today=TODAY).applied == 1
    before = register.content_digest()
    with pytest.raises(InvalidInputError):
        register.apply(pa.table({"colour": ["red"]}), actor=CLERK, today=TODAY)
    # an unreadable value is one rejected row naming its column, not a failed batch
    report = register.apply(pa.table({"notification_id": ["z"], "event_date": ["not a date"]}),
                            actor=CLERK, today=TODAY)
    assert report.applied == 0 and [(r.row, r.column) for r in report.rejected] == \
        [(0, "event_date")]
    assert register.content_digest() == before


def test_notify_single_raises_typed_errors(register: Register) -> None:
    code = code_of(register, 1)
    assert register.notify(actor=CLERK, today=TODAY, notification_id="s1", kind="name_change",
                           notified_date=TODAY, event_date=TODAY, resident_code=code,
                           given_name="太") == code
    assert register.notify(actor=CLERK, today=TODAY, notification_id="s1", kind="name_change",
                           notified_date=TODAY, event_date=TODAY, resident_code=code,
                           given_name="太") is None
    before = register.content_digest()
    with pytest.raises(NotFoundError):
        register.notify(actor=CLERK, today=TODAY, **ev("death", "s2", resident_code=make_code(5)))
    with pytest.raises(ConflictError):
        register.notify(actor=CLERK, today=TODAY, **ev("death", "s3", resident_code=code))
    with pytest.raises(InvalidInputError):
        register.notify(actor=CLERK, today=TODAY, **ev("death", "s4"))
    assert register.content_digest() == before
