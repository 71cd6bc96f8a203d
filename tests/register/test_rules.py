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

import pyarrow.compute as pc
import pytest
from regkit import (
    ADMIN,
    CLERK,
    LOAD_DAY,
    TODAY,
    code_of,
    ev,
    load_on,
    make_block,
    make_code,
    make_my_number,
    move_in,
    tiny_municipality,
)

from jukicore.audit import verify
from jukicore.errors import InvalidInputError, JukiError, NotFoundError
from jukicore.register import Register
from jukicore.register._schema import TABLES

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


def test_my_number_replaced_earlier_in_the_same_batch(register: Register) -> None:
    a, b = code_of(register, 1), code_of(register, 3)
    leaked, fresh = make_my_number(111), make_my_number(222)
    rep = register.apply([
        ev("my_number", "m1", resident_code=a, my_number=leaked, event_date=TODAY - D(9)),
        ev("my_number", "m2", resident_code=a, my_number=fresh, event_date=TODAY - D(8)),
        ev("my_number", "m3", resident_code=b, my_number=leaked),
        move_in("i1", my_number=leaked),
    ], actor=CLERK, today=TODAY)
    assert rep.applied == 2
    assert [(r.notification_id, r.error, r.column) for r in rep.rejected] == [
        ("m3", "ConflictError", "my_number"), ("i1", "ConflictError", "my_number")]
    assert register.resident(b, actor=ADMIN)["my_number"] is None


def test_my_number_given_earlier_in_the_same_batch(register: Register) -> None:
    """A day's batch reads the holders of its My Numbers up front; a number given to one
    person by an earlier row of the batch is then held, for every later row."""
    a, b, c = code_of(register, 1), code_of(register, 3), code_of(register, 5)
    n = make_my_number(555)
    rep = register.apply([
        ev("my_number", "m1", resident_code=a, my_number=n),
        ev("my_number", "m2", resident_code=b, my_number=n),
        move_in("i1", my_number=n),
        ev("code_change", "c1", resident_code=a),
        ev("my_number", "m3", resident_code=c, my_number=n),
    ], actor=CLERK, today=TODAY)
    assert [(r.notification_id, r.error, r.column) for r in rep.rejected] == [
        ("m2", "ConflictError", "my_number"), ("i1", "ConflictError", "my_number"),
        ("m3", "ConflictError", "my_number")]
    assert rep.applied == 2
    assert register.resident(b, actor=ADMIN)["my_number"] is None


def test_dead_code_refused_in_the_same_batch(register: Register) -> None:
    code = code_of(register, 10)
    ident = _identity_of(register, 10)
    rep = register.apply([ev("death", "d1", resident_code=code, event_date=TODAY - D(5)),
                          move_in("i1", resident_code=code, **ident)], actor=CLERK, today=TODAY)
    assert rep.applied == 1 and [(r.notification_id, r.column) for r in rep.rejected] == [
        ("i1", "resident_code")]


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


# -- 3. a death dated before a later move ---------------------------------------------------

NEW_ADDR = {"postal_code": "1010021", "town": "外神田", "street": "1丁目1番1号"}


def _check_death_before_move(register: Register, together: bool) -> None:
    d_death, d_move = TODAY - D(7), TODAY - D(2)
    head, dead = code_of(register, 6), code_of(register, 8)
    old = person(register, 8)
    move = ev("move_within", "w1", resident_code=head, whole_household=True,
              notified_date=d_move, event_date=d_move, **NEW_ADDR)
    death = ev("death", "d1", resident_code=dead, event_date=d_death)
    if together:
        apply_ok(register, move, death)
    else:
        apply_ok(register, move)
        apply_ok(register, death)
    rec = person(register, 8)
    assert (rec["status"], rec["removal_reason"], rec["removal_date"]) == (
        "removed", "died", d_death)
    # the death took effect at its date: the dead person did not move
    assert (rec["address"], rec["address_since"], rec["postal_code"]) == (
        old["address"], old["address_since"], old["postal_code"])
    assert rec["updated_on"] == d_death
    assert {person(register, p)["address"] for p in (6, 7, 9)} == {
        "東京都千代田区外神田1丁目1番1号"}
    hist = register.history(dead, actor=ADMIN).to_pylist()
    moved = [h for h in hist if h["reason"] == "move_within"]
    assert moved and all(h["voided_by"] == "d1" for h in moved)
    died = [h for h in hist if h["reason"] == "death"]
    assert {h["item"] for h in died} >= {"status", "removal_reason", "removal_date"}
    assert all(h["voided_by"] is None and h["event_date"] == d_death for h in died)
    # the history that is not voided replays to the current record
    for item in ("address", "address_since", "town"):
        assert not [h for h in hist if h["item"] == item and h["voided_by"] is None]
    # as_of around it
    before = {r["person_id"]: r for r in register.as_of(d_death - D(1), actor=ADMIN).to_pylist()}
    assert before[8]["address"] == old["address"] and before[8]["status"] == "resident"
    assert before[6]["address"] == old["address"]
    for day in (d_death, d_move - D(1), d_move, TODAY):
        snap = {r["person_id"]: r for r in register.as_of(day, actor=ADMIN).to_pylist()}
        assert 8 not in snap, day
        assert 6 in snap and 7 in snap and 9 in snap
    at_move = {r["person_id"]: r for r in register.as_of(d_move, actor=ADMIN).to_pylist()}
    assert at_move[7]["address"] == "東京都千代田区外神田1丁目1番1号"
    hh = {h["household_id"]: h for h in
          register.households(actor=ADMIN, as_of=d_death - D(1)).to_pylist()}
    assert hh[3]["size"] == 4
    hh = {h["household_id"]: h for h in register.households(actor=ADMIN).to_pylist()}
    assert hh[3]["size"] == 3
    # the center learns the death at its date, with the address the person had then
    last = register.outbox(actor=ADMIN).to_pylist()[-1]
    assert (last["resident_code"], last["status"], last["change_date"], last["address"],
            last["change_reason"]) == (dead, "removed", d_death, old["address"], "death")


def test_death_dated_before_a_later_household_move(register: Register) -> None:
    _check_death_before_move(register, together=False)


def test_death_dated_before_a_move_of_the_same_batch(register: Register) -> None:
    _check_death_before_move(register, together=True)


def test_death_alone_before_own_move_restores_the_household(register: Register) -> None:
    code = code_of(register, 10)
    old = person(register, 10)
    apply_ok(register, ev("move_within", "w1", resident_code=code, event_date=TODAY - D(2),
                          **NEW_ADDR))
    apply_ok(register, ev("death", "d1", resident_code=code, event_date=TODAY - D(6)))
    assert person(register, 10)["address"] == old["address"]
    assert 4 not in {h["household_id"] for h in register.households(actor=ADMIN).to_pylist()}
    hh = {h["household_id"]: h for h in
          register.households(actor=ADMIN, as_of=TODAY - D(7)).to_pylist()}
    assert hh[4]["address"] == old["address"] and hh[4]["size"] == 1


def test_death_before_other_later_changes_stays_refused(register: Register) -> None:
    code = code_of(register, 8)
    apply_ok(register, ev("move_within", "w1", resident_code=code_of(register, 6),
                          whole_household=True, event_date=TODAY - D(3), **NEW_ADDR),
             ev("name_change", "n1", resident_code=code, given_name="一夫",
                event_date=TODAY - D(2)))
    rejected(register, ev("death", "d1", resident_code=code, event_date=TODAY - D(6)),
             "ConflictError", "name_change", "event_date")
    # before the record's address was set (loaded data): refused as before
    rejected(register, ev("death", "d2", resident_code=code_of(register, 2),
                          event_date=dt.date(2009, 1, 1)), "ConflictError", "in order",
             "event_date")
    # a move-out (not a death) dated before a later move stays refused
    rejected(register, ev("move_out", "o1", resident_code=code, event_date=TODAY - D(6),
                          destination="x"), "ConflictError", "in order", "event_date")


# -- 4. households: a one-person household joins another; relationships restated -------------


def test_one_person_household_moving_within_joins_another(register: Register) -> None:
    alone, head6 = code_of(register, 10), code_of(register, 13)
    target = person(register, 13)
    addr = {"postal_code": target["postal_code"], "town": target["town"],
            "street": target["street"]}
    # without a relationship it cannot join; with 世帯主 neither (household 6 has its head)
    rejected(register, ev("move_within", "w0", resident_code=alone, household_id=6, **addr),
             "InvalidInputError", "relationship", "relationship")
    rejected(register, ev("move_within", "w0", resident_code=alone, household_id=6,
                          relationship="世帯主", **addr), "ConflictError", "one head",
             "relationship")
    # a household elsewhere: refused, not silently ignored
    rejected(register, ev("move_within", "w0", resident_code=alone, household_id=5,
                          relationship="同居人", **addr), "ConflictError", "another address",
             "household_id")
    apply_ok(register, ev("move_within", "w1", resident_code=alone, household_id=6,
                          relationship="同居人", event_date=TODAY - D(1), **addr))
    rec = person(register, 10)
    assert (rec["household_id"], rec["relationship"], rec["address"]) == (
        6, "同居人", target["address"])
    hh = {h["household_id"]: h for h in register.households(actor=ADMIN).to_pylist()}
    assert 4 not in hh  # the old household was dissolved
    assert hh[6]["size"] == 4 and hh[6]["head_resident_code"] == head6
    hist = {h["item"]: h for h in register.history(alone, actor=ADMIN).to_pylist()}
    assert (hist["household_id"]["old_value"], hist["household_id"]["new_value"]) == ("4", "6")
    assert hist["relationship"]["new_value"] == "同居人"
    before = {h["household_id"]: h for h in
              register.households(actor=ADMIN, as_of=TODAY - D(2)).to_pylist()}
    assert before[4]["size"] == 1 and before[6]["size"] == 3


def test_one_person_household_moving_alone_stays_its_head(register: Register) -> None:
    alone = code_of(register, 10)
    rejected(register, ev("move_within", "w1", resident_code=alone, relationship="子",
                          **NEW_ADDR), "ConflictError", "head", "relationship")
    apply_ok(register, ev("move_within", "w2", resident_code=alone, **NEW_ADDR))
    rec = person(register, 10)
    assert (rec["household_id"], rec["relationship"]) == (4, "世帯主")


def test_whole_household_move_does_not_ignore_a_household_id(register: Register) -> None:
    rejected(register, ev("move_within", "w1", resident_code=code_of(register, 11),
                          whole_household=True, household_id=6, **NEW_ADDR),
             "ConflictError", "merge", "household_id")


def test_relationship_restated_by_a_household_change(register: Register) -> None:
    child, head = code_of(register, 4), code_of(register, 3)
    apply_ok(register, ev("household_change", "h1", resident_code=child,
                          household_action="relationship", relationship="同居人",
                          event_date=TODAY - D(3)))
    assert person(register, 4)["relationship"] == "同居人"
    hist = [h for h in register.history(child, actor=ADMIN).to_pylist()
            if h["item"] == "relationship"]
    assert [(h["old_value"], h["new_value"], h["reason"], h["notification_id"]) for h in hist] \
        == [("妻", "同居人", "household_change", "h1")]
    audit = [a for a in register.audit_log(actor=ADMIN).to_pylist()
             if a["action"] != "register.read"][-1]  # (reads are audited too)
    assert (audit["action"], audit["notification_id"]) == ("notify.household_change", "h1")
    before = {r["person_id"]: r for r in register.as_of(TODAY - D(4), actor=ADMIN).to_pylist()}
    assert before[4]["relationship"] == "妻"
    rejected(register, ev("household_change", "h2", resident_code=child,
                          household_action="relationship", relationship="同居人"),
             "ConflictError", "already", "relationship")
    rejected(register, ev("household_change", "h3", resident_code=child,
                          household_action="relationship", relationship="世帯主"),
             "ConflictError", "one head", "relationship")
    rejected(register, ev("household_change", "h4", resident_code=head,
                          household_action="relationship", relationship="子"),
             "ConflictError", "heads household", "resident_code")
    rejected(register, ev("household_change", "h5", resident_code=child,
                          household_action="relationship"),
             "InvalidInputError", "relationship", "relationship")


def test_new_head_restates_the_other_members(register: Register) -> None:
    head, wife, c1, c2 = (code_of(register, p) for p in (6, 7, 8, 9))
    change = ev("household_change", "h1", resident_code=wife, household_action="new_head",
                relationship="夫", event_date=TODAY - D(2))
    for bad, error, words in [
        ([{"resident_code": code_of(register, 1), "relationship": "子"}], "ConflictError",
         "not another member"),
        ([{"resident_code": head, "relationship": "子"}], "ConflictError", "not another member"),
        ([{"resident_code": c1, "relationship": "世帯主"}], "ConflictError", "one head"),
        ([{"resident_code": c1, "relationship": "子"}, {"resident_code": c1,
                                                       "relationship": "子"}],
         "InvalidInputError", "twice"),
        ([{"resident_code": c1, "relationship": None}], "InvalidInputError", "names"),
    ]:
        rejected(register, {**change, "restated_relationships": bad}, error, words,
                 "restated_relationships")
    # never silently ignored: only a new_head change restates others
    for other in (ev("household_change", "h2", resident_code=c1, household_action="split"),
                  ev("name_change", "h3", resident_code=c1, given_name="新")):
        rejected(register, {**other, "restated_relationships": [
            {"resident_code": c2, "relationship": "子"}]}, "InvalidInputError", "new_head",
            "restated_relationships")
    apply_ok(register, {**change, "restated_relationships": [
        {"resident_code": c1, "relationship": "子"},
        {"resident_code": c2, "relationship": "夫の子"}]})
    rels = {p: person(register, p)["relationship"] for p in (6, 7, 8, 9)}
    assert rels == {6: "夫", 7: "世帯主", 8: "子", 9: "夫の子"}
    hist = [h for h in register.history(c2, actor=ADMIN).to_pylist()
            if h["item"] == "relationship"]
    assert [(h["old_value"], h["new_value"], h["notification_id"]) for h in hist] == [
        ("子", "夫の子", "h1")]


# -- 5. purging a 除票 purges the person's data everywhere ------------------------------------


def _all_cells(reg: Register) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the store (raw, as the database holds it)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with reg._b.session(write=False) as s:
        for t in TABLES:
            out[t.name] = [dict(zip(t.names, row, strict=True))
                           for row in s.query(f"SELECT {', '.join(t.names)} FROM {t.name}")]
    return out


def test_purge_leaves_no_trace_of_the_person(register: Register) -> None:
    old_code = code_of(register, 10)
    number = make_my_number(98765)
    apply_ok(register, ev("code_change", "c1", resident_code=old_code, event_date=TODAY - D(9)))
    code = code_of(register, 10)
    apply_ok(register,
             ev("name_change", "n1", resident_code=code, family_name="忘却",
                given_name="消去", event_date=TODAY - D(8)),
             ev("my_number", "m1", resident_code=code, my_number=number,
                event_date=TODAY - D(7)),
             ev("move_within", "w1", resident_code=code, event_date=TODAY - D(6), **NEW_ADDR),
             ev("death", "d1", resident_code=code, event_date=TODAY - D(5)))
    # another person's data stays: person 12 (code kept) dies too but later
    keep = code_of(register, 12)
    apply_ok(register, ev("death", "d2", resident_code=keep, event_date=TODAY))
    audit_rows = register.counts()["audit"]
    died = TODAY - D(5)
    assert register.purge_expired(actor=ADMIN, today=died.replace(year=died.year + 150)) == 0
    after = died.replace(year=died.year + 150) + D(1)
    assert register.purge_expired(actor=ADMIN, today=after) == 1
    rows = _all_cells(register)
    codes = {old_code, code}
    texts = {"忘却", "消去", str(code).zfill(11), str(old_code).zfill(11),
             str(number).zfill(12), "外神田"}
    for table, content in rows.items():
        for row in content:
            for col, value in row.items():
                if (table, col) in (("retired_codes", "code"), ("audit", "target")):
                    # bare codes, linked to nobody: never issued again; the audit log is
                    # append-only (its entries name the code, never the person's data)
                    continue
                assert not (isinstance(value, int) and value in codes | {number}), (table, col)
                assert not (isinstance(value, str) and any(t in value for t in texts)), (
                    table, col, value)
                if col in ("person_id", "head_person_id"):
                    assert value != 10, (table, col)
    assert not [h for h in rows["households"] if h["household_id"] == 4]
    assert {(r["code"], r["person_id"], r["notification_id"]) for r in rows["retired_codes"]} \
        == {(old_code, 0, None), (code, 0, None)}
    # the audit rows are kept (what was done, when, by whom), the one for the purge added,
    # and the log still verifies
    assert verify(register._b, node_id=register.lg_code, keys=[]).ok
    assert len(rows["audit"]) == audit_rows + 2  # both purges
    assert sorted(a["notification_id"] for a in rows["audit"]
                  if a["action"] == "notify.death") == ["d1", "d2"]
    # the other dead person's records are still there
    assert register.resident(keep, actor=ADMIN)["status"] == "removed"
    assert any(o["resident_code"] == keep for o in rows["outbox"])
    assert {n["notification_id"] for n in rows["notifications"]} == {"d2"}
    # and the purged codes never come back
    rejected(register, move_in("i1", resident_code=code), "ConflictError", "retired",
             "resident_code")
    rejected(register, move_in("i2", resident_code=old_code), "ConflictError", "retired",
             "resident_code")


# -- 6. a reused notification id is a repeat only with identical content ---------------------


def test_reused_notification_id_with_other_content_is_a_conflict(register: Register) -> None:
    a, b = code_of(register, 1), code_of(register, 3)
    first = ev("name_change", "n1", resident_code=a, given_name="一")
    apply_ok(register, first)
    digest = register.content_digest()
    # identical content (an absent column is the same as a null one): a repeat, skipped
    for batch in ([first], [{**first, "building": None}],
                  [first, ev("name_change", "n2", resident_code=b, given_name="三")]):
        rep = register.apply(batch, actor=CLERK, today=TODAY)
        assert rep.rejected == () and rep.duplicates == 1
    digest = register.content_digest()
    # other content under the same id, alone (per-row lookup) or in a batch (prefetched)
    for other in ({**first, "given_name": "二"}, {**first, "resident_code": b},
                  {**first, "event_date": TODAY - D(1)}):
        rejected(register, other, "ConflictError", "other content", "notification_id")
        rep = register.apply([ev("name_change", "n3", resident_code=b, given_name="参"), other],
                             actor=CLERK, today=TODAY)
        assert [(r.row, r.error, r.column) for r in rep.rejected] == [
            (1, "ConflictError", "notification_id")]
        assert register.resident(a, actor=ADMIN)["given_name"] == "一"
        register.apply([ev("name_change", "n4", resident_code=b, given_name="三")],
                       actor=CLERK, today=TODAY)
    assert register.resident(b, actor=ADMIN)["given_name"] == "三"
    # the same id twice in one batch with different content: the second is refused
    rep = register.apply([ev("name_change", "n5", resident_code=a, given_name="壱"),
                          ev("name_change", "n5", resident_code=a, given_name="弐")],
                         actor=CLERK, today=TODAY)
    assert rep.applied == 1 and [(r.row, r.column) for r in rep.rejected] == [
        (1, "notification_id")]
    assert register.resident(a, actor=ADMIN)["given_name"] == "壱"
    assert digest != register.content_digest()


def test_ids_applied_before_the_digest_compare_what_the_log_holds(register: Register) -> None:
    """Rows applied before schema version 5 have no digest (the migration leaves it null):
    a repeat must match kind, dates and, for kinds naming a resident, the code."""
    a, b = code_of(register, 1), code_of(register, 3)
    first = ev("name_change", "n1", resident_code=a, given_name="一")
    apply_ok(register, first)
    with register._b.session() as s:
        s.execute("UPDATE notifications SET digest = NULL")
    for batch in ([first], [first, ev("name_change", "n2", resident_code=b, given_name="三")]):
        rep = register.apply(batch, actor=CLERK, today=TODAY)
        assert rep.rejected == () and rep.duplicates == 1
    digest = register.content_digest()
    for other in ({**first, "resident_code": b}, {**first, "event_date": TODAY - D(1)},
                  {**first, "kind": "death"}):
        rejected(register, other, "ConflictError", "other content", "notification_id")
    assert register.content_digest() == digest


# -- 7. lookups: retired codes, malformed codes, codes as strings, as_of before the load -----


def test_retired_code_answers_the_same_living_or_dead(register: Register) -> None:
    old = code_of(register, 4)
    (new,) = apply_ok(register, ev("code_change", "c1", resident_code=old,
                                   event_date=TODAY - D(5)))
    assert new is not None
    living = register.resident(old, actor=ADMIN)
    assert (living["person_id"], living["status"], living["resident_code"],
            living["via_retired_code"]) == (4, "resident", str(new).zfill(11),
                                            str(old).zfill(11))
    assert register.resident(new, actor=ADMIN)["via_retired_code"] is None
    # notifications naming the retired code: one answer too
    rejected(register, ev("name_change", "n1", resident_code=old, given_name="x"),
             "ConflictError", "retired", "resident_code")
    apply_ok(register, ev("death", "d1", resident_code=new, event_date=TODAY - D(1)))
    dead = register.resident(old, actor=ADMIN)
    assert (dead["person_id"], dead["status"], dead["resident_code"],
            dead["via_retired_code"]) == (4, "removed", str(new).zfill(11), str(old).zfill(11))
    assert set(dead) == set(living)
    rejected(register, ev("name_change", "n2", resident_code=old, given_name="x"),
             "ConflictError", "retired", "resident_code")


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def test_resident_takes_well_formed_codes_and_answers_in_strings(register: Register) -> None:
    code = code_of(register, 1)
    number = make_my_number(5150)
    apply_ok(register, ev("my_number", "m1", resident_code=code, my_number=number))
    rec = register.resident(code, actor=ADMIN)
    assert rec["resident_code"] == str(code).zfill(11) and len(rec["resident_code"]) == 11
    assert rec["my_number"] == str(number).zfill(12)
    assert register.resident(str(code).zfill(11), actor=ADMIN) == rec
    assert register.resident(rec["resident_code"], actor=ADMIN) == rec
    assert register.resident(code_of(register, 2), actor=ADMIN)["my_number"] is None
    before = register.content_digest()
    bad_check = code + 1 if code % 10 != 9 else code - 1
    for bad in ("abc", "", str(code).zfill(11).translate(FULL_WIDTH), str(code).zfill(11) + "0", -1,
                2**64, True, None, 1.5, [code], bad_check):
        with pytest.raises(InvalidInputError):
            register.resident(bad, actor=ADMIN)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            register.history(bad, actor=ADMIN)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        register.resident(make_code(99), actor=ADMIN)
    assert register.content_digest() == before


def test_as_of_before_the_load_says_where_the_history_starts(register: Register) -> None:
    assert register.history_start() == LOAD_DAY
    assert register.as_of(LOAD_DAY, actor=ADMIN).num_rows == 15
    for day in (LOAD_DAY - D(1), dt.date(2005, 4, 1), dt.date(1900, 1, 1)):
        with pytest.raises(InvalidInputError, match=f"starts at {LOAD_DAY.isoformat()}"):
            register.as_of(day, actor=ADMIN)
        with pytest.raises(JukiError, match=LOAD_DAY.isoformat()):
            register.households(actor=ADMIN, as_of=day)
    with pytest.raises(InvalidInputError):
        register.as_of("2024-01-01", actor=ADMIN)  # type: ignore[arg-type]


def test_history_start_moves_to_a_later_load(empty_register: Register,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert empty_register.history_start() is None  # nothing loaded: all history is recorded
    residents, households = tiny_municipality(2)
    load_on(empty_register, LOAD_DAY, monkeypatch, residents, households)
    second = LOAD_DAY + D(30)
    others = residents.set_column(  # other people: the same ones would be refused
        residents.schema.get_field_index("given_name"), "given_name",
        pc.binary_join_element_wise(residents.column("given_name"), "美", ""))
    load_on(empty_register, second, monkeypatch, others, households)
    assert empty_register.history_start() == second
    with pytest.raises(InvalidInputError, match=second.isoformat()):
        empty_register.as_of(second - D(1), actor=ADMIN)
    assert empty_register.as_of(second, actor=ADMIN).num_rows == 2 * residents.num_rows


# -- 8. a planned move-out closed at the actual move-in date (move_out_correction) -----------


def _by_pid(table: Any) -> dict[int, dict[str, Any]]:
    return {r["person_id"]: r for r in table.to_pylist()}


def test_move_out_correction_closes_the_record_at_the_actual_date(register: Register) -> None:
    code = code_of(register, 10)
    planned, actual, told = TODAY + D(10), TODAY + D(3), TODAY + D(5)
    apply_ok(register, ev("move_out", "o1", resident_code=code, event_date=planned,
                          destination="大阪府大阪市北区"))
    correction = ev("move_out_correction", "oc1", resident_code=code, event_date=actual,
                    notified_date=told)
    apply_ok(register, correction, today=told)
    rec = person(register, 10)
    assert (rec["status"], rec["removal_reason"], rec["removal_date"],
            rec["move_out_destination"], rec["updated_on"]) == (
        "removed", "moved_out", actual, "大阪府大阪市北区", actual)
    hist = register.history(code, actor=ADMIN).to_pylist()
    old = [h for h in hist if h["reason"] == "move_out"]
    new = [h for h in hist if h["reason"] == "move_out_correction"]
    assert old and all(h["voided_by"] == "oc1" and h["event_date"] == planned for h in old)
    assert {(h["item"], h["old_value"], h["new_value"]) for h in new} == {
        ("status", "resident", "removed"), ("removal_reason", None, "moved_out"),
        ("removal_date", None, actual.isoformat()),
        ("move_out_destination", None, "大阪府大阪市北区")}
    assert all(h["event_date"] == actual and h["voided_by"] is None
               and h["notification_id"] == "oc1" for h in new)
    # the outbox tells the prefecture and the center: same code, removed, the earlier date
    last = register.outbox(actor=ADMIN).to_pylist()[-1]
    assert (last["resident_code"], last["status"], last["change_date"], last["change_reason"],
            last["notification_id"]) == (code, "removed", actual, "move_out_correction", "oc1")
    assert 10 in _by_pid(register.as_of(actual - D(1), actor=ADMIN))
    for day in (actual, planned - D(1), planned):
        assert 10 not in _by_pid(register.as_of(day, actor=ADMIN)), day
    hh = {h["household_id"]: h for h in register.export(actor=ADMIN)["households"].to_pylist()}
    assert hh[4]["dissolved_on"] == actual
    audit = [a for a in register.audit_log(actor=ADMIN).to_pylist()
             if a["action"] != "register.read"][-2]  # (the export's entry is last)
    assert (audit["action"], audit["notification_id"]) == ("notify.move_out_correction", "oc1")
    # a repeat is a duplicate; an even earlier correction later still works
    rep = register.apply([correction], actor=CLERK, today=told)
    assert rep.duplicates == 1
    apply_ok(register, ev("move_out_correction", "oc2", resident_code=code,
                          event_date=actual - D(1), notified_date=told), today=told)
    assert person(register, 10)["removal_date"] == actual - D(1)
    live = [h for h in register.history(code, actor=ADMIN).to_pylist()
            if h["voided_by"] is None and h["item"] == "removal_date"]
    assert [h["new_value"] for h in live] == [(actual - D(1)).isoformat()]
    # the same person may come back later with the code
    ident = {k: rec[k] for k in ("family_name", "given_name", "family_name_kana",
                                 "given_name_kana", "birth_date", "sex")}
    apply_ok(register, move_in("i1", resident_code=code, event_date=told, notified_date=told,
                               **ident), today=told)


def test_move_out_correction_refusals(register: Register) -> None:
    moved, dead, living = code_of(register, 12), code_of(register, 2), code_of(register, 3)
    told = TODAY + D(5)
    apply_ok(register, ev("name_change", "n1", resident_code=moved, given_name="改",
                          event_date=TODAY - D(2)),
             ev("move_out", "o1", resident_code=moved, event_date=TODAY + D(4),
                destination="x", new_head_code=None),
             ev("death", "d1", resident_code=dead, event_date=TODAY - D(1)))

    def corr(code: int, day: dt.date, nid: str = "oc") -> dict[str, Any]:
        return ev("move_out_correction", nid, resident_code=code, event_date=day,
                  notified_date=told)

    for event, error, words, column in [
        (corr(moved, TODAY + D(4)), "ConflictError", "not before", "event_date"),
        (corr(moved, TODAY + D(6)), "InvalidInputError", "after the notified", "event_date"),
        (corr(moved, TODAY - D(3)), "ConflictError", "given_name", "event_date"),
        (corr(moved, dt.date(2004, 1, 1)), "ConflictError", "before the record began",
         "event_date"),
        (corr(dead, TODAY - D(2)), "ConflictError", "died", "resident_code"),
        (corr(living, TODAY), "ConflictError", "not moved out", "resident_code"),
        (corr(make_code(77), TODAY), "NotFoundError", "no record", "resident_code"),
        ({**corr(moved, TODAY), "resident_code": None}, "InvalidInputError", "resident_code",
         "resident_code"),
    ]:
        rejected(register, event, error, words, column, today=told)
    apply_ok(register, corr(moved, TODAY), today=told)


def test_history_lists_changes_in_event_date_order(register: Register) -> None:
    head, dead = code_of(register, 6), code_of(register, 8)
    apply_ok(register, ev("move_within", "w1", resident_code=head, whole_household=True,
                          event_date=TODAY - D(2), **NEW_ADDR))
    apply_ok(register, ev("death", "d1", resident_code=dead, event_date=TODAY - D(7)))
    hist = register.history(dead, actor=ADMIN).to_pylist()
    assert [h["event_date"] for h in hist] == sorted(h["event_date"] for h in hist)
    assert hist[0]["reason"] == "death" and hist[-1]["reason"] == "move_within"


def test_head_dead_before_the_household_move_hands_over_at_the_death(
        register: Register) -> None:
    head, wife = code_of(register, 6), code_of(register, 7)
    old = person(register, 6)
    d_death, d_move = TODAY - D(7), TODAY - D(2)
    apply_ok(register, ev("move_within", "w1", resident_code=head, whole_household=True,
                          event_date=d_move, **NEW_ADDR))
    rejected(register, ev("death", "d0", resident_code=head, event_date=d_death),
             "ConflictError", "new head", "new_head_code")
    apply_ok(register, ev("death", "d1", resident_code=head, event_date=d_death,
                          new_head_code=wife))
    assert person(register, 6)["address"] == old["address"]
    assert person(register, 7)["relationship"] == "世帯主"
    for day, head_pid, size in ((d_death - D(1), 6, 4), (d_death, 7, 3), (d_move, 7, 3)):
        hh = {h["household_id"]: h for h in
              register.households(actor=ADMIN, as_of=day).to_pylist()}
        assert (hh[3]["head_person_id"], hh[3]["size"]) == (head_pid, size), day
    now = {h["household_id"]: h for h in register.households(actor=ADMIN).to_pylist()}
    assert now[3]["address"] == "東京都千代田区外神田1丁目1番1号"


# -- migrations: a version-2 register opens with these rules ----------------------------------


def test_version_2_register_migrates_and_keeps_its_repeats(store_target: str) -> None:
    """A register made by the previous jukicore (schema v2, one applied notification) opens,
    migrates to the current version, and treats a repeat of its old notification by what
    the log holds (no digest)."""
    from jukicore.register import open_register
    from jukicore.register._schema import MIGRATIONS, SCHEMA_VERSION
    from jukicore.store.backend import connect, migrate

    backend = connect(store_target, create=True)
    with backend.session() as s:
        migrate(s, "schema_version", MIGRATIONS[:2], 0)
        s.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                      [("lg_code", "131016"), ("prefecture", "東京都"),
                       ("municipality", "千代田区"), ("outbox_seq", "0")])
    backend.close()
    reg = open_register(store_target)
    try:
        assert reg.schema_version == SCHEMA_VERSION >= 5
        residents, households = tiny_municipality()
        reg.import_code_block(make_block(50), actor=ADMIN)
        with pytest.MonkeyPatch.context() as mp:
            load_on(reg, LOAD_DAY, mp, residents, households)
        code = code_of(reg, 1)
        first = ev("name_change", "n1", resident_code=code, given_name="一")
        apply_ok(reg, first)
        with reg._b.session() as s:  # as a v2 register recorded it: no digest
            s.execute("UPDATE notifications SET digest = NULL")
        assert reg.notifications(actor=ADMIN).column("digest").to_pylist() == [None]
        assert reg.apply([first], actor=CLERK, today=TODAY).duplicates == 1
        rejected(reg, {**first, "event_date": TODAY - D(1)}, "ConflictError", "other content",
                 "notification_id")
        assert "voided_by" in reg.history(code, actor=ADMIN).column_names
    finally:
        reg.close()
