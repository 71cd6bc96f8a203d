"""Monitoring rules (jukicore.audit.alerts) as scenarios on a real register, both databases.

Entries are written through jukicore.audit (entry + write_many, the writer's path for
entries with an explicit time) in the register's own store; times are Japan time.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

sys.path.append(str(Path(__file__).resolve().parent.parent / "register"))

from regkit import ADMIN, LG, MUNI, PREF, load_on, make_block, tiny_municipality

from jukicore import audit
from jukicore.audit.alerts import JST, Thresholds, scan
from jukicore.cli import main
from jukicore.errors import InvalidInputError, JukiError
from jukicore.register import Actor, Register, create_register

CLERK = Actor.operator("clerk7", LG, "clerk")
OTHER = Actor.operator("clerk8", LG, "clerk")
CS = Actor.node(LG, LG, "cs")
Entry = tuple[dt.datetime, Actor | str, str, str | None]


@pytest.fixture
def reg(db_target: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Register]:
    """A register of 50 households (2, 3, 4 or 1 members each)."""
    r = create_register(db_target, lg_code=LG, prefecture=PREF, municipality=MUNI,
                        actor=ADMIN)
    r.import_code_block(make_block(300), actor=ADMIN)
    residents, households = municipality(50)
    load_on(r, dt.date(2025, 4, 1), monkeypatch, residents, households)
    yield r
    r.close()


def municipality(n: int) -> tuple[pa.Table, pa.Table]:
    """The register suite's tiny municipality (6 households), repeated to ``n`` households
    (ids and addresses made unique)."""
    res_parts, hh_parts = [], []
    people = 0
    for k in range(-(-n // 6)):
        res, hh = tiny_municipality(6)
        tag = f"{k + 1}号棟"
        res = res.set_column(res.schema.get_field_index("person_id"), "person_id",
                             pc.add(res.column("person_id"), people))
        res = res.set_column(res.schema.get_field_index("household_id"), "household_id",
                             pc.add(res.column("household_id"), 6 * k))
        for col in ("street", "address"):
            res = res.set_column(res.schema.get_field_index(col), col,
                                 pc.binary_join_element_wise(res.column(col), tag, ""))
        hh = hh.set_column(hh.schema.get_field_index("household_id"), "household_id",
                           pc.add(hh.column("household_id"), 6 * k))
        hh = hh.set_column(hh.schema.get_field_index("head_person_id"), "head_person_id",
                           pc.add(hh.column("head_person_id"), people))
        hh = hh.set_column(hh.schema.get_field_index("address"), "address",
                           pc.binary_join_element_wise(hh.column("address"), tag, ""))
        people += res.num_rows
        res_parts.append(res)
        hh_parts.append(hh)
    res, hh = pa.concat_tables(res_parts), pa.concat_tables(hh_parts)
    keep = pc.less_equal(hh.column("household_id"), n)
    return res.filter(pc.less_equal(res.column("household_id"), n)), hh.filter(keep)


def sec(n: int) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def jst(y: int, m: int, d: int, h: int = 10, mi: int = 0, s: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, s, tzinfo=JST)


def put(reg: Register, entries: list[Entry]) -> list[int]:
    """Write the entries; their ids, in order."""
    with reg._b.session() as s:
        first = int(s.scalar("SELECT coalesce(max(id), 0) FROM audit")) + 1
        audit.write_many(s, [audit.entry(s, who, action, target, at=s.ts(at))
                             for at, who, action, target in entries])
        last = int(s.scalar("SELECT max(id) FROM audit"))
    assert last - first + 1 == len(entries)
    return list(range(first, last + 1))


def codes_by_household(reg: Register) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in reg.residents(actor=ADMIN).to_pylist():
        out.setdefault(r["household_id"], []).append(f"{r['resident_code']:011d}")
    return out


def rules(report: Any) -> list[str]:
    return sorted({a.rule for a in report.alerts})


def weekdays(start: dt.date, n: int) -> list[dt.date]:
    import holidays

    jp = holidays.country_holidays("JP", years=range(start.year, start.year + 2))
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5 and d not in jp:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def test_a_normal_day_raises_nothing(reg: Register) -> None:
    hh = codes_by_household(reg)
    day = dt.date(2026, 3, 3)  # a Tuesday
    entries: list[Entry] = [(jst(2026, 3, 3, 2, 0), CS, "sync.export", LG)]  # the nightly run
    entries.append((jst(2026, 3, 3, 8, 31), CLERK, "operator.login", "clerk7"))
    for k, h in enumerate(range(1, 8)):
        code = hh[h][0]
        t = jst(day.year, day.month, day.day, 9 + k, 5)
        entries += [(t, CLERK, "counter.request", code),
                    (t + dt.timedelta(minutes=2), CLERK, "register.read", code),
                    (t + dt.timedelta(minutes=4), CLERK, "certificate.issue", code)]
    entries.append((jst(2026, 3, 3, 11, 0), CLERK, "operator.login_failed", "clerk7"))
    entries.append((jst(2026, 3, 3, 17, 29), CLERK, "register.read", None))
    put(reg, entries)
    report = scan(reg.target, since=day, until=day + dt.timedelta(days=1))
    assert report.alerts == ()
    assert report.entries == len(entries)
    assert report.skipped == ()


def test_the_holiday_terminal_forgery(reg: Register) -> None:
    """A clerk forges certificates on Sundays and holidays for months, with no counter
    request; on weekdays they work normally. Every forged day is caught twice (off
    hours, certificate without request); the weekdays raise nothing."""
    hh = codes_by_household(reg)
    forged: dict[dt.date, list[int]] = {}
    entries: list[tuple[dt.date, list[Entry]]] = []
    d = dt.date(2026, 1, 4)  # a Sunday
    n = 0
    while d < dt.date(2026, 11, 1):
        code = hh[1 + n % 50][0]
        t = jst(d.year, d.month, d.day, 13, 10)
        entries.append((d, [(t, CLERK, "register.read", code),
                            (t + dt.timedelta(minutes=3), CLERK, "certificate.issue", code)]))
        d += dt.timedelta(days=7)
        n += 1
    # two public holidays on weekdays: 成人の日 2026-01-12 (Mon), 憲法記念日 is a Sunday in
    # 2026, 海の日 2026-07-20 (Mon)
    for h in (dt.date(2026, 1, 12), dt.date(2026, 7, 20)):
        t = jst(h.year, h.month, h.day, 10, 0)
        entries.append((h, [(t, CLERK, "certificate.issue", hh[7][0])]))
    for day, es in entries:
        forged[day] = put(reg, es)
    normal = []
    for k, wd in enumerate(weekdays(dt.date(2026, 1, 5), 20)):
        code = hh[10 + k][0]
        t = jst(wd.year, wd.month, wd.day, 10, 0)
        normal += put(reg, [(t, CLERK, "counter.request", code),
                            (t + dt.timedelta(minutes=5), CLERK, "certificate.issue", code)])
    report = scan(reg.target, since=dt.date(2026, 1, 1), until=dt.date(2026, 12, 1))
    off = {a.at.astimezone(JST).date(): a for a in report.by_rule("off_hours")}
    cert = {a.at.astimezone(JST).date(): a for a in report.by_rule("certificate_without_request")}
    assert set(off) == set(forged) == set(cert)
    assert len(forged) >= 43  # ten months of Sundays and two holidays
    for day, ids in forged.items():
        assert off[day].entries == tuple(ids)
        assert off[day].operator == "clerk7"
        issued = [i for i, (_, _, action, _) in zip(ids, dict(entries)[day], strict=True)
                  if action == "certificate.issue"]
        assert cert[day].entries == tuple(issued)
    assert "public holiday (Coming of Age Day" in off[dt.date(2026, 1, 12)].reason \
        or "成人の日" in off[dt.date(2026, 1, 12)].reason
    assert "Sunday" in off[dt.date(2026, 1, 4)].reason
    assert rules(report) == ["certificate_without_request", "off_hours"]
    assert not {i for a in report.alerts for i in a.entries} & set(normal)


def test_a_request_after_the_certificate_or_by_someone_else_does_not_count(
        reg: Register) -> None:
    hh = codes_by_household(reg)
    a, b, c = hh[2][0], hh[3][0], hh[4][0]
    ids = put(reg, [
        (jst(2026, 3, 4, 9), OTHER, "counter.request", a),      # another operator's request
        (jst(2026, 3, 4, 9, 5), CLERK, "certificate.issue", a),
        (jst(2026, 3, 4, 10), CLERK, "certificate.issue", b),   # request only after it
        (jst(2026, 3, 4, 10, 5), CLERK, "counter.request", b),
        (jst(2026, 3, 3, 16), CLERK, "counter.request", c),     # the day before
        (jst(2026, 3, 4, 11), CLERK, "certificate.issue", c),
        (jst(2026, 3, 4, 12), CLERK, "counter.request", c),     # a fresh request: fine
        (jst(2026, 3, 4, 12, 5), CLERK, "certificate.issue", c),
    ])
    report = scan(reg.target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5))
    assert [(x.rule, x.entries) for x in report.alerts] == [
        ("certificate_without_request", (ids[1], ids[2], ids[5]))]


def test_a_mass_read_far_above_the_operators_norm(reg: Register) -> None:
    hh = codes_by_household(reg)
    few = [c for h in (1, 2, 3) for c in hh[h]]  # 9 records of 3 households
    days = weekdays(dt.date(2026, 2, 2), 31)
    for i, d in enumerate(days[:30]):
        put(reg, [(jst(d.year, d.month, d.day, 10) + sec(k), CLERK, "register.read",
                   few[k % len(few)]) for k in range(8 + i % 5)])
        # a heavy reader whose norm is 70 a day
        put(reg, [(jst(d.year, d.month, d.day, 11) + sec(k), OTHER, "register.read",
                   few[k % len(few)]) for k in range(70)])
    d = days[30]
    burst = put(reg, [(jst(d.year, d.month, d.day, 14) + dt.timedelta(seconds=k), CLERK,
                       "register.read", few[k % len(few)]) for k in range(120)])
    put(reg, [(jst(d.year, d.month, d.day, 11) + sec(k), OTHER, "register.read",
               few[k % len(few)]) for k in range(300)])  # 300 = 5 x 60 reads... not above
    report = scan(reg.target, since=d, until=d + dt.timedelta(days=1))
    mass = report.by_rule("mass_read")
    assert [(a.operator, a.entries) for a in mass] == [("clerk7", tuple(burst))]
    assert "120 reads" in mass[0].reason and "median 10" in mass[0].reason
    assert rules(report) == ["mass_read"]
    # the whole period: the burst is clerk7's only day above their norm (the heavy
    # reader's first day, with no norm yet, is above the floor of 50)
    whole = scan(reg.target, since=days[0], until=d + dt.timedelta(days=1))
    assert [(a.operator, a.at.astimezone(JST).date()) for a in whole.by_rule("mass_read")
            ] == [("clerk8", days[0]), ("clerk7", d)]


def test_reads_below_the_floor_are_no_mass_read(reg: Register) -> None:
    hh = codes_by_household(reg)
    d = dt.date(2026, 3, 4)
    put(reg, [(jst(2026, 3, 4, 10) + dt.timedelta(seconds=k), CLERK, "register.read", hh[1][0])
              for k in range(50)])  # 50: not above max(50, 5 x 0)
    assert scan(reg.target, since=d, until=d + dt.timedelta(days=1)).alerts == ()
    extra = put(reg, [(jst(2026, 3, 4, 10, 1), CLERK, "register.read", hh[1][0])])
    report = scan(reg.target, since=d, until=d + dt.timedelta(days=1))
    assert len(report.by_rule("mass_read")) == 1
    assert extra[0] in report.by_rule("mass_read")[0].entries


def test_reads_spread_over_forty_households(reg: Register) -> None:
    hh = codes_by_household(reg)
    ids = put(reg, [(jst(2026, 3, 4, 10, k), CLERK, "register.read", hh[h][0])
                    for k, h in enumerate(range(1, 41))])
    # another clerk reads every member of 12 households: 12 households, not 30
    members = [c for h in range(1, 13) for c in hh[h]]
    put(reg, [(jst(2026, 3, 4, 10, k), OTHER, "register.read", c)
              for k, c in enumerate(members)])
    assert len(members) >= 30
    report = scan(reg.target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5))
    spread = report.by_rule("read_spread")
    assert [(a.operator, a.entries) for a in spread] == [("clerk7", tuple(ids))]
    assert "40 different households" in spread[0].reason
    assert rules(report) == ["read_spread"]


def test_reads_spread_over_hours_are_no_alert(reg: Register) -> None:
    hh = codes_by_household(reg)
    # 40 households over a working day: 1 every 12 minutes, at most 6 in an hour
    put(reg, [(jst(2026, 3, 4, 9) + dt.timedelta(minutes=12 * k), CLERK, "register.read",
               hh[h][0]) for k, h in enumerate(range(1, 41))])
    report = scan(reg.target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5))
    assert report.by_rule("read_spread") == []
    tighter = scan(reg.target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5),
                   thresholds=Thresholds(spread_households=5, spread_window=dt.timedelta(
                       hours=1)))
    assert len(tighter.by_rule("read_spread")) == 1  # overlapping windows: one alert


def _operator_table(reg: Register, with_code: bool = True) -> None:
    """The operator table of a store from before operators (schema version 7) existed."""
    col = ", resident_code BIGINT" if with_code else ""
    with reg._b.session() as s:
        s.execute("DROP TABLE IF EXISTS operator")
        s.execute(f"CREATE TABLE operator (id TEXT PRIMARY KEY, name TEXT{col})")


def test_an_operator_reading_their_own_household(reg: Register, tmp_path: Path) -> None:
    from jukicore.access.operators import bootstrap_admin, create_operator, login

    hh = codes_by_household(reg)
    mine = hh[3]  # the clerk lives in household 3 (4 members)
    pw, pin = "Admin-passw0rd-long", "card-pin"
    bootstrap_admin(reg, "admin1", name="Admin", password=pw, card_path=tmp_path / "a.card",
                    card_pin=pin)
    admin = login(reg, "admin1", pw, tmp_path / "a.card", pin)
    for oid, code in (("clerk7", int(mine[1])), ("clerk8", None)):
        create_operator(reg, admin, oid, name=oid, roles="clerk", password=f"{pw}-{oid[-1]}",
                        card_path=tmp_path / f"{oid}.card", card_pin=pin, resident_code=code)
    ids = put(reg, [
        (jst(2026, 3, 4, 10), CLERK, "register.read", mine[0]),      # their household head
        (jst(2026, 3, 4, 10, 1), CLERK, "register.read", hh[4][0]),  # another household
        (jst(2026, 3, 4, 10, 2), CLERK, "register.notify", mine[2]),
        (jst(2026, 3, 4, 10, 3), OTHER, "register.read", mine[0]),   # someone else: fine
    ])
    report = scan(reg.target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5))
    assert [(a.rule, a.operator, a.entries) for a in report.alerts] == [
        ("own_household", "clerk7", (ids[0], ids[2]))]
    assert report.skipped == ()


def test_the_own_household_rule_says_why_it_is_skipped(reg: Register) -> None:
    """A store read as it is, without migrating it: before operators existed."""
    hh = codes_by_household(reg)
    put(reg, [(jst(2026, 3, 4, 10), CLERK, "register.read", hh[3][0])])
    with reg._b.session() as s:
        s.execute("DROP TABLE operator")
    no_table = scan(reg.target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5))
    assert no_table.skipped == (("own_household", "the store has no operator table"),)
    _operator_table(reg, with_code=False)
    no_col = scan(reg.target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5))
    assert no_col.skipped == (("own_household",
                               "the operator table has no resident_code column"),)
    assert no_col.alerts == ()


def test_a_password_guessing_burst(reg: Register) -> None:
    guesses = put(reg, [(jst(2026, 3, 4, 10) + sec(40 * k), LG, "operator.login_failed",
                         "clerk7") for k in range(6)])  # 6 within 4 minutes
    put(reg, [(jst(2026, 3, 4, 11) + sec(50 * k), LG, "operator.login_failed", "clerk8")
              for k in range(4)])  # 4 only
    put(reg, [(jst(2026, 3, 4, 13, 7 * k), LG, "operator.login_failed", "admin")
              for k in range(6)])  # 6 over 35 minutes: never 5 within 10
    report = scan(reg.target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5))
    fails = report.by_rule("failed_logins")
    assert [(a.operator, a.entries) for a in fails] == [("clerk7", tuple(guesses))]
    assert "6 failed logins" in fails[0].reason
    assert rules(report) == ["failed_logins"]


def test_since_and_until_bound_the_alerts(reg: Register) -> None:
    hh = codes_by_household(reg)
    sunday = put(reg, [(jst(2026, 3, 1, 10), CLERK, "register.read", hh[1][0])])
    monday = put(reg, [(jst(2026, 3, 2, 23, 30), CLERK, "register.read", hh[1][0])])
    only_monday = scan(reg.target, since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 3))
    assert [a.entries for a in only_monday.alerts] == [tuple(monday)]
    both = scan(reg.target, since=dt.date(2026, 3, 1), until=dt.date(2026, 3, 3))
    assert [a.entries for a in both.alerts] == [tuple(sunday), tuple(monday)]
    assert "outside working hours" in both.alerts[1].reason
    with pytest.raises(InvalidInputError):
        scan(reg.target, since=dt.date(2026, 3, 3), until=dt.date(2026, 3, 2))


def test_scanning_changes_nothing_and_bad_thresholds_are_refused(reg: Register) -> None:
    hh = codes_by_household(reg)
    put(reg, [(jst(2026, 3, 1, 10), CLERK, "register.read", hh[1][0])])
    before = reg.content_digest()
    assert len(scan(reg.target, since=dt.date(2026, 3, 1), until=dt.date(2026, 3, 2),
                    ).alerts) == 1
    assert reg.content_digest() == before
    for bad in ({"failed_logins": 0}, {"spread_window": dt.timedelta(0)},
                {"work_start": dt.time(18)}, {"work_days": frozenset({7})},
                {"mass_read_factor": float("nan")}):
        with pytest.raises(InvalidInputError):
            Thresholds(**bad)


def _first_admin(reg: Register, who: Any) -> None:
    """The store's first admin: the operator the CLI logs in as (a supervisor's or an
    admin's login reads the audit log)."""
    from jukicore.access.operators import bootstrap_admin

    bootstrap_admin(reg, who.operator, name="Test Admin", password=who.password,
                    card_path=who.card, card_pin=who.pin)


def test_the_cli_lists_alerts_of_a_store(reg: Register, tmp_path: Path,
                                         cli_operator: Any) -> None:
    r0 = CliRunner().invoke(main, ["audit", "alerts", reg.target])
    assert r0.exit_code == 1 and "login refused" in r0.output  # no login, no read
    _first_admin(reg, cli_operator)
    hh = codes_by_household(reg)
    ids = put(reg, [(jst(2026, 3, 1, 10), CLERK, "certificate.issue", hh[1][0])])
    run = CliRunner().invoke
    r = run(main, ["audit", "alerts", reg.target, "--since", "2026-03-01", "--until",
                   "2026-03-02", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [(a["rule"], a["operator"], a["entries"]) for a in doc["alerts"]] == [
        ("off_hours", "clerk7", ids), ("certificate_without_request", "clerk7", ids)]
    r = run(main, ["audit", "alerts", reg.target, "--since", "2026-03-01",
                   "--until", "2026-03-02", "--threshold", "work_days=0,1,2,3,4,5,6"])
    assert r.exit_code == 0, r.output
    assert "certificate_without_request" in r.output and "off_hours" not in r.output
    assert "1 alert(s) in 1 entries" in r.output
    for bad in (["--since", "yesterday"], ["--threshold", "nope=1"],
                ["--threshold", "failed_logins=x"]):
        r = run(main, ["audit", "alerts", reg.target, *bad])
        assert r.exit_code == 1 and r.output.startswith("error: "), r.output
    r = run(main, ["audit", "alerts", str(tmp_path / "missing.db")])
    assert r.exit_code == 1 and "error:" in r.output
    assert not (tmp_path / "missing.db").exists()


def test_the_cli_takes_a_node(tmp_path: Path, cli_operator: Any) -> None:
    from jukicore.network.node import create_node
    from jukicore.register import open_register

    node = create_node(tmp_path / "n", LG, password="a long node password",
                       prefecture=PREF, municipality=MUNI)
    with open_register(node.store_target()) as r:
        _first_admin(r, cli_operator)
        ids = put(r, [(jst(2026, 3, 1, 10), CLERK, "register.read", None)])
    out = CliRunner().invoke(main, ["audit", "alerts", str(tmp_path / "n"), "--since",
                                    "2026-03-01", "--until", "2026-03-02", "--json"])
    assert out.exit_code == 0, out.output
    assert [a["entries"] for a in json.loads(out.output)["alerts"]] == [ids]


def test_an_identity_store_skips_households(db_target: str) -> None:
    from jukicore.identity import create_identity_store

    with create_identity_store(db_target, node_id="center", kind="center") as st:
        be = st._b
        with be.session() as s:
            audit.write_many(s, [audit.entry(s, CLERK, "identity.read", f"{10_000_000_000 + k}",
                                             at=s.ts(jst(2026, 3, 4, 10, k)))
                                 for k in range(35)])
    report = scan(db_target, since=dt.date(2026, 3, 4), until=dt.date(2026, 3, 5))
    assert rules(report) == ["read_spread"]  # each record its own household
    assert report.skipped == (("own_household",
                               "the store holds no households (not a register)"),)


def test_an_empty_period_raises_nothing(reg: Register) -> None:
    report = scan(reg.target, since=dt.date(2030, 1, 1), until=dt.date(2030, 2, 1))
    assert report.alerts == () and report.entries == 0
    assert scan(reg.target, until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).entries == 0


def test_a_store_without_an_audit_log_is_an_error(tmp_path: Path) -> None:
    import sqlite3

    p = tmp_path / "x.db"
    sqlite3.connect(p).close()
    with pytest.raises(JukiError):
        scan(str(p))
