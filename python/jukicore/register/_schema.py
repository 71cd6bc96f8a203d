"""Tables of the resident register: one description (:data:`TABLES`, logical column
types rendered for each database by :mod:`jukicore.store.schema`), its migrations
(:data:`MIGRATIONS`) and Arrow schemas.
"""

from __future__ import annotations

import pyarrow as pa

from jukicore.access.policy import migration_statements as policy_migration
from jukicore.audit.chain import migration_v6 as _audit_v6
from jukicore.identity.items import IDENTITY_COLUMNS
from jukicore.store.schema import Column, Ddl, Index, Migration, Table

RESIDENT = "resident"
REMOVED = "removed"
REMOVAL_REASONS = ("moved_out", "died", "ex_officio")
HEAD = "世帯主"

#: Retention of removed records (除票), in years.
RETENTION_YEARS = 150


def _c(name: str, type_: str, nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


# -- the resident record (住民票) -----------------------------------------------------

#: The resident record of schema version 1 (a published step: never edit).
V1_RESIDENT_COLUMNS: tuple[Column, ...] = (
    _c("person_id", "int", False),
    _c("resident_code", "int", False),
    _c("my_number", "int"),
    _c("family_name", "text", False),
    _c("given_name", "text", False),
    _c("family_name_kana", "text", False),
    _c("given_name_kana", "text", False),
    _c("birth_date", "date", False),
    _c("sex", "small", False),
    _c("household_id", "int", False),
    _c("relationship", "text", False),
    _c("domicile", "text"),
    _c("domicile_head", "text"),
    _c("postal_code", "text", False),
    _c("prefecture", "text", False),
    _c("municipality", "text", False),
    _c("lg_code", "text", False),
    _c("town", "text", False),
    _c("street", "text", False),
    _c("building", "text"),
    _c("address", "text", False),
    _c("resident_since", "date", False),
    _c("address_since", "date", False),
    _c("previous_address", "text"),
    _c("move_in_notified", "date"),
    _c("status", "text", False),
    _c("removal_reason", "text"),
    _c("removal_date", "date"),
    _c("move_out_destination", "text"),
    _c("updated_on", "date", False),
)

#: Items of Article 7 of the Basic Resident Registration Act that a certificate prints on
#: request (added by a later version; null: does not apply). They never leave the
#: municipality (not identity confirmation info): no outbox, packet or identity store.
ARTICLE7_COLUMNS: tuple[Column, ...] = (
    _c("electoral_roll", "small"),  # 1: registered in the electoral roll (選挙人名簿), 0: not
    _c("nhi_since", "date"),  # national health insurance (国民健康保険) insured since
    _c("elderly_care_since", "date"),  # late-stage elderly medical care (後期高齢者医療)
    _c("ltc_insurance_since", "date"),  # long-term care insurance (介護保険)
    _c("pension_kind", "small"),  # national pension insured kind 1, 2 or 3 (第1/2/3号)
    _c("pension_since", "date"),  # national pension insured (in this kind) since
    _c("child_allowance_since", "date"),  # child allowance recipient (児童手当) since
)

#: Items of foreign residents (Article 30-45; null for a Japanese national).
FOREIGN_COLUMNS: tuple[Column, ...] = (
    _c("nationality", "text"),  # nationality or region (国籍・地域)
    _c("foreign_status", "text"),  # mid_long_term, special_permanent, ... (validate.py)
    _c("residence_status", "text"),  # status of residence (在留資格)
    _c("period_of_stay", "text"),  # period of stay (在留期間), e.g. 3年, 6月
    _c("stay_expires_on", "date"),  # expiry of the period of stay (在留期間の満了の日)
    _c("residence_card_number", "text"),  # 在留カード / 特別永住者証明書 number
)

#: The items added to the resident record by schema version 9, in order.
RECORD_ITEM_COLUMNS: tuple[Column, ...] = ARTICLE7_COLUMNS + FOREIGN_COLUMNS
ARTICLE7_ITEMS: tuple[str, ...] = tuple(c.name for c in ARTICLE7_COLUMNS)
FOREIGN_ITEMS: tuple[str, ...] = tuple(c.name for c in FOREIGN_COLUMNS)
RECORD_ITEMS: tuple[str, ...] = ARTICLE7_ITEMS + FOREIGN_ITEMS

#: Items of a resident record that changes are tracked on (付随情報), in order: the
#: columns of the current ``residents`` table.
RESIDENT_COLUMNS: tuple[Column, ...] = V1_RESIDENT_COLUMNS + RECORD_ITEM_COLUMNS

#: Items whose changes are recorded in the history (everything but the key and bookkeeping).
TRACKED_ITEMS: tuple[str, ...] = tuple(
    c.name for c in RESIDENT_COLUMNS if c.name not in ("person_id", "updated_on")
)


#: Tables of schema version 1 (a published step: never edit).
V1_TABLES: tuple[Table, ...] = (
    Table("meta", (_c("key", "text", False), _c("value", "text")), ("key",)),
    Table("residents", V1_RESIDENT_COLUMNS, ("person_id",)),
    Table(
        "households",
        (
            _c("household_id", "int", False),
            _c("head_person_id", "int", False),
            _c("address", "text", False),
            _c("created_on", "date"),
            _c("dissolved_on", "date"),
        ),
        ("household_id",),
    ),
    Table(
        "history",
        (
            _c("id", "serial", False),
            _c("person_id", "int", False),
            _c("resident_code", "int", False),
            _c("item", "text", False),
            _c("old_value", "text"),
            _c("new_value", "text"),
            _c("event_date", "date", False),
            _c("recorded_at", "ts", False),
            _c("reason", "text", False),
            _c("notification_id", "text"),
        ),
    ),
    Table(
        "notifications",
        (
            _c("notification_id", "text", False),
            _c("kind", "text", False),
            _c("person_id", "int"),
            _c("resident_code", "int"),
            _c("notified_date", "date", False),
            _c("event_date", "date", False),
            _c("recorded_at", "ts", False),
            _c("actor", "text", False),
        ),
        ("notification_id",),
    ),
    Table(
        "audit",
        (
            _c("id", "serial", False),
            _c("at", "ts", False),
            _c("actor", "text", False),
            _c("actor_kind", "text", False),
            _c("action", "text", False),
            _c("target", "text"),
            _c("notification_id", "text"),
            _c("detail", "text"),
        ),
    ),
    Table(
        "outbox",
        (
            _c("lg_code", "text", False),
            *IDENTITY_COLUMNS,  # what leaves the municipality, and nothing else
            _c("notification_id", "text"),
            _c("recorded_at", "ts", False),
        ),
        ("seq",),  # one register is one municipality: seq numbers its changes
    ),
    Table(
        "code_blocks",
        (
            _c("block_id", "text", False),
            _c("holder", "text", False),
            _c("parent_id", "text"),
            _c("imported_at", "ts", False),
        ),
        ("block_id",),
    ),
    Table(
        "code_pool",
        (_c("pos", "int", False), _c("code", "int", False), _c("block_id", "text", False)),
        ("pos",),
    ),
    Table(
        "retired_codes",
        (
            _c("code", "int", False),
            _c("person_id", "int", False),
            _c("retired_on", "date", False),
            _c("notification_id", "text"),
        ),
        ("code",),
    ),
)

#: Tables added by version 2: the municipality's side of the nightly synchronization.
SYNC_TABLES: tuple[Table, ...] = (
    Table(
        "sync_peers",  # per recipient (prefecture, center): the last outbox entry acknowledged
        (_c("peer", "text", False), _c("acked_seq", "int", False)),
        ("peer",),
    ),
    Table(
        "sync_log",  # every packet sent or acknowledgement received (histories of communication)
        (
            _c("packet_id", "text", False),
            _c("direction", "text", False),
            _c("peer", "text", False),
            _c("kind", "text", False),
            _c("first_seq", "int", False),
            _c("last_seq", "int", False),
            _c("at", "ts", False),
        ),
        ("packet_id",),
    ),
)

#: Columns added to version 1's tables by later versions (table -> columns, in order).
ADDED_COLUMNS: dict[str, tuple[Column, ...]] = {
    # v4: a history row undone by a later-recorded, earlier-dated notification (a death
    # dated before a move recorded for the person): the id of that notification
    "history": (_c("voided_by", "text"),),
    # v5: SHA-256 of the normalized notification (a reused id must carry the same content)
    "notifications": (_c("digest", "text"),),
    # v6: the entry's number, its leaf in the audit log's Merkle tree (jukicore.audit.chain)
    "audit": (_c("seq", "int"),),
    # v9: the Article 7 items and the foreign residents' items (Article 30-45)
    "residents": RECORD_ITEM_COLUMNS,
}


def _current(t: Table) -> Table:
    return Table(t.name, t.columns + ADDED_COLUMNS.get(t.name, ()), t.primary_key)


#: Every table of the current schema.
TABLES: tuple[Table, ...] = tuple(_current(t) for t in V1_TABLES) + SYNC_TABLES

TABLE_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: Secondary indexes (name, table, columns, unique, partial WHERE clause).
INDEXES: tuple[tuple[str, str, str, bool, str | None], ...] = (
    ("residents_current_code", "residents", "resident_code", True, "status = 'resident'"),
    (
        "residents_my_number",
        "residents",
        "my_number",
        True,
        "my_number IS NOT NULL AND status = 'resident'",
    ),
    ("residents_my_number_any", "residents", "my_number", False, None),
    ("residents_household", "residents", "household_id", False, None),
    ("residents_removal", "residents", "removal_date", False, "status = 'removed'"),
    ("history_person", "history", "person_id, id", False, None),
    ("history_event_date", "history", "event_date", False, None),
    ("history_code", "history", "resident_code", False, None),
    ("code_pool_code", "code_pool", "code", True, None),
)


def _v1(ddl: Ddl) -> list[str]:
    return [*(ddl.create_table(t) for t in V1_TABLES), *(ddl.create_index(i) for i in INDEXES)]


def _v2(ddl: Ddl) -> list[str]:
    return [*(ddl.create_table(t) for t in SYNC_TABLES),
            ddl.create_index(Index("sync_log_peer", "sync_log", "peer, direction, last_seq"))]


#: Version 3: replaced My Numbers are looked up in the history (never recorded again), and
#: the codes of removed records (除票) when a code moves in (only the same person returns).
V3_INDEXES: tuple[tuple[str, str, str, bool, str | None], ...] = (
    ("history_replaced_my_number", "history", "old_value", False, "item = 'my_number'"),
    ("residents_removed_code", "residents", "resident_code", False, "status = 'removed'"),
)


def _v3(ddl: Ddl) -> list[str]:
    return [ddl.create_index(i) for i in V3_INDEXES]


def _v7(ddl: Ddl) -> list[str]:
    from jukicore.access.operators import migration_statements

    return migration_statements(ddl)


def _cards(ddl: Ddl) -> list[str]:
    from jukicore.cards._schema import migration_statements

    return migration_statements(ddl)


def _v11(ddl: Ddl) -> list[str]:
    from jukicore.viewing._schema import migration_statements

    return migration_statements(ddl)


def _v12(ddl: Ddl) -> list[str]:
    from jukicore.certificates.schema import migration_statements

    return migration_statements(ddl)


def _v13(ddl: Ddl) -> list[str]:
    from jukicore.certificates.schema import wide_area_statements

    return wide_area_statements(ddl)


def _special_moves(ddl: Ddl) -> list[str]:
    from jukicore.moves._schema import migration_statements

    return migration_statements(ddl)


#: Version 10: a residence card number (or special permanent resident certificate number)
#: is looked up when a notification records one (one current holder at most).
V10_INDEXES: tuple[tuple[str, str, str, bool, str | None], ...] = (
    ("residents_card_number", "residents", "residence_card_number", False,
     "residence_card_number IS NOT NULL"),
)


def _v10(ddl: Ddl) -> list[str]:
    return [*(ddl.add_column("residents", c) for c in RECORD_ITEM_COLUMNS),
            *(ddl.create_index(i) for i in V10_INDEXES)]


#: Every schema version this jukicore knows, in order. Append; never edit a published step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "resident register: residents, households, history, notifications, audit, "
              "outbox, code pool", _v1),
    Migration(2, "synchronization state: acknowledgements per recipient, packet log", _v2),
    Migration(3, "indexes of replaced My Numbers and of removed records' codes", _v3),
    Migration(4, "history rows voided by an earlier-dated notification (voided_by)",
              lambda ddl: [ddl.add_column("history", Column("voided_by", "text"))]),
    Migration(5, "digest of each applied notification (a reused id with other content is a"
              " conflict)",
              lambda ddl: [ddl.add_column("notifications", Column("digest", "text"))]),
    Migration(6, "a tamper-evident audit log: entries numbered (seq) as leaves of a Merkle"
              " tree, its state, signed checkpoints (jukicore.audit.chain)", _audit_v6),
    Migration(7, "operator accounts (jukicore.access.operators)", _v7),
    Migration(8, "the access policy's configuration (working hours, read quotas) and the"
              " audit's index by actor, action and time", policy_migration),
    Migration(9, "the counter's cards: resident register and My Number cards, their PINs"
              " and fees (jukicore.cards)", _cards),
    Migration(10, "the Article 7 items (electoral roll, insurances, pension, child allowance)"
              " and the foreign residents' items (Article 30-45) of the resident record",
              _v10),
    Migration(11, "register viewing (閲覧): requests and their decisions, viewings held"
              " (jukicore.viewing)", _v11),
    Migration(12, "certificates of residence issued (jukicore.certificates)", _v12),
    Migration(13, "wide-area certificates (広域交付): records provided to other"
              " municipalities, requests made to residence municipalities", _v13),
    Migration(14, "the special move-in/out (転入転出の特例): move-outs filed with a card, kept"
              " for the new municipality, and move-ins awaiting the old one's confirmation"
              " (jukicore.moves)", _special_moves),
)

SCHEMA_VERSION = MIGRATIONS[-1].version

# -- Arrow schemas ------------------------------------------------------------------------


def _arrow_type(col: Column) -> pa.DataType:
    if col.name in ("resident_code", "my_number", "previous_resident_code", "code"):
        return pa.uint64()
    return {
        "int": pa.int64(),
        "small": pa.int8(),
        "text": pa.string(),
        "date": pa.date32(),
        "ts": pa.timestamp("us", tz="UTC"),
        "serial": pa.int64(),
    }[col.type]


def arrow_schema(table_name: str, columns: list[str] | None = None) -> pa.Schema:
    table = TABLE_BY_NAME[table_name]
    cols = table.columns if columns is None else [c for c in table.columns if c.name in columns]
    return pa.schema([pa.field(c.name, _arrow_type(c), c.nullable) for c in cols])


#: The resident record as Arrow (current residents, exports, as-of queries).
RESIDENT_SCHEMA: pa.Schema = arrow_schema("residents")
HOUSEHOLD_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("household_id", pa.int64(), False),
        pa.field("head_person_id", pa.int64()),
        pa.field("head_resident_code", pa.uint64()),
        pa.field("address", pa.string()),
        pa.field("size", pa.int32(), False),
    ]
)
HISTORY_SCHEMA: pa.Schema = arrow_schema("history")
AUDIT_SCHEMA: pa.Schema = arrow_schema("audit")
OUTBOX_SCHEMA: pa.Schema = arrow_schema("outbox")
NOTIFICATION_SCHEMA: pa.Schema = arrow_schema("notifications")
