"""The audit log: one schema for every tier, one writer, a tamper-evident Merkle tree.

Every store (a municipality's register, a prefecture's or the center's identity
store) keeps an ``audit`` table of this one shape (:data:`AUDIT_TABLE`), and every
entry is written here, in the session (the transaction) of the change it records:
the change and its entry commit together or not at all.

An entry names who acted (``actor``; ``actor_kind``: an operator, a node, an
agency), what they did (``action``, as ``area.verb``), on what (``target``: a
resident code, a municipality, a block), the notification it came from, and a
free-text ``detail``. Each entry gets a gap-free sequence number ``seq`` and is a
leaf of the store's RFC 6962 Merkle tree (:mod:`jukicore.audit.chain`), whose state
is updated in the same transaction; signed checkpoints of the tree and
:func:`verify` detect an edited, deleted, inserted or reordered entry (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jukicore.access.actors import Actor
from jukicore.store import Column, Session, Table, utcnow

from . import chain

__all__ = ["AUDIT_TABLE", "LATER_COLUMNS", "Problem", "VerifyReport", "chain", "entry",
           "verify", "write", "write_many"]

#: The audit table of every store (``seq`` was added by schema version 6).
AUDIT_TABLE = Table("audit", (
    Column("id", "serial", False),
    Column("at", "ts", False),
    Column("actor", "text", False),
    Column("actor_kind", "text", False),
    Column("action", "text", False),
    Column("target", "text"),
    Column("notification_id", "text"),
    Column("detail", "text"),
    chain.SEQ_COLUMN,
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
    write_many(s, [entry(s, actor, action, target, detail, notification_id=notification_id)])


def write_many(s: Session, rows: Iterable[tuple[Any, ...]]) -> None:
    """Write entries made by :func:`entry` (a batch's, at its end): numbered after the
    log's last entry and hashed into its tree, in this session's transaction."""
    rows = list(rows)
    if rows:
        s.executemany(_INSERT, chain.append(s, rows))


from .verifier import Problem, VerifyReport, verify  # noqa: E402  (uses write's module)
