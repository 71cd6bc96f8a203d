"""Who holds a record at the prefecture and the center: retired codes stay retired, the
actual move-in wins over a planned move-out, no municipality overwrites another's resident,
and an entry that breaks a rule is quarantined without refusing its packet."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jukicore.codes import CodeRegistry
from jukicore.errors import InvalidInputError
from jukicore.identity import IDENTITY_SCHEMA, IdentityStore, create_identity_store

A, B, C = "131016", "131041", "271004"
D = dt.date(2024, 4, 1)
_codes = [int(c) for c in CodeRegistry().generate(40)]
X, X2, Y, Z = _codes[0], _codes[1], _codes[2], _codes[3]


def day(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


def entry(seq: int, code: int, reason: str, when: int, *, status: str = "resident",
          previous: int | None = None, **kw: Any) -> dict[str, Any]:
    row = {"seq": seq, "resident_code": code, "previous_resident_code": previous,
           "family_name": "佐藤", "given_name": "花子", "birth_date": dt.date(1980, 1, 2),
           "sex": 2, "address": "東京都千代田区丸の内1丁目1番1号", "status": status,
           "change_date": day(when), "change_reason": reason}
    row.update(kw)
    return row


class Packets:
    """Packets of one municipality, numbered as its outbox numbers them."""

    def __init__(self, sender: str) -> None:
        self.sender, self.seq, self.n = sender, 0, 0

    def __call__(self, *rows: tuple[Any, ...]) -> tuple[str, str, list[dict[str, Any]]]:
        out = []
        for code, reason, when, kw in rows:
            self.seq += 1
            out.append(entry(self.seq, code, reason, when, **kw))
        self.n += 1
        return self.sender, f"{self.sender}-p{self.n}", out


def apply(st: IdentityStore, packet: tuple[str, str, list[dict[str, Any]]]) -> Any:
    sender, pid, rows = packet
    return st.apply_changes(sender=sender, packet_id=pid, first_seq=rows[0]["seq"],
                            last_seq=rows[-1]["seq"],
                            changes=pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA),
                            actor=st.node_id)


@pytest.fixture
def make_store(db_target: str, tmp_path: Path,
               pg_databases: Callable[[str], str]) -> Iterator[Callable[[], IdentityStore]]:
    """Fresh center stores on the test's database kind (SQLite files, PostgreSQL DBs)."""
    made: list[IdentityStore] = []
    n = itertools.count()

    def make() -> IdentityStore:
        target = (pg_databases("holders") if db_target.startswith("postgres")
                  else str(tmp_path / f"store{next(n)}.db"))
        st = create_identity_store(target, node_id="center", kind="center")
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()


def current(st: IdentityStore) -> dict[int, dict[str, Any]]:
    return {r["resident_code"]: r for r in st.current(actor=st.node_id).to_pylist()}


def orders(*streams: list[Any]) -> list[list[Any]]:
    """Every interleaving of the streams that keeps each stream in its own order."""
    out: list[list[Any]] = []

    def go(prefix: list[Any], rest: list[list[Any]]) -> None:
        if not any(rest):
            out.append(prefix)
        for i, s in enumerate(rest):
            if s:
                go([*prefix, s[0]], [*rest[:i], s[1:], *rest[i + 1:]])

    go([], [list(s) for s in streams])
    return out


@pytest.fixture
def store(db_target: str) -> Iterator[IdentityStore]:
    st = create_identity_store(db_target, node_id="center", kind="center")
    yield st
    st.close()


def _play(st: IdentityStore, packets: list[Any]) -> None:
    for p in packets:
        apply(st, p)


# ------------------------------------------------------------------ 1. retired codes


def _code_change_story() -> tuple[list[Any], list[Any]]:
    """X lives in A, moves to B on day 5 and takes the new code X2 there on day 8; A's
    move-out (planned for day 6) goes out in A's second packet."""
    a, b = Packets(A), Packets(B)
    a_stream = [a((X, "load", 0, {})),
                a((X, "move_out", 6, {"status": "removed"}))]
    b_stream = [b((X, "move_in", 5, {"address": "東京都新宿区西新宿2丁目8番1号"}),
                  (X2, "code_change", 8, {"previous": X,
                                          "address": "東京都新宿区西新宿2丁目8番1号"}))]
    return a_stream, b_stream


@pytest.mark.parametrize("order", range(3))
def test_a_retired_code_never_becomes_current_again(store: IdentityStore, order: int) -> None:
    """The center: A's move-out arriving after B's code change used to revive X as a
    second current row of the same person."""
    a_stream, b_stream = _code_change_story()
    _play(store, orders(a_stream, b_stream)[order])
    cur = current(store)
    assert X not in cur
    assert (cur[X2]["lg_code"], cur[X2]["status"]) == (B, "resident")
    retired = store.retired_codes(actor=store.node_id).to_pylist()
    assert [(r["resident_code"], r["lg_code"], r["new_code"], r["retired_on"])
            for r in retired] == [(X, B, X2, day(8))]
    # every entry is in the history; A's late move-out was superseded, not quarantined
    assert [h["change_reason"] for h in store.history(X, actor=store.node_id).to_pylist()] == [
        "load", "move_in", "move_out", "code_change"]
    assert store.quarantined(actor=store.node_id).num_rows == 0


def test_a_retired_code_moving_in_elsewhere_is_quarantined(store: IdentityStore) -> None:
    a_stream, b_stream = _code_change_story()
    _play(store, [*a_stream, *b_stream])
    before = current(store)
    c = Packets(C)
    res = apply(store, c((X, "move_in", 20, {"given_name": "次郎", "sex": 1}),
                         (Y, "birth", 20, {"given_name": "三郎"})))
    # The packet is applied and acknowledged; the retired code stays out, the birth is in.
    assert (res.applied, res.quarantined, store.last_seq(C)) == (2, 1, 2)
    after = current(store)
    assert X not in after and after[Y]["lg_code"] == C
    assert {k: v for k, v in after.items() if k != Y} == before
    q = store.quarantined(actor=store.node_id).to_pylist()
    assert [(r["lg_code"], r["seq"], r["resident_code"], r["given_name"]) for r in q] == [
        (C, 1, X, "次郎")]
    assert "retired" in q[0]["problem"] and q[0]["packet_id"] == "271004-p1"
    with store._b.session(write=False) as s:
        audit = s.query("SELECT action, target, detail FROM audit WHERE action ="
                        " 'identity.quarantine'")
    assert audit == [("identity.quarantine", f"{X:011d}",
                      f"entry 1 from {C} in packet 271004-p1: {q[0]['problem']}")]
    # nothing stops the next night: C's next entry applies
    assert apply(store, c((Y, "move_within", 21, {"address": "大阪府大阪市北区梅田1丁目1番1号"})
                          )).quarantined == 0
    assert current(store)[Y]["address"] == "大阪府大阪市北区梅田1丁目1番1号"


def test_a_code_change_to_a_code_in_use_or_of_a_code_not_held(store: IdentityStore) -> None:
    a, b = Packets(A), Packets(B)
    _play(store, [a((X, "load", 0, {}), (Y, "load", 0, {})), b((Z, "load", 0, {}))])
    before = current(store)
    res = apply(store, b((Z, "code_change", 3, {"previous": X}),      # X is A's
                         (Y, "code_change", 3, {"previous": Z}),      # Y is in use
                         (X2, "code_change", 3, {"previous": Z})))    # fine
    assert (res.applied, res.quarantined) == (3, 2)
    cur = current(store)
    assert Z not in cur and cur[X2]["lg_code"] == B
    assert cur[X] == before[X] and cur[Y] == before[Y]
    assert [r["resident_code"] for r in store.retired_codes(actor=store.node_id).to_pylist()] == [Z]


@pytest.mark.parametrize("order", range(2))
def test_a_code_change_after_the_person_moved_on_with_the_new_code(store: IdentityStore,
                                                                   order: int) -> None:
    """X lives in B, takes the new code X2 there on day 3 and moves to A with it on day 4;
    when A's move-in arrives before B's code change, the change still retires X (found by
    the model-based test: X stayed current at B beside X2 at A), and X2 stays A's."""
    a, b = Packets(A), Packets(B)
    b_stream = [b((X, "move_in", 1, {}),
                  (X2, "code_change", 3, {"previous": X}),
                  (X2, "move_out", 4, {"status": "removed"}))]
    a_stream = [a((X2, "move_in", 4, {}))]
    _play(store, orders(a_stream, b_stream)[order])
    cur = current(store)
    assert X not in cur
    assert (cur[X2]["lg_code"], cur[X2]["status"]) == (A, "resident")
    retired = store.retired_codes(actor=store.node_id).to_pylist()
    assert [(r["resident_code"], r["lg_code"], r["new_code"]) for r in retired] == [(X, B, X2)]
    assert store.quarantined(actor=store.node_id).num_rows == 0


# ------------------------------------------------------------------ 2. the actual move-in


def _planned_move_out_story() -> tuple[list[Any], list[Any]]:
    """A files the move-out for day 10 (planned); the person moves in at B on day 3; A then
    corrects the move-out date to day 2."""
    a, b = Packets(A), Packets(B)
    a_stream = [a((X, "load", 0, {})),
                a((X, "move_out", 10, {"status": "removed"})),
                a((X, "move_out_correction", 2, {"status": "removed"}))]
    b_stream = [b((X, "move_in", 3, {"address": "東京都新宿区西新宿2丁目8番1号"}))]
    return a_stream, b_stream


@pytest.mark.parametrize("order", range(4))
def test_the_actual_move_in_wins_over_a_planned_move_out(store: IdentityStore,
                                                        order: int) -> None:
    a_stream, b_stream = _planned_move_out_story()
    _play(store, orders(a_stream, b_stream)[order])
    row = current(store)[X]
    assert (row["lg_code"], row["status"], row["change_date"], row["address"]) == (
        B, "resident", day(3), "東京都新宿区西新宿2丁目8番1号")
    assert store.quarantined(actor=store.node_id).num_rows == 0
    assert len(store.history(X, actor=store.node_id)) == 4


def test_every_arrival_order_ends_in_the_same_content(
        make_store: Callable[[], IdentityStore]) -> None:
    """Moves A -> B -> A and a code change at B, with A's planned move-outs: every
    interleaving of the three packets per municipality ends in the same current info."""
    a, b = Packets(A), Packets(B)
    a_stream = [a((X, "load", 0, {}), (Y, "load", 0, {})),
                a((X, "move_out", 4, {"status": "removed"}), (Y, "name_change", 4,
                                                              {"family_name": "鈴木"})),
                a((X, "move_in", 9, {"address": "東京都港区芝公園4丁目2番8号"}))]
    b_stream = [b((X, "move_in", 3, {"address": "東京都新宿区西新宿2丁目8番1号"})),
                b((X, "move_out", 9, {"status": "removed"}), (Z, "birth", 9, {})),
                b((X2, "code_change", 10, {"previous": Z}))]
    results = []
    for order in orders(a_stream, b_stream):
        st = make_store()
        _play(st, order)
        results.append(current(st))
        assert st.quarantined(actor=st.node_id).num_rows == 0
        st.close()
    assert len(results) == 20 and all(r == results[0] for r in results)
    rows = results[0]
    assert (rows[X]["lg_code"], rows[X]["status"], rows[X]["change_date"]) == (A, "resident",
                                                                              day(9))
    assert rows[Y]["family_name"] == "鈴木" and Z not in rows and rows[X2]["lg_code"] == B


# ------------------------------------------------------------------ 3. the sender holds it


def test_another_municipality_cannot_overwrite_a_resident(store: IdentityStore) -> None:
    a, b = Packets(A), Packets(B)
    apply(store, a((X, "load", 0, {}), (Y, "load", 0, {})))
    before = current(store)
    res = apply(store, b((X, "name_change", 5, {"family_name": "偽"}),
                         (X, "death", 6, {"status": "removed"}),
                         (Y, "move_out", 6, {"status": "removed"}),
                         (Y, "move_within", 7, {"address": "偽の住所"}),
                         (Z, "birth", 7, {})))
    assert (res.applied, res.quarantined, res.superseded) == (5, 4, 0)
    cur = current(store)
    assert cur[X] == before[X] and cur[Y] == before[Y] and cur[Z]["lg_code"] == B
    problems = [r["problem"] for r in store.quarantined(B, actor=store.node_id).to_pylist()]
    assert len(problems) == 4 and all(f"held by {A}" in p for p in problems)
    assert store.quarantined(A, actor=store.node_id).num_rows == 0
    assert store.last_seq(B) == 5


@pytest.mark.parametrize(("reason", "status", "extra", "problem"), [
    ("death", "resident", {}, "leaves the record removed"),
    ("move_out", "resident", {}, "leaves the record removed"),
    ("ex_officio_removal", "resident", {}, "leaves the record removed"),
    ("move_out_correction", "resident", {}, "leaves the record removed"),
    ("move_within", "removed", {}, "leaves the record resident"),
    ("name_change", "removed", {}, "leaves the record resident"),
    ("code_change", "resident", {}, "names the code it replaces"),
    ("name_change", "resident", {"previous": "X"}, "only a code change"),
    ("birth", "resident", {}, "held already"),
])
def test_the_reason_must_fit_the_change(store: IdentityStore, reason: str, status: str,
                                        extra: dict[str, Any], problem: str) -> None:
    a = Packets(A)
    apply(store, a((X, "load", 0, {}), (Y, "load", 0, {})))
    before = current(store)
    kw = {"status": status, **{k: (Y if v == "X" else v) for k, v in extra.items()}}
    res = apply(store, a((X, reason, 5, kw), (Y, "move_within", 5, {"address": "新住所"})))
    assert (res.applied, res.quarantined) == (2, 1)
    cur = current(store)
    assert cur[X] == before[X] and cur[Y]["address"] == "新住所"
    q = store.quarantined(actor=store.node_id).to_pylist()
    assert [(r["seq"], r["change_reason"]) for r in q] == [(3, reason)]
    assert problem in q[0]["problem"]


@pytest.mark.parametrize(("reason", "status", "column"), [
    ("teleport", "resident", "change_reason"),
    ("name_change", "absent", "status"),
])
def test_an_invalid_value_refuses_the_batch_or_is_set_aside(
        store: IdentityStore, reason: str, status: str, column: str) -> None:
    """A value failing the validation refuses the batch through the API (changing nothing);
    the synchronization sets such entries aside and applies the rest."""
    a = Packets(A)
    apply(store, a((X, "load", 0, {}), (Y, "load", 0, {})))
    before = store.content_digest()
    sender, pid, rows = a((X, reason, 5, {"status": status}),
                          (Y, "move_within", 5, {"address": "新住所"}))
    table = pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA)
    with pytest.raises(InvalidInputError) as err:
        store.apply_changes(sender=sender, packet_id=pid, first_seq=3, last_seq=4,
                            changes=table, actor=store.node_id)
    assert [(r.row, r.column) for r in err.value.rows] == [(0, column)]
    assert store.content_digest() == before
    res = store.apply_changes(sender=sender, packet_id=pid, first_seq=3, last_seq=4,
                              changes=table, actor=store.node_id, set_aside_invalid=True)
    assert (res.applied, res.rejected, res.skipped, res.last_seq) == (1, 1, 0, 4)
    assert current(store)[Y]["address"] == "新住所"
    rejected = store.rejected(actor=store.node_id).to_pylist()
    assert [(r["seq"], r["packet_id"]) for r in rejected] == [(3, pid)]
    assert column in rejected[0]["problem"] and reason in rejected[0]["entry"]
    # never in the history
    assert store.history(X, actor=store.node_id).column("seq").to_pylist() == [1]


@pytest.mark.parametrize("b_first", [True, False])
def test_two_move_ins_on_one_day_the_one_left_loses(make_store: Callable[[], IdentityStore],
                                                    b_first: bool) -> None:
    """The person moves in at A (from abroad) and, the same day, on to B; A's move-out is
    planned for the next day. Whichever packet arrives first, B holds the record (found
    by the model-based test)."""
    store = make_store()
    a, b = Packets(A), Packets(B)
    pa_ = a((X, "move_in", 5, {}), (X, "move_out", 6, {"status": "removed"}))
    pb = b((X, "move_in", 5, {"address": "東京都新宿区西新宿1丁目1番1号"}))
    for packet in ([pb, pa_] if b_first else [pa_, pb]):
        apply(store, packet)
    rec = current(store)[X]
    assert (rec["lg_code"], rec["status"], rec["change_reason"]) == (B, "resident", "move_in")
    assert store.quarantined(actor=store.node_id).num_rows == 0


def test_unknown_codes_only_by_a_new_code(store: IdentityStore) -> None:
    a = Packets(A)
    res = apply(store, a((X, "birth", 1, {}), (Y, "move_in", 1, {}), (Z, "load", 1, {}),
                         (X2, "name_change", 1, {}),
                         (_codes[5], "death", 1, {"status": "removed"})))
    assert (res.applied, res.quarantined) == (5, 2)
    assert sorted(current(store)) == sorted([X, Y, Z])
    assert all("unknown here" in r["problem"]
               for r in store.quarantined(actor=store.node_id).to_pylist())


def test_a_death_recorded_blocks_a_move_in_elsewhere(store: IdentityStore) -> None:
    a, b = Packets(A), Packets(B)
    _play(store, [a((X, "load", 0, {}), (X, "death", 3, {"status": "removed"}))])
    before = current(store)
    assert apply(store, b((X, "move_in", 5, {}))).quarantined == 1
    assert current(store) == before


# ------------------------------------------------------------------ the digest


def test_content_digest_covers_the_new_tables(store: IdentityStore) -> None:
    a_stream, b_stream = _code_change_story()
    _play(store, [*a_stream, *b_stream])
    apply(store, Packets(C)((X, "move_in", 20, {})))
    block = CodeRegistry().allocate_block(10, "130001")
    assert store.receive_code_block(block, sender="center", actor=store.node_id)
    digests = {store.content_digest()}
    for table, key in (("identity_retired", "resident_code"), ("identity_quarantine", "seq"),
                       ("code_blocks_received", "block_id")):
        with store._b.session() as s:
            s.execute(f"UPDATE {table} SET {key} = {key}")  # no change: same digest
        assert store.content_digest() in digests
        with store._b.session() as s:
            s.execute(f"DELETE FROM {table}")
        digests.add(store.content_digest())
    assert len(digests) == 4
    with store._b.session() as s:
        s.execute("UPDATE identity SET held_since = '2001-02-03'")
    assert store.content_digest() not in digests  # held_since is content too


def test_version_2_store_loses_a_revived_retired_code(db_target: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A version 2 store in which A's late move-out revived X after B's code change opens
    at version 3 with X retired (not current) and each holder's ``held_since``."""
    from jukicore.identity import store as store_mod

    with monkeypatch.context() as m:
        m.setattr(store_mod, "IDENTITY_STORE", dataclasses.replace(
            store_mod.IDENTITY_STORE, migrations=store_mod._MIGRATIONS[:2]))
        # (that version wrote its audit entries in its own, older shape)
        m.setattr(store_mod, "_audit", lambda *a, **kw: None)
        old = create_identity_store(db_target, node_id="center", kind="center")
    a_stream, b_stream = _code_change_story()
    hist = [(sender, r) for sender, _, rows in [*a_stream, *b_stream] for r in rows]
    with old._b.session() as s:
        d = s.d
        for sender, r in hist:
            s.execute("INSERT INTO identity_history (lg_code, seq, resident_code,"
                      " previous_resident_code, family_name, given_name, birth_date, sex,"
                      " address, status, change_date, change_reason, packet_id)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (sender, r["seq"], r["resident_code"], r["previous_resident_code"],
                       r["family_name"], r["given_name"], d(r["birth_date"]), r["sex"],
                       r["address"], r["status"], d(r["change_date"]), r["change_reason"],
                       "p"))
        for sender, r in hist:
            if r["seq"] == 2:  # what version 2 left current: X2 at B, X revived by A
                s.execute("INSERT INTO identity (resident_code, family_name, given_name,"
                          " birth_date, sex, address, status, change_date, change_reason,"
                          " lg_code, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (r["resident_code"], r["family_name"], r["given_name"],
                           d(r["birth_date"]), r["sex"], r["address"], r["status"],
                           d(r["change_date"]), r["change_reason"], sender, r["seq"]))
    old.close()
    from jukicore.identity import open_identity_store

    with open_identity_store(db_target) as st:
        assert sorted(current(st)) == [X2]
        assert st.retired_codes(actor=st.node_id).column("resident_code").to_pylist() == [X]
        with st._b.session(write=False) as s:
            since = s.query("SELECT held_since FROM identity")
        assert [s.pd(v) for (v,) in since] == [day(8)]
        # and it goes on by the rules: a later move-in of X elsewhere is quarantined
        assert apply(st, Packets(C)((X, "move_in", 20, {}))).quarantined == 1
