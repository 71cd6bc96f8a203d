"""Reading the audit log with filters (``jukicore audit show``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jukicore.store import Session

from .chain import at_micros

__all__ = ["entries"]


def entries(s: Session, *, actor: str | None = None, operator: str | None = None,
            target: str | None = None,
            action: str | None = None, since: dt.datetime | None = None,
            until: dt.datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Entries in ``seq`` order: of ``actor`` (the name as recorded), of ``operator`` (an
    operator's id: recorded as the id or as ``operator:ID@lg_code``), on ``target``, of
    ``action``, at or after ``since`` and before ``until`` (aware or UTC datetimes), at
    most ``limit``."""
    where: list[str] = []
    params: list[Any] = []
    for col, v in (("actor", actor), ("target", target), ("action", action)):
        if v is not None:
            where.append(f"{col} = ?")
            params.append(v)
    if operator is not None:
        esc = operator.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("actor_kind = 'operator' AND (actor = ? OR actor LIKE ? ESCAPE '\\')")
        params += [operator, f"operator:{esc}@%"]
    for op, when in ((">=", since), ("<", until)):
        if when is not None:
            where.append(f"at {op} ?")
            params.append(s.ts(at_micros(when)[0]))
    sql = ("SELECT seq, at, actor, actor_kind, action, target, notification_id, detail"
           " FROM audit")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq, id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    out = []
    for seq, at, *rest in s.query(sql, params):
        out.append({"seq": seq, "at": at_micros(at)[0].isoformat(),
                    **dict(zip(("actor", "actor_kind", "action", "target", "notification_id",
                                "detail"), rest, strict=True))})
    return out
