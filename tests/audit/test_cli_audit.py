"""``jukicore audit verify / checkpoint / prove / show`` on a node (both databases)."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_checkpoint_verify_prove_and_show(node: Path) -> None:
    code, out = _run("audit", "checkpoint", str(node), "--json")
    assert code == 0, out
    cp = json.loads(out)
    assert cp["number"] == 1 and cp["size"] == 1
    assert cp["note"].startswith(f"jukicore/{LG}\n1\n")
    code, out = _run("audit", "verify", str(node), "--json")
    assert code == 0, out
    rep = json.loads(out)
    assert rep["ok"] and rep["entries"] == 2 and rep["checkpoints"] == 1
    code, out = _run("audit", "prove", str(node), "0", "--json")
    assert code == 0, out
    proof = json.loads(out)
    assert proof["verified"] and proof["size"] == 1 and proof["root"] == cp["root"]
    code, out = _run("audit", "show", str(node), "--action", "audit.checkpoint", "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["seq"], r["action"]) for r in rows] == [(1, "audit.checkpoint")]
    code, out = _run("audit", "show", str(node), "--operator", "nobody", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out = _run("audit", "show", str(node), "--operator", "node-init", "--json")
    assert [r["action"] for r in json.loads(out)] == ["register.init"]
    code, out = _run("audit", "show", str(node), "--operator", "node%", "--json")
    assert (code, json.loads(out)) == (0, [])  # a pattern character is a character
    code, out = _run("audit", "show", str(node), "--actor", LG, "--json")
    assert [r["action"] for r in json.loads(out)] == ["audit.checkpoint"]
    code, out = _run("audit", "show", str(node), "--since", "2999-01-01")
    assert (code, out) == (0, "")
    code, out = _run("audit", "show", str(node), "--until", "2999-01-01", "--target", LG)
    assert code == 0 and "register.init" in out and "audit.checkpoint" in out


def test_verify_exits_1_and_says_where(node: Path) -> None:
    assert _run("audit", "checkpoint", str(node))[0] == 0
    target = json.loads((node / "node.json").read_text())["store"]
    be = connect(target if "://" in target else node / target)
    try:
        with be.session() as s:
            s.execute("UPDATE audit SET detail = 'rewritten' WHERE seq = 0")
    finally:
        be.close()
    code, out = _run("audit", "verify", str(node))
    assert code == 1
    assert "TAMPERED [mismatch] entries seq 0..0 do not match checkpoint 1" in out
    code, out = _run("audit", "prove", str(node), "99")
    assert code == 1 and "no entry 99" in out
