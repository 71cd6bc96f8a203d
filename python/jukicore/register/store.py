"""The municipal resident register (住民基本台帳) on SQLite or PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore import audit
from jukicore._jukicore import record_digests
from jukicore.access import actors as perm
from jukicore.access.actors import MUNICIPALITY, Actor
from jukicore.access.policy import ACCESS_ACTIONS, POLICY_TABLE, Gate, read_detail
from jukicore.errors import (
    BadRow,
    CodeSpaceExhaustedError,
    ConflictError,
    FileError,
    InvalidInputError,
    NotFoundError,
)
from jukicore.identity.items import IDENTITY_COLUMNS
from jukicore.store.backend import (
    Backend,
    Session,
    StoreKind,
    content_digest,
    create_store,
    open_store,
    rows_to_arrow,
    utcnow,
)
from jukicore.validate import (
    check_lg_code,
    coerce_column,
    coerce_values,
    find_problems,
    first_per_row,
    parse_resident_code,
    record_item_problems,
    sorted_rows,
    valid_codes,
)

from ._checks import Rejected, fmt_code
from ._schema import (
    AUDIT_SCHEMA,
    HEAD,
    HISTORY_SCHEMA,
    HOUSEHOLD_SCHEMA,
    INDEXES,
    MIGRATIONS,
    NOTIFICATION_SCHEMA,
    OUTBOX_SCHEMA,
    RECORD_ITEMS,
    RESIDENT,
    RESIDENT_COLUMNS,
    RESIDENT_SCHEMA,
    RETENTION_YEARS,
    SCHEMA_VERSION,
    TABLES,
    TRACKED_ITEMS,
    arrow_schema,
)
from .data import Batch
from .events import EVENT_SCHEMA, KINDS
from .notifications import apply_row
from .sync_state import SyncState

__all__ = ["ApplyReport", "LoadReport", "Register", "RejectedRow", "create_register",
           "open_register"]

Progress = Callable[[int], None]

_LOAD_REQUIRED = (
    "person_id", "family_name", "given_name", "family_name_kana", "given_name_kana",
    "birth_date", "sex", "household_id", "relationship", "postal_code", "prefecture",
    "municipality", "lg_code", "town", "street", "address", "resident_since", "address_since",
)


@dataclass(frozen=True)
class RejectedRow:
    """A notification that ``apply`` refused: nothing of it was applied."""

    row: int
    notification_id: str | None
    kind: str | None
    reason: str
    column: str | None
    error: str  # the jukicore error class name, e.g. "ConflictError"


@dataclass(frozen=True)
class ApplyReport:
    applied: int
    duplicates: int
    rejected: tuple[RejectedRow, ...]
    #: resident code each applied row concerns (new code for births, move-ins, code changes);
    #: null for rejected and duplicate rows; aligned with the input rows
    resident_codes: pa.Array

    @property
    def ok(self) -> bool:
        return not self.rejected

    def rejected_table(self) -> pa.Table:
        return pa.Table.from_pylist(
            [r.__dict__ for r in self.rejected],
            schema=pa.schema([("row", pa.int64()), ("notification_id", pa.string()),
                              ("kind", pa.string()), ("reason", pa.string()),
                              ("column", pa.string()), ("error", pa.string())]),
        )

    def summary(self) -> dict[str, int]:
        return {"applied": self.applied, "duplicates": self.duplicates,
                "rejected": len(self.rejected)}


@dataclass(frozen=True)
class LoadReport:
    residents: int
    households: int
    first_person_id: int
    first_household_id: int


def create_register(
    target: str | Path,
    *,
    lg_code: str,
    prefecture: str,
    municipality: str,
    actor: Actor,
) -> Register:
    """Create a new, empty register (SQLite file path or ``postgresql://`` URI)."""
    check_lg_code(lg_code, prefecture, municipality)
    perm.check_permission(actor, perm.INIT, lg_code)
    backend = create_store(
        target, REGISTER,
        [("lg_code", lg_code), ("prefecture", prefecture), ("municipality", municipality),
         ("outbox_seq", "0")],
        lambda s: _audit(s, actor, "register.init", lg_code, None,
                         detail=f"{prefecture}{municipality} schema v{SCHEMA_VERSION}"))
    return Register(backend)


def open_register(target: str | Path) -> Register:
    """Open an existing register, migrating its schema to this version if older.

    A SQLite file that does not exist is a :class:`NotFoundError` (it is not created)."""
    return Register(open_store(target, REGISTER))


#: The register as a kind of store (jukicore.store).
REGISTER = StoreKind("register", "schema_version", MIGRATIONS,
                     not_found_hint=" (run register init)")


def _audit(s: Session, actor: Actor, action: str, target: str | None, nid: str | None,
           *, detail: str | None = None) -> None:
    audit.write(s, actor, action, target, detail, notification_id=nid)


def as_arrow_table(data: Any, what: str) -> pa.Table:
    """Any Arrow tabular object as a ``pa.Table``: a pyarrow table, or anything with the
    Arrow PyCapsule interface (polars, duckdb, pandas ...)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        if hasattr(data, "__arrow_c_stream__"):
            return pa.table(data)
        if hasattr(data, "__arrow_c_array__"):
            return pa.Table.from_batches([pa.record_batch(data)])
        if hasattr(data, "to_arrow"):  # e.g. a duckdb relation of an older duckdb
            return as_arrow_table(data.to_arrow(), what)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what}: cannot read as an Arrow table: {exc}") from exc
    raise InvalidInputError(
        f"{what} must be an Arrow table (pyarrow, or any object with the Arrow PyCapsule "
        f"interface such as a polars, duckdb or pandas frame), not {type(data).__name__}")


def _empty_to_null(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_string(col.type) or col.null_count == len(col):
        return col
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)


def _normalize_events(
    events: Any,
) -> tuple[pa.Table, list[BadRow]]:
    """The events as :data:`EVENT_SCHEMA`, and the rows whose values could not be converted
    (those values are null in the table). An empty text is an absent value."""
    bad: list[BadRow] = []
    if isinstance(events, list | tuple) or (
            not isinstance(events, pa.Table) and not hasattr(events, "__arrow_c_stream__")
            and not hasattr(events, "__arrow_c_array__") and not hasattr(events, "to_arrow")):
        try:
            rows = list(events)
        except TypeError as exc:
            raise InvalidInputError(f"events must be a table or a list of dicts, not "
                                    f"{type(events).__name__}") from exc
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidInputError("events must be a table or a list of dicts",
                                        [BadRow(i, f"a {type(row).__name__}, not a dict")])
        unknown = {str(k) for row in rows for k in row} - set(EVENT_SCHEMA.names)
        if unknown:
            raise InvalidInputError(f"unknown event columns: {', '.join(sorted(unknown))}")
        present = {k for row in rows for k, v in row.items() if v is not None}
        cols = []
        for f in EVENT_SCHEMA:
            if f.name not in present:  # most columns of a single notification
                cols.append(_nulls(len(rows), f.type))
                continue
            values = [row.get(f.name) for row in rows]
            arr, b = coerce_values(values, f.type, f.name)
            col = pa.chunked_array([arr], f.type)
            empty = any(isinstance(v, str | bytes) and not v for v in values)
            cols.append(_empty_to_null(col) if empty else col)
            bad += b
        return pa.Table.from_arrays(cols, schema=EVENT_SCHEMA), bad
    events = as_arrow_table(events, "events")
    unknown_cols = set(events.column_names) - set(EVENT_SCHEMA.names)
    if unknown_cols:
        raise InvalidInputError(f"unknown event columns: {', '.join(sorted(unknown_cols))}")
    cols = []
    for f in EVENT_SCHEMA:
        if f.name in events.column_names:
            col, b = coerce_column(events.column(f.name), f.type, f.name)
            cols.append(_empty_to_null(col))
            bad += b
        else:
            cols.append(_nulls(events.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=EVENT_SCHEMA), bad


@lru_cache(maxsize=256)
def _nulls(n: int, typ: pa.DataType) -> pa.ChunkedArray:
    """A column of ``n`` nulls (immutable, so shared between calls)."""
    return pa.chunked_array([pa.nulls(n, typ)], typ)


class Register(SyncState):
    """One municipality's resident register. Use :func:`create_register` / :func:`open_register`.

    Every method takes the acting :class:`Actor`, checks its permission (deny by
    default) and, for changes, writes an audit entry in the same transaction.
    """

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        with backend.session(write=False) as s:
            meta = dict(s.query("SELECT key, value FROM meta"))
            self.schema_version = int(s.scalar("SELECT max(version) FROM schema_version"))
        self.lg_code: str = meta["lg_code"]
        self.prefecture: str = meta["prefecture"]
        self.municipality: str = meta["municipality"]
        #: the one policy at this register (jukicore.access.policy)
        self.policy = Gate(backend, MUNICIPALITY, self.lg_code)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        return self._b.dialect

    @property
    def target(self) -> str:
        return self._b.target

    def close(self) -> None:
        self._b.close()

    def __enter__(self) -> Register:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, actor: Actor, permission: str, now: dt.datetime | None = None) -> None:
        self.policy.check(actor, permission, now=now)

    def policy_settings(self) -> dict[str, str]:
        """The policy's settings in force here (working hours and read quotas per role)."""
        with self._b.session(write=False) as s:
            return self.policy.settings(s)

    def set_policy(self, key: str, value: str, *, actor: Actor,
                   now: dt.datetime | None = None) -> str:
        """Change one setting of the policy (``hours.ROLE`` / ``quota.ROLE``; see
        :meth:`jukicore.access.policy.Gate.configure`): admins only, audited."""
        return self.policy.configure(actor, key, value, now=now)

    def _read_entries(self, s: Session, actor: Actor, what: str, codes: Sequence[int | None],
                      purpose: str | None, permission: str = perm.READ) -> None:
        """One ``register.read`` entry per record read (target: its resident code)."""
        detail = read_detail(what, None, purpose)
        audit.write_many(s, [audit.entry(s, actor, "register.read", fmt_code(c), detail)
                             for c in codes])

    def _read_whole(self, s: Session, actor: Actor, what: str, n: int, purpose: str | None,
                    now: dt.datetime | None, permission: str = perm.READ) -> None:
        """A whole-table read of ``n`` records: within the quota, and one entry with the
        count (target null)."""
        self.policy.charge(s, actor, permission, n)
        audit.write(s, actor, "register.read", None, read_detail(what, n, purpose))

    # -- resident codes ----------------------------------------------------------------------

    def import_code_block(self, block: Any, *, actor: Actor,
                          now: dt.datetime | None = None) -> int:
        """Add a :class:`jukicore.codes.CodeBlock`'s codes to the register's pool of fresh codes."""
        self._check(actor, perm.IMPORT_CODES, now)
        codes = np.asarray(block.codes, dtype=np.uint64)
        self._check_holder(block)
        bad = np.flatnonzero(~_valid_codes(codes))
        if len(bad):
            raise InvalidInputError("invalid resident codes in block",
                                    [BadRow(int(i), "bad check digit", "codes") for i in bad])
        with self._b.bulk_session() as s:
            if s.query("SELECT 1 FROM code_blocks WHERE block_id = ?", (block.block_id,)):
                raise ConflictError(f"block {block.block_id} was already imported")
            start = int(s.scalar("SELECT coalesce(max(pos), 0) FROM code_pool")) + 1
            s.ingest("code_pool", pa.table({
                "pos": pa.array(np.arange(start, start + len(codes), dtype=np.int64)),
                "code": pa.array(codes.astype(np.int64)),
                "block_id": pa.array([str(block.block_id)] * len(codes), pa.string()),
            }))
            s.execute("INSERT INTO code_blocks (block_id, holder, parent_id, imported_at)"
                      " VALUES (?, ?, ?, ?)",
                      (block.block_id, block.holder, block.parent_id, s.ts(utcnow())))
            _audit(s, actor, "register.import_code_block", str(block.block_id), None,
                   detail=f"{len(codes)} codes")
        return len(codes)

    def import_code_block_file(self, path: str | Path, *, actor: Actor,
                               now: dt.datetime | None = None) -> int:
        """Move the codes of the block file at ``path`` into the code pool, exactly once.

        The file is first renamed to a hand-over name beside it (``.NAME.handover``), so
        that no other register can load the same codes from it; the import follows (one
        transaction, idempotent by block id), then the emptied block is written back at
        ``path`` and the hand-over file removed. A run killed or failing in between is
        completed by the next call for the same ``path`` (and this register): a code is
        never in the pool and in a loadable file at once. Returns the codes imported by
        this call (0 when a completed run had imported them).
        """
        from jukicore.codes import CodeBlock, _locked  # the block file steps' lock and reader

        self._check(actor, perm.IMPORT_CODES, now)
        src = Path(path)
        handover = src.with_name(f".{src.name}.handover")
        with _locked(src):
            if not os.path.lexists(handover):
                block = CodeBlock.load(src)  # completes an interrupted split first
                self._check_holder(block)
                try:
                    os.replace(src, handover)
                except OSError as exc:
                    raise FileError(f"cannot hand {src} over: {exc.strerror or exc}") from exc
            block = CodeBlock._load_raw(handover)
            self._check_holder(block)
            imported = 0
            if not self.code_block_imported(block.block_id, actor=actor):
                imported = self.import_code_block(block, actor=actor)
            block.take(len(block))
            block.save(src)
            handover.unlink()
        return imported

    def _check_holder(self, block: Any) -> None:
        if str(block.holder) != self.lg_code:
            raise ConflictError(f"block {block.block_id} is held by {block.holder}, "
                                f"not by {self.lg_code}")

    def codes_remaining(self) -> int:
        with self._b.session(write=False) as s:
            return int(s.scalar("SELECT count(*) FROM code_pool"))

    def _take_codes(self, s: Session, n: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
        if n == 0:
            return np.zeros(0, dtype=np.uint64)
        have = int(s.scalar("SELECT count(*) FROM code_pool"))
        if have < n:
            raise CodeSpaceExhaustedError(f"{n} codes needed, {have} left in the code pool")
        t = s.fetch_arrow("SELECT pos, code FROM code_pool ORDER BY pos LIMIT ?", (n,),
                          pa.schema([("pos", pa.int64()), ("code", pa.uint64())]))
        last = int(pc.max(t.column("pos")).as_py())
        s.execute("DELETE FROM code_pool WHERE pos <= ?", (last,))
        return np.asarray(t.column("code").to_numpy(), dtype=np.uint64)

    # -- bulk load -------------------------------------------------------------------------

    def load(
        self,
        residents: Any,
        households: Any = None,
        *,
        actor: Actor,
        progress: Progress | None = None,
        today: dt.date | None = None,
        now: dt.datetime | None = None,
    ) -> LoadReport:
        """Bulk-load residents (and households) in one transaction, Arrow in, no row loops.

        ``residents`` has the columns of :func:`jukicore.synth.synthesize_municipality`'s
        residents table, plus optional ``resident_code`` (uint64; drawn from the register's
        code pool when absent) and ``my_number``. Person and household ids are kept when the
        register is empty and shifted past the existing ones otherwise. Any Arrow table
        (pyarrow, or an object with the Arrow PyCapsule interface: polars, duckdb, pandas)
        is accepted.

        Every value is validated first (:mod:`jukicore.validate`; ``today`` bounds the
        dates, default: today): any bad row refuses the whole load with an
        :class:`InvalidInputError` naming every bad row and column. A load of residents
        already in the register (same resident code, or same name, date of birth, sex and
        address as a current resident) is refused with a :class:`ConflictError`: loading
        twice never registers anyone twice. A refused load changes nothing.
        """
        self._check(actor, perm.LOAD, now)
        res, households = _check_load(as_arrow_table(residents, "residents"),
                                      None if households is None else
                                      as_arrow_table(households, "households"),
                                      self.lg_code, today or dt.date.today(),
                                      (self.prefecture, self.municipality))
        n = res.num_rows
        with self._b.bulk_session() as s:
            if "resident_code" not in res.column_names:  # else: identified by their codes
                _check_not_loaded(s, res)
            pid0 = int(s.scalar("SELECT coalesce(max(person_id), 0) FROM residents"))
            hid0 = int(s.scalar("SELECT coalesce(max(household_id), 0) FROM households"))
            if "resident_code" in res.column_names:
                codes = res.column("resident_code")
                if codes.null_count:
                    raise InvalidInputError("resident_code has nulls (give every code or none)",
                                            [BadRow(int(i), "required item missing",
                                                    "resident_code") for i in np.flatnonzero(
                                                pc.is_null(codes).to_numpy(
                                                    zero_copy_only=False))])
                _check_codes_free(s, codes)
            else:
                codes = pa.array(self._take_codes(s, n))
            if "my_number" in res.column_names:
                _check_my_numbers_free(s, res.column("my_number"))
            if "residence_card_number" in res.column_names:
                _check_cards_free(s, res)
            pids = pc.add(res.column("person_id").cast(pa.int64()), pid0)
            hids = pc.add(res.column("household_id").cast(pa.int64()), hid0)
            since = res.column("resident_since").cast(pa.date32())
            addr_since = res.column("address_since").cast(pa.date32())
            cols: dict[str, Any] = {}
            for c in RESIDENT_COLUMNS:
                if c.name == "person_id":
                    cols[c.name] = pids
                elif c.name == "household_id":
                    cols[c.name] = hids
                elif c.name == "resident_code":
                    cols[c.name] = codes.cast(pa.int64())
                elif c.name == "status":
                    cols[c.name] = pa.array(np.full(n, RESIDENT, dtype=object), pa.string())
                elif c.name == "updated_on":
                    cols[c.name] = pc.max_element_wise(since, addr_since)
                elif c.name in res.column_names:
                    t = RESIDENT_SCHEMA.field(c.name).type
                    cols[c.name] = res.column(c.name).cast(
                        pa.int64() if pa.types.is_uint64(t) else t)
                else:
                    cols[c.name] = pa.nulls(n, RESIDENT_SCHEMA.field(c.name).type)
            table = pa.table(cols)
            if households is None:
                households = _households_from(res)
            hh = pa.table({
                "household_id": pc.add(households.column("household_id").cast(pa.int64()), hid0),
                "head_person_id": pc.add(households.column("head_person_id").cast(pa.int64()),
                                         pid0),
                "address": households.column("address").cast(pa.string()),
            })
            fresh = not s.query("SELECT 1 FROM residents LIMIT 1")
            if fresh:  # building indexes once after the load beats updating them row by row
                for index in INDEXES:
                    if index[1] in ("residents", "households"):
                        s.execute(f"DROP INDEX {index[0]}")
            s.ingest("residents", table, progress)
            s.ingest("households", hh)
            if fresh:
                for index in INDEXES:
                    if index[1] in ("residents", "households"):
                        s.execute(s.ddl.create_index(index))
            seq = int(s.scalar("SELECT value FROM meta WHERE key = 'outbox_seq'"))
            # every loaded record is new identity info for the center: one outbox row each,
            # numbered in person_id order. When the loaded ids are one contiguous run (checked
            # above: unique, so max - min + 1 == n), that number is the id's offset in the run
            # and no sort of the whole load is needed.
            pmin, pmax = (int(v.as_py()) for v in pc.min_max(pids).values())
            seq_expr = (f"? + (person_id - {pmin - 1})" if pmax - pmin + 1 == n
                        else "? + row_number() OVER (ORDER BY person_id)")
            change = {"seq": seq_expr, "previous_resident_code": "NULL",
                      "change_date": "resident_since", "change_reason": "'load'"}
            items = [c.name for c in IDENTITY_COLUMNS]
            s.execute(
                f"INSERT INTO outbox (lg_code, {', '.join(items)}, notification_id, recorded_at)"
                f" SELECT lg_code, {', '.join(change.get(c, c) for c in items)}, NULL, ?"
                " FROM residents WHERE person_id > ?",
                (seq, s.ts(utcnow()), pid0),
            )
            s.execute("UPDATE meta SET value = ? WHERE key = 'outbox_seq'", (str(seq + n),))
            _audit(s, actor, "register.load", self.lg_code, None,
                   detail=f"{n} residents, {hh.num_rows} households")
            # planner statistics for the new rows now: without them the per-notification
            # lookups may be planned as scans
            s.analyze("residents", "households")
        return LoadReport(n, hh.num_rows, pid0 + 1, hid0 + 1)

    # -- notifications -----------------------------------------------------------------------

    def apply(
        self,
        events: pa.Table | Sequence[Mapping[str, Any]],
        *,
        actor: Actor,
        today: dt.date | None = None,
        progress: Progress | None = None,
        now: dt.datetime | None = None,
    ) -> ApplyReport:
        """Apply a table of notifications (:data:`EVENT_SCHEMA`) in one transaction.

        Valid rows are applied with their history, audit entry and outbox rows; rejected
        rows change nothing and are listed in the report with their position and reason.
        A notification id that was applied before is skipped (counted as a duplicate).

        ``events``: any Arrow table (pyarrow, or the Arrow PyCapsule interface: polars,
        duckdb, pandas) or a list of dicts. Every value is first checked by the one
        validation (:mod:`jukicore.validate`, dates bounded by ``today``): a row with a
        bad value (a malformed or out-of-range code, a future or absurd date, a control
        character, a non-katakana reading, a postal code of another municipality ...)
        is one rejected row naming its column; an empty text is an absent value.
        """
        self.policy.precheck(actor, perm.NOTIFY)  # before the input is looked at
        today = today or dt.date.today()
        table, bad = _normalize_events(events)
        # One validation of every value (jukicore.validate), for the whole table at once:
        # a row failing it is rejected (naming its column) and never reaches its handler.
        invalid = first_per_row(sorted_rows(
            [*bad, *find_problems(table, today=today, lg_code=self.lg_code, kinds=KINDS)]))
        rows = table.to_pylist()
        # a day's rows: every digest in one call; a single row: row_digest in apply_row
        digests: list[str | None] = [None] * len(rows)
        if len(rows) > 1:
            digests = list(record_digests(table.combine_chunks().to_batches()[0]))
        codes: list[int | None] = [None] * len(rows)
        rejected: list[RejectedRow] = []
        applied = duplicates = 0
        with self.policy.session(actor, perm.NOTIFY, now=now) as s, s.pipelined():
            b = self._batch(s, actor, today)
            from jukicore.cards.follow import follow_updates, has_cards

            if has_cards(s):  # cards follow their holders' records, in this transaction
                b.updates = []
            good = [r for i, r in enumerate(rows) if i not in invalid]
            if len(good) > 1:  # a day's worth: read what the rows will look up, up front
                b.prefetch(
                    [str(r["notification_id"]) for r in good if r.get("notification_id")],
                    [int(r[c]) for r in good for c in ("resident_code", "new_head_code")
                     if r.get(c) is not None],
                    [int(r["household_id"]) for r in good if r.get("household_id") is not None],
                    [int(r["my_number"]) for r in good if r.get("my_number") is not None])
            for i, r in enumerate(rows):
                if i in invalid:
                    bad_row = invalid[i]
                    rejected.append(RejectedRow(i, r.get("notification_id"), r.get("kind"),
                                                f"{bad_row.column}: {bad_row.reason}",
                                                bad_row.column,
                                                "InvalidInputError"))
                    if progress is not None and (i + 1) % 1000 == 0:
                        progress(1000)
                    continue
                try:
                    code = self._apply_row(b, r, digests[i])
                except Rejected as rej:
                    rejected.append(RejectedRow(i, r.get("notification_id"), r.get("kind"),
                                                str(rej.error), rej.column,
                                                type(rej.error).__name__))
                else:
                    if code is None:
                        duplicates += 1
                    else:
                        applied += 1
                        codes[i] = code
                if progress is not None and (i + 1) % 1000 == 0:
                    progress(1000)
            b.flush()
            if b.updates:
                follow_updates(s, b.updates, actor=actor, today=today)
        if progress is not None and len(rows) % 1000:
            progress(len(rows) % 1000)
        return ApplyReport(applied, duplicates, tuple(rejected), pa.array(codes, pa.uint64()))

    def _apply_row(self, b: Batch, r: dict[str, Any], digest: str | None = None) -> int | None:
        return apply_row(b, r, digest)

    def _batch(self, s: Session, actor: Actor, today: dt.date) -> Batch:
        return Batch.begin(s, lg_code=self.lg_code, prefecture=self.prefecture,
                           municipality=self.municipality, actor=str(actor),
                           actor_kind=actor.kind, now=utcnow(), today=today)

    def notify(self, *, actor: Actor, today: dt.date | None = None,
               now: dt.datetime | None = None, **fields: Any) -> int | None:
        """Apply one notification; raise its error when it is rejected.

        Returns the resident code it concerns (the new code for a birth, a move-in without
        code, a code change), or None when this notification id was applied before.
        """
        report = self.apply([fields], actor=actor, today=today, now=now)
        if report.rejected:
            raise _rejection(report.rejected[0])
        value = report.resident_codes[0].as_py()
        return None if value is None else int(value)

    def apply_in(self, s: Session, rows: Sequence[Mapping[str, Any]], *, actor: Actor,
                 today: dt.date) -> list[int | None]:
        """Apply notifications in the caller's transaction ``s``, for a workflow whose
        change spans the register and its own tables (jukicore.moves: a special move-out
        and its record, a move-in and its pending confirmation).

        ``s`` must be a session of this register opened through its policy
        (``self.policy.session``) for the permission that covers the rows. Every row is
        checked as :meth:`apply` checks it; the first refused row raises its error
        (as :meth:`notify` does) and the caller's transaction, rolled back, leaves
        nothing. Returns the resident code of each row (None: applied before). The
        cards follow their holders in the same transaction, as in :meth:`apply`."""
        from jukicore.cards.follow import follow_updates, has_cards

        table, bad = _normalize_events(list(rows))
        invalid = first_per_row(sorted_rows(
            [*bad, *find_problems(table, today=today, lg_code=self.lg_code, kinds=KINDS)]))
        b = self._batch(s, actor, today)
        if has_cards(s):
            b.updates = []
        codes: list[int | None] = []
        for i, r in enumerate(table.to_pylist()):
            if i in invalid:
                bad_row = invalid[i]
                raise _rejection(RejectedRow(i, r.get("notification_id"), r.get("kind"),
                                             f"{bad_row.column}: {bad_row.reason}",
                                             bad_row.column, "InvalidInputError"))
            try:
                codes.append(self._apply_row(b, r))
            except Rejected as rej:
                raise _rejection(RejectedRow(i, r.get("notification_id"), r.get("kind"),
                                             str(rej.error), rej.column,
                                             type(rej.error).__name__)) from None
        b.flush()
        if b.updates:
            follow_updates(s, b.updates, actor=actor, today=today)
        return codes

    # -- queries ---------------------------------------------------------------------------
    #
    # Every read of personal data checks the policy (hours, quota) and writes its
    # ``register.read`` audit entries in the transaction of the read: one per record read
    # (target: its resident code), one with the count for a whole-table read.

    def residents(self, *, actor: Actor, include_removed: bool = False,
                  purpose: str | None = None, now: dt.datetime | None = None) -> pa.Table:
        """The register's records as Arrow (current residents; with 除票 on request)."""
        what = "residents incl. removed records" if include_removed else "residents"
        return self._residents(actor, include_removed, what, purpose, now)

    def _residents(self, actor: Actor, include_removed: bool, what: str,
                   purpose: str | None, now: dt.datetime | None) -> pa.Table:
        where = "" if include_removed else " WHERE status = 'resident'"
        with self.policy.session(actor, perm.READ, now=now, bulk=True) as s:
            out = s.fetch_arrow(
                f"SELECT {', '.join(RESIDENT_SCHEMA.names)} FROM residents{where}"
                " ORDER BY person_id", (), RESIDENT_SCHEMA)
            self._read_whole(s, actor, what, out.num_rows, purpose, now)
        return out

    def resident(self, resident_code: int | str, *, actor: Actor, purpose: str | None = None,
                 now: dt.datetime | None = None) -> dict[str, Any]:
        """One record: the current resident with this code, else the latest 除票 with it.

        A retired code (given up by a code change) answers the same way whether its
        holder lives or not: the holder's record (current, else the latest 除票), with
        ``via_retired_code`` naming the code asked for (None when reached through the
        record's own code). Codes in the record are zero-padded digit strings
        (``resident_code`` 11 digits, ``my_number`` 12). A malformed code is an
        :class:`InvalidInputError`; no record, :class:`NotFoundError` (the attempt is
        audited all the same).
        """
        self.policy.precheck(actor, perm.READ)
        asked = parse_resident_code(resident_code)
        code = asked
        with self.policy.session(actor, perm.READ, now=now, target=fmt_code(asked)) as s:
            cols = ", ".join(RESIDENT_SCHEMA.names)
            via: int | None = None
            seen: set[int] = set()
            while True:
                rows = s.query(f"SELECT {cols} FROM residents WHERE resident_code = ?"
                               " ORDER BY status = 'resident' DESC, person_id DESC LIMIT 1",
                               (code,))
                if rows and rows[0][RESIDENT_SCHEMA.names.index("status")] == RESIDENT:
                    break
                retired = s.query("SELECT r.resident_code FROM retired_codes c JOIN residents r"
                                  " ON r.person_id = c.person_id WHERE c.code = ?", (code,))
                if not retired or code in seen:
                    break  # not retired (a 除票, or nothing): the answer is what was found
                seen.add(code)
                via = via if via is not None else code
                code = int(retired[0][0])
            self._read_entries(s, actor, "resident record" if rows else
                               "resident record (not found)", [code], purpose)
        if not rows:
            raise NotFoundError(f"no record with resident code {fmt_code(code)}")
        record: dict[str, Any] = rows_to_arrow(rows, RESIDENT_SCHEMA).to_pylist()[0]
        record["resident_code"] = fmt_code(record["resident_code"])
        record["my_number"] = fmt_code(record["my_number"], 12)
        record["via_retired_code"] = fmt_code(via)
        return record

    def history_start(self) -> dt.date | None:
        """The first day the register's history covers: the (UTC) date of its last bulk
        load, before which loaded records have no history; None without a load."""
        with self._b.session(write=False) as s:
            at = s.scalar("SELECT max(at) FROM audit WHERE action = 'register.load'")
        if at is None:
            return None
        if isinstance(at, dt.datetime):
            return at.date()
        return dt.date.fromisoformat(str(at)[:10])

    def as_of(self, date: dt.date, *, actor: Actor, purpose: str | None = None,
              now: dt.datetime | None = None) -> pa.Table:
        """Who lived where on ``date``: the residents' records as they stood that day.

        Reconstructed from the current records and the history: for each record and item,
        the value on ``date`` is the old value of the earliest change dated after ``date``
        (voided rows aside), or the current value when there is none. The history starts
        at the register's last bulk load (:meth:`history_start`): an earlier ``date`` is an
        :class:`InvalidInputError` naming that day (loaded records carry no history of
        what they were before).
        """
        return self._as_of(date, actor, f"residents as of {date}", purpose, now)

    def _as_of(self, date: dt.date, actor: Actor, what: str, purpose: str | None,
               now: dt.datetime | None) -> pa.Table:
        self.policy.precheck(actor, perm.READ)
        if not isinstance(date, dt.date):
            raise InvalidInputError(f"as_of needs a date, not {type(date).__name__}")
        if isinstance(date, dt.datetime):
            date = date.date()
        start = self.history_start()
        if start is not None and date < start:
            raise InvalidInputError(
                f"the register's history starts at {start.isoformat()} (its bulk load): no"
                f" records as of {date.isoformat()}")
        with self.policy.session(actor, perm.READ, now=now, bulk=True) as s:
            cur = s.fetch_arrow(
                f"SELECT {', '.join(RESIDENT_SCHEMA.names)} FROM residents"
                " WHERE resident_since <= ? ORDER BY person_id", (s.d(date),), RESIDENT_SCHEMA)
            later = s.fetch_arrow(
                "SELECT id, person_id, item, old_value FROM history WHERE event_date > ?"
                " AND voided_by IS NULL ORDER BY person_id, item, event_date, id", (s.d(date),),
                pa.schema([("id", pa.int64()), ("person_id", pa.int64()), ("item", pa.string()),
                           ("old_value", pa.string())]))
            out = _rewind(cur, later)
            self._read_whole(s, actor, what, out.num_rows, purpose, now)
        return out

    def history(self, resident_code: int | str, *, actor: Actor, purpose: str | None = None,
                now: dt.datetime | None = None) -> pa.Table:
        """Every recorded change (付随情報) of the person(s) who held this resident code, in
        event-date order (then recording order); voided rows included, with ``voided_by``."""
        self.policy.precheck(actor, perm.READ)
        code = parse_resident_code(resident_code)
        with self.policy.session(actor, perm.READ, now=now, target=fmt_code(code)) as s:
            pids = [r[0] for r in s.query(
                "SELECT person_id FROM residents WHERE resident_code = ? AND status = 'resident'"
                " UNION SELECT person_id FROM history WHERE resident_code = ?"
                " UNION SELECT person_id FROM retired_codes WHERE code = ?", (code, code, code))]
            self._read_entries(s, actor, "history" if pids else "history (not found)",
                               [code], purpose)
            if pids:
                marks = ", ".join("?" * len(pids))
                out = s.fetch_arrow(
                    f"SELECT {', '.join(HISTORY_SCHEMA.names)} FROM history"
                    f" WHERE person_id IN ({marks}) ORDER BY event_date, id", pids,
                    HISTORY_SCHEMA)
        if not pids:
            raise NotFoundError(f"no record with resident code {fmt_code(code)}")
        return out

    def households(self, *, actor: Actor, as_of: dt.date | None = None,
                   purpose: str | None = None, now: dt.datetime | None = None) -> pa.Table:
        """Households (id, head, address, size) now or as of a past date."""
        if as_of is not None:
            res = self._as_of(as_of, actor, f"households as of {as_of}", purpose, now)
        else:
            res = self._residents(actor, False, "households", purpose, now)
        return _households_of(res)

    def notifications(self, *, actor: Actor, purpose: str | None = None,
                      now: dt.datetime | None = None) -> pa.Table:
        """The notification log (kind, person, code, dates, operator), in recording order."""
        with self.policy.session(actor, perm.READ, now=now, bulk=True) as s:
            out = s.fetch_arrow(
                f"SELECT {', '.join(NOTIFICATION_SCHEMA.names)} FROM notifications"
                " ORDER BY recorded_at, notification_id", (), NOTIFICATION_SCHEMA)
            self._read_whole(s, actor, "notifications", out.num_rows, purpose, now)
        return out

    def audit_log(self, *, actor: Actor, now: dt.datetime | None = None) -> pa.Table:
        """The audit log (who did what, when); reading it is itself audited."""
        with self.policy.session(actor, perm.EXPORT, now=now, bulk=True) as s:
            out = s.fetch_arrow(f"SELECT {', '.join(AUDIT_SCHEMA.names)} FROM audit ORDER BY id",
                                (), AUDIT_SCHEMA)
            self._read_whole(s, actor, "audit log", out.num_rows, None, now, perm.EXPORT)
        return out

    def outbox(self, *, actor: Actor, after_seq: int = 0,
               now: dt.datetime | None = None) -> pa.Table:
        """Identity-info changes in sequence order (for synchronization with the prefecture)."""
        with self.policy.session(actor, perm.EXPORT, now=now, bulk=True) as s:
            out = s.fetch_arrow(
                f"SELECT {', '.join(OUTBOX_SCHEMA.names)} FROM outbox WHERE seq > ? ORDER BY seq",
                (after_seq,), OUTBOX_SCHEMA)
            if out.num_rows:
                self._read_whole(s, actor, f"outbox after {after_seq}", out.num_rows,
                                 "synchronization", now, perm.EXPORT)
        return out

    def export(self, *, actor: Actor, now: dt.datetime | None = None) -> dict[str, pa.Table]:
        """The whole register (records incl. 除票, households, history) as Arrow tables."""
        hh_schema = arrow_schema("households")
        with self.policy.session(actor, perm.EXPORT, now=now, bulk=True) as s:
            out = {
                "residents": s.fetch_arrow(
                    f"SELECT {', '.join(RESIDENT_SCHEMA.names)} FROM residents ORDER BY person_id",
                    (), RESIDENT_SCHEMA),
                "households": s.fetch_arrow(
                    f"SELECT {', '.join(hh_schema.names)} FROM households ORDER BY household_id",
                    (), hh_schema),
                "history": s.fetch_arrow(
                    f"SELECT {', '.join(HISTORY_SCHEMA.names)} FROM history ORDER BY id", (),
                    HISTORY_SCHEMA),
            }
            _audit(s, actor, "register.export", self.lg_code, None,
                   detail=f"{out['residents'].num_rows} records")
        return out

    def counts(self) -> dict[str, int]:
        """Row counts (no personal data): residents, removed, households, history, ..."""
        with self._b.session(write=False) as s:
            out = {
                "residents": int(s.scalar("SELECT count(*) FROM residents WHERE status = ?",
                                          (RESIDENT,))),
                "removed": int(s.scalar("SELECT count(*) FROM residents WHERE status <> ?",
                                        (RESIDENT,))),
                "households": int(s.scalar(
                    "SELECT count(*) FROM households WHERE dissolved_on IS NULL")),
            }
            for t in ("history", "notifications", "audit", "outbox", "code_pool"):
                out[t] = int(s.scalar(f"SELECT count(*) FROM {t}"))
            return out

    def content_digest(self) -> str:
        """SHA-256 over every table's full content: equal digests mean nothing changed.

        The audit's records of access (reads, denials: :data:`ACCESS_ACTIONS`) are left
        out: they record who looked or was refused, not a change of the register."""
        access = ", ".join(f"'{a}'" for a in sorted(ACCESS_ACTIONS))
        queries = [f"SELECT {', '.join(t.names)} FROM {t.name}"
                   + (f" WHERE action NOT IN ({access})" if t.name == "audit" else "")
                   + f" ORDER BY {', '.join(t.primary_key or ('id',))}"
                   for t in (*TABLES, POLICY_TABLE)]
        with self._b.session(write=False) as s:
            return content_digest(s, queries)

    def purge_expired(self, *, actor: Actor, today: dt.date | None = None,
                      now: dt.datetime | None = None) -> int:
        """Delete removed records (除票) whose retention (150 years) has run out.

        With each record goes everything that holds the person's data: history,
        outbox entries and notification-log rows under the person's codes, and the
        dissolved households the person headed. Kept: the audit rows (with the resident
        code they targeted blanked: what was done, when, by whom) and the person's
        codes as bare retired codes (no person, no notification), so that no code is
        ever issued or moved in again. A code still held by another record of the same
        person (who came back) is not touched.
        """
        self.policy.precheck(actor, perm.PURGE)
        today = today or dt.date.today()
        try:
            cutoff = today.replace(year=today.year - RETENTION_YEARS)
        except ValueError:  # 29 February
            cutoff = today.replace(year=today.year - RETENTION_YEARS, day=28)
        with self.policy.session(actor, perm.PURGE, now=now) as s:
            where = "status = 'removed' AND removal_date < ?"
            pids = [int(r[0]) for r in s.query(f"SELECT person_id FROM residents WHERE {where}",
                                               (s.d(cutoff),))]
            for part in _chunks(pids):
                _purge_people(s, part, today)
            _audit(s, actor, "register.purge", self.lg_code, None,
                   detail=f"{len(pids)} records removed before {cutoff}")
        return len(pids)


# -- helpers -------------------------------------------------------------------------------


def _rejection(rej: RejectedRow) -> Exception:
    """The error a rejected notification raises (:meth:`Register.notify`)."""
    rows = [BadRow(rej.row, rej.reason, rej.column)]
    if rej.error == "ConflictError":
        return ConflictError("notification rejected", rows)
    where = "" if rej.column is None else f" (column {rej.column!r})"
    if rej.error == "NotFoundError":
        return NotFoundError(f"{rej.reason}{where}")
    if rej.error == "CodeSpaceExhaustedError":
        return CodeSpaceExhaustedError(f"{rej.reason}{where}")
    return InvalidInputError("notification rejected", rows)


def _chunks(values: list[int], size: int = 500) -> list[list[int]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def _purge_people(s: Session, pids: list[int], today: dt.date) -> None:
    """Delete these 除票 and every row holding their person's data (see purge_expired)."""
    marks = ", ".join("?" * len(pids))
    ids_ = tuple(pids)
    codes = {int(r[0]) for r in s.query(
        f"SELECT resident_code FROM residents WHERE person_id IN ({marks})"
        f" UNION SELECT resident_code FROM history WHERE person_id IN ({marks})"
        f" UNION SELECT code FROM retired_codes WHERE person_id IN ({marks})", ids_ * 3)}
    if codes:  # codes still held by a kept record of the same person stay as they are
        cm = ", ".join("?" * len(codes))
        cl = tuple(codes)
        kept = {int(r[0]) for r in s.query(
            f"SELECT resident_code FROM residents WHERE resident_code IN ({cm})"
            f" AND person_id NOT IN ({marks})"
            f" UNION SELECT resident_code FROM history WHERE resident_code IN ({cm})"
            f" AND person_id NOT IN ({marks})"
            f" UNION SELECT code FROM retired_codes WHERE code IN ({cm})"
            f" AND person_id NOT IN ({marks})", (*cl, *ids_) * 3)}
        codes -= kept
    current = {int(r[0]) for r in s.query(
        f"SELECT resident_code FROM residents WHERE person_id IN ({marks})", ids_)} & codes
    s.execute(f"DELETE FROM history WHERE person_id IN ({marks})", ids_)
    s.execute(f"DELETE FROM households WHERE head_person_id IN ({marks})"
              " AND dissolved_on IS NOT NULL", ids_)
    s.execute(f"DELETE FROM residents WHERE person_id IN ({marks})", ids_)
    s.execute(f"UPDATE notifications SET person_id = NULL WHERE person_id IN ({marks})", ids_)
    s.execute(f"UPDATE retired_codes SET person_id = 0, notification_id = NULL"
              f" WHERE person_id IN ({marks})", ids_)
    if not codes:
        return
    cs = sorted(codes)
    cm = ", ".join("?" * len(cs))
    s.execute(f"DELETE FROM outbox WHERE resident_code IN ({cm})"
              f" OR previous_resident_code IN ({cm})", (*cs, *cs))
    s.execute(f"DELETE FROM notifications WHERE resident_code IN ({cm})", cs)
    retired = {int(r[0]) for r in s.query(
        f"SELECT code FROM retired_codes WHERE code IN ({cm})", cs)}
    s.executemany("INSERT INTO retired_codes (code, person_id, retired_on, notification_id)"
                  " VALUES (?, 0, ?, NULL)", [(c, s.d(today)) for c in sorted(current - retired)])


def _valid_codes(codes: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, Any]:
    """Per code, whether it is a well-formed resident code (too many digits: False)."""
    return valid_codes(codes, 11)


def _has_repeats(values: np.ndarray[Any, Any]) -> bool:
    """Whether any value occurs twice (a sort: much faster than np.unique on 10^6 ints)."""
    v = np.sort(values)
    return bool(len(v) > 1 and np.any(v[1:] == v[:-1]))


def _check_codes_free(s: Session, codes: pa.ChunkedArray | pa.Array) -> None:
    """Given resident codes (already validated) are not held, retired or repeated."""
    arr = np.asarray(codes.to_numpy(), dtype=np.uint64)
    if _has_repeats(arr):
        v = np.sort(arr)
        dup = v[1:][v[1:] == v[:-1]]
        rows = np.flatnonzero(np.isin(arr, dup))
        raise InvalidInputError("resident codes repeat within the table",
                                [BadRow(int(i), "repeated resident code", "resident_code")
                                 for i in rows])
    if s.query("SELECT 1 FROM residents UNION ALL SELECT 1 FROM retired_codes"
               " UNION ALL SELECT 1 FROM code_pool LIMIT 1"):
        used = s.fetch_arrow(
            "SELECT resident_code AS code FROM residents"
            " UNION SELECT code FROM retired_codes UNION SELECT code FROM code_pool", (),
            pa.schema([("code", pa.uint64())]))
        clash = pc.is_in(pa.array(arr, pa.uint64()), value_set=used.column("code").combine_chunks())
        idx = np.flatnonzero(clash.to_numpy(zero_copy_only=False))
        if len(idx):
            raise ConflictError(
                f"{len(idx)} of {len(arr)} residents are already in the register or hold a "
                "resident code already issued, retired or never issued (in the code pool): "
                "nothing loaded",
                [BadRow(int(i), "resident code already in the register", "resident_code")
                 for i in idx])


def _check_my_numbers_free(s: Session, numbers: pa.ChunkedArray | pa.Array) -> None:
    """Given My Numbers (already validated) repeat nowhere: not within the table, not held
    by any record (current or 除票), never replaced before (a leaked number never returns)."""
    given = pc.drop_null(numbers).cast(pa.uint64())
    arr = np.asarray(given.to_numpy(), dtype=np.uint64)
    rows_of = np.flatnonzero(pc.is_valid(numbers).to_numpy(zero_copy_only=False))
    if _has_repeats(arr):
        v = np.sort(arr)
        dup = v[1:][v[1:] == v[:-1]]
        raise InvalidInputError("My Numbers repeat within the table",
                                [BadRow(int(rows_of[i]), "repeated My Number", "my_number")
                                 for i in np.flatnonzero(np.isin(arr, dup))])
    if not len(arr):
        return
    held = s.fetch_arrow("SELECT my_number FROM residents WHERE my_number IS NOT NULL", (),
                         pa.schema([("my_number", pa.uint64())])).column("my_number")
    replaced = [int(r[0]) for r in s.query(
        "SELECT old_value FROM history WHERE item = 'my_number' AND old_value IS NOT NULL")]
    used = pa.concat_arrays([held.combine_chunks(), pa.array(replaced, pa.uint64())])
    idx = np.flatnonzero(pc.is_in(pa.array(arr, pa.uint64()), value_set=used)
                         .to_numpy(zero_copy_only=False))
    if len(idx):
        raise ConflictError(
            f"{len(idx)} My Numbers are already recorded or were replaced: nothing loaded",
            [BadRow(int(rows_of[i]), "My Number already recorded or replaced", "my_number")
             for i in idx])


def _check_cards_free(s: Session, res: pa.Table) -> None:
    """Residence card (or special permanent resident certificate) numbers repeat nowhere:
    not within the table, not on a record of the register (current or 除票) unless it
    holds the same resident code (the same person)."""
    cards = res.column("residence_card_number")
    if cards.null_count == len(cards):
        return
    rows_of = np.flatnonzero(pc.is_valid(cards).to_numpy(zero_copy_only=False))
    given = pc.drop_null(cards).combine_chunks()
    values = given.to_numpy(zero_copy_only=False)
    order = np.argsort(values, kind="stable")
    same = values[order][1:] == values[order][:-1]
    if same.any():
        dup = set(values[order][1:][same])
        raise InvalidInputError("residence card numbers repeat within the table",
                                [BadRow(int(rows_of[i]), "repeated residence card number",
                                        "residence_card_number")
                                 for i in range(len(values)) if values[i] in dup])
    held = s.fetch_arrow(
        "SELECT residence_card_number, resident_code FROM residents"
        " WHERE residence_card_number IS NOT NULL", (),
        pa.schema([("residence_card_number", pa.string()), ("resident_code", pa.uint64())]))
    if not held.num_rows:
        return
    owner = dict(zip(held.column(0).to_pylist(), held.column(1).to_pylist(), strict=True))
    codes = (res.column("resident_code").to_pylist() if "resident_code" in res.column_names
             else [None] * res.num_rows)
    clash = [int(i) for i, v in zip(rows_of, values, strict=True)
             if v in owner and owner[v] != codes[int(i)]]
    if clash:
        raise ConflictError(
            f"{len(clash)} residence card numbers belong to records of the register: nothing"
            " loaded", [BadRow(i, "residence card number of another record",
                               "residence_card_number") for i in clash])


#: What identifies a person when no resident code is given (氏名, 生年月日, 性別, 住所).
_PERSON_KEY = ("family_name", "given_name", "birth_date", "sex", "address")


def _check_not_loaded(s: Session, res: pa.Table) -> None:
    """Refuse a load of people already registered: by resident code when given (see
    :func:`_check_codes_free`), otherwise by person identity (name, date of birth, sex,
    address) against the current residents."""
    if not s.query("SELECT 1 FROM residents WHERE status = 'resident' LIMIT 1"):
        return
    schema = RESIDENT_SCHEMA
    have = s.fetch_arrow(
        f"SELECT {', '.join(_PERSON_KEY)} FROM residents WHERE status = 'resident'", (),
        pa.schema([schema.field(c) for c in _PERSON_KEY]))
    mine = res.select(list(_PERSON_KEY)).append_column(
        "_row", pa.array(np.arange(res.num_rows, dtype=np.int64)))
    hit = mine.join(have.group_by(list(_PERSON_KEY)).aggregate([]), list(_PERSON_KEY),
                    join_type="inner")
    if hit.num_rows:
        rows = np.sort(hit.column("_row").to_numpy())
        raise ConflictError(
            f"{len(rows)} of {res.num_rows} residents are already in the register (same name, "
            "date of birth, sex and address as a current resident): nothing loaded",
            [BadRow(int(i), "already in the register", "family_name") for i in rows])


_HOUSEHOLD_TYPES = {"household_id": pa.int64(), "head_person_id": pa.int64(),
                    "address": pa.string()}


def _check_load(res: pa.Table, households: pa.Table | None, lg_code: str,
                today: dt.date, names: tuple[str, str] | None = None,
                ) -> tuple[pa.Table, pa.Table | None]:
    """The residents (and households) converted to the register's types and validated
    (:mod:`jukicore.validate`); raises :class:`InvalidInputError` naming every bad row."""
    missing = [c for c in _LOAD_REQUIRED if c not in res.column_names]
    if missing:
        raise InvalidInputError(f"residents table lacks columns: {', '.join(missing)}")
    bad: list[BadRow] = []
    cols: dict[str, pa.ChunkedArray] = {}
    for field in RESIDENT_SCHEMA:
        if field.name in res.column_names:
            col, b = coerce_column(res.column(field.name), field.type, field.name)
            if field.name not in _LOAD_REQUIRED and pa.types.is_string(field.type):
                col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
            cols[field.name] = col
            bad += b
    res = pa.table(cols)
    unreadable = {(r.row, r.column) for r in bad}  # null now: not "missing" as well
    bad += [r for r in find_problems(res, today=today, lg_code=lg_code, required=_LOAD_REQUIRED)
            if (r.row, r.column) not in unreadable]
    if any(c in res.column_names for c in RECORD_ITEMS):  # the items' rules, as of today
        bad += [r for r in record_item_problems(res, today) if (r.row, r.column) not in unreadable]
    if names is not None:  # the register's own prefecture and municipality
        for column, name in zip(("prefecture", "municipality"), names, strict=True):
            other = pc.fill_null(pc.not_equal(res.column(column), name), False)
            bad += [BadRow(int(i), f"not this register's {column} ({name})", column)
                    for i in np.flatnonzero(other.to_numpy(zero_copy_only=False))]
    if bad:
        raise InvalidInputError("residents table has invalid values", sorted_rows(bad))
    pids = res.column("person_id").to_numpy()
    if _has_repeats(pids):
        v = np.sort(pids)
        dup = v[1:][v[1:] == v[:-1]]
        raise InvalidInputError("person_id repeats within the table",
                                [BadRow(int(i), "repeated person_id", "person_id")
                                 for i in np.flatnonzero(np.isin(pids, dup))])
    # a household has exactly one head
    is_head = pc.equal(res.column("relationship"), HEAD)
    per = pa.table({"h": res.column("household_id"), "head": is_head.cast(pa.int32())}) \
        .group_by("h").aggregate([("head", "sum")])
    wrong_hh = pc.filter(per.column("h"), pc.not_equal(per.column("head_sum"), 1))
    if len(wrong_hh):
        members = np.flatnonzero(pc.is_in(res.column("household_id"), value_set=wrong_hh)
                                 .to_numpy(zero_copy_only=False))
        raise InvalidInputError(
            f"{len(wrong_hh)} households do not have exactly one head (世帯主), e.g. "
            f"household {wrong_hh[0].as_py()}",
            [BadRow(int(i), "the household does not have exactly one head (世帯主)",
                    "relationship") for i in members])
    if households is not None:
        lacking = [c for c in _HOUSEHOLD_TYPES if c not in households.column_names]
        if lacking:
            raise InvalidInputError(f"households table lacks columns: {', '.join(lacking)}")
        hcols: dict[str, pa.ChunkedArray] = {}
        hbad: list[BadRow] = []
        for name, typ in _HOUSEHOLD_TYPES.items():
            col, b = coerce_column(households.column(name), typ, name)
            hcols[name] = col
            hbad += b
        households = pa.table(hcols)
        hbad += find_problems(households, today=today, required=tuple(_HOUSEHOLD_TYPES))
        if hbad:
            raise InvalidInputError("households table has invalid values", sorted_rows(hbad))
        heads = pc.filter(res.column("person_id"), is_head).cast(pa.int64())
        declared = households.column("head_person_id")
        wrong = np.flatnonzero(pc.invert(pc.is_in(declared, value_set=heads.combine_chunks()))
                               .to_numpy(zero_copy_only=False))
        if len(wrong):
            raise InvalidInputError(
                "households name a head whose relationship is not 世帯主 (rows of the"
                " households table)",
                [BadRow(int(i), "not a head (世帯主)", "head_person_id") for i in wrong])
    return res, households


def _households_from(res: pa.Table) -> pa.Table:
    heads = res.filter(pc.equal(res.column("relationship"), HEAD))
    return pa.table({"household_id": heads.column("household_id"),
                     "head_person_id": heads.column("person_id"),
                     "address": heads.column("address")})


def _households_of(res: pa.Table) -> pa.Table:
    sizes = res.group_by("household_id").aggregate([("person_id", "count")])
    heads = res.filter(pc.equal(res.column("relationship"), HEAD)).select(
        ["household_id", "person_id", "resident_code", "address"])
    j = sizes.join(heads, "household_id", join_type="left outer").sort_by("household_id")
    return pa.Table.from_arrays(
        [j.column("household_id"), j.column("person_id"), j.column("resident_code"),
         j.column("address"), j.column("person_id_count").cast(pa.int32())],
        schema=HOUSEHOLD_SCHEMA)


def _rewind(cur: pa.Table, later: pa.Table) -> pa.Table:
    """Undo, on ``cur``, every change in ``later`` (history rows dated after the day)."""
    if later.num_rows:
        # earliest later change per (person, item): rows come sorted, take the first of each run
        pid = later.column("person_id").to_numpy()
        item = later.column("item").to_numpy(zero_copy_only=False)
        first = np.ones(len(pid), dtype=bool)
        first[1:] = (pid[1:] != pid[:-1]) | (item[1:] != item[:-1])
        firsts = later.filter(pa.array(first))
        cols = {}
        for name in RESIDENT_SCHEMA.names:
            cols[name] = cur.column(name)
        for name in TRACKED_ITEMS:
            sel = firsts.filter(pc.equal(firsts.column("item"), name))
            if not sel.num_rows:
                continue
            pos = pc.index_in(cur.column("person_id"), value_set=sel.column("person_id"))
            hit = pc.is_valid(pos)
            old = pc.take(sel.column("old_value"), pc.fill_null(pos, 0))
            typ = RESIDENT_SCHEMA.field(name).type
            old_typed = old.cast(pa.int64()).cast(typ) if pa.types.is_integer(typ) else \
                old.cast(typ)
            cols[name] = pc.if_else(hit, old_typed, cur.column(name))
        cur = pa.Table.from_arrays([cols[n] for n in RESIDENT_SCHEMA.names],
                                   schema=RESIDENT_SCHEMA)
    return cur.filter(pc.equal(cur.column("status"), RESIDENT))
