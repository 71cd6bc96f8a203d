"""The special move-in/out (転入転出の特例) end to end, on SQLite and PostgreSQL: A (千代田区)
records a move-out filed with a card, B (新宿区) moves the person in with the card and its
PIN, fetching the data from A through the route (call_local: the server's own path), and
A closes the move-out on B's confirmation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from movekit import (
    ADMINS,
    DESTINATION,
    FILED,
    NOTIFIED,
    PLANNED,
    STAFF,
    A,
    B,
    C,
    D,
    Towns,
    card_holder,
    code_of,
    file_out,
    move_in,
)

from jukicore.errors import (
    ConflictError,
    InvalidInputError,
    JukiError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)
from jukicore.moves import CONFIRM_PATH, FETCH_PATH, ROUTES, data_digest
from jukicore.network.service import Peer, call_local
from jukicore.register._checks import fmt_code


def _actions(town: Any, target: str | None = None) -> list[str]:
    log = town.reg.audit_log(actor=ADMINS[town.lg]).to_pylist()
    return [r["action"] for r in log if target is None or r["target"] == target]


def _fetch_body(code: int, cid: str, pin: str = "4321", arrival: dt.date = PLANNED,
                notified: dt.date = NOTIFIED) -> dict[str, Any]:
    return {"resident_code": fmt_code(code), "card_id": cid, "pin": pin,
            "moved_in_on": arrival.isoformat(), "notified_on": notified.isoformat()}


def _record(town: Any, code: int) -> dict[str, Any]:
    return dict(town.reg.resident(code, actor=ADMINS[town.lg]))


# -- the whole move ---------------------------------------------------------------------


def test_the_special_move_from_filing_to_closing(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)  # 伊藤太郎, alone in household 4
    out = file_out(towns, code, cid, filed_by="online")
    assert (out["state"], out["destination_lg"], out["fetches"]) == ("open", B, 0)
    old = _record(towns.a, code)
    assert (old["status"], old["removal_reason"], old["removal_date"]) == (
        "removed", "moved_out", PLANNED)
    assert old["move_out_destination"] == DESTINATION
    listed = towns.a.cards.list(actor=ADMINS[A], today=FILED).to_pylist()
    assert listed[0]["moved_out_on"] == PLANNED

    got = move_in(towns, code, cid, arrival=PLANNED, today=D(2024, 6, 12))
    assert (got["state"], got["card_continued"], got["attempts"]) == ("confirmed", 1, 0)
    assert got["removal_date"] == PLANNED and got["move_out_id"] == "out-1"
    new = _record(towns.b, code)  # the same resident code, continuing
    assert (new["status"], new["resident_code"], new["address_since"]) == (
        "resident", fmt_code(code), PLANNED)
    assert (new["family_name"], new["given_name"], new["birth_date"]) == (
        old["family_name"], old["given_name"], old["birth_date"])
    assert new["my_number"] == old["my_number"] and new["domicile"] == old["domicile"]
    assert new["previous_address"] == old["address"]
    assert new["move_in_notified"] == D(2024, 6, 12)
    # the card continues at B: recorded there, its PIN (checked at A) under B's key
    card = towns.b.cards.list(actor=ADMINS[B], today=D(2024, 6, 12)).to_pylist()
    assert [(c["card_id"], c["state"], c["issuer"], c["continued_on"]) for c in card] == [
        (cid, "active", A, D(2024, 6, 12))]
    noon = dt.datetime(2024, 6, 12, 3, tzinfo=dt.UTC)
    assert towns.b.cards.verify_pin(cid, "4321", actor=STAFF[B], now=noon) == code
    # A closed the move-out: final, its data never served again
    row = towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()[0]
    assert (row["state"], row["move_in_id"], row["moved_in_on"], row["corrected"],
            row["fetches"]) == ("closed", "in-1", PLANNED, 0, 1)
    with pytest.raises(ConflictError, match="closed"):
        call_local(towns.ctx_a, ROUTES, Peer("node", B), FETCH_PATH, _fetch_body(code, cid))
    assert _actions(towns.a, fmt_code(code)).count("special_move.provide") == 1
    assert {"special_move.out", "special_move.provide", "special_move.close"} <= set(
        _actions(towns.a))
    assert {"special_move.in", "special_move.confirmed", "card.continue_use"} <= set(
        _actions(towns.b))


def test_an_arrival_before_the_planned_date_redates_the_move_out(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid, planned_on=D(2024, 6, 15))
    got = move_in(towns, code, cid, arrival=D(2024, 6, 8), today=D(2024, 6, 9))
    assert (got["state"], got["removal_date"]) == ("confirmed", D(2024, 6, 8))
    old = _record(towns.a, code)
    assert old["removal_date"] == D(2024, 6, 8)
    assert towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()[0]["corrected"] == 1


def test_a_resident_register_card_serves_but_does_not_continue(towns: Towns) -> None:
    code, cid = card_holder(towns, 10, kind="juki_photo", pin="3690", day=D(2015, 6, 1))
    file_out(towns, code, cid)
    got = move_in(towns, code, cid, pin="3690")
    assert (got["state"], got["card_continued"]) == ("confirmed", 0)
    assert towns.b.cards.list(actor=ADMINS[B]).num_rows == 0  # B collects it, no row


def test_a_member_joins_a_household_at_the_new_address(towns: Towns) -> None:
    c1, k1 = card_holder(towns, 10)
    c2, k2 = card_holder(towns, 11, pin="1111")  # 渡辺太郎, head of household 5
    file_out(towns, c1, k1)
    move_in(towns, c1, k1)
    hid = int(towns.b.reg.resident(c1, actor=ADMINS[B])["household_id"])
    members = towns.a.reg.residents(actor=ADMINS[A]).to_pylist()
    heir = next(r for r in members if r["household_id"] == 5 and r["person_id"] != 11)
    file_out(towns, c2, k2, nid="out-2", new_head_code=heir["resident_code"])
    got = move_in(towns, c2, k2, nid="in-2", pin="1111", household_id=hid,
                  relationship="同居人")
    assert got["state"] == "confirmed"
    rec = _record(towns.b, c2)
    assert (rec["household_id"], rec["relationship"]) == (hid, "同居人")


# -- the windows: exact boundaries --------------------------------------------------------


def test_fourteen_days_after_arrival_at_most(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    arrival = D(2024, 6, 10)
    before = towns.digests()
    with pytest.raises(ConflictError, match=r"within 14 days of the arrival.*day 15"):
        move_in(towns, code, cid, arrival=arrival, today=arrival + dt.timedelta(days=15))
    with pytest.raises(InvalidInputError, match="after the move-in notification"):
        move_in(towns, code, cid, arrival=arrival, today=arrival - dt.timedelta(days=1))
    # A checks the window too (a caller that skipped B's check): no PIN attempt spent
    with pytest.raises(ConflictError, match="day 15"):
        call_local(towns.ctx_a, ROUTES, Peer("node", B), FETCH_PATH,
                   _fetch_body(code, cid, arrival=arrival,
                               notified=arrival + dt.timedelta(days=15)))
    assert towns.digests() == before
    got = move_in(towns, code, cid, arrival=arrival, today=arrival + dt.timedelta(days=14))
    assert got["state"] == "confirmed"


def test_thirty_days_after_the_planned_move_out_at_most(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid, planned_on=D(2024, 6, 10))
    before = towns.digests()
    day31 = D(2024, 7, 11)  # the planned date + 31, the arrival 12 days before
    with pytest.raises(ConflictError, match=r"within 30 days of the planned.*day 31"):
        move_in(towns, code, cid, arrival=D(2024, 6, 29), today=day31)
    with pytest.raises(ConflictError, match="day 31"):
        call_local(towns.ctx_a, ROUTES, Peer("node", B), FETCH_PATH,
                   _fetch_body(code, cid, arrival=D(2024, 6, 29), notified=day31))
    assert towns.digests() == before
    assert "card.pin_attempt" not in _actions(towns.a, cid)
    got = move_in(towns, code, cid, arrival=D(2024, 6, 29), today=D(2024, 7, 10))
    assert got["state"] == "confirmed"


# -- refusals: nothing changes at either end ----------------------------------------------


def test_refusals_change_nothing_at_either_end(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    other, other_cid = card_holder(towns, 11, pin="1111")
    file_out(towns, code, cid)
    before, before_c = towns.digests(), towns.c.digest()
    audits = len(_actions(towns.a)), len(_actions(towns.b))

    # a card not the person's (another resident's live card): refused before any PIN try
    with pytest.raises(PermissionDeniedError, match="not the card"):
        move_in(towns, code, other_cid, pin="1111")
    # B not the municipality the move-out named: C asks
    with pytest.raises(PermissionDeniedError, match=f"names {B}, not {C}"):
        move_in(towns, code, cid, at=towns.c, postal_code="1500001", town="神宮前")
    # no such move-out (the other person never filed one)
    with pytest.raises(NotFoundError, match="no special move-out"):
        move_in(towns, other, other_cid, pin="1111")
    # a prefecture or an agency calling the routes: refused by role
    for peer in (Peer("node", "130001"), Peer("agency", "nta"), Peer("node", "center")):
        for path in (FETCH_PATH, CONFIRM_PATH):
            with pytest.raises(PermissionDeniedError, match="may not call"):
                call_local(towns.ctx_a, ROUTES, peer, path, _fetch_body(code, cid))
    # bad bodies
    for body in ({}, {**_fetch_body(code, cid), "extra": 1},
                 {**_fetch_body(code, cid), "pin": 1234},
                 {**_fetch_body(code, cid), "resident_code": "1"},
                 {**_fetch_body(code, cid), "notified_on": "2024-02-30"},
                 {**_fetch_body(code, cid), "notified_on": "2999-01-01"},
                 {**_fetch_body(code, cid), "notified_on": "2024-6-12"},
                 {**_fetch_body(code, cid), "pin": "１２３４"},
                 {**_fetch_body(code, cid), "resident_code": "０" * 11},
                 {**_fetch_body(code, cid), "card_id": "x" * 5000},
                 {**_fetch_body(code, cid), "moved_in_on": None}):
        with pytest.raises(InvalidInputError):
            call_local(towns.ctx_a, ROUTES, Peer("node", B), FETCH_PATH, body)
    # bad input at B's counter: refused before A is asked
    with pytest.raises(InvalidInputError, match="postal_code"):
        move_in(towns, code, cid, postal_code="1000005")  # 千代田区's, not 新宿区's
    with pytest.raises(InvalidInputError):
        move_in(towns, code, cid, pin="12345")
    with pytest.raises(InvalidInputError):
        move_in(towns, code, cid, from_lg=B)
    with pytest.raises(ConflictError, match="head"):  # joins no household: must head one
        move_in(towns, code, cid, relationship="子")
    with pytest.raises(InvalidInputError):
        move_in(towns, code, cid, arrival=dt.datetime(2024, 6, 10, 9))
    assert towns.digests() == before
    assert towns.c.digest() == before_c
    # only access denials were written at A (excluded from the digests), and the reads
    # of the audit log by this test; at B only those reads
    assert set(_actions(towns.a)[audits[0]:]) == {"access.denied", "register.read"}
    assert set(_actions(towns.b)[audits[1]:]) == {"register.read"}

    # a wrong PIN: the attempt counts toward the lock at A (as at any counter), nothing else
    with pytest.raises(PermissionDeniedError, match="wrong PIN"):
        move_in(towns, code, cid, pin="0000")
    assert towns.b.digest() == before[1]
    assert towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()[0]["fetches"] == 0
    card = [c for c in towns.a.cards.list(actor=ADMINS[A]).to_pylist() if c["card_id"] == cid]
    assert card[0]["pin_failures"] == 1
    assert _actions(towns.a, cid)[-2:] == ["card.pin_attempt", "card.pin_failed"]

    # the move itself still goes through, once; then the move-out is closed
    assert move_in(towns, code, cid)["state"] == "confirmed"
    before = towns.digests()
    with pytest.raises(ConflictError, match="already"):  # B knows it moved in
        move_in(towns, code, cid, nid="in-again")
    with pytest.raises(ConflictError, match="closed"):  # A: not served again
        call_local(towns.ctx_a, ROUTES, Peer("node", B), FETCH_PATH, _fetch_body(code, cid))
    assert towns.digests() == before


def test_three_wrong_pins_lock_the_card(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    before_b = towns.b.digest()
    for _ in range(3):
        with pytest.raises(PermissionDeniedError, match="wrong PIN"):
            move_in(towns, code, cid, pin="0000")
    with pytest.raises(PermissionDeniedError, match="locked"):
        move_in(towns, code, cid)
    assert towns.b.digest() == before_b
    assert towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()[0]["state"] == "open"


def test_filing_refusals_change_nothing(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    other, other_cid = card_holder(towns, 11, pin="1111")
    before = towns.a.digest()
    with pytest.raises(ConflictError, match="is not"):
        file_out(towns, code, other_cid)
    with pytest.raises(InvalidInputError, match="move_within"):
        file_out(towns, code, cid, destination_lg=A, destination="東京都千代田区外神田1丁目")
    with pytest.raises(InvalidInputError, match="not in 東京都新宿区"):
        file_out(towns, code, cid, destination="東京都渋谷区1番地")
    with pytest.raises(InvalidInputError):
        file_out(towns, code, cid, destination_lg="131017")  # wrong check digit
    with pytest.raises(InvalidInputError):
        file_out(towns, code, cid, filed_by="fax")
    with pytest.raises(InvalidInputError):  # planned more than 14 days after filing
        file_out(towns, code, cid, planned_on=FILED + dt.timedelta(days=15))
    with pytest.raises(NotFoundError):
        file_out(towns, code, "131016-999999999")
    with pytest.raises(PermissionDeniedError):
        towns.a.moves.move_out(notification_id="x", resident_code=code, card_id=cid,
                               destination_lg=B, destination=DESTINATION,
                               planned_on=PLANNED, actor=STAFF[B], today=FILED)
    towns.a.cards.suspend(other_cid, actor=STAFF[A], today=FILED)
    mid = towns.a.digest()
    with pytest.raises(ConflictError, match="suspended"):
        file_out(towns, other, other_cid)
    assert towns.a.digest() == mid
    assert mid != before  # (the suspension)
    first = file_out(towns, code, cid)
    assert file_out(towns, code, cid) == first  # the same filing again: the same record
    done = towns.a.digest()
    with pytest.raises(ConflictError, match="other content"):
        file_out(towns, code, cid, planned_on=PLANNED + dt.timedelta(days=1))
    assert towns.a.digest() == done


# -- idempotence and crashes ----------------------------------------------------------------


def test_a_fetch_twice_answers_the_same_data(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    first = call_local(towns.ctx_a, ROUTES, Peer("node", B), FETCH_PATH, _fetch_body(code, cid))
    again = call_local(towns.ctx_a, ROUTES, Peer("node", B), FETCH_PATH, _fetch_body(code, cid))
    assert first == again
    assert data_digest(first["data"]) == first["data_digest"]
    person = first["data"]["person"]
    assert person["resident_code"] == fmt_code(code) and first["data"]["to"] == B
    assert first["data"]["card"]["card_id"] == cid
    # the data never holds a PIN or its hash
    assert "4321" not in str(first) and "argon2" not in str(first)


def test_a_crash_before_b_commits_leaves_nothing_at_b(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    before = towns.digests()

    def down(path: str) -> None:
        if path == FETCH_PATH:
            raise StoreError("A is unreachable")

    with pytest.raises(StoreError, match="unreachable"):
        move_in(towns, code, cid, call=towns.call(fail=down))
    assert towns.digests() == before
    assert towns.b.reg.counts()["residents"] == 0


@pytest.mark.parametrize("crash", [RuntimeError, JukiError])
def test_a_crash_between_b_commit_and_a_confirm_resumes(towns: Towns,
                                                        crash: type[Exception]) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid, planned_on=D(2024, 6, 15))

    def lost(path: str) -> None:
        if path == CONFIRM_PATH:
            raise crash("the line dropped")

    if crash is RuntimeError:  # a crash of the process: the commit stands
        with pytest.raises(RuntimeError):
            move_in(towns, code, cid, arrival=D(2024, 6, 12), today=D(2024, 6, 13),
                    call=towns.call(fail=lost))
    else:  # an outage: the move-in is recorded, its confirmation pending
        got = move_in(towns, code, cid, arrival=D(2024, 6, 12), today=D(2024, 6, 13),
                      call=towns.call(fail=lost))
        assert (got["state"], got["attempts"]) == ("pending", 1)
        assert "the line dropped" in got["last_error"]
    assert _record(towns.b, code)["status"] == "resident"
    pending = towns.b.moves.move_ins(actor=ADMINS[B]).to_pylist()
    assert [r["state"] for r in pending] == ["pending"]
    assert towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()[0]["state"] == "open"
    # the same notification again (the clerk retries) does not fetch again: it resends
    # the confirmation, which fails again
    again = move_in(towns, code, cid, arrival=D(2024, 6, 12), today=D(2024, 6, 13),
                    call=towns.call(fail=lambda p: (_ for _ in ()).throw(
                        JukiError("still down"))))
    assert again["state"] == "pending" and "still down" in again["last_error"]
    # resume: the confirmation goes through; A closes the move-out and redates it
    done = towns.b.moves.resume(towns.call(), actor=STAFF[B])
    assert done.column("state").to_pylist() == ["confirmed"]
    assert done.column("removal_date").to_pylist() == [D(2024, 6, 12)]
    assert _record(towns.a, code)["removal_date"] == D(2024, 6, 12)
    assert towns.b.moves.resume(towns.call(), actor=STAFF[B]).num_rows == 0
    # A's confirmation is idempotent: the same confirmation again changes nothing
    row = towns.b.moves.move_ins(actor=ADMINS[B]).to_pylist()[0]
    body = {"move_out_id": row["move_out_id"], "resident_code": fmt_code(code),
            "move_in_id": row["move_in_id"], "moved_in_on": "2024-06-12",
            "notified_on": "2024-06-13", "data_digest": row["data_digest"]}
    before = towns.a.digest()
    first = call_local(towns.ctx_a, ROUTES, Peer("node", B), CONFIRM_PATH, body)
    assert call_local(towns.ctx_a, ROUTES, Peer("node", B), CONFIRM_PATH, body) == first
    assert first == {"move_out_id": "out-1", "state": "closed", "removal_date": "2024-06-12",
                     "corrected": True}
    assert towns.a.digest() == before
    # another move-in for the closed move-out, or another caller, is refused: no change
    for peer, changed, err in ((B, {"move_in_id": "in-other"}, ConflictError),
                               (B, {"data_digest": "0" * 64}, ConflictError),
                               (C, {}, PermissionDeniedError),
                               (B, {"move_out_id": "nope"}, NotFoundError)):
        with pytest.raises(err):
            call_local(towns.ctx_a, ROUTES, Peer("node", peer), CONFIRM_PATH,
                       {**body, **changed})
    assert towns.a.digest() == before


def test_a_confirm_without_a_fetch_is_refused(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    out = file_out(towns, code, cid)
    before = towns.a.digest()
    body = {"move_out_id": "out-1", "resident_code": fmt_code(code), "move_in_id": "in-x",
            "moved_in_on": "2024-06-10", "notified_on": "2024-06-11",
            "data_digest": out["data_digest"]}
    with pytest.raises(ConflictError, match="never fetched"):
        call_local(towns.ctx_a, ROUTES, Peer("node", B), CONFIRM_PATH, body)
    assert towns.a.digest() == before


def test_the_reads_are_audited(towns: Towns) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    t = towns.a.moves.move_outs(actor=ADMINS[A], purpose="review")
    assert t.num_rows == 1 and "data" not in t.column_names
    assert t.column("resident_code").to_pylist() == [code]
    assert _actions(towns.a)[-1] == "register.read"
    with pytest.raises(PermissionDeniedError):
        towns.a.moves.move_outs(actor=STAFF[B])
    assert code_of(towns.a.reg, 10) == code


@pytest.mark.parametrize(("arrival", "notified", "planned", "ok"), [
    # a leap year: 2024-02-15 + 14 days is 2024-02-29
    (D(2024, 2, 15), D(2024, 2, 29), D(2024, 2, 15), True),
    (D(2024, 2, 15), D(2024, 3, 1), D(2024, 2, 15), False),
    # 30 days after 2024-02-10 is 2024-03-11 (February has 29 days)
    (D(2024, 3, 1), D(2024, 3, 11), D(2024, 2, 10), True),
    (D(2024, 3, 1), D(2024, 3, 12), D(2024, 2, 10), False),
    # a common year: 30 days after 2023-02-10 is 2023-03-12
    (D(2023, 3, 1), D(2023, 3, 12), D(2023, 2, 10), True),
    (D(2023, 3, 1), D(2023, 3, 13), D(2023, 2, 10), False),
    # an arrival before the planned date (moved earlier): fine
    (D(2024, 6, 1), D(2024, 6, 2), D(2024, 6, 14), True),
])
def test_the_windows_across_february(arrival: dt.date, notified: dt.date,
                                     planned: dt.date, ok: bool) -> None:
    from jukicore.moves.service import _windows

    if ok:
        _windows(arrival, notified, planned)
    else:
        with pytest.raises(ConflictError):
            _windows(arrival, notified, planned)


def test_two_counters_at_once_move_in_once(towns: Towns) -> None:
    """Two counters of B take the same resident at once (each with its own connection):
    one move-in is recorded and confirmed, the other refused; A closes the move-out once."""
    import threading

    from jukicore.moves import SpecialMoves
    from jukicore.moves.service import node_pin_key
    from jukicore.register import open_register

    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def counter(nid: str) -> None:
        with open_register(towns.b.node.store_target()) as reg:
            moves = SpecialMoves(reg, node_pin_key(towns.b.node.path))
            barrier.wait()
            try:
                results[nid] = moves.move_in(
                    notification_id=nid, from_lg=A, resident_code=code, card_id=cid,
                    pin="4321", moved_in_on=PLANNED, postal_code="1600022", town="新宿",
                    street="3丁目1番1号", call=towns.call(), actor=STAFF[B], today=NOTIFIED)
            except JukiError as exc:
                results[nid] = exc

    threads = [threading.Thread(target=counter, args=(n,)) for n in ("in-a", "in-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [v for v in results.values() if isinstance(v, dict)]
    refused = [v for v in results.values() if isinstance(v, JukiError)]
    assert len(done) == 1 and len(refused) == 1, results
    assert done[0]["state"] == "confirmed"
    assert isinstance(refused[0], ConflictError)
    assert towns.b.reg.counts()["residents"] == 1
    assert towns.b.moves.move_ins(actor=ADMINS[B]).num_rows == 1
    row = towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()[0]
    assert (row["state"], row["move_in_id"]) == ("closed", done[0]["move_in_id"])


@pytest.mark.parametrize("tamper", ["name", "code_and_digest", "no_data", "bad_my_number",
                                    "not_an_object"])
def test_a_garbled_or_forged_answer_changes_nothing_at_b(towns: Towns, tamper: str) -> None:
    """What B takes from A is checked: the data must match its digest and be the data of
    the move-out, person and card asked for; malformed data is refused by name."""
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    honest = towns.call()

    def forged(peer: str, path: str, body: dict[str, Any]) -> Any:
        answer = honest(peer, path, body)
        if path != FETCH_PATH:
            return answer
        data = answer["data"]
        if tamper == "no_data":
            return {"move_out_id": answer["move_out_id"]}
        if tamper == "not_an_object":
            return [answer]
        if tamper == "code_and_digest":
            data["person"]["resident_code"] = fmt_code(code_of(towns.a.reg, 11))
        elif tamper == "bad_my_number":
            data["person"]["my_number"] = "twelve digits"
        else:
            data["person"]["family_name"] = "偽"
        if tamper != "name":
            answer["data_digest"] = data_digest(data)
        return answer

    before = towns.b.digest()
    with pytest.raises((ConflictError, InvalidInputError)):
        move_in(towns, code, cid, call=forged)
    assert towns.b.digest() == before
    assert towns.b.reg.counts()["residents"] == 0


def test_a_never_closes_a_move_out_on_other_data_than_it_served(towns: Towns) -> None:
    """Data changed on the way with a digest to match (only A itself could: the channel
    is mutual TLS) is recorded by B, but A refuses to close its move-out on it: the
    confirmation stays pending, naming the refusal."""
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    honest = towns.call()

    def forged(peer: str, path: str, body: dict[str, Any]) -> Any:
        answer = honest(peer, path, body)
        if path == FETCH_PATH:
            answer["data"]["person"]["family_name"] = "偽"
            answer["data_digest"] = data_digest(answer["data"])
        return answer

    got = move_in(towns, code, cid, call=forged)
    assert got["state"] == "pending" and "not the data" in got["last_error"]
    assert towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()[0]["state"] == "open"
