"""``jukicore certificate issue / verify / list`` end to end (a node on SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from regkit import LG, make_block, tiny_municipality

from jukicore.cli import main
from jukicore.network.crypto import TrustStore
from jukicore.register import Actor, open_register

pytestmark = pytest.mark.usefixtures("cli_operator")
PASSWORD = "certificate-node-password"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    n = tmp_path / "chiyoda"
    assert run("node", "init", str(n), "--id", LG, "--prefecture", "東京都",
               "--municipality", "千代田区")[0] == 0
    admin = Actor.operator("admin1", LG, "admin")
    with open_register(n / "store.sqlite") as reg:
        reg.import_code_block(make_block(50), actor=admin)
        reg.load(*tiny_municipality(), actor=admin)
    return n


def _codes(node: Path) -> list[str]:
    with open_register(node / "store.sqlite") as reg:
        t = reg.residents(actor=Actor.operator("admin1", LG, "admin"))
    return [str(c).zfill(11) for c in t.column("resident_code").to_pylist()]


def test_issue_verify_list(node: Path, tmp_path: Path) -> None:
    codes = _codes(node)
    out = tmp_path / "cert.pdf"
    code, stdout, stderr = run("certificate", "issue", str(node), codes[0], "--household",
                               "--items", "relationship,resident_code", "--out", str(out),
                               "--photo-id", "driver_license:AB123", "--requester-name",
                               "鈴木 太郎", "--requester-code", codes[0],
                               "--mayor", "千代田区長　山田　一郎", "--json")
    assert code == 0, stderr
    row = json.loads(stdout)
    assert row["fee"] == 300 and row["member_codes"] == codes[:2] and row["pdf"] == str(out)
    assert out.read_bytes().startswith(b"%PDF-")
    # the verifier's trust store: the municipality's public key, nothing else
    assert run("node", "public-key", str(node), "--out", str(tmp_path / "pub.json"))[0] == 0
    trust = TrustStore()
    trust.add_record(json.loads((tmp_path / "pub.json").read_text()))
    trust.save(tmp_path / "trust.json")
    code, stdout, stderr = run("certificate", "verify", str(out), "--trust",
                               str(tmp_path / "trust.json"), "--json")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["ok"] and doc["number"] == row["issuance_id"] and doc["source"] == "pdf"
    code, stdout, _ = run("certificate", "verify", str(out), "--trust",
                          str(tmp_path / "trust.json"))
    assert code == 0 and "OK 世帯全員の住民票の写し" in stdout
    # a changed byte: refused, exit 1
    bad = tmp_path / "bad.pdf"
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    code, stdout, _ = run("certificate", "verify", str(out), str(bad), "--trust",
                          str(tmp_path / "trust.json"), "--json")
    assert code == 1
    docs = json.loads(stdout)
    assert [d["ok"] for d in docs] == [True, False]
    # an empty trust store: refused
    TrustStore().save(tmp_path / "empty.json")
    code, stdout, _ = run("certificate", "verify", str(out), "--trust",
                          str(tmp_path / "empty.json"))
    assert code == 1 and "REFUSED (UntrustedCertificateError)" in stdout
    code, stdout, _ = run("certificate", "list", str(node), "--json")
    assert code == 0 and [r["issuance_id"] for r in json.loads(stdout)] == [row["issuance_id"]]


def test_refusals_and_usage(node: Path, tmp_path: Path) -> None:
    codes = _codes(node)
    out = tmp_path / "x.pdf"
    base = ["certificate", "issue", str(node), codes[0], "--out", str(out)]
    # someone of another household: refused, nothing written
    code, _, err = run(*base, "--photo-id", "passport:TK1", "--requester-name", "伊藤 太郎",
                       "--requester-code", codes[9])
    assert code == 1 and "no right" in err and not out.exists()
    code, _, err = run(*base, "--requester-code", codes[0])  # no identity
    assert code == 1 and "--photo-id" in err
    code, _, err = run(*base, "--photo-id", "library:1", "--requester-name", "x",
                       "--requester-code", codes[0])
    assert code == 1 and "photo ID kind" in err
    code, _, err = run(*base, "--photo-id", "passport:TK1", "--requester-name", "鈴木 太郎",
                       "--requester-code", codes[0], "--items", "blood_type")
    assert code == 1 and "unknown certificate items" in err
    code, _, err = run(*base, "--card-id", "c1", "--requester-code", codes[0])
    assert code == 1 and not out.exists()
    assert run("certificate", "verify", str(out), "--trust", str(tmp_path / "none.json"))[0] \
        == 1
    assert run("certificate", "issue", "--help")[0] == 0
    assert run("certificate", "verify")[0] == 2
