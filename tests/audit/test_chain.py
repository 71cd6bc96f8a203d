"""The tamper-evident audit log: seq, tree state, checkpoints, verify, on both databases."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jukicore import _jukicore as core
from jukicore import audit
from jukicore.audit import chain
from jukicore.errors import InvalidInputError
from jukicore.identity import create_identity_store
from jukicore.network.crypto import NodeKeys
from jukicore.register import Actor, create_register
from jukicore.store import Backend, connect

LG = "131016"
ADMIN = Actor.operator("admin", LG, "admin")


@pytest.fixture
def log(db_target: str) -> Iterator[tuple[Backend, NodeKeys]]:
    """A register with 1 + 20 entries, a checkpoint at 11 (entry 11 records it), then 9
    more entries and a second checkpoint at 21 (entry 21), then 3 more: 25 entries."""
    create_register(db_target, lg_code=LG, prefecture="東京都", municipality="千代田区",
                    actor=ADMIN).close()
    keys = NodeKeys.generate(LG)
    be = connect(db_target)
    with be.session() as s:
        audit.write_many(s, [audit.entry(s, ADMIN, "test.write", f"{i:011d}", f"d{i}")
                             for i in range(10)])
        chain.checkpoint(s, LG, keys.signing)
    with be.session() as s:
        for i in range(9):
            audit.write(s, "center", "test.node", None, f"n{i}")
        chain.checkpoint(s, LG, keys.signing)
        for i in range(3):
            audit.write(s, ADMIN, "test.tail", None, f"t{i}")
    yield be, keys
    be.close()


def _verify(be: Backend, keys: NodeKeys | list[NodeKeys]) -> audit.VerifyReport:
    ks = keys if isinstance(keys, list) else [keys]
    return audit.verify(be, node_id=LG, keys=[k.signing.public_key() for k in ks])


def _raw(be: Backend, *sql: str) -> None:
    with be.session() as s:
        for q in sql:
            s.execute(q)


def test_entries_are_numbered_without_gaps_and_the_log_verifies(log: Any) -> None:
    be, keys = log
    with be.session(write=False) as s:
        seqs = [r[0] for r in s.query("SELECT seq FROM audit ORDER BY id")]
        st = chain.state(s)
    assert seqs == list(range(25))
    assert st.size == 25
    report = _verify(be, keys)
    assert report.ok, report.problems
    assert (report.entries, report.size, report.checkpoints,
            report.latest_checkpoint_size) == (25, 25, 2, 21)


def test_the_root_is_rfc6962_over_the_canonical_bytes(log: Any) -> None:
    """An independent reference: hashlib over the documented entry bytes."""
    be, _ = log
    with be.session(write=False) as s:
        rows = s.query("SELECT seq, at, actor, actor_kind, action, target, notification_id,"
                       " detail FROM audit ORDER BY seq")
        st = chain.state(s)

    def field(v: str | None) -> bytes:
        if v is None:
            return b"\xff\xff\xff\xff"
        b = v.encode()
        return len(b).to_bytes(4, "big") + b

    def leaf(r: tuple[Any, ...]) -> bytes:
        _, us = chain.at_micros(r[1])
        data = (b"JKA1" + int(r[0]).to_bytes(8, "big") + us.to_bytes(8, "big", signed=True)
                + b"".join(field(v) for v in r[2:]))
        assert data == core.audit_entry_bytes(int(r[0]), us, tuple(r[2:]))
        return hashlib.sha256(b"\x00" + data).digest()

    def mth(hs: list[bytes]) -> bytes:
        if len(hs) == 1:
            return hs[0]
        k = 1 << ((len(hs) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(hs[:k]) + mth(hs[k:])).digest()

    assert mth([leaf(r) for r in rows]) == st.root


def test_checkpoints_are_c2sp_signed_notes(log: Any) -> None:
    be, keys = log
    with be.session(write=False) as s:
        cps = chain.checkpoints(s)
    assert [(c.number, c.size) for c in cps] == [(1, 11), (2, 21)]
    body, sig = cps[0].note.split("\n\n")
    lines = body.split("\n")
    assert lines[0] == f"jukicore/{LG}" and lines[1] == "11"
    assert base64.b64decode(lines[2]) == cps[0].root
    dash, name, tag = sig.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", f"jukicore/{LG}")
    raw = base64.b64decode(tag)
    pub = keys.signing.public_key()
    assert raw[:4] == chain.key_hash(name, pub)
    pub.verify(raw[4:], (body + "\n").encode())  # raises if invalid


def test_inclusion_proofs_verify_against_the_checkpoint(log: Any) -> None:
    be, _ = log
    with be.bulk_session(write=False) as s:
        cp = chain.checkpoints(s)[1]
        for seq in (0, 7, 20):
            p = chain.inclusion_proof(s, seq, cp.size)
            assert bytes.fromhex(p["root"]) == cp.root
            assert chain.verify_inclusion(p)
            p["seq"] = seq + 1 if seq < 20 else seq - 1
            assert not chain.verify_inclusion(p)


# -- tampering through raw SQL, each detected -----------------------------------------


def _kinds(report: audit.VerifyReport) -> set[str]:
    return {p.kind for p in report.problems}


def test_an_edited_entry_is_detected_with_its_range(log: Any) -> None:
    be, keys = log
    _raw(be, "UPDATE audit SET detail = 'nothing to see' WHERE seq = 4")
    r = _verify(be, keys)
    assert not r.ok
    mism = [p for p in r.problems if p.kind == "mismatch" and p.checkpoint == 1]
    assert mism and mism[0].first_seq == 0 and mism[0].last_seq == 10


def test_an_edit_between_checkpoints_is_placed_there(log: Any) -> None:
    be, keys = log
    _raw(be, "UPDATE audit SET actor = 'someone else' WHERE seq = 15")
    r = _verify(be, keys)
    assert [(p.first_seq, p.last_seq, p.checkpoint) for p in r.problems
            if p.kind == "mismatch" and p.checkpoint] == [(11, 20, 2)]


def test_an_edit_after_the_last_checkpoint_is_detected(log: Any) -> None:
    be, keys = log
    _raw(be, "UPDATE audit SET action = 'test.other' WHERE seq = 23")
    r = _verify(be, keys)
    assert [(p.kind, p.first_seq, p.last_seq) for p in r.problems] == [("mismatch", 21, 24)]


def test_an_edited_time_is_detected(log: Any) -> None:
    be, keys = log
    with be.session() as s:
        at = s.scalar("SELECT at FROM audit WHERE seq = 2")
        moved = chain.at_micros(at)[0].replace(year=2001)
        s.execute("UPDATE audit SET at = ? WHERE seq = 2", (s.ts(moved),))
    assert "mismatch" in _kinds(_verify(be, keys))


def test_a_deleted_entry_is_detected_by_its_number(log: Any) -> None:
    be, keys = log
    _raw(be, "DELETE FROM audit WHERE seq = 5")
    r = _verify(be, keys)
    missing = [p for p in r.problems if p.kind == "missing"]
    assert [(p.first_seq, p.last_seq) for p in missing] == [(5, 5)]


def test_a_deleted_and_renumbered_entry_is_detected(log: Any) -> None:
    """Deleting an entry and closing the gap (every later seq minus one) is found by the
    checkpoints' roots."""
    be, keys = log
    _raw(be, "DELETE FROM audit WHERE seq = 5",
         "UPDATE audit SET seq = -seq WHERE seq > 5",
         "UPDATE audit SET seq = -seq - 1 WHERE seq < 0",
         "UPDATE audit_state SET size = size - 1")
    r = _verify(be, keys)
    assert not r.ok
    assert any(p.kind == "mismatch" and p.checkpoint == 1 for p in r.problems)


def test_an_inserted_entry_is_detected(log: Any) -> None:
    be, keys = log
    with be.session() as s:
        s.execute("UPDATE audit SET seq = seq + 1000 WHERE seq >= 3")
        s.execute("UPDATE audit SET seq = seq - 999 WHERE seq >= 1000")
        s.execute("INSERT INTO audit (at, actor, actor_kind, action, target, seq) VALUES"
                  " (?, 'ghost', 'operator', 'test.write', NULL, 3)",
                  (s.ts(chain.at_micros("2026-01-01 00:00:00")[0]),))
        s.execute("UPDATE audit_state SET size = size + 1")
    r = _verify(be, keys)
    assert any(p.kind == "mismatch" and p.checkpoint == 1 for p in r.problems)


def test_an_entry_without_a_number_is_detected(log: Any) -> None:
    be, keys = log
    with be.session() as s:
        s.execute("INSERT INTO audit (at, actor, actor_kind, action) VALUES"
                  " (?, 'ghost', 'operator', 'test.write')",
                  (s.ts(chain.at_micros("2026-01-01 00:00:00")[0]),))
    assert "unnumbered" in _kinds(_verify(be, keys))


def test_reordered_entries_are_detected(log: Any) -> None:
    be, keys = log
    _raw(be, "UPDATE audit SET seq = -1 WHERE seq = 12",
         "UPDATE audit SET seq = 12 WHERE seq = 13",
         "UPDATE audit SET seq = 13 WHERE seq = -1")
    r = _verify(be, keys)
    assert [(p.first_seq, p.last_seq, p.checkpoint) for p in r.problems
            if p.kind == "mismatch" and p.checkpoint] == [(11, 20, 2)]


def test_a_truncated_tail_below_the_checkpoint_is_detected(log: Any) -> None:
    be, keys = log
    with be.bulk_session() as s:
        lv = chain.read_leaves(s, 18)
        s.execute("DELETE FROM audit WHERE seq >= 18")
        # the attacker rewrites the state row to match what is left
        s.execute("UPDATE audit_state SET size = 18, frontier = ?, root = ?",
                  (lv.frontier(18).hex(), lv.root(18).hex()))
    r = _verify(be, keys)
    trunc = [p for p in r.problems if p.kind == "truncated"]
    assert [(p.first_seq, p.last_seq, p.checkpoint) for p in trunc] == [(18, 20, 2)]


def test_a_deleted_checkpoint_row_is_detected(log: Any) -> None:
    be, keys = log
    _raw(be, "DELETE FROM audit_checkpoint WHERE number = 1")
    r = _verify(be, keys)
    assert any(p.kind == "checkpoint" and p.checkpoint == 1 for p in r.problems)


def test_the_latest_checkpoint_deleted_is_detected_by_its_entry(log: Any) -> None:
    be, keys = log
    _raw(be, "DELETE FROM audit_checkpoint WHERE number = 2")
    r = _verify(be, keys)
    assert [p.checkpoint for p in r.problems if p.kind == "checkpoint"] == [2]


def test_an_edited_checkpoint_is_detected(log: Any) -> None:
    be, keys = log
    with be.session() as s:
        note = s.scalar("SELECT note FROM audit_checkpoint WHERE number = 1")
        s.execute("UPDATE audit_checkpoint SET note = ?, size = 12 WHERE number = 1",
                  (note.replace("\n11\n", "\n12\n", 1),))
    r = _verify(be, keys)
    assert any(p.kind == "checkpoint" and p.checkpoint == 1 for p in r.problems)
    _raw(be, "UPDATE audit_checkpoint SET note = '' WHERE number = 2")
    assert any(p.kind == "checkpoint" and p.checkpoint == 2 for p in _verify(be, keys).problems)


def test_a_checkpoint_forged_with_another_key_is_refused(log: Any) -> None:
    """A rewritten log re-checkpointed with a key that is not the node's."""
    be, keys = log
    _raw(be, "UPDATE audit SET detail = 'x' WHERE seq = 1", "DELETE FROM audit_checkpoint")
    with be.session() as s:
        s.execute("DELETE FROM audit WHERE action = 'audit.checkpoint'")
    r0 = _verify(be, keys)
    assert not r0.ok  # gaps where the checkpoint entries were
    with be.session() as s:
        chain.checkpoint(s, LG, Ed25519PrivateKey.generate())
    r = _verify(be, keys)
    assert any(p.kind == "checkpoint" for p in r.problems)


def test_checkpoints_of_rotated_keys_verify(db_target: str) -> None:
    with create_identity_store(db_target, node_id="center", kind="center"):
        pass
    old, new = NodeKeys.generate("center"), NodeKeys.generate("center")
    be = connect(db_target)
    try:
        with be.session() as s:
            chain.checkpoint(s, "center", old.signing)
            audit.write(s, "center", "test.x")
            chain.checkpoint(s, "center", new.signing)
        pubs = [old.signing.public_key(), new.signing.public_key()]
        assert audit.verify(be, node_id="center", keys=pubs).ok
        assert not audit.verify(be, node_id="center", keys=pubs[1:]).ok
        assert not audit.verify(be, node_id="13101x", keys=pubs).ok
    finally:
        be.close()


def test_concurrent_writers_never_share_or_skip_a_number(db_target: str) -> None:
    create_register(db_target, lg_code=LG, prefecture="東京都", municipality="千代田区",
                    actor=ADMIN).close()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        be = connect(db_target)
        try:
            for i in range(15):
                with be.session() as s:
                    audit.write_many(s, [audit.entry(s, ADMIN, "test.c", f"{n}-{i}-{j}")
                                         for j in range(3)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            be.close()

    ts = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    be = connect(db_target)
    try:
        with be.session(write=False) as s:
            assert [r[0] for r in s.query("SELECT seq FROM audit ORDER BY seq")] == list(
                range(1 + 4 * 15 * 3))
        assert audit.verify(be, node_id=LG, keys=[]).ok  # no checkpoints: nothing to sign
    finally:
        be.close()


def test_a_failed_transaction_leaves_no_number_used(db_target: str) -> None:
    create_register(db_target, lg_code=LG, prefecture="東京都", municipality="千代田区",
                    actor=ADMIN).close()
    be = connect(db_target)
    try:
        with pytest.raises(RuntimeError), be.session() as s:
            audit.write(s, ADMIN, "test.lost")
            raise RuntimeError("crash between steps")
        with be.session() as s:
            audit.write(s, ADMIN, "test.kept")
            assert [r[0] for r in s.query("SELECT seq FROM audit ORDER BY seq")] == [0, 1]
        assert audit.verify(be, node_id=LG, keys=[]).ok
    finally:
        be.close()


def test_bad_entries_are_refused_and_change_nothing(db_target: str) -> None:
    create_register(db_target, lg_code=LG, prefecture="東京都", municipality="千代田区",
                    actor=ADMIN).close()
    be = connect(db_target)
    try:
        with be.session(write=False) as s:
            before = s.query("SELECT size, root FROM audit_state")
        for bad in ((None, "a", "operator", "x.y", None, None, None),
                    ("2026-01-01 00:00:00", "a", "operator", "x.y", 12345, None, None),
                    ("2026-01-01 00:00:00", "a")):
            with pytest.raises(InvalidInputError), be.session() as s:
                audit.write_many(s, [bad])
        with be.session(write=False) as s:
            assert s.query("SELECT size, root FROM audit_state") == before
            assert s.scalar("SELECT count(*) FROM audit") == 1
    finally:
        be.close()


def test_a_migrated_log_is_chained_by_its_first_writer(tmp_path: Any) -> None:
    """A store at v5 (entries without seq): v6 numbers them by id, the first write hashes
    them into the tree, and the log verifies."""
    import sqlite3

    from jukicore.register import open_register

    path = tmp_path / "old.sqlite"
    create_register(str(path), lg_code=LG, prefecture="東京都", municipality="千代田区",
                    actor=ADMIN).close()
    con = sqlite3.connect(path)
    # back to version 5: the later versions' tables go too
    con.executescript("DROP INDEX audit_seq; DROP TABLE audit_state; DROP TABLE"
                      " audit_checkpoint; DROP TABLE audit_peer_checkpoint; DROP TABLE"
                      " operator; DROP TABLE policy_config; DROP INDEX audit_actor_action_at;"
                      " DROP TABLE certificate_issuance;"
                      " ALTER TABLE audit DROP COLUMN seq;"
                      " DELETE FROM schema_version WHERE version >= 6;")
    con.executemany("INSERT INTO audit (at, actor, actor_kind, action, detail) VALUES"
                    " ('2020-01-01 00:00:00.000000', 'old', 'operator', 'old.x', ?)",
                    [(str(i),) for i in range(5)])
    con.commit()
    con.close()
    open_register(str(path)).close()  # migrates to v6
    be = connect(str(path))
    try:
        with be.session(write=False) as s:
            assert s.scalar("SELECT size FROM audit_state") == -1
            assert [r[0] for r in s.query("SELECT seq FROM audit ORDER BY id")] == list(range(6))
        assert audit.verify(be, node_id=LG, keys=[]).ok
        with be.session() as s:
            audit.write(s, ADMIN, "test.after")
            assert chain.state(s).size == 7
        assert audit.verify(be, node_id=LG, keys=[]).ok
        _raw(be, "UPDATE audit SET detail = '9' WHERE seq = 3")
        assert not audit.verify(be, node_id=LG, keys=[]).ok
    finally:
        be.close()
