"""``jukicore card`` end to end on a SQLite register: key, issue, hand-over, PINs, loss,
voiding, listing; PINs never on the command line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from regkit import LG, TODAY, ev, make_block, make_my_number, tiny_municipality

from jukicore.cli import main
from jukicore.register import events_table

pytestmark = pytest.mark.usefixtures("cli_operator")
T = ["--today", "2016-01-05"]  # the day of the counter work (never the clock's)


def test_card_commands_end_to_end(tmp_path: Path) -> None:
    store, key = str(tmp_path / "city.db"), str(tmp_path / "pin.key")
    residents, households = tiny_municipality()
    codes = [int(c) for c in make_block(residents.num_rows).codes]
    pq.write_table(residents.append_column("resident_code", pa.array(codes, pa.uint64())),
                   tmp_path / "res.parquet")
    pq.write_table(households, tmp_path / "hh.parquet")
    run = CliRunner().invoke

    def ok(args: list[str], stdin: str | None = None) -> dict[str, object]:
        r = run(main, ["card", *args, "--json"], input=stdin)
        assert r.exit_code == 0, r.output
        return dict(json.loads(r.output))

    assert run(main, ["register", "init", store, "--lg-code", LG, "--prefecture", "東京都",
                      "--municipality", "千代田区"]).exit_code == 0
    assert run(main, ["register", "load", store, str(tmp_path / "res.parquet"),
                      "--households", str(tmp_path / "hh.parquet"), "-q"]).exit_code == 0
    holder, other = codes[0], codes[2]
    pq.write_table(events_table([ev("my_number", "mn1", resident_code=other,
                                    my_number=make_my_number(12312312312))]),
                   tmp_path / "day.parquet")
    assert run(main, ["register", "apply", store, str(tmp_path / "day.parquet"), "--today",
                      TODAY.isoformat(), "-q"]).exit_code == 0

    made = ok(["key-create", key])
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and len(str(made["key_id"])) == 16
    assert run(main, ["card", "key-create", key]).exit_code == 1  # never over a file

    (tmp_path / "apps.csv").write_text(f"resident_code,kind\n{holder:011d},juki_photo\n")
    got = ok(["issue", store, str(tmp_path / "apps.csv"), "--today", "2015-06-01"])
    cards = got["cards"]
    assert isinstance(cards, list) and cards[0]["state"] == "issued"
    cid = str(cards[0]["card_id"])
    assert cards[0]["resident_code"] == f"{holder:011d}" and cards[0]["fee"] == 500

    # a PIN is read from standard input (or a prompt), never from the arguments
    assert run(main, ["card", "activate", store, cid, "--pin-key", key, "1234"]).exit_code == 2
    assert run(main, ["card", "activate", store, cid, "--pin-key", key]).exit_code == 1
    assert ok(["activate", store, cid, "--pin-key", key, "--pin-stdin", "--today",
               "2015-06-02"], "2580\n")["state"] == "active"
    got = ok(["verify-pin", store, cid, "--pin-key", key, "--pin-stdin", *T], "2580\n")
    assert got["resident_code"] == f"{holder:011d}"
    for _ in range(3):
        r = run(main, ["card", "verify-pin", store, cid, "--pin-key", key, "--pin-stdin", *T],
                input="0000\n")
        assert r.exit_code == 1 and "wrong PIN" in r.output
    r = run(main, ["card", "verify-pin", store, cid, "--pin-key", key, "--pin-stdin", *T],
            input="2580\n")
    assert r.exit_code == 1 and "locked" in r.output
    assert ok(["reset-pin", store, cid, "--pin-key", key, "--pin-stdin",
               "--identity-document", "passport", *T], "1470\n")["state"] == "active"
    assert ok(["suspend", store, cid, *T])["state"] == "suspended"
    assert run(main, ["card", "verify-pin", store, cid, "--pin-key", key, "--pin-stdin", *T],
               input="1470\n").exit_code == 1
    assert ok(["resume", store, cid, "--identity-document", "drivers_license", *T])[
        "state"] == "active"
    assert ok(["verify-pin", store, cid, "--pin-key", key, "--pin-stdin", *T], "1470\n")[
        "resident_code"] == f"{holder:011d}"

    # a My Number card, the fee, continued use refused without a move-in, listing, voiding
    assert ok(["fee", store, "mynumber", "1000"])["mynumber"] == 1000
    pq.write_table(pa.table({"resident_code": [f"{other:011d}"], "kind": ["mynumber"]}),
                   tmp_path / "apps.parquet")
    mn = ok(["issue", store, str(tmp_path / "apps.parquet"), "--today", TODAY.isoformat()])
    mn_id = str(mn["cards"][0]["card_id"])  # type: ignore[index]
    r = run(main, ["card", "continue-use", store, mn_id, "--resident-code", f"{other:011d}",
                   "--identity-document", "passport"])
    assert r.exit_code == 1 and "move-in" in r.output
    listed = ok(["list", store, "--today", TODAY.isoformat()])["cards"]
    assert {(c["card_id"], c["state"], c["fee"]) for c in listed} == {  # type: ignore[union-attr]
        (cid, "active", 500), (mn_id, "issued", 1000)}
    assert "pin" not in json.dumps(listed).replace("pin_failures", "")
    assert ok(["void", store, mn_id, "--reason", "issued_in_error"])["state"] == "voided"
    assert ok(["collect", store, mn_id])["state"] == "collected"
    r = run(main, ["card", "void", store, mn_id, "--reason", "damaged"])
    assert r.exit_code == 1 and "cannot be taken" in r.output
    # usage errors exit 2; a bad key file exits 1
    assert run(main, ["card", "void", store, cid, "--reason", "bored"]).exit_code == 2
    os.chmod(key, 0o644)
    r = run(main, ["card", "verify-pin", store, cid, "--pin-key", key, "--pin-stdin", *T],
            input="1470\n")
    assert r.exit_code == 1 and "private" in r.output
