"""``jukicore viewing`` end to end on a SQLite register: operators logged in by password and
card, a clerk who records and a supervisor who approves, the list written, the fee, the
listing and the publication; exit codes 0/1/2."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regkit import ADMIN, LG, MUNI, PREF, make_block, tiny_municipality

from jukicore.access.policy import JST
from jukicore.cli import main
from jukicore.register import create_register, open_register

PASSWORDS = {"clerk1": "Clerk-passw0rd-long", "boss1": "Boss-passw0rd-longer"}


@pytest.fixture
def store(tmp_path: Path, cli_operator: Any) -> str:
    """A register of the tiny municipality whose first admin is the CLI's ``admin1``, with a
    clerk ``clerk1`` and a supervisor ``boss1``; clerks may work at any hour (the test
    runs on the clock)."""
    from jukicore.access.operators import create_operator, login

    path = str(tmp_path / "city.db")
    reg = create_register(path, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN)
    reg.import_code_block(make_block(30), actor=ADMIN)
    reg.load(*tiny_municipality(), actor=ADMIN)
    reg.close()
    cli_operator.make_admin(path)
    with open_register(path) as reg:
        admin = login(reg, cli_operator.operator, cli_operator.password, cli_operator.card,
                      cli_operator.pin)
        for oid, role in (("clerk1", "clerk"), ("boss1", "supervisor")):
            create_operator(reg, admin, oid, name=oid, roles=role, password=PASSWORDS[oid],
                            card_path=tmp_path / f"{oid}.card", card_pin=f"{oid}-pin")
        reg.set_policy("hours.clerk", "always", actor=admin.actor())
    return path


def _as(who: str, store: str, *args: str) -> tuple[int, str]:
    card = Path(store).parent / f"{who}.card"
    r = CliRunner().invoke(main, ["viewing", *args[:1], store, *args[1:]], env={
        "JUKICORE_OPERATOR": who, "JUKICORE_CARD": str(card),
        "JUKICORE_PASSWORD": PASSWORDS[who], "JUKICORE_CARD_PIN": f"{who}-pin"})
    return r.exit_code, r.output


def _today() -> dt.date:
    return dt.datetime.now(JST).date()


def test_request_approve_record_finish_list_publish(store: str, tmp_path: Path) -> None:
    today = _today()
    ask = ["request", "--kind", "private", "--requester", "東都大学", "--purpose", "survey",
           "--summary", "生活意識調査", "--handling", "施錠保管", "--viewer", "山田太郎",
           "--town", "丸の内", "--from", today.isoformat(), "--to",
           (today + dt.timedelta(days=30)).isoformat(), "--json"]
    code, out = _as("clerk1", store, *ask)
    assert code == 0, out
    rid = str(json.loads(out)["request_id"])
    # the clerk who recorded it neither approves it nor views before approval
    code, out = _as("clerk1", store, "approve", rid)
    assert code == 1 and "viewing.approve" in out, out
    lst = str(tmp_path / "list.csv")
    code, out = _as("clerk1", store, "record", rid, "--viewer", "山田太郎", "passport",
                    "--out", lst)
    assert code == 1 and "approved request" in out, out
    assert not os.path.exists(lst)
    code, out = _as("boss1", store, "approve", rid, "--note", "公益性あり", "--json")
    assert code == 0, out
    assert json.loads(out)["state"] == "approved" and json.loads(out)["decided_by"].startswith(
        "operator:boss1@")
    code, out = _as("clerk1", store, "record", rid, "--viewer", "山田太郎", "passport",
                    "--out", lst, "--json")
    assert code == 0, out
    began = json.loads(out)
    assert began["records"] == 7 and began["fee_rate"] == 1000
    with open(lst, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["name", "address", "birth_date", "sex"]  # the four items, nothing else
    assert len(rows) == 1 + 7 and all("丸の内" in r[1] for r in rows[1:])
    assert stat.S_IMODE(os.stat(lst).st_mode) == 0o600
    code, out = _as("clerk1", store, "finish", str(began["session_id"]), "--json")
    assert code == 0, out
    assert (json.loads(out)["periods"], json.loads(out)["fee"]) == (1, 1000)
    code, out = _as("clerk1", store, "finish", str(began["session_id"]))
    assert code == 1 and "ended" in out
    code, out = _as("clerk1", store, "list", "--json")
    assert code == 0 and [r["state"] for r in json.loads(out)] == ["approved"]
    code, out = _as("clerk1", store, "list", "--sessions", "--json")
    assert code == 0 and [r["records"] for r in json.loads(out)] == [7]
    code, out = _as("clerk1", store, "list")
    assert code == 0 and "東都大学" in out
    # the half-year, once it is over
    half = 1 if today.month <= 6 else 2
    after = dt.date(today.year, 7, 1) if half == 1 else dt.date(today.year + 1, 1, 1)
    pub_dir = tmp_path / "pub"
    pub = ["publish", str(pub_dir), "--year", str(today.year), "--half", str(half)]
    code, out = _as("boss1", store, *pub)
    assert code == 1 and "has not ended" in out, out
    code, out = _as("clerk1", store, *pub, "--today", after.isoformat())
    assert code == 1 and "viewing.publish" in out
    code, out = _as("boss1", store, *pub, "--today", after.isoformat(), "--json")
    assert code == 0, out
    info = json.loads(out)
    assert info["viewings"] == 1 and info["period"] == f"{today.year}H{half}"
    text = Path(info["csv"]).read_bytes().decode("utf-8")
    assert "東都大学" in text and ",7\r\n" in text
    assert Path(info["pdf"]).read_bytes().startswith(b"%PDF")


def test_refusals_and_usage(store: str, tmp_path: Path) -> None:
    today = _today().isoformat()
    base = ["request", "--kind", "private", "--requester", "名簿業者", "--summary", "名簿",
            "--handling", "x", "--viewer", "甲", "--from", today, "--to", today]
    code, out = _as("clerk1", store, *base, "--purpose", "direct_mail")
    assert code == 1 and "direct_mail" in out, out
    code, out = _as("clerk1", store, *base[:2], "--purpose", "survey")
    assert code == 2  # required options missing: a usage error
    code, out = _as("clerk1", store, "record", "1", "--viewer", "甲", "passport", "--out",
                    str(tmp_path / "list.txt"))
    assert code == 2 and ".csv" in out
    code, out = _as("boss1", store, "publish", str(tmp_path), "--year", "2024", "--half", "3")
    assert code == 2
    code, out = _as("boss1", store, "approve", "abc")
    assert code == 1 and "request id" in out
    code, out = _as("boss1", store, "approve", "7")
    assert code == 1 and "no viewing request 7" in out
    code, out = _as("clerk1", store, "list", "--json")
    assert code == 0 and json.loads(out) == []
