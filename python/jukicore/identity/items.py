"""What may leave a municipality: the one definition of identity confirmation info.

Identity confirmation info (本人確認情報, Basic Resident Registration Act art. 30-6)
is six items: the name, the date of birth, the sex, the address, the resident
code, and the change information (what changed, when, why). Nothing else of a
resident record ever leaves the municipality: the register's outbox, the
packets, the prefectures' and the center's stores are all built from this module.
"""

from __future__ import annotations

import pyarrow as pa

from jukicore.store.schema import Column

#: The four basic items and the resident code, as a resident record holds them.
PERSON_ITEMS: tuple[Column, ...] = (
    Column("resident_code", "int", False),
    Column("family_name", "text", False),
    Column("given_name", "text", False),
    Column("birth_date", "date", False),
    Column("sex", "small", False),
    Column("address", "text", False),
)
#: The change information: the record's status after the change, its date and reason.
CHANGE_ITEMS: tuple[Column, ...] = (
    Column("status", "text", False),
    Column("change_date", "date", False),
    Column("change_reason", "text", False),
)
#: Items of a resident record whose change is identity info for the upper stores.
IDENTITY_ITEMS: frozenset[str] = frozenset(
    {*(c.name for c in PERSON_ITEMS), "status"})

#: One change of identity confirmation info, as a municipality sends it: its number in
#: the municipality's sequence, the code it gave up (a code change), the items.
IDENTITY_COLUMNS: tuple[Column, ...] = (
    Column("seq", "int", False),
    PERSON_ITEMS[0],
    Column("previous_resident_code", "int"),
    *PERSON_ITEMS[1:],
    *CHANGE_ITEMS,
)
_CODES = frozenset({"resident_code", "previous_resident_code"})
_ARROW = {"int": pa.int64(), "small": pa.int8(), "text": pa.string(), "date": pa.date32()}

#: :data:`IDENTITY_COLUMNS` as Arrow (codes as uint64).
IDENTITY_SCHEMA: pa.Schema = pa.schema([
    pa.field(c.name, pa.uint64() if c.name in _CODES else _ARROW[c.type], c.nullable)
    for c in IDENTITY_COLUMNS])
