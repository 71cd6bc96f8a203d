"""The ``jukicore register`` commands on a SQLite store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from regkit import LG, TODAY, ev, make_block, make_code, tiny_municipality

from jukicore.cli.register import register
from jukicore.register import events_table

pytestmark = pytest.mark.usefixtures("cli_operator")


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
                       str(tmp_path / "rej.parquet"), "--allow-rejections"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["applied"], out["rejected"]) == (1, 1)
    assert out["resident_codes"] == [str(code).zfill(11), None]
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
    missing = tmp_path / "none.db"
    r = run(register, ["history", str(missing), str(make_code(123)).zfill(11)])
    assert r.exit_code == 1 and "error:" in r.output and "does not exist" in r.output
    assert not missing.exists()  # opening never creates a store
    r = run(register, ["init"])
    assert r.exit_code == 2


def _store(tmp_path: Path) -> tuple[str, int]:
    """A register with the tiny municipality; a resident code with leading zeros."""
    store = str(tmp_path / "city.db")
    residents, _ = tiny_municipality()
    codes = [make_code(b) for b in range(101, 101 + residents.num_rows)]
    pq.write_table(residents.append_column("resident_code", pa.array(codes, pa.uint64())),
                   tmp_path / "res.parquet")
    run = CliRunner().invoke
    assert run(register, ["init", store, "--lg-code", LG, "--prefecture", "東京都",
                          "--municipality", "千代田区"]).exit_code == 0
    r = run(register, ["load", store, str(tmp_path / "res.parquet"), "-q"])
    assert r.exit_code == 0, r.output
    return store, codes[0]


@pytest.mark.parametrize("arg", ["123", "１２３４５６７８９０１", "abc", "123456789012",
                                 "00000000000"[:-1] + "5", "-0000000001"])
def test_malformed_code_argument_exits_2(tmp_path: Path, arg: str) -> None:
    store, _ = _store(tmp_path)
    r = CliRunner().invoke(register, ["history", store, arg])
    assert r.exit_code == 2, r.output


def test_apply_exits_1_on_any_rejected_row(tmp_path: Path) -> None:
    store, code = _store(tmp_path)
    pq.write_table(events_table([ev("name_change", "n1", resident_code=code, given_name="新"),
                                 ev("name_change", "n2", resident_code=code,
                                    family_name_kana="やまだ")]), tmp_path / "day.parquet")
    run = CliRunner().invoke
    r = run(register, ["apply", store, str(tmp_path / "day.parquet"), "--today",
                       TODAY.isoformat(), "-q"])
    assert r.exit_code == 1, r.output
    assert "rejected 1" in r.output and "family_name_kana" in r.output
    pq.write_table(events_table([ev("name_change", "n3", resident_code=code, given_name="旧")]),
                   tmp_path / "ok.parquet")
    r = run(register, ["apply", store, str(tmp_path / "ok.parquet"), "--today",
                       TODAY.isoformat(), "-q", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["resident_codes"] == [str(code).zfill(11)]


def test_json_codes_are_zero_padded_strings(tmp_path: Path) -> None:
    store, code = _store(tmp_path)
    assert len(str(code)) < 11  # the test needs a code with leading zeros
    pq.write_table(events_table([ev("name_change", "n1", resident_code=code, given_name="新")]),
                   tmp_path / "day.parquet")
    run = CliRunner().invoke
    r = run(register, ["apply", store, str(tmp_path / "day.parquet"), "--today",
                       TODAY.isoformat(), "-q", "--json"])
    assert r.exit_code == 0, r.output
    r = run(register, ["history", store, str(code).zfill(11), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert rows and all(h["resident_code"] == str(code).zfill(11) for h in rows)


def test_init_refuses_a_wrong_lg_code(tmp_path: Path) -> None:
    store = tmp_path / "city.db"
    run = CliRunner().invoke
    r = run(register, ["init", str(store), "--lg-code", "131017", "--prefecture", "東京都",
                       "--municipality", "千代田区"])
    assert r.exit_code == 2 and "check digit" in r.output, r.output
    r = run(register, ["init", str(store), "--lg-code", LG, "--prefecture", "東京都",
                       "--municipality", "新宿区"])
    assert r.exit_code == 1 and "千代田区" in r.output, r.output
    assert not store.exists()


def test_load_twice_exits_1_and_says_so(tmp_path: Path) -> None:
    store = str(tmp_path / "city.db")
    residents, _ = tiny_municipality()
    pq.write_table(residents, tmp_path / "res.parquet")
    run = CliRunner().invoke
    assert run(register, ["init", store, "--lg-code", LG, "--prefecture", "東京都",
                          "--municipality", "千代田区"]).exit_code == 0
    from jukicore.register import Actor, open_register
    with open_register(store) as reg:
        reg.import_code_block(make_block(100), actor=Actor.operator("a", LG, "admin"))
    assert run(register, ["load", store, str(tmp_path / "res.parquet"), "-q"]).exit_code == 0
    r = run(register, ["load", store, str(tmp_path / "res.parquet"), "-q"])
    assert r.exit_code == 1
    assert "15 of 15 residents are already in the register" in r.output


def test_csv_keeps_leading_zeros_of_text_columns(tmp_path: Path) -> None:
    """A CSV's postal code 0600000 stays text (it was read as the number 600000)."""
    import pyarrow.csv as pacsv

    store = str(tmp_path / "city.db")
    residents, _ = tiny_municipality(1)
    run = CliRunner().invoke
    assert run(register, ["init", store, "--lg-code", "011002", "--prefecture", "北海道",
                          "--municipality", "札幌市中央区"]).exit_code == 1  # a designated city
    assert run(register, ["init", store, "--lg-code", "011011", "--prefecture", "北海道",
                          "--municipality", "札幌市中央区"]).exit_code == 0
    res = residents.drop_columns(["postal_code", "lg_code", "prefecture", "municipality"])
    n = res.num_rows
    res = res.append_column("postal_code", pa.array(["0600000"] * n))
    res = res.append_column("lg_code", pa.array(["011011"] * n))
    res = res.append_column("prefecture", pa.array(["北海道"] * n))
    res = res.append_column("municipality", pa.array(["札幌市中央区"] * n))
    res = res.append_column("resident_code", pa.array(
        [make_code(b) for b in range(7, 7 + n)], pa.uint64()))
    pacsv.write_csv(res, tmp_path / "res.csv")
    r = run(register, ["load", store, str(tmp_path / "res.csv"), "-q"])
    assert r.exit_code == 0, r.output
