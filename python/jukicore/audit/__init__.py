"""The audit log: one schema for every tier, one writer.

Every store (a municipality's register, a prefecture's or the center's identity
store) keeps an ``audit`` table of this one shape (:data:`AUDIT_TABLE`), and every
entry is written here, in the session (the transaction) of the change it records:
the change and its entry commit together or not at all.

An entry names who acted (``actor``; ``actor_kind``: an operator, a node, an
agency), what they did (``action``, as ``area.verb``), on what (``target``: a
resident code, a municipality, a block), the notification it came from, and a
free-text ``detail``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jukicore.access.actors import Actor
from jukicore.store import Column, Session, Table, utcnow

__all__ = ["AUDIT_TABLE", "LATER_COLUMNS", "entry", "write", "write_many"]

#: The audit table of every store.
AUDIT_TABLE = Table("audit", (
    Column("id", "serial", False),
    Column("at", "ts", False),
    Column("actor", "text", False),
    Column("actor_kind", "text", False),
    Column("action", "text", False),
    Column("target", "text"),
    Column("notification_id", "text"),
    Column("detail", "text"),
))
#: Columns an identity store's audit table gained when the schemas became one (its
#: older entries hold null there).
LATER_COLUMNS: tuple[Column, ...] = (Column("actor_kind", "text"),
                                     Column("notification_id", "text"))

_COLUMNS = [c.name for c in AUDIT_TABLE.columns if c.type != "serial"]
_INSERT = (f"INSERT INTO audit ({', '.join(_COLUMNS)})"
           f" VALUES ({', '.join('?' * len(_COLUMNS))})")


def _who(actor: Actor | str, kind: str | None) -> tuple[str, str]:
    """(actor, actor_kind): an :class:`~jukicore.access.Actor`, or an actor's name with
    its ``kind`` (default: a node acting by its id, as an upper store applying a
    municipality's packet)."""
    if isinstance(actor, str):
        return actor, kind or "node"
    return str(actor), actor.kind


def entry(s: Session, actor: Actor | str, action: str, target: str | None = None,
          detail: str | None = None, *, notification_id: str | None = None,
          at: Any = None, actor_kind: str | None = None) -> tuple[Any, ...]:
    """One entry as a row for :func:`write_many` (``at``: the session's timestamp
    parameter, now by default)."""
    name, kind = _who(actor, actor_kind)
    return (s.ts(utcnow()) if at is None else at, name, kind, action, target,
            notification_id, detail)


def write(s: Session, actor: Actor | str, action: str, target: str | None = None,
          detail: str | None = None, *, notification_id: str | None = None) -> None:
    """Write one entry in the session of the change it records."""
    s.execute(_INSERT, entry(s, actor, action, target, detail,
                             notification_id=notification_id))


def write_many(s: Session, rows: Iterable[tuple[Any, ...]]) -> None:
    """Write entries made by :func:`entry` (a batch's, at its end)."""
    s.executemany(_INSERT, rows)
