"""``jukicore audit alerts NODE|STORE``: suspicious operation patterns in an audit log
(:mod:`jukicore.audit.alerts`).

:func:`add_alerts_command` adds the command to the ``audit`` group of
:mod:`jukicore.cli.audit`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from jukicore.audit.alerts import JST, Thresholds, scan
from jukicore.errors import InvalidInputError

from ._common import Credentials, operator_options

__all__ = ["add_alerts_command", "audit_reader"]


def _when(value: str | None, what: str) -> dt.datetime | None:
    """An ISO date (that day's start, Japan time) or datetime (naive: Japan time)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), JST)
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"--{what}: {value!r} is not an ISO date or date and time"
                                " (2026-03-01, 2026-03-01T09:00, 2026-03-01T00:00+00:00)"
                                ) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=JST)


@contextmanager
def audit_reader(target: str, creds: Credentials, what: str) -> Iterator[None]:
    """Log ``creds`` in at the store ``target`` and let the one policy decide whether that
    operator may read its audit log (a register's ``register.export``, an upper store's
    ``identity.export``: supervisors and admins); the read is itself an entry
    (``audit.read``, naming what was asked) before anything is shown. A refusal is an
    ``access.denied`` entry and exit 1."""
    from jukicore.access import actors as perm
    from jukicore.register import Register

    from .operator import login_and_record, open_store_of_any_kind

    with open_store_of_any_kind(target) as store:
        permission = perm.EXPORT if isinstance(store, Register) else perm.ID_EXPORT
        login_and_record(store, creds, permission, "audit.read", what)
    yield


def store_of(where: str) -> str:
    """A node directory's store (its node.json), else ``where`` itself (a SQLite path
    or a ``postgresql://`` URI)."""
    if "://" not in where and os.path.isdir(where):
        from jukicore.network.node import Node

        return Node.open(where).store_target()
    return where


_THRESHOLDS = {f.name: f.type for f in Thresholds.__dataclass_fields__.values()}


def _thresholds(pairs: tuple[str, ...]) -> Thresholds:
    values: dict[str, Any] = {}
    defaults = Thresholds()
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in _THRESHOLDS:
            raise InvalidInputError(f"--threshold {pair!r}: expected NAME=VALUE, NAME one of"
                                    f" {', '.join(sorted(_THRESHOLDS))}")
        default = getattr(defaults, name)
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                values[name] = text.lower() in ("true", "1", "yes")
            elif isinstance(default, int):
                values[name] = int(text)
            elif isinstance(default, float):
                values[name] = float(text)
            elif isinstance(default, dt.time):
                values[name] = dt.time.fromisoformat(text)
            elif isinstance(default, dt.timedelta):
                values[name] = dt.timedelta(minutes=float(text))
            else:  # work_days
                values[name] = frozenset(int(d) for d in text.split(",") if d.strip())
        except ValueError:
            raise InvalidInputError(f"--threshold {name}: {text!r} is not a valid value"
                                    " (durations are in minutes, times HH:MM, work_days"
                                    " 0-6 comma-separated)") from None
    return Thresholds(**values)


def add_alerts_command(group: click.Group) -> None:
    """Add ``alerts`` to the ``audit`` group."""

    @group.command("alerts")
    @click.argument("where", metavar="NODE|STORE")
    @click.option("--since", help="From this date or time (ISO; Japan time unless given).")
    @click.option("--until", help="Up to (not including) this date or time; default now.")
    @click.option("--threshold", "thresholds", multiple=True, metavar="NAME=VALUE",
                  help="Change a rule's threshold (docs/monitoring.md), e.g. "
                       "failed_logins=3, spread_window=30 (minutes), work_start=09:00.")
    @click.option("--json", "as_json", is_flag=True, help="Print the alerts as JSON.")
    @operator_options
    def alerts(where: str, since: str | None, until: str | None,
               thresholds: tuple[str, ...], as_json: bool, creds: Credentials) -> None:
        """List suspicious operation patterns in the audit log of a node or store:
        activity off hours or on holidays, mass reads, reads over many households,
        operators acting on their own household, failed-login bursts, certificates
        without a counter request. Each alert gives its reason and the ids of the
        entries behind it. Exit 0 (alerts are output, not failures). Needs a supervisor's
        or an admin's login (--operator / --card ...); the read is itself audited."""
        target = store_of(where)
        with audit_reader(target, creds, f"audit alerts since={since} until={until}"):
            pass
        report = scan(target, since=_when(since, "since"),
                      until=_when(until, "until"), thresholds=_thresholds(thresholds))
        if as_json:
            click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
            return
        for a in report.alerts:
            at = a.at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
            ids = ", ".join(str(i) for i in a.entries[:20])
            more = f", ... ({len(a.entries)} entries)" if len(a.entries) > 20 else ""
            click.echo(f"{at} JST  {a.rule}  {a.operator}: {a.reason} [entries {ids}{more}]")
        for rule, why in report.skipped:
            click.echo(f"skipped {rule}: {why}")
        click.echo(f"{len(report.alerts)} alert(s) in {report.entries} entries")

