"""As-of queries, history completeness, atomicity of bulk apply, generated days."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from regkit import ADMIN, CLERK, TODAY, code_of, ev

from jukicore.errors import StoreError
from jukicore.register import Register
from jukicore.register._schema import TRACKED_ITEMS
from jukicore.register.store import Register as RegisterClass
from jukicore.synth.day import generate_day

D = dt.timedelta
ADDR = {"postal_code": "1010021", "town": "外神田", "street": "1丁目1番1号"}


def _by_pid(table: Any) -> dict[int, dict[str, Any]]:
    return {r["person_id"]: r for r in table.to_pylist()}


def test_as_of_reconstructs_past_days(register: Register) -> None:
    day0 = TODAY - D(40)
    snapshot0 = register.as_of(day0, actor=ADMIN)
    assert snapshot0.equals(register.residents(actor=ADMIN))  # nothing happened since

    d1, d2, d3 = TODAY - D(30), TODAY - D(20), TODAY - D(10)
    c1, c6, c12 = code_of(register, 1), code_of(register, 6), code_of(register, 12)
    register.apply([ev("move_within", "w1", resident_code=c6, whole_household=True,
                       notified_date=d1, event_date=d1, **ADDR)], actor=CLERK, today=TODAY)
    register.apply([ev("name_change", "n1", resident_code=c12, family_name="木村",
                       notified_date=d2, event_date=d2),
                    ev("death", "d1", resident_code=c1, new_head_code=code_of(register, 2),
                       notified_date=d2, event_date=d2)], actor=CLERK, today=TODAY)
    register.apply([ev("birth", "b1", event_date=d3, notified_date=d3, household_id=5,
                       relationship="子", family_name="木村", given_name="翼",
                       family_name_kana="キムラ", given_name_kana="ツバサ", sex=2)],
                   actor=CLERK, today=TODAY)

    assert register.as_of(day0, actor=ADMIN).drop_columns(["updated_on"]).equals(
        snapshot0.drop_columns(["updated_on"]))
    at1 = _by_pid(register.as_of(d1, actor=ADMIN))
    assert at1[6]["address"].endswith("外神田1丁目1番1号") and at1[6]["address_since"] == d1
    assert at1[12]["family_name"] != "木村" and 1 in at1
    at2 = _by_pid(register.as_of(d2, actor=ADMIN))
    assert at2[12]["family_name"] == "木村"
    assert 1 not in at2 and at2[2]["relationship"] == "世帯主"
    assert len(at2) == 14
    at3 = register.as_of(d3, actor=ADMIN)
    assert at3.num_rows == 15
    now = register.residents(actor=ADMIN)
    assert at3.drop_columns(["updated_on"]).equals(now.drop_columns(["updated_on"]))
    # the day before the move, every member of household 3 was at the old address
    before = _by_pid(register.as_of(d1 - D(1), actor=ADMIN))
    assert {before[p]["address"] for p in (6, 7, 8, 9)} == {snapshot0.to_pylist()[5]["address"]}
    hh = register.households(actor=ADMIN, as_of=d2).to_pylist()
    assert next(h for h in hh if h["household_id"] == 1)["head_person_id"] == 2


def test_history_records_every_changed_item(register: Register) -> None:
    """Replaying each record's history from its first values gives its current values."""
    day = generate_day(register, actor=ADMIN, day=TODAY, n=12, seed=7)
    rep = register.apply(day, actor=CLERK, today=TODAY)
    assert rep.applied == day.num_rows, rep.rejected
    initial = _by_pid(register.as_of(TODAY - D(365), actor=ADMIN))
    current = _by_pid(register.residents(actor=ADMIN, include_removed=True))
    hist = register.export(actor=ADMIN)["history"].to_pylist()
    changed = {h["person_id"] for h in hist}
    assert changed, "the generated day changed nothing"
    for pid, rec in current.items():
        rows = [h for h in hist if h["person_id"] == pid]
        if pid not in initial:  # created today
            assert rows[0]["item"] == "status" and rows[0]["old_value"] is None
            continue
        for item in TRACKED_ITEMS:
            item_rows = [h for h in rows if h["item"] == item]
            if not item_rows:
                assert rec[item] == initial[pid][item], (pid, item)
                continue
            for older, newer in itertools.pairwise(item_rows):
                assert older["new_value"] == newer["old_value"]
            assert all(h["notification_id"] and h["reason"] and h["recorded_at"]
                       for h in item_rows)


@pytest.mark.parametrize("fail_at", [0, 3, 7])
def test_failure_mid_apply_leaves_register_as_before(register: Register, fail_at: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    day = generate_day(register, actor=ADMIN, day=TODAY, n=10, seed=3)
    before = register.content_digest()
    counts = register.counts()
    calls = {"n": 0}
    original = RegisterClass._apply_row

    def failing(self: Register, b: Any, r: dict[str, Any], digest: str | None = None,
                ) -> int | None:
        if calls["n"] == fail_at:
            raise StoreError("disk on fire (injected)")
        calls["n"] += 1
        return original(self, b, r, digest)

    monkeypatch.setattr(RegisterClass, "_apply_row", failing)
    with pytest.raises(StoreError, match="injected"):
        register.apply(day, actor=CLERK, today=TODAY)
    assert register.content_digest() == before
    assert register.counts() == counts
    monkeypatch.undo()
    rep = register.apply(day, actor=CLERK, today=TODAY)  # the same day applies cleanly after
    assert rep.applied == day.num_rows


def test_generated_day_applies_cleanly(register: Register) -> None:
    day = generate_day(register, actor=ADMIN, day=TODAY, n=14, seed=11)
    assert day.num_rows == 14
    assert generate_day(register, actor=ADMIN, day=TODAY, n=14, seed=11).equals(day)
    rep = register.apply(day, actor=CLERK, today=TODAY)
    assert rep.rejected == ()
    log = register.audit_log(actor=ADMIN).column("notification_id").to_pylist()
    assert set(day.column("notification_id").to_pylist()) <= set(log)
    out = register.outbox(actor=ADMIN)
    seqs = out.column("seq").to_pylist()
    assert seqs == list(range(1, len(seqs) + 1))  # gapless per-municipality sequence
