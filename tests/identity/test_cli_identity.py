"""``jukicore identity query / verify / disclose / purposes`` on a center node (both
databases): the operator logs in, the request is refused or answered with its records."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from jukicore.cli import main
from jukicore.codes import CodeRegistry
from jukicore.identity import IDENTITY_SCHEMA, open_identity_store
from jukicore.network.node import PASSWORD_ENV, Node, create_node
from jukicore.store import connect

PASSWORD = "correct horse battery staple"
DESK_PASSWORD = "Agency-counter-passw0rd"
DESK_PIN = "desk-card-pin"
_codes = [int(c) for c in CodeRegistry().generate(4)]


@pytest.fixture
def center(tmp_path: Path, db_target: str, monkeypatch: pytest.MonkeyPatch,
           cli_operator: Any) -> Path:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    store = db_target if "://" in db_target else None
    create_node(tmp_path / "center", "center", store=store, password=PASSWORD)
    target = Node.open(tmp_path / "center").store_target()
    cli_operator.make_admin(target)
    rows = [{"seq": i + 1, "resident_code": c, "previous_resident_code": None,
             "family_name": "髙橋", "given_name": f"花子{i}", "birth_date": dt.date(1980, 1, 2),
             "sex": 2, "address": "東京都千代田区丸の内1丁目1番1号", "status": "resident",
             "change_date": dt.date(2024, 4, 1), "change_reason": "load"}
            for i, c in enumerate(_codes)]
    with open_identity_store(target) as st:
        st.apply_changes(sender="131016", packet_id="p1", first_seq=1, last_seq=len(rows),
                         changes=pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA),
                         actor="center")
    card = tmp_path / "desk.card"
    r = _run("operator", "create", target, "desk", "--name", "Agency desk", "--roles",
             "provider", "--card-out", str(card),
             env={"JUKICORE_NEW_PASSWORD": DESK_PASSWORD, "JUKICORE_NEW_CARD_PIN": DESK_PIN})
    assert r.exit_code == 0, r.output
    return tmp_path / "center"


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def _desk(node: Path) -> dict[str, str]:
    return {"JUKICORE_OPERATOR": "desk", "JUKICORE_PASSWORD": DESK_PASSWORD,
            "JUKICORE_CARD": str(node.parent / "desk.card"), "JUKICORE_CARD_PIN": DESK_PIN}


def _raw(node: Path, sql: str) -> list[tuple[Any, ...]]:
    be = connect(Node.open(node).store_target())
    try:
        with be.session(write=False) as s:
            return s.query(sql)
    finally:
        be.close()


def test_query_by_code_answers_with_a_provision_record(center: Path) -> None:
    code = f"{_codes[0]:011d}"
    r = _run("identity", "query", str(center), "--agency", "jps", "--purpose",
             "jps-pension-benefits", "--code", code, "--json", env=_desk(center))
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert rows[0]["answer"] == "found" and rows[0]["resident_code"] == code
    assert rows[0]["birth_date"] == "1980-01-02"
    assert _raw(center, "SELECT agency, purpose_id, answer, actor FROM provision_detail") == [
        ("jps", "jps-pension-benefits", "found", "operator:desk@center")]
    r = _run("identity", "query", str(center), "--agency", "jps", "--purpose",
             "jps-pension-benefits", "--code", code, "--since", "2024-01-01", "--json",
             env=_desk(center))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["change_reason"] == "load"


def test_refusals_exit_1_and_record_nothing(center: Path) -> None:
    code = f"{_codes[0]:011d}"
    # the admin may not answer agencies; the desk may not for a purpose of another agency
    r = _run("identity", "query", str(center), "--agency", "jps", "--purpose",
             "jps-pension-benefits", "--code", code)
    assert r.exit_code == 1 and "identity.provide" in r.output
    r = _run("identity", "query", str(center), "--agency", "mofa", "--purpose",
             "jps-pension-benefits", "--code", code, env=_desk(center))
    assert r.exit_code == 1 and "is jps's, not mofa's" in r.output
    r = _run("identity", "query", str(center), "--agency", "acme", "--purpose",
             "jps-pension-benefits", "--code", code, env=_desk(center))
    assert r.exit_code == 1 and "never to a private party" in r.output
    assert _raw(center, "SELECT count(*) FROM provision") == [(0,)]
    assert _raw(center, "SELECT count(*) FROM audit WHERE action = 'access.denied'") == [(3,)]
    # usage errors: before any login, nothing written
    before = _raw(center, "SELECT count(*) FROM audit")
    for args in (["--code", "123"], ["--family", "髙橋"], ["--code", code, "--family", "x"],
                 ["--code", code, "--as-of", "2024-13-01"]):
        r = _run("identity", "query", str(center), "--agency", "jps", "--purpose",
                 "jps-pension-benefits", *args, env=_desk(center))
        assert r.exit_code == 2, (args, r.output)
    assert _raw(center, "SELECT count(*) FROM audit") == before


def test_disclose_and_purposes(center: Path, tmp_path: Path) -> None:
    code = f"{_codes[1]:011d}"
    r = _run("identity", "disclose", str(center), code, "--json")
    assert r.exit_code == 0 and json.loads(r.output) == []
    assert _run("identity", "query", str(center), "--agency", "jps", "--purpose",
                "jps-pension-benefits", "--code", code, env=_desk(center)).exit_code == 0
    r = _run("identity", "disclose", str(center), code, "--json")
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert [(d["agency"], d["purpose"], d["resident_code"]) for d in shown] == [
        ("jps", "jps-pension-benefits", code)]
    r = _run("identity", "purposes", "list", str(center), "--json")
    found = {p["purpose"]: p for p in json.loads(r.output)}
    assert "mofa-passport" in found
    p = found["mofa-passport"]
    p["items"] = ["name", "birth_date"]
    f = tmp_path / "p.json"
    f.write_text(json.dumps(p, ensure_ascii=False))
    r = _run("identity", "purposes", "set", str(center), str(f), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["version"] == 2, r.output
    r = _run("identity", "purposes", "set", str(center), str(f), env=_desk(center))
    assert r.exit_code == 1 and "identity.purposes" in r.output
    f.write_text(json.dumps({**p, "items": ["domicile"]}))
    r = _run("identity", "purposes", "set", str(center), str(f))
    assert r.exit_code == 1 and "items" in r.output
    r = _run("identity", "purposes", "close", str(center), "mofa-passport")
    assert r.exit_code == 0
    assert _raw(center, "SELECT count(*) FROM legal_purpose WHERE purpose_id = 'mofa-passport'"
                " AND valid_to IS NULL") == [(0,)]


def test_query_by_the_four_items_and_verify_a_file(center: Path, tmp_path: Path) -> None:
    r = _run("identity", "query", str(center), "--agency", "jps", "--purpose",
             "jps-pension-benefits", "--family", "高橋", "--given", "花子1", "--birth",
             "1980-01-02", "--address", "東京都千代田区丸の内一丁目1-1", "--json",
             env=_desk(center))
    assert r.exit_code == 0, r.output
    assert [x["resident_code"] for x in json.loads(r.output)] == [f"{_codes[1]:011d}"]
    assert (center / "identity.index").exists()  # built on first use, in the node
    unknown = int(CodeRegistry().generate(1)[0])
    src = tmp_path / "in.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"resident_code": [f"{_codes[0]:011d}", f"{unknown:011d}"]}), src)
    out = tmp_path / "out.arrow"
    r = _run("identity", "verify", str(center), "--agency", "jps", "--purpose",
             "jps-pension-benefits", str(src), "--out", str(out), "--since", "2024-01-01",
             "--json", env=_desk(center))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["answers"] == {"changed": 1, "not_found": 1}
    from pyarrow import ipc

    with ipc.open_file(out) as f:
        got = f.read_all()
    assert got.column("answer").to_pylist() == ["changed", "not_found"]
    assert _raw(center, "SELECT count(*) FROM provision") == [(3,)]
    # a bad file, a bad row: exit 1, nothing answered, no provision record
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"resident_code": ["123"]}), bad)
    for source in (bad, tmp_path / "in.parquet.missing"):
        r = _run("identity", "verify", str(center), "--agency", "jps", "--purpose",
                 "jps-pension-benefits", str(source), "--out", str(tmp_path / "x.arrow"),
                 env=_desk(center))
        assert r.exit_code in (1, 2), r.output
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not arrow at all")
    r = _run("identity", "verify", str(center), "--agency", "jps", "--purpose",
             "jps-pension-benefits", str(junk), "--out", str(tmp_path / "x.arrow"),
             env=_desk(center))
    assert r.exit_code == 1 and "not a Parquet or Arrow IPC file" in r.output
    assert not (tmp_path / "x.arrow").exists()
    assert _raw(center, "SELECT count(*) FROM provision") == [(3,)]


def test_the_nightly_index_job(center: Path) -> None:
    r = _run("identity", "index", str(center), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["mark"] == 1 and (center / "identity.index").exists()
    r = _run("identity", "index", str(center), env=_desk(center))  # a provider may not
    assert r.exit_code == 1 and "node.operate" in r.output
