"""The ``jukicore register`` commands on a SQLite store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner
from regkit import LG, TODAY, ev, make_block, tiny_municipality

from jukicore.cli.register import register
from jukicore.register import events_table


def test_init_load_apply_export_history(tmp_path: Path) -> None:
    store = str(tmp_path / "city.db")
    residents, households = tiny_municipality()
    codes = make_block(residents.num_rows).codes
    pq.write_table(residents.append_column("resident_code", pa.array(codes, pa.uint64())),
                   tmp_path / "res.parquet")
    pq.write_table(households, tmp_path / "hh.parquet")
    run = CliRunner().invoke
    r = run(register, ["init", store, "--lg-code", LG, "--prefecture", "東京都",
                       "--municipality", "千代田区", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["lg_code"] == LG
    r = run(register, ["load", store, str(tmp_path / "res.parquet"), "--households",
                       str(tmp_path / "hh.parquet"), "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"residents": 15, "households": 6}
    code = int(codes[0])
    pq.write_table(events_table([ev("name_change", "n1", resident_code=code, given_name="新"),
                                 ev("death", "d1", resident_code=12345678901)]),
                   tmp_path / "day.parquet")
    r = run(register, ["apply", store, str(tmp_path / "day.parquet"), "--today",
                       TODAY.isoformat(), "--json", "-q", "--rejected",
                       str(tmp_path / "rej.parquet")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["applied"], out["rejected"]) == (1, 1)
    assert pq.read_table(tmp_path / "rej.parquet").column("notification_id").to_pylist() == ["d1"]
    r = run(register, ["history", store, str(code).zfill(11), "--json"])
    assert r.exit_code == 0, r.output
    assert [h["item"] for h in json.loads(r.output)] == ["given_name"]
    # the history starts at the load: an earlier day is refused, naming the first day
    r = run(register, ["export", store, str(tmp_path / "out"), "--as-of", "2020-01-01"])
    assert r.exit_code == 1 and "history starts at" in r.output, r.output
    day = dt.datetime.now(dt.UTC).date().isoformat()  # the day of the load above
    r = run(register, ["export", store, str(tmp_path / "out"), "--as-of", day])
    assert r.exit_code == 0, r.output
    assert pq.read_table(tmp_path / "out" / "residents.parquet").num_rows == 15
    assert pq.read_table(tmp_path / "out" / f"residents_as_of_{day}.parquet").num_rows == 15


def test_errors_exit_1_and_usage_exit_2(tmp_path: Path) -> None:
    run = CliRunner().invoke
    r = run(register, ["history", str(tmp_path / "none.db"), "123"])
    assert r.exit_code == 1 and "error:" in r.output
    r = run(register, ["init"])
    assert r.exit_code == 2
