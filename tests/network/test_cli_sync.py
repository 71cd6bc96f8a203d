"""The node and sync commands, as the README shows them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from netkit import PASSWORD

from jukicore.cli import main

pytestmark = pytest.mark.usefixtures("cli_operator")

def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_readme_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    muni, pref, center = (str(tmp_path / n) for n in ("muni", "pref", "center"))
    assert run("node", "init", muni, "--id", "131041", "--prefecture", "東京都",
               "--municipality", "新宿区")[0] == 0
    assert run("node", "init", pref, "--id", "130001")[0] == 0
    code, out, _ = run("node", "init", center, "--id", "center", "--json")
    assert code == 0 and json.loads(out)["role"] == "center"
    for n in (muni, pref, center):
        assert run("node", "public-key", n, "--out", f"{n}.json")[0] == 0
    for a, b in ((center, muni), (pref, muni), (muni, center), (muni, pref)):
        assert run("node", "trust", a, f"{b}.json")[0] == 0
    code, _, err = run("node", "trust", center, f"{muni}.json")  # the same key twice
    assert code == 1 and "already trusted" in err
    town = tmp_path / "town"
    assert run("synth", "-n", "200", "--seed", "4", "--lg-code", "131041", "--out", str(town),
               "-q")[0] == 0
    assert run("codes", "block", "allocate", "--node", center, "--registry",
               str(tmp_path / "c.bin"),
               "--holder", "131041", "-n", "500", "--out", str(tmp_path / "m.block"))[0] == 0
    assert run("register", "load", f"{muni}/store.sqlite", str(town / "residents.parquet"),
               "--code-block", str(tmp_path / "m.block"))[0] == 0
    code, out, _ = run("sync", "status", muni, "--json")
    assert json.loads(out)["pending"] == {"130001": 200, "center": 200}
    code, out, _ = run("sync", "export", muni, "--json")
    written = json.loads(out)
    assert code == 0 and set(written) == {"130001", "center"}
    shutil.copy(written["center"], Path(center) / "inbox")
    code, out, _ = run("sync", "apply", center, "--json", "-q")
    assert code == 0 and json.loads(out)["packets"][0]["applied"] == 200
    for ack in (Path(center) / "outbox").glob("*ack*"):
        shutil.copy(ack, Path(muni) / "inbox")
    assert run("sync", "apply", muni, "-q")[0] == 0
    code, out, _ = run("sync", "status", muni, "--json")
    assert json.loads(out)["pending"] == {"130001": 200, "center": 0}
    code, out, _ = run("sync", "status", center, "--json")
    assert json.loads(out)["last_applied"] == {"131041": 200}
    # A packet meant for the center is refused at the prefecture: exit code 1.
    code, out, _ = run("sync", "apply", pref, written["center"], "--json", "-q")
    assert code == 1 and json.loads(out)["packets"][0]["error"] == "MisaddressedPacketError"


def test_missing_password_is_a_usage_error(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUKICORE_NODE_PASSWORD", raising=False)
    code, _, err = run("node", "init", str(tmp_path / "x"), "--id", "center")
    assert code == 2 and "password" in err
    assert not (tmp_path / "x").exists()


def test_a_nodes_jobs_are_run_by_its_admins_and_batch_operators_only(
        network: Any, tmp_path: Path) -> None:
    """At an upper store too: the batch role runs the node's jobs and reads nothing; a
    clerk runs none of them (refused, audited); an admin of the center acts for it."""
    from jukicore.access.operators import create_operator, login
    from jukicore.audit.query import entries
    from jukicore.identity import open_identity_store

    center = network.center
    with open_identity_store(center.store_target()) as st:
        admin = login(st, "admin1", "Test-admin-passw0rd", os.environ["JUKICORE_CARD"],
                      "test-card-pin")
        assert admin.actor().node_id == "center"
        for oid, role in (("night1", "batch"), ("clerk1", "clerk")):
            create_operator(st, admin, oid, name=oid, roles=role,
                            password=f"Night-{role}-Passw0rd", card_path=tmp_path / f"{oid}.card",
                            card_pin="pin-1234")

    ROLES = {"night1": "batch", "clerk1": "clerk"}

    def as_(oid: str, *args: str) -> tuple[int, str]:
        r = CliRunner().invoke(main, [*args, "--operator", oid, "--card",
                                      str(tmp_path / f"{oid}.card")],
                               env={"JUKICORE_PASSWORD": f"Night-{ROLES[oid]}-Passw0rd",
                                    "JUKICORE_CARD_PIN": "pin-1234"})
        return r.exit_code, r.output

    assert as_("night1", "sync", "status", str(center.path), "--json")[0] == 0
    code, out = as_("clerk1", "sync", "status", str(center.path))
    assert code == 1 and "node.operate" in out
    code, out = as_("night1", "sync", "quarantine", str(center.path))
    assert code == 1 and "identity.review" in out  # batch reads no personal data
    assert run("sync", "quarantine", str(center.path), "--json")[0] == 0  # the admin
    code, out, _ = run("audit", "show", str(center.path), "--action", "node.operate",
                       "--json")
    assert code == 0, out
    assert [(r["actor"], r["detail"]) for r in json.loads(out)] == [
        ("operator:night1@center", "sync status")]
    with open_identity_store(center.store_target()) as st, st._b.session() as s:
        denied = [(r["actor"], r["detail"]) for r in entries(s, action="access.denied")]
    assert ("operator:clerk1@center", "node.operate: no role of operator:clerk1@center"
            " (clerk) grants node.operate at a center") in [(a, str(d)[:87]) for a, d in denied]
    assert any(a == "operator:night1@center" and "identity.review" in str(d)
               for a, d in denied)
