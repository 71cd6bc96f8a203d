"""``jukicore certificate issue --home``: a wide-area certificate (広域交付) over the network,
X's command asking Y's real server (mutual TLS 1.3 on loopback); nodes on SQLite."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regkit import LG, make_block, tiny_municipality

from jukicore.certificates.schema import ISSUANCE_TABLE, WIDE_PROVISION_TABLE
from jukicore.cli import main
from jukicore.network.client import set_peer_address
from jukicore.network.crypto import TrustStore
from jukicore.network.node import Node, trust_each_other
from jukicore.network.server import NodeServer, serve_in_thread
from jukicore.register import Actor, open_register

pytestmark = pytest.mark.usefixtures("cli_operator")
PASSWORD = "wide-area-node-password"
LG_X = "131041"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """X (新宿区, no residents needed) and Y (千代田区, the tiny municipality), trusting
    each other; Y serving on a free loopback port, in X's address book."""
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    y, x = tmp_path / "chiyoda", tmp_path / "shinjuku"
    assert run("node", "init", str(y), "--id", LG, "--prefecture", "東京都",
               "--municipality", "千代田区")[0] == 0
    assert run("node", "init", str(x), "--id", LG_X, "--prefecture", "東京都",
               "--municipality", "新宿区")[0] == 0
    admin = Actor.operator("admin1", LG, "admin")
    with open_register(y / "store.sqlite") as reg:
        reg.import_code_block(make_block(50), actor=admin)
        reg.load(*tiny_municipality(), actor=admin)
    node_x, node_y = Node.open(x), Node.open(y)
    # A certificate's issue time is whole seconds and the command takes the clock's: one
    # issued within the second X's keys became valid (valid_from keeps microseconds)
    # would read as issued before them and fail verification. Start past that second.
    start = node_x.valid_from().replace(microsecond=0) + dt.timedelta(seconds=1)
    time.sleep(max(0.0, (start - dt.datetime.now(dt.UTC)).total_seconds()))
    trust_each_other((node_x, node_y), PASSWORD)
    server = NodeServer(node_y, PASSWORD, port=0)
    serve_in_thread(server)
    try:
        set_peer_address(node_x, LG, f"https://{server.host}:{server.port}")
        yield x, y
    finally:
        server.stop()


def _codes(node: Path) -> list[str]:
    with open_register(node / "store.sqlite") as reg:
        t = reg.residents(actor=Actor.operator("admin1", LG, "admin"))
    return [str(c).zfill(11) for c in t.column("resident_code").to_pylist()]


def _count(node: Path, table: str) -> int:
    with open_register(node / "store.sqlite") as reg, reg._b.session(write=False) as s:
        return int(s.scalar(f"SELECT count(*) FROM {table}"))


def _issue(x: Path, code: str, out: Path, *extra: str) -> tuple[int, str, str]:
    return run("certificate", "issue", str(x), code, "--home", LG, "--out", str(out), *extra)


def test_wide_area_certificate_over_the_network(nodes: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    x, y = nodes
    codes = _codes(y)  # household 1: codes[0] (鈴木 太郎, head), codes[1] (鈴木 花子)
    out = tmp_path / "wide.pdf"
    code, stdout, stderr = _issue(x, codes[1], out, "--household", "--items",
                                  "relationship", "--photo-id", "driver_license:AB123",
                                  "--requester-name", "鈴木 花子", "--requester-code",
                                  codes[1], "--json")
    assert code == 0, stderr
    row: dict[str, Any] = json.loads(stdout)
    assert row["fee"] == 300 and sorted(row["member_codes"]) == sorted(codes[:2])
    assert row["node_id"] == LG_X and row["right_kind"] == "household"
    assert row["home"] == LG and row["request_id"].startswith(f"{LG_X}-")
    assert _count(x, ISSUANCE_TABLE.name) == 1 and _count(y, WIDE_PROVISION_TABLE.name) == 1
    # X signed it: X's public key verifies it offline
    assert run("node", "public-key", str(x), "--out", str(tmp_path / "x.json"))[0] == 0
    trust = TrustStore()
    trust.add_record(json.loads((tmp_path / "x.json").read_text()))
    trust.save(tmp_path / "trust.json")
    code, stdout, stderr = run("certificate", "verify", str(out), "--trust",
                               str(tmp_path / "trust.json"), "--json")
    assert code == 0, stdout + stderr
    doc = json.loads(stdout)
    assert doc["ok"] and doc["number"] == row["issuance_id"]
    assert doc["title"] == "世帯全員の住民票の写し（広域交付）" and doc["wide_area"]
    assert [m["氏名"] for m in doc["members"]] == ["鈴木　太郎", "鈴木　花子"]
    assert all(m["本籍"] == "省略" and m["筆頭者"] == "省略" for m in doc["members"])
    assert "番地" not in json.dumps(doc, ensure_ascii=False)  # the domicile's text


def test_refused_at_y_over_the_network_changes_nothing_at_x(nodes: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    x, y = nodes
    codes = _codes(y)
    out = tmp_path / "no.pdf"
    # 伊藤 (household 4) asks for 鈴木's household: refused by Y, exit 1, nothing issued
    ito = codes[9]
    code, _, stderr = _issue(x, codes[0], out, "--household", "--photo-id",
                             "passport:TK1234567", "--requester-name", "伊藤 太郎",
                             "--requester-code", ito)
    assert code == 1 and "neither the person" in stderr, stderr
    assert "--request-id" in stderr  # how to resume, had Y answered
    assert not out.exists()
    assert _count(x, ISSUANCE_TABLE.name) == 0 and _count(y, WIDE_PROVISION_TABLE.name) == 0
    # refused at X before anyone is asked: a proxy, the domicile, a removed record
    for extra in (("--proxy-for", codes[0], "--letter", "委任状1"), ("--items", "domicile")):
        code, _, stderr = _issue(x, codes[0], out, "--photo-id", "passport:TK1234567",
                                 "--requester-name", "伊藤 太郎", "--requester-code", ito,
                                 *extra)
        assert code == 1, stderr
    code, _, stderr = _issue(x, codes[0], out, "--removed", "--photo-id", "passport:TK1",
                             "--requester-name", "鈴木 太郎", "--requester-code", codes[0])
    assert code == 1 and "除票" in stderr
    code, _, stderr = run("certificate", "issue", str(x), codes[0], "--out", str(out),
                          "--request-id", "131041-20240603-aaaa", "--photo-id",
                          "passport:TK1", "--requester-name", "鈴木 太郎")
    assert code == 1 and "--home" in stderr
    assert _count(x, ISSUANCE_TABLE.name) == 0 and _count(y, WIDE_PROVISION_TABLE.name) == 0


def test_a_request_cut_off_is_resumed_with_its_id(nodes: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    from jukicore.certificates import PhotoId, Requester
    from jukicore.certificates.wide_area import PATH, request_body
    from jukicore.network.client import NodeClient

    x, y = nodes
    codes = _codes(y)
    rid = f"{LG_X}-20240603-cutoff01"
    # X's command sent its request and died before its answer came back (another
    # operator resumes it)
    body = request_body(rid, codes[0], household=False, items=[], operator="operator:gone",
                        requester=Requester(PhotoId("passport", "TK1"), name="鈴木 太郎",
                                            resident_code=codes[0]).checked())
    with NodeClient(Node.open(x), PASSWORD) as client:
        client.call_json(LG, PATH, body)
    assert _count(y, WIDE_PROVISION_TABLE.name) == 1 and _count(x, ISSUANCE_TABLE.name) == 0
    out = tmp_path / "resumed.pdf"
    args = ("--photo-id", "passport:TK1", "--requester-name", "鈴木 太郎",
            "--requester-code", codes[0], "--request-id", rid, "--json")
    code, stdout, stderr = _issue(x, codes[0], out, *args)
    assert code == 0, stderr
    assert json.loads(stdout)["request_id"] == rid and out.exists()
    assert _count(y, WIDE_PROVISION_TABLE.name) == 1 and _count(x, ISSUANCE_TABLE.name) == 1
    # the id is spent at X now
    code, _, stderr = _issue(x, codes[0], tmp_path / "again.pdf", *args)
    assert code == 1 and "issued already" in stderr
    assert _count(y, WIDE_PROVISION_TABLE.name) == 1 and _count(x, ISSUANCE_TABLE.name) == 1
