"""The store under odd data, full disks, threads and foreign Arrow producers
(SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from regkit import ADMIN, CLERK, LG, MUNI, PREF, TODAY, code_of, make_block, tiny_municipality

from jukicore.errors import StoreError
from jukicore.register import Register, create_register, open_register
from jukicore.store.backend import connect

#: Texts that CSV readers like to turn into null, and texts that CSV must quote.
TRICKY = ["NA", "N/A", "NULL", "null", "nan", "NaN", "None", "#N/A", "-nan", "n/a", "\\N",
          "\\.", "\"", "a,b", "a\"b\"", "back\\slash", "'", ";", "TRUE", "0", "1.0"]


def test_text_round_trip_through_the_bulk_path(db_target: str) -> None:
    """Every text, including markers of null and CSV's special characters (newline, tab,
    CR, quotes, backslashes) and the empty string, comes back exactly (the PostgreSQL
    COPY read path turned "NA", "NULL", "nan" ... into null)."""
    values = [*TRICKY, "", "line\nbreak", "tab\there", "cr\rlf\r\n", " lead", "trail ", None,
              "日本語,カンマ", "\\.\n\\."]
    backend = connect(db_target, create=True)
    try:
        table = pa.table({"id": pa.array(range(len(values)), pa.int64()),
                          "v": pa.array(values, pa.string())})
        schema = table.schema
        with backend.session() as s:  # (a bulk write session locks through meta)
            s.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            s.execute("INSERT INTO meta VALUES ('lg_code', '131016')")
            s.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)")
        with backend.bulk_session() as s:
            s.ingest("t", table)
        with backend.bulk_session(write=False) as s:
            got = s.fetch_arrow("SELECT id, v FROM t ORDER BY id", (), schema)
        assert got.column("v").to_pylist() == values
        with backend.session(write=False) as s:
            assert [r[0] for r in s.query("SELECT v FROM t ORDER BY id")] == values
    finally:
        backend.close()


def test_names_like_null_markers_survive_residents_and_outbox(empty_register: Register) -> None:
    residents, households = tiny_municipality(5)  # 12 residents
    n = residents.num_rows
    names = (TRICKY * 2)[:n]
    res = residents.set_column(residents.column_names.index("family_name"), "family_name",
                               pa.array(names))
    given = (list(reversed(TRICKY)) * 2)[:n]
    res = res.set_column(res.column_names.index("given_name"), "given_name", pa.array(given))
    texts = {"domicile": "NULL", "domicile_head": "NA", "building": "nan",
             "previous_address": "N/A"}
    for col, v in texts.items():
        res = res.set_column(res.column_names.index(col), col, pa.array([v] * n))
    empty_register.load(res, households, actor=ADMIN, today=TODAY)
    got = empty_register.residents(actor=ADMIN)
    assert got.column("family_name").to_pylist() == names
    assert got.column("given_name").to_pylist() == given
    for col, v in texts.items():
        assert got.column(col).to_pylist() == [v] * n, col
    out = empty_register.outbox(actor=ADMIN)
    assert out.column("family_name").to_pylist() == names
    assert out.column("given_name").to_pylist() == given
    export = empty_register.export(actor=ADMIN)["residents"]
    assert export.column("family_name").to_pylist() == names


# -- errors out of the store -----------------------------------------------------------


def test_disk_full_is_a_store_error_and_changes_nothing(tmp_path: Path) -> None:
    """A load that runs out of space (a file size limit, as a full disk) raises StoreError
    with a clear message, and the register is as before."""
    store = tmp_path / "city.db"
    with create_register(store, lg_code=LG, prefecture=PREF, municipality=MUNI,
                         actor=ADMIN) as reg:
        reg.import_code_block(make_block(5000), actor=ADMIN)
        reg.load(*tiny_municipality(), actor=ADMIN, today=TODAY)
    with open_register(store) as reg:
        before = reg.content_digest()
    here = Path(__file__).resolve().parent
    script = textwrap.dedent(f"""
        import os, resource, signal, sys
        sys.path.insert(0, {str(here)!r})
        import pyarrow as pa
        import pyarrow.compute as pc
        from regkit import ADMIN, TODAY, tiny_municipality
        from jukicore.errors import StoreError
        from jukicore.register import open_register
        base, hh0 = tiny_municipality(6)  # 15 residents, 6 households; 250 new copies
        parts, hparts = [], []
        for k in range(250):
            r = base.set_column(0, "person_id", pc.add(base["person_id"], 15 * k))
            r = r.set_column(r.column_names.index("household_id"), "household_id",
                             pc.add(base["household_id"], 6 * k))
            r = r.set_column(r.column_names.index("family_name"), "family_name",
                             pa.array([f"{{v}}{{k}}" for v in base["family_name"].to_pylist()]))
            parts.append(r)
            hparts.append(hh0.set_column(0, "household_id", pc.add(hh0["household_id"], 6 * k))
                          .set_column(1, "head_person_id", pc.add(hh0["head_person_id"], 15 * k)))
        res, hh = pa.concat_tables(parts), pa.concat_tables(hparts)
        reg = open_register({str(store)!r})
        size = sum(os.path.getsize(p) for p in [{str(store)!r}])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 64 * 1024, resource.RLIM_INFINITY))
        try:
            reg.load(res, hh, actor=ADMIN, today=TODAY)
        except StoreError as exc:
            print("StoreError:", exc)
            sys.exit(3)
        print("loaded")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "full" in done.stdout or "too large" in done.stdout, done.stdout
    with open_register(store) as reg:
        assert reg.content_digest() == before


def test_store_full_via_max_page_count_in_a_session(tmp_path: Path) -> None:
    """sqlite3's "database or disk is full" inside a workflow session -> StoreError."""
    backend = connect(tmp_path / "x.db", create=True)
    try:
        with backend.session() as s:
            s.execute("CREATE TABLE t (v TEXT)")
        with pytest.raises(StoreError, match="full"), backend.session() as s:
            s.execute("PRAGMA max_page_count = 3")
            s.executemany("INSERT INTO t VALUES (?)", [("x" * 2000,)] * 50)
        with backend.session(write=False) as s:
            assert s.scalar("SELECT count(*) FROM t") == 0
    finally:
        backend.close()


def test_locked_database_is_a_store_error(tmp_path: Path) -> None:
    import sqlite3

    from jukicore.store.backend import SqliteBackend

    path = tmp_path / "x.db"
    backend = SqliteBackend(path)
    try:
        with backend.session() as s:
            s.execute("CREATE TABLE t (v TEXT)")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            conn = backend._connection()
            conn.execute("PRAGMA busy_timeout = 50")
            with pytest.raises(StoreError, match="locked"), backend.session() as s:
                s.execute("INSERT INTO t VALUES ('a')")
        finally:
            other.execute("ROLLBACK")
            other.close()
    finally:
        backend.close()


# -- thread safety -------------------------------------------------------------------


def test_one_register_shared_by_threads(register: Register) -> None:
    """Several threads applying and reading through one Register: every call works (no
    "Already borrowed", no transaction within a transaction) and the state is right."""
    codes = [code_of(register, pid) for pid in range(1, 9)]
    errors: list[BaseException] = []
    reads = []

    def writer(k: int) -> None:
        try:
            for j in range(3):
                rep = register.apply([{
                    "notification_id": f"t{k}-{j}", "kind": "name_change",
                    "notified_date": TODAY, "event_date": TODAY,
                    "resident_code": codes[k], "given_name": ["一", "二", "三"][j]}],
                    actor=CLERK, today=TODAY)
                assert rep.ok and rep.applied == 1, rep
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(4):
                reads.append(register.residents(actor=ADMIN).num_rows)
                register.counts()
                register.content_digest()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors
    assert reads and set(reads) == {15}
    got = register.residents(actor=ADMIN)
    given = dict(zip(got.column("resident_code").to_pylist(), got.column("given_name").to_pylist(),
                     strict=True))
    assert [given[c] for c in codes] == ["三"] * 8
    assert register.counts()["notifications"] == 24


# -- any Arrow object ------------------------------------------------------------------


def _producers(table: pa.Table) -> dict[str, Any]:
    import duckdb
    import pandas as pd
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    view = frame.with_columns(pl.col(pl.String).cast(pl.String))
    rel = duckdb.from_arrow(table)
    return {
        "polars": view,  # polars exports strings as string_view
        "duckdb": rel,
        "pandas": pd.DataFrame(table.to_pandas(types_mapper=pd.ArrowDtype)),
        "reader": pa.RecordBatchReader.from_batches(table.schema, table.to_batches()),
    }


@pytest.mark.parametrize("producer", ["polars", "duckdb", "pandas", "reader"])
def test_load_and_apply_take_any_arrow_object(empty_register: Register, producer: str) -> None:
    residents, households = tiny_municipality(3)
    res = _producers(residents)[producer]
    hh = _producers(households)[producer]
    if producer == "polars":
        assert pa.types.is_string_view(pa.table(res).schema.field("family_name").type)
    report = empty_register.load(res, hh, actor=ADMIN, today=TODAY)
    assert report.residents == residents.num_rows
    got = empty_register.residents(actor=ADMIN)
    assert got.column("family_name").to_pylist() == residents.column("family_name").to_pylist()
    code = code_of(empty_register, 1)
    events = pa.table({"notification_id": ["p1"], "kind": ["name_change"],
                       "notified_date": [TODAY], "event_date": [TODAY],
                       "resident_code": pa.array([code], pa.int64()), "given_name": ["新"]})
    rep = empty_register.apply(_producers(events)[producer], actor=CLERK, today=TODAY)
    assert rep.applied == 1, rep
    names = empty_register.residents(actor=ADMIN).filter(
        pc.equal(pc.field("resident_code"), code)).column("given_name").to_pylist()
    assert names == ["新"]
