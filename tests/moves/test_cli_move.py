"""``jukicore move``: the special move-out at the old municipality's node, listing, and
usage errors (the move-in and resume over the network: test_online_move.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from movekit import DESTINATION, PASSWORD, B, Towns, card_holder

from jukicore.cli import main
from jukicore.register._checks import fmt_code


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, cli_operator: object) -> CliRunner:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    return CliRunner()


def _out_args(towns: Towns, code: int, cid: str, *extra: str, to: str = B) -> list[str]:
    return ["move", "out", str(towns.a.node.path), "--notification-id", "out-cli",
            "--resident-code", fmt_code(code) or "", "--card-id", cid, "--to", to,
            "--destination", DESTINATION, "--planned", "2024-06-10", "--filed-on",
            "2024-06-03", "--today", "2024-06-03", "--json", *extra]


def test_move_out_and_list(towns: Towns, runner: CliRunner, cli_operator: object) -> None:
    cli_operator.make_admin(towns.a.node.store_target())  # type: ignore[attr-defined]
    code, cid = card_holder(towns, 10)
    got = runner.invoke(main, _out_args(towns, code, cid))
    assert got.exit_code == 0, got.output
    record = json.loads(got.output)
    assert (record["state"], record["destination_lg"], record["resident_code"]) == (
        "open", B, fmt_code(code))
    again = runner.invoke(main, _out_args(towns, code, cid))  # the same filing: the same
    assert again.exit_code == 0 and json.loads(again.output) == record
    listed = runner.invoke(main, ["move", "list", str(towns.a.node.path), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)["move_outs"]
    assert [(r["move_out_id"], r["state"]) for r in rows] == [("out-cli", "open")]
    assert "data" not in rows[0]
    before = towns.a.digest()
    usage = runner.invoke(main, _out_args(towns, code, cid, to="131017"))
    assert usage.exit_code == 2 and "check digit" in usage.output
    assert towns.a.digest() == before  # refused before anyone logged in
    other = runner.invoke(main, _out_args(towns, code, cid, "--by", "online"))
    assert other.exit_code == 1 and "other content" in other.output
    listed = runner.invoke(main, ["move", "list", str(towns.a.node.path), "--json"])
    assert json.loads(listed.output)["move_outs"] == rows  # (only the logins were added)
