"""Database backends: SQLite (embedded default) and PostgreSQL, behind one session API.

The only module (with :mod:`jukicore.store.schema`) that knows which database it
talks to. A *session* is one transaction. Workflow code writes portable SQL once
with ``?`` placeholders, passes dates through :meth:`Session.d` and timestamps
through :meth:`Session.ts`, and asks the session for what differs between the
databases: DDL (:attr:`Session.ddl`), a batch staged for set-based statements
(:meth:`Session.stage`), a condition "column is one of these values"
(:meth:`Session.any_of`), Arrow columns as the database stores them
(:meth:`Session.for_db`), planner statistics (:meth:`Session.analyze`).

Every store has a key-value table ``meta``: a bulk session takes the SQLite
write lock on it before any other statement.

Bulk paths move Arrow data without Python loops over rows:

* SQLite: the ADBC SQLite driver (``adbc_ingest`` for loads, Arrow result sets
  for reads). ADBC links its own copy of SQLite, so the stdlib connection is
  closed while an ADBC connection is open and reopened after: two copies of
  SQLite must never hold the same file open in one process at once (POSIX
  advisory locks are per process).
* PostgreSQL: psycopg 3 ``COPY ... FROM STDIN`` / ``COPY (...) TO STDOUT`` in
  CSV, produced and parsed by pyarrow's C++ CSV writer and reader, inside the
  same transaction as the rest of the workflow. Every non-null value is quoted
  on the way in; on the way out only an unquoted empty field is null (PostgreSQL
  quotes an empty string), so texts such as ``NA``, ``NULL``, ``nan`` or ``""``
  come back as they were stored.

Errors of the database drivers (sqlite3, ADBC, psycopg: a lock, a full disk, a
failed commit) leave a session as :class:`~jukicore.errors.StoreError` (a unique
key broken: :class:`~jukicore.errors.ConflictError`), with the transaction rolled
back.

Thread safety: a backend may be shared by threads. Its sessions are serialized by
a lock per backend (one connection, one transaction at a time); a thread waits
for the session of another to end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import sqlite3
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from jukicore._files import create_private_file
from jukicore._threads import one_ahead
from jukicore.errors import (
    ConflictError,
    JukiError,
    MissingDependencyError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
)
from jukicore.store.schema import Ddl, Migration, Table

Params = Sequence[Any]

log = logging.getLogger("jukicore.store")

_PG_LOCK_KEY = 5_810_001  # advisory lock serializing writers of one register


def utcnow() -> dt.datetime:
    """The current time, UTC (every stored timestamp is UTC)."""
    return dt.datetime.now(dt.UTC)


def redact_uri(target: str) -> str:
    """``target`` as messages and logs show it: a URI's password replaced by ``***``
    (``postgresql://user:***@host/db``); a query string's ``password=`` too."""
    import re

    t = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", target)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", t)


def installed_version(s: Session, version_table: str) -> int | None:
    """The schema version recorded in ``version_table``, or None if the table is absent."""
    if not s.table_exists(version_table):
        return None
    v = s.scalar(f"SELECT max(version) FROM {version_table}")
    return None if v is None else int(v)


def migrate(s: Session, version_table: str, migrations: Sequence[Migration], current: int,
            *, described: bool = True) -> None:
    """Bring a store from schema version ``current`` (0: empty) to the last of
    ``migrations``, recording each step in ``version_table`` (with its description if
    ``described``: the identity store's version table has no such column)."""
    description = " description TEXT NOT NULL," if described else ""
    if current == 0:
        s.execute(f"CREATE TABLE {version_table} (version INTEGER NOT NULL PRIMARY KEY,"
                  f"{description} applied_at TEXT NOT NULL)")
    for m in migrations:
        if m.version <= current:
            continue
        for stmt in m.statements(s.ddl):
            s.execute(stmt)
        if described:
            s.execute(f"INSERT INTO {version_table} (version, description, applied_at)"
                      " VALUES (?, ?, ?)", (m.version, m.description, utcnow().isoformat()))
        else:
            s.execute(f"INSERT INTO {version_table} (version, applied_at) VALUES (?, ?)",
                      (m.version, utcnow().isoformat()))


@dataclass(frozen=True)
class StoreKind:
    """What a kind of store is made of: its name in messages, its schema version table
    and migrations, and how a new SQLite file is laid out."""

    what: str  # "register", "identity store"
    version_table: str
    migrations: Sequence[Migration]
    described: bool = True  # whether the version table has a description column
    sqlite_page_size: int | None = None
    not_found_hint: str = ""

    @property
    def version(self) -> int:
        return self.migrations[-1].version


def create_store(target: str | Path, kind: StoreKind, meta: Sequence[tuple[str, str]],
                 init: Callable[[Session], None]) -> Backend:
    """A new store of ``kind`` at ``target``: its schema, its ``meta`` rows, and ``init``
    (the audit entry of its creation), in one transaction. A target that holds one
    already is a :class:`ConflictError`, and nothing changes."""
    backend = connect(target, sqlite_page_size=kind.sqlite_page_size, create=True)
    try:
        with backend.session() as s:
            if installed_version(s, kind.version_table) is not None:
                raise ConflictError(f"{redact_uri(backend.target)} already holds a"
                                    f" {kind.what}")
            migrate(s, kind.version_table, kind.migrations, 0, described=kind.described)
            s.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(meta))
            init(s)
    except BaseException:
        backend.close()
        raise
    return backend


def open_store(target: str | Path, kind: StoreKind) -> Backend:
    """An existing store of ``kind``, its schema migrated to this version if older (under
    the write lock: another process may migrate it meanwhile). No store there is a
    :class:`NotFoundError` (a missing SQLite file is not created); a newer schema is a
    :class:`SchemaVersionError`."""
    backend = connect(target)
    try:
        with backend.session(write=False) as s:
            version = installed_version(s, kind.version_table)
        if version is None:
            raise NotFoundError(f"{redact_uri(backend.target)} holds no"
                                f" {kind.what}{kind.not_found_hint}")
        if version > kind.version:
            raise SchemaVersionError(
                f"the {kind.what}'s schema is version {version}; this jukicore knows up to "
                f"{kind.version}: upgrade jukicore")
        if version < kind.version:
            with backend.session() as s:
                migrate(s, kind.version_table, kind.migrations,
                        installed_version(s, kind.version_table) or 0,
                        described=kind.described)
    except BaseException:
        backend.close()
        raise
    return backend


def content_digest(s: Session, queries: Sequence[str]) -> str:
    """SHA-256 over the rows the queries return, in order (each query must ORDER BY a key).

    Rows, not Arrow buffers: Arrow's bytes are not canonical (validity bitmaps may or may
    not be allocated, padding bits are left as they were), so equal contents could hash
    differently.
    """
    h = hashlib.sha256()
    for q in queries:
        h.update(q.encode())
        for row in s.query(q):
            h.update(repr(tuple(None if v is None else str(v) for v in row)).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _cast_to(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for field in schema:
        col = table.column(field.name)
        if col.type != field.type:
            if col.null_count == len(col):
                col = pa.nulls(len(col), field.type)
            elif pa.types.is_timestamp(field.type) and (
                    pa.types.is_string(col.type) or pa.types.is_timestamp(col.type)):
                col = col.cast(pa.timestamp(field.type.unit)).cast(field.type)
            else:
                col = col.cast(field.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


def rows_to_arrow(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """Small result sets (a few rows) to Arrow; bulk reads use :meth:`Session.fetch_arrow`."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = [pa.array(list(col)) for col in columns]
    return _cast_to(pa.Table.from_arrays(arrays, names=schema.names), schema)


class Session(ABC):
    """One transaction on one database."""

    dialect: str

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    @abstractmethod
    def try_execute(self, sql: str, params: Params = ()) -> bool:
        """Run a statement that may break a unique constraint: True if it ran; False if it
        broke one, in which case the statement is undone (back to a savepoint taken just
        before it) and the transaction goes on. Any other error is raised."""

    @abstractmethod
    def ingest(self, table: str, data: pa.Table, progress: Any = None, *,
               temporary: bool = False) -> None:
        """Append an Arrow table to a database table (columns named as in the table);
        ``temporary``: the table is a temporary one the caller created."""

    @abstractmethod
    def fetch_arrow(self, sql: str, params: Params, schema: pa.Schema) -> pa.Table:
        """Run a query and return its result as Arrow, cast to ``schema``."""

    @abstractmethod
    def d(self, value: dt.date | None) -> Any:
        """A date as a parameter."""

    @abstractmethod
    def ts(self, value: dt.datetime) -> Any:
        """A UTC timestamp as a parameter."""

    @staticmethod
    def pd(value: Any) -> dt.date | None:
        """A date read from the database."""
        if value is None or isinstance(value, dt.date):
            return value
        return dt.date.fromisoformat(str(value))

    def pipelined(self) -> AbstractContextManager[Any]:
        """Within this context, statements that return nothing need not wait for the server
        (PostgreSQL pipeline mode); reads still see every earlier write. Errors still abort
        the transaction. A no-op on SQLite (in process: nothing to wait for)."""
        return nullcontext()

    def scalar(self, sql: str, params: Params = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    # -- what differs between the databases ----------------------------------------------

    @property
    def ddl(self) -> Ddl:
        """The DDL of this session's database."""
        return Ddl(self.dialect)

    @abstractmethod
    def table_exists(self, name: str) -> bool:
        """Whether the store has a table of that name."""

    @abstractmethod
    def stage(self, table: Table, rows: pa.Table) -> str:
        """Put a batch into an empty staging table shaped like ``table`` (a scratch table
        the schema created); returns the name to use in statements. Drop it with
        :meth:`unstage` in the same transaction."""

    @abstractmethod
    def unstage(self, staging: str) -> None:
        """Empty or drop a staging table of :meth:`stage`."""

    @abstractmethod
    def any_of(self, column: str, values: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
        """A condition "``column`` is one of ``values`` (integers)" and its parameters."""

    def for_db(self, table: pa.Table) -> pa.Table:
        """Arrow columns as the database stores them: codes (uint64) as int64."""
        out = []
        for f in table.schema:
            col = table.column(f.name)
            if pa.types.is_uint64(f.type):
                col = pc.cast(col, pa.int64())
            out.append(col)
        return pa.table(out, names=table.column_names)

    @abstractmethod
    def analyze(self, *tables: str) -> None:
        """Planner statistics for rows just loaded in bulk (PostgreSQL: now, not whenever
        autovacuum gets to them; SQLite plans without them: nothing to do)."""


# -- SQLite -------------------------------------------------------------------------------


def _ts_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class _SqliteSession(Session):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> None:
        self._conn.execute(sql, params)

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._conn.executemany(sql, rows)

    def try_execute(self, sql: str, params: Params = ()) -> bool:
        self.execute("SAVEPOINT jukicore_try")
        try:
            self.execute(sql, params)
        except Exception as exc:
            self.execute("ROLLBACK TO jukicore_try")
            self.execute("RELEASE jukicore_try")
            # sqlite3's and ADBC's IntegrityError; only a unique key is "already there".
            if type(exc).__name__ != "IntegrityError" or "UNIQUE constraint" not in str(exc):
                raise
            return False
        self.execute("RELEASE jukicore_try")
        return True

    def ingest(self, table: str, data: pa.Table, progress: Any = None, *,
               temporary: bool = False) -> None:
        raise StoreError("bulk ingest needs a bulk session")  # pragma: no cover

    def fetch_arrow(self, sql: str, params: Params, schema: pa.Schema) -> pa.Table:
        return rows_to_arrow(self.query(sql, params), schema)

    def d(self, value: dt.date | None) -> Any:
        return None if value is None else value.isoformat()

    def ts(self, value: dt.datetime) -> Any:
        return _ts_text(value)


    def table_exists(self, name: str) -> bool:
        return bool(self.query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def stage(self, table: Table, rows: pa.Table) -> str:
        # a temporary table: in memory (temp_store) and gone with the connection
        name = f"{table.name}_batch"
        self.execute(f"DROP TABLE IF EXISTS temp.{name}")
        self.execute(self.ddl.create_table(table, name=name, temporary=True))
        self.ingest(name, self.for_db(rows), temporary=True)
        return f"temp.{name}"

    def unstage(self, staging: str) -> None:
        self.execute(f"DROP TABLE {staging}")

    def analyze(self, *tables: str) -> None:
        pass

    def any_of(self, column: str, values: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
        return (f"{column} IN (SELECT value FROM json_each(?))",
                (json.dumps([int(v) for v in values]),))

    def for_db(self, table: pa.Table) -> pa.Table:
        """As :meth:`Session.for_db`; dates as ISO 8601 text."""
        table = super().for_db(table)
        return pa.table([pc.cast(table.column(f.name), pa.string())
                         if pa.types.is_date32(f.type) else table.column(f.name)
                         for f in table.schema], names=table.column_names)


class _AdbcSqliteSession(_SqliteSession):
    def __init__(self, conn: Any) -> None:  # adbc_driver_manager.dbapi.Connection
        self._adbc = conn

    def execute(self, sql: str, params: Params = ()) -> None:
        with self._adbc.cursor() as cur:
            cur.execute(sql, params or None)

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self._adbc.cursor() as cur:
            cur.execute(sql, params or None)
            return list(cur.fetchall())

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        rows = list(rows)
        if rows:
            with self._adbc.cursor() as cur:
                cur.executemany(sql, rows)

    def ingest(self, table: str, data: pa.Table, progress: Any = None, *,
               temporary: bool = False) -> None:
        step = 200_000
        with self._adbc.cursor() as cur:
            for start in range(0, max(data.num_rows, 1), step):
                part = data.slice(start, step)
                if part.num_rows:
                    cur.adbc_ingest(table, part, mode="append", temporary=temporary)
                if progress is not None:
                    progress(part.num_rows)

    def fetch_arrow(self, sql: str, params: Params, schema: pa.Schema) -> pa.Table:
        # ADBC infers each column's type from the first batch only, where a column that
        # may be null could be all null: then one batch for the whole result. A result of
        # NOT NULL columns only goes in batches (each batch's texts stay within 2 GiB).
        rows = "1048576" if not any(f.nullable for f in schema) else "100000000"
        with self._adbc.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": rows})
            cur.execute(sql, params or None)
            result: pa.Table = cur.fetch_arrow_table()
        if result.num_rows == 0:
            return schema.empty_table()
        return _cast_to(result, schema)


@contextmanager
def _closed_on_error(conn: Any) -> Iterator[None]:
    """Close ``conn`` if the block fails (it is being set up)."""
    try:
        yield
    except BaseException:
        with suppress(Exception):
            conn.close()
        raise


@contextmanager
def _side_connections(n: int, one: Callable[[], Any]) -> Iterator[list[Any]]:
    """Up to ``n`` connections made by ``one`` (None: no more), each rolled back and closed
    at the end (side readers)."""
    conns: list[Any] = []
    try:
        for _ in range(n):
            conn = one()
            if conn is None:
                break
            conns.append(conn)
        yield conns
    finally:
        for c in conns:
            with suppress(Exception):
                c.rollback()
            with suppress(Exception):
                c.close()


class Backend(ABC):
    dialect: str
    target: str

    @abstractmethod
    def session(self, write: bool = True) -> Any:
        """Context manager: one transaction; commits on success, rolls back on error."""

    @contextmanager
    def side_readers(self, n: int) -> Iterator[list[Session]]:
        """Up to ``n`` more read-only bulk sessions, for reading one large table in
        parallel while a bulk session of this backend is open in this thread: each is used
        by one thread at a time, and its snapshot may be newer than the bulk session's, so
        read through them only rows that no writer changes (audit entries up to a number
        read before). None on this backend (the default): read through the bulk session."""
        yield []

    @abstractmethod
    def bulk_session(self, write: bool = True) -> Any:
        """Context manager: one transaction on the bulk (Arrow) path."""

    def beside(self, suffix: str) -> Path | None:
        """A file beside the database for data kept outside it (a lookup index):
        ``<database file><suffix>`` for a store in a file; None (the default) for a
        database on a server, whose caller names a file itself."""
        return None

    @abstractmethod
    def close(self) -> None: ...


_DBAPI_ERRORS = ("OperationalError", "DatabaseError", "ProgrammingError", "InternalError",
                 "DataError", "NotSupportedError", "InterfaceError", "Error")


def _is_db_error(exc: BaseException) -> bool:
    """A DB-API error of sqlite3 or of an ADBC driver (adbc_driver_manager's classes)."""
    if isinstance(exc, sqlite3.Error):
        return True
    module = type(exc).__module__ or ""
    return module.startswith("adbc_driver") and (
        type(exc).__name__ in (*_DBAPI_ERRORS, "IntegrityError"))


def _raise_mapped(exc: BaseException) -> None:
    """Turn a database error into a jukicore error (a JukiError passes through unchanged)."""
    if isinstance(exc, JukiError):
        return
    name = type(exc).__name__
    if isinstance(exc, sqlite3.IntegrityError) or (name == "IntegrityError"
                                                   and _is_db_error(exc)):
        raise ConflictError(f"conflicting record: {exc}") from exc
    if _is_db_error(exc):
        raise StoreError(f"SQLite error: {_sqlite_message(exc)}") from exc


def _sqlite_message(exc: BaseException) -> str:
    text = str(exc).strip()
    low = text.lower()
    if "disk is full" in low or "disk i/o error" in low or "file too large" in low:
        return f"{text} (the disk or the file size limit is full: nothing was written)"
    if "database is locked" in low or "busy" in low:
        return f"{text} (another process holds the register's write lock: try again)"
    return text


#: WAL size (pages) at which a committing connection checkpoints by itself. Only a backstop:
#: the background checkpointer keeps the WAL far smaller (about 400 MiB at 4 KiB pages).
WAL_AUTOCHECKPOINT_PAGES = 100_000
#: At most one background checkpoint per this many seconds (each one fsyncs the database).
CHECKPOINT_INTERVAL_S = 0.25


class _Checkpointer:
    """WAL checkpoints off the request path: a daemon thread with its own connection.

    After every write commit the backend *pokes* the checkpointer; its thread runs
    ``PRAGMA wal_checkpoint(PASSIVE)`` (copies committed WAL frames into the database
    without waiting for, or blocking, readers and writers) at most once per
    :data:`CHECKPOINT_INTERVAL_S`. The writer thus never pays for a checkpoint; the WAL is
    restarted from its beginning by the next writer once a checkpoint caught up. The
    connection's own ``wal_autocheckpoint`` stays as a backstop.
    """

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL_S) -> None:
        self._path = path
        self._interval = interval
        self._wake = threading.Event()
        self._closing = threading.Event()
        #: held while a checkpoint runs; a bulk (ADBC) session holds it throughout
        self.lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # completed PASSIVE checkpoints (for tests and monitoring)
        self.last_result: tuple[int, int, int] | None = None  # (busy, wal frames, backfilled)

    def poke(self) -> None:
        if self._closing.is_set():
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="jukicore-wal-checkpoint",
                                            daemon=True)
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._closing.is_set():
                break
            self._wake.clear()
            with self.lock:
                if self._closing.is_set():
                    break
                self._checkpoint()
            if self._closing.wait(self._interval):
                break
        with self.lock:
            self.release()

    def _checkpoint(self) -> None:
        """One PASSIVE checkpoint (the caller holds :attr:`lock`)."""
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, isolation_level=None,
                                             check_same_thread=False)
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.last_result = (int(row[0]), int(row[1]), int(row[2]))
            self.checkpoints += 1
        except sqlite3.Error:  # pragma: no cover - e.g. disk full: the backstop still holds
            self.release()

    def release(self) -> None:
        """Close the checkpoint connection (the caller holds :attr:`lock`)."""
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self.lock:
            self.release()


class _SqliteFile:
    """What every backend of one SQLite file in this process shares.

    The stdlib's SQLite and ADBC's bundled copy must never hold one file open at once in
    one process: POSIX advisory locks belong to the process, so one library closing the
    file drops the other's locks, and concurrent writes then corrupt the database. So all
    backends of a file (two ``Register`` objects on one path, a register and a sync run)
    share one lock around their sessions and one checkpointer, and a bulk (ADBC) session
    first closes the stdlib connections of *all* of them; they reopen on their next use.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.backends: weakref.WeakSet[SqliteBackend] = weakref.WeakSet()
        self.checkpointer: _Checkpointer | None = None
        self.users = 0


_sqlite_files: dict[str, _SqliteFile] = {}
_sqlite_files_guard = threading.Lock()


def _file_key(path: str) -> str:
    return path if path == ":memory:" else os.path.realpath(path)


class SqliteBackend(Backend):
    """SQLite in WAL mode.

    Durability: ``synchronous = NORMAL``, SQLite's recommended setting in WAL mode. A
    commit is durable against a crash of the application (the WAL is written before
    COMMIT returns) and the database is never corrupted, but on power loss or an OS
    crash the last transactions before the WAL was synced (at the next checkpoint) can
    be lost. ``synchronous="FULL"`` syncs the WAL on every commit (durable against power
    loss, costs an fsync per commit).
    """

    dialect = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL",
                 page_size: int | None = None, create: bool = True) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = str(path)
        self.target = self.path
        self.synchronous = synchronous.upper()
        self.page_size = page_size
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        if not create and self.path != ":memory:" and not Path(self.path).is_file():
            raise NotFoundError(f"no store at {self.path!r}: the file does not exist "
                                "(create it first; opening never creates one)")
        if create and self.path != ":memory:":
            # a new store is private (0600) whatever the umask; SQLite gives the -wal and
            # -shm files it makes beside it the database file's mode. A path it cannot
            # create SQLite reports below, as it always did.
            with suppress(OSError):
                create_private_file(self.path)
        # shared with every other backend of this file in this process (see _SqliteFile)
        key = _file_key(self.path) if self.path != ":memory:" else f":memory:{id(self)}"
        self._key = key
        with _sqlite_files_guard:
            shared = _sqlite_files.get(key)
            if shared is None:
                shared = _sqlite_files[key] = _SqliteFile()
            shared.users += 1
        self._file = shared
        #: serializes the sessions of threads and backends sharing this file
        self._lock = shared.lock
        try:
            with shared.lock:  # not while another backend of the file holds ADBC's open
                self._open()
                if self._wal and shared.checkpointer is None:
                    shared.checkpointer = _Checkpointer(self.path)
                shared.backends.add(self)
        except BaseException:
            self._closed = True
            self._forget_file()
            raise
        self.checkpointer = shared.checkpointer

    def _open(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   cached_statements=256)
            conn.execute("PRAGMA busy_timeout = 30000")
            if self.page_size is not None:
                # takes effect only while the file is still empty (before WAL mode is set)
                conn.execute(f"PRAGMA page_size = {int(self.page_size)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # checkpoints run in the background (_Checkpointer); this is only the backstop
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite register {self.path!r}: {exc}") from exc
        self._wal = str(mode).lower() == "wal"
        self._conn = conn

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the register is closed")
        if self._conn is None:  # closed for a bulk session (of this or another backend)
            self._open()
        assert self._conn is not None
        return self._conn

    def _release(self) -> None:
        """Close the stdlib connection (reopened on the next use); the caller holds the
        file's lock."""
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        with self._lock, self._session(write) as s:
            yield s

    @contextmanager
    def _session(self, write: bool) -> Iterator[Session]:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot start a transaction: {_sqlite_message(exc)}") from exc
        try:
            yield _SqliteSession(conn)
        except BaseException as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            _raise_mapped(exc)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StoreError(f"commit failed: {_sqlite_message(exc)}") from exc
        if write and self.checkpointer is not None:
            self.checkpointer.poke()

    def beside(self, suffix: str) -> Path | None:
        return Path(f"{self.path}{suffix}")

    @contextmanager
    def bulk_session(self, write: bool = True) -> Iterator[Session]:
        with self._lock, self._bulk_session(write) as s:
            yield s

    @contextmanager
    def _bulk_session(self, write: bool) -> Iterator[Session]:
        try:
            import adbc_driver_sqlite.dbapi as adbc_sqlite
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise MissingDependencyError("the SQLite bulk path needs adbc-driver-sqlite") from exc
        self._connection()  # (refuses a closed backend)
        for other in list(self._file.backends):  # no stdlib connection while ADBC's is open
            other._release()
        ckpt = self.checkpointer
        try:
            with ckpt.lock if ckpt is not None else nullcontext():
                if ckpt is not None:
                    ckpt.release()  # no stdlib connection while ADBC's is open
                try:
                    conn = adbc_sqlite.connect(self.path)
                except Exception as exc:
                    _raise_mapped(exc)
                    raise
                try:
                    try:
                        with conn.cursor() as cur:
                            cur.execute("PRAGMA busy_timeout = 30000")
                            # up to 1 GiB for bulk work: B-trees touched all over stay cached
                            cur.execute("PRAGMA cache_size = -1048576")
                            cur.execute("PRAGMA temp_store = MEMORY")
                            if write:
                                # take the write lock now, as BEGIN IMMEDIATE would
                                cur.execute("DELETE FROM meta WHERE 0")
                    except Exception as exc:
                        with suppress(Exception):
                            conn.rollback()
                        _raise_mapped(exc)
                        raise
                    try:
                        yield _AdbcSqliteSession(conn)
                    except BaseException as exc:
                        with suppress(Exception):
                            conn.rollback()
                        _raise_mapped(exc)
                        raise
                    try:
                        conn.commit()
                    except Exception as exc:
                        with suppress(Exception):
                            conn.rollback()
                        if _is_db_error(exc):
                            raise StoreError(f"commit failed: {_sqlite_message(exc)}") from exc
                        raise
                finally:
                    with suppress(Exception):
                        conn.close()
        finally:
            self._open()

    @contextmanager
    def side_readers(self, n: int) -> Iterator[list[Session]]:
        """As :meth:`Backend.side_readers`: ADBC connections of their own (the bulk
        session has put this process's stdlib connections aside), each in a read
        transaction of its own (WAL: readers never wait for each other)."""
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        if self.path == ":memory:":  # another connection would see another database
            yield []
            return

        def one() -> Any:
            try:
                conn = adbc_sqlite.connect(self.path)
            except Exception as exc:
                _raise_mapped(exc)
                raise
            with _closed_on_error(conn), conn.cursor() as cur:
                cur.execute("PRAGMA busy_timeout = 30000")
                cur.execute("PRAGMA cache_size = -262144")  # 256 MiB each
            return conn

        with _side_connections(n, one) as conns:
            yield [_AdbcSqliteSession(c) for c in conns]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release()
            if self._forget_file() and self.checkpointer is not None:
                self.checkpointer.close()

    def _forget_file(self) -> bool:
        """Leave the file's shared state; returns whether this was its last backend."""
        with _sqlite_files_guard:
            self._file.backends.discard(self)
            self._file.users -= 1
            if self._file.users:
                return False
            _sqlite_files.pop(self._key, None)
            return True


# -- PostgreSQL ---------------------------------------------------------------------------


class _PgSession(Session):
    dialect = "postgresql"

    def __init__(self, conn: Any) -> None:  # psycopg.Connection
        self._conn = conn
        self._cur = conn.cursor()
        self._sql: dict[str, str] = {}

    def _q(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = sql.replace("?", "%s")
        return out

    def execute(self, sql: str, params: Params = ()) -> None:
        self._cur.execute(self._q(sql), params or None)

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        # A cursor of its own: in pipeline mode the server answers earlier writes in
        # bursts, and psycopg hands a late answer to the cursor that sent the write, even
        # after that cursor sent a read; the read would then "fetch" an INSERT's status.
        with self._conn.cursor() as cur:
            cur.execute(self._q(sql), params or None)
            return list(cur.fetchall())

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        rows = list(rows)
        if rows:
            self._cur.executemany(self._q(sql), rows)

    def try_execute(self, sql: str, params: Params = ()) -> bool:
        psycopg = import_psycopg()
        try:
            with self._conn.transaction():  # nested: a savepoint, rolled back on error
                self._cur.execute(self._q(sql), params or None)
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def ingest(self, table: str, data: pa.Table, progress: Any = None, *,
               temporary: bool = False) -> None:
        cols = ", ".join(data.column_names)
        step = 50_000
        # every non-null value quoted: a text such as "\\." or "" is data, never a marker
        opts = pacsv.WriteOptions(include_header=False, batch_size=16_384,
                                  quoting_style="all_valid")

        def encode(start: int) -> tuple[int, memoryview]:
            part = data.slice(start, step)
            buf = io.BytesIO()
            pacsv.write_csv(part, buf, opts)  # pyarrow's C++ writer: releases the GIL
            return part.num_rows, buf.getbuffer()

        starts = range(0, data.num_rows, step)
        # Encode the next slice in a worker thread while this one streams to the server:
        # the server parses CSV at the same time as pyarrow writes it (at most two slices
        # in memory). Everything still goes through this one connection and transaction.
        with self._cur.copy(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
            for rows, chunk in one_ahead(encode, starts, name="jukicore-csv"):
                copy.write(chunk)
                if progress is not None:
                    progress(rows)
        if not starts and progress is not None:
            progress(0)

    def fetch_arrow(self, sql: str, params: Params, schema: pa.Schema) -> pa.Table:
        buf = io.BytesIO()
        with self._cur.copy(
            f"COPY ({self._q(sql)}) TO STDOUT WITH (FORMAT csv)", params or None
        ) as copy:
            for data in copy:
                buf.write(data)
        if buf.tell() == 0:
            return schema.empty_table()
        buf.seek(0)
        types = {
            f.name: (pa.timestamp(f.type.unit) if pa.types.is_timestamp(f.type) else f.type)
            for f in schema
        }
        table = pacsv.read_csv(
            buf,
            read_options=pacsv.ReadOptions(column_names=schema.names, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                # PostgreSQL writes NULL as an unquoted empty field and quotes an empty
                # string: only the former is null ("NA", "NULL", "nan" ... are text)
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        return _cast_to(table, schema)

    def pipelined(self) -> AbstractContextManager[Any]:
        return self._conn.pipeline()  # type: ignore[no-any-return]

    def d(self, value: dt.date | None) -> Any:
        return value

    def ts(self, value: dt.datetime) -> Any:
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    @staticmethod
    def pd(value: Any) -> dt.date | None:
        return value  # type: ignore[no-any-return]


    def table_exists(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM information_schema.tables WHERE table_name = ?"
                               " AND table_schema = current_schema()", (name,)))

    def stage(self, table: Table, rows: pa.Table) -> str:
        # the unlogged scratch table of the schema, emptied in the transaction that fills it
        self.execute(f"TRUNCATE {table.name}")
        self.ingest(table.name, self.for_db(rows))
        return table.name

    def unstage(self, staging: str) -> None:
        self.execute(f"TRUNCATE {staging}")

    def any_of(self, column: str, values: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
        return f"{column} = ANY(?)", ([int(v) for v in values],)

    def analyze(self, *tables: str) -> None:
        self.execute(f"ANALYZE {', '.join(tables)}")


#: What to install for PostgreSQL stores (pyproject.toml's extras).
POSTGRESQL_EXTRAS = ("pip install 'jukicore[postgresql]' (psycopg, on the system's libpq) or "
                     "'jukicore[postgresql-binary]' (psycopg with its own libpq)")


def import_psycopg() -> Any:
    """psycopg 3, imported only when a PostgreSQL store is used: the base install of
    jukicore (SQLite) works without it. Missing, or without a usable libpq, it is a
    :class:`MissingDependencyError` that names the extra to install."""
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependencyError(
            f"PostgreSQL stores need psycopg 3, which cannot be imported ({exc}): "
            f"{POSTGRESQL_EXTRAS}") from exc
    return psycopg


class PostgresBackend(Backend):
    dialect = "postgresql"

    def __init__(self, uri: str) -> None:
        psycopg = import_psycopg()
        self.target = uri
        self._lock = threading.RLock()
        try:
            self._conn: Any = psycopg.connect(uri, autocommit=True)
            self._conn.execute("SET TIME ZONE 'UTC'")
            self._conn.execute("SET DateStyle TO ISO, YMD")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        self._psycopg = psycopg

    def _connection(self) -> Any:
        if self._conn is None:
            raise StoreError("the register is closed")
        return self._conn

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    s = _PgSession(conn)
                    if write:
                        s.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
                    yield s
            except self._psycopg.errors.UniqueViolation as exc:
                raise ConflictError(f"conflicting record: {exc}") from exc
            except self._psycopg.Error as exc:
                raise StoreError(f"PostgreSQL error: {str(exc).strip()}") from exc

    def bulk_session(self, write: bool = True) -> Any:
        return self.session(write)

    @contextmanager
    def side_readers(self, n: int) -> Iterator[list[Session]]:
        """As :meth:`Backend.side_readers`: connections of their own, each in one read-only
        REPEATABLE READ transaction (all its statements see one snapshot). Fewer, or none,
        when the server takes no more connections (they only speed a read up)."""
        self._connection()  # (refuses a closed backend)
        psycopg = self._psycopg

        def one() -> Any:
            try:
                conn = psycopg.connect(self.target)
            except psycopg.Error as exc:
                log.info("no side reader (%s): reading through one connection",
                         str(exc).strip())
                return None
            with _closed_on_error(conn):
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                conn.execute("SET TIME ZONE 'UTC'")
                conn.execute("SET DateStyle TO ISO, YMD")
            return conn

        with _side_connections(n, one) as conns:
            yield [_PgSession(c) for c in conns]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def is_postgres_uri(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def connect(target: str | Path, *, sqlite_page_size: int | None = None,
            create: bool = False) -> Backend:
    """The backend of ``target``; ``sqlite_page_size`` sets the page size of a new SQLite
    file (an existing file keeps its own).

    ``create``: whether a missing SQLite file may be created (``create_*``); otherwise a
    missing file is a :class:`NotFoundError` and nothing is created."""
    t = str(target)
    if is_postgres_uri(t):
        return PostgresBackend(t)
    if t.startswith("sqlite:///"):
        t = t[len("sqlite:///") :]
    return SqliteBackend(t, page_size=sqlite_page_size, create=create)
