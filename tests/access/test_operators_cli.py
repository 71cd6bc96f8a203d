"""The CLI authenticates: no command acts on a store without an operator's login; the
``jukicore operator`` commands (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jukicore.access import operators as op
from jukicore.cli import main
from jukicore.register import open_register

LG = "131016"
CLI_OPERATOR = "admin1"  # tests/conftest.py: cli_operator
CLERK_PW = "Clerk-passw0rd-Long"


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def _init(target: str) -> None:
    r = run("register", "init", target, "--lg-code", LG, "--prefecture", "東京都",
            "--municipality", "千代田区", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["admin"] == CLI_OPERATOR


def _state(target: str) -> tuple[str, str, list[tuple[str, str]]]:
    with open_register(target) as reg:
        with reg._b.session(write=False) as s:
            audit = [(str(r[0]), str(r[1]))
                     for r in s.query("SELECT action, target FROM audit ORDER BY id")]
        return reg.content_digest(), op.operators_digest(reg), audit


def _logged_in(r: Result) -> bool:
    """The command got past the login (and the permission check): the one record asked
    for is not there."""
    return "no record with resident code 00000000019" in r.output


NO_CREDENTIALS = {name: None for name in (
    "JUKICORE_OPERATOR", "JUKICORE_PASSWORD", "JUKICORE_CARD", "JUKICORE_CARD_PIN")}


@pytest.mark.usefixtures("cli_operator")
def test_unauthenticated_cli_exits_1_and_changes_nothing(db_target: str, tmp_path: Path
                                                         ) -> None:
    _init(db_target)
    before = _state(db_target)
    for args in (["history", db_target, "00000000019"],
                 ["export", db_target, str(tmp_path / "out")]):
        r = run("register", *args, env=NO_CREDENTIALS)
        assert r.exit_code == 1, r.output
        assert "error: no operator" in r.output and "--operator" in r.output
        assert _state(db_target) == before
    assert not (tmp_path / "out").exists()
    # an operator without a password or card is no login either
    r = run("register", "history", db_target, "00000000019",
            env={**NO_CREDENTIALS, "JUKICORE_OPERATOR": CLI_OPERATOR})
    assert r.exit_code == 1 and "no operator card" in r.output
    r = run("register", "history", db_target, "00000000019", "--card",
            os.environ["JUKICORE_CARD"], env={**NO_CREDENTIALS, "JUKICORE_OPERATOR": "admin1"})
    assert r.exit_code == 1 and "no operator password" in r.output
    assert _state(db_target) == before


@pytest.mark.usefixtures("cli_operator")
def test_wrong_credentials_exit_1_and_only_the_failure_is_recorded(
        db_target: str, tmp_path: Path, cli_operator: Any) -> None:
    _init(db_target)
    _, _, audit = _state(db_target)
    (tmp_path / "pw").write_text("Not-the-passw0rd\n")
    r = run("register", "export", db_target, str(tmp_path / "out"), "--password-file",
            str(tmp_path / "pw"))
    assert r.exit_code == 1 and "error: login refused" in r.output, r.output
    assert "Not-the-passw0rd" not in r.output
    r = run("register", "history", db_target, "00000000019", "--operator", "mallory")
    assert r.exit_code == 1 and "error: login refused" in r.output, r.output
    _, _, audit_after = _state(db_target)
    assert audit_after == [*audit, ("operator.login_failed", CLI_OPERATOR),
                           ("operator.login_failed", "mallory")]
    assert not (tmp_path / "out").exists()
    with open_register(db_target) as reg, reg._b.session(write=False) as s:
        assert s.scalar("SELECT failed_logins FROM operator WHERE id = 'admin1'") == 1
        assert not any(cli_operator.password in str(row) or "Not-the-passw0rd" in str(row)
                       for row in s.query("SELECT * FROM audit"))


def test_the_actor_has_its_accounts_roles(tmp_path: Path, cli_operator: Any) -> None:
    """A clerk cannot export (the CLI used to grant itself the role it needed)."""
    target = str(tmp_path / "city.db")
    _init(target)
    with open_register(target) as reg:  # a clerk at any hour: the test runs at any time
        admin = op.login(reg, cli_operator.operator, cli_operator.password, cli_operator.card,
                         cli_operator.pin).actor()
        reg.set_policy("hours.clerk", "always", actor=admin)
    (tmp_path / "pw").write_text(CLERK_PW + "\n")
    r = run("operator", "create", target, "clerk1", "--name", "A Clerk", "--roles", "clerk",
            "--card-out", str(tmp_path / "clerk1.card"), "--new-password-file",
            str(tmp_path / "pw"), env={"JUKICORE_NEW_CARD_PIN": "clerk-pin-1"})
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(os.stat(tmp_path / "clerk1.card").st_mode) == 0o600
    clerk = {"JUKICORE_OPERATOR": "clerk1", "JUKICORE_PASSWORD": CLERK_PW,
             "JUKICORE_CARD": str(tmp_path / "clerk1.card"), "JUKICORE_CARD_PIN": "clerk-pin-1"}
    r = run("register", "export", target, str(tmp_path / "out"), env=clerk)
    assert r.exit_code == 1 and "may not register.export" in r.output, r.output
    r = run("register", "history", target, "00000000019", "--json", env=clerk)
    assert _logged_in(r), r.output
    r = run("register", "export", target, str(tmp_path / "out"))  # the admin may
    assert r.exit_code == 0, r.output


@pytest.mark.usefixtures("cli_operator")
def test_operator_commands(db_target: str, tmp_path: Path) -> None:
    _init(db_target)
    (tmp_path / "pw").write_text(CLERK_PW + "\n")
    new = {"JUKICORE_NEW_PASSWORD": CLERK_PW, "JUKICORE_NEW_CARD_PIN": "clerk-pin-1"}
    card = str(tmp_path / "c.card")
    r = run("operator", "create", db_target, "clerk1", "--name", "C", "--roles",
            "clerk,supervisor", "--card-out", card, "--resident-code", "00000000019",
            env=new)
    assert r.exit_code == 0, r.output
    r = run("operator", "list", db_target, "--json")
    assert r.exit_code == 0, r.output
    listed = {o["id"]: o for o in json.loads(r.output)}
    assert listed["clerk1"]["roles"] == ["clerk", "supervisor"]
    assert listed["clerk1"]["resident_code"] == 19 and listed["clerk1"]["enabled"]
    clerk = {"JUKICORE_OPERATOR": "clerk1", "JUKICORE_PASSWORD": CLERK_PW,
             "JUKICORE_CARD": card, "JUKICORE_CARD_PIN": "clerk-pin-1"}
    # a clerk administers nothing
    r = run("operator", "disable", db_target, "admin1", env=clerk)
    assert r.exit_code == 1 and "not an admin" in r.output, r.output
    assert run("operator", "disable", db_target, "clerk1").exit_code == 0
    r = run("register", "history", db_target, "00000000019", env=clerk)
    assert r.exit_code == 1 and "login refused" in r.output
    assert run("operator", "enable", db_target, "clerk1").exit_code == 0
    r = run("operator", "recard", db_target, "clerk1", "--card-out",
            str(tmp_path / "c2.card"), env=new)
    assert r.exit_code == 0, r.output
    r = run("register", "history", db_target, "00000000019", env=clerk)
    assert r.exit_code == 1 and "login refused" in r.output  # the old card
    clerk["JUKICORE_CARD"] = str(tmp_path / "c2.card")
    assert _logged_in(run("register", "history", db_target, "00000000019", env=clerk))
    r = run("operator", "passwd", db_target, "clerk1", env={"JUKICORE_NEW_PASSWORD": "short"})
    assert r.exit_code == 1 and "too short" in r.output and "short\n" not in r.output
    r = run("operator", "passwd", db_target, "clerk1",
            env={"JUKICORE_NEW_PASSWORD": "Another-passw0rd-2"})
    assert r.exit_code == 0, r.output
    assert not _logged_in(run("register", "history", db_target, "00000000019", env=clerk))
    clerk["JUKICORE_PASSWORD"] = "Another-passw0rd-2"
    assert _logged_in(run("register", "history", db_target, "00000000019", env=clerk))
    with open_register(db_target) as reg, reg._b.session(write=False) as s:
        actions = [r[0] for r in s.query("SELECT action FROM audit WHERE action LIKE"
                                         " 'operator.%' AND target = 'clerk1' ORDER BY id")]
    assert [a for a in actions if a not in ("operator.login", "operator.login_failed")] == [
        "operator.create", "operator.disable", "operator.enable", "operator.recard",
        "operator.password"]


@pytest.mark.usefixtures("cli_operator")
def test_register_init_needs_a_valid_first_admin(tmp_path: Path) -> None:
    target = tmp_path / "city.db"
    args = ["register", "init", str(target), "--lg-code", LG, "--prefecture", "東京都",
            "--municipality", "千代田区"]
    r = run(*args, env={"JUKICORE_ADMIN_ID": None})
    assert r.exit_code == 1 and "first admin" in r.output
    r = run(*args, env={"JUKICORE_ADMIN_PASSWORD": "weakpasswordxx"})
    assert r.exit_code == 1 and "one kind" in r.output and "weakpasswordxx" not in r.output
    r = run(*args, env={"JUKICORE_ADMIN_CARD_PIN": "123"})
    assert r.exit_code == 1 and "PIN is 6 to" in r.output and "123" not in r.output
    assert not target.exists()
    # a file at --admin-card that is not this admin's card is never overwritten
    (tmp_path / "x.card").write_text("mine")
    r = run(*args, "--admin-card", str(tmp_path / "x.card"), env={"JUKICORE_ADMIN_ID": "adm2"})
    assert r.exit_code == 1 and "never written over" in r.output
    assert (tmp_path / "x.card").read_text() == "mine" and not target.exists()


@pytest.mark.usefixtures("cli_operator")
def test_bootstrap_only_without_operators(tmp_path: Path) -> None:
    target = str(tmp_path / "city.db")
    _init(target)
    r = run("operator", "bootstrap", target, "--admin-id", "admin9", "--admin-card",
            str(tmp_path / "9.card"))
    assert r.exit_code == 1 and "has operators already" in r.output, r.output
    assert not (tmp_path / "9.card").exists()


def test_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    password, pin = "Chief-passw0rd-Long", "chief-pin-77"
    for name in ("JUKICORE_OPERATOR", "JUKICORE_PASSWORD", "JUKICORE_CARD",
                 "JUKICORE_CARD_PIN", "JUKICORE_ADMIN_PASSWORD", "JUKICORE_ADMIN_CARD_PIN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "pw").write_text(password + "\n")
    (tmp_path / "pin").write_text(pin + "\n")
    target, card = str(tmp_path / "city.db"), str(tmp_path / "a.card")
    r = run("register", "init", target, "--lg-code", LG, "--prefecture", "東京都",
            "--municipality", "千代田区", "--admin-id", "boss", "--admin-name", "Boss",
            "--admin-password-file", str(tmp_path / "pw"), "--admin-card", card,
            "--admin-card-pin-file", str(tmp_path / "pin"))
    assert r.exit_code == 0, r.output
    r = run("register", "history", target, "00000000019", "--operator", "boss",
            "--password-file", str(tmp_path / "pw"), "--card", card, "--card-pin-file",
            str(tmp_path / "pin"))
    assert _logged_in(r), r.output


@pytest.mark.usefixtures("cli_operator")
def test_node_init_makes_the_first_admin_of_an_identity_store(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", "node keys passw0rd")
    r = run("node", "init", str(tmp_path / "pref"), "--id", "130001",
            env={"JUKICORE_ADMIN_PASSWORD": "alllowercaseletters"})
    assert r.exit_code == 1 and "one kind" in r.output
    assert not (tmp_path / "pref").exists()  # checked before anything is made
    r = run("node", "init", str(tmp_path / "pref"), "--id", "130001")
    assert r.exit_code == 0, r.output
    store = str(tmp_path / "pref" / "store.sqlite")
    r = run("operator", "list", store, "--json")
    assert r.exit_code == 0, r.output
    (admin,) = json.loads(r.output)
    assert (admin["id"], admin["lg_code"], admin["node_id"], admin["roles"]) == (
        CLI_OPERATOR, None, "130001", ["admin"])
    r = run("operator", "list", store, env={"JUKICORE_CARD_PIN": "wrong-pin-1"})
    assert r.exit_code == 1 and "login refused" in r.output
    r = run("operator", "list", str(tmp_path / "none.db"))
    assert r.exit_code == 1 and "no store at" in r.output
    assert not (tmp_path / "none.db").exists()
    (tmp_path / "other.db").touch()  # a SQLite file that is neither kind of store
    r = run("operator", "list", str(tmp_path / "other.db"))
    assert r.exit_code == 1 and "no register and no identity store" in r.output, r.output
