"""Cards on the register, on SQLite and PostgreSQL: issue, expiry, PINs, lock, loss,
moves, voiding through notifications, refusals that change nothing."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from cardkit import active_card, audit_actions, digest, issue_one, person
from regkit import ADMIN, CLERK, LG, TODAY, code_of, ev, make_code, make_my_number

from jukicore.access import Actor
from jukicore.cards import Cards, PinKey, create_pin_key
from jukicore.errors import (
    ConflictError,
    CorruptFileError,
    FileError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.register import Register, open_register

D = dt.date
NOON = dt.datetime(2024, 6, 3, 3, 0, tzinfo=dt.UTC)  # 12:00 in Japan, a Monday
HOTLINE = Actor.operator("hotline1", None, "hotline")


# -- issue, closure, expiry, fees -------------------------------------------------------


def test_juki_card_closure_date(cards: Cards, register: Register) -> None:
    code = code_of(register, 1)
    before = digest(register, cards)
    with pytest.raises(ConflictError, match="issuance closed on 2015-12-28"):
        issue_one(cards, code, "juki_basic", D(2015, 12, 29))
    assert digest(register, cards) == before
    t = cards.issue([{"resident_code": code, "kind": "juki_basic"}], actor=CLERK,
                    today=D(2015, 12, 28))
    row = t.to_pylist()[0]
    assert (row["state"], row["issued_on"], row["expires_on"], row["fee"]) == (
        "issued", D(2015, 12, 28), D(2025, 12, 28), 500)
    # issued before the closure: valid to its expiry, then expired by date
    cid = row["card_id"]
    cards.activate(cid, "4321", actor=CLERK, today=D(2016, 1, 5))
    assert _state(cards, cid, D(2025, 12, 28)) == "active"
    assert _state(cards, cid, D(2025, 12, 29)) == "expired"
    # an application recorded before the closure is not issued after it
    t = cards.apply([{"resident_code": code_of(register, 2), "kind": "juki_photo"}],
                    actor=CLERK, today=D(2015, 12, 20))
    before = digest(register, cards)
    with pytest.raises(ConflictError, match="closed"):
        cards.issue([{"card_id": t.column("card_id")[0].as_py()}], actor=CLERK,
                    today=D(2015, 12, 29))
    assert digest(register, cards) == before


def _state(cards: Cards, cid: str, day: dt.date) -> str:
    t = cards.list(actor=ADMIN, today=day)
    return str(dict(zip(t.column("card_id").to_pylist(), t.column("state").to_pylist(),
                        strict=True))[cid])


@pytest.mark.parametrize(("birth", "issued", "expires"), [
    (D(2000, 4, 2), D(2018, 3, 31), D(2022, 4, 2)),    # 17 the day before reaching 18
    (D(2000, 4, 2), D(2018, 4, 1), D(2027, 4, 2)),     # reaches 18: ten birthdays
    (D(2000, 4, 2), D(2018, 4, 3), D(2028, 4, 2)),
    (D(2004, 2, 29), D(2022, 2, 27), D(2026, 2, 28)),  # born on 29 February
    (D(2004, 2, 29), D(2022, 2, 28), D(2032, 2, 29)),
    (D(2004, 2, 29), D(2022, 3, 1), D(2032, 2, 29)),
])
def test_my_number_card_expiry_by_age(empty_register: Register, pin_key: PinKey,
                                      birth: dt.date, issued: dt.date,
                                      expires: dt.date) -> None:
    cards = Cards(empty_register, pin_key)
    code = person(empty_register, birth, moved_in=D(2017, 4, 1))
    t = cards.issue(pa.table({"resident_code": [code], "kind": ["mynumber"]}), actor=CLERK,
                    today=issued)
    row = t.to_pylist()[0]
    assert row["expires_on"] == expires
    assert row["cert_expires_on"] == min(expires, _fifth(birth, issued))
    cid = row["card_id"]
    assert _state(cards, cid, expires) == "issued"
    assert _state(cards, cid, expires + dt.timedelta(days=1)) == "expired"


def _fifth(birth: dt.date, issued: dt.date) -> dt.date:
    from jukicore.cards.rules import nth_birthday_after

    return nth_birthday_after(birth, issued, 5)


def test_fees_per_municipality(cards: Cards, register: Register) -> None:
    assert cards.fees() == {"juki_basic": 500, "juki_photo": 500, "mynumber": 0}
    before = digest(register, cards)
    with pytest.raises(PermissionDeniedError):
        cards.set_fee("juki_photo", 1000, actor=CLERK)
    for bad in (-1, 10**9, "500", True, 1.5):
        with pytest.raises(InvalidInputError):
            cards.set_fee("juki_photo", bad, actor=ADMIN)  # type: ignore[arg-type]
    assert digest(register, cards) == before
    cards.set_fee("juki_photo", 1000, actor=ADMIN)
    t = cards.issue([{"resident_code": code_of(register, 1), "kind": "juki_photo"},
                     {"resident_code": code_of(register, 3), "kind": "juki_basic"}],
                    actor=CLERK, today=D(2015, 1, 5))
    assert t.column("fee").to_pylist() == [1000, 500]
    assert register.policy_settings()["fee.card_juki_photo"] == "1000"
    assert any(r["action"] == "policy.configure" and "fee.card_juki_photo: default -> 1000"
               in str(r["detail"]) for r in register.audit_log(actor=ADMIN).to_pylist())


def test_bulk_issue_refuses_the_whole_table(cards: Cards, register: Register) -> None:
    good = code_of(register, 1)
    before = digest(register, cards)
    bad_rows = [
        {"resident_code": good, "kind": "mynumber"},      # no My Number recorded
        {"resident_code": "1234", "kind": "juki_basic"},  # not a resident code
        {"resident_code": make_code(99), "kind": "juki_basic"},  # not a resident here
        {"resident_code": code_of(register, 2), "kind": "gold"},
        {"resident_code": code_of(register, 3), "kind": "juki_basic",
         "applied_on": D(2030, 1, 1)},
    ]
    with pytest.raises(InvalidInputError) as err:
        cards.issue(bad_rows, actor=CLERK, today=D(2015, 6, 1))
    assert [r.row for r in err.value.rows] == [0, 1, 2, 3, 4]
    for bad in ([], [{"resident_code": good, "kind": "juki_basic", "photo": 1}], 42, "x",
                [{"resident_code": good, "kind": "juki_basic"}] * 2):
        with pytest.raises((InvalidInputError, ConflictError)):
            cards.issue(bad, actor=CLERK, today=D(2015, 6, 1))
    assert digest(register, cards) == before
    # one live card of a family per holder
    issue_one(cards, good, "juki_basic", D(2015, 6, 1))
    before = digest(register, cards)
    with pytest.raises(ConflictError, match="already holds"):
        issue_one(cards, good, "juki_photo", D(2015, 6, 2))
    assert digest(register, cards) == before


def test_card_record_holds_only_the_resident_code() -> None:
    from jukicore.cards._schema import CARD_COLUMNS
    from jukicore.register._schema import RESIDENT_COLUMNS

    personal = {c.name for c in RESIDENT_COLUMNS} - {"resident_code"}
    assert not personal & {c.name for c in CARD_COLUMNS}


# -- PINs ------------------------------------------------------------------------------


def test_lock_after_three_and_reset_at_the_counter(cards: Cards, register: Register) -> None:
    code = code_of(register, 1)
    cid = active_card(cards, code, "juki_photo", D(2015, 6, 1), "2580")
    assert cards.verify_pin(cid, "2580", actor=CLERK, now=NOON) == code
    with pytest.raises(PermissionDeniedError, match="wrong PIN"):
        cards.verify_pin(cid, "0000", actor=CLERK, now=NOON)
    assert cards.verify_pin(cid, "2580", actor=CLERK, now=NOON) == code  # resets the count
    for _ in range(3):
        with pytest.raises(PermissionDeniedError):
            cards.verify_pin(cid, "1111", actor=CLERK, now=NOON)
    assert _state(cards, cid, D(2016, 1, 1)) == "locked"
    before = digest(register, cards)
    with pytest.raises(PermissionDeniedError, match="locked"):
        cards.verify_pin(cid, "2580", actor=CLERK, now=NOON)  # the right PIN: refused too
    assert digest(register, cards) == before
    # only at the counter, after an identity check (recorded)
    with pytest.raises(PermissionDeniedError):
        cards.reset_pin(cid, "9753", identity_document="passport", actor=HOTLINE, now=NOON)
    with pytest.raises(InvalidInputError):
        cards.reset_pin(cid, "9753", identity_document="a smile", actor=CLERK, now=NOON)
    assert digest(register, cards) == before
    cards.reset_pin(cid, "9753", identity_document="passport", actor=CLERK,
                    today=D(2016, 1, 1), now=NOON)
    assert _state(cards, cid, D(2016, 1, 1)) == "active"
    assert cards.verify_pin(cid, "9753", actor=CLERK, now=NOON) == code
    acts = audit_actions(register, cid)
    assert acts.count("card.pin_failed") == 4 and acts.count("card.lock") == 1
    assert "card.reset_pin" in acts
    log = register.audit_log(actor=ADMIN).to_pylist()
    assert any(r["action"] == "card.reset_pin" and "passport" in r["detail"] for r in log)


def test_malformed_pin_changes_nothing(cards: Cards, register: Register) -> None:
    cid = active_card(cards, code_of(register, 1), "juki_basic", D(2015, 6, 1))
    before = digest(register, cards)
    for pin in ("123", "12345", "１２３４", "", None, 1234):
        with pytest.raises(InvalidInputError):
            cards.verify_pin(cid, pin, actor=CLERK, now=NOON)  # type: ignore[arg-type]
    for cid_bad in ("131016-1", "x" * 10_000, None):
        with pytest.raises(InvalidInputError):
            cards.verify_pin(cid_bad, "1234", actor=CLERK, now=NOON)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        cards.verify_pin("131016-000000999", "1234", actor=CLERK, now=NOON)
    assert digest(register, cards) == before


def test_twenty_concurrent_wrong_pins_get_three_tries(register: Register,
                                                      pin_key: PinKey) -> None:
    cards = Cards(register, pin_key)
    cid = active_card(cards, code_of(register, 1), "juki_photo", D(2015, 6, 1), "8642")
    target = register.target
    start = threading.Barrier(20)
    errors: list[BaseException] = []
    oks: list[int] = []

    def attempt() -> None:
        reg = open_register(target)  # a connection of its own: real concurrency
        try:
            mine = Cards(reg, pin_key)
            start.wait()
            oks.append(mine.verify_pin(cid, "0000", actor=CLERK, now=NOON))
        except BaseException as exc:
            errors.append(exc)
        finally:
            reg.close()

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not oks and len(errors) == 20
    assert all(isinstance(e, PermissionDeniedError) for e in errors), errors
    acts = audit_actions(register, cid)
    assert acts.count("card.pin_attempt") == 3 and acts.count("card.pin_failed") == 3
    assert acts.count("card.lock") == 1
    with pytest.raises(PermissionDeniedError, match="locked"):
        cards.verify_pin(cid, "8642", actor=CLERK, now=NOON)
    assert audit_actions(register, cid).count("card.pin_attempt") == 3


def test_pin_key_file(tmp_path: Path, cards: Cards, register: Register) -> None:
    path = tmp_path / "k2.key"
    key = create_pin_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert PinKey.load(path).key_id == key.key_id and "key" not in repr(key)[10:]
    with pytest.raises(ConflictError):
        create_pin_key(path)
    with pytest.raises(FileError):
        PinKey.load(tmp_path / "missing.key")
    os.chmod(path, 0o644)
    with pytest.raises(CorruptFileError, match="private"):
        PinKey.load(path)
    bad = tmp_path / "bad.key"
    for content in (b"", b"jukicore-card-pin-key/v1\nzz\n", b"\xff\xfe",
                    b"jukicore-card-pin-key/v1\n" + b"ab" * 31 + b"\n"):
        bad.write_bytes(content)
        os.chmod(bad, 0o600)
        with pytest.raises(CorruptFileError):
            PinKey.load(bad)
    # a PIN under one key is not checked with another: a clear error, no attempt spent
    cid = active_card(cards, code_of(register, 1), "juki_basic", D(2015, 6, 1))
    before = digest(register, cards)
    with pytest.raises(InvalidInputError, match="another pin key"):
        Cards(register, key).verify_pin(cid, "1234", actor=CLERK, now=NOON)
    with pytest.raises(InvalidInputError, match="pin key"):
        Cards(register, None).verify_pin(cid, "1234", actor=CLERK, now=NOON)
    assert digest(register, cards) == before
    # the store holds no PIN, only its Argon2id over the HMAC (compared cell by cell: a
    # random code or digest may well hold the digits 1234 somewhere)
    with register._b.session(write=False) as s:
        row = s.query("SELECT * FROM cards WHERE card_id = ?", (cid,))[0]
        stored = str(s.scalar("SELECT pin_hash FROM cards WHERE card_id = ?", (cid,)))
    assert all(str(v) != "1234" for v in row)
    assert stored.startswith("$argon2id$") and stored.count("$") == 5


# -- lost cards: the hotline ----------------------------------------------------------------


def test_hotline_suspends_anywhere_and_does_nothing_else(cards: Cards,
                                                         register: Register) -> None:
    code = code_of(register, 1)
    cid = active_card(cards, code, "juki_photo", D(2015, 6, 1), "1357")
    before = digest(register, cards)
    night = dt.datetime(2024, 6, 2, 15, 30, tzinfo=dt.UTC)  # a Monday 00:30 in Japan
    refused = [
        lambda: cards.verify_pin(cid, "1357", actor=HOTLINE, now=night),
        lambda: cards.resume(cid, identity_document="passport", actor=HOTLINE, now=night),
        lambda: cards.reset_pin(cid, "1111", identity_document="passport", actor=HOTLINE),
        lambda: cards.void(cid, "damaged", actor=HOTLINE),
        lambda: cards.collect(cid, actor=HOTLINE),
        lambda: cards.list(actor=HOTLINE),
        lambda: cards.issue([{"resident_code": code_of(register, 2), "kind": "juki_basic"}],
                            actor=HOTLINE, today=D(2015, 1, 1)),
        lambda: cards.set_fee("mynumber", 1, actor=HOTLINE),
        lambda: register.residents(actor=HOTLINE),
        lambda: register.resident(code, actor=HOTLINE),
        lambda: register.notify(actor=HOTLINE, **ev("death", "h-d", resident_code=code)),
        lambda: register.audit_log(actor=HOTLINE),
        lambda: register.export(actor=HOTLINE),
    ]
    for call in refused:
        with pytest.raises(PermissionDeniedError):
            call()
    assert digest(register, cards) == before
    # a hotline operator of another municipality, at night: suspends
    for hotline in (HOTLINE, Actor.operator("hotline2", "271004", "hotline")):
        cid2 = cid if hotline is HOTLINE else active_card(cards, code_of(register, 3),
                                                          "juki_basic", D(2015, 6, 1))
        card = cards.suspend(cid2, actor=hotline, now=night)
        assert card["state"] == "suspended"
    # a hotline's other roles elsewhere grant nothing here
    mixed = Actor.operator("h3", "271004", "hotline", "admin")
    with pytest.raises(PermissionDeniedError):
        cards.list(actor=mixed)
    # suspended: no PIN; resumed at the counter after an identity check
    with pytest.raises(PermissionDeniedError, match="suspended"):
        cards.verify_pin(cid, "1357", actor=CLERK, now=NOON)
    with pytest.raises(ConflictError):
        cards.suspend(cid, actor=HOTLINE, now=night)  # suspended already
    card = cards.resume(cid, identity_document="drivers_license", actor=CLERK, now=NOON)
    assert card["state"] == "active"
    assert cards.verify_pin(cid, "1357", actor=CLERK, now=NOON) == code


def test_hotline_is_nothing_at_upper_tiers() -> None:
    from jukicore.access.actors import CARD_PERMISSIONS as CP
    from jukicore.access.actors import (
        CENTER,
        IDENTITY_PERMISSIONS,
        MUNICIPALITY,
        PERMISSIONS,
        PREFECTURE,
        refusal,
    )

    for tier, place in ((PREFECTURE, "130001"), (CENTER, "center")):
        for p in IDENTITY_PERMISSIONS | CP:
            assert refusal(HOTLINE, p, tier, place) is not None
    for p in (PERMISSIONS | CP) - {"card.suspend"}:
        assert refusal(HOTLINE, p, MUNICIPALITY, LG) is not None
        assert refusal(Actor.operator("h", LG, "hotline"), p, MUNICIPALITY, LG) is not None
    assert refusal(HOTLINE, "card.suspend", MUNICIPALITY, LG) is None
    # no other role gains the everywhere rule
    assert refusal(Actor.operator("c", "271004", "clerk"), "card.suspend", MUNICIPALITY,
                   LG) is not None


def test_resume_keeps_a_locked_pin_locked(cards: Cards, register: Register) -> None:
    cid = active_card(cards, code_of(register, 1), "juki_photo", D(2015, 6, 1))
    for _ in range(3):
        with pytest.raises(PermissionDeniedError):
            cards.verify_pin(cid, "0000", actor=CLERK, now=NOON)
    cards.suspend(cid, actor=HOTLINE, now=NOON)
    card = cards.resume(cid, identity_document="passport", actor=CLERK, now=NOON)
    assert card["state"] == "locked"


# -- every refused transition changes nothing ------------------------------------------


def test_refused_transitions_change_nothing(cards: Cards, register: Register) -> None:
    day = D(2015, 6, 1)
    applied = cards.apply([{"resident_code": code_of(register, 1), "kind": "juki_basic"}],
                          actor=CLERK, today=day).column("card_id")[0].as_py()
    issued = issue_one(cards, code_of(register, 3), "juki_basic", day)
    active = active_card(cards, code_of(register, 6), "juki_basic", day)
    voided = active_card(cards, code_of(register, 10), "juki_basic", day)
    cards.void(voided, "damaged", actor=CLERK, today=day)
    collected = active_card(cards, code_of(register, 15), "juki_basic", day)
    cards.collect(collected, actor=CLERK, today=day)
    doc = {"identity_document": "passport"}
    attempts = [
        lambda: cards.activate(applied, "1234", actor=CLERK, today=day),
        lambda: cards.suspend(applied, actor=CLERK, today=day),
        lambda: cards.collect(applied, actor=CLERK, today=day),
        lambda: cards.suspend(issued, actor=CLERK, today=day),
        lambda: cards.resume(issued, actor=CLERK, today=day, **doc),
        lambda: cards.reset_pin(issued, "1111", actor=CLERK, today=day, **doc),
        lambda: cards.issue([{"card_id": issued}], actor=CLERK, today=day),
        lambda: cards.activate(active, "1234", actor=CLERK, today=day),
        lambda: cards.resume(active, actor=CLERK, today=day, **doc),
        lambda: cards.activate(voided, "1234", actor=CLERK, today=day),
        lambda: cards.void(voided, "damaged", actor=CLERK, today=day),
        lambda: cards.resume(voided, actor=CLERK, today=day, **doc),
        lambda: cards.void(collected, "damaged", actor=CLERK, today=day),
        lambda: cards.collect(collected, actor=CLERK, today=day),
        lambda: cards.suspend(collected, actor=CLERK, today=day),
        # expired by date: only collected
        lambda: cards.suspend(active, actor=CLERK, today=D(2025, 6, 2)),
        lambda: cards.reset_pin(active, "1111", actor=CLERK, today=D(2025, 6, 2), **doc),
        lambda: cards.void(active, "damaged", actor=CLERK, today=D(2025, 6, 2)),
    ]
    before = digest(register, cards)
    for i, call in enumerate(attempts):
        with pytest.raises(ConflictError):
            call()
        assert digest(register, cards) == before, i
    with pytest.raises(InvalidInputError):
        cards.void(active, "bored", actor=CLERK, today=day)
    assert digest(register, cards) == before
    assert cards.collect(active, actor=CLERK, today=D(2025, 6, 2))["state"] == "collected"


# -- the register's notifications ------------------------------------------------------


def _my_number(reg: Register, code: int, body: int, nid: str) -> None:
    reg.notify(actor=CLERK, today=TODAY,
               **ev("my_number", nid, resident_code=code, my_number=make_my_number(body)))


def test_my_number_card_collects_the_juki_card(cards: Cards, register: Register) -> None:
    code = code_of(register, 1)
    juki = active_card(cards, code, "juki_photo", D(2015, 6, 1))
    _my_number(register, code, 11111111111, "mn-1")
    with pytest.raises(ConflictError, match="already holds"):  # one live juki card
        cards.issue([{"resident_code": code, "kind": "juki_basic"}], actor=CLERK,
                    today=D(2015, 12, 1))
    mn = issue_one(cards, code, "mynumber", TODAY)
    assert _state(cards, juki, TODAY) == "active"  # until the My Number card is received
    cards.activate(mn, "2468", actor=CLERK, today=TODAY)
    assert _state(cards, juki, TODAY) == "collected"
    assert cards.verify_pin(mn, "2468", actor=CLERK, now=NOON) == code
    with pytest.raises(PermissionDeniedError):
        cards.verify_pin(juki, "1234", actor=CLERK, now=NOON)


def test_death_voids_every_card(cards: Cards, register: Register) -> None:
    code = code_of(register, 10)  # the head of household 4, alone
    cid = active_card(cards, code, "juki_basic", D(2015, 6, 1))
    register.notify(actor=CLERK, today=TODAY, **ev("death", "d-1", resident_code=code))
    assert _state(cards, cid, TODAY) == "voided"
    log = register.audit_log(actor=ADMIN).to_pylist()
    voids = [r for r in log if r["action"] == "card.void" and r["target"] == cid]
    assert len(voids) == 1 and voids[0]["notification_id"] == "d-1"
    with pytest.raises(PermissionDeniedError):
        cards.verify_pin(cid, "1234", actor=CLERK, now=NOON)


def test_removal_ex_officio_voids_every_card(cards: Cards, register: Register) -> None:
    code = code_of(register, 10)
    cid = active_card(cards, code, "juki_basic", D(2015, 6, 1))
    register.notify(actor=CLERK, today=TODAY, **ev("ex_officio_removal", "x-1",
                                                    resident_code=code))
    assert _state(cards, cid, TODAY) == "voided"
    voids = [r for r in register.audit_log(actor=ADMIN).to_pylist()
             if r["action"] == "card.void" and r["target"] == cid]
    assert len(voids) == 1 and "removed_ex_officio" in str(voids[0]["detail"])


def test_a_refused_notification_touches_no_card(cards: Cards, register: Register) -> None:
    code = code_of(register, 1)  # heads a household of two: a death needs a new head
    cid = active_card(cards, code, "juki_basic", D(2015, 6, 1))
    before = digest(register, cards)
    report = register.apply([ev("death", "d-2", resident_code=code)], actor=CLERK,
                            today=TODAY)
    assert len(report.rejected) == 1
    assert digest(register, cards) == before and _state(cards, cid, TODAY) == "active"


def test_code_change_voids_the_juki_card_not_the_my_number_card(
        cards: Cards, register: Register, empty_register: Register) -> None:
    juki_holder, mn_holder = code_of(register, 1), code_of(register, 3)
    juki = active_card(cards, juki_holder, "juki_basic", D(2015, 6, 1))
    _my_number(register, mn_holder, 22222222222, "mn-2")
    mn = active_card(cards, mn_holder, "mynumber", TODAY, "7777")
    report = register.apply([ev("code_change", "cc-1", resident_code=juki_holder),
                             ev("code_change", "cc-2", resident_code=mn_holder)],
                            actor=CLERK, today=TODAY)
    assert report.ok
    new_code = int(report.resident_codes[1].as_py())
    assert _state(cards, juki, TODAY) == "voided"
    assert _state(cards, mn, TODAY) == "active"
    assert cards.verify_pin(mn, "7777", actor=CLERK, now=NOON) == new_code


def test_my_number_replaced_voids_the_card(cards: Cards, register: Register) -> None:
    code = code_of(register, 1)
    _my_number(register, code, 33333333333, "mn-3")
    mn = active_card(cards, code, "mynumber", TODAY)
    _my_number(register, code, 44444444444, "mn-4")  # replaced after a leak
    assert _state(cards, mn, TODAY) == "voided"


def test_name_or_address_change_revokes_the_signing_certificate(
        cards: Cards, register: Register) -> None:
    a, b = code_of(register, 1), code_of(register, 10)
    _my_number(register, a, 55555555555, "mn-5")
    _my_number(register, b, 66666666666, "mn-6")
    ca, cb = active_card(cards, a, "mynumber", TODAY), active_card(cards, b, "mynumber", TODAY)
    register.notify(actor=CLERK, today=TODAY,
                    **ev("name_change", "nc-1", resident_code=a, family_name="山本"))
    register.notify(actor=CLERK, today=TODAY,
                    **ev("move_within", "mw-1", resident_code=b, postal_code="1010021",
                         town="外神田", street="2丁目2番2号"))
    t = cards.list(actor=ADMIN, today=TODAY).to_pylist()
    revoked = {r["card_id"]: r["sign_revoked_on"] for r in t}
    assert revoked[ca] == TODAY and revoked[cb] == TODAY
    assert _state(cards, ca, TODAY) == "active"  # the card itself stays usable


# -- moves: continued use within 90 days ------------------------------------------------


def _move_out_and_back(reg: Register, code: int, out: dt.date, back: dt.date) -> None:
    if reg.counts()["removed"] == 0:
        reg.notify(actor=CLERK, today=out, **ev("move_out", f"out-{code}",
                                                resident_code=code, notified_date=out,
                                                event_date=out, destination="大阪府大阪市北区"))
    reg.notify(actor=CLERK, today=back, **ev(
        "move_in", f"back-{code}", notified_date=back, event_date=back, resident_code=code,
        family_name="伊藤", given_name="太郎", family_name_kana="イトウ",
        given_name_kana="タロウ", birth_date=D(1970, 5, 14), sex=1, relationship="世帯主",
        previous_address="大阪府大阪市北区1番地", postal_code="1010021", town="外神田",
        street="3丁目3番3号"))


def test_continued_use_within_90_days(cards: Cards, register: Register) -> None:
    code = code_of(register, 10)  # 伊藤太郎, born 1970-05-14, alone in household 4
    _my_number(register, code, 77777777777, "mn-7")
    mn = active_card(cards, code, "mynumber", TODAY, "1470")
    out, back = D(2024, 7, 1), D(2024, 7, 20)
    _move_out_and_back(register, code, out, back)
    listed = {r["card_id"]: r for r in cards.list(actor=ADMIN, today=back).to_pylist()}
    assert listed[mn]["moved_out_on"] == out and listed[mn]["sign_revoked_on"] is not None
    late = dt.datetime.combine(back + dt.timedelta(days=1), dt.time(3), dt.UTC)
    with pytest.raises(PermissionDeniedError, match="continued use"):
        cards.verify_pin(mn, "1470", actor=CLERK, now=late)
    before = digest(register, cards)
    with pytest.raises(ConflictError, match="day 91"):
        cards.continue_use(mn, resident_code=code, identity_document="mynumber_card",
                           actor=CLERK, today=back + dt.timedelta(days=91))
    assert digest(register, cards) == before
    card = cards.continue_use(mn, resident_code=code, identity_document="mynumber_card",
                              actor=CLERK, today=back + dt.timedelta(days=90))
    assert card["continued_on"] == back + dt.timedelta(days=90)
    assert card["moved_out_on"] is None
    assert cards.verify_pin(mn, "1470", actor=CLERK, now=late) == code


def test_card_carried_in_from_another_municipality(empty_register: Register,
                                                   pin_key: PinKey) -> None:
    cards = Cards(empty_register, pin_key)
    moved_in = D(2024, 4, 1)
    code = person(empty_register, D(1985, 8, 20), moved_in=moved_in)
    foreign = "271004-000012345"
    before = digest(empty_register, cards)
    common = {"resident_code": code, "identity_document": "mynumber_card", "actor": CLERK}
    with pytest.raises(ConflictError, match="day 91"):
        cards.continue_use(foreign, issued_on=D(2020, 1, 10), pin="5678",
                           today=moved_in + dt.timedelta(days=91), **common)
    with pytest.raises(InvalidInputError):  # issued after the move-in: not a carried card
        cards.continue_use(foreign, issued_on=D(2024, 5, 1), pin="5678",
                           today=moved_in + dt.timedelta(days=30), **common)
    with pytest.raises(InvalidInputError):  # no PIN entered
        cards.continue_use(foreign, issued_on=D(2020, 1, 10),
                           today=moved_in + dt.timedelta(days=30), **common)
    with pytest.raises(NotFoundError):  # this municipality's id: must be here already
        cards.continue_use(f"{LG}-000000077", issued_on=D(2020, 1, 10), pin="5678",
                           today=moved_in + dt.timedelta(days=30), **common)
    assert digest(empty_register, cards) == before
    card = cards.continue_use(foreign, issued_on=D(2020, 1, 10), pin="5678",
                              today=moved_in + dt.timedelta(days=90), **common)
    assert (card["issuer"], card["state"], card["expires_on"]) == ("271004", "active",
                                                                   D(2029, 8, 20))
    assert cards.verify_pin(foreign, "5678", actor=CLERK, now=NOON) == code


def test_juki_card_after_a_move_out_serves_only_the_special_move(
        cards: Cards, register: Register) -> None:
    code = code_of(register, 10)
    cid = active_card(cards, code, "juki_photo", D(2015, 6, 1), "3690")
    register.notify(actor=CLERK, today=TODAY,
                    **ev("move_out", "out-j", resident_code=code,
                         destination="大阪府大阪市北区"))
    with pytest.raises(PermissionDeniedError, match="special move"):
        cards.verify_pin(cid, "3690", actor=CLERK, now=NOON)
    assert cards.verify_pin_special_move(cid, "3690", actor=CLERK, now=NOON) == code
    with pytest.raises(ConflictError, match="not a current resident"):
        cards.continue_use(cid, resident_code=code, identity_document="passport",
                           actor=CLERK, today=TODAY)
    _move_out_and_back(register, code, TODAY, TODAY + dt.timedelta(days=3))
    with pytest.raises(ConflictError, match="special move"):  # no continued use for it
        cards.continue_use(cid, resident_code=code, identity_document="passport",
                           actor=CLERK, today=TODAY + dt.timedelta(days=4))
