"""The cards' tables in the municipality's register (one migration: see
:func:`migration_statements`)."""

from __future__ import annotations

import pyarrow as pa

from jukicore.store.schema import Column, Ddl, Index, Table

__all__ = ["CARDS", "CARD_COLUMNS", "CARD_SCHEMA", "migration_statements"]


def _c(name: str, type_: str, nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


#: One row per card this municipality issued or continued (a card carried in).
CARD_COLUMNS: tuple[Column, ...] = (
    _c("card_id", "text", False),        # issuing municipality's code '-' serial
    _c("kind", "text", False),           # juki_basic | juki_photo | mynumber
    _c("resident_code", "int", False),   # the holder: the only personal item of a card
    _c("state", "text", False),          # rules.STATES (expired is also reached by date)
    _c("issuer", "text", False),         # the issuing municipality's code
    _c("applied_on", "date", False),
    _c("issued_on", "date"),
    _c("activated_on", "date"),
    _c("expires_on", "date"),            # the last valid day
    _c("cert_expires_on", "date"),       # My Number card: its certificates' last day
    _c("sign_revoked_on", "date"),       # My Number card: signing certificate revoked
    _c("fee", "int", False),             # yen, recorded per issuance
    _c("moved_out_on", "date"),          # the holder moved out of this municipality
    _c("continued_on", "date"),          # continued use (継続利用) recorded here
    _c("pin_hash", "text"),              # Argon2id over the HMAC (jukicore.cards.pin)
    _c("pin_key_id", "text"),            # which pin key the hash is under
    _c("pin_failures", "int", False),    # consecutive wrong PINs (3: locked)
    _c("updated_at", "ts", False),
)
CARDS = Table("cards", CARD_COLUMNS, ("card_id",))
_INDEXES = (Index("cards_holder", "cards", "resident_code"),)


def migration_statements(ddl: Ddl) -> list[str]:
    """The cards' schema version of the register: the cards (their fees per kind are
    policy settings, ``fee.card_KIND``)."""
    return [ddl.create_table(CARDS),
            *(ddl.create_index(i) for i in _INDEXES)]


#: A card as Arrow (never its PIN): what issue and list return.
CARD_SCHEMA = pa.schema([
    pa.field("card_id", pa.string(), False),
    pa.field("kind", pa.string(), False),
    pa.field("resident_code", pa.uint64(), False),
    pa.field("state", pa.string(), False),
    pa.field("issuer", pa.string(), False),
    pa.field("applied_on", pa.date32(), False),
    pa.field("issued_on", pa.date32()),
    pa.field("activated_on", pa.date32()),
    pa.field("expires_on", pa.date32()),
    pa.field("cert_expires_on", pa.date32()),
    pa.field("sign_revoked_on", pa.date32()),
    pa.field("fee", pa.int64(), False),
    pa.field("moved_out_on", pa.date32()),
    pa.field("continued_on", pa.date32()),
    pa.field("pin_failures", pa.int64(), False),
])
