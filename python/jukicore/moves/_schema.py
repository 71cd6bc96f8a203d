"""The special move-in/out's tables in the municipality's register (one migration: see
:func:`migration_statements`), and their Arrow forms."""

from __future__ import annotations

import pyarrow as pa

from jukicore.store.schema import Column, Ddl, Index, Table

__all__ = ["MOVE_INS", "MOVE_IN_SCHEMA", "MOVE_OUTS", "MOVE_OUT_SCHEMA", "migration_statements"]


def _c(name: str, type_: str, nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


#: At the old municipality: every special move-out (特例転出) filed here, open until the
#: new municipality confirms its move-in, then closed (its data no longer kept).
MOVE_OUTS = Table("special_move_outs", (
    _c("move_out_id", "text", False),      # the move-out notification's id
    _c("resident_code", "int", False),
    _c("card_id", "text", False),          # the card the move-out was filed with
    _c("destination_lg", "text", False),   # the new municipality: the only one served
    _c("destination", "text", False),      # the new address as filed
    _c("planned_on", "date", False),       # 転出予定日
    _c("filed_on", "date", False),         # the notification's date
    _c("filed_by", "text", False),         # mail | online
    _c("state", "text", False),            # open | closed
    _c("data", "text"),                    # 転出証明書情報 (canonical JSON); null once closed
    _c("data_digest", "text", False),      # SHA-256 of the data's canonical JSON
    _c("fetches", "int", False),           # answers given to the new municipality
    _c("filed_at", "ts", False),
    _c("closed_at", "ts"),
    _c("move_in_id", "text"),              # the new municipality's move-in notification
    _c("moved_in_on", "date"),             # the arrival (転入日) it reported
    _c("move_in_notified_on", "date"),     # the day of its move-in notification
    _c("corrected", "small"),              # 1: the move-out date redated to the arrival
), ("move_out_id",))

#: At the new municipality: every special move-in (特例転入) recorded here, pending until
#: the old municipality has confirmed it closed the move-out, then confirmed.
MOVE_INS = Table("special_move_ins", (
    _c("move_in_id", "text", False),       # the move-in notification's id
    _c("from_lg", "text", False),          # the old municipality
    _c("move_out_id", "text", False),      # its move-out notification's id
    _c("resident_code", "int", False),
    _c("card_id", "text", False),
    _c("moved_in_on", "date", False),      # arrival (転入日)
    _c("notified_on", "date", False),      # the move-in notification's date
    _c("planned_on", "date", False),       # the planned move-out date of the data
    _c("data_digest", "text", False),      # of the data fetched (sent back with the confirm)
    _c("card_continued", "small", False),  # 1: the My Number card continues here
    _c("state", "text", False),            # pending | confirmed
    _c("attempts", "int", False),          # confirmations sent that did not get through
    _c("last_error", "text"),
    _c("recorded_at", "ts", False),
    _c("confirmed_at", "ts"),
    _c("removal_date", "date"),            # the move-out date the old municipality kept
), ("move_in_id",))

_INDEXES = (
    Index("special_move_outs_code", "special_move_outs", "resident_code"),
    Index("special_move_ins_origin", "special_move_ins", "from_lg, move_out_id", unique=True),
    Index("special_move_ins_pending", "special_move_ins", "state"),
)


def migration_statements(ddl: Ddl) -> list[str]:
    """The register's schema step of the special move-in/out."""
    return [ddl.create_table(MOVE_OUTS), ddl.create_table(MOVE_INS),
            *(ddl.create_index(i) for i in _INDEXES)]


def _arrow(table: Table, hidden: tuple[str, ...] = ()) -> pa.Schema:
    types = {"text": pa.string(), "int": pa.int64(), "small": pa.int8(),
             "date": pa.date32(), "ts": pa.timestamp("us", "UTC")}
    return pa.schema([pa.field(c.name, pa.uint64() if c.name == "resident_code"
                               else types[c.type], c.nullable)
                      for c in table.columns if c.name not in hidden])


#: The move-outs as listed (never their data).
MOVE_OUT_SCHEMA = _arrow(MOVE_OUTS, ("data",))
#: The move-ins as listed.
MOVE_IN_SCHEMA = _arrow(MOVE_INS)
