"""Identity confirmation for agencies: answers limited to legal purposes, each with its
provision record, and the residents' disclosure of who received their data.

An agency (or an operator answering for it, role ``provider``) asks a prefecture or
the center for a person's identity confirmation info, naming its legal purpose
(:mod:`jukicore.identity.purposes`). The answer carries only the items that purpose
may receive, and every answered row is a provision record (``provision``) written in
the same transaction as the answer: nothing is answered without its record, and a
refused request answers nothing and leaves only its ``access.denied`` audit entry.

Answers (:data:`ANSWERS`): ``found`` (a resident), ``died``, ``moved_out`` (left for
abroad; a move to another municipality keeps the person a resident there) or
``removed`` (another removal) with the date in ``status_date``, ``retired`` (the code
was given up by a code change on ``status_date``; ``new_code`` where the purpose allows
it), ``not_found``, and for a search by the four items ``ambiguous`` (more than one
person matches: every candidate, never a single guess). Bulk verification against the
agency's date adds ``unchanged``, ``changed`` and ``moved`` (see :func:`verify`).

A resident sees every provision of their data (:func:`disclose`), except those of a
purpose with an embargo (an investigation) until the embargo's date.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jukicore import audit
from jukicore.access.actors import ID_DISCLOSE, ID_PROVIDE, ID_PURPOSES, Actor, refusal
from jukicore.access.policy import Denied
from jukicore.errors import InvalidInputError, JukiError
from jukicore.store import Session, utcnow
from jukicore.validate import parse_resident_code, text_problem

from . import purposes as lp
from .purposes import Purpose

if TYPE_CHECKING:
    from .store import IdentityStore

__all__ = ["ANSWERS", "ANSWER_SCHEMA", "DISCLOSURE_SCHEMA", "VERIFY_ANSWERS", "ConfirmRequest",
           "confirm_many"]

ANSWERS: tuple[str, ...] = ("found", "died", "moved_out", "removed", "retired", "not_found",
                            "ambiguous")
#: What bulk verification answers besides :data:`ANSWERS` when given the agency's date.
VERIFY_ANSWERS: tuple[str, ...] = ("unchanged", "changed", "moved", *ANSWERS[1:])

#: Every column an answer may have; each answer keeps ``answer``, ``status_date`` and the
#: columns of the items its purpose allows (``new_code``: where the purpose allows it).
ANSWER_SCHEMA = pa.schema([
    pa.field("answer", pa.string(), False),
    pa.field("status_date", pa.date32()),
    pa.field("resident_code", pa.uint64()),
    pa.field("family_name", pa.string()),
    pa.field("given_name", pa.string()),
    pa.field("birth_date", pa.date32()),
    pa.field("sex", pa.int8()),
    pa.field("address", pa.string()),
    pa.field("status", pa.string()),
    pa.field("change_date", pa.date32()),
    pa.field("change_reason", pa.string()),
    pa.field("new_code", pa.uint64()),
])
#: The columns of each item (the rest of an answer is always there).
ITEM_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("family_name", "given_name"),
    "birth_date": ("birth_date",),
    "sex": ("sex",),
    "address": ("address",),
    "resident_code": ("resident_code",),
    "changes": ("status", "change_date", "change_reason"),
}
#: The record's columns in the identity store, in :data:`ANSWER_SCHEMA`'s names.
RECORD = ("resident_code", "family_name", "given_name", "birth_date", "sex", "address",
           "status", "change_date", "change_reason")

DISCLOSURE_SCHEMA = pa.schema([
    pa.field("at", pa.timestamp("us", "UTC"), False),
    pa.field("agency", pa.string(), False),
    pa.field("agency_name", pa.string()),
    pa.field("purpose", pa.string(), False),
    pa.field("duty", pa.string()),
    pa.field("legal_basis", pa.string(), False),
    pa.field("resident_code", pa.uint64(), False),
    pa.field("items", pa.string(), False),
    pa.field("answer", pa.string(), False),
    pa.field("request_id", pa.string(), False),
])

_SEXES = (1, 2, 9)
_ONE_OF = "a request asks by resident code or by the four items, one of them"
_NAME_MAX, _ADDRESS_MAX = 100, 400


@dataclass(frozen=True)
class FourItems:
    """A search by name, birth date, sex (optional) and address."""

    family_name: str
    given_name: str
    birth_date: dt.date
    address: str
    sex: int | None = None

    def __post_init__(self) -> None:
        for name, limit in (("family_name", _NAME_MAX), ("given_name", _NAME_MAX),
                            ("address", _ADDRESS_MAX)):
            v = getattr(self, name)
            if not isinstance(v, str):
                raise InvalidInputError(f"{name} is a text, not {type(v).__name__}")
            why = "empty" if not v else text_problem(v, limit)
            if why is not None:
                raise InvalidInputError(f"{name}: {why}")
        if isinstance(self.birth_date, dt.datetime) or not isinstance(self.birth_date, dt.date):
            raise InvalidInputError("birth_date is a date")
        if self.sex is not None and (isinstance(self.sex, bool) or self.sex not in _SEXES):
            raise InvalidInputError(f"sex is one of {_SEXES} or omitted, not {self.sex!r}")


def _date(value: Any, name: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InvalidInputError(f"{name} is a date, not {type(value).__name__}")
    return value


def check_ids(agency: Any, purpose: Any) -> None:
    for name, v in (("agency", agency), ("purpose", purpose)):
        if not isinstance(v, str) or not lp.ID_PATTERN.fullmatch(v):
            raise InvalidInputError(f"{name} {v!r}: an id of the legal purposes table")


def new_request_id(request_id: str | None) -> str:
    if request_id is None:
        return secrets.token_hex(8)
    if not isinstance(request_id, str) or not lp.ID_PATTERN.fullmatch(request_id):
        raise InvalidInputError(f"request id {request_id!r}: 1 to 64 of a-z, 0-9, '.', '_',"
                                " '-'")
    return request_id


class Law:
    """The legal purposes table as one transaction sees it, each part read once: a batch
    of requests (:func:`confirm_many`) asks it for every request, never across batches."""

    def __init__(self, s: Session) -> None:
        self._s = s
        self._agencies: set[str] | None = None
        self._current: dict[str, list[Purpose]] = {}

    def agencies(self) -> set[str]:
        """:func:`jukicore.identity.purposes.agencies`."""
        if self._agencies is None:
            self._agencies = lp.agencies(self._s)
        return self._agencies

    def current(self, purpose: str) -> list[Purpose]:
        """:func:`jukicore.identity.purposes.current` of one purpose (on the clock)."""
        found = self._current.get(purpose)
        if found is None:
            found = self._current[purpose] = lp.current(self._s, purpose)
        return found


def gate(st: IdentityStore, s: Session, actor: Actor, agency: str, purpose: str, *,
         four: bool, embargo_until: dt.date | None, now: dt.datetime | None,
         law: Law | None = None) -> Purpose:
    """The purpose in force that lets ``agency`` receive identity info here, checked inside
    the request's policy session; a refusal is :meth:`Gate.deny` (rolled back, audited).
    ``law``: the batch's view of the legal purposes table (default: read it now)."""
    law = Law(s) if law is None else law
    if actor.kind == "agency" and actor.name != agency:
        st.policy.deny(f"{actor} asks for agency {agency}: an agency asks for itself only")
    if agency not in law.agencies():
        st.policy.deny(f"{agency!r} is no agency of the legal purposes table: identity info"
                       " goes only to the agencies the law lists, never to a private party")
    found = law.current(purpose)  # (in force on the clock: ``now`` is for the hours)
    if not found:
        st.policy.deny(f"no legal purpose {purpose!r} is in force")
    p = found[0]
    if p.agency != agency:
        st.policy.deny(f"legal purpose {purpose} is {p.agency}'s, not {agency}'s")
    if st.kind not in p.tiers:
        st.policy.deny(f"legal purpose {purpose} is not asked at a {st.kind}")
    if four and not p.four_items:
        st.policy.deny(f"legal purpose {purpose} searches by resident code only")
    if embargo_until is not None:
        today = (now or utcnow()).date()
        if p.embargo_days == 0:
            raise InvalidInputError(f"legal purpose {purpose} allows no embargo")
        if not today < embargo_until <= today + dt.timedelta(days=p.embargo_days):
            raise InvalidInputError(
                f"embargo until {embargo_until}: after today and at most {p.embargo_days}"
                f" days ahead ({today + dt.timedelta(days=p.embargo_days)})")
    return p


def _answer_kind(status: str | None, reason: str | None) -> str:
    if status != "removed":
        return "found"
    return {"death": "died", "move_out": "moved_out"}.get(reason or "", "removed")


def allowed_columns(p: Purpose) -> list[str]:
    """The answer's columns that purpose ``p`` receives."""
    cols = {"answer", "status_date"}
    for item in p.items:
        cols.update(ITEM_COLUMNS[item])
    if p.new_code:
        cols.add("new_code")
    return [f.name for f in ANSWER_SCHEMA if f.name in cols]


def record(s: Session, values: Any) -> dict[str, Any]:
    """A row of :data:`RECORD`'s columns as read, with its dates as dates."""
    row = dict(zip(RECORD, values, strict=True))
    row["birth_date"], row["change_date"] = s.pd(row["birth_date"]), s.pd(row["change_date"])
    return row


def history(s: Session, cond: str, params: tuple[Any, ...], *, latest_first: bool = False,
            limit: int | None = None) -> list[dict[str, Any]]:
    """The history entries (``h``) meeting ``cond`` that were taken into the current info
    (quarantined ones never were), oldest first: by date, of one day a move-out before a
    move-in, then in the sender's order (``latest_first``: the reverse)."""
    way = " DESC" if latest_first else ""
    cols = ", ".join(f"h.{c}" for c in RECORD)
    rows = s.query(
        f"SELECT {cols} FROM identity_history h WHERE ({cond}) AND NOT EXISTS (SELECT 1"
        " FROM identity_quarantine q WHERE q.lg_code = h.lg_code AND q.seq = h.seq)"
        f" ORDER BY h.change_date{way}, CASE h.change_reason WHEN 'move_out' THEN 0 WHEN"
        f" 'move_out_correction' THEN 0 ELSE 1 END{way}, h.seq{way}"
        + ("" if limit is None else f" LIMIT {int(limit)}"), params)
    return [record(s, r) for r in rows]


def _record_rows(s: Session, codes: list[int]) -> dict[int, dict[str, Any]]:
    if not codes:
        return {}
    cond, params = s.any_of("resident_code", codes)
    rows = s.query(f"SELECT {', '.join(RECORD)} FROM identity WHERE {cond}", params)
    return {int(r[0]): record(s, r) for r in rows}


def _retired_rows(s: Session, codes: list[int]) -> dict[int, tuple[int, dt.date]]:
    if not codes:
        return {}
    cond, params = s.any_of("resident_code", codes)
    out = {}
    for code, new, on in s.query("SELECT resident_code, new_code, retired_on FROM"
                                 f" identity_retired WHERE {cond}", params):
        d = s.pd(on)
        assert d is not None
        out[int(code)] = (int(new), d)
    return out


def _retired(s: Session, code: int) -> tuple[int, dt.date] | None:
    rows = s.query("SELECT new_code, retired_on FROM identity_retired WHERE resident_code = ?",
                   (code,))
    if not rows:
        return None
    d = s.pd(rows[0][1])
    assert d is not None
    return int(rows[0][0]), d


def _as_of(s: Session, code: int, day: dt.date) -> dict[str, Any] | None:
    """The code's record as it stood at the end of ``day``: its last :func:`history`
    entry of that date or before."""
    last = history(s, "h.resident_code = ? AND h.change_date <= ?", (code, s.d(day)),
                   latest_first=True, limit=1)
    return last[0] if last else None


def _answer_row(rec: dict[str, Any] | None, retired: tuple[int, dt.date] | None,
                ) -> dict[str, Any]:
    if rec is not None:
        kind = _answer_kind(rec["status"], rec["change_reason"])
        return {**rec, "answer": kind,
                "status_date": None if kind == "found" else rec["change_date"]}
    if retired is not None:
        return {"answer": "retired", "status_date": retired[1], "new_code": retired[0]}
    return {"answer": "not_found"}


def _table(rows: list[dict[str, Any]], p: Purpose) -> pa.Table:
    cols = allowed_columns(p)
    schema = pa.schema([ANSWER_SCHEMA.field(c) for c in cols])
    return pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows], schema=schema)


def open_request(s: Session, p: Purpose, *, request_id: str, actor: Actor, agency: str,
                 embargo_until: dt.date | None) -> int:
    """Record a request being answered (``provision_request``); its number, which each of
    its provision rows names."""
    rows = s.query(
        "INSERT INTO provision_request (request_id, at, agency, purpose_id, purpose_version,"
        " legal_basis, actor, embargo_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING request_no",
        (request_id, s.ts(utcnow()), agency, p.purpose, p.version, p.legal_basis, str(actor),
         s.d(embargo_until)))
    return int(rows[0][0])


def _provisions(s: Session, request_no: int,
                rows: list[tuple[int | None, str, str | None]]) -> None:
    _provision_rows(s, [(request_no, *r) for r in rows])


def _provision_rows(s: Session, rows: list[tuple[int, int | None, str, str | None]]) -> None:
    """Provision rows (request number, code, answer, items), of one request or many."""
    if rows:
        s.executemany("INSERT INTO provision (request_no, resident_code, answer, items)"
                      " VALUES (?, ?, ?, ?)", rows)


@dataclass(frozen=True)
class ConfirmRequest:
    """One request by resident code, for :func:`confirm_many`: the arguments
    :func:`confirm` takes for it (``actor`` as the request authenticated it)."""

    agency: str
    purpose: str
    actor: Actor | str
    code: Any
    request_id: str | None = None
    embargo_until: dt.date | None = None


@dataclass(frozen=True)
class _Asked:
    """A request that passed the policy's table and whose input is well formed."""

    index: int
    who: Actor
    agency: str
    purpose: str
    code: int
    target: str
    rid: str
    embargo_until: dt.date | None


def _asked(index: int, who: Actor, r: ConfirmRequest) -> _Asked:
    """The request's input checked as :func:`confirm` checks it, in the same order."""
    check_ids(r.agency, r.purpose)
    if r.code is None:
        raise InvalidInputError(_ONE_OF)
    code = parse_resident_code(r.code)
    embargo_until = _date(r.embargo_until, "embargo_until")
    rid = new_request_id(r.request_id)
    return _Asked(index, who, r.agency, r.purpose, code, f"{code:011d}", rid, embargo_until)


def confirm_many(st: IdentityStore, requests: Iterable[ConfirmRequest], *,
                 now: dt.datetime | None = None, as_rows: bool = False
                 ) -> list[pa.Table | dict[str, Any] | JukiError]:
    """Answer many requests by resident code in ONE transaction (group commit), each as
    :func:`confirm` answers it alone: for each request, in order, its answer table or the
    error ``confirm`` would raise (:class:`InvalidInputError` for bad input, written
    nowhere; :class:`PermissionDeniedError` for a refusal, which leaves its
    ``access.denied`` entry and nothing else). An answered request has its
    ``provision_request`` row, its provision row and its ``identity.provide`` entry in
    the transaction of its answer; the audit entries follow the requests' order.
    A refused or invalid request does not spoil the others. What is the same for every
    request (the agencies, the purposes in force) is read once per batch.

    A failure of the transaction itself (the database) raises: nothing is answered, and
    the batch's refusals are recorded in a transaction of their own.

    ``as_rows``: each answer as the dict of its one row (the columns its purpose allows,
    the values the table would hold) instead of a one-row table: what a server turns
    into JSON at once."""
    if isinstance(requests, str | bytes | ConfirmRequest):
        raise InvalidInputError("requests is a sequence of ConfirmRequest")
    try:
        reqs = list(requests)
    except TypeError:
        raise InvalidInputError("requests is a sequence of ConfirmRequest") from None
    out: list[pa.Table | dict[str, Any] | JukiError | None] = [None] * len(reqs)
    asked: list[_Asked] = []
    refused: dict[int, tuple[object, str, str, str | None]] = {}
    for i, r in enumerate(reqs):
        if not isinstance(r, ConfirmRequest):
            out[i] = InvalidInputError(f"request {i} is a ConfirmRequest, not"
                                       f" {type(r).__name__}")
            continue
        who = st._actor(r.actor)
        why = refusal(who, ID_PROVIDE, st.policy.tier, st.policy.place)
        if why is not None:  # the table refuses before the input is looked at
            refused[i] = (who, ID_PROVIDE, why, None)
            out[i] = st.policy.denied_error(who, ID_PROVIDE, why)
            continue
        try:
            asked.append(_asked(i, who, r))
        except InvalidInputError as e:
            out[i] = e
    if asked or refused:
        _answer_many(st, asked, refused, out, now, as_rows)
    done = [o for o in out if o is not None]
    assert len(done) == len(out)
    return done


def _answer_many(st: IdentityStore, asked: list[_Asked],
                 refused: dict[int, tuple[object, str, str, str | None]],
                 out: list[pa.Table | dict[str, Any] | JukiError | None],
                 now: dt.datetime | None, as_rows: bool = False) -> None:
    """The transaction of :func:`confirm_many`: every request's checks, then the lookups
    of those that pass, then their records; the audit entries (overrides, denials,
    provisions) in the requests' order at the end. The answers of one purpose are one
    table, each request's answer a slice of it."""
    answered: dict[tuple[str, int], tuple[Purpose, list[int], list[dict[str, Any]]]] = {}
    try:
        with st._b.session() as s:
            law = Law(s)
            passed: list[tuple[_Asked, Purpose, list[tuple[Any, ...]]]] = []
            for a in asked:
                entries: list[tuple[Any, ...]] = []  # an override's, dropped if refused
                try:
                    st.policy.admit(s, a.who, ID_PROVIDE, now=now, entries=entries)
                    p = gate(st, s, a.who, a.agency, a.purpose, four=False,
                             embargo_until=a.embargo_until, now=now, law=law)
                except Denied as d:
                    refused[a.index] = (a.who, ID_PROVIDE, d.reason, a.target)
                    out[a.index] = st.policy.denied_error(a.who, ID_PROVIDE, d.reason)
                    continue
                except InvalidInputError as e:
                    out[a.index] = e
                    continue
                passed.append((a, p, entries))
            codes = sorted({a.code for a, _, _ in passed})
            recs, retired = _record_rows(s, codes), _retired_rows(s, codes)
            by_index = {i: [st.policy.denied_entry(s, *d)] for i, d in refused.items()}
            provisions: list[tuple[int, int | None, str, str | None]] = []
            for a, p, entries in passed:
                ret, rec = retired.get(a.code), recs.get(a.code)
                row = _answer_row(None if ret is not None else rec, ret)
                no = open_request(s, p, request_id=a.rid, actor=a.who, agency=a.agency,
                                  embargo_until=a.embargo_until)
                provisions.append((no, a.code, row["answer"], None))
                entries.append(audit.entry(
                    s, a.who, "identity.provide", a.target,
                    f"request {a.rid}: {a.agency} for {p.purpose} (v{p.version}) by"
                    f" resident code: {row['answer']}"))
                by_index[a.index] = entries
                answered.setdefault((p.purpose, p.version), (p, [], []))
                answered[p.purpose, p.version][1].append(a.index)
                answered[p.purpose, p.version][2].append(row)
            _provision_rows(s, provisions)
            audit.write_many(s, [e for i in sorted(by_index) for e in by_index[i]])
    except BaseException:
        st.policy.record_denials(list(refused.values()))  # the denials stand regardless
        raise
    for p, indexes, rows in answered.values():  # the tables once the lock is let go
        if as_rows:
            cols = allowed_columns(p)
            for i, row in zip(indexes, rows, strict=True):
                out[i] = {c: row.get(c) for c in cols}
            continue
        table = _table(rows, p)
        for j, i in enumerate(indexes):
            out[i] = table.slice(j, 1)


def confirm(st: IdentityStore, *, agency: str, purpose: str, actor: Actor | str,
            code: Any = None, four: FourItems | None = None, as_of: dt.date | None = None,
            embargo_until: dt.date | None = None, request_id: str | None = None,
            now: dt.datetime | None = None) -> pa.Table:
    """Answer one request: by resident ``code`` (its record now, or ``as_of`` a date) or
    by the ``four`` items (every person whose match keys equal the query's on every item
    given: one row ``found``/..., several ``ambiguous``, or ``not_found``)."""
    if code is not None and four is None and as_of is None:  # one code path with batches
        res = confirm_many(st, [ConfirmRequest(agency, purpose, actor, code, request_id,
                                               embargo_until)], now=now)[0]
        if isinstance(res, JukiError):
            raise res
        return res
    who = st._actor(actor)
    st.policy.precheck(who, ID_PROVIDE)
    check_ids(agency, purpose)
    if (code is None) == (four is None):
        raise InvalidInputError(_ONE_OF)
    parsed = None if code is None else parse_resident_code(code)
    if four is not None and not isinstance(four, FourItems):
        raise InvalidInputError("four is a FourItems")
    if four is not None and as_of is not None:
        raise InvalidInputError("a search by the four items answers the current records;"
                                " as_of asks by resident code")
    as_of = _date(as_of, "as_of")
    embargo_until = _date(embargo_until, "embargo_until")
    rid = new_request_id(request_id)
    target = None if parsed is None else f"{parsed:011d}"
    if four is not None:
        st.warm_index()
    with st.policy.session(who, ID_PROVIDE, now=now, target=target) as s:
        p = gate(st, s, who, agency, purpose, four=four is not None,
                 embargo_until=embargo_until, now=now)
        if parsed is not None:
            retired = _retired(s, parsed)
            if as_of is None:
                rec = _record_rows(s, [parsed]).get(parsed)
            else:
                rec = _as_of(s, parsed, as_of)
                if retired is not None and retired[1] > as_of:
                    retired = None  # not yet retired on that day
            if rec is not None and retired is not None:
                rec = None
            rows = [_answer_row(rec, retired)]
            prov: list[tuple[int | None, str]] = [(parsed, rows[0]["answer"])]
        else:
            assert four is not None
            matches = sorted(st.search_codes(four, session=s))
            recs = _record_rows(s, matches)
            rows = [_answer_row(recs[c], None) for c in matches if c in recs]
            if len(rows) > 1:
                for r in rows:
                    r["answer"] = "ambiguous"
            if not rows:
                rows = [{"answer": "not_found"}]
            prov = [(r.get("resident_code"), r["answer"]) for r in rows]
        no = open_request(s, p, request_id=rid, actor=who, agency=agency,
                          embargo_until=embargo_until)
        _provisions(s, no, [(code, answer, None) for code, answer in prov])
        how = "by resident code" if parsed is not None else "by the four items"
        audit.write(s, who, "identity.provide", target,
                    f"request {rid}: {agency} for {p.purpose} (v{p.version}) {how}"
                    f"{'' if as_of is None else f' as of {as_of}'}: "
                    f"{', '.join(sorted({r['answer'] for r in rows}))}")
    return _table(rows, p)


CHANGES_SCHEMA = pa.schema([
    pa.field("change_date", pa.date32(), False),
    pa.field("change_reason", pa.string(), False),
    pa.field("items", pa.list_(pa.string()), False),
])
_COMPARED = {"name": ("family_name", "given_name"), "birth_date": ("birth_date",),
             "sex": ("sex",), "address": ("address",), "resident_code": ("resident_code",),
             "changes": ("status",)}


def changed_items(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """The items that differ between two states of a record (all of them from nothing)."""
    if before is None:
        return list(lp.ITEMS)
    return [item for item, cols in _COMPARED.items()
            if any(before.get(c) != after.get(c) for c in cols)]


def changes_since(st: IdentityStore, *, agency: str, purpose: str, actor: Actor | str,
                  code: Any, since: dt.date, request_id: str | None = None,
                  now: dt.datetime | None = None) -> pa.Table:
    """What changed in a code's record after ``since``: each change's date, reason and the
    items it changed (:data:`CHANGES_SCHEMA`), for a purpose that receives ``changes``;
    for a retired code, up to and with the code change that retired it.
    The provision record names the items the changes touched."""
    who = st._actor(actor)
    st.policy.precheck(who, ID_PROVIDE)
    check_ids(agency, purpose)
    parsed = parse_resident_code(code)
    since_d = _date(since, "since")
    if since_d is None:
        raise InvalidInputError("since is a date")
    rid = new_request_id(request_id)
    target = f"{parsed:011d}"
    with st.policy.session(who, ID_PROVIDE, now=now, target=target) as s:
        p = gate(st, s, who, agency, purpose, four=False, embargo_until=None, now=now)
        if "changes" not in p.items:
            st.policy.deny(f"legal purpose {purpose} does not receive the change information")
        entries = history(s, "h.resident_code = ? OR h.previous_resident_code = ?",
                          (parsed, parsed))
        before = None
        out = []
        for e in entries:
            if e["change_date"] > since_d:
                items = [i for i in changed_items(before, e) if i in p.items]
                out.append({"change_date": e["change_date"],
                            "change_reason": e["change_reason"], "items": items})
            before = e
        touched = sorted({i for o in out for i in o["items"]})
        answer = "changed" if out else ("unchanged" if entries else "not_found")
        no = open_request(s, p, request_id=rid, actor=who, agency=agency, embargo_until=None)
        _provisions(s, no, [(parsed, answer,
                             ",".join(["changes", *touched]) if out else "")])
        audit.write(s, who, "identity.provide", target,
                    f"request {rid}: {agency} for {p.purpose} (v{p.version}) changes since"
                    f" {since_d}: {len(out)}")
    return pa.Table.from_pylist(out, schema=CHANGES_SCHEMA)


def disclose(st: IdentityStore, code: Any, *, actor: Actor | str,
             now: dt.datetime | None = None) -> pa.Table:
    """Every provision of a resident's data (:data:`DISCLOSURE_SCHEMA`), oldest first:
    under ``code`` and every code the person held before it (a code change retires the
    old code, not the person's right to see who received their data). A provision under
    an embargo is left out until the embargo's date (``now``'s date, default today).
    Disclosed by an operator (``identity.disclose``), audited."""
    who = st._actor(actor)
    st.policy.precheck(who, ID_DISCLOSE)
    parsed = parse_resident_code(code)
    target = f"{parsed:011d}"
    today = (now or utcnow()).date()
    with st.policy.session(who, ID_DISCLOSE, now=now, target=target) as s:
        codes = [parsed]
        frontier = [parsed]
        while frontier:  # the codes this person held before (a chain of code changes)
            cond, params = s.any_of("new_code", frontier)
            frontier = [int(c) for (c,) in s.query(
                f"SELECT resident_code FROM identity_retired WHERE {cond}", params)
                if int(c) not in codes]
            codes += frontier
        cond, params = s.any_of("resident_code", codes)
        rows = s.query(
            "SELECT at, agency, agency_name, purpose_id, duty, legal_basis, resident_code,"
            f" items, answer, request_id FROM provision_detail WHERE {cond} AND"
            " (embargo_until IS NULL OR embargo_until <= ?) ORDER BY request_no",
            (*params, s.d(today)))
        hidden = int(s.scalar(
            f"SELECT count(*) FROM provision_detail WHERE {cond} AND embargo_until > ?",
            (*params, s.d(today))))
        audit.write(s, who, "identity.disclose", target,
                    f"{len(rows)} provisions disclosed"
                    f"{f', {hidden} under embargo' if hidden else ''}")
    out = [dict(zip(DISCLOSURE_SCHEMA.names, r, strict=True)) for r in rows]
    for r in out:
        at = r["at"]
        if isinstance(at, str):
            at = dt.datetime.fromisoformat(at)
        r["at"] = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return pa.Table.from_pylist(out, schema=DISCLOSURE_SCHEMA)


def list_purposes(st: IdentityStore, *, now: dt.datetime | None = None) -> list[Purpose]:
    """The legal purposes in force at this store (public law, not personal data)."""
    with st._b.session(write=False) as s:
        return lp.current(s, at=now)


def set_purpose(st: IdentityStore, purpose: Purpose, *, actor: Actor | str,
                now: dt.datetime | None = None) -> Purpose:
    """Put ``purpose`` in force as its next version (``identity.purposes``, audited)."""
    who = st._actor(actor)
    st.policy.precheck(who, ID_PURPOSES)
    if not isinstance(purpose, Purpose):
        raise InvalidInputError("set_purpose takes a Purpose")
    if st.kind not in purpose.tiers:
        raise InvalidInputError(f"purpose {purpose.purpose} is not asked at a {st.kind}"
                                f" (tiers {list(purpose.tiers)})")
    with st.policy.session(who, ID_PURPOSES, now=now, target=purpose.purpose) as s:
        out = lp.put(s, purpose, str(who))
        audit.write(s, who, "identity.purpose_set", purpose.purpose,
                    f"version {out.version}: {out.agency}; items {','.join(out.items)};"
                    f" search {out.search}; new_code {out.new_code}; embargo"
                    f" {out.embargo_days} days")
    return out


def close_purpose(st: IdentityStore, purpose: str, *, actor: Actor | str,
                  now: dt.datetime | None = None) -> None:
    """Take ``purpose`` out of force (``identity.purposes``, audited); a purpose not in
    force is a :class:`NotFoundError`."""
    from jukicore.errors import NotFoundError

    who = st._actor(actor)
    st.policy.precheck(who, ID_PURPOSES)
    check_ids("x", purpose)
    with st.policy.session(who, ID_PURPOSES, now=now, target=purpose) as s:
        if not lp.close(s, purpose):
            raise NotFoundError(f"no legal purpose {purpose!r} is in force")
        audit.write(s, who, "identity.purpose_close", purpose, "taken out of force")
