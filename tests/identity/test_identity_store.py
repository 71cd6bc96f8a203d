"""Identity stores of the prefecture and the center, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from jukicore.codes import CodeRegistry
from jukicore.errors import ConflictError, InvalidInputError, NotFoundError
from jukicore.identity.store import (
    IDENTITY_SCHEMA,
    IdentityStore,
    create_identity_store,
    open_identity_store,
)
from jukicore.store.backend import connect

MUNI_A, MUNI_B = "131016", "131041"
D = dt.date(2024, 4, 1)


@pytest.fixture
def store(db_target: str) -> Iterator[IdentityStore]:
    st = create_identity_store(db_target, node_id="130001", kind="prefecture")
    yield st
    st.close()


_codes = CodeRegistry().generate(1000)


def change(seq: int, code_index: int, **kw: Any) -> dict[str, Any]:
    row = {"seq": seq, "resident_code": int(_codes[code_index]), "previous_resident_code": None,
           "family_name": "佐藤", "given_name": f"花子{code_index}",
           "birth_date": dt.date(1980, 1, 2), "sex": 2,
           "address": "東京都千代田区丸の内1丁目1番1号", "status": "resident",
           "change_date": D, "change_reason": "load"}
    row.update(kw)
    return row


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA)


def apply(st: IdentityStore, sender: str, pid: str, rows: list[dict[str, Any]]) -> Any:
    first, last = rows[0]["seq"], rows[-1]["seq"]
    return st.apply_changes(sender=sender, packet_id=pid, first_seq=first, last_seq=last,
                            changes=table(rows), actor=st.node_id)


def test_apply_then_refusals_change_nothing(store: IdentityStore) -> None:
    res = apply(store, MUNI_A, "p1", [change(i, i) for i in range(1, 6)])
    assert (res.applied, res.skipped, res.last_seq) == (5, 0, 5)
    assert store.count() == 5 and store.last_seq(MUNI_A) == 5
    before = store.content_digest()
    with pytest.raises(ConflictError, match="already applied"):
        apply(store, MUNI_A, "p1", [change(6, 6)])
    with pytest.raises(ConflictError, match="replayed"):
        apply(store, MUNI_A, "p2", [change(i, i) for i in range(2, 5)])
    with pytest.raises(ConflictError, match="gap"):
        apply(store, MUNI_A, "p3", [change(7, 7)])
    with pytest.raises(InvalidInputError, match="without gaps"):
        store.apply_changes(sender=MUNI_A, packet_id="p4", first_seq=6, last_seq=8,
                            changes=table([change(6, 6), change(8, 8)]), actor=store.node_id)
    leaky = table([change(6, 6)]).append_column("domicile", pa.array(["北海道"]))
    with pytest.raises(InvalidInputError, match="must not leave"):
        store.apply_changes(sender=MUNI_A, packet_id="p5", first_seq=6, last_seq=6,
                            changes=leaky, actor=store.node_id)
    assert store.content_digest() == before
    assert not store.packet_applied("p2")


def test_retransmission_applies_only_the_unseen_suffix(store: IdentityStore) -> None:
    apply(store, MUNI_A, "p1", [change(i, i) for i in range(1, 4)])
    # (the entries held must come again as they were: backup.md, "re-synchronization")
    res = apply(store, MUNI_A, "p2", [change(i, i) if i < 4 else
                                      change(i, i, given_name=f"x{i}") for i in range(2, 7)])
    assert (res.applied, res.skipped) == (3, 2)
    cur = store.current(actor=store.node_id).to_pylist()
    names = {r["resident_code"]: r["given_name"] for r in cur}
    assert names[int(_codes[2])] == "花子2"  # entry 2 was applied once, from p1
    assert names[int(_codes[5])] == "x5"
    assert store.last_seq(MUNI_A) == 6 and store.last_seq(MUNI_B) == 0


def test_latest_change_wins_whatever_the_arrival_order(store: IdentityStore) -> None:
    moved = 10
    apply(store, MUNI_B, "b1", [change(1, moved, address="新宿区", change_date=D,
                                       change_reason="move_in")])
    apply(store, MUNI_A, "a1", [change(1, moved, status="removed",
                                       change_date=D - dt.timedelta(days=3),
                                       change_reason="move_out")])
    row = store.current(actor=store.node_id).to_pylist()[0]
    assert (row["lg_code"], row["status"], row["address"]) == (MUNI_B, "resident", "新宿区")
    hist = store.history(int(_codes[moved]), actor=store.node_id).to_pylist()
    assert [h["change_reason"] for h in hist] == ["move_out", "move_in"]


def test_code_change_retires_the_old_code(store: IdentityStore) -> None:
    apply(store, MUNI_A, "p1", [change(1, 20)])
    apply(store, MUNI_A, "p2", [change(2, 21, previous_resident_code=int(_codes[20]),
                                       change_reason="code_change")])
    codes = [r["resident_code"] for r in store.current(actor=store.node_id).to_pylist()]
    assert codes == [int(_codes[21])]
    assert len(store.history(int(_codes[20]), actor=store.node_id)) == 2


def test_open_and_errors(db_target: str) -> None:
    with pytest.raises(NotFoundError):
        open_identity_store(db_target)
    with pytest.raises(InvalidInputError):
        create_identity_store(db_target, node_id="x", kind="municipality")
    create_identity_store(db_target, node_id="center", kind="center").close()
    with pytest.raises(ConflictError):
        create_identity_store(db_target, node_id="center", kind="center")
    with open_identity_store(db_target) as st:
        assert (st.node_id, st.kind, st.count()) == ("center", "center", 0)


def test_bulk_batch(store: IdentityStore) -> None:
    n = 1000
    rows = [change(i + 1, i) for i in range(n)]
    apply(store, MUNI_A, "bulk", rows)
    cur = store.current(actor=store.node_id)
    assert cur.num_rows == n
    assert np.array_equal(np.sort(cur.column("resident_code").to_numpy()), np.sort(_codes))


def test_version_1_store_is_migrated_and_keeps_its_content(
        db_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store made by schema version 1 opens at the latest version with the same content."""
    from jukicore.identity import store as store_mod

    rows = [change(1, 30), change(2, 31),
            change(3, 32, previous_resident_code=int(_codes[31]), change_reason="code_change")]
    with monkeypatch.context() as m:
        m.setattr(store_mod, "IDENTITY_STORE", dataclasses.replace(
            store_mod.IDENTITY_STORE, migrations=store_mod._MIGRATIONS[:1]))
        # (that version wrote its audit entries in its own, older shape)
        m.setattr(store_mod, "_audit", lambda *a, **kw: None)
        old = create_identity_store(db_target, node_id="130001", kind="prefecture")
    # What version 1 stored for these changes (its own apply path is gone: write it as is).
    with old._b.session() as s:
        # version 1 wrote the node id under the key 'lg_code'
        s.execute("UPDATE meta SET key = 'lg_code' WHERE key = 'node_id'")
        d = s.d
        for r in rows:
            s.execute("INSERT INTO identity_history (lg_code, seq, resident_code,"
                      " previous_resident_code, family_name, given_name, birth_date, sex,"
                      " address, status, change_date, change_reason, packet_id)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (MUNI_A, r["seq"], r["resident_code"], r["previous_resident_code"],
                       r["family_name"], r["given_name"], d(r["birth_date"]), r["sex"],
                       r["address"], r["status"], d(r["change_date"]), r["change_reason"],
                       "p1"))
        for r in (rows[0], rows[2]):
            s.execute("INSERT INTO identity (resident_code, family_name, given_name,"
                      " birth_date, sex, address, status, change_date, change_reason, lg_code,"
                      " seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (r["resident_code"], r["family_name"], r["given_name"],
                       d(r["birth_date"]), r["sex"], r["address"], r["status"],
                       d(r["change_date"]), r["change_reason"], MUNI_A, r["seq"]))
        s.execute("INSERT INTO peers (lg_code, last_seq) VALUES (?, 3)", (MUNI_A,))
    old.close()

    with open_identity_store(db_target) as st:
        with st._b.session(write=False) as s:
            assert s.scalar("SELECT max(version) FROM identity_schema_version") == \
                store_mod.SCHEMA_VERSION
        assert st.node_id == "130001"
        # version 3 records the code retired by the history's code change
        retired = st.retired_codes(actor=st.node_id).to_pylist()
        assert [(r["resident_code"], r["new_code"], r["lg_code"]) for r in retired] == [
            (int(_codes[31]), int(_codes[32]), MUNI_A)]
        assert [r["resident_code"] for r in st.current(actor=st.node_id).to_pylist()] == sorted(
            [int(_codes[30]), int(_codes[32])])
        hist = st.history(int(_codes[31]), actor=st.node_id).to_pylist()
        assert [h["seq"] for h in hist] == [2, 3]
        # The migrated store applies the next entry, and still refuses a replay.
        apply(st, MUNI_A, "p2", [change(4, 33)])
        assert st.count() == 3 and st.last_seq(MUNI_A) == 4
        before = st.content_digest()
        with pytest.raises(ConflictError, match=r"replayed|other content"):
            apply(st, MUNI_A, "p3", [change(2, 31), change(3, 31)])
        assert st.content_digest() == before
    with open_identity_store(db_target) as st:  # opening again migrates nothing
        assert st.content_digest() == before


def test_newer_schema_is_refused(db_target: str) -> None:
    from jukicore.errors import SchemaVersionError

    create_identity_store(db_target, node_id="center", kind="center").close()
    with open_identity_store(db_target) as st:
        with st._b.session() as s:
            s.execute("INSERT INTO identity_schema_version (version, applied_at)"
                      " VALUES (99, 'later')")
        before = st.content_digest()
    with pytest.raises(SchemaVersionError, match="version 99"):
        open_identity_store(db_target)
    with IdentityStore(connect(db_target)) as st:  # past the version check: unchanged
        assert st.content_digest() == before


@pytest.mark.parametrize("bulk", [False, True])
def test_try_execute_undoes_only_the_duplicate_statement(store: IdentityStore,
                                                         bulk: bool) -> None:
    """``Session.try_execute``: a unique-key violation undoes that statement alone; the
    transaction goes on and commits what came before and after it."""
    b = store._b  # on SQLite, the bulk session is ADBC's connection, the other sqlite3's
    with b.session() as s:
        s.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    with (b.bulk_session() if bulk else b.session()) as s:
        s.execute("INSERT INTO t (k, v) VALUES (1, 'a')")
        assert s.try_execute("INSERT INTO t (k, v) VALUES (2, 'b'), (3, 'c')")
        # the second row breaks the key: neither row of the statement stays
        assert not s.try_execute("INSERT INTO t (k, v) VALUES (4, 'd'), (1, 'x')")
        s.execute("INSERT INTO t (k, v) VALUES (5, 'e')")
        with pytest.raises(Exception, match=r"(?i)null"):
            s.try_execute("INSERT INTO t (k, v) VALUES (6, NULL)")  # not a duplicate
    with b.session(write=False) as s:
        assert s.query("SELECT k, v FROM t ORDER BY k") == [
            (1, "a"), (2, "b"), (3, "c"), (5, "e")]


def test_batch_of_new_codes_with_one_already_present(store: IdentityStore) -> None:
    """A batch of unique codes takes PostgreSQL's plain INSERT; one code already in the
    store sends it back to the upsert, which applies the usual rules."""
    apply(store, MUNI_A, "p1", [change(i + 1, i) for i in range(5)])
    rows = [change(6 + i, 100 + i) for i in range(200)]
    rows.append(change(206, 2, given_name="newer", change_date=D + dt.timedelta(days=1),
                       change_reason="name_change"))
    rows.append(change(207, 3, given_name="older", change_date=D - dt.timedelta(days=1),
                       change_reason="name_change"))
    res = apply(store, MUNI_A, "p2", rows)
    assert (res.applied, res.skipped) == (202, 0)
    names = {r["resident_code"]: r["given_name"]
             for r in store.current(actor=store.node_id).to_pylist()}
    assert len(names) == 205
    assert names[int(_codes[2])] == "newer"
    # The holder's later entry wins even when dated earlier (a back-dated notification
    # recorded later): it is what the municipality's register holds now.
    assert names[int(_codes[3])] == "older"
    assert names[int(_codes[150])] == "花子150"
    assert len(store.history(int(_codes[3]), actor=store.node_id)) == 2
