"""Register viewing (jukicore.viewing) on SQLite and PostgreSQL: only the four items, the
requests the law allows and their approval by another operator, viewings within the
approved request, the fee per 30 minutes started, the audit of every step."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pyarrow as pa
import pytest
from regkit import ADMIN, LG
from viewkit import (
    BOSS,
    BOSS2,
    CLERK,
    CLERK2,
    DEAD,
    JUNE,
    WORK,
    Unchanged,
    at,
    audit_rows,
    private_request,
    public_request,
)

from jukicore.access.actors import Actor
from jukicore.audit import verify
from jukicore.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.viewing import (
    EXTRACT_SCHEMA,
    FOUR_ITEMS,
    REQUEST_SCHEMA,
    SESSION_SCHEMA,
    Viewings,
)

ID = {"山田太郎": "driver_license"}


def approved(desk: Viewings, kind: str = "private", **kw: Any) -> int:
    rid = (private_request if kind == "private" else public_request)(desk, **kw)
    desk.approve(rid, actor=BOSS, now=WORK)
    return rid


# -- the four items, nothing else ------------------------------------------------------


def test_a_viewing_shows_the_four_items_of_current_residents_only(desk: Viewings) -> None:
    reg = desk._reg
    rid = approved(desk)
    v = desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    assert tuple(v.table.column_names) == FOUR_ITEMS == ("name", "address", "birth_date",
                                                          "sex")
    assert v.table.schema == EXTRACT_SCHEMA
    everyone = reg.residents(actor=ADMIN, include_removed=True).to_pylist()
    alive = [r for r in everyone if r["status"] == "resident" and r["town"] in ("丸の内", "神田")]
    assert v.records == len(alive) == 11
    want = sorted((f"{r['family_name']}　{r['given_name']}", r["address"], r["birth_date"],
                   "男" if r["sex"] == 1 else "女") for r in alive)
    assert sorted(tuple(r.values()) for r in v.table.to_pylist()) == want
    # the dead man's record (a 除票) is never shown, nor anyone outside the towns asked for
    assert DEAD not in v.table.column("name").to_pylist()
    assert not any("大手町" in a for a in v.table.column("address").to_pylist())
    # nothing else of any record appears anywhere in the list
    shown = {str(x) for col in v.table.columns for x in col.to_pylist()}
    for r in everyone:
        for item in ("family_name_kana", "given_name_kana", "domicile", "domicile_head",
                     "relationship", "resident_code", "my_number", "postal_code"):
            value = None if r[item] is None else str(r[item])
            if value is not None:  # (a short one like 子 may be part of a name: 花子)
                assert value not in shown, (item, value)
                assert len(value) < 4 or not any(value in s for s in shown), (item, value)


def test_the_range_shown_is_the_requests_or_narrower(desk: Viewings) -> None:
    rid = public_request(desk)
    desk.approve(rid, actor=BOSS, now=WORK)
    v = desk.record(rid, viewers={"防衛次郎": "staff_id"}, actor=CLERK, now=WORK)
    # born 1999-2004: 高橋一郎, 田中一郎, 佐藤一郎 (2000); 田中二郎 (2003) died
    assert sorted(v.table.column("name").to_pylist()) == ["佐藤　一郎", "田中　一郎",
                                                          "高橋　一郎"]
    assert {d.year for d in v.table.column("birth_date").to_pylist()} == {2000}
    narrow = desk.record(rid, viewers={"防衛次郎": "phone_inquiry"}, towns=["神田"],
                         born_from=dt.date(2000, 1, 1), actor=CLERK, now=WORK)
    assert narrow.table.column("name").to_pylist() == ["高橋　一郎"]
    s = desk.sessions(actor=CLERK, request_id=rid, now=WORK)
    assert s.schema == SESSION_SCHEMA
    assert s.column("towns").to_pylist() == [None, ["神田"]]
    assert s.column("born_from").to_pylist() == [dt.date(1999, 1, 1), dt.date(2000, 1, 1)]
    assert s.column("records").to_pylist() == [3, 1]


@pytest.mark.parametrize(("kw", "why"), [
    ({"towns": ["丸の内", "大手町"]}, "beyond"),
    ({"born_from": dt.date(1998, 12, 31)}, "before the request"),
    ({"born_to": dt.date(2005, 1, 1)}, "after the request"),
])
def test_a_range_beyond_the_request_is_refused(desk: Viewings, kw: dict[str, Any],
                                               why: str) -> None:
    rid = approved(desk, "public", towns=["丸の内", "神田"])
    before = Unchanged(desk)
    with pytest.raises(PermissionDeniedError, match=why):
        desk.record(rid, viewers={"防衛次郎": "staff_id"}, **kw, actor=CLERK, now=WORK)
    before.check(denied=1)


# -- requests ----------------------------------------------------------------------------


def test_requests_are_recorded_as_arrow(desk: Viewings) -> None:
    a = private_request(desk)
    b = public_request(desk, actor=BOSS)
    t = desk.requests(actor=CLERK, now=WORK)
    assert t.schema == REQUEST_SCHEMA
    rows = t.to_pylist()
    assert [r["request_id"] for r in rows] == [a, b]
    assert rows[0]["viewers"] == ["山田太郎", "鈴木花子"] and rows[0]["state"] == "requested"
    assert rows[0]["requested_by"] == str(CLERK) and rows[0]["decided_by"] is None
    assert rows[1]["towns"] is None and rows[1]["legal_basis"] == "自衛隊法第97条第1項"
    assert desk.requests(actor=CLERK, state="approved", now=WORK).num_rows == 0


@pytest.mark.parametrize(("kind", "purpose"), [
    ("private", "direct_mail"),          # sales: never
    ("private", "名簿作成"),
    ("private", "statutory_duty"),       # a private party has no statutory duty to view for
    ("public", "survey"),                # a public body views for its duties (Art. 11)
    ("public", "marketing"),
])
def test_a_purpose_the_law_does_not_allow_is_refused(desk: Viewings, kind: str,
                                                     purpose: str) -> None:
    before = Unchanged(desk)
    extra = {"legal_basis": "某法"} if kind == "private" else {"handling": "保管"}
    make = private_request if kind == "private" else public_request
    with pytest.raises(PermissionDeniedError, match="view"):
        make(desk, purpose=purpose, kind=kind, **extra)
    [entry] = before.check(denied=1)
    assert entry["actor"] == str(CLERK) and "viewing.request" in entry["detail"]
    assert desk.requests(actor=CLERK, now=WORK).num_rows == 0


@pytest.mark.parametrize("kw", [
    {"kind": "corporate"},
    {"kind": None},
    {"requester": ""},
    {"requester": "   "},
    {"requester": 42},
    {"requester": "東都\n大学"},
    {"requester": " 東都大学"},
    {"requester": "大" * 201},
    {"summary": None},
    {"purpose": ""},
    {"purpose": 3},
    {"handling": None},                       # a private party says how it keeps the notes
    {"viewers": []},
    {"viewers": "山田太郎"},
    {"viewers": ["山田太郎", "山田太郎"]},
    {"viewers": ["山田太郎", None]},
    {"viewers": [f"閲覧者{i}" for i in range(51)]},
    {"towns": []},
    {"towns": "丸の内"},
    {"born_from": "2000-01-01"},
    {"born_from": dt.date(2001, 1, 1), "born_to": dt.date(2000, 1, 1)},
    {"born_to": dt.datetime(2000, 1, 1)},
    {"period_from": None},
    {"period_from": dt.date(2024, 7, 1), "period_to": dt.date(2024, 6, 30)},
    {"period_from": dt.date(2024, 5, 1), "period_to": dt.date(2024, 6, 2)},  # over already
    {"period_to": dt.date(2025, 6, 30)},      # more than a year
])
def test_malformed_requests_change_nothing(desk: Viewings, kw: dict[str, Any]) -> None:
    before = Unchanged(desk)
    with pytest.raises(InvalidInputError):
        private_request(desk, **kw)
    before.check(denied=0)


def test_a_public_request_names_its_statute(desk: Viewings) -> None:
    before = Unchanged(desk)
    with pytest.raises(InvalidInputError, match="legal_basis"):
        public_request(desk, legal_basis=None)
    before.check(denied=0)


def test_requests_and_viewings_need_the_role(desk: Viewings) -> None:
    nobody = Unchanged(desk)
    for actor in (ADMIN, Actor.operator("x", "011002", "supervisor")):  # (another city's)
        with pytest.raises(PermissionDeniedError):
            private_request(desk, actor=actor)
    nobody.check(denied=2)


# -- approval --------------------------------------------------------------------------


def test_approval_by_the_clerk_who_recorded_it_is_refused(desk: Viewings) -> None:
    rid = private_request(desk, actor=CLERK)
    before = Unchanged(desk)
    with pytest.raises(PermissionDeniedError, match=r"viewing\.approve"):
        desk.approve(rid, actor=CLERK, now=WORK)  # a clerk approves nothing
    with pytest.raises(PermissionDeniedError):
        desk.approve(rid, actor=CLERK2, now=WORK)
    before.check(denied=2)
    # a supervisor who recorded a request does not approve it either: another one does
    own = private_request(desk, actor=BOSS)
    before = Unchanged(desk)
    with pytest.raises(PermissionDeniedError, match="recorded by"):
        desk.approve(own, actor=BOSS, now=WORK)
    before.check(denied=1)
    row = desk.approve(own, actor=BOSS2, note="公益性を確認", now=WORK)
    assert (row["state"], row["decided_by"], row["decision_note"]) == (
        "approved", str(BOSS2), "公益性を確認")
    assert row["decided_at"] == WORK.astimezone(dt.UTC)


def test_a_request_is_decided_once(desk: Viewings) -> None:
    a, b = private_request(desk), private_request(desk)
    desk.approve(a, actor=BOSS, now=WORK)
    assert desk.refuse(b, actor=BOSS, reason="公益性が認められない", now=WORK)["state"] == \
        "refused"
    before = Unchanged(desk)
    for rid in (a, b):
        for decide in (lambda r: desk.approve(r, actor=BOSS2, now=WORK),
                       lambda r: desk.refuse(r, actor=BOSS2, reason="x", now=WORK)):
            with pytest.raises(ConflictError):
                decide(rid)
    with pytest.raises(NotFoundError):
        desk.approve(999, actor=BOSS, now=WORK)
    for bad in (0, -1, "1; DROP TABLE audit", 1.5, True, None, "１"):
        with pytest.raises(InvalidInputError):
            desk.approve(bad, actor=BOSS, now=WORK)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        desk.refuse(a, actor=BOSS, reason="", now=WORK)
    before.check(denied=0)


# -- viewings ----------------------------------------------------------------------------


def test_a_viewing_before_approval_is_refused(desk: Viewings) -> None:
    rid = private_request(desk)
    before = Unchanged(desk)
    with pytest.raises(PermissionDeniedError, match="approved request"):
        desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    refused = private_request(desk)
    desk.refuse(refused, actor=BOSS, reason="営利目的", now=WORK)
    before = Unchanged(desk)
    with pytest.raises(PermissionDeniedError, match="is refused"):
        desk.record(refused, viewers=ID, actor=CLERK, now=WORK)
    before.check(denied=1)
    assert desk.sessions(actor=CLERK, now=WORK).num_rows == 0
    with pytest.raises(NotFoundError):
        desk.record(12345, viewers=ID, actor=CLERK, now=WORK)


@pytest.mark.parametrize("day", [dt.date(2024, 5, 31), dt.date(2024, 7, 1),
                                 dt.date(2025, 6, 3)])
def test_a_viewing_outside_the_approved_period_is_refused(desk: Viewings,
                                                          day: dt.date) -> None:
    rid = approved(desk)
    before = Unchanged(desk)
    with pytest.raises(PermissionDeniedError, match="allows viewings from 2024-06-01"):
        desk.record(rid, viewers=ID, actor=CLERK.with_override(BOSS, "test"), now=at(day))
    before.check(denied=1)


def test_the_period_is_a_japanese_day(desk: Viewings) -> None:
    """2024-06-30 23:30 UTC is 1 July in Japan: past a June period."""
    rid = approved(desk)
    late = dt.datetime(2024, 6, 30, 23, 30, tzinfo=dt.UTC)
    with pytest.raises(PermissionDeniedError, match="not on 2024-07-01"):
        desk.record(rid, viewers=ID, actor=BOSS, now=late)
    edge = dt.datetime(2024, 5, 31, 15, 0, tzinfo=dt.UTC)  # 1 June 00:00 in Japan
    assert desk.record(rid, viewers=ID, actor=BOSS, now=edge).records == 11


@pytest.mark.parametrize(("viewers", "why"), [
    ({"佐藤次郎": "driver_license"}, "not named"),
    ({"山田太郎": "driver_license", "佐藤次郎": "passport"}, "not named"),
    ({"山田太郎": "staff_id"}, "photo"),          # a private party's viewer shows a photo ID
    ({"山田太郎": "phone_inquiry"}, "photo"),
])
def test_viewers_are_named_and_identified(desk: Viewings, viewers: dict[str, str],
                                          why: str) -> None:
    rid = approved(desk)
    before = Unchanged(desk)
    with pytest.raises(PermissionDeniedError, match=why):
        desk.record(rid, viewers=viewers, actor=CLERK, now=WORK)
    before.check(denied=1)


@pytest.mark.parametrize("viewers", [
    {}, [], "山田太郎", {"山田太郎": "photo"}, {"山田太郎": None}, [("山田太郎",)],
    [("山田太郎", "passport"), ("山田太郎", "passport")], {"": "passport"}, None,
])
def test_malformed_viewers_change_nothing(desk: Viewings, viewers: Any) -> None:
    rid = approved(desk)
    before = Unchanged(desk)
    with pytest.raises(InvalidInputError):
        desk.record(rid, viewers=viewers, actor=CLERK, now=WORK)
    before.check(denied=0)


def test_two_viewers_with_photo_ids(desk: Viewings) -> None:
    rid = approved(desk)
    v = desk.record(rid, viewers=[("山田太郎", "my_number_card"), ("鈴木花子", "passport")],
                    actor=CLERK, now=WORK)
    [row] = desk.sessions(actor=CLERK, now=WORK).to_pylist()
    # the digest kept is that of the list shown, row by row
    lines = "".join(f"{r['name']}\t{r['address']}\t{r['birth_date'].isoformat()}\t{r['sex']}\n"
                    for r in v.table.to_pylist())
    assert row["extract_digest"] == hashlib.sha256(lines.encode()).hexdigest()
    assert row["viewers"] == [{"name": "山田太郎", "id_kind": "my_number_card"},
                              {"name": "鈴木花子", "id_kind": "passport"}]
    assert row["records"] == v.records and row["ended_at"] is None and row["fee"] is None


# -- the fee -----------------------------------------------------------------------------


@pytest.mark.parametrize(("minutes", "fee"), [(0, 1000), (29, 1000), (30, 1000), (31, 2000),
                                              (60, 2000), (61, 3000), (90, 3000)])
def test_the_fee_per_30_minutes_started(desk: Viewings, minutes: int, fee: int) -> None:
    rid = approved(desk)
    v = desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    row = desk.finish(v.session_id, actor=CLERK, now=WORK + dt.timedelta(minutes=minutes))
    assert (row["fee"], row["fee_rate"]) == (fee, 1000)
    assert row["periods"] == fee // 1000
    assert row["ended_at"] - row["started_at"] == dt.timedelta(minutes=minutes)


def test_a_second_past_30_minutes_starts_another_period(desk: Viewings) -> None:
    rid = approved(desk)
    v = desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    end = WORK + dt.timedelta(minutes=30, microseconds=1)
    assert desk.finish(v.session_id, actor=CLERK, now=end)["fee"] == 2000


def test_a_viewing_ends_once_and_never_before_it_began(desk: Viewings) -> None:
    rid = approved(desk)
    v = desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    before = Unchanged(desk)
    with pytest.raises(InvalidInputError, match="before it starts"):
        desk.finish(v.session_id, actor=CLERK, now=WORK - dt.timedelta(seconds=1))
    with pytest.raises(NotFoundError):
        desk.finish(v.session_id + 1, actor=CLERK, now=WORK)
    before.check(denied=0)
    desk.finish(v.session_id, actor=CLERK, now=WORK + dt.timedelta(minutes=5))
    before = Unchanged(desk)
    with pytest.raises(ConflictError, match="ended"):
        desk.finish(v.session_id, actor=CLERK, now=WORK + dt.timedelta(minutes=50))
    before.check(denied=0)
    assert desk.sessions(actor=CLERK, now=WORK).column("fee").to_pylist() == [1000]


def test_the_fee_is_set_by_an_admin_only_and_a_viewing_keeps_its_rate(
        desk: Viewings) -> None:
    reg = desk._reg
    assert reg.policy_settings()["fee.viewing"] == "1000"
    rid = approved(desk)
    first = desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    before = Unchanged(desk)
    with pytest.raises(PermissionDeniedError):
        reg.set_policy("fee.viewing", "1", actor=BOSS, now=WORK)
    for bad in ("-1", "1000.5", "１０００", "", "abc", "1000001", "9" * 12):
        with pytest.raises(InvalidInputError):
            reg.set_policy("fee.viewing", bad, actor=ADMIN)
    with pytest.raises(InvalidInputError, match=r"fee\.viewing"):
        reg.set_policy("fee.copy", "300", actor=ADMIN)
    before.check(denied=1)
    assert reg.set_policy("fee.viewing", " 0300 ", actor=ADMIN) == "300"
    [change] = [e for e in audit_rows(reg) if e["action"] == "policy.configure"]
    assert change["actor"] == str(ADMIN) and change["detail"] == "fee.viewing: default -> 300"
    second = desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    end = WORK + dt.timedelta(minutes=45)
    assert desk.finish(first.session_id, actor=CLERK, now=end)["fee"] == 2000  # its rate
    assert desk.finish(second.session_id, actor=CLERK, now=end)["fee"] == 600


# -- the audit ---------------------------------------------------------------------------


def test_every_step_is_audited(desk: Viewings) -> None:
    reg = desk._reg
    n = len(audit_rows(reg))
    rid = private_request(desk)
    desk.approve(rid, actor=BOSS, now=WORK)
    v = desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    desk.finish(v.session_id, actor=CLERK, now=WORK + dt.timedelta(minutes=40))
    new = audit_rows(reg)[n:]
    assert [(e["actor"], e["action"]) for e in new] == [
        (str(CLERK), "viewing.request"), (str(BOSS), "viewing.approve"),
        (str(CLERK), "viewing.record"), (str(CLERK), "viewing.read"),
        (str(CLERK), "viewing.finish")]
    assert {e["target"] for e in new} == {f"viewing:{rid}"}
    assert "survey" in new[0]["detail"] and "東都大学社会学研究室" in new[0]["detail"]
    assert "山田太郎 (driver_license)" in new[2]["detail"]
    assert new[3]["detail"].startswith("11 records: four items (name, address, birth date,"
                                       " sex) shown at viewing")
    assert new[3]["detail"].endswith("purpose: survey")
    assert "2 x 1000 yen = 2000 yen" in new[4]["detail"]
    # the audit says who viewed how many, never whom
    names = set(desk._reg.residents(actor=ADMIN).column("family_name").to_pylist())
    assert not any(nm in e["detail"] for e in new for nm in names)
    report = verify(reg._b, node_id=LG, keys=[])
    assert report.ok, report.problems  # the log's tree holds them all


def test_the_schema_is_a_migration() -> None:
    from jukicore.register._schema import MIGRATIONS
    from jukicore.store.schema import Ddl

    steps = [m for m in MIGRATIONS if "viewing" in m.description]
    assert len(steps) == 1  # one published step of the register's schema
    sql = " ".join(steps[0].statements(Ddl("sqlite")))
    assert "viewing_requests" in sql and "viewing_sessions" in sql


def test_requests_table_takes_any_arrow_reader(desk: Viewings) -> None:
    rid = approved(desk)
    v = desk.record(rid, viewers=ID, actor=CLERK, now=WORK)
    assert pa.table(v.table).equals(v.table)  # a plain pyarrow table, PyCapsule-readable
    assert hasattr(v.table, "__arrow_c_stream__")
    assert JUNE[0] <= v.started_at.date() <= JUNE[1]


def test_two_supervisors_deciding_at_once_decide_once(desk: Viewings) -> None:
    """Both approve the same request at the same moment: one wins, the other is told it
    was decided (a ConflictError), and one decision entry is written."""
    import threading

    rid = private_request(desk)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def decide(actor: Any) -> None:
        barrier.wait()
        try:
            results.append(desk.approve(rid, actor=actor, now=WORK)["decided_by"])
        except ConflictError as exc:
            results.append(exc)

    threads = [threading.Thread(target=decide, args=(a,)) for a in (BOSS, BOSS2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if isinstance(r, str)]
    assert len(wins) == 1 and len(results) == 2, results
    [row] = desk.requests(actor=CLERK, now=WORK).to_pylist()
    assert row["decided_by"] == wins[0]
    assert [e["action"] for e in audit_rows(desk._reg)].count("viewing.approve") == 1
