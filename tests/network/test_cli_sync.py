"""The node and sync commands, as the README shows them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
