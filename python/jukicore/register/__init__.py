"""The municipal resident register (住民基本台帳) on SQLite (embedded default) or PostgreSQL.

>>> from jukicore.register import Actor, create_register
>>> reg = create_register("city.db", lg_code="131016", prefecture="東京都",
...                       municipality="千代田区", actor=Actor.operator("setup", "131016", "admin"))

See docs/register.md for the schema, the notification table and the rules.
"""

from __future__ import annotations

from jukicore.access.actors import Actor, check_permission

from ._schema import (
    ARTICLE7_ITEMS,
    FOREIGN_ITEMS,
    HISTORY_SCHEMA,
    HOUSEHOLD_SCHEMA,
    OUTBOX_SCHEMA,
    RECORD_ITEMS,
    RESIDENT_SCHEMA,
    RETENTION_YEARS,
    SCHEMA_VERSION,
)
from .events import EVENT_SCHEMA, KINDS, REASON_LABELS, events_table
from .store import (
    ApplyReport,
    LoadReport,
    Register,
    RejectedRow,
    create_register,
    open_register,
)

__all__ = [
    "ARTICLE7_ITEMS",
    "EVENT_SCHEMA",
    "FOREIGN_ITEMS",
    "HISTORY_SCHEMA",
    "HOUSEHOLD_SCHEMA",
    "KINDS",
    "OUTBOX_SCHEMA",
    "REASON_LABELS",
    "RECORD_ITEMS",
    "RESIDENT_SCHEMA",
    "RETENTION_YEARS",
    "SCHEMA_VERSION",
    "Actor",
    "ApplyReport",
    "LoadReport",
    "Register",
    "RejectedRow",
    "check_permission",
    "create_register",
    "events_table",
    "open_register",
]
