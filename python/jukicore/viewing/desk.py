"""Register viewing (住民基本台帳の一部の写しの閲覧) at a municipality's register.

A request is recorded (:meth:`Viewings.request`), decided by another operator, a
supervisor (:meth:`~Viewings.approve` / :meth:`~Viewings.refuse`), and viewings are
held for it within its period (:meth:`~Viewings.record` shows the list, :meth:`~Viewings.
finish` ends the viewing and charges the fee). Every step goes through the register's
policy (deny by default) and writes its audit entry in its own transaction; a viewing
also writes a ``viewing.read`` entry, the read of personal data it is. A refusal changes
nothing but the ``access.denied`` entry the gate writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from jukicore import audit
from jukicore.access.actors import (
    VIEW_APPROVE,
    VIEW_LIST,
    VIEW_PUBLISH,
    VIEW_RECORD,
    VIEW_REQUEST,
    Actor,
)
from jukicore.access.policy import JST, Gate, read_detail
from jukicore.errors import ConflictError, InvalidInputError, NotFoundError
from jukicore.store.backend import Backend, Session, content_digest, utcnow

from ._schema import (
    EXTRACT_SCHEMA,
    PUBLICATION_SCHEMA,
    REQUEST_SCHEMA,
    REQUEST_TABLE,
    SESSION_SCHEMA,
    SESSION_TABLE,
    VIEWER,
)
from .rules import (
    ID_KINDS,
    KINDS,
    MAX_PERIOD_DAYS,
    MAX_TEXT,
    MAX_TOWNS,
    MAX_VIEWERS,
    PHOTO_IDS,
    PURPOSES,
    Period,
    check_date,
    check_names,
    check_text,
    fee_for,
    half_year,
)

if TYPE_CHECKING:
    from jukicore.register import Register

__all__ = ["Publication", "Viewing", "Viewings"]

_SEX = {1: "男", 2: "女"}
_KIND_JA = {"public": "請求", "private": "申出"}


@dataclass(frozen=True)
class Viewing:
    """A viewing as it begins: its id, the list shown (:data:`EXTRACT_SCHEMA`: the four
    items, nothing else), its start and the fee's rate in force."""

    session_id: int
    request_id: int
    table: pa.Table
    started_at: dt.datetime
    fee_rate: int

    @property
    def records(self) -> int:
        return int(self.table.num_rows)


@dataclass(frozen=True)
class Publication:
    """A published half-year: its period, the rows (:data:`PUBLICATION_SCHEMA`) and the
    files written (with their SHA-256, also in the ``viewing.publish`` audit entry)."""

    period: Period
    table: pa.Table
    csv: Path
    pdf: Path
    csv_sha256: str
    pdf_sha256: str


def _moment(now: object) -> dt.datetime:
    """``now`` as an aware datetime (the clock's by default; a naive one is Japanese time,
    as the policy reads it)."""
    if now is None:
        return utcnow()
    if not isinstance(now, dt.datetime):
        raise InvalidInputError(f"now is a datetime, not {type(now).__name__}")
    return now.replace(tzinfo=JST) if now.tzinfo is None else now


def _japan_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(JST).date()


def _request_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInputError(f"a request id is a number, not {type(value).__name__}")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) <= 0:
        raise InvalidInputError(f"request id {value!r}: a positive number")
    return int(text)


def _viewers(value: object) -> list[tuple[str, str]]:
    """The viewers present and the kind of identity document each showed: a mapping
    name -> kind, or pairs (name, kind)."""
    if isinstance(value, Mapping):
        pairs: Iterable[Any] = list(value.items())
    elif isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidInputError("viewers: a mapping of name to identity document, or pairs"
                                " (name, identity document)")
    else:
        pairs = list(value)
    out: list[tuple[str, str]] = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InvalidInputError(f"viewers[{i}]: a pair (name, identity document)")
        name = check_text(pair[0], f"viewers[{i}] name")
        kind = pair[1]
        if not isinstance(kind, str) or kind not in ID_KINDS:
            raise InvalidInputError(f"viewers[{i}] identity document {kind!r}: one of "
                                    + ", ".join(ID_KINDS))
        assert name is not None
        if any(name == n for n, _ in out):
            raise InvalidInputError(f"viewers: {name!r} is named twice")
        out.append((name, kind))
    if not out:
        raise InvalidInputError("viewers: the persons present, at least one")
    if len(out) > MAX_VIEWERS:
        raise InvalidInputError(f"viewers: at most {MAX_VIEWERS}")
    return out


def _range(towns: object, born_from: object, born_to: object
           ) -> tuple[list[str] | None, dt.date | None, dt.date | None]:
    t = check_names(towns, "towns", limit=MAX_TOWNS, required=False)
    bf = check_date(born_from, "born_from")
    bt = check_date(born_to, "born_to")
    if bf is not None and bt is not None and bf > bt:
        raise InvalidInputError(f"born_from {bf} is after born_to {bt}")
    return t, bf, bt


def _scope(towns: list[str] | None, bf: dt.date | None, bt: dt.date | None) -> str:
    """The range of residents in words (閲覧に係る住民の範囲): no resident's data."""
    where = "・".join(towns) if towns else "全域"
    if bf is None and bt is None:
        born = "全年齢"
    else:
        born = (f"{_ja(bf) if bf else ''}から{_ja(bt) if bt else ''}までに生まれた者")
    return f"{where}（{born}）"


def _ja(d: dt.date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _loads(text: Any) -> Any:
    return None if text is None else json.loads(str(text))


_REQ_COLS = [c.name for c in REQUEST_TABLE.columns]
#: The request table as read (its JSON columns as text).
_REQ_RAW = pa.schema([REQUEST_SCHEMA.field(n) if n not in ("viewers", "towns")
                      else pa.field(n, pa.string()) for n in _REQ_COLS])
_SES_COLS = [c.name for c in SESSION_TABLE.columns]
_SES_RAW = pa.schema(
    [pa.field(n, pa.string()) if n in ("viewers", "towns") else SESSION_SCHEMA.field(n)
     for n in _SES_COLS[:2]]
    + [SESSION_SCHEMA.field(n) for n in ("kind", "requester", "purpose")]
    + [pa.field(n, pa.string()) if n in ("viewers", "towns") else SESSION_SCHEMA.field(n)
       for n in _SES_COLS[2:]])


class Viewings:
    """Register viewing at one municipality's :class:`~jukicore.register.Register`: its
    store, its policy (the register's :class:`~jukicore.access.policy.Gate`)."""

    def __init__(self, register: Register) -> None:
        self._reg = register
        self._b: Backend = register._b  # the register's store (one transaction per step)
        self.policy: Gate = register.policy
        self.lg_code: str = register.lg_code
        self.municipality: str = f"{register.prefecture}{register.municipality}"

    # -- requests -------------------------------------------------------------------------

    def request(self, *, kind: str, requester: str, purpose: str, summary: str,
                viewers: Sequence[str], period_from: dt.date, period_to: dt.date,
                representative: str | None = None, legal_basis: str | None = None,
                handling: str | None = None, towns: Sequence[str] | None = None,
                born_from: dt.date | None = None, born_to: dt.date | None = None,
                actor: Actor, now: dt.datetime | None = None) -> int:
        """Record a request to view; its id. ``kind``: ``public`` (a body of the state or
        of a local government, Art. 11: ``purpose`` ``statutory_duty`` and the statute in
        ``legal_basis``) or ``private`` (Art. 11-2: ``survey``, ``welfare`` or
        ``residence_check``, with ``handling``: how what is noted will be kept). ``viewers``:
        the persons who will view; ``towns`` / ``born_from`` / ``born_to``: the range of
        residents asked for (none: all); ``period_from`` to ``period_to``: the days
        viewings may be held. A purpose the law does not allow is refused (the gate's
        ``access.denied`` entry, :class:`PermissionDeniedError`); malformed input is an
        :class:`InvalidInputError`. Nothing is recorded then."""
        self.policy.precheck(actor, VIEW_REQUEST)
        moment = _moment(now)
        if kind not in KINDS:
            raise InvalidInputError(f"kind {kind!r}: public (Art. 11) or private (Art. 11-2)")
        if not isinstance(purpose, str) or not purpose.strip():
            raise InvalidInputError("purpose is required: " + ", ".join(PURPOSES))
        name = check_text(requester, "requester")
        rep = check_text(representative, "representative", required=False)
        what = check_text(summary, "summary", limit=MAX_TEXT)
        basis = check_text(legal_basis, "legal_basis", required=kind == "public",
                           limit=MAX_TEXT)
        keep = check_text(handling, "handling", required=kind == "private", limit=MAX_TEXT)
        names = check_names(viewers, "viewers", limit=MAX_VIEWERS, required=True) or []
        t, bf, bt = _range(towns, born_from, born_to)
        pf = check_date(period_from, "period_from", required=True)
        pt = check_date(period_to, "period_to", required=True)
        assert pf is not None and pt is not None
        if pf > pt:
            raise InvalidInputError(f"period_from {pf} is after period_to {pt}")
        if pt < _japan_day(moment):
            raise InvalidInputError(f"the period of viewing ended on {pt}: nothing to view")
        if (pt - pf).days >= MAX_PERIOD_DAYS:
            raise InvalidInputError(f"a period of viewing is at most {MAX_PERIOD_DAYS} days")
        with self.policy.session(actor, VIEW_REQUEST, now=now,
                                 target=f"viewing request of {name}") as s:
            p = PURPOSES.get(purpose.strip())
            if p is None:
                self.policy.deny(
                    f"{name} asks to view for {purpose.strip()[:100]!r}: the register is shown"
                    " only for a public body's statutory duty (Art. 11) or, to a private"
                    " party, for " + ", ".join(k for k, v in PURPOSES.items()
                                               if v.kind == "private") + " (Art. 11-2)")
            assert p is not None  # (deny raised)
            if p.kind != kind:
                self.policy.deny(f"{name}: purpose {p.key} ({p.article}) is not for a"
                                 f" {kind} requester")
            rows = s.query(
                f"INSERT INTO viewing_requests ({', '.join(_REQ_COLS[1:15])}, requested_at,"
                f" requested_by) VALUES ({', '.join('?' * 16)}) RETURNING request_id",
                (kind, name, rep, p.key, what, basis, keep, json.dumps(names, ensure_ascii=False),
                 None if t is None else json.dumps(t, ensure_ascii=False), s.d(bf), s.d(bt),
                 s.d(pf), s.d(pt), "requested", s.ts(moment), str(actor)))
            rid = int(rows[0][0])
            audit.write(s, actor, "viewing.request", f"viewing:{rid}",
                        f"{_KIND_JA[kind]} of {name} for {p.key} ({p.article}); "
                        f"{len(names)} viewers; {_scope(t, bf, bt)}; {pf} to {pt}")
        return rid

    def approve(self, request_id: int | str, *, actor: Actor, note: str | None = None,
                now: dt.datetime | None = None) -> dict[str, Any]:
        """Approve a recorded request (the mayor's decision, taken by a supervisor): never
        by the operator who recorded it (refused, audited). A request already decided is a
        :class:`ConflictError`. The request as a dict."""
        return self._decide(request_id, "approved", actor, note, now)

    def refuse(self, request_id: int | str, *, actor: Actor, reason: str,
               now: dt.datetime | None = None) -> dict[str, Any]:
        """Refuse a recorded request, saying why (``reason`` required)."""
        why = check_text(reason, "reason", limit=MAX_TEXT)
        return self._decide(request_id, "refused", actor, why, now)

    def _decide(self, request_id: int | str, state: str, actor: Actor, note: str | None,
                now: dt.datetime | None) -> dict[str, Any]:
        self.policy.precheck(actor, VIEW_APPROVE)
        rid = _request_id(request_id)
        text = check_text(note, "note", required=False, limit=MAX_TEXT)
        moment = _moment(now)
        with self.policy.session(actor, VIEW_APPROVE, now=now, target=f"viewing:{rid}") as s:
            req = self._request(s, rid)
            if req["requested_by"] == str(actor):
                self.policy.deny(f"request {rid} was recorded by {actor}: another operator"
                                 " (a supervisor) decides it")
            if req["state"] != "requested":
                raise ConflictError(f"request {rid} is {req['state']} already"
                                    f" (by {req['decided_by']})")
            done = s.query("UPDATE viewing_requests SET state = ?, decided_at = ?,"
                           " decided_by = ?, decision_note = ? WHERE request_id = ?"
                           " AND state = 'requested' RETURNING request_id",
                           (state, s.ts(moment), str(actor), text, rid))
            if not done:  # decided meanwhile by another transaction
                raise ConflictError(f"request {rid} was decided meanwhile")
            verb = "approve" if state == "approved" else "refuse"
            audit.write(s, actor, f"viewing.{verb}", f"viewing:{rid}",
                        f"{_KIND_JA[req['kind']]} of {req['requester']} for {req['purpose']}"
                        + (f": {text}" if text else ""))
            return self._request(s, rid)

    def _request(self, s: Session, rid: int) -> dict[str, Any]:
        t = s.fetch_arrow(f"SELECT {', '.join(_REQ_COLS)} FROM viewing_requests"
                          " WHERE request_id = ?", (rid,), _REQ_RAW)
        if t.num_rows == 0:
            raise NotFoundError(f"no viewing request {rid}")
        return _request_table(t).to_pylist()[0]  # type: ignore[no-any-return]

    # -- viewings -------------------------------------------------------------------------

    def record(self, request_id: int | str, *, viewers: Mapping[str, str] | Sequence[
               tuple[str, str]], towns: Sequence[str] | None = None,
               born_from: dt.date | None = None, born_to: dt.date | None = None,
               actor: Actor, now: dt.datetime | None = None) -> Viewing:
        """Begin a viewing for an approved request, at ``now``: the viewers present (each
        named in the request) with the identity document each showed (:data:`ID_KINDS`, a
        photo ID for a private party's viewer: :data:`PHOTO_IDS`; the kind is recorded,
        never the document), and the range shown (default: the request's; a narrower one
        may be given, a wider one is refused). Returns the list shown: the four items
        (name, address, birth date, sex) of the current residents in the range, nothing
        else, never a removed record (除票).

        Refused (audited, nothing recorded): a request not approved, a day outside its
        period, a viewer it does not name, a range beyond it."""
        self.policy.precheck(actor, VIEW_RECORD)
        rid = _request_id(request_id)
        present = _viewers(viewers)
        t, bf, bt = _range(towns, born_from, born_to)
        moment = _moment(now)
        day = _japan_day(moment)
        with self.policy.session(actor, VIEW_RECORD, now=now, target=f"viewing:{rid}") as s:
            req = self._request(s, rid)
            who = req["requester"]
            if req["state"] != "approved":
                self.policy.deny(f"request {rid} of {who} is {req['state']}: a viewing needs"
                                 " an approved request")
            if not req["period_from"] <= day <= req["period_to"]:
                self.policy.deny(f"request {rid} allows viewings from {req['period_from']} to"
                                 f" {req['period_to']}, not on {day}")
            named = set(req["viewers"])
            for name, id_kind in present:
                if name not in named:
                    self.policy.deny(f"{name} is not named as a viewer in request {rid}")
                if req["kind"] == "private" and id_kind not in PHOTO_IDS:
                    self.policy.deny(f"{name} showed {id_kind}: a private party's viewer"
                                     " shows an identity document with a photo")
            t, bf, bt = self._within(req, t, bf, bt)
            extract = _extract(s, t, bf, bt)
            digest = _extract_digest(extract)
            rate = self.policy.fee(s, "viewing")
            rows = s.query(
                f"INSERT INTO viewing_sessions ({', '.join(_SES_COLS[1:10])}, fee_rate)"
                f" VALUES ({', '.join('?' * 10)}) RETURNING session_id",
                (rid, json.dumps(present, ensure_ascii=False),
                 None if t is None else json.dumps(t, ensure_ascii=False), s.d(bf), s.d(bt),
                 extract.num_rows, digest, s.ts(moment), str(actor), rate))
            sid = int(rows[0][0])
            shown = ", ".join(f"{n} ({k})" for n, k in present)
            audit.write(s, actor, "viewing.record", f"viewing:{rid}",
                        f"viewing {sid} by {who}: {shown}; {_scope(t, bf, bt)};"
                        f" {extract.num_rows} records; sha256 {digest}")
            audit.write(s, actor, "viewing.read", f"viewing:{rid}", read_detail(
                f"four items (name, address, birth date, sex) shown at viewing {sid} to {who}",
                extract.num_rows, req["purpose"]))
        return Viewing(sid, rid, extract, moment.astimezone(dt.UTC), rate)

    @staticmethod
    def _within(req: dict[str, Any], t: list[str] | None, bf: dt.date | None,
                bt: dt.date | None) -> tuple[list[str] | None, dt.date | None, dt.date | None]:
        """The range to show: the request's, or a narrower one given (a wider: refused)."""
        rt, rf, rto = req["towns"], req["born_from"], req["born_to"]
        if t is None:
            t = rt
        elif rt is not None and not set(t) <= set(rt):
            Gate.deny(f"towns {sorted(set(t) - set(rt))} are beyond request"
                      f" {req['request_id']}'s range")
        if bf is None:
            bf = rf
        elif rf is not None and bf < rf:
            Gate.deny(f"born_from {bf} is before the request's {rf}")
        if bt is None:
            bt = rto
        elif rto is not None and bt > rto:
            Gate.deny(f"born_to {bt} is after the request's {rto}")
        if bf is not None and bt is not None and bf > bt:
            raise InvalidInputError(f"born_from {bf} is after born_to {bt}")
        return t, bf, bt

    def finish(self, session_id: int | str, *, actor: Actor,
               now: dt.datetime | None = None) -> dict[str, Any]:
        """End a viewing at ``now`` and charge its fee: the rate in force at its start per
        30 minutes started (:func:`~jukicore.viewing.rules.periods_started`). A viewing
        ended already is a :class:`ConflictError`; an end before the start an
        :class:`InvalidInputError`. The viewing as a dict (``periods``, ``fee``)."""
        self.policy.precheck(actor, VIEW_RECORD)
        sid = _request_id(session_id)
        moment = _moment(now)
        with self.policy.session(actor, VIEW_RECORD, now=now, target=f"viewing session {sid}"
                                 ) as s:
            cur = self._sessions(s, "WHERE v.session_id = ?", (sid,)).to_pylist()
            if not cur:
                raise NotFoundError(f"no viewing {sid}")
            v = cur[0]
            if v["ended_at"] is not None:
                raise ConflictError(f"viewing {sid} ended at {v['ended_at'].isoformat()}")
            periods, fee = fee_for(v["started_at"], moment, v["fee_rate"])
            done = s.query("UPDATE viewing_sessions SET ended_at = ?, ended_by = ?,"
                           " periods = ?, fee = ? WHERE session_id = ? AND ended_at IS NULL"
                           " RETURNING session_id",
                           (s.ts(moment), str(actor), periods, fee, sid))
            if not done:
                raise ConflictError(f"viewing {sid} was ended meanwhile")
            minutes = (moment - v["started_at"]).total_seconds() / 60
            audit.write(s, actor, "viewing.finish", f"viewing:{v['request_id']}",
                        f"viewing {sid} by {v['requester']}: {minutes:.1f} minutes,"
                        f" {periods} x {v['fee_rate']} yen = {fee} yen")
            return self._sessions(s, "WHERE v.session_id = ?", (sid,)).to_pylist()[0]  # type: ignore[no-any-return]

    # -- lists ----------------------------------------------------------------------------

    def requests(self, *, actor: Actor, state: str | None = None,
                 now: dt.datetime | None = None) -> pa.Table:
        """The requests (:data:`REQUEST_SCHEMA`), by id; only those in ``state`` if given."""
        if state is not None and state not in ("requested", "approved", "refused"):
            raise InvalidInputError(f"state {state!r}: requested, approved or refused")
        where, params = ("", ()) if state is None else (" WHERE state = ?", (state,))
        _moment(now)  # (a malformed now is refused before the gate reads it)
        with self.policy.session(actor, VIEW_LIST, now=now, write=False) as s:
            t = s.fetch_arrow(f"SELECT {', '.join(_REQ_COLS)} FROM viewing_requests{where}"
                              " ORDER BY request_id", params, _REQ_RAW)
        return _request_table(t)

    def sessions(self, *, actor: Actor, request_id: int | str | None = None,
                 now: dt.datetime | None = None) -> pa.Table:
        """The viewings held (:data:`SESSION_SCHEMA`: who viewed, showing what ID, the
        range, how many records, start, end, fee; never a resident's data), by id."""
        _moment(now)
        with self.policy.session(actor, VIEW_LIST, now=now, write=False) as s:
            if request_id is None:
                return self._sessions(s, "", ())
            return self._sessions(s, "WHERE v.request_id = ?", (_request_id(request_id),))

    def _sessions(self, s: Session, where: str, params: tuple[Any, ...]) -> pa.Table:
        cols = [f"v.{c}" for c in _SES_COLS[:2]] + ["r.kind", "r.requester", "r.purpose"] \
            + [f"v.{c}" for c in _SES_COLS[2:]]
        raw = s.fetch_arrow(f"SELECT {', '.join(cols)} FROM viewing_sessions v JOIN"
                            f" viewing_requests r ON r.request_id = v.request_id {where}"
                            " ORDER BY v.session_id", params, _SES_RAW)
        viewers = [[{"name": n, "id_kind": k} for n, k in json.loads(str(v))]
                   for v in raw.column("viewers").to_pylist()]
        towns = [_loads(v) for v in raw.column("towns").to_pylist()]
        raw = raw.set_column(raw.schema.get_field_index("viewers"), "viewers",
                             pa.array(viewers, pa.list_(VIEWER)))
        raw = raw.set_column(raw.schema.get_field_index("towns"), "towns",
                             pa.array(towns, pa.list_(pa.string())))
        return raw.cast(SESSION_SCHEMA)

    # -- publication ----------------------------------------------------------------------

    def publication(self, year: int, half: int, *, actor: Actor,
                    today: dt.date | None = None, now: dt.datetime | None = None) -> pa.Table:
        """The half-year's list of viewings (:data:`PUBLICATION_SCHEMA`), one row per
        viewing begun in it (Japanese dates): when, the kind, who asked (the body, or the
        private party and its representative), the purpose in the law's words and its
        summary, the range of residents, how many records. No resident's data. A period
        that has not ended by ``today`` (default: the clock's Japanese date) is refused."""
        period = self._period(year, half, today)
        _moment(now)
        with self.policy.session(actor, VIEW_PUBLISH, now=now, write=False,
                                 target=f"viewing publication {period.label}") as s:
            return self._publication(s, period)

    @staticmethod
    def _period(year: int, half: int, today: dt.date | None) -> Period:
        period = half_year(year, half)
        day = check_date(today, "today") or _japan_day(utcnow())
        if period.last >= day:
            raise InvalidInputError(f"the period {period.label} ({period.japanese}) has not"
                                    f" ended on {day}: it is published once it is over")
        return period

    def _publication(self, s: Session, period: Period) -> pa.Table:
        start = dt.datetime.combine(period.first, dt.time(), JST)
        end = dt.datetime.combine(period.last + dt.timedelta(days=1), dt.time(), JST)
        v = self._sessions(s, "WHERE v.started_at >= ? AND v.started_at < ?",
                           (s.ts(start), s.ts(end)))
        req = {r["request_id"]: r for r in _request_table(s.fetch_arrow(
            f"SELECT {', '.join(_REQ_COLS)} FROM viewing_requests ORDER BY request_id", (),
            _REQ_RAW)).to_pylist()}
        rows = []
        for x in v.to_pylist():
            r = req[x["request_id"]]
            rows.append({
                "viewed_on": _japan_day(x["started_at"]),
                "kind": _KIND_JA[r["kind"]],
                "requester": r["requester"],
                "representative": r["representative"],
                "purpose": PURPOSES[r["purpose"]].wording,
                "summary": r["summary"],
                "scope": _scope(x["towns"], x["born_from"], x["born_to"]),
                "records": x["records"],
            })
        rows.sort(key=lambda r: (r["viewed_on"], r["kind"], r["requester"]))
        return pa.Table.from_pylist(rows, schema=PUBLICATION_SCHEMA)

    def publish(self, year: int, half: int, out_dir: str | Path, *, actor: Actor,
                today: dt.date | None = None, now: dt.datetime | None = None) -> Publication:
        """Publish the half-year's list of viewings (:meth:`publication`) in ``out_dir`` as
        ``viewings-YEARhN.csv`` (UTF-8) and ``viewings-YEARhN.pdf`` (A4, IPAmj明朝), each
        written atomically; audited as ``viewing.publish`` with the files' SHA-256. The
        font missing is a :class:`~jukicore.errors.MissingFontError` and writes nothing."""
        from jukicore._files import write_atomic

        from .publication import render_csv, render_pdf

        period = self._period(year, half, today)
        out = Path(out_dir)
        if not out.is_dir():
            raise InvalidInputError(f"{out} is not a directory")
        published = today if today is not None else _japan_day(_moment(now))
        with self.policy.session(actor, VIEW_PUBLISH, now=now,
                                 target=f"viewing publication {period.label}") as s:
            table = self._publication(s, period)
            csv = render_csv(table)
            pdf = render_pdf(table, period, self.municipality, published)
            csv_path = out / f"viewings-{period.label}.csv"
            pdf_path = out / f"viewings-{period.label}.pdf"
            sums = hashlib.sha256(csv).hexdigest(), hashlib.sha256(pdf).hexdigest()
            audit.write(s, actor, "viewing.publish", f"viewing publication {period.label}",
                        f"{table.num_rows} viewings, {_total(table)} records;"
                        f" {csv_path.name} sha256 {sums[0]}; {pdf_path.name} sha256 {sums[1]}")
            write_atomic(csv_path, csv)  # the files last: a failure rolls the entry back
            write_atomic(pdf_path, pdf)
        return Publication(period, table, csv_path, pdf_path, *sums)

    # -- checks -----------------------------------------------------------------------------

    def content_digest(self) -> str:
        """SHA-256 over the register's content (:meth:`Register.content_digest`) and both
        viewing tables: equal digests mean nothing changed."""
        queries = [f"SELECT {', '.join(t.names)} FROM {t.name} ORDER BY {t.columns[0].name}"
                   for t in (REQUEST_TABLE, SESSION_TABLE)]
        with self._b.session(write=False) as s:
            mine = content_digest(s, queries)
        return hashlib.sha256(f"{self._reg.content_digest()}{mine}".encode()).hexdigest()


def _total(table: pa.Table) -> int:
    return int(pc.sum(table.column("records")).as_py() or 0)


def _request_table(raw: pa.Table) -> pa.Table:
    viewers = [json.loads(str(v)) for v in raw.column("viewers").to_pylist()]
    towns = [_loads(v) for v in raw.column("towns").to_pylist()]
    raw = raw.set_column(raw.schema.get_field_index("viewers"), "viewers",
                         pa.array(viewers, pa.list_(pa.string())))
    raw = raw.set_column(raw.schema.get_field_index("towns"), "towns",
                         pa.array(towns, pa.list_(pa.string())))
    return raw.cast(REQUEST_SCHEMA)


def _extract(s: Session, towns: list[str] | None, bf: dt.date | None,
             bt: dt.date | None) -> pa.Table:
    """The four items of the current residents in the range (never a removed record), in
    address order: the list a viewing shows."""
    where = ["status = 'resident'"]
    params: list[Any] = []
    if towns is not None:
        where.append(f"town IN ({', '.join('?' * len(towns))})")
        params += towns
    if bf is not None:
        where.append("birth_date >= ?")
        params.append(s.d(bf))
    if bt is not None:
        where.append("birth_date <= ?")
        params.append(s.d(bt))
    raw = s.fetch_arrow(
        "SELECT family_name, given_name, address, birth_date, sex FROM residents WHERE "
        + " AND ".join(where) + " ORDER BY address, birth_date, person_id", tuple(params),
        pa.schema([("family_name", pa.string()), ("given_name", pa.string()),
                   ("address", pa.string()), ("birth_date", pa.date32()),
                   ("sex", pa.int8())]))
    name = pc.binary_join_element_wise(raw.column("family_name"), raw.column("given_name"),
                                       "　")
    code = raw.column("sex")  # 1 or 2: the register's validation
    sex = pc.if_else(pc.equal(code, 1), _SEX[1], _SEX[2]).cast(pa.string())
    return pa.Table.from_arrays([name, raw.column("address"), raw.column("birth_date"), sex],
                                schema=EXTRACT_SCHEMA)


def _extract_digest(table: pa.Table) -> str:
    """SHA-256 of the list shown: its rows as text in order, each ``name TAB address TAB
    birth date TAB sex LF`` (a stored text holds no tab or newline, so the text is
    unambiguous). An auditor who makes the list again can tell it is the one shown; the
    list itself is not kept."""
    if table.num_rows == 0:
        return hashlib.sha256(b"").hexdigest()
    born = pc.strftime(table.column("birth_date").cast(pa.timestamp("s")), "%Y-%m-%d")
    lines = pc.binary_join_element_wise(
        table.column("name"), table.column("address"), born, table.column("sex"),
        "\t").combine_chunks()
    h = hashlib.sha256()
    for start in range(0, len(lines), 65536):  # bounded memory for a whole city
        h.update("".join(f"{x}\n" for x in lines.slice(start, 65536).to_pylist()).encode())
    return h.hexdigest()
