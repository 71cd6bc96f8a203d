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
  acknowledged) applies only its unseen suffix;
* a batch whose entries applied before differ from those in the history (the same numbers
  with other content: a municipality restored from a backup that sends new work
  under numbers it had used before the loss) is refused with a
  :class:`~jukicore.errors.ConflictError` naming the entries (docs/backup.md).

Refusals change nothing, and nothing an entry says refuses its batch. Each code's
current record follows the municipality that holds it (docs/sync.md, "Who holds a
record"): the holder's entries apply in its order, a move-in elsewhere takes the record
over, a code change retires the old code for good; a former holder's late entries are
superseded (history only), and an entry breaking a rule is quarantined (history,
:meth:`IdentityStore.quarantined`, audit) while the batch is applied and acknowledged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore import audit
from jukicore.access.actors import (
    ID_APPLY,
    ID_EXPORT,
    ID_READ,
    ID_RECEIVE_CODES,
    ID_REVIEW,
    Actor,
)
from jukicore.access.policy import Gate, read_detail
from jukicore.access.policy import migration_statements as policy_migration
from jukicore.codes import CodeBlock
from jukicore.errors import (
    BadRow,
    ConflictError,
    InvalidInputError,
    JukiError,
    PacketSequenceError,
)
from jukicore.identity import provide
from jukicore.identity.index import TOUCHED_FROM, SideReaders, StoreIndex
from jukicore.identity.items import IDENTITY_COLUMNS, IDENTITY_SCHEMA
from jukicore.identity.provide import ConfirmRequest, FourItems
from jukicore.identity.purposes import Purpose
from jukicore.identity.purposes import seed as seed_purposes
from jukicore.network.crypto import check_path_id
from jukicore.register.events import KINDS as EVENT_KINDS
from jukicore.store import (
    Backend,
    Column,
    Ddl,
    Index,
    Migration,
    Session,
    StoreKind,
    Table,
    content_digest,
    create_store,
    open_store,
    rows_to_arrow,
    utcnow,
)
from jukicore.validate import parse_resident_code

__all__ = [
    "CHANGE_REASONS",
    "IDENTITY_COLUMNS",
    "IDENTITY_SCHEMA",
    "ApplyResult",
    "IdentityStore",
    "create_identity_store",
    "open_identity_store",
]

KINDS = ("prefecture", "center")

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


def _v1(ddl: Ddl) -> list[str]:
    # the staging table is emptied in the transaction that fills it: a scratch table
    return [*(ddl.create_table(t, clustered=t is _CURRENT, scratch=t is _STAGING)
              for t in _TABLES), *(ddl.create_index(i) for i in _INDEXES)]


def _v2(ddl: Ddl) -> list[str]:
    # The history's key leads with the code and replaces the code index; a code's history
    # also holds the change that gave it up (previous_resident_code). The current info is
    # kept in arrival order with a unique index on the code where the database clusters
    # tables on their key (SQLite): a batch of codes at random then appends rows and
    # touches only the small index. SQLite stages batches in temporary tables from now on.
    previous = ddl.create_index(Index("identity_history_previous", "identity_history",
                                      "previous_resident_code", False,
                                      "previous_resident_code IS NOT NULL"))
    return [*ddl.rekey(_HISTORY, drop_indexes=("identity_history_code",)), previous,
            *ddl.arrival_order(_CURRENT, "identity_code"),
            *ddl.drop_scratch_table(_STAGING.name)]


#: Codes given up by a code change: retired for good, never current again.
_RETIRED = Table(
    "identity_retired",
    (Column("resident_code", "int", False), Column("lg_code", "text", False),
     Column("retired_on", "date", False), Column("new_code", "int", False),
     Column("seq", "int", False), Column("packet_id", "text", False)),
    ("resident_code",),
)
#: Entries taken into the history (and acknowledged) but kept out of the current info
#: because they break a rule; ``problem`` says which.
_QUARANTINE = Table(
    "identity_quarantine",
    (Column("lg_code", "text", False), Column("seq", "int", False),
     Column("resident_code", "int", False), Column("problem", "text", False),
     Column("packet_id", "text", False)),
    ("lg_code", "seq"),
)
#: Entries whose values fail the one validation (jukicore.validate), set aside by the
#: synchronization instead of refusing the whole packet: never in the history or the
#: current info; ``entry`` is the entry as JSON (undecodable bytes replaced by U+FFFD).
_REJECTED = Table(
    "identity_rejected",
    (Column("lg_code", "text", False), Column("seq", "int", False),
     Column("packet_id", "text", False), Column("problem", "text", False),
     Column("entry", "text", False)),
    ("lg_code", "seq"),
)
#: Code blocks a prefecture received from the center (the block file is the working copy
#: that splits consume; this is the record that the block arrived).
_BLOCKS = Table(
    "code_blocks_received",
    (Column("block_id", "text", False), Column("holder", "text", False),
     Column("parent_id", "text"), Column("codes", "int", False),
     Column("digest", "text", False), Column("sender", "text", False),
     Column("received_at", "ts", False)),
    ("block_id",),
)
#: A batch staged with its decisions: ``final`` marks the entry that becomes its code's
#: current record, with the record's ``held_since``.
_DECIDED = (Column("final", "small", False), Column("held_since", "date"))
_BATCH = replace(_STAGING, columns=(*_STAGING.columns, *_DECIDED))
#: Change reasons that give a municipality the record of a code (it holds it from then).
_TAKING = frozenset({"birth", "load", "move_in", "code_change"})
#: Reasons that close a record (status removed); the two that a former holder may still
#: send after another municipality took the record (planned dates can lie after the move).
_REMOVING = frozenset({"death", "move_out", "ex_officio_removal", "move_out_correction"})
_CLOSING = frozenset({"move_out", "move_out_correction"})
#: Every change reason a municipality may send: the notification kinds, the initial load,
#: and the old municipality's correction of a move-out date.
CHANGE_REASONS: frozenset[str] = frozenset({*EVENT_KINDS, "load", "move_out_correction"})


def _v3(ddl: Ddl) -> list[str]:
    # Who holds a record since when; retired codes, quarantined entries and received code
    # blocks as tables. Codes retired by the history's code changes are recorded (the first
    # change of each), and a current row that a late entry revived for such a code goes.
    reasons = ", ".join(f"'{r}'" for r in sorted(_TAKING))
    stmts = [
        ddl.add_column("identity", Column("held_since", "date")),
        "UPDATE identity SET held_since = COALESCE((SELECT max(h.change_date) FROM"
        " identity_history h WHERE h.resident_code = identity.resident_code AND h.lg_code ="
        f" identity.lg_code AND h.change_reason IN ({reasons})), change_date)",
        ddl.create_table(_RETIRED),
        ddl.create_table(_QUARANTINE),
        ddl.create_table(_REJECTED),
        ddl.create_table(_BLOCKS),
        "INSERT INTO identity_retired (resident_code, lg_code, retired_on, new_code, seq,"
        " packet_id) SELECT previous_resident_code, lg_code, change_date, resident_code, seq,"
        " packet_id FROM (SELECT h.*, row_number() OVER (PARTITION BY previous_resident_code"
        " ORDER BY change_date, lg_code, seq) AS rn FROM identity_history h WHERE"
        " previous_resident_code IS NOT NULL) AS t WHERE rn = 1",
        "DELETE FROM identity WHERE resident_code IN (SELECT resident_code FROM"
        " identity_retired)",
    ]
    return [*stmts, *ddl.add_scratch_columns(_STAGING.name, _DECIDED)]


#: The codes whose current info each packet changed, by the packet's number in the order
#: applied (``packets_applied.mark``): what the lookup index (jukicore.identity.index)
#: takes in to be as current as the store.
_TOUCHED = Table("identity_touched", (Column("mark", "int", False),
                                      Column("resident_code", "int", False)),
                 ("mark", "resident_code"))


def _v9(ddl: Ddl) -> list[str]:
    # which apply each packet was (its number: the index's mark of how current it is)
    from jukicore.identity.purposes import migration_statements

    return [ddl.add_column("packets_applied", Column("mark", "int")),
            ddl.create_table(_TOUCHED),
            "UPDATE packets_applied SET mark = (SELECT count(*) FROM packets_applied p2"
            " WHERE p2.applied_at < packets_applied.applied_at OR (p2.applied_at ="
            " packets_applied.applied_at AND p2.packet_id <= packets_applied.packet_id))",
            *migration_statements(ddl)]


def _v7(ddl: Ddl) -> list[str]:
    from jukicore.access.operators import migration_statements

    return migration_statements(ddl)


#: Every schema version of the identity store, in order. Append; never edit a published step.
_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "identity store: current info, history, peers, packets applied, audit", _v1),
    Migration(2, "history keyed by code; SQLite current info in arrival order", _v2),
    Migration(3, "record holders, retired codes, quarantined and rejected entries, received"
                 " code blocks",
              _v3),
    # (the register's bulk write lock once needed a meta row named 'lg_code')
    Migration(4, "the node id under its own name in meta",
              lambda ddl: ["UPDATE meta SET key = 'node_id' WHERE key = 'lg_code'"]),
    Migration(5, "the audit table of every store (jukicore.audit): who acted as what, and"
                 " the notification",
              lambda ddl: [ddl.add_column("audit", c) for c in audit.LATER_COLUMNS]),
    Migration(6, "a tamper-evident audit log: entries numbered (seq) as leaves of a Merkle"
                 " tree, its state, signed checkpoints (jukicore.audit.chain)",
              audit.chain.migration_v6),
    Migration(7, "operator accounts (jukicore.access.operators)", _v7),
    Migration(8, "the access policy's configuration (working hours, read quotas) and the"
                 " audit's index by actor, action and time", policy_migration),
    Migration(9, "legal purposes of agencies, provision records, packets numbered in the"
                 " order applied (the lookup index's mark)", _v9),
)
SCHEMA_VERSION = _MIGRATIONS[-1].version
#: Page size of a new SQLite identity store. Its B-trees take rows at random code
#: positions; larger pages mean fewer page splits and a shallower tree (measured: a
#: 6M-record load about a quarter faster than at SQLite's default 4 KiB).
SQLITE_PAGE_SIZE = 16384


#: The identity store as a kind of store (jukicore.store); its version table has no
#: description column.
IDENTITY_STORE = StoreKind("identity store", "identity_schema_version", _MIGRATIONS,
                           described=False, sqlite_page_size=SQLITE_PAGE_SIZE)


def create_identity_store(target: str | Path, *, node_id: str, kind: str) -> IdentityStore:
    """Create an empty identity store for a prefecture or the center."""
    if kind not in KINDS:
        raise InvalidInputError(f"an identity store belongs to one of {KINDS}, not {kind!r}")
    def init(s: Session) -> None:
        _audit(s, node_id, "identity.init", node_id, kind)
        seed_purposes(s, kind)

    backend = create_store(target, IDENTITY_STORE, [("node_id", node_id), ("kind", kind)],
                           init)
    return IdentityStore(backend)


def open_identity_store(target: str | Path) -> IdentityStore:
    """Open an identity store, migrating its schema to this version if older."""
    return IdentityStore(open_store(target, IDENTITY_STORE))


def _audit(s: Session, actor: Actor | str, action: str, target: str | None,
           detail: str | None) -> None:
    audit.write(s, actor, action, target, detail)


class ApplyResult:
    """What one batch did: entries taken in (``applied``: into the history, acknowledged),
    those skipped as applied before, and of those taken in the ones kept out of the current
    info: ``superseded`` (a former holder's late entries) and ``quarantined`` (breaking a
    rule: :meth:`IdentityStore.quarantined` lists them); ``rejected``: entries with invalid
    values set aside (``set_aside_invalid``; :meth:`IdentityStore.rejected` lists them)."""

    __slots__ = ("applied", "last_seq", "quarantined", "rejected", "sender", "skipped",
                 "superseded")

    def __init__(self, sender: str, applied: int, skipped: int, last_seq: int, *,
                 quarantined: int = 0, superseded: int = 0, rejected: int = 0) -> None:
        self.sender, self.applied, self.skipped, self.last_seq = sender, applied, skipped, last_seq
        self.quarantined, self.superseded, self.rejected = quarantined, superseded, rejected

    def as_dict(self) -> dict[str, Any]:
        return {"sender": self.sender, "applied": self.applied, "skipped": self.skipped,
                "last_seq": self.last_seq, "superseded": self.superseded,
                "quarantined": self.quarantined, "rejected": self.rejected}


class IdentityStore:
    """A prefecture's or the center's identity store (SQLite path or PostgreSQL URI)."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        with backend.session(write=False) as s:
            meta = dict(s.query("SELECT key, value FROM meta"))
        self.node_id: str = meta["node_id"]
        self.kind: str = meta["kind"]
        #: the one policy at this store (jukicore.access.policy): tier = kind
        self.policy = Gate(backend, self.kind, self.node_id)
        self._index: StoreIndex | None = None

    def _actor(self, actor: Actor | str) -> Actor:
        """An :class:`Actor`; a node id (text) is that node acting by its verified id (a
        node acts on its own store only: another id is refused)."""
        if isinstance(actor, str) and actor:
            return Actor("node", actor, None, frozenset({"server"}), actor)
        return actor  # type: ignore[return-value]  # anything else: refused by the policy

    def policy_settings(self) -> dict[str, str]:
        """The policy's settings in force here (working hours and read quotas per role)."""
        with self._b.session(write=False) as s:
            return self.policy.settings(s)

    def set_policy(self, key: str, value: str, *, actor: Actor,
                   now: dt.datetime | None = None) -> str:
        """Change one setting of the policy (admins only, audited)."""
        return self.policy.configure(self._actor(actor), key, value, now=now)

    def _read(self, s: Session, actor: Actor, what: str, n: int | None,
              codes: list[int] | None, purpose: str | None, now: dt.datetime | None,
              permission: str = ID_READ) -> None:
        """The ``identity.read`` entries of a read: one per code read, or one with the
        count for a whole-table read (within the quota)."""
        if codes is not None:
            detail = read_detail(what, None, purpose)
            audit.write_many(s, [audit.entry(s, actor, "identity.read", f"{c:011d}", detail)
                                 for c in codes])
        else:
            self.policy.charge(s, actor, permission, n or 0)
            audit.write(s, actor, "identity.read", None, read_detail(what, n or 0, purpose))

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
                      changes: Any, actor: Actor | str, set_aside_invalid: bool = False,
                      now: dt.datetime | None = None) -> ApplyResult:
        """Apply a batch of changes from municipality ``sender``, exactly once.

        ``changes`` has :data:`IDENTITY_SCHEMA`'s columns with ``seq`` running
        ``first_seq..last_seq`` without gaps. See the module docs for the
        refusals; each raises and changes nothing.

        An entry with an invalid value refuses the batch (:class:`InvalidInputError`
        naming every bad row and column), unless ``set_aside_invalid``: then such entries
        are recorded as rejected (:meth:`rejected`) and the others applied, so that one bad
        entry cannot block a municipality's synchronization night after night (the
        synchronization applies packets so). A batch with missing or extra columns, or
        whose ``seq`` does not run ``first_seq..last_seq``, is refused either way.
        """
        who = self._actor(actor)
        self.policy.precheck(who, ID_APPLY)  # before the input is looked at
        check_path_id(packet_id, "packet id")
        changes, invalid = _validated(changes, first_seq, last_seq, sender,
                                      set_aside=set_aside_invalid)
        with self.policy.session(who, ID_APPLY, now=now, bulk=True) as s:
            if s.query("SELECT 1 FROM packets_applied WHERE packet_id = ?", (packet_id,)):
                raise PacketSequenceError(f"packet {packet_id} was already applied")
            v = s.scalar("SELECT last_seq FROM peers WHERE lg_code = ?", (sender,))
            done = 0 if v is None else int(v)
            if first_seq <= done:
                _check_same(s, sender, changes, first_seq, min(last_seq, done))
            if last_seq <= done:
                raise PacketSequenceError(
                    f"replayed packet: entries {first_seq}..{last_seq} from {sender} were "
                    f"already applied (up to {done})")
            if first_seq > done + 1:
                raise PacketSequenceError(
                    f"gap: the next entry expected from {sender} is {done + 1}, the packet "
                    f"starts at {first_seq}")
            fresh = changes.filter(pc.greater(changes.column("seq"), done))
            invalid = [r for r in invalid if r[0] > done]
            if invalid:
                s.executemany("INSERT INTO identity_rejected (lg_code, seq, packet_id, problem,"
                              " entry) VALUES (?, ?, ?, ?, ?)",
                              [(sender, seq, packet_id, problem, entry)
                               for seq, problem, entry in invalid])
                _audit(s, who, "identity.reject", sender,
                       f"packet {packet_id}: {len(invalid)} entries with invalid values set "
                       f"aside (first: #{invalid[0][0]}: {invalid[0][1]})")
            # Staged in code order: the history's code index and the current info's code
            # index then take the batch in one sweep, page after page, not at random.
            fresh = fresh.sort_by([("resident_code", "ascending"), ("seq", "ascending")])
            outcome = _Outcome()
            staging = None
            if fresh.num_rows == 0:
                pass  # every new entry was set aside
            elif _new_codes_only(fresh):
                staging = s.stage(_BATCH, _batch(fresh, sender, packet_id,
                                                  np.ones(fresh.num_rows, dtype=bool),
                                                  fresh.column("change_date")))
                if not _insert_new_codes(s, staging):
                    s.unstage(staging)
                    staging = None
            if staging is None and fresh.num_rows:
                plan = _plan(s, fresh, sender, packet_id)
                outcome = plan.outcome
                staging = s.stage(_BATCH, _batch(fresh, sender, packet_id, plan.final,
                                                  plan.since))
                _carry_out(s, staging, plan, sender, packet_id, who)
            cols = ", ".join(c.name for c in IDENTITY_COLUMNS)
            # Every entry goes into the history (the staging table is read in code order),
            # whether it became current, was superseded or was quarantined.
            mark = int(s.scalar("SELECT coalesce(max(mark), 0) + 1 FROM packets_applied"))
            if staging is not None:
                s.execute(f"INSERT INTO identity_history (lg_code, {cols}, packet_id)"
                          f" SELECT lg_code, {cols}, packet_id FROM {staging}")
                # the codes whose current info this packet changed (the lookup index's delta)
                s.execute("INSERT INTO identity_touched (mark, resident_code) SELECT ?,"
                          f" resident_code FROM {staging} WHERE final = 1 UNION SELECT ?,"
                          f" previous_resident_code FROM {staging} WHERE final = 1 AND"
                          " previous_resident_code IS NOT NULL", (mark, mark))
                s.unstage(staging)
            if v is None:
                s.execute("INSERT INTO peers (lg_code, last_seq) VALUES (?, ?)",
                          (sender, last_seq))
            else:
                s.execute("UPDATE peers SET last_seq = ? WHERE lg_code = ?", (last_seq, sender))
            s.execute("INSERT INTO packets_applied (packet_id, lg_code, first_seq, last_seq,"
                      " applied, applied_at, mark) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (packet_id, sender, first_seq, last_seq, fresh.num_rows,
                       s.ts(utcnow()), mark))
            _audit(s, who, "identity.apply", sender,
                   f"packet {packet_id} entries {first_seq}..{last_seq}, "
                   f"{fresh.num_rows} applied, {outcome.superseded} superseded, "
                   f"{len(outcome.quarantined)} quarantined, {len(invalid)} rejected")
        return ApplyResult(sender, fresh.num_rows,
                           last_seq - first_seq + 1 - fresh.num_rows - len(invalid), last_seq,
                           quarantined=len(outcome.quarantined),
                           superseded=outcome.superseded, rejected=len(invalid))

    # ------------------------------------------------------------------ queries

    def current(self, *, actor: Actor | str, purpose: str | None = None,
                now: dt.datetime | None = None) -> pa.Table:
        """Every resident code's current identity info (``identity.read``, audited)."""
        who = self._actor(actor)
        cols = [c.name for c in _CURRENT.columns]
        with self.policy.session(who, ID_READ, now=now, bulk=True) as s:
            out = s.fetch_arrow(f"SELECT {', '.join(cols)} FROM identity ORDER BY resident_code",
                                (), _current_schema())
            self._read(s, who, "current identity info", out.num_rows, None, purpose, now)
        return out

    def history(self, resident_code: int, *, actor: Actor | str, purpose: str | None = None,
                now: dt.datetime | None = None) -> pa.Table:
        """Every change received for a code (``identity.read``, audited)."""
        who = self._actor(actor)
        self.policy.precheck(who, ID_READ)
        code = parse_resident_code(resident_code)
        cols = ["lg_code", *(c.name for c in IDENTITY_COLUMNS)]
        schema = pa.schema([pa.field("lg_code", pa.string()), *IDENTITY_SCHEMA])
        with self.policy.session(who, ID_READ, now=now, target=f"{code:011d}") as s:
            out = s.fetch_arrow(
                f"SELECT {', '.join(cols)} FROM identity_history WHERE resident_code = ?"
                " OR previous_resident_code = ? ORDER BY change_date, lg_code, seq",
                (code, code), schema)
            self._read(s, who, "identity history", None, [code], purpose, now)
        return out

    def rejected(self, sender: str | None = None, *, actor: Actor | str,
                 now: dt.datetime | None = None) -> pa.Table:
        """Entries set aside because a value failed the validation (``set_aside_invalid``),
        for operators: sender, ``seq``, packet, the ``problem`` and the ``entry`` as JSON;
        in sender and sequence order, of one ``sender`` if given."""
        schema = pa.schema([pa.field("lg_code", pa.string()), pa.field("seq", pa.int64()),
                            pa.field("packet_id", pa.string()), pa.field("problem", pa.string()),
                            pa.field("entry", pa.string())])
        who = self._actor(actor)
        where, params = ("", ()) if sender is None else (" WHERE lg_code = ?", (sender,))
        with self.policy.session(who, ID_REVIEW, now=now) as s:
            rows = s.query(f"SELECT lg_code, seq, packet_id, problem, entry FROM"
                           f" identity_rejected{where} ORDER BY lg_code, seq", params)
            if rows:
                self._read(s, who, "rejected entries", len(rows), None, "review", now,
                           ID_REVIEW)
        return pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows],
                                    schema=schema)

    def quarantined(self, sender: str | None = None, *, actor: Actor | str,
                    now: dt.datetime | None = None) -> pa.Table:
        """Entries kept out of the current info because they break a rule, for operators:
        each entry as received (:data:`IDENTITY_SCHEMA` and ``lg_code``), the packet it came
        in and the ``problem``; in sender and sequence order, of one ``sender`` if given."""
        cols = ", ".join(f"h.{c.name}" for c in IDENTITY_COLUMNS)
        schema = pa.schema([pa.field("lg_code", pa.string()), *IDENTITY_SCHEMA,
                            pa.field("packet_id", pa.string()), pa.field("problem", pa.string())])
        who = self._actor(actor)
        where, params = ("", ()) if sender is None else (" WHERE q.lg_code = ?", (sender,))
        with self.policy.session(who, ID_REVIEW, now=now) as s:
            rows = s.query(
                f"SELECT q.lg_code, {cols}, q.packet_id, q.problem FROM identity_quarantine q"
                " JOIN identity_history h ON h.resident_code = q.resident_code AND h.lg_code ="
                f" q.lg_code AND h.seq = q.seq{where} ORDER BY q.lg_code, q.seq", params)
            rows = [tuple(s.pd(v) if n in ("birth_date", "change_date") else v
                          for n, v in zip(schema.names, r, strict=True)) for r in rows]
            if rows:
                self._read(s, who, "quarantined entries", len(rows), None, "review", now,
                           ID_REVIEW)
        return rows_to_arrow(rows, schema)

    def retired_codes(self, *, actor: Actor | str,
                      now: dt.datetime | None = None) -> pa.Table:
        """Resident codes given up by a code change: the code, the municipality that
        retired it, on which date, the code that replaced it, and the entry that did it."""
        schema = pa.schema([
            pa.field("resident_code", pa.uint64()), pa.field("lg_code", pa.string()),
            pa.field("retired_on", pa.date32()), pa.field("new_code", pa.uint64()),
            pa.field("seq", pa.int64()), pa.field("packet_id", pa.string())])
        with self.policy.session(self._actor(actor), ID_EXPORT, now=now, write=False) as s:
            rows = [(c, lg, s.pd(on), new, seq, pid) for c, lg, on, new, seq, pid in s.query(
                "SELECT resident_code, lg_code, retired_on, new_code, seq, packet_id"
                " FROM identity_retired ORDER BY resident_code")]
        return rows_to_arrow(rows, schema)

    # ------------------------------------------------------------------ agencies

    def confirm(self, *, agency: str, purpose: str, actor: Actor | str, code: Any = None,
                four: FourItems | None = None, as_of: dt.date | None = None,
                embargo_until: dt.date | None = None, request_id: str | None = None,
                now: dt.datetime | None = None) -> pa.Table:
        """Answer an agency's request for a legal purpose, by resident code or by the four
        items, with its provision record (:func:`jukicore.identity.provide.confirm`)."""
        return provide.confirm(self, agency=agency, purpose=purpose, actor=actor, code=code,
                               four=four, as_of=as_of, embargo_until=embargo_until,
                               request_id=request_id, now=now)

    def confirm_many(self, requests: Iterable[ConfirmRequest], *,
                     now: dt.datetime | None = None, as_rows: bool = False
                     ) -> list[pa.Table | dict[str, Any] | JukiError]:
        """Answer many requests by resident code in one transaction, each answer or error
        as :meth:`confirm` gives it (:func:`jukicore.identity.provide.confirm_many`;
        ``as_rows``: each answer as its row's dict)."""
        return provide.confirm_many(self, requests, now=now, as_rows=as_rows)

    def changes_since(self, *, agency: str, purpose: str, actor: Actor | str, code: Any,
                      since: dt.date, request_id: str | None = None,
                      now: dt.datetime | None = None) -> pa.Table:
        """What changed in a code's record after ``since``
        (:func:`jukicore.identity.provide.changes_since`)."""
        return provide.changes_since(self, agency=agency, purpose=purpose, actor=actor,
                                     code=code, since=since, request_id=request_id, now=now)

    def disclose(self, code: Any, *, actor: Actor | str,
                 now: dt.datetime | None = None) -> pa.Table:
        """Who received a resident's data, when and why
        (:func:`jukicore.identity.provide.disclose`)."""
        return provide.disclose(self, code, actor=actor, now=now)

    def purposes(self, *, now: dt.datetime | None = None) -> list[Purpose]:
        """The legal purposes in force here."""
        return provide.list_purposes(self, now=now)

    def set_purpose(self, purpose: Purpose, *, actor: Actor | str,
                    now: dt.datetime | None = None) -> Purpose:
        """Put a legal purpose in force as its next version (admins, audited)."""
        return provide.set_purpose(self, purpose, actor=actor, now=now)

    def close_purpose(self, purpose: str, *, actor: Actor | str,
                      now: dt.datetime | None = None) -> None:
        """Take a legal purpose out of force (admins, audited)."""
        provide.close_purpose(self, purpose, actor=actor, now=now)

    def verify(self, table: Any, *, agency: str, purpose: str, actor: Actor | str,
               since: dt.date | None = None, progress: Any = None,
               request_id: str | None = None, now: dt.datetime | None = None) -> pa.Table:
        """Answer every row of an agency's table, each with its provision record
        (:func:`jukicore.identity.verify.verify`)."""
        from jukicore.identity.verify import verify

        return verify(self, table, agency=agency, purpose=purpose, actor=actor, since=since,
                      progress=progress, request_id=request_id, now=now)

    # ------------------------------------------------------------------ the index

    def use_index(self, path: str | Path | None) -> None:
        """Keep the lookup index in the file ``path`` (memory-mapped; built there when
        missing or unusable). By default a SQLite store keeps it beside its database file
        (``<file>.index``) and a PostgreSQL store in memory only."""
        self._index = StoreIndex(self.node_id, path)

    def current_index(self, s: Session, side: SideReaders | None = None) -> Any:
        """The lookup index (``IdentityIndexCore``), as current as the store in ``s``;
        ``side``: the backend's side readers, only while ``s`` is a bulk session."""
        if self._index is None:
            self._index = StoreIndex(self.node_id, self._b.beside(".index"))
        return self._index.current(s, side)

    def warm_index(self) -> None:
        """Bring the lookup index up to the store in a read transaction of its own (a
        build or a long catch-up then never holds a request's write transaction; the bulk
        read path: SQLite's snapshot through ADBC as Arrow, not row by row, split between
        this session and a side reader that sees the same state)."""
        with self._b.bulk_session(write=False) as s:
            self.current_index(s, self._b.side_readers)

    def save_index(self) -> int:
        """Bring the lookup index up to the store and write its file; its mark. The codes
        touched by the packets it now holds are no longer kept (``identity_touched``): an
        index further behind first reopens this file (see :mod:`jukicore.identity.index`)."""
        with self._b.bulk_session(write=False) as s:
            self.current_index(s, self._b.side_readers)
            assert self._index is not None
            mark = self._index.save(s)
        with self._b.session() as s:
            s.execute("DELETE FROM identity_touched WHERE mark <= ?", (mark,))
            old = s.scalar("SELECT value FROM meta WHERE key = ?", (TOUCHED_FROM,))
            if old is None:
                s.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                          (TOUCHED_FROM, str(mark + 1)))
            elif int(old) < mark + 1:
                s.execute("UPDATE meta SET value = ? WHERE key = ?", (str(mark + 1),
                                                                     TOUCHED_FROM))
        return mark

    def search_codes(self, four: FourItems, *, session: Session) -> list[int]:
        """The codes whose current info matches ``four`` on every item given (match keys:
        :mod:`jukicore.identity.normalize`), found in the lookup index."""
        core = self.current_index(session)
        found = core.search(four.family_name, four.given_name, four.birth_date,
                            sex=four.sex, address=four.address)
        return [int(c) for c in found.column("code").to_pylist()]

    # ------------------------------------------------------------------ code blocks

    def code_block_recorded(self, block: CodeBlock) -> bool:
        """Was this very block received before? A block id that could not be a file name
        (:class:`InvalidInputError`) and a different block under a recorded id
        (:class:`ConflictError`) are refused."""
        digest = _block_digest(block)
        with self._b.session(write=False) as s:
            return _block_known(s, block, digest)

    def receive_code_block(self, block: CodeBlock, *, sender: str, actor: Actor | str,
                           now: dt.datetime | None = None) -> bool:
        """Record a code block received from the center (with an audit entry); True if new,
        False if this very block was recorded before (its file may since be split or gone).
        Refusals as :meth:`code_block_recorded`'s, changing nothing."""
        who = self._actor(actor)
        self.policy.precheck(who, ID_RECEIVE_CODES)
        digest = _block_digest(block)
        with self.policy.session(who, ID_RECEIVE_CODES, now=now) as s:
            if _block_known(s, block, digest):
                return False
            s.execute("INSERT INTO code_blocks_received (block_id, holder, parent_id, codes,"
                      " digest, sender, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (block.block_id, block.holder, block.parent_id, len(block), digest,
                       sender, s.ts(utcnow())))
            _audit(s, who, "identity.code_block", block.block_id,
                   f"{len(block)} codes from {sender}")
        return True

    def code_blocks(self, *, actor: Actor | str, now: dt.datetime | None = None) -> pa.Table:
        """The code blocks received, in the order of their ids (no codes, their count)."""
        schema = pa.schema([pa.field("block_id", pa.string()), pa.field("holder", pa.string()),
                            pa.field("parent_id", pa.string()), pa.field("codes", pa.int64()),
                            pa.field("digest", pa.string()), pa.field("sender", pa.string())])
        with self.policy.session(self._actor(actor), ID_EXPORT, now=now, write=False) as s:
            rows = s.query("SELECT block_id, holder, parent_id, codes, digest, sender"
                           " FROM code_blocks_received ORDER BY block_id")
        return rows_to_arrow(rows, schema)

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
            "SELECT resident_code, lg_code, retired_on, new_code, seq, packet_id"
            " FROM identity_retired ORDER BY resident_code",
            "SELECT lg_code, seq, resident_code, problem, packet_id FROM identity_quarantine"
            " ORDER BY lg_code, seq",
            "SELECT lg_code, seq, packet_id, problem, entry FROM identity_rejected"
            " ORDER BY lg_code, seq",
            "SELECT block_id, holder, parent_id, codes, digest, sender"
            " FROM code_blocks_received ORDER BY block_id",
            "SELECT key, value, changed_by FROM policy_config ORDER BY key",
            "SELECT purpose_id, version, agency, agency_name, duty, legal_basis, items, search,"
            " new_code, embargo_days, tiers, valid_to IS NULL, changed_by FROM legal_purpose"
            " ORDER BY purpose_id, version",
            "SELECT request_no, request_id, agency, purpose_id, purpose_version, legal_basis,"
            " actor, embargo_until FROM provision_request ORDER BY request_no",
            "SELECT request_no, resident_code, answer, items FROM provision ORDER BY"
            " request_no, coalesce(resident_code, -1), answer, coalesce(items, '')",
        ]
        with self._b.session(write=False) as s:
            return content_digest(s, queries)


def _check_same(s: Session, sender: str, changes: pa.Table, lo: int, hi: int) -> None:
    """Entries ``lo..hi`` of a batch were applied before: skipping them is right only when
    they are the same entries. An entry differing from the one in the history (or now set
    aside as invalid) refuses the batch with a :class:`ConflictError` naming each such
    entry: the municipality reused numbers (restored from a backup, then new work before
    the lost work was entered again), and skipping them would silently lose its new
    entries. Entries set aside as invalid before were never applied and are skipped
    whatever they hold now, as before (a crafted or damaged entry must not stop the
    municipality's later nights)."""
    mine = changes.filter(pc.and_(pc.greater_equal(changes.column("seq"), lo),
                                  pc.less_equal(changes.column("seq"), hi)))
    cols = ", ".join(IDENTITY_SCHEMA.names)
    held = s.fetch_arrow(f"SELECT {cols} FROM identity_history WHERE lg_code = ?"
                         " AND seq >= ? AND seq <= ? ORDER BY seq", (sender, lo, hi),
                         IDENTITY_SCHEMA)
    if mine.equals(held):
        return  # the usual retransmission: the same entries
    mine_rows = {int(r["seq"]): r for r in mine.to_pylist()}
    bad: list[BadRow] = []
    for old in held.to_pylist():
        seq = int(old["seq"])
        new = mine_rows.get(seq)
        if new is None:
            bad.append(BadRow(seq - lo, f"entry {seq} was applied before; now it is set "
                                        "aside as invalid"))
            continue
        for name in IDENTITY_SCHEMA.names:
            if new[name] != old[name]:
                bad.append(BadRow(seq - lo, f"entry {seq} differs from the one applied "
                                            "before", name))
                break
    if bad:
        raise ConflictError(
            f"entries {lo}..{hi} from {sender} were applied before with other content: its "
            "register reused sequence numbers (restored from a backup? enter the lost "
            "notifications again, in their order, before new ones: docs/backup.md)",
            bad)


_CURRENT_COLS = ", ".join(c.name for c in _CURRENT.columns)
_NEW_CODE_REASONS = pa.array(["birth", "load", "move_in"], pa.string())


def _misfit(reason: str, status: str, code: int, previous: int | None) -> str | None:
    """Why a change reason does not fit the change it comes with (None: it fits)."""
    if reason not in CHANGE_REASONS:
        return f"unknown change reason {reason!r}"
    if status not in ("resident", "removed"):
        return f"unknown status {status!r}"
    if reason in _REMOVING:
        if status != "removed":
            return f"a {reason} leaves the record removed, not {status}"
    elif reason != "load" and status != "resident":
        return f"a {reason} leaves the record resident, not {status}"
    if reason == "code_change":
        if previous is None:
            return "a code change names the code it replaces (previous_resident_code)"
        if previous == code:
            return "a code change replaces a code by another one"
    elif previous is not None:
        return f"a {reason} names a previous resident code; only a code change does"
    return None


def _new_codes_only(fresh: pa.Table) -> bool:
    """Is the batch one of distinct codes, each a birth, a move-in or a load, none naming a
    previous code (an initial load, say)? Then it may go in by one plain INSERT."""
    n = fresh.num_rows
    if n == 0:
        return True
    if fresh.column("previous_resident_code").null_count < n:
        return False
    reasons, status = fresh.column("change_reason"), fresh.column("status")
    if not pc.all(pc.is_in(reasons, value_set=_NEW_CODE_REASONS)).as_py():
        return False
    # a birth or a move-in makes a resident; a load states a record as it stands
    fits = pc.or_(pc.equal(status, "resident"),
                  pc.and_(pc.equal(reasons, "load"), pc.equal(status, "removed")))
    if not pc.all(fits).as_py():
        return False
    codes = fresh.column("resident_code").to_numpy()  # in code order
    return not bool(np.any(codes[1:] == codes[:-1]))


def _insert_new_codes(s: Session, staging: str) -> bool:
    """Insert a staged batch of new codes (see :func:`_new_codes_only`) into the current
    info; False, changing nothing, if a code is retired or already present."""
    if s.query(f"SELECT 1 FROM {staging} b JOIN identity_retired r"
               " ON r.resident_code = b.resident_code LIMIT 1"):
        return False
    # PostgreSQL inserts each row of an ON CONFLICT statement speculatively (one more WAL
    # record and index pass per row): a plain INSERT is the fast path of a load, undone
    # at the first code already present.
    return s.try_execute(f"INSERT INTO identity ({_CURRENT_COLS}, held_since)"
                         f" SELECT {_CURRENT_COLS}, change_date FROM {staging}")


def _batch(fresh: pa.Table, sender: str, packet_id: str, final: Any,
           since: Any) -> pa.Table:
    """The batch as staged: sender, entries, packet, and the decisions."""
    n = fresh.num_rows
    t = fresh.add_column(0, "lg_code", pa.array([sender] * n, pa.string()))
    t = t.append_column("packet_id", pa.array([packet_id] * n, pa.string()))
    t = t.append_column("final", pa.array(np.asarray(final, dtype=np.int8), pa.int8()))
    t = t.append_column("held_since", since)
    return t.select(_BATCH.names)


@dataclass
class _Held:
    """The current record of a code: who holds it, its status, its last change, and since
    when its holder has it (the date of the birth, load, move-in or code change)."""

    lg_code: str
    status: str
    reason: str
    date: dt.date
    since: dt.date


@dataclass
class _Outcome:
    quarantined: list[tuple[int, int, str]] = field(default_factory=list)  # seq, code, why
    superseded: int = 0


_STATE_SCHEMA = pa.schema([
    pa.field("resident_code", pa.uint64()), pa.field("lg_code", pa.string()),
    pa.field("status", pa.string()), pa.field("change_reason", pa.string()),
    pa.field("change_date", pa.date32()), pa.field("held_since", pa.date32())])
#: Reasons an entry of the holder may carry to leave the record resident, removed, as it
#: says (a load); a birth and a code change never take the vectorized path.
_RESIDENT_SIMPLE = pa.array(["move_in", "move_within", "name_change", "household_change",
                             "my_number", "load"], pa.string())
_REMOVING_ARR = pa.array(sorted(_REMOVING), pa.string())
_TAKING_ARR = pa.array(sorted(_TAKING), pa.string())


@dataclass
class _Plan:
    """What a batch does: the entry that becomes each code's record (``final``, with its
    ``since``), the codes it retires, and what it keeps out."""

    final: Any  # numpy bool per entry
    since: pa.Array  # held_since per entry (null where not final)
    gone: list[int]
    retired: list[tuple[Any, ...]]
    outcome: _Outcome


def _plan(s: Session, fresh: pa.Table, sender: str, packet_id: str) -> _Plan:
    """Decide a batch by the rules of who holds a record (docs/sync.md, "Who holds a
    record"), each code's entries in the sender's order.

    The common entries are decided on whole columns: the only entry of its code in the
    batch, no code change involved, fitting its reason, and either from the code's holder
    (not a birth) or a birth, load or move-in of a code new here. The others are decided
    one by one; the two sets share no code.
    """
    codes_np = fresh.column("resident_code").to_numpy()  # in code order, then seq
    prev_col = fresh.column("previous_resident_code")
    prevs_np = prev_col.drop_null().to_numpy()
    cond, params = s.any_of("resident_code", np.union1d(codes_np, prevs_np).tolist())
    state = s.fetch_arrow(
        "SELECT resident_code, lg_code, status, change_reason, change_date, held_since"
        f" FROM identity WHERE {cond} ORDER BY resident_code", params, _STATE_SCHEMA)
    pd = s.pd
    retired: dict[int, tuple[str, dt.date]] = {}
    for code, lg, on in s.query(
            f"SELECT resident_code, lg_code, retired_on FROM identity_retired WHERE {cond}",
            params):
        d = pd(on)
        assert d is not None
        retired[int(code)] = (str(lg), d)

    n = fresh.num_rows
    scodes = state.column("resident_code").to_numpy()
    at = np.minimum(np.searchsorted(scodes, codes_np), max(len(scodes) - 1, 0))
    known = (scodes[at] == codes_np) if len(scodes) else np.zeros(n, dtype=bool)
    at_arr = pa.array(at, pa.int64())
    holder = state.column("lg_code").take(at_arr) if len(scodes) else pa.nulls(n, pa.string())
    once = np.ones(n, dtype=bool)
    if n > 1:
        same = codes_np[1:] == codes_np[:-1]
        once[1:] &= ~same
        once[:-1] &= ~same
    gone_np = np.array(sorted(retired), dtype=np.uint64)
    reasons_col, status_col = fresh.column("change_reason"), fresh.column("status")
    resident = pc.equal(status_col, "resident").to_numpy(zero_copy_only=False)
    removed = pc.equal(status_col, "removed").to_numpy(zero_copy_only=False)
    is_load = pc.equal(reasons_col, "load").to_numpy(zero_copy_only=False)
    fits = ((pc.is_in(reasons_col, value_set=_RESIDENT_SIMPLE).to_numpy(zero_copy_only=False)
             & resident)
            | (pc.is_in(reasons_col, value_set=_REMOVING_ARR).to_numpy(zero_copy_only=False)
               & removed)
            | (is_load & removed))
    new_kind = pc.is_in(reasons_col, value_set=_NEW_CODE_REASONS).to_numpy(zero_copy_only=False)
    births = pc.equal(reasons_col, "birth").to_numpy(zero_copy_only=False)
    from_holder = known & pc.fill_null(pc.equal(holder, sender), False).to_numpy(
        zero_copy_only=False)
    simple = (once & ~np.isin(codes_np, prevs_np) & ~np.isin(codes_np, gone_np)
              & pc.is_null(prev_col).to_numpy(zero_copy_only=False)
              & ((from_holder & fits) | (~known & new_kind & (fits | (births & resident)))))
    taking = pc.is_in(reasons_col, value_set=_TAKING_ARR).to_numpy(zero_copy_only=False)
    dates_col = fresh.column("change_date")
    since_known = (pc.coalesce(state.column("held_since"), state.column("change_date"))
                   .take(at_arr) if len(scodes) else pa.nulls(n, pa.date32()))
    simple_since = pc.if_else(pa.array(taking | ~known), dates_col, since_known)
    if isinstance(simple_since, pa.ChunkedArray):
        simple_since = simple_since.combine_chunks()

    held: dict[int, _Held | None] = {}
    complex_idx = np.flatnonzero(~simple)
    if complex_idx.size:
        involved = np.union1d(codes_np[complex_idx], prevs_np)
        for r in state.filter(pa.array(np.isin(scodes, involved))).to_pylist():
            held[r["resident_code"]] = _Held(
                r["lg_code"], r["status"], r["change_reason"], r["change_date"],
                r["held_since"] or r["change_date"])

    seen: set[int] = set()  # codes of the batch's entries decided one by one so far

    def former(code: int, seq: int) -> bool:
        """Did the sender send anything for ``code`` before (it held the record once)?"""
        return bool(s.query(
            "SELECT 1 FROM identity_history WHERE resident_code = ? AND lg_code = ? AND"
            " seq < ? LIMIT 1", (code, sender, seq)))

    out = _Outcome()
    final: dict[int, tuple[int, dt.date] | None] = {}
    new_retired: list[tuple[Any, ...]] = []
    part = fresh.take(pa.array(complex_idx, pa.int64()))
    seqs = part.column("seq").to_pylist()
    codes = part.column("resident_code").to_pylist()
    prevs = part.column("previous_resident_code").to_pylist()
    reasons = part.column("change_reason").to_pylist()
    statuses = part.column("status").to_pylist()
    dates = part.column("change_date").to_pylist()
    back = complex_idx.tolist()
    # The last entry of each code in this batch that closes the record (a move-out): a
    # same-day move-in followed by it in the sender's order is the earlier of two moves.
    closes_at: dict[int, int] = {}
    for i in range(part.num_rows):
        if reasons[i] in _CLOSING:
            closes_at[codes[i]] = max(closes_at.get(codes[i], 0), seqs[i])
    for i in sorted(range(part.num_rows), key=seqs.__getitem__):
        seq, code, prev = seqs[i], codes[i], prevs[i]
        reason, status, date = reasons[i], statuses[i], dates[i]
        problem = _misfit(reason, status, code, prev)
        known_before = code in seen
        seen.add(code)
        take: dt.date | None = None  # held_since of the record when the entry applies
        rec = held.get(code)
        if problem is not None:
            pass
        elif code in retired:
            by, on = retired[code]
            if date < on or (reason in _CLOSING and (known_before or former(code, seq))):
                out.superseded += 1  # a late entry of the code's past: history only
                continue
            problem = f"resident code {code:011d} was retired on {on} by {by}"
        elif reason == "code_change":
            assert prev is not None
            old = held.get(prev)
            if prev in retired:
                problem = f"the previous code {prev:011d} was retired already"
            elif old is None or old.lg_code != sender or old.status != "resident":
                problem = (f"the previous code {prev:011d} is not held by {sender}" +
                           ("" if old is None else f" (held by {old.lg_code}, {old.status})"))
            elif rec is not None and (rec.lg_code == sender or rec.reason != "move_in"
                                      or rec.since < date):
                problem = f"the new code {code:011d} is held already (by {rec.lg_code})"
            elif rec is not None:
                # The person moved on with the new code, and the move-in of their new
                # municipality came first: the change still retires the old code here;
                # the new one stays with its holder (codes move only with their person).
                retired[prev] = (sender, date)
                held[prev] = None
                final[prev] = None
                new_retired.append((prev, sender, s.d(date), code, seq, packet_id))
                out.superseded += 1
                continue
            else:
                retired[prev] = (sender, date)
                held[prev] = None
                final[prev] = None
                new_retired.append((prev, sender, s.d(date), code, seq, packet_id))
                take = date
        elif rec is None:
            if reason in ("birth", "load", "move_in"):
                take = date  # a new code
            else:
                problem = f"a {reason} for resident code {code:011d}, unknown here"
        elif rec.lg_code == sender:
            # The holder's own entries apply in its order: its latest is its register.
            if reason == "birth":
                problem = f"a birth under resident code {code:011d}, held already"
            else:
                take = date if reason in _TAKING else rec.since
        elif reason == "move_in":
            if rec.status == "removed" and rec.reason == "death":
                problem = f"a move-in under the code of a death recorded by {rec.lg_code}"
            elif date == rec.since and rec.status == "resident" and \
                    closes_at.get(code, 0) > seq:
                # Two move-ins on one day: the sender's own later move-out says the person
                # left it, so the holder's move-in is the later one.
                out.superseded += 1
                continue
            elif date >= rec.since:
                take = date  # the person moved from the holder to the sender
            else:
                out.superseded += 1  # an older move-in than the holder's own
                continue
        elif date < rec.since or (reason in _CLOSING and (known_before or former(code, seq))):
            # The former holder's late entries: older than the holding, or its move-out
            # (whose planned date may lie after the actual move-in elsewhere).
            out.superseded += 1
            continue
        else:
            problem = f"the record is held by {rec.lg_code}, not {sender}"
        if problem is not None:
            out.quarantined.append((seq, code, problem))
            continue
        assert take is not None
        held[code] = _Held(sender, status, reason, date, take)
        final[code] = (back[i], take)

    keep = [f for f in final.values() if f is not None]
    final_mask = simple.copy()
    final_mask[[f[0] for f in keep]] = True
    since_all = pc.if_else(pa.array(simple), simple_since, pa.nulls(n, pa.date32()))
    if keep:
        extra = np.full(n, -1, dtype=np.int64)
        extra[[f[0] for f in keep]] = np.arange(len(keep))
        picked = pa.array([f[1] for f in keep], pa.date32()).take(
            pa.array(np.maximum(extra, 0), pa.int64()))
        since_all = pc.if_else(pa.array(extra >= 0), picked, since_all)
    return _Plan(final_mask, since_all, sorted(c for c, f in final.items() if f is None),
                 new_retired, out)


def _carry_out(s: Session, staging: str, plan: _Plan, sender: str, packet_id: str,
               actor: Actor) -> None:
    """Write what :func:`_plan` decided: retired codes out of the current info and into
    their table, each code's final entry into the current info, the quarantine with its
    audit entries."""
    if plan.gone:
        s.executemany("DELETE FROM identity WHERE resident_code = ?",
                      [(c,) for c in plan.gone])
    if plan.retired:
        s.executemany("INSERT INTO identity_retired (resident_code, lg_code, retired_on,"
                      " new_code, seq, packet_id) VALUES (?, ?, ?, ?, ?, ?)", plan.retired)
    if plan.final.any():
        names = [*_CURRENT.names, "held_since"]
        sets = ", ".join(f"{c} = excluded.{c}" for c in names if c != "resident_code")
        s.execute(f"INSERT INTO identity ({', '.join(names)}) SELECT {', '.join(names)}"
                  f" FROM {staging} WHERE final = 1"
                  f" ON CONFLICT (resident_code) DO UPDATE SET {sets}")
    out = plan.outcome
    if out.quarantined:
        s.executemany("INSERT INTO identity_quarantine (lg_code, seq, resident_code, problem,"
                      " packet_id) VALUES (?, ?, ?, ?, ?)",
                      [(sender, q, c, why, packet_id) for q, c, why in out.quarantined])
        at = s.ts(utcnow())
        audit.write_many(s, [audit.entry(s, actor, "identity.quarantine", f"{c:011d}",
                                         f"entry {q} from {sender} in packet {packet_id}:"
                                         f" {why}", at=at)
                             for q, c, why in out.quarantined])


def _block_digest(block: CodeBlock) -> str:
    # (a CodeBlock's id is fit for a file name: jukicore.codes refuses any other)
    return hashlib.sha256(block.to_bytes()).hexdigest()


def _block_known(s: Session, block: CodeBlock, digest: str) -> bool:
    row = s.query("SELECT holder, parent_id, codes, digest FROM code_blocks_received"
                  " WHERE block_id = ?", (block.block_id,))
    if not row:
        return False
    if tuple(row[0]) != (block.holder, block.parent_id, len(block), digest):
        raise ConflictError(f"code block {block.block_id} was received before with other"
                            " content: a different block under the same id is refused")
    return True


def _current_schema() -> pa.Schema:
    """The current-info table as Arrow: the identity columns it shares, plus ``lg_code``."""
    by_name = {f.name: f for f in IDENTITY_SCHEMA}
    by_name["lg_code"] = pa.field("lg_code", pa.string(), False)
    return pa.schema([by_name[c.name] for c in _CURRENT.columns])


def _validated(changes: Any, first_seq: int, last_seq: int, sender: object = None, *,
               set_aside: bool = False) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """The changes as :data:`IDENTITY_SCHEMA`, every value checked by the one validation
    (:mod:`jukicore.validate`), and the entries set aside.

    Any bad value refuses the batch, naming every bad row and column; with ``set_aside``
    the entries with bad values are returned apart instead, as (seq, problem, entry as
    JSON), and the table holds the others. Missing or extra columns and a ``seq`` that does
    not run ``first_seq..last_seq`` refuse the batch either way. ``changes``: any Arrow
    table (pyarrow, or the Arrow PyCapsule interface)."""
    import datetime as dt

    from jukicore.register.events import KINDS
    from jukicore.register.store import as_arrow_table
    from jukicore.validate import check_sender, coerce_column, find_problems, sorted_rows

    if sender is not None:
        check_sender(sender)
    for name, v in (("first_seq", first_seq), ("last_seq", last_seq)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 1 <= v < 2**63:
            raise InvalidInputError(f"{name} is a positive integer, got {v!r}")
    changes = as_arrow_table(changes, "identity changes")
    missing = [n for n in IDENTITY_SCHEMA.names if n not in changes.column_names]
    if missing:
        raise InvalidInputError(f"identity changes lack columns {missing}")
    extra = [n for n in changes.column_names if n not in IDENTITY_SCHEMA.names]
    if extra:
        raise InvalidInputError(
            f"identity changes carry columns that must not leave a municipality: {extra}")
    if first_seq < 1 or last_seq < first_seq:
        raise InvalidInputError(f"bad sequence range {first_seq}..{last_seq}")
    bad: list[BadRow] = []
    cols = []
    for f in IDENTITY_SCHEMA:
        col, b = coerce_column(changes.column(f.name), f.type, f.name)
        cols.append(col)
        bad += b
    seq = cols[IDENTITY_SCHEMA.get_field_index("seq")]
    if any(r.column == "seq" for r in bad) or seq.null_count or len(seq) != \
            last_seq - first_seq + 1 or not np.array_equal(
                seq.to_numpy(), np.arange(first_seq, last_seq + 1)):
        raise InvalidInputError(
            f"entries must run {first_seq}..{last_seq} in order without gaps")
    # nullable while checked: a missing required item is a bad row, not an Arrow error
    table = pa.Table.from_arrays(cols, schema=pa.schema([f.with_nullable(True)
                                                         for f in IDENTITY_SCHEMA]))
    required = tuple(f.name for f in IDENTITY_SCHEMA if not f.nullable)
    unreadable = {(r.row, r.column) for r in bad}  # null now: not "missing" as well
    bad += [r for r in find_problems(table, today=dt.date.today(), required=required,
                                     change_reasons=(*KINDS, "load"))
            if (r.row, r.column) not in unreadable]
    if not bad:
        return table.cast(IDENTITY_SCHEMA), []
    if not set_aside:
        raise InvalidInputError("identity changes have invalid values", sorted_rows(bad))
    problems: dict[int, list[str]] = {}
    for r in sorted_rows(bad):
        problems.setdefault(r.row, []).append(
            r.reason if r.column is None else f"{r.column}: {r.reason}")
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(problems)] = False
    aside = [(first_seq + i, "; ".join(why), _entry_json(changes, i))
             for i, why in sorted(problems.items())]
    return table.filter(pa.array(keep)).cast(IDENTITY_SCHEMA), aside


def _entry_json(table: pa.Table, row: int) -> str:
    """One entry as JSON for the record of rejected entries, whatever its values hold:
    text with invalid UTF-8 is decoded with replacement characters."""

    out: dict[str, Any] = {}
    for name in table.column_names:
        cell = table.column(name).slice(row, 1)
        try:
            if pa.types.is_string(cell.type) or pa.types.is_large_string(cell.type):
                raw = cell.cast(pa.large_binary())[0].as_py()
                out[name] = None if raw is None else raw.decode("utf-8", "replace")
            else:
                out[name] = cell[0].as_py()
        except (pa.ArrowException, ValueError, TypeError, OverflowError):
            out[name] = repr(cell)
    return json.dumps(out, ensure_ascii=False, default=str)


