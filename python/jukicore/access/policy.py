"""The one deny-by-default policy, enforced: working hours, overrides, read quotas, and
the audit of every denial and every read of personal data.

:mod:`jukicore.access.actors` says which (tier, actor kind, role) may do what. This
module adds what depends on time and on the store:

* **working hours** per operator role (:data:`DEFAULT_HOURS`; clerks 08:30-17:15 on
  weekdays that are not Japanese public holidays). Outside them an operator acts only
  with a supervisor's override (:meth:`Actor.with_override`): another operator of the
  same place with the ``supervisor`` role, who may do the same thing, and a reason;
  audited as ``access.override``.
* **fees** of the counter's services (:data:`DEFAULT_FEES`; register viewing 1,000 yen
  per 30 minutes started), as ``fee.SERVICE`` settings in yen.
* **a daily read quota** per operator role (:data:`DEFAULT_QUOTAS`; clerks 500 record
  reads a day), counted from the store's ``register.read`` / ``identity.read`` audit
  entries of that (Japanese) day.
* **fees** per municipality (:data:`DEFAULT_FEES`: a certificate of residence 300 yen,
  register viewing 1,000 yen per 30 minutes started), recorded with each service:
  settings ``fee.SERVICE`` (yen).
* **the configuration** of all three lives in the store (table ``policy_config``), changed
  only by an admin (``policy.configure``), each change audited.
* **a denial** changes nothing, leaves an ``access.denied`` entry written in its own
  transaction (the action's is rolled back), and raises :class:`PermissionDeniedError`
  naming the actor, the permission and the reason.

Hours and days are those of Japan (UTC+9, no daylight saving); every check takes an
explicit ``now`` (default: the clock) so that nights and holidays can be tested.
Nodes and agencies have no working hours and no quota (the nightly synchronization
runs at night); their reads are audited all the same.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jukicore import audit
from jukicore.errors import InvalidInputError, JukiError, PermissionDeniedError
from jukicore.store.backend import Backend, Session, utcnow
from jukicore.store.schema import Column, Ddl, Table

from .actors import (
    CONFIGURE,
    ID_READ,
    POLICY,
    READ,
    Actor,
    refusal,
)

__all__ = [
    "ACCESS_ACTIONS",
    "DEFAULT_FEES",
    "DEFAULT_HOURS",
    "DEFAULT_QUOTAS",
    "DENIED",
    "JST",
    "OVERRIDE",
    "POLICY_TABLE",
    "Denied",
    "Gate",
    "Hours",
    "business_day",
    "migration_statements",
    "read_detail",
]

#: Japan's time (no daylight saving): working hours and days are Japanese.
JST = dt.timezone(dt.timedelta(hours=9), "JST")

DENIED = "access.denied"  #: audit action of a refused action
OVERRIDE = "access.override"  #: audit action of a supervisor's out-of-hours override
CONFIGURED = "policy.configure"  #: audit action of a change of the configuration

#: Audit actions that record access (who read, who was refused, who acted under an
#: override), not a change: stores' content digests leave them out.
ACCESS_ACTIONS: frozenset[str] = frozenset({"register.read", "identity.read", DENIED,
                                            OVERRIDE})

#: Read permissions whose audit entries the daily quota counts.
READ_PERMISSIONS = frozenset({READ, ID_READ})

#: The policy's configuration in every store (one row per setting; absent: the default).
POLICY_TABLE = Table("policy_config", (
    Column("key", "text", False),
    Column("value", "text", False),
    Column("changed_at", "ts", False),
    Column("changed_by", "text", False),
), ("key",))

#: Index that makes the quota's count of an operator's reads of a day a range scan.
_AUDIT_INDEX = ("audit_actor_action_at", "audit", "actor, action, at", False, None)


def migration_statements(ddl: Ddl) -> list[str]:
    """Schema version 8 of both store kinds: the policy's configuration table and the
    index of the audit by actor, action and time (the read quota's count)."""
    return [ddl.create_table(POLICY_TABLE), ddl.create_index(_AUDIT_INDEX)]


@dataclass(frozen=True)
class Hours:
    """When a role may act: ``start``-``end`` (Japanese time, end excluded) on business
    days (weekdays that are not public holidays) or, ``every_day``, on every day."""

    start: dt.time
    end: dt.time
    every_day: bool = False

    @classmethod
    def parse(cls, text: str) -> Hours | None:
        """``"08:30-17:15"`` (business days), ``"daily 08:30-17:15"``, or ``"always"``
        (None: no limit). Anything else is an :class:`InvalidInputError`."""
        t = text.strip()
        if t == "always":
            return None
        m = re.fullmatch(r"(daily )?([0-2]\d):([0-5]\d)-([0-2]\d):([0-5]\d)", t)
        if not m:
            raise InvalidInputError(
                f"working hours {text!r}: expected 'HH:MM-HH:MM', 'daily HH:MM-HH:MM' or "
                "'always'")
        h1, m1, h2, m2 = (int(g) for g in m.groups()[1:])
        if h1 > 23 or h2 > 24 or (h2 == 24 and m2) or (h1, m1) >= (h2, m2):
            raise InvalidInputError(f"working hours {text!r}: the start must come before the"
                                    " end, within one day")
        end = dt.time(23, 59, 59, 999999) if h2 == 24 else dt.time(h2, m2)
        return cls(dt.time(h1, m1), end, bool(m.group(1)))

    def __str__(self) -> str:
        span = f"{self.start:%H:%M}-{self.end:%H:%M}"
        return f"daily {span}" if self.every_day else span

    def allows(self, now: dt.datetime) -> str | None:
        """Why ``now`` (Japanese time) is outside these hours; None when inside."""
        local = _japan(now)
        if not self.every_day and not business_day(local.date()):
            return f"{local.date().isoformat()} is not a business day (weekend or holiday)"
        if not self.start <= local.time() < self.end:
            return f"{local:%H:%M} is outside working hours {self}"
        return None


#: Default working hours per operator role (a role not listed: no limit).
DEFAULT_HOURS: dict[str, str] = {"clerk": "08:30-17:15"}
#: Default daily record-read quota per operator role (a role not listed: no quota).
DEFAULT_QUOTAS: dict[str, int] = {"clerk": 500, "supervisor": 5000}

#: Default fees of the counter's services in yen (``fee.SERVICE`` settings): the seeds'
#: 300 yen for a certificate of residence (住民票の写し, also when issued for another
#: municipality); ``viewing``, register viewing (閲覧) per 30 minutes started; a card's
#: issue (jukicore.cards): a resident register card 500 yen, a first My Number card free.
DEFAULT_FEES: dict[str, int] = {"certificate": 300, "viewing": 1000, "card_juki_basic": 500,
                                "card_juki_photo": 500, "card_mynumber": 0}
#: The highest fee a setting may hold (a typo of a few digits is refused).
MAX_FEE = 100_000

_ROLE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _japan(now: dt.datetime) -> dt.datetime:
    return now.replace(tzinfo=JST) if now.tzinfo is None else now.astimezone(JST)


@lru_cache(maxsize=64)
def _holidays(year: int) -> frozenset[dt.date]:
    import holidays

    return frozenset(holidays.country_holidays("JP", years=year))


def business_day(day: dt.date) -> bool:
    """A weekday that is not a Japanese public holiday (``holidays`` package)."""
    return day.weekday() < 5 and day not in _holidays(day.year)


def _check_setting(key: str, value: str) -> str:
    """The setting's canonical text; an :class:`InvalidInputError` for an unknown key or
    a bad value."""
    if not isinstance(key, str) or not isinstance(value, str):
        raise InvalidInputError("a policy setting is a text key and a text value")
    what, _, role = key.partition(".")
    if what == "fee":
        return _check_fee(key, role, value)
    if what not in ("hours", "quota") or not _ROLE.fullmatch(role):
        raise InvalidInputError(f"unknown policy setting {key!r}: expected 'hours.ROLE',"
                                " 'quota.ROLE' (a role in lower case) or 'fee.SERVICE' ("
                                + ", ".join(sorted(DEFAULT_FEES)) + ")")
    if what == "hours":
        hours = Hours.parse(value)
        return "always" if hours is None else str(hours)
    v = value.strip()
    if v == "none":
        return v
    if not v.isascii() or not v.isdigit() or len(v) > 9:
        raise InvalidInputError(f"quota {value!r}: expected a number of record reads a day"
                                " (0 or more) or 'none'")
    return str(int(v))


def _check_fee(key: str, service: str, value: str) -> str:
    if service not in DEFAULT_FEES:
        raise InvalidInputError(f"unknown fee {key!r}: the services with a fee are "
                                + ", ".join(f"fee.{k}" for k in sorted(DEFAULT_FEES)))
    v = value.strip()
    if not v.isascii() or not v.isdigit() or len(v) > 9 or int(v) > MAX_FEE:
        raise InvalidInputError(f"fee {value!r}: expected a whole number of yen from 0 to"
                                f" {MAX_FEE:,}")
    return str(int(v))


class Denied(Exception):
    """A check failed inside the action's transaction (:meth:`Gate.deny`): within
    :meth:`Gate.session` the transaction is rolled back and the denial audited; a batch
    answering many requests in one transaction catches it to refuse one of them
    (:meth:`Gate.denied_entry`, :meth:`Gate.denied_error`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason



@dataclass(frozen=True)
class _Settings:
    hours: dict[str, Hours | None]
    quotas: dict[str, int | None]


class Gate:
    """The policy at one store: its ``tier`` and ``place`` (the municipality's code, or
    the prefecture's or the center's node id). Every workflow of the store goes through
    :meth:`session` (or :meth:`check`)."""

    def __init__(self, backend: Backend, tier: str, place: str) -> None:
        self._b = backend
        self.tier = tier
        self.place = place

    # -- the configuration ---------------------------------------------------------------

    def settings(self, s: Session) -> dict[str, str]:
        """Every setting in force (defaults, then what the store says)."""
        out = {f"hours.{r}": v for r, v in DEFAULT_HOURS.items()}
        out |= {f"quota.{r}": str(v) for r, v in DEFAULT_QUOTAS.items()}
        out |= {f"fee.{k}": str(v) for k, v in DEFAULT_FEES.items()}
        out |= dict(s.query("SELECT key, value FROM policy_config"))
        return dict(sorted(out.items()))

    def _settings(self, s: Session) -> _Settings:
        raw = self.settings(s)
        hours: dict[str, Hours | None] = {}
        quotas: dict[str, int | None] = {}
        for key, value in raw.items():
            what, _, role = key.partition(".")
            if what == "hours":
                hours[role] = Hours.parse(value)
            elif what == "quota":
                quotas[role] = None if value == "none" else int(value)
        return _Settings(hours, quotas)

    def fee(self, s: Session, service: str) -> int:
        """The fee in yen of ``service`` (a key of :data:`DEFAULT_FEES`) in force."""
        if service not in DEFAULT_FEES:
            raise InvalidInputError(f"no fee is set for {service!r}")
        return int(self.settings(s)[f"fee.{service}"])

    def configure(self, actor: Actor, key: str, value: str, *,
                  now: dt.datetime | None = None) -> str:
        """Set one setting (``hours.ROLE``: ``"08:30-17:15"``, ``"daily 08:30-17:15"`` or
        ``"always"``; ``quota.ROLE``: record reads a day or ``"none"``; ``fee.SERVICE``:
        yen). Admins only;
        audited as ``policy.configure``. Returns the value as stored."""
        with self.session(actor, CONFIGURE, now=now) as s:
            canonical = _check_setting(key, value)
            old = s.query("SELECT value FROM policy_config WHERE key = ?", (key,))
            s.execute("DELETE FROM policy_config WHERE key = ?", (key,))
            s.execute("INSERT INTO policy_config (key, value, changed_at, changed_by)"
                      " VALUES (?, ?, ?, ?)", (key, canonical, s.ts(utcnow()), str(actor)))
            before = old[0][0] if old else "default"
            audit.write(s, actor, CONFIGURED, self.place, f"{key}: {before} -> {canonical}")
        return canonical

    # -- the checks --------------------------------------------------------------------

    @contextmanager
    def session(self, actor: Actor, permission: str, *, now: dt.datetime | None = None,
                target: str | None = None, write: bool = True,
                bulk: bool = False) -> Iterator[Session]:
        """A transaction for ``actor`` to do ``permission`` in, once the policy allows it.

        Refused (by the table, the hours or the quota; or by :meth:`deny` inside): the
        transaction is rolled back, an ``access.denied`` entry is written in a transaction
        of its own and :class:`PermissionDeniedError` raised."""
        why = refusal(actor, permission, self.tier, self.place)
        if why is not None:
            self._refuse(actor, permission, why, target)
        opener = self._b.bulk_session if bulk else self._b.session
        try:
            with opener(write=write) as s:
                self._dynamic(s, actor, permission, now)
                yield s
        except Denied as d:
            self._refuse(actor, permission, d.reason, target)

    def check(self, actor: Actor, permission: str, *, now: dt.datetime | None = None,
              target: str | None = None) -> None:
        """Check (and audit an override) in a transaction of its own, for workflows that
        do their work in several transactions. Nodes and agencies (no hours, no quota)
        need no transaction."""
        self.precheck(actor, permission, target=target)
        if isinstance(actor, Actor) and actor.kind == "operator":
            with self.session(actor, permission, now=now, target=target):
                pass

    def precheck(self, actor: Actor, permission: str, *, target: str | None = None) -> None:
        """The table's part of the check alone (no transaction unless refused): for a
        workflow to refuse an actor before it looks at its input."""
        why = refusal(actor, permission, self.tier, self.place)
        if why is not None:
            self._refuse(actor, permission, why, target)

    @staticmethod
    def deny(reason: str) -> None:
        """Refuse from inside :meth:`session` (e.g. a read past the quota once its size is
        known): what the transaction did is rolled back and the denial audited."""
        raise Denied(reason)

    def charge(self, s: Session, actor: Actor, permission: str, records: int) -> None:
        """Refuse (:meth:`deny`) a whole-table read of ``records`` records that would take
        ``actor`` past today's quota."""
        left = self.quota_left(s, actor, permission)
        if left is not None and records > left:
            self.deny(f"daily read quota: {records} records asked, {max(left, 0)} left today")

    def quota_left(self, s: Session, actor: Actor, permission: str) -> int | None:
        """Record reads ``actor`` has left today for ``permission`` (None: no quota).

        Today is the clock's (Japanese) day, not a ``now`` given to a check: the entries
        counted carry the clock's time, and a chosen ``now`` must not reset the count."""
        if actor.kind != "operator" or permission not in READ_PERMISSIONS:
            return None
        cfg = self._settings(s)
        limits = [cfg.quotas.get(r) for r in actor.roles
                  if permission in POLICY.get((self.tier, "operator", r), frozenset())]
        if not limits or any(q is None for q in limits):
            return None
        limit = max(q for q in limits if q is not None)
        return limit - self._reads_today(s, actor, permission)

    def _reads_today(self, s: Session, actor: Actor, permission: str) -> int:
        day = _japan(utcnow()).date()
        start = dt.datetime.combine(day, dt.time(), JST)
        params = (str(actor), permission, s.ts(start), s.ts(start + dt.timedelta(days=1)))
        where = "actor = ? AND action = ? AND at >= ? AND at < ?"
        single = int(s.scalar(f"SELECT count(*) FROM audit WHERE {where}"
                              " AND target IS NOT NULL", params))
        whole = sum(_record_count(d) for (d,) in s.query(
            f"SELECT detail FROM audit WHERE {where} AND target IS NULL", params))
        return single + whole

    def admit(self, s: Session, actor: Actor, permission: str, *,
              now: dt.datetime | None = None, entries: list[tuple[Any, ...]]) -> None:
        """The checks :meth:`session` makes inside its transaction (an operator's account,
        hours and quota), for a batch answering several actors' requests in one
        transaction: a refusal raises :class:`Denied` having written nothing, and the
        entry of a supervisor's override is appended to ``entries`` (made by
        :func:`jukicore.audit.entry`) for the batch to write with the request's own
        entries, or to drop with them when the request is refused after all."""
        self._dynamic(s, actor, permission, now, entries)

    def _dynamic(self, s: Session, actor: Actor, permission: str,
                 now: dt.datetime | None,
                 entries: list[tuple[Any, ...]] | None = None) -> None:
        if actor.kind != "operator":
            return  # nodes and agencies: no hours, no quota
        _enabled(s, actor, "")
        moment = now or utcnow()
        cfg = self._settings(s)
        granting = [r for r in sorted(actor.roles)
                    if permission in POLICY.get((self.tier, "operator", r), frozenset())]
        outside = []
        for role in granting:
            hours = cfg.hours.get(role)
            why = None if hours is None else hours.allows(moment)
            if why is None:
                break
            outside.append(why)
        else:
            reason = outside[0] if outside else "no role grants it"
            self._override(s, actor, permission, reason, entries)
        left = self.quota_left(s, actor, permission)
        if left is not None and left <= 0:
            raise Denied("daily read quota used up for today")

    def _override(self, s: Session, actor: Actor, permission: str, reason: str,
                  entries: list[tuple[Any, ...]] | None = None) -> None:
        ov = actor.override
        if ov is None:
            raise Denied(f"{reason}; a supervisor's override is needed")
        sup = ov.supervisor
        _enabled(s, sup, "the supervisor's ")
        if not isinstance(sup, Actor) or sup.kind != "operator" or "supervisor" not in sup.roles:
            raise Denied(f"{reason}; the override is not a supervisor's")
        if sup.name == actor.name:
            raise Denied(f"{reason}; an operator cannot override for themselves")
        if sup.override is not None:
            raise Denied(f"{reason}; an override cannot rest on another override")
        if not isinstance(ov.reason, str) or not ov.reason.strip():
            raise Denied(f"{reason}; the override gives no reason")
        why = refusal(sup, permission, self.tier, self.place)
        if why is not None:
            raise Denied(f"{reason}; the supervisor may not override: {why}")
        row = audit.entry(s, actor, OVERRIDE, None,
                          f"{permission} ({reason}) under the override of {sup}: "
                          f"{ov.reason.strip()[:500]}")
        if entries is None:
            audit.write_many(s, [row])
        else:
            entries.append(row)

    @staticmethod
    def denied_entry(s: Session, actor: object, permission: str, reason: str,
                     target: str | None) -> tuple[Any, ...]:
        """The ``access.denied`` entry of a refusal, for :func:`jukicore.audit.write_many`
        (an actor that is no :class:`Actor` is recorded as ``unknown``)."""
        if isinstance(actor, Actor):
            return audit.entry(s, actor, DENIED, target, f"{permission}: {reason}")
        return audit.entry(s, "unknown", DENIED, target, f"{permission}: {reason}",
                           actor_kind="unknown")

    @staticmethod
    def denied_error(actor: object, permission: str, reason: str) -> PermissionDeniedError:
        """The error a refusal raises (or a batch returns for the refused request)."""
        name = str(actor) if isinstance(actor, Actor) else "an unknown actor"
        return PermissionDeniedError(f"{name} may not {permission}: {reason}")

    def record_denials(self, denials: list[tuple[object, str, str, str | None]]) -> None:
        """Write the ``access.denied`` entries of ``(actor, permission, reason, target)``
        refusals in a transaction of their own (the denials stand regardless)."""
        if not denials:
            return
        with suppress(JukiError), self._b.session() as s:
            audit.write_many(s, [self.denied_entry(s, *d) for d in denials])

    def _refuse(self, actor: object, permission: str, reason: str,
                target: str | None) -> None:
        self.record_denials([(actor, permission, reason, target)])
        raise self.denied_error(actor, permission, reason)


def _enabled(s: Session, actor: Actor, whose: str) -> None:
    """Refuse an operator whose account at this store is disabled: a session opened
    before the account was disabled ends with it (an actor without an account here, as
    library callers build, is judged by the table alone)."""
    rows = s.query("SELECT enabled FROM operator WHERE id = ?", (actor.name,))
    if rows and not bool(rows[0][0]):
        raise Denied(f"{whose}account {actor.name} is disabled")


def read_detail(what: str, count: int | None, purpose: str | None) -> str:
    """The detail of a read's audit entry: what was read, how many records (whole-table
    reads; the quota counts them), and the purpose."""
    why = purpose.strip()[:200] if isinstance(purpose, str) and purpose.strip() else \
        "unspecified"
    head = what if count is None else f"{count} records: {what}"
    return f"{head}; purpose: {why}"


def _record_count(detail: Any) -> int:
    m = re.match(r"(\d+) records: ", str(detail or ""))
    return int(m.group(1)) if m else 1
