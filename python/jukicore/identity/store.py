"""Identity confirmation info (本人確認情報) stores of the prefectures and the center.

A prefecture keeps the identity info of its residents, the center that of the
whole country: for each resident code the six items (name, date of birth,
sex, address, resident code, and the date and reason of the last change) plus
the municipality that holds the record and its status, and the full history of
every change received. Nothing else: domicile, household, My Number and every
other municipal item never reach these stores (:data:`IDENTITY_COLUMNS` is the
whole schema of a change).

Changes arrive from municipalities in numbered batches (their outbox sequence
numbers). :meth:`IdentityStore.apply_changes` applies one batch in one
transaction, exactly once:

* a batch whose id was applied before is refused (applied twice);
* a batch whose entries were all applied before is refused (a replay);
* a batch starting after the next expected number is refused (a gap, or out
  of order);
* a batch overlapping what was applied (a retransmission of entries not yet
  acknowledged) applies only its unseen suffix.

Refusals change nothing. The current record of a resident code follows the
latest change by date, whichever municipality sent it first: a move-out from
one municipality and the move-in at the next may arrive in either order.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PacketSequenceError,
    SchemaVersionError,
)
from jukicore.register._backend import (
    Backend,
    Session,
    connect,
    content_digest,
    installed_version,
    migrate,
    utcnow,
)
from jukicore.register._schema import (
    Column,
    Migration,
    Table,
    create_index_sql,
    create_table_sql,
)

__all__ = [
    "IDENTITY_COLUMNS",
    "IDENTITY_SCHEMA",
    "ApplyResult",
    "IdentityStore",
    "create_identity_store",
    "open_identity_store",
]

KINDS = ("prefecture", "center")

#: One change of identity confirmation info, as a municipality sends it.
IDENTITY_COLUMNS: tuple[Column, ...] = (
    Column("seq", "int", False),
    Column("resident_code", "int", False),
    Column("previous_resident_code", "int"),
    Column("family_name", "text", False),
    Column("given_name", "text", False),
    Column("birth_date", "date", False),
    Column("sex", "small", False),
    Column("address", "text", False),
    Column("status", "text", False),
    Column("change_date", "date", False),
    Column("change_reason", "text", False),
)

IDENTITY_SCHEMA = pa.schema([
    pa.field("seq", pa.int64(), False),
    pa.field("resident_code", pa.uint64(), False),
    pa.field("previous_resident_code", pa.uint64()),
    pa.field("family_name", pa.string(), False),
    pa.field("given_name", pa.string(), False),
    pa.field("birth_date", pa.date32(), False),
    pa.field("sex", pa.int8(), False),
    pa.field("address", pa.string(), False),
    pa.field("status", pa.string(), False),
    pa.field("change_date", pa.date32(), False),
    pa.field("change_reason", pa.string(), False),
])

_ITEMS = [c.name for c in IDENTITY_COLUMNS if c.name not in ("seq", "previous_resident_code")]
_CURRENT = Table(
    "identity",
    (Column("resident_code", "int", False),
     *[c for c in IDENTITY_COLUMNS if c.name in _ITEMS and c.name != "resident_code"],
     Column("lg_code", "text", False), Column("seq", "int", False)),
    ("resident_code",),
)
_HISTORY = Table(
    "identity_history",
    (Column("lg_code", "text", False), *IDENTITY_COLUMNS, Column("packet_id", "text", False)),
    # A municipality numbers its changes: each is kept once. Led by the code: the key is
    # also the index of a code's history, and a batch in code order fills it in one sweep.
    ("resident_code", "lg_code", "seq"),
)
_STAGING = Table(
    "identity_staging",
    (Column("lg_code", "text", False), *IDENTITY_COLUMNS, Column("packet_id", "text", False)),
)
_TABLES = (
    Table("meta", (Column("key", "text", False), Column("value", "text")), ("key",)),
    _CURRENT,
    replace(_HISTORY, primary_key=("lg_code", "seq")),  # as it was in version 1
    _STAGING,
    Table("peers", (Column("lg_code", "text", False), Column("last_seq", "int", False)),
          ("lg_code",)),
    Table("packets_applied",
          (Column("packet_id", "text", False), Column("lg_code", "text", False),
           Column("first_seq", "int", False), Column("last_seq", "int", False),
           Column("applied", "int", False), Column("applied_at", "ts", False)),
          ("packet_id",)),
    Table("audit",
          (Column("id", "serial", False), Column("at", "ts", False),
           Column("actor", "text", False), Column("action", "text", False),
           Column("target", "text"), Column("detail", "text"))),
)
_INDEXES = (("identity_history_code", "identity_history", "resident_code", False, None),)


def _v1(dialect: str) -> list[str]:
    stmts = []
    for t in _TABLES:
        ddl = create_table_sql(t, dialect)
        if t is _CURRENT and dialect == "sqlite":
            ddl += " WITHOUT ROWID"
        if t is _STAGING and dialect == "postgresql":
            # emptied in the transaction that fills it: no need to WAL-log it
            ddl = ddl.replace("CREATE TABLE", "CREATE UNLOGGED TABLE", 1)
        stmts.append(ddl)
    return stmts + [create_index_sql(i) for i in _INDEXES]


def _v2(dialect: str) -> list[str]:
    # The history's key leads with the code and replaces the code index; a code's history
    # also holds the change that gave it up (previous_resident_code).
    previous = create_index_sql(("identity_history_previous", "identity_history",
                                 "previous_resident_code", False,
                                 "previous_resident_code IS NOT NULL"))
    if dialect == "postgresql":
        return ["ALTER TABLE identity_history DROP CONSTRAINT identity_history_pkey",
                "ALTER TABLE identity_history ADD PRIMARY KEY (resident_code, lg_code, seq)",
                "DROP INDEX identity_history_code", previous]
    hcols = ", ".join(c.name for c in _HISTORY.columns)
    stmts = [create_table_sql(_HISTORY, dialect).replace(
                 "CREATE TABLE identity_history", "CREATE TABLE identity_history_v2", 1),
             f"INSERT INTO identity_history_v2 ({hcols}) SELECT {hcols} FROM identity_history"
             " ORDER BY resident_code, lg_code, seq",
             "DROP TABLE identity_history",
             "ALTER TABLE identity_history_v2 RENAME TO identity_history",
             previous]
    # SQLite: the current info becomes a table in arrival order with a unique index on the
    # code: a batch of codes at random then appends rows and touches only the small index,
    # instead of rewriting every page of a table clustered on the code. Batches are staged
    # in a temporary table (in memory), not in the database file.
    cols = ", ".join(c.name for c in _CURRENT.columns)
    ddl = create_table_sql(_CURRENT, dialect).replace(
        ",\n  PRIMARY KEY (resident_code)", "").replace(
        "CREATE TABLE identity", "CREATE TABLE identity_v2", 1)
    return [*stmts, ddl,
            f"INSERT INTO identity_v2 ({cols}) SELECT {cols} FROM identity",
            "DROP TABLE identity",
            "ALTER TABLE identity_v2 RENAME TO identity",
            "CREATE UNIQUE INDEX identity_code ON identity (resident_code)",
            "DROP TABLE identity_staging"]


#: Every schema version of the identity store, in order. Append; never edit a published step.
_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "identity store: current info, history, peers, packets applied, audit", _v1),
    Migration(2, "history keyed by code; SQLite current info in arrival order", _v2),
)
SCHEMA_VERSION = _MIGRATIONS[-1].version
#: Page size of a new SQLite identity store. Its B-trees take rows at random code
#: positions; larger pages mean fewer page splits and a shallower tree (measured: a
#: 6M-record load about a quarter faster than at SQLite's default 4 KiB).
SQLITE_PAGE_SIZE = 16384


def _migrate(s: Session, current: int) -> None:
    migrate(s, "identity_schema_version", _MIGRATIONS, current, described=False)


def create_identity_store(target: str | Path, *, node_id: str, kind: str) -> IdentityStore:
    """Create an empty identity store for a prefecture or the center."""
    if kind not in KINDS:
        raise InvalidInputError(f"an identity store belongs to one of {KINDS}, not {kind!r}")
    backend = connect(target, sqlite_page_size=SQLITE_PAGE_SIZE)
    try:
        with backend.session() as s:
            if installed_version(s, "identity_schema_version") is not None:
                raise ConflictError(f"{backend.target} already holds an identity store")
            _migrate(s, 0)
            # The backend's bulk path takes its write lock on the meta row 'lg_code'.
            s.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                          [("lg_code", node_id), ("kind", kind)])
            _audit(s, node_id, "identity.init", node_id, kind)
    except BaseException:
        backend.close()
        raise
    return IdentityStore(backend)


def open_identity_store(target: str | Path) -> IdentityStore:
    """Open an identity store, migrating its schema to this version if older."""
    backend = connect(target)
    try:
        with backend.session(write=False) as s:
            version = installed_version(s, "identity_schema_version")
        if version is None:
            raise NotFoundError(f"{backend.target} holds no identity store")
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the identity store's schema is version {version}; this jukicore knows "
                f"up to {SCHEMA_VERSION}: upgrade jukicore")
        if version < SCHEMA_VERSION:
            with backend.session() as s:
                # under the write lock: another process may have migrated meanwhile
                _migrate(s, installed_version(s, "identity_schema_version") or 0)
    except BaseException:
        backend.close()
        raise
    return IdentityStore(backend)


def _audit(s: Session, actor: str, action: str, target: str | None, detail: str | None) -> None:
    s.execute("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
              (s.ts(utcnow()), actor, action, target, detail))


class ApplyResult:
    """What one batch did: entries applied, and those skipped as already applied."""

    __slots__ = ("applied", "last_seq", "sender", "skipped")

    def __init__(self, sender: str, applied: int, skipped: int, last_seq: int) -> None:
        self.sender, self.applied, self.skipped, self.last_seq = sender, applied, skipped, last_seq

    def as_dict(self) -> dict[str, Any]:
        return {"sender": self.sender, "applied": self.applied, "skipped": self.skipped,
                "last_seq": self.last_seq}


class IdentityStore:
    """A prefecture's or the center's identity store (SQLite path or PostgreSQL URI)."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        with backend.session(write=False) as s:
            meta = dict(s.query("SELECT key, value FROM meta"))
        self.node_id: str = meta["lg_code"]
        self.kind: str = meta["kind"]

    def close(self) -> None:
        self._b.close()

    def __enter__(self) -> IdentityStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state

    def last_seq(self, sender: str) -> int:
        """The last entry applied from municipality ``sender`` (0 when none)."""
        with self._b.session(write=False) as s:
            v = s.scalar("SELECT last_seq FROM peers WHERE lg_code = ?", (sender,))
        return 0 if v is None else int(v)

    def peers(self) -> dict[str, int]:
        """The last entry applied from each municipality heard from."""
        with self._b.session(write=False) as s:
            return {str(k): int(v) for k, v in
                    s.query("SELECT lg_code, last_seq FROM peers ORDER BY lg_code")}

    def packet_applied(self, packet_id: str) -> bool:
        with self._b.session(write=False) as s:
            return bool(s.query("SELECT 1 FROM packets_applied WHERE packet_id = ?",
                                (packet_id,)))

    def count(self) -> int:
        with self._b.session(write=False) as s:
            return int(s.scalar("SELECT count(*) FROM identity"))

    # ------------------------------------------------------------------ apply

    def apply_changes(self, *, sender: str, packet_id: str, first_seq: int, last_seq: int,
                      changes: Any, actor: str) -> ApplyResult:
        """Apply a batch of changes from municipality ``sender``, exactly once.

        ``changes`` has :data:`IDENTITY_SCHEMA`'s columns with ``seq`` running
        ``first_seq..last_seq`` without gaps. See the module docs for the
        refusals; each raises and changes nothing.
        """
        changes = _validated(changes, first_seq, last_seq, sender)
        with self._b.bulk_session() as s:
            if s.query("SELECT 1 FROM packets_applied WHERE packet_id = ?", (packet_id,)):
                raise PacketSequenceError(f"packet {packet_id} was already applied")
            v = s.scalar("SELECT last_seq FROM peers WHERE lg_code = ?", (sender,))
            done = 0 if v is None else int(v)
            if last_seq <= done:
                raise PacketSequenceError(
                    f"replayed packet: entries {first_seq}..{last_seq} from {sender} were "
                    f"already applied (up to {done})")
            if first_seq > done + 1:
                raise PacketSequenceError(
                    f"gap: the next entry expected from {sender} is {done + 1}, the packet "
                    f"starts at {first_seq}")
            fresh = changes.filter(pc.greater(changes.column("seq"), done))
            # Staged in code order: the history's code index and the current info's code
            # index then take the batch in one sweep, page after page, not at random.
            fresh = fresh.sort_by([("resident_code", "ascending"), ("seq", "ascending")])
            staged = fresh.append_column("packet_id", pa.array([packet_id] * fresh.num_rows,
                                                              pa.string()))
            staged = staged.add_column(0, "lg_code", pa.array([sender] * fresh.num_rows,
                                                              pa.string()))
            staging = _stage(s, _for_db(staged, s.dialect))
            cols = ", ".join(c.name for c in IDENTITY_COLUMNS)
            # The staging table is read in the order it was filled (code order).
            s.execute(f"INSERT INTO identity_history (lg_code, {cols}, packet_id)"
                      f" SELECT lg_code, {cols}, packet_id FROM {staging}")
            retiring = fresh.column("previous_resident_code").null_count < fresh.num_rows
            if retiring:
                # A code given up by a code change is retired for good: its record goes.
                s.execute(f"DELETE FROM identity WHERE resident_code IN (SELECT"
                          f" previous_resident_code FROM {staging} WHERE previous_resident_code"
                          " IS NOT NULL)")
            codes = fresh.column("resident_code").to_numpy()
            simple = not retiring and not bool(np.any(codes[1:] == codes[:-1]))
            self._upsert_latest(s, staging, simple)
            _unstage(s, staging)
            if v is None:
                s.execute("INSERT INTO peers (lg_code, last_seq) VALUES (?, ?)",
                          (sender, last_seq))
            else:
                s.execute("UPDATE peers SET last_seq = ? WHERE lg_code = ?", (last_seq, sender))
            s.execute("INSERT INTO packets_applied (packet_id, lg_code, first_seq, last_seq,"
                      " applied, applied_at) VALUES (?, ?, ?, ?, ?, ?)",
                      (packet_id, sender, first_seq, last_seq, fresh.num_rows,
                       s.ts(utcnow())))
            _audit(s, actor, "identity.apply", sender,
                   f"packet {packet_id} entries {first_seq}..{last_seq}, "
                   f"{fresh.num_rows} applied")
        return ApplyResult(sender, fresh.num_rows, changes.num_rows - fresh.num_rows, last_seq)

    @staticmethod
    def _upsert_latest(s: Session, staging: str, simple: bool) -> None:
        """Upsert the latest staged change of each code; ``simple``: the codes are unique
        in the batch and none was given up (then the staged rows, in code order, are it)."""
        items = [c for c in _ITEMS if c != "resident_code"]
        sets = ", ".join(f"{c} = excluded.{c}" for c in [*items, "lg_code", "seq"])
        cols = ", ".join(["resident_code", *items, "lg_code", "seq"])
        # The latest staged change of each code that was not itself given up.
        latest = (f"SELECT {cols} FROM {staging} WHERE true" if simple else (
            f"SELECT {cols} FROM (SELECT {cols}, row_number() OVER (PARTITION BY resident_code"
            f" ORDER BY change_date DESC, seq DESC) AS rn FROM {staging}"
            f" WHERE resident_code NOT IN (SELECT previous_resident_code FROM {staging}"
            " WHERE previous_resident_code IS NOT NULL)) AS t WHERE rn = 1"
            " ORDER BY resident_code"
        ))
        # Newer by date wins; on the same date the same municipality's later entry wins,
        # and between municipalities a move-in (resident) wins over a move-out (removed).
        newer = (
            "excluded.change_date > identity.change_date OR (excluded.change_date ="
            " identity.change_date AND ((excluded.lg_code = identity.lg_code AND excluded.seq >"
            " identity.seq) OR (excluded.lg_code <> identity.lg_code AND excluded.status ="
            " 'resident')))"
        )
        insert = f"INSERT INTO identity ({cols}) {latest}"
        # PostgreSQL inserts each row of an ON CONFLICT statement speculatively (one more
        # WAL record and index pass per row). A batch of unique codes, as an initial load
        # is, first goes in by a plain INSERT, undone at the first code already present.
        # (On SQLite a plain INSERT was no faster in a trial: it keeps the upsert.)
        if simple and s.dialect == "postgresql" and s.try_execute(insert):
            return
        s.execute(f"{insert} ON CONFLICT (resident_code) DO UPDATE SET {sets} WHERE {newer}")

    # ------------------------------------------------------------------ queries

    def current(self) -> pa.Table:
        """Every resident code's current identity info."""
        cols = [c.name for c in _CURRENT.columns]
        with self._b.bulk_session(write=False) as s:
            return s.fetch_arrow(f"SELECT {', '.join(cols)} FROM identity ORDER BY resident_code",
                                 (), _current_schema())

    def history(self, resident_code: int) -> pa.Table:
        cols = ["lg_code", *(c.name for c in IDENTITY_COLUMNS)]
        schema = pa.schema([pa.field("lg_code", pa.string()), *IDENTITY_SCHEMA])
        with self._b.bulk_session(write=False) as s:
            return s.fetch_arrow(
                f"SELECT {', '.join(cols)} FROM identity_history WHERE resident_code = ?"
                " OR previous_resident_code = ? ORDER BY change_date, lg_code, seq",
                (int(resident_code), int(resident_code)), schema)

    def content_digest(self) -> str:
        """SHA-256 over every table's content, wall-clock columns left out."""
        queries = [
            "SELECT * FROM identity ORDER BY resident_code",
            "SELECT lg_code, seq, resident_code, previous_resident_code, family_name, given_name,"
            " birth_date, sex, address, status, change_date, change_reason, packet_id"
            " FROM identity_history ORDER BY lg_code, seq",
            "SELECT lg_code, last_seq FROM peers ORDER BY lg_code",
            "SELECT packet_id, lg_code, first_seq, last_seq, applied FROM packets_applied"
            " ORDER BY packet_id",
        ]
        with self._b.session(write=False) as s:
            return content_digest(s, queries)


def _stage(s: Session, rows: pa.Table) -> str:
    """Put a batch into an empty staging table; returns the table's name.

    SQLite: a temporary table, in memory and gone with the connection. PostgreSQL: an
    unlogged table, emptied in the transaction that fills it.
    """
    if s.dialect == "sqlite":
        s.execute("DROP TABLE IF EXISTS temp.identity_batch")
        s.execute(create_table_sql(_STAGING, "sqlite").replace(
            "CREATE TABLE identity_staging", "CREATE TEMP TABLE identity_batch", 1))
        s.ingest("identity_batch", rows, temporary=True)
        return "temp.identity_batch"
    s.execute("TRUNCATE identity_staging")
    s.ingest("identity_staging", rows)
    return "identity_staging"


def _unstage(s: Session, staging: str) -> None:
    s.execute(f"DROP TABLE {staging}" if s.dialect == "sqlite" else f"TRUNCATE {staging}")


def _current_schema() -> pa.Schema:
    """The current-info table as Arrow: the identity columns it shares, plus ``lg_code``."""
    by_name = {f.name: f for f in IDENTITY_SCHEMA}
    by_name["lg_code"] = pa.field("lg_code", pa.string(), False)
    return pa.schema([by_name[c.name] for c in _CURRENT.columns])


def _validated(changes: Any, first_seq: int, last_seq: int, sender: object = None) -> pa.Table:
    """The changes as :data:`IDENTITY_SCHEMA`, every value checked by the one validation
    (:mod:`jukicore.validate`): any bad value refuses the batch, naming every bad row and
    column. ``changes``: any Arrow table (pyarrow, or the Arrow PyCapsule interface)."""
    import datetime as dt

    from jukicore.errors import BadRow
    from jukicore.register.events import KINDS
    from jukicore.register.store import as_arrow_table
    from jukicore.validate import check_sender, coerce_column, find_problems, sorted_rows

    if sender is not None:
        check_sender(sender)
    changes = as_arrow_table(changes, "identity changes")
    missing = [n for n in IDENTITY_SCHEMA.names if n not in changes.column_names]
    if missing:
        raise InvalidInputError(f"identity changes lack columns {missing}")
    extra = [n for n in changes.column_names if n not in IDENTITY_SCHEMA.names]
    if extra:
        raise InvalidInputError(
            f"identity changes carry columns that must not leave a municipality: {extra}")
    bad: list[BadRow] = []
    cols = []
    for f in IDENTITY_SCHEMA:
        col, b = coerce_column(changes.column(f.name), f.type, f.name)
        cols.append(col)
        bad += b
    # nullable while checked: a missing required item is a bad row, not an Arrow error
    table = pa.Table.from_arrays(cols, schema=pa.schema([f.with_nullable(True)
                                                         for f in IDENTITY_SCHEMA]))
    required = tuple(f.name for f in IDENTITY_SCHEMA if not f.nullable)
    unreadable = {(r.row, r.column) for r in bad}  # null now: not "missing" as well
    bad += [r for r in find_problems(table, today=dt.date.today(), required=required,
                                     change_reasons=(*KINDS, "load"))
            if (r.row, r.column) not in unreadable]
    if bad:
        raise InvalidInputError("identity changes have invalid values", sorted_rows(bad))
    changes = table.cast(IDENTITY_SCHEMA)
    if first_seq < 1 or last_seq < first_seq:
        raise InvalidInputError(f"bad sequence range {first_seq}..{last_seq}")
    seq = changes.column("seq").to_numpy()
    if seq.size != last_seq - first_seq + 1 or not np.array_equal(
            seq, np.arange(first_seq, last_seq + 1)):
        raise InvalidInputError(
            f"entries must run {first_seq}..{last_seq} in order without gaps")
    return changes


def _for_db(table: pa.Table, dialect: str) -> pa.Table:
    """Arrow columns as the database stores them (codes as int64, dates as text on SQLite)."""
    out = []
    for f in table.schema:
        col = table.column(f.name)
        if pa.types.is_uint64(f.type):
            col = pc.cast(col, pa.int64())
        elif dialect == "sqlite" and pa.types.is_date32(f.type):
            col = pc.cast(col, pa.string())  # ISO 8601, as the register stores dates
        out.append(col)
    return pa.table(out, names=table.column_names)
