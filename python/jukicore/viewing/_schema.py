"""The tables of register viewing (閲覧) in a municipality's register, and their Arrow forms.

Two tables, added by one migration of the register (``register/_schema.py``):

* ``viewing_requests``: each request (請求 of a public body, Art. 11; 申出 of a private
  party, Art. 11-2), who recorded it, and the decision (who approved or refused, when);
* ``viewing_sessions``: each viewing held for an approved request: the viewers present
  and the kind of identity document each showed, the range of residents shown (the
  filter), how many records, a digest of the list shown, start and end, the fee.

Neither holds any resident's data: a viewing keeps the count of the records shown and
a SHA-256 of their list, never the records.
"""

from __future__ import annotations

import pyarrow as pa

from jukicore.store.schema import Column, Ddl, Index, Table

__all__ = ["EXTRACT_SCHEMA", "FOUR_ITEMS", "PUBLICATION_SCHEMA", "REQUEST_SCHEMA",
           "REQUEST_TABLE", "SESSION_SCHEMA", "SESSION_TABLE", "migration_statements"]


def _c(name: str, type_: str, nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


REQUEST_TABLE = Table("viewing_requests", (
    _c("request_id", "serial", False),
    _c("kind", "text", False),            # public (Art. 11) | private (Art. 11-2)
    _c("requester", "text", False),       # the body's or the party's name (published)
    _c("representative", "text"),         # a corporation's representative (published)
    _c("purpose", "text", False),         # a key of jukicore.viewing.PURPOSES
    _c("summary", "text", False),         # 請求事由 / 利用目的の概要 (published)
    _c("legal_basis", "text"),            # the statute (public bodies)
    _c("handling", "text"),               # how a private party keeps what it notes
    _c("viewers", "text", False),         # JSON: the names of the persons who will view
    _c("towns", "text"),                  # JSON: the towns asked for (null: all)
    _c("born_from", "date"),
    _c("born_to", "date"),
    _c("period_from", "date", False),     # the days viewings may be held
    _c("period_to", "date", False),
    _c("state", "text", False),           # requested | approved | refused
    _c("requested_at", "ts", False),
    _c("requested_by", "text", False),
    _c("decided_at", "ts"),
    _c("decided_by", "text"),
    _c("decision_note", "text"),
))

SESSION_TABLE = Table("viewing_sessions", (
    _c("session_id", "serial", False),
    _c("request_id", "int", False),
    _c("viewers", "text", False),         # JSON: [[name, id_kind], ...] as checked
    _c("towns", "text"),                  # JSON: the range shown (null: all towns)
    _c("born_from", "date"),
    _c("born_to", "date"),
    _c("records", "int", False),
    _c("extract_digest", "text", False),  # SHA-256 of the list shown (no data kept)
    _c("started_at", "ts", False),
    _c("started_by", "text", False),
    _c("ended_at", "ts"),
    _c("ended_by", "text"),
    _c("fee_rate", "int", False),         # yen per 30 minutes started, at the start
    _c("periods", "int"),                 # 30-minute periods started
    _c("fee", "int"),                     # yen
))

INDEXES = (
    Index("viewing_requests_state", "viewing_requests", "state"),
    Index("viewing_sessions_request", "viewing_sessions", "request_id"),
    Index("viewing_sessions_started", "viewing_sessions", "started_at"),
)


def migration_statements(ddl: Ddl) -> list[str]:
    """The register's migration that adds viewing: both tables and their indexes."""
    return [ddl.create_table(REQUEST_TABLE), ddl.create_table(SESSION_TABLE),
            *(ddl.create_index(i) for i in INDEXES)]


#: The four items a viewing shows, and nothing else of a record (Art. 11, 11-2).
FOUR_ITEMS: tuple[str, ...] = ("name", "address", "birth_date", "sex")
#: The list shown at a viewing: exactly the four items (sex as 男 / 女).
EXTRACT_SCHEMA = pa.schema([
    pa.field("name", pa.string(), False),
    pa.field("address", pa.string(), False),
    pa.field("birth_date", pa.date32(), False),
    pa.field("sex", pa.string(), False),
])

_TS = pa.timestamp("us", tz="UTC")
_NAMES = pa.list_(pa.string())
VIEWER = pa.struct([pa.field("name", pa.string()), pa.field("id_kind", pa.string())])

REQUEST_SCHEMA = pa.schema([
    pa.field("request_id", pa.int64(), False),
    pa.field("kind", pa.string(), False),
    pa.field("requester", pa.string(), False),
    pa.field("representative", pa.string()),
    pa.field("purpose", pa.string(), False),
    pa.field("summary", pa.string(), False),
    pa.field("legal_basis", pa.string()),
    pa.field("handling", pa.string()),
    pa.field("viewers", _NAMES, False),
    pa.field("towns", _NAMES),
    pa.field("born_from", pa.date32()),
    pa.field("born_to", pa.date32()),
    pa.field("period_from", pa.date32(), False),
    pa.field("period_to", pa.date32(), False),
    pa.field("state", pa.string(), False),
    pa.field("requested_at", _TS, False),
    pa.field("requested_by", pa.string(), False),
    pa.field("decided_at", _TS),
    pa.field("decided_by", pa.string()),
    pa.field("decision_note", pa.string()),
])

SESSION_SCHEMA = pa.schema([
    pa.field("session_id", pa.int64(), False),
    pa.field("request_id", pa.int64(), False),
    pa.field("kind", pa.string(), False),
    pa.field("requester", pa.string(), False),
    pa.field("purpose", pa.string(), False),
    pa.field("viewers", pa.list_(VIEWER), False),
    pa.field("towns", _NAMES),
    pa.field("born_from", pa.date32()),
    pa.field("born_to", pa.date32()),
    pa.field("records", pa.int64(), False),
    pa.field("extract_digest", pa.string(), False),
    pa.field("started_at", _TS, False),
    pa.field("started_by", pa.string(), False),
    pa.field("ended_at", _TS),
    pa.field("ended_by", pa.string()),
    pa.field("fee_rate", pa.int64(), False),
    pa.field("periods", pa.int64()),
    pa.field("fee", pa.int64()),
])

#: One published row per viewing: who, for what, when, which residents, how many.
PUBLICATION_SCHEMA = pa.schema([
    pa.field("viewed_on", pa.date32(), False),
    pa.field("kind", pa.string(), False),            # 請求 (Art. 11) | 申出 (Art. 11-2)
    pa.field("requester", pa.string(), False),
    pa.field("representative", pa.string()),
    pa.field("purpose", pa.string(), False),         # the purpose's statutory wording
    pa.field("summary", pa.string(), False),
    pa.field("scope", pa.string(), False),           # 閲覧に係る住民の範囲
    pa.field("records", pa.int64(), False),
])
