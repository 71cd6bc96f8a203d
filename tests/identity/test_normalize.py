"""Match keys of names and addresses (jukicore.identity.normalize): every rule through
Python, bad input refused, and the pure-Python baseline of the benchmark giving the same
keys."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jukicore.errors import InvalidInputError
from jukicore.identity.normalize import address_key, address_keys, name_key, name_keys

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benches"))
import _normalize_py as ref


@pytest.mark.parametrize(("a", "b"), [
    ("ＹＡＭＡＤＡ", "YAMADA"),  # NFKC: full width -> half width
    ("ﾔﾏﾀﾞ", "やまだ"),  # half-width katakana -> full width -> hiragana
    ("\ufa10本", "塚本"),  # a compatibility ideograph
    ("山 田", "山田"),  # spaces
    ("山\u3000田", "山田"),
    ("辻\U000e0100", "辻"),  # an ideographic variation selector
    ("ジョン・スミス", "じよんすみす"),  # middle dot, small kana
    ("ｼﾞｮﾝ･ｽﾐｽ", "じよんすみす"),
    ("ㇰㇱㇲ", "くしす"),  # small katakana extension
    ("ユーコ", "ゆうこ"),  # the long vowel mark takes the kana's vowel
    ("コーイチ", "こういち"),
    ("ケーコ", "けいこ"),
    ("サーヤ", "さあや"),
    ("ンー", "ん"),
    ("髙橋", "高橋"),  # variant kanji
    ("山﨑", "山崎"),
    ("山嵜", "山崎"),
    ("渡邊", "渡辺"),
    ("渡邉", "渡辺"),
    ("齋藤", "斎藤"),
    ("齊藤", "斉藤"),
    ("澤田", "沢田"),
    ("櫻井", "桜井"),
    ("𠮷田", "吉田"),
    ("龍", "竜"),
    ("學", "学"),
    ("驛", "駅"),
])
def test_name_keys_fold(a: str, b: str) -> None:
    assert name_key(a) == b
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(("a", "b"), [
    ("斉藤", "斎藤"),  # two standard characters
    ("高", "髙橋"),
    ("ゆうこ", "ゆこ"),
    ("波〜", "波"),  # a wave dash is no long vowel
    ("ん", "んん"),
])
def test_name_keys_keep_apart(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)


def test_name_edge_cases() -> None:
    assert name_key("") == ""
    assert name_key("Smith") == "Smith"
    assert name_key("   ") == ""


ADDRESS_SAME = [
    ("1丁目2番3号", "1-2-3"),
    ("１－２－３", "1-2-3"),
    ("一丁目二番地三", "1-2-3"),
    ("1丁目2番地の3", "1-2-3"),
    ("1ー2ー3", "1-2-3"),
    ("1−2−3", "1-2-3"),
    ("1-2-3-", "1-2-3"),
    ("二十三番地", "23"),
    ("百五番地", "105"),
    ("千二百番地", "1200"),
    ("一〇五番地", "105"),
    ("十日町一丁目", "十日町1"),
    ("北海道名寄市風連町大町944番地5", "北海道名寄市風連町大町944-5"),
    ("北海道名寄市風連町大字大町944-5", "北海道名寄市風連町大町944-5"),
    ("北海道名寄市風連町大町９４４番地の５", "北海道名寄市風連町大町944-5"),
    ("北海道名寄市風連町字大町944の5", "北海道名寄市風連町大町944-5"),
    ("字大町", "大町"),
    ("東京都 千代田区　霞が関", "東京都千代田区霞が関"),
    ("櫻木町", "桜木町"),
]


@pytest.mark.parametrize(("a", "b"), ADDRESS_SAME)
def test_address_keys(a: str, b: str) -> None:
    assert address_key(a) == b


@pytest.mark.parametrize("place", [
    "一宮市", "五十嵐", "三田", "八王子市", "四日市市", "十日町市", "九段北", "六本木", "二俣川",
    "千代田区三番町", "仙台市青葉区一番町", "十字路", "大字熊野字北原"[2:],
])
def test_address_place_names_stay(place: str) -> None:
    assert address_key(place) == place


def test_address_aza_inside_a_name_stays() -> None:
    assert address_key("大字熊野字北原") == "熊野字北原"
    assert address_key("千代田区三番町5番地") == "千代田区三番町5"


def test_columns_answer_in_kind_and_keep_nulls() -> None:
    assert name_keys(["ユーコ", None, "髙橋"]) == ["ゆうこ", None, "高橋"]
    assert address_keys(("1丁目2番3号",)) == ["1-2-3"]
    arr = pa.array(["ユーコ", None], pa.large_string())
    out = name_keys(arr)
    assert isinstance(out, pa.Array)
    assert out.type == pa.large_string()
    assert out.to_pylist() == ["ゆうこ", None]
    chunked = pa.chunked_array([["1丁目"], [None, "２番"]])
    got = address_keys(chunked)
    assert isinstance(got, pa.ChunkedArray)
    assert got.type == pa.string()
    assert got.to_pylist() == ["1", None, "2"]
    sliced = pa.array(["x", "ユーコ", None, "ケーコ"])[1:]
    assert name_keys(sliced).to_pylist() == ["ゆうこ", None, "けいこ"]
    assert name_keys([]) == []


def test_other_arrow_producers() -> None:
    polars = pytest.importorskip("polars")
    out = name_keys(polars.Series(["ユーコ", None]))
    assert out.to_pylist() == ["ゆうこ", None]
    view = pa.array(["ケーコ", None], pa.string_view())
    assert name_keys(view).to_pylist() == ["けいこ", None]


@pytest.mark.parametrize("bad", [None, 1, b"abc", 1.5, ["ok"], object()])
def test_a_scalar_key_of_a_non_str_raises_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        name_key(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        address_key(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, 1, b"abc", "a str", ["ok", 3], [b"x"], pa.array([1, 2]),
                                 pa.chunked_array([[1]]), object()])
def test_column_keys_of_non_strings_raise_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        name_keys(bad)
    with pytest.raises(ValueError):
        address_keys(bad)


def test_a_bad_list_row_is_named() -> None:
    with pytest.raises(InvalidInputError) as e:
        name_keys(["ok", None, 3])
    assert [r.row for r in e.value.rows] == [2]


def test_invalid_utf8_is_refused_naming_the_row() -> None:
    arr = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(
        pa.array([0, 1, 2], pa.int32()).buffers()[1]), pa.py_buffer(b"a\xff")])
    with pytest.raises(InvalidInputError, match="value 1"):
        name_keys(arr)


# --------------------------------------------------------------------------
# The pure-Python baseline (benches/_normalize_py.py) gives the same keys


VARIANT_SPELLINGS = [
    "髙橋", "山﨑", "渡邊", "渡邉", "齋藤", "齊藤", "ｻｲﾄｳ", "サイトー", "ユーコ", "ｷｮｳｺ",
    "ジョン・スミス", "辻\U000e0100", "か゛", "ㇰ\u3099ー", "サヽキ", "ヷ", "ー", "",
    "1丁目2番3号", "一丁目二番地三", "1丁目2番地の3", "十日町一丁目", "１－２－３",
    "北海道名寄市風連町大字大町９４４番地の５", "2番三の4", "1-", "1-2-3-", "大大字字",
    "千代田区三番町5番地", "二千三百四十五番", "第一地割", "a\u0308¨",
]


def _corpus() -> list[str]:
    from jukicore.synth import synthesize_municipality
    res = synthesize_municipality(2000, seed=1).residents
    out: list[str] = []
    for col in ("family_name", "given_name", "address"):
        out += [v for v in res.column(col).to_pylist() if v is not None]
    return out + VARIANT_SPELLINGS


def test_the_python_baseline_gives_the_same_keys_on_a_corpus() -> None:
    corpus = _corpus()
    assert len(corpus) > 6000
    assert name_keys(corpus) == ref.name_keys(corpus)
    assert address_keys(corpus) == ref.address_keys(corpus)


TRICKY = "1２一十百〇丁目番地号町の ノ-ー－字大村ヵュン゛\u3099ｰユケコ髙邊・\u3000a"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=TRICKY, max_size=12), max_size=20))
def test_the_python_baseline_agrees_and_keys_are_idempotent(values: list[str]) -> None:
    names, addresses = name_keys(values), address_keys(values)
    assert names == ref.name_keys(values)
    assert addresses == ref.address_keys(values)
    assert name_keys(names) == names
    assert address_keys(addresses) == addresses
