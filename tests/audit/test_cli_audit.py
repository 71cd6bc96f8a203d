"""``jukicore audit verify / checkpoint / prove / show`` on a node (both databases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jukicore.cli import main
from jukicore.network.node import PASSWORD_ENV, create_node
from jukicore.store import connect

PASSWORD = "correct horse battery staple"
LG = "131016"


@pytest.fixture
def node(tmp_path: Path, db_target: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    store = db_target if "://" in db_target else None
    create_node(tmp_path / "muni", LG, store=store, password=PASSWORD, prefecture="東京都",
                municipality="千代田区")
    return tmp_path / "muni"


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def _first_admin(node: Path, who: Any) -> None:
    """The node's store gets its first admin: the operator the CLI logs in as."""
    from jukicore.network.node import Node

    who.make_admin(Node.open(node).store_target())


def _raw(node: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the node's store, read (or written) around the CLI."""
    target = json.loads((node / "node.json").read_text())["store"]
    be = connect(target if "://" in target else node / target)
    try:
        with be.session() as s:
            return s.query(sql) if sql.lstrip().upper().startswith("SELECT") else (
                s.execute(sql) or [])
    finally:
        be.close()


def test_checkpoint_verify_prove_and_show(node: Path, cli_operator: Any) -> None:
    # no operator account at the node yet: every command is refused, no checkpoint made,
    # and the only entries written are the failed logins
    for args in (("checkpoint",), ("verify",), ("prove", "0"), ("show",)):
        code, out = _run("audit", args[0], str(node), *args[1:], "--json")
        assert code == 1 and "login refused" in out, (args, out)
    assert _raw(node, "SELECT count(*) FROM audit_checkpoint") == [(0,)]
    assert [a for (a,) in _raw(node, "SELECT action FROM audit ORDER BY seq")] == [
        "register.init"] + ["operator.login_failed"] * 4
    _first_admin(node, cli_operator)
    code, out = _run("audit", "checkpoint", str(node), "--json")
    assert code == 0, out
    cp = json.loads(out)
    # the checkpoint covers every entry before its own: the login and node.operate too
    assert cp["number"] == 1 and cp["size"] == 8
    assert cp["note"].startswith(f"jukicore/{LG}\n8\n")
    assert [a for (a,) in _raw(node, "SELECT action FROM audit WHERE seq >= 5 ORDER BY seq")
            ] == ["operator.create", "operator.login", "node.operate", "audit.checkpoint"]
    code, out = _run("audit", "verify", str(node), "--json")
    assert code == 0, out
    rep = json.loads(out)
    assert rep["ok"] and rep["entries"] == 11 and rep["checkpoints"] == 1  # + its login
    code, out = _run("audit", "prove", str(node), "0", "--json")
    assert code == 0, out
    proof = json.loads(out)
    assert proof["verified"] and proof["size"] == 8 and proof["root"] == cp["root"]
    code, out = _run("audit", "show", str(node), "--action", "audit.checkpoint", "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["seq"], r["action"]) for r in rows] == [(8, "audit.checkpoint")]
    code, out = _run("audit", "show", str(node), "--action", "node.operate", "--json")
    assert [(r["actor"], r["detail"]) for r in json.loads(out)] == [
        (f"operator:admin1@{LG}", what) for what in
        ("audit checkpoint", "audit verify", "audit prove 0")]
    code, out = _run("audit", "show", str(node), "--by-operator", "nobody", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out = _run("audit", "show", str(node), "--by-operator", "node-init", "--json")
    assert [r["action"] for r in json.loads(out)] == ["register.init"]
    code, out = _run("audit", "show", str(node), "--by-operator", "node%", "--json")
    assert (code, json.loads(out)) == (0, [])  # a pattern character is a character
    code, out = _run("audit", "show", str(node), "--actor", LG, "--json")
    assert [r["action"] for r in json.loads(out)] == ["audit.checkpoint"]
    code, out = _run("audit", "show", str(node), "--since", "2999-01-01")
    assert (code, out) == (0, "")
    code, out = _run("audit", "show", str(node), "--until", "2999-01-01", "--target", LG)
    assert code == 0 and "register.init" in out and "audit.checkpoint" in out


def test_show_is_a_supervisors_audited_read(node: Path, cli_operator: Any,
                                            tmp_path: Path) -> None:
    from jukicore.access.operators import create_operator, login
    from jukicore.network.node import Node
    from jukicore.register import open_register

    _first_admin(node, cli_operator)
    with open_register(Node.open(node).store_target()) as reg:
        admin = login(reg, cli_operator.operator, cli_operator.password, cli_operator.card,
                      cli_operator.pin)
        create_operator(reg, admin, "clerk1", name="Clerk", roles="clerk",
                        password="Clerk-passw0rd-long", card_path=tmp_path / "clerk1.card",
                        card_pin="clerk-pin")
    code, out = _run("audit", "show", str(node), "--json")
    assert code == 0, out
    assert [r["action"] for r in json.loads(out)][-2:] == ["operator.login", "audit.read"]
    clerk = ["--operator", "clerk1", "--card", str(tmp_path / "clerk1.card")]
    r = CliRunner().invoke(main, ["audit", "show", str(node), *clerk],
                           env={"JUKICORE_PASSWORD": "Clerk-passw0rd-long",
                                "JUKICORE_CARD_PIN": "clerk-pin"})
    assert r.exit_code == 1 and "register.export" in r.output, r.output
    code, out = _run("audit", "show", str(node), "--action", "access.denied", "--json")
    assert [r["target"] for r in json.loads(out)] != [] and code == 0


def test_verify_exits_1_and_says_where(node: Path, cli_operator: Any) -> None:
    _first_admin(node, cli_operator)
    assert _run("audit", "checkpoint", str(node))[0] == 0
    _raw(node, "UPDATE audit SET detail = 'rewritten' WHERE seq = 0")
    code, out = _run("audit", "verify", str(node))
    assert code == 1
    assert "TAMPERED [mismatch] entries seq 0..3 do not match checkpoint 1" in out
    code, out = _run("audit", "prove", str(node), "99")
    assert code == 1 and "no entry 99" in out


@pytest.mark.parametrize("damage", [
    "DELETE FROM audit_state",  # the tree state gone: no entry can be appended
    "INSERT INTO audit (at, actor, actor_kind, action, target, notification_id, detail,"
    " seq) SELECT at, actor, actor_kind, action, target, notification_id, detail, seq + 1"
    " FROM audit WHERE seq = (SELECT max(seq) FROM audit)",  # a row where the next goes
])
def test_verify_runs_on_a_log_too_damaged_to_take_its_entry(
        node: Path, cli_operator: Any, damage: str) -> None:
    """Finding out what was damaged is verify's job: when the log can take no entry, the
    operator's credentials are checked without writing and verify still says where."""
    _first_admin(node, cli_operator)
    assert _run("audit", "checkpoint", str(node))[0] == 0
    _raw(node, damage)
    before = _raw(node, "SELECT count(*) FROM audit")
    r = CliRunner().invoke(main, ["audit", "verify", str(node)])
    assert r.exit_code == 1, r.output
    assert "TAMPERED" in r.stdout
    assert "could not be audited" in r.stderr or "audit_state" not in damage
    assert _raw(node, "SELECT count(*) FROM audit") >= before
    # wrong credentials are still refused there
    r = CliRunner().invoke(main, ["audit", "verify", str(node)],
                           env={"JUKICORE_PASSWORD": "Wrong-passw0rd-here"})
    assert r.exit_code == 1 and "login refused" in r.output and "TAMPERED" not in r.output
