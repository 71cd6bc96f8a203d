"""End-to-end command-line flows across commands: blocks into a register, and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jukicore.cli import main
from jukicore.codes import CodeBlock, lg_code_check_digit

pytestmark = pytest.mark.usefixtures("cli_operator")

def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_block_from_the_center_feeds_exactly_one_register(
        tmp_path: Path, center_store: Path, pref_store: Path) -> None:
    town, center, pref, muni = (tmp_path / "town", tmp_path / "center.bin",
                                tmp_path / "tokyo.block", tmp_path / "shinjuku.block")
    assert run("synth", "-n", "300", "--seed", "2", "--lg-code", "131041", "--out", str(town),
               "-q")[0] == 0
    assert run("codes", "block", "allocate", "--node", str(center_store), "--registry",
               str(center), "--holder", "130001", "-n", "2000", "--out", str(pref))[0] == 0
    assert run("codes", "block", "split", str(pref), "--node", str(pref_store), "--holder",
               "131041", "-n", "1000", "--out", str(muni))[0] == 0
    for db in ("a.db", "b.db"):
        assert run("register", "init", str(tmp_path / db), "--lg-code", "131041",
                   "--prefecture", "東京都", "--municipality", "新宿区")[0] == 0
    code, out, _ = run("register", "load", str(tmp_path / "a.db"), str(town / "residents.parquet"),
                       "--households", str(town / "households.parquet"), "--code-block",
                       str(muni), "--json")
    assert code == 0 and json.loads(out)["residents"] == 300
    assert len(CodeBlock.load(muni)) == 0  # the codes now live in register a only
    code, _, err = run("register", "load", str(tmp_path / "b.db"), str(town / "residents.parquet"),
                       "--code-block", str(muni))
    assert code == 1 and "error:" in err


def test_demo_runs_a_whole_night(tmp_path: Path) -> None:
    work = tmp_path / "night"
    code, out, _ = run("demo", "--population", "2000", "--notifications", "200", "--workdir",
                       str(work), "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["residents_loaded"] == 2000
    assert summary["applied"] + summary["rejected"] + summary["duplicates"] == 200
    assert summary["applied"] >= 190
    # the counter: a card with its PIN, a certificate asked for with them, verified offline
    desk = summary["counter"]
    assert desk["fee"] == 300 and desk["members"] >= 1 and desk["card_id"].startswith(
        summary["municipality"][-7:-1] + "-")
    pdf = Path(desk["certificate"])
    assert pdf.read_bytes().startswith(b"%PDF") and desk["verified_by"] != "center"
    assert {"pades-signature", "qr-payload-signature", "text-matches"} <= set(desk["checks"])
    sent = summary["sent"]
    lg_code = summary["municipality"][-7:-1]
    prefecture = f"{lg_code[:2]}000{lg_code_check_digit(lg_code[:2] + '000')}"
    assert set(sent) == {"center", prefecture}
    for node, moved in sent.items():
        # Every change was sent and acknowledged: the whole outbox, load included.
        assert moved["entries"] == moved["acknowledged"] >= 2000, node
        assert summary["identity_records"][node] >= 2000
    assert (work / "center" / "registry.bin").exists()
    # over the network: every node served on loopback and kept its address book
    assert summary["transport"] == "network"
    book = json.loads((work / lg_code / "peers.json").read_text())["peers"]
    assert set(book) == {"center", prefecture}
    assert all(url.startswith("https://127.0.0.1:") for url in book.values())
    assert all(not any((work / n / "inbox").iterdir()) for n in (lg_code, prefecture, "center"))


def test_the_demo_night_by_files_sends_the_same(tmp_path: Path) -> None:
    by = {}
    for transport in ("files", "network"):
        code, out, _ = run("demo", "--population", "300", "--notifications", "20",
                           "--seed", "3", "--workdir", str(tmp_path / transport),
                           "--transport", transport, "--json", "-q")
        assert code == 0, out
        by[transport] = json.loads(out)
    assert by["files"]["transport"] == "files"
    assert {n: (s["entries"], s["acknowledged"]) for n, s in by["files"]["sent"].items()} == \
        {n: (s["entries"], s["acknowledged"]) for n, s in by["network"]["sent"].items()}
    assert by["files"]["identity_records"] == by["network"]["identity_records"]


def test_a_night_without_notifications_still_serves_the_counter(tmp_path: Path) -> None:
    """No notification gave anyone a My Number: the counter records one itself, then the
    card and the certificate follow; the certificate verifies offline by the CLI too."""
    work = tmp_path / "quiet"
    code, out, _ = run("demo", "--population", "300", "--notifications", "0", "--workdir",
                       str(work), "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["applied"] == 0 and summary["counter"]["fee"] == 300
    pdf = summary["counter"]["certificate"]
    lg_code = summary["municipality"][-7:-1]
    prefecture = f"{lg_code[:2]}000{lg_code_check_digit(lg_code[:2] + '000')}"
    code, out, _ = run("certificate", "verify", pdf, "--trust",
                       str(work / prefecture / "trust.json"), "--json")
    assert code == 0, out
    (work / "certificate.pdf").write_bytes(Path(pdf).read_bytes().replace(b"/Producer",
                                                                          b"/Producex"))
    assert run("certificate", "verify", pdf, "--trust",
               str(work / prefecture / "trust.json"))[0] == 1


def test_demo_never_deletes_a_directory_it_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "my-files"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    (mine / "sub").mkdir()
    (mine / "sub" / "data.csv").write_text("a,b\n")
    code, out, err = run("demo", "--population", "50", "--notifications", "5", "--workdir",
                         str(mine), "-q")
    assert code == 1 and "refusing to delete" in err and out == ""
    assert (mine / "thesis.txt").read_text() == "years of work"
    assert (mine / "sub" / "data.csv").read_text() == "a,b\n"
    assert sorted(p.name for p in mine.iterdir()) == ["sub", "thesis.txt"]
    link = tmp_path / "link"
    link.symlink_to(mine, target_is_directory=True)
    code, _, err = run("demo", "--population", "50", "--workdir", str(link), "-q")
    assert code == 1 and "symbolic link" in err
    assert (mine / "thesis.txt").exists()


def test_demo_replaces_only_its_own_output(tmp_path: Path) -> None:
    work = tmp_path / "night"
    work.mkdir()  # an empty directory is used as it is
    assert run("demo", "--population", "200", "--notifications", "10", "--workdir",
               str(work), "-q")[0] == 0
    assert (work / ".jukicore-demo").is_file()
    (work / "left-over").write_text("from the last run")
    code, out, _ = run("demo", "--population", "200", "--notifications", "10", "--workdir",
                       str(work), "-q", "--json")
    assert code == 0, out
    assert not (work / "left-over").exists() and (work / ".jukicore-demo").is_file()
