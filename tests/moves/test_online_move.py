"""The special move-in/out over the network: A's real server (mutual TLS 1.3 on loopback,
jukicore.network.server), B's real client (jukicore.network.client.NodeClient), and the
CLI's ``move in`` / ``move resume`` through them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from movekit import (
    ADMINS,
    NOTIFIED,
    PASSWORD,
    PLANNED,
    A,
    B,
    Towns,
    card_holder,
    file_out,
    move_in,
)

from jukicore.cli import main
from jukicore.errors import ConflictError, NetworkError, PermissionDeniedError
from jukicore.moves import CONFIRM_PATH, FETCH_PATH
from jukicore.network.client import NodeClient, set_peer_address
from jukicore.network.node import Node, create_node, trust_each_other
from jukicore.network.server import NodeServer, serve_in_thread
from jukicore.register._checks import fmt_code


@contextlib.contextmanager
def a_serving(towns: Towns, *callers: Node) -> Iterator[NodeServer]:
    """A's server on an ephemeral loopback port; the callers' address books point at it."""
    srv = NodeServer(towns.a.node, PASSWORD, port=0)
    thread = serve_in_thread(srv)
    try:
        for n in callers:
            set_peer_address(n, A, f"https://127.0.0.1:{srv.port}")
        yield srv
    finally:
        srv.stop()
        thread.join(timeout=60)


@pytest.fixture
def prefecture(towns: Towns, tmp_path: Any) -> Node:
    pref = create_node(tmp_path / "130001", "130001", password=PASSWORD)
    trust_each_other((towns.a.node, towns.b.node, towns.c.node, pref), PASSWORD)
    return pref


def test_a_special_move_over_mutual_tls(towns: Towns, prefecture: Node) -> None:
    code, cid = card_holder(towns, 10)
    file_out(towns, code, cid)
    body = {"resident_code": fmt_code(code), "card_id": cid, "pin": "4321",
            "moved_in_on": PLANNED.isoformat(), "notified_on": NOTIFIED.isoformat()}
    with a_serving(towns, towns.b.node, prefecture) as srv:
        assert FETCH_PATH in srv._routes and CONFIRM_PATH in srv._routes
        # a prefecture is refused by role, whatever it sends; nothing changes at A
        before = towns.a.digest()
        with NodeClient(prefecture, PASSWORD) as p, \
                pytest.raises(PermissionDeniedError, match="may not call"):
            p.call_json(A, FETCH_PATH, body)
        assert towns.a.digest() == before
        with NodeClient(towns.b.node, PASSWORD) as client:
            # a wrong PIN travels back as the same error class
            with pytest.raises(PermissionDeniedError, match="wrong PIN"):
                move_in(towns, code, cid, pin="0000", call=client.call_json)
            got = move_in(towns, code, cid, call=client.call_json)
            assert (got["state"], got["card_continued"]) == ("confirmed", 1)
            with pytest.raises(ConflictError, match="closed"):
                client.call_json(A, FETCH_PATH, body)
    assert towns.b.reg.resident(code, actor=ADMINS[B])["status"] == "resident"
    row = towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()[0]
    assert (row["state"], row["move_in_id"]) == ("closed", "in-1")


def test_the_cli_moves_in_and_resumes_over_the_network(
        towns: Towns, prefecture: Node, cli_operator: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    cli_operator.make_admin(towns.b.node.store_target())
    runner = CliRunner()
    c1, k1 = card_holder(towns, 10)
    c2, k2 = card_holder(towns, 11, pin="1111")
    file_out(towns, c1, k1)
    members = towns.a.reg.residents(actor=ADMINS[A]).to_pylist()
    heir = next(r for r in members if r["household_id"] == 5 and r["person_id"] != 11)
    file_out(towns, c2, k2, nid="out-2", new_head_code=heir["resident_code"])

    def args(code: int, cid: str, nid: str) -> list[str]:
        return ["move", "in", str(towns.b.node.path), "--notification-id", nid, "--from", A,
                "--resident-code", fmt_code(code) or "", "--card-id", cid, "--arrival",
                PLANNED.isoformat(), "--postal-code", "1600022", "--town", "新宿",
                "--street", "3丁目1番1号", "--pin-stdin", "--today", NOTIFIED.isoformat(),
                "--json"]

    with a_serving(towns, towns.b.node):
        got = runner.invoke(main, args(c1, k1, "in-cli"), input="4321\n")
        assert got.exit_code == 0, got.output
        assert json.loads(got.output)["state"] == "confirmed"
        wrong = runner.invoke(main, args(c2, k2, "in-cli-2"), input="9999\n")
        assert wrong.exit_code == 1 and "wrong PIN" in wrong.output
        # B commits, then the confirmation does not get through (the line drops): pending
        with NodeClient(towns.b.node, PASSWORD) as client:
            def drop(peer: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
                if path == CONFIRM_PATH:
                    raise NetworkError("the line dropped")
                return client.call_json(peer, path, body)

            pending = move_in(towns, c2, k2, nid="in-2", pin="1111", call=drop)
        assert pending["state"] == "pending"
        resumed = runner.invoke(main, ["move", "resume", str(towns.b.node.path), "--json"])
        assert resumed.exit_code == 0, resumed.output
        out = json.loads(resumed.output)
        assert out["pending"] == 0
        assert [r["state"] for r in out["move_ins"]] == ["confirmed"]
    listed = runner.invoke(main, ["move", "list", str(towns.b.node.path), "--incoming",
                                  "--json"])
    assert [r["state"] for r in json.loads(listed.output)["move_ins"]] == ["confirmed"] * 2
    assert {r["state"] for r in towns.a.moves.move_outs(actor=ADMINS[A]).to_pylist()} == {
        "closed"}
