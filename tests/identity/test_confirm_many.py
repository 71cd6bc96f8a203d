"""Group commit of agency queries (jukicore.identity.provide.confirm_many): many requests by
resident code answered in one transaction exactly as confirm answers them one by one, on
SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jukicore.access.actors import Actor
from jukicore.codes import CodeRegistry
from jukicore.errors import InvalidInputError, JukiError, PermissionDeniedError
from jukicore.identity.provide import ConfirmRequest, confirm_many
from jukicore.identity.store import IDENTITY_SCHEMA, IdentityStore, create_identity_store

MUNI_A = "131016"
D = dt.date(2024, 4, 1)
NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
#: 23:00 in Japan on a Tuesday: outside the hours configured for providers below
NIGHT = dt.datetime(2026, 12, 1, 14, 0, tzinfo=dt.UTC)
JPS, MOFA = Actor.agency("jps"), Actor.agency("mofa")
PENSION = "jps-pension-benefits"
_codes = [int(c) for c in CodeRegistry().generate(40)]
UNKNOWN = int(CodeRegistry().generate(1)[0])
ADMIN = Actor.operator("a", None, "admin", node_id="center")
DESK = Actor.operator("desk", None, "provider", node_id="center")
BOSS = Actor.operator("boss", None, "supervisor", "provider", node_id="center")


def change(seq: int, i: int, **kw: Any) -> dict[str, Any]:
    row = {"seq": seq, "resident_code": _codes[i], "previous_resident_code": None,
           "family_name": "髙橋", "given_name": f"花子{i}", "birth_date": dt.date(1980, 2, 29),
           "sex": 2, "address": "東京都千代田区丸の内1丁目1番1号", "status": "resident",
           "change_date": D, "change_reason": "load"}
    row.update(kw)
    return row


def _fill(st: IdentityStore) -> IdentityStore:
    def apply(pid: str, rows: list[dict[str, Any]]) -> None:
        st.apply_changes(sender=MUNI_A, packet_id=pid, first_seq=rows[0]["seq"],
                         last_seq=rows[-1]["seq"],
                         changes=pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA),
                         actor=st.node_id)

    apply("a1", [change(i + 1, i) for i in range(30)])
    # 1 dies, 2 moves out abroad, 3 changes code to 31, 4 removed otherwise
    apply("a2", [
        change(31, 1, status="removed", change_reason="death", change_date=dt.date(2025, 6, 1)),
        change(32, 2, status="removed", change_reason="move_out",
               change_date=dt.date(2025, 8, 1)),
        change(33, 31, previous_resident_code=_codes[3], given_name="花子3",
               change_reason="code_change", change_date=dt.date(2025, 7, 1)),
        change(34, 4, status="removed", change_reason="ex_officio_removal",
               change_date=dt.date(2025, 9, 1)),
    ])
    st.set_policy("hours.provider", "08:30-17:15", actor=ADMIN)
    return st


@pytest.fixture
def two(db_target: str, tmp_path: Path,
        pg_databases: Callable[[str], str]) -> Iterator[tuple[IdentityStore, IdentityStore]]:
    """Two centers of the same content: one answers one by one, the other in batches."""
    other = str(tmp_path / "other.db") if "://" not in db_target else pg_databases("other")
    a = _fill(create_identity_store(db_target, node_id="center", kind="center"))
    b = _fill(create_identity_store(other, node_id="center", kind="center"))
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def center(two: tuple[IdentityStore, IdentityStore]) -> IdentityStore:
    return two[0]


def _audit(st: IdentityStore) -> list[tuple[Any, ...]]:
    """Every audit entry but its time and number, in the log's order."""
    with st._b.session(write=False) as s:
        return s.query("SELECT actor, actor_kind, action, target, notification_id, detail"
                       " FROM audit ORDER BY seq")


def _stored(st: IdentityStore) -> tuple[Any, ...]:
    with st._b.session(write=False) as s:
        requests = s.query("SELECT request_id, agency, purpose_id, purpose_version,"
                           " legal_basis, actor, embargo_until FROM provision_request"
                           " ORDER BY request_no")
        provisions = s.query("SELECT request_id, resident_code, answer, items"
                             " FROM provision_detail ORDER BY request_no")
    return requests, provisions, _audit(st)


def _one_by_one(st: IdentityStore, reqs: list[ConfirmRequest], *,
                now: dt.datetime = NOW) -> list[pa.Table | JukiError]:
    out: list[pa.Table | JukiError] = []
    for r in reqs:
        try:
            out.append(st.confirm(agency=r.agency, purpose=r.purpose, actor=r.actor,
                                  code=r.code, request_id=r.request_id,
                                  embargo_until=r.embargo_until, now=now))
        except JukiError as e:
            out.append(e)
    return out


def _same(a: list[pa.Table | JukiError], b: list[pa.Table | JukiError]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, pa.Table):
            assert isinstance(y, pa.Table) and x.equals(y, check_metadata=True)
            assert x.schema == y.schema
        else:
            assert type(x) is type(y) and str(x) == str(y)


def _mixed() -> list[ConfirmRequest]:
    """Valid requests of every answer, bad input, refusals, repeated request ids."""
    return [
        ConfirmRequest("jps", PENSION, JPS, _codes[0], "r-1"),
        ConfirmRequest("jps", PENSION, JPS, "12345678901", "r-2"),              # bad code
        ConfirmRequest("mofa", "mofa-passport", MOFA, _codes[1], "r-3"),        # died
        ConfirmRequest("mofa", PENSION, MOFA, _codes[0], "r-4"),                # jps's purpose
        ConfirmRequest("jps", PENSION, MOFA, _codes[0], "r-5"),                 # for another
        ConfirmRequest("jps", PENSION, JPS, _codes[2], "r-1"),                  # moved out
        ConfirmRequest("jps", PENSION, JPS, _codes[3], "r-1"),                  # retired
        ConfirmRequest("mofa", "mofa-passport", MOFA, _codes[3], "r-6"),        # no new code
        ConfirmRequest("jps", PENSION, JPS, _codes[4], "r-7"),                  # removed
        ConfirmRequest("jps", PENSION, JPS, UNKNOWN, "r-8"),                    # not found
        ConfirmRequest("jps", "no-such-purpose", JPS, _codes[0], "r-9"),        # no purpose
        ConfirmRequest("jps", PENSION, Actor.private("bank"), _codes[0], "r-10"),  # table
        ConfirmRequest("acme", PENSION, Actor.agency("acme"), _codes[0], "r-11"),  # no agency
        ConfirmRequest("jps", PENSION, JPS, _codes[5], "../x"),                 # bad id
        ConfirmRequest("jps", PENSION, JPS, _codes[6], None, dt.date(2027, 1, 1)),  # embargo
        ConfirmRequest("jps", "JPS!", JPS, _codes[6]),                          # bad purpose id
        ConfirmRequest("jps", PENSION, JPS, None, "r-12"),                      # no code
        ConfirmRequest("jps", PENSION, DESK, _codes[7], "r-13"),                # out of hours
        ConfirmRequest("jps", PENSION, DESK.with_override(BOSS, "urgent"), _codes[8],
                       "r-14"),                                                 # override
        ConfirmRequest("mofa", PENSION, DESK.with_override(BOSS, "urgent"), _codes[9],
                       "r-15"),                       # override admitted, purpose refused
        ConfirmRequest("jps", PENSION, JPS, f"{_codes[10]:011d}", "r-1"),       # code as text
        ConfirmRequest("jps", PENSION, JPS, _codes[0], "r-1"),                  # repeated
    ]


def test_a_batch_answers_and_records_as_one_by_one(
        two: tuple[IdentityStore, IdentityStore]) -> None:
    single, batch = two
    reqs = _mixed()
    alone = _one_by_one(single, reqs, now=NIGHT)
    together = batch.confirm_many(reqs, now=NIGHT)
    _same(alone, together)
    assert _stored(single) == _stored(batch)
    assert single.content_digest() == batch.content_digest()
    answers = [t.column("answer").to_pylist()[0] if isinstance(t, pa.Table) else
               type(t).__name__ for t in together]
    assert answers == [
        "found", "InvalidInputError", "died", "PermissionDeniedError",
        "PermissionDeniedError", "moved_out", "retired", "retired", "removed", "not_found",
        "PermissionDeniedError", "PermissionDeniedError", "PermissionDeniedError",
        "InvalidInputError", "InvalidInputError", "InvalidInputError", "InvalidInputError",
        "PermissionDeniedError", "found", "PermissionDeniedError", "found", "found"]
    # and at working hours, where the desk needs no override
    more = [dataclasses.replace(r, request_id=f"w-{i}") for i, r in enumerate(reqs)
            if r.actor in (DESK, JPS)]
    _same(_one_by_one(single, more), batch.confirm_many(more, now=NOW))
    assert _stored(single) == _stored(batch)
    assert single.content_digest() == batch.content_digest()


def test_refused_and_invalid_requests_leave_only_their_denials(center: IdentityStore) -> None:
    reqs = _mixed()
    out = confirm_many(center, reqs, now=NIGHT)
    requests, provisions, entries = _stored(center)
    answered = [i for i, t in enumerate(out) if isinstance(t, pa.Table)]
    assert answered == [0, 2, 5, 6, 7, 8, 9, 18, 20, 21]
    assert [r[0] for r in requests] == [reqs[i].request_id for i in answered]
    assert [(p[0], p[1]) for p in provisions] == [
        (reqs[i].request_id, int(reqs[i].code)) for i in answered]
    after_load = [e for e in entries if e[2] in ("identity.provide", "access.denied",
                                                 "access.override")]
    assert [e[2] for e in after_load] == [
        "identity.provide", "identity.provide", "access.denied", "access.denied",
        "identity.provide", "identity.provide", "identity.provide", "identity.provide",
        "identity.provide", "access.denied", "access.denied", "access.denied",
        "access.denied", "access.override", "identity.provide", "access.denied",
        "identity.provide", "identity.provide"]
    denied = [e for e in after_load if e[2] == "access.denied"]
    refused = [i for i, t in enumerate(out) if isinstance(t, PermissionDeniedError)]
    assert refused == [3, 4, 10, 11, 12, 17, 19]
    assert [d[0] for d in denied] == [str(reqs[i].actor) for i in refused]
    # the table's refusal names no code (as confirm's precheck); the others name it
    assert [d[3] for d in denied] == [
        f"{_codes[0]:011d}", f"{_codes[0]:011d}", f"{_codes[0]:011d}", None,
        f"{_codes[0]:011d}", f"{_codes[7]:011d}", f"{_codes[9]:011d}"]
    assert all(d[5].startswith("identity.provide: ") for d in denied)
    assert "is jps's, not mofa's" in str(out[3]) and "itself only" in str(out[4])
    assert "no legal purpose" in str(out[10]) and "private party" in str(out[11])
    assert "supervisor's override is needed" in str(out[17])
    # the override of the refused request 19 is not recorded: only request 18's
    overrides = [e for e in after_load if e[2] == "access.override"]
    assert len(overrides) == 1 and overrides[0][0] == str(reqs[18].actor)
    for i in (1, 13, 14, 15, 16):
        assert isinstance(out[i], InvalidInputError)
    assert "not a valid resident code" in str(out[1]) and "request id" in str(out[13])
    assert "allows no embargo" in str(out[14]) and "one of them" in str(out[16])


def test_answers_carry_only_the_purposes_items(center: IdentityStore) -> None:
    out = center.confirm_many([ConfirmRequest("mofa", "mofa-passport", MOFA, _codes[0]),
                               ConfirmRequest("jps", PENSION, JPS, _codes[0]),
                               ConfirmRequest("jps", PENSION, JPS, _codes[3])], now=NOW)
    passport, pension, retired = out
    assert isinstance(passport, pa.Table) and isinstance(pension, pa.Table)
    assert passport.column_names == ["answer", "status_date", "family_name", "given_name",
                                     "birth_date", "sex", "address"]
    assert pension.to_pylist()[0]["resident_code"] == _codes[0]
    assert pension.to_pylist()[0]["birth_date"] == dt.date(1980, 2, 29)
    assert isinstance(retired, pa.Table)
    assert retired.to_pylist()[0]["new_code"] == _codes[31]
    with center._b.session(write=False) as s:
        ids = [r for (r,) in s.query("SELECT request_id FROM provision_request")]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(len(r) == 16 and int(r, 16) >= 0 for r in ids)  # generated per request


def test_an_empty_batch_writes_nothing(center: IdentityStore) -> None:
    before, entries = center.content_digest(), _audit(center)
    assert center.confirm_many([], now=NOW) == []
    assert center.confirm_many(iter(()), now=NOW) == []
    assert center.content_digest() == before and _audit(center) == entries


@pytest.mark.parametrize("bad", ["abc", b"ab", 5, None,
                                 ConfirmRequest("jps", PENSION, JPS, _codes[0])])
def test_requests_that_are_no_sequence_are_refused(center: IdentityStore, bad: Any) -> None:
    before, entries = center.content_digest(), _audit(center)
    with pytest.raises(InvalidInputError, match="sequence of ConfirmRequest"):
        center.confirm_many(bad, now=NOW)
    assert center.content_digest() == before and _audit(center) == entries


def test_items_that_are_no_request_are_invalid_alone(center: IdentityStore) -> None:
    before = _audit(center)
    out = center.confirm_many([{"agency": "jps"}, None,
                               ConfirmRequest("jps", PENSION, JPS, _codes[0])], now=NOW)
    assert isinstance(out[0], InvalidInputError) and isinstance(out[1], InvalidInputError)
    assert isinstance(out[2], pa.Table)
    assert len(_audit(center)) == len(before) + 1


def test_only_invalid_requests_write_nothing(center: IdentityStore) -> None:
    before, entries = center.content_digest(), _audit(center)
    out = center.confirm_many([ConfirmRequest("jps", PENSION, JPS, "1"),
                               ConfirmRequest("jps", PENSION, JPS, -5),
                               ConfirmRequest("jps", PENSION, JPS, True),
                               ConfirmRequest("jps", PENSION, JPS, _codes[0], "ü")], now=NOW)
    assert all(isinstance(o, InvalidInputError) for o in out)
    assert center.content_digest() == before and _audit(center) == entries


def test_a_batch_of_500_with_repeated_ids(two: tuple[IdentityStore, IdentityStore]) -> None:
    single, batch = two
    reqs = [ConfirmRequest("jps" if i % 3 else "mofa", PENSION if i % 3 else "mofa-passport",
                           JPS if i % 3 else MOFA,
                           _codes[i % 35] if i % 7 else UNKNOWN, f"rep-{i % 4}")
            for i in range(500)]
    reqs[250] = ConfirmRequest("mofa", PENSION, MOFA, _codes[0], "rep-0")  # refused
    out = batch.confirm_many(reqs, now=NOW)
    assert len(out) == 500
    assert sum(isinstance(o, pa.Table) for o in out) == 499
    assert isinstance(out[250], PermissionDeniedError)
    _same(_one_by_one(single, reqs), out)
    assert _stored(single) == _stored(batch)
    assert single.content_digest() == batch.content_digest()
    with batch._b.session(write=False) as s:
        assert s.scalar("SELECT count(*) FROM provision_request") == 499
        assert s.scalar("SELECT count(DISTINCT request_id) FROM provision_request") == 4
        assert s.scalar("SELECT count(*) FROM provision") == 499


def test_purposes_are_read_per_batch_not_across(center: IdentityStore) -> None:
    ask = [ConfirmRequest("mofa", "mofa-passport", MOFA, _codes[0])]
    assert isinstance(center.confirm_many(ask, now=NOW)[0], pa.Table)
    center.close_purpose("mofa-passport", actor=ADMIN, now=NOW)
    out = center.confirm_many(ask * 2, now=NOW)
    assert all(isinstance(o, PermissionDeniedError) and "no legal purpose" in str(o)
               for o in out)


def test_a_failed_transaction_answers_nothing_and_keeps_the_denials(
        center: IdentityStore) -> None:
    """The database itself refuses the batch's provision rows (a trigger, as a full disk
    or a broken constraint would): nothing is answered or recorded, the batch's denials
    are still written."""
    before = _stored(center)[:2]
    denials = len([e for e in _audit(center) if e[2] == "access.denied"])
    with center._b.session() as s:
        if s.dialect == "sqlite":
            s.execute("CREATE TRIGGER full_disk BEFORE INSERT ON provision"
                      " BEGIN SELECT RAISE(ABORT, 'the disk is full'); END")
        else:
            s.execute("CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS"
                      " $$ BEGIN RAISE EXCEPTION 'the disk is full'; END $$")
            s.execute("CREATE TRIGGER full_disk BEFORE INSERT ON provision FOR EACH ROW"
                      " EXECUTE FUNCTION full_disk()")
    with pytest.raises(Exception, match="disk is full"):
        center.confirm_many([ConfirmRequest("jps", PENSION, JPS, _codes[0]),
                             ConfirmRequest("mofa", PENSION, MOFA, _codes[0]),
                             ConfirmRequest("jps", PENSION, Actor.private("x"), _codes[0])],
                            now=NOW)
    assert _stored(center)[:2] == before
    entries = _audit(center)
    assert len([e for e in entries if e[2] == "access.denied"]) == denials + 2
    assert not [e for e in entries if e[2] == "identity.provide"]


def test_batches_from_several_threads_each_answer_whole(center: IdentityStore) -> None:
    """A server answering batches from several threads at once: every batch commits whole
    (its answers, records and entries), the audit log stays one unbroken chain."""
    from concurrent.futures import ThreadPoolExecutor

    from jukicore import audit

    def run(t: int) -> list[pa.Table | JukiError]:
        out: list[pa.Table | JukiError] = []
        for b in range(4):
            out += center.confirm_many(
                [ConfirmRequest("jps", PENSION, JPS, _codes[(t * 7 + b + i) % 30],
                                f"t{t}-b{b}-{i}") for i in range(15)]
                + [ConfirmRequest("mofa", PENSION, MOFA, _codes[0], f"t{t}-b{b}-x")],
                now=NOW)
        return out

    with ThreadPoolExecutor(4) as pool:
        results = [o for r in pool.map(run, range(4)) for o in r]
    assert sum(isinstance(o, pa.Table) for o in results) == 4 * 4 * 15
    assert sum(isinstance(o, PermissionDeniedError) for o in results) == 16
    requests, provisions, entries = _stored(center)
    assert len(requests) == len(provisions) == 240 and len({r[0] for r in requests}) == 240
    assert len([e for e in entries if e[2] == "identity.provide"]) == 240
    assert len([e for e in entries if e[2] == "access.denied"]) == 16
    report = audit.verify(center._b, node_id=center.node_id, keys=[])
    assert report.ok, report.problems


def test_answers_as_rows_hold_what_the_tables_hold(center: IdentityStore) -> None:
    """``as_rows`` (what a server turns into JSON) gives each answer's one row as a dict:
    the same columns and values as its table; errors stay errors."""
    asks = [ConfirmRequest("jps", PENSION, JPS, c, f"rows-{i}")
            for i, c in enumerate(_codes[:5])]
    asks.append(ConfirmRequest("mofa", PENSION, MOFA, _codes[0], "rows-x"))
    tables = center.confirm_many(asks, now=NOW)
    rows = center.confirm_many(asks, now=NOW, as_rows=True)
    for t, r in zip(tables, rows, strict=True):
        if isinstance(t, pa.Table):
            assert isinstance(r, dict) and [r] == t.to_pylist()
        else:
            assert type(r) is type(t) and str(r) == str(t)
