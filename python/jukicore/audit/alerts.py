"""Monitoring of suspicious operation patterns: rules over a store's audit log.

:func:`scan` reads the ``audit`` table of a store (a municipality's register, a
prefecture's or the center's identity store) with the store's Arrow bulk read and
applies six rules to the entries of operators (``actor_kind = 'operator'``; nodes
run their nightly work at night by design and are not judged by these rules):

``off_hours``
    An operator acting outside working hours (default 08:30-17:30, Japan time), on a
    weekend, a Japanese public holiday (the ``holidays`` package) or in the year-end
    closure (29 December - 3 January). One alert per operator and day.
``mass_read``
    An operator's reads (``register.read``, ``identity.read``) on one day above
    ``max(mass_read_floor, mass_read_factor x`` the median of their daily reads over the
    previous ``norm_days`` days on which the operator did anything``)`` (such a day
    without reads counts as 0; days off and days before the log's first entry do not
    count).
``read_spread``
    An operator's reads of records in ``spread_households`` or more different
    households within ``spread_window``. Households come from the register's records;
    at an identity store (no households) each record counts as its own household.
``own_household``
    An operator acting on a record of their own household: the ``operator`` table's
    ``resident_code`` gives the operator's record, the register its household. Skipped
    (and said so in :attr:`AlertReport.skipped`) when the store has no operator table,
    no ``resident_code`` column in it, or no households.
``failed_logins``
    ``failed_logins`` or more ``operator.login_failed`` entries for one operator id
    (the entry's target, else its actor) within ``failed_window``.
``certificate_without_request``
    A ``certificate.issue`` with no ``counter.request`` for the same target by the
    same operator earlier the same day (Japan time).

Every :class:`Alert` names its rule, a reason in words, the operator, the time of its
first and last entry and the ids of the audit entries behind it. Times are stored
UTC; days and hours are Japan Standard Time (UTC+9, no daylight saving time).

The log is handled column-wise (pyarrow, numpy); Python loops run over flagged groups
and, for ``read_spread``, only over the reads of operators who read at least
``spread_households`` households in the whole period.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jukicore.errors import InvalidInputError, JukiError
from jukicore.store import Backend, Session, connect, utcnow
from jukicore.store.backend import redact_uri

__all__ = ["JST", "RULES", "Alert", "AlertReport", "Thresholds", "scan", "scan_backend"]

#: Japan Standard Time (no daylight saving time).
JST = dt.timezone(dt.timedelta(hours=9), "JST")
#: The rules, in the order alerts are reported.
RULES = ("off_hours", "mass_read", "read_spread", "own_household", "failed_logins",
         "certificate_without_request")
READ_ACTIONS = ("register.read", "identity.read")

_US_PER_DAY = 86_400_000_000
_JST_US = 9 * 3_600_000_000
_LOG_SCHEMA = pa.schema([("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC")),
                         ("actor", pa.string()), ("actor_kind", pa.string()),
                         ("action", pa.string()), ("target", pa.string())])
_OPERATOR_RE = r"^operator:(.*?)(?:@[0-9]{6})?$"


@dataclass(frozen=True)
class Thresholds:
    """The rules' parameters (defaults documented in docs/monitoring.md)."""

    work_start: dt.time = dt.time(8, 30)
    work_end: dt.time = dt.time(17, 30)
    #: working weekdays (Monday = 0)
    work_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    #: municipal offices close 29 December - 3 January
    year_end_closure: bool = True
    mass_read_floor: int = 50
    mass_read_factor: float = 5.0
    norm_days: int = 30
    spread_households: int = 30
    spread_window: dt.timedelta = dt.timedelta(hours=1)
    failed_logins: int = 5
    failed_window: dt.timedelta = dt.timedelta(minutes=10)

    def __post_init__(self) -> None:
        if not self.work_start < self.work_end:
            raise InvalidInputError("working hours: work_start must be before work_end")
        if not set(self.work_days) <= set(range(7)):
            raise InvalidInputError("work_days are weekdays 0 (Monday) to 6 (Sunday)")
        for name in ("mass_read_floor", "norm_days", "spread_households", "failed_logins"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"threshold {name} must be a whole number >= 1,"
                                        f" not {v!r}")
        if not (isinstance(self.mass_read_factor, (int, float))
                and 0 < self.mass_read_factor < float("inf")):
            raise InvalidInputError("threshold mass_read_factor must be a positive number")
        for name in ("spread_window", "failed_window"):
            w = getattr(self, name)
            if not isinstance(w, dt.timedelta) or w <= dt.timedelta(0):
                raise InvalidInputError(f"threshold {name} must be a positive duration")


@dataclass(frozen=True)
class Alert:
    rule: str
    reason: str
    operator: str
    at: dt.datetime  #: the first entry's time (UTC)
    last: dt.datetime  #: the last entry's time (UTC)
    entries: tuple[int, ...]  #: audit entry ids, ascending

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["at"], d["last"] = self.at.isoformat(), self.last.isoformat()
        d["entries"] = list(self.entries)
        return d


@dataclass(frozen=True)
class AlertReport:
    alerts: tuple[Alert, ...]
    #: (rule, why) for each rule that could not run on this store
    skipped: tuple[tuple[str, str], ...]
    since: dt.datetime | None
    until: dt.datetime
    entries: int  #: entries in [since, until) examined
    thresholds: Thresholds = field(default_factory=Thresholds)

    def by_rule(self, rule: str) -> list[Alert]:
        return [a for a in self.alerts if a.rule == rule]

    def to_dict(self) -> dict[str, Any]:
        return {"since": None if self.since is None else self.since.isoformat(),
                "until": self.until.isoformat(), "entries": self.entries,
                "alerts": [a.to_dict() for a in self.alerts],
                "skipped": [{"rule": r, "reason": w} for r, w in self.skipped]}


def _aware(value: dt.datetime | dt.date | None, what: str) -> dt.datetime | None:
    """A bound as an aware datetime: a date is its day's start in Japan; a naive
    datetime is Japan time."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=JST)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), JST)
    raise InvalidInputError(f"{what} must be a date or a datetime, not {type(value).__name__}")


@contextmanager
def _opened(store: str | os.PathLike[str] | Backend) -> Iterator[Backend]:
    if isinstance(store, Backend):
        yield store
        return
    backend = connect(Path(store) if not isinstance(store, str) else store)
    try:
        yield backend
    finally:
        backend.close()


def scan(store: str | os.PathLike[str] | Backend, *, since: dt.datetime | dt.date | None = None,
         until: dt.datetime | dt.date | None = None, thresholds: Thresholds | None = None,
         now: dt.datetime | None = None) -> AlertReport:
    """The alerts of the entries in ``[since, until)`` of a store's audit log (a SQLite
    path, a ``postgresql://`` URI or an open :class:`~jukicore.store.Backend`). Nothing
    is written. ``until`` defaults to ``now`` (the clock); ``since`` to the log's start."""
    with _opened(store) as backend:
        return scan_backend(backend, since=since, until=until, thresholds=thresholds, now=now)


def scan_backend(backend: Backend, *, since: dt.datetime | dt.date | None = None,
                 until: dt.datetime | dt.date | None = None,
                 thresholds: Thresholds | None = None,
                 now: dt.datetime | None = None) -> AlertReport:
    """As :func:`scan`, on an open backend."""
    th = thresholds or Thresholds()
    lo = _aware(since, "since")
    hi = _aware(until, "until") or _aware(now, "now") or utcnow()
    if lo is not None and lo >= hi:
        raise InvalidInputError(f"since ({lo.isoformat()}) must be before until"
                                f" ({hi.isoformat()})")
    with backend.session(write=False) as s:
        if not s.table_exists("audit"):
            raise InvalidInputError(f"{redact_uri(backend.target)} has no audit log")
        has_residents = s.table_exists("residents")
        has_operators = s.table_exists("operator")
    # the norm of mass_read looks back norm_days before since
    start = None if lo is None else lo - dt.timedelta(days=th.norm_days + 1)
    with backend.bulk_session(write=False) as s:
        log = _read_log(s, start, hi)
        households = (s.fetch_arrow(
            "SELECT resident_code, household_id FROM residents", (),
            pa.schema([("resident_code", pa.uint64()), ("household_id", pa.int64())]))
            if has_residents else None)
    skipped: list[tuple[str, str]] = []
    own = None
    if not has_residents:
        skipped.append(("own_household", "the store holds no households (not a register)"))
    elif not has_operators:
        skipped.append(("own_household", "the store has no operator table"))
    else:
        own = _operator_codes(backend)
        if own is None:
            skipped.append(("own_household",
                            "the operator table has no resident_code column"))
    return _Scan(log, lo, hi, th, households, own).run(tuple(skipped))


def _read_log(s: Session, start: dt.datetime | None, end: dt.datetime) -> pa.Table:
    cols = ", ".join(_LOG_SCHEMA.names)
    if start is None:
        return s.fetch_arrow(f"SELECT {cols} FROM audit WHERE at < ? ORDER BY id",
                             (s.ts(end),), _LOG_SCHEMA)
    return s.fetch_arrow(f"SELECT {cols} FROM audit WHERE at >= ? AND at < ? ORDER BY id",
                         (s.ts(start), s.ts(end)), _LOG_SCHEMA)


def _operator_codes(backend: Backend) -> pa.Table | None:
    """(id, resident_code) of operators with a residence record; None without the column
    (its own session: a failed statement ends a PostgreSQL transaction)."""
    try:
        with backend.session(write=False) as s:
            rows = s.query("SELECT id, resident_code FROM operator"
                           " WHERE resident_code IS NOT NULL")
    except JukiError:
        return None
    return pa.table({"operator": pa.array([str(r[0]) for r in rows], pa.string()),
                     "resident_code": pa.array([int(r[1]) for r in rows], pa.int64())})


def _fmt_local(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, JST).strftime("%H:%M")


def _utc(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))


def _day(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(day))


def _runs(keys: np.ndarray[Any, Any]) -> list[tuple[int, int]]:
    """[start, end) of each run of equal values in a sorted array."""
    if len(keys) == 0:
        return []
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    edges = np.concatenate(([0], cut, [len(keys)]))
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges.tolist())]


class _Scan:
    def __init__(self, log: pa.Table, lo: dt.datetime | None, hi: dt.datetime,
                 th: Thresholds, households: pa.Table | None, own: pa.Table | None) -> None:
        self.th, self.lo, self.hi = th, lo, hi
        self.households, self.own = households, own
        self.id = log.column("id").to_numpy()
        at = pc.cast(log.column("at"), pa.int64()).to_numpy()
        self.at = at
        local = at + _JST_US
        self.day = local // _US_PER_DAY
        self.tod = local % _US_PER_DAY
        # actions as small integers (a large log holds few distinct actions)
        act = pc.dictionary_encode(log.column("action")).combine_chunks()
        self.action_names: list[str] = act.dictionary.to_pylist()
        self.action = act.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        self.target = log.column("target").combine_chunks()
        is_op = pc.equal(log.column("actor_kind"), "operator").fill_null(False).to_numpy(
            zero_copy_only=False)
        self.in_range = np.ones(len(at), bool) if lo is None else at >= _us(lo)
        name = pc.replace_substring_regex(log.column("actor"), _OPERATOR_RE, r"\1")
        # operators as small integers (for grouping), their names aside
        enc = pc.dictionary_encode(name).combine_chunks()
        self.names: list[str] = enc.dictionary.to_pylist()
        self.actor = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        self.op = np.where(is_op, self.actor, -1)
        # a target that is a resident code (11 digits), as an integer (else -1)
        is_code = pc.match_substring_regex(self.target, r"^[0-9]{11}$").fill_null(False)
        digits = pc.if_else(is_code, self.target, "-1")
        self.code = pc.cast(digits, pa.int64()).to_numpy()
        self.alerts: list[Alert] = []

    def run(self, skipped: tuple[tuple[str, str], ...]) -> AlertReport:
        self.off_hours()
        self.mass_read()
        self.read_spread()
        if self.own is not None:
            self.own_household()
        self.failed_logins()
        self.certificate_without_request()
        order = {r: i for i, r in enumerate(RULES)}
        alerts = sorted(self.alerts, key=lambda a: (a.at, order[a.rule], a.operator))
        return AlertReport(tuple(alerts), skipped, self.lo, self.hi,
                           int(self.in_range.sum()), self.th)

    def _add(self, rule: str, reason: str, operator: str, rows: np.ndarray[Any, Any]) -> None:
        at = self.at[rows]
        self.alerts.append(Alert(rule, reason, operator, _utc(at.min()), _utc(at.max()),
                                 tuple(sorted(int(i) for i in self.id[rows]))))

    def _by_op_day(self, mask: np.ndarray[Any, Any]) -> Iterator[tuple[int, int,
                                                                      np.ndarray[Any, Any]]]:
        """(operator, day, rows) of the rows in ``mask``, in time order within a group."""
        rows = np.flatnonzero(mask)
        order = np.lexsort((self.at[rows], self.day[rows], self.op[rows]))
        rows = rows[order]
        key = self.op[rows] * (1 << 32) + self.day[rows]
        for a, b in _runs(key):
            yield int(self.op[rows[a]]), int(self.day[rows[a]]), rows[a:b]

    # -- rules ------------------------------------------------------------------------------

    def _closed_days(self) -> dict[int, str]:
        """Days (as day numbers) the office is closed on a weekday, with their names."""
        if len(self.day) == 0:
            return {}
        first, last = _day(int(self.day.min())), _day(int(self.day.max()))
        out: dict[int, str] = {}
        for d, name in holidays.country_holidays(
                "JP", years=range(first.year, last.year + 1)).items():
            out[(d - dt.date(1970, 1, 1)).days] = f"public holiday ({name})"
        if self.th.year_end_closure:
            for y in range(first.year - 1, last.year + 1):
                for d in [dt.date(y, 12, 29) + dt.timedelta(days=k) for k in range(6)]:
                    out.setdefault((d - dt.date(1970, 1, 1)).days, "year-end closure")
        return out

    def off_hours(self) -> None:
        th = self.th
        closed = self._closed_days()
        weekday = (self.day + 3) % 7  # 1970-01-01 was a Thursday
        start = _tod_us(th.work_start)
        end = _tod_us(th.work_end)
        off_day = ~np.isin(weekday, sorted(th.work_days)) | np.isin(self.day, list(closed))
        off = off_day | (self.tod < start) | (self.tod >= end)
        hours = f"{th.work_start:%H:%M}-{th.work_end:%H:%M}"
        for op, day, rows in self._by_op_day(off & (self.op >= 0) & self.in_range):
            d = _day(day)
            if day in closed:
                why = f"on {d.isoformat()}, a {closed[day]}"
            elif int(weekday[rows[0]]) not in th.work_days:
                why = f"on {d.isoformat()}, a {d:%A}"
            else:
                why = f"on {d.isoformat()} outside working hours {hours}"
            self._add("off_hours",
                      f"{len(rows)} entries {why}, {_fmt_local(self.at[rows[0]])}-"
                      f"{_fmt_local(self.at[rows[-1]])} Japan time: "
                      f"{self._counted(rows)}", self.names[op], rows)

    def _reads(self) -> np.ndarray[Any, Any]:
        return self._is(*READ_ACTIONS) & (self.op >= 0)

    def mass_read(self) -> None:
        th = self.th
        reads = self._reads()
        if not reads.any():
            return
        first_day = int(self.day.min())
        span = int(self.day.max()) - first_day + 1
        acting = np.flatnonzero(self.op >= 0)
        ops = np.unique(self.op[acting])
        # per operator (a row each) and day from the log's first: entries, reads, reads in
        # the period
        shape = (len(ops), span)
        active = np.zeros(shape, np.int64)
        np.add.at(active, (np.searchsorted(ops, self.op[acting]), self.day[acting] - first_day), 1)
        daily = np.zeros(shape, np.int64)
        rows = np.flatnonzero(reads)
        np.add.at(daily, (np.searchsorted(ops, self.op[rows]), self.day[rows] - first_day), 1)
        judged = np.zeros(shape, np.int64)
        rows = np.flatnonzero(reads & self.in_range)
        np.add.at(judged, (np.searchsorted(ops, self.op[rows]), self.day[rows] - first_day), 1)
        # each day's norm: the median of the reads on the days worked among the norm_days
        # before it (NaN: not worked, or before the log), a block of operators at a time
        w = th.norm_days
        step = max(1, 4_000_000 // (span * w))
        flagged: list[tuple[int, int, float, int]] = []  # (op, day, median, days)
        for lo in range(0, len(ops), step):
            vals = daily[lo:lo + step].astype(np.float64)
            vals[active[lo:lo + step] == 0] = np.nan
            padded = np.concatenate([np.full((len(vals), w), np.nan), vals], axis=1)
            windows = np.lib.stride_tricks.sliding_window_view(padded, w, axis=1)[:, :span]
            worked = np.count_nonzero(~np.isnan(windows), axis=2)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
                median = np.nan_to_num(np.nanmedian(windows, axis=2), nan=0.0)
            limit = np.maximum(th.mass_read_floor, th.mass_read_factor * median)
            for i, d in zip(*np.nonzero(judged[lo:lo + step] > limit), strict=True):
                flagged.append((int(ops[lo + i]), first_day + int(d), float(median[i, d]),
                                int(worked[i, d])))
        found = {(op, day): (m, n) for op, day, m, n in flagged}
        keys = np.array([op * (1 << 32) + day for op, day in found], np.int64)
        mask = reads & self.in_range & np.isin(self.op * (1 << 32) + self.day, keys)
        for op, day, group in self._by_op_day(mask):
            median_, days = found[(op, day)]
            limit_ = max(th.mass_read_floor, th.mass_read_factor * median_)
            self._add("mass_read",
                      f"{len(group)} reads on {_day(day).isoformat()}, above {limit_:g} (the"
                      f" greater of {th.mass_read_floor} and {th.mass_read_factor:g} x the"
                      f" median {median_:g} of their daily reads on the {days} days they"
                      f" worked in the previous {th.norm_days} days)", self.names[op], group)

    def _household_keys(self, codes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Each code's household id; a code without one (not in the register, or an
        identity store) stands for itself (as a negative key)."""
        own_key = -codes - 1
        if self.households is None or self.households.num_rows == 0:
            return own_key
        hc = self.households.column("resident_code").to_numpy().astype(np.int64)
        hh = self.households.column("household_id").to_numpy(zero_copy_only=False)
        order = np.argsort(hc, kind="stable")
        hc, hh = hc[order], hh[order]
        pos = np.clip(np.searchsorted(hc, codes), 0, len(hc) - 1)
        found = hc[pos] == codes
        return np.where(found, hh[pos], own_key)

    def read_spread(self) -> None:
        th = self.th
        rows = np.flatnonzero(self._reads() & (self.code >= 0) & self.in_range)
        if len(rows) == 0:
            return
        hh = self._household_keys(self.code[rows])
        window = int(th.spread_window / dt.timedelta(microseconds=1))
        # Any window of spread_window lies within two consecutive buckets of that length:
        # only reads in bucket pairs holding enough households together can trigger.
        bucket = (self.at[rows] - int(self.at[rows].min())) // window
        triples = np.unique(np.stack([self.op[rows], bucket, hh]), axis=1)
        ob, per_bucket = np.unique(triples[0] * (1 << 40) + triples[1], return_counts=True)
        nxt = np.searchsorted(ob, ob + 1)
        has_next = nxt < len(ob)
        has_next[has_next] = ob[nxt[has_next]] == ob[has_next] + 1
        together = per_bucket + np.where(has_next, per_bucket[np.minimum(nxt, len(ob) - 1)], 0)
        hot = ob[together >= th.spread_households]
        if not len(hot):
            return
        keep = np.isin(self.op[rows] * (1 << 40) + bucket, np.concatenate([hot, hot + 1]))
        rows, hh = rows[keep], hh[keep]
        for op in np.unique(self.op[rows]).tolist():
            mine = rows[self.op[rows] == op]
            mine_hh = hh[self.op[rows] == op]
            order = np.argsort(self.at[mine], kind="stable")
            mine, mine_hh = mine[order], mine_hh[order]
            t = self.at[mine]
            seen: dict[int, int] = {}
            j = 0
            flagged: list[tuple[int, int, int]] = []  # (distinct, start, end), merged
            for i in range(len(mine)):
                seen[int(mine_hh[i])] = seen.get(int(mine_hh[i]), 0) + 1
                while t[i] - t[j] > window:
                    k = int(mine_hh[j])
                    seen[k] -= 1
                    if not seen[k]:
                        del seen[k]
                    j += 1
                if len(seen) >= th.spread_households:
                    if flagged and j < flagged[-1][2]:  # overlaps the last one: one alert
                        flagged[-1] = (max(flagged[-1][0], len(seen)), flagged[-1][1], i + 1)
                    else:
                        flagged.append((len(seen), j, i + 1))
            for distinct, a, b in flagged:
                sel = mine[a:b]
                self._add("read_spread",
                          f"reads of records in {distinct} different households within"
                          f" {_duration(th.spread_window)} ({len(sel)} reads,"
                          f" {_fmt_local(self.at[sel[0]])}-{_fmt_local(self.at[sel[-1]])}"
                          f" Japan time on {_day(int(self.day[sel[0]])).isoformat()})",
                          self.names[op], sel)

    def own_household(self) -> None:
        assert self.own is not None and self.households is not None
        if self.own.num_rows == 0 or self.households.num_rows == 0:
            return
        name_index = {n: i for i, n in enumerate(self.names)}
        hc = self.households.column("resident_code").to_numpy().astype(np.int64)
        hh = self.households.column("household_id").to_numpy(zero_copy_only=False)
        acting = (self.op >= 0) & (self.code >= 0) & self.in_range
        for oid, code in zip(self.own.column("operator").to_pylist(),
                             self.own.column("resident_code").to_pylist(), strict=True):
            op = name_index.get(oid)
            if op is None:
                continue
            homes = np.unique(hh[hc == code])
            members = np.unique(hc[np.isin(hh, homes)]) if len(homes) else np.array(
                [code], np.int64)
            hit = acting & (self.op == op) & np.isin(self.code, members)
            for _, day, rows in self._by_op_day(hit):
                records = len(np.unique(self.code[rows]))
                self._add("own_household",
                          f"{len(rows)} entries on {records} record(s) of the operator's own"
                          f" household on {_day(day).isoformat()}:"
                          f" {self._counted(rows)}", oid, rows)

    def failed_logins(self) -> None:
        th = self.th
        rows = np.flatnonzero(self._is("operator.login_failed") & self.in_range)
        if len(rows) == 0:
            return
        # the operator id tried: the entry's target, else its actor
        tried = self.target.take(pa.array(rows))
        actors = pa.array(np.asarray(self.names, dtype=object)[self.actor[rows]], pa.string())
        who_arr = pc.if_else(pc.fill_null(pc.not_equal(tried, ""), False), tried, actors)
        enc = pc.dictionary_encode(who_arr)
        who = np.asarray(enc.dictionary.to_pylist(), dtype=object)[
            enc.indices.to_numpy(zero_copy_only=False)]
        key = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.lexsort((self.at[rows], key))
        rows, key, who = rows[order], key[order], who[order]
        t = self.at[rows]
        span = int(t.max() - t.min()) + int(th.failed_window / dt.timedelta(microseconds=1)) + 1
        flat = key.astype(np.int64) * span + (t - t.min())
        window = int(th.failed_window / dt.timedelta(microseconds=1))
        first = np.searchsorted(flat, flat - window, side="left")
        hit = np.flatnonzero(np.arange(len(flat)) - first + 1 >= th.failed_logins)
        bursts: list[tuple[int, int]] = []
        for i in hit.tolist():
            a = int(first[i])
            if bursts and a < bursts[-1][1] and key[a] == key[bursts[-1][0]]:
                bursts[-1] = (bursts[-1][0], i + 1)
            else:
                bursts.append((a, i + 1))
        for a, b in bursts:
            sel = rows[a:b]
            self._add("failed_logins",
                      f"{b - a} failed logins for operator {who[a]} within"
                      f" {_duration(th.failed_window)} ({_fmt_local(self.at[sel[0]])}-"
                      f"{_fmt_local(self.at[sel[-1]])} Japan time on"
                      f" {_day(int(self.day[sel[0]])).isoformat()})", str(who[a]), sel)

    def _is(self, *actions: str) -> np.ndarray[Any, Any]:
        """Rows whose action is one of ``actions``."""
        codes = [i for i, n in enumerate(self.action_names) if n in actions]
        return np.isin(self.action, codes)

    def _counted(self, rows: np.ndarray[Any, Any]) -> str:
        """The actions of ``rows`` with their counts, in words."""
        idx, counts = np.unique(self.action[rows], return_counts=True)
        return ", ".join(f"{self.action_names[i]} x{c}"
                         for i, c in zip(idx.tolist(), counts.tolist(), strict=True))

    def certificate_without_request(self) -> None:
        certs = self._is("certificate.issue") & (self.op >= 0) & self.in_range
        if not certs.any():
            return
        req = np.flatnonzero(self._is("counter.request") & (self.op >= 0))
        target = self.target
        cert_rows = np.flatnonzero(certs)

        def keyed(rows: np.ndarray[Any, Any]) -> pa.Table:
            return pa.table({"op": self.op[rows], "day": self.day[rows],
                             "target": target.take(pa.array(rows)), "at": self.at[rows],
                             "row": rows})

        # the earliest request of each (operator, day, target), joined to each certificate
        firsts = keyed(req).group_by(["op", "day", "target"]).aggregate([("at", "min")])
        joined = keyed(cert_rows).join(firsts, ["op", "day", "target"], join_type="left outer")
        before = pc.less_equal(joined.column("at_min"), joined.column("at")).fill_null(False)
        bad = np.zeros(len(self.at), bool)
        bad[joined.filter(pc.invert(before)).column("row").to_numpy()] = True
        for op, day, rows in self._by_op_day(bad):
            self._add("certificate_without_request",
                      f"{len(rows)} certificate(s) issued on {_day(day).isoformat()} with no"
                      f" counter request for the same record by the same operator before"
                      f" it that day", self.names[op], rows)


def _us(value: dt.datetime) -> int:
    return int((value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))


def _tod_us(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _duration(d: dt.timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min" if minutes else f"{d.total_seconds():g} s"
