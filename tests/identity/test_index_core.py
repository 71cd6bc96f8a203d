"""The identity lookup index of the Rust core (jukicore._jukicore.IdentityIndexCore)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jukicore._jukicore import IdentityIndexCore
from jukicore.errors import CorruptFileError, InvalidInputError

EPOCH = dt.date(1970, 1, 1)


def _rows(people: list[tuple[int, str, str, str, dt.date, int]]) -> dict[str, Any]:
    n = len(people)
    return {
        "code": pa.array([p[0] for p in people], pa.uint64()),
        "family_name": pa.array([p[1] for p in people], pa.string()),
        "given_name": pa.array([p[2] for p in people], pa.large_string()),
        "address": pa.array([p[3] for p in people], pa.string()),
        "lg_code": pa.array(["131016"] * n, pa.string()),
        "change_reason": pa.array(["出生"] * n, pa.string()),
        "birth_date": pa.array([p[4] for p in people], pa.date32()),
        "sex": pa.array([p[5] for p in people], pa.int8()),
        "status": pa.array([0] * n, pa.uint8()),
        "change_date": pa.array([p[4] for p in people], pa.date32()),
    }


PEOPLE = [
    (12345678901, "山田", "太郎", "東京都千代田区1-1", dt.date(1980, 1, 2), 1),
    (23456789012, "山田", "太郎", "東京都千代田区2-2", dt.date(1980, 1, 2), 1),
    (34567890123, "鈴木", "花子", "大阪府大阪市北区3-3", dt.date(1990, 5, 6), 2),
]


@pytest.fixture
def index() -> IdentityIndexCore:
    return IdentityIndexCore.build(
        **_rows(PEOPLE),
        retired_old=pa.array([11111111111], pa.uint64()),
        retired_new=pa.array([34567890123], pa.uint64()),
        retired_on=pa.array([dt.date(2020, 1, 1)], pa.date32()),
        store_id="center",
        mark=5,
    )


def test_lookup_answers_found_retired_and_not_found(index: IdentityIndexCore) -> None:
    assert (len(index), index.mark, index.store_id) == (3, 5, "center")
    assert index.memory_bytes() > 0
    batch = index.lookup(pa.array([23456789012, 11111111111, 99], pa.uint64()))
    assert isinstance(batch, pa.RecordBatch)
    rows = batch.to_pylist()
    assert [r["hit"] for r in rows] == ["found", "retired", "not_found"]
    assert rows[0]["address"] == "東京都千代田区2-2"
    assert rows[0]["birth_date"] == dt.date(1980, 1, 2)
    assert (rows[0]["sex"], rows[0]["status"], rows[0]["lg_code"]) == (1, 0, "131016")
    assert rows[1]["new_code"] == 34567890123
    assert rows[1]["retired_on"] == dt.date(2020, 1, 1)
    assert rows[1]["family_name"] is None and rows[2]["family_name"] is None
    assert batch.column("code").to_pylist() == [23456789012, 11111111111, 99]


def test_a_scalar_code_is_answered_in_kind(index: IdentityIndexCore) -> None:
    one = index.lookup(23456789012)
    assert one["hit"] == "found"
    assert (one["family_name"], one["given_name"], one["address"]) == (
        "山田", "太郎", "東京都千代田区2-2")
    assert (one["birth_date"], one["sex"], one["status"]) == (dt.date(1980, 1, 2), 1, 0)
    assert one["new_code"] is None
    assert index.lookup("11111111111") | {} == {
        "hit": "retired", "code": 11111111111, "family_name": None, "given_name": None,
        "birth_date": None, "sex": None, "address": None, "lg_code": None, "status": None,
        "change_date": None, "change_reason": None, "new_code": 34567890123,
        "retired_on": dt.date(2020, 1, 1)}
    assert index.lookup(5)["hit"] == "not_found"
    with pytest.raises(InvalidInputError):
        index.lookup("12-34")


def test_search_and_search_many(index: IdentityIndexCore) -> None:
    both = index.search("山田", "太郎", dt.date(1980, 1, 2))
    assert sorted(both.column("code").to_pylist()) == [12345678901, 23456789012]
    one = index.search("山 田", "太郎", (dt.date(1980, 1, 2) - EPOCH).days,
                       sex=1, address="東京都千代田区2-2")
    assert one.column("code").to_pylist() == [23456789012]
    assert index.search("山田", "太郎", dt.date(1980, 1, 2), sex=2).num_rows == 0
    many = index.search_many(
        pa.array(["山田", "鈴木", "佐藤"]),
        pa.array(["太郎", "花子", "一郎"]),
        pa.array([dt.date(1980, 1, 2), dt.date(1990, 5, 6), dt.date(2000, 1, 1)], pa.date32()),
        sex=pa.array([None, 2, None], pa.int8()),
        address=pa.array([None, None, None], pa.string()),
    )
    assert many.column("status").to_pylist() == ["ambiguous", "match", "not_found"]
    codes = many.column("codes").to_pylist()
    assert sorted(codes[0]) == [12345678901, 23456789012]
    assert codes[1:] == [[34567890123], []]


def test_apply_delta_and_save_fold_the_overlay(index: IdentityIndexCore, tmp_path: Path) -> None:
    moved = (12345678901, "山田", "太郎", "北海道札幌市1-1", dt.date(1980, 1, 2), 1)
    born = (45678901234, "佐藤", "一郎", "沖縄県那覇市", dt.date(2024, 4, 1), 1)
    index.apply_delta(**_rows([moved, born]), removed=pa.array([34567890123], pa.uint64()),
                      mark=6)
    assert index.overlay_len() >= 3
    assert (len(index), index.mark) == (3, 6)
    hits = index.lookup(pa.array([12345678901, 45678901234, 34567890123], pa.uint64()))
    assert hits.column("hit").to_pylist() == ["found", "found", "not_found"]
    assert hits.column("address").to_pylist()[0] == "北海道札幌市1-1"
    old = index.search("山田", "太郎", dt.date(1980, 1, 2), address="東京都千代田区1-1")
    assert old.num_rows == 0
    path = tmp_path / "identity.idx"
    index.save(path)
    assert index.overlay_len() == 0
    reopened = IdentityIndexCore.open(path)
    assert (len(reopened), reopened.mark, reopened.store_id) == (3, 6, "center")
    again = reopened.lookup(pa.array([12345678901, 45678901234, 34567890123], pa.uint64()))
    assert again.equals(hits)


def test_a_corrupted_file_raises_corrupt_file_error(
    index: IdentityIndexCore, tmp_path: Path
) -> None:
    path = tmp_path / "identity.idx"
    index.save(path)
    good = path.read_bytes()
    for at in (0, 20, len(good) // 2, len(good) - 1):
        bad = bytearray(good)
        bad[at] ^= 0x01
        path.write_bytes(bytes(bad))
        with pytest.raises(CorruptFileError):
            IdentityIndexCore.open(path)
    path.write_bytes(good[: len(good) // 3])
    with pytest.raises(CorruptFileError, match="truncated"):
        IdentityIndexCore.open(path)


def test_bad_input_is_refused_with_the_row() -> None:
    rows = _rows(PEOPLE)
    rows["code"] = pa.array([1, 2, 1], pa.uint64())
    with pytest.raises(InvalidInputError) as e:
        IdentityIndexCore.build(**rows, store_id="s", mark=0)
    assert [r.row for r in e.value.rows] == [2]
    rows = _rows(PEOPLE)
    rows["sex"] = pa.array([1, 2, 3], pa.int8())
    with pytest.raises(InvalidInputError):
        IdentityIndexCore.build(**rows, store_id="s", mark=0)
    rows = _rows(PEOPLE)
    rows["family_name"] = pa.array(["a", None, "b"], pa.string())
    with pytest.raises(InvalidInputError, match="null"):
        IdentityIndexCore.build(**rows, store_id="s", mark=0)
    rows = _rows(PEOPLE)
    rows["status"] = pa.array(["resident"] * 3)
    with pytest.raises(InvalidInputError, match="uint8"):
        IdentityIndexCore.build(**rows, store_id="s", mark=0)


def test_an_empty_index() -> None:
    empty = IdentityIndexCore.build(**_rows([]), store_id="s", mark=0)
    assert len(empty) == 0
    out = empty.lookup(pa.array([1], pa.uint64()))
    assert out.column("hit").to_pylist() == ["not_found"]


def test_lookup_texts_share_the_index_dictionaries_and_outlive_it(
        index: IdentityIndexCore, tmp_path: Path) -> None:
    codes = pa.array([34567890123, 99, 12345678901], pa.uint64())
    batch = index.lookup(codes)
    for name in ("family_name", "given_name", "lg_code", "change_reason"):
        assert pa.types.is_dictionary(batch.schema.field(name).type), name
    assert batch.schema.field("address").type == pa.string()
    batch.validate(full=True)
    expected = [["鈴木", None, "山田"], ["花子", None, "太郎"]]
    assert [batch.column(c).to_pylist() for c in ("family_name", "given_name")] == expected
    # the answers stay valid when the index changes (the overlay's new entries
    # copied), is saved (its vectors replaced) or is gone
    born = (45678901234, "新田", "一郎", "沖縄県那覇市", dt.date(2024, 4, 1), 1)
    index.apply_delta(**_rows([born]), mark=6)
    fresh = index.lookup(pa.array([45678901234, 34567890123], pa.uint64()))
    fresh.validate(full=True)
    assert fresh.column("family_name").to_pylist() == ["新田", "鈴木"]
    index.save(tmp_path / "i.idx")
    opened = IdentityIndexCore.open(tmp_path / "i.idx")
    mapped = opened.lookup(codes)
    del index, opened
    import gc

    gc.collect()
    batch.validate(full=True)
    mapped.validate(full=True)
    assert [mapped.column(c).to_pylist() for c in ("family_name", "given_name")] == expected
    assert fresh.column("given_name").to_pylist() == ["一郎", "花子"]


def test_a_text_column_past_what_string_holds_becomes_one_large_string_array() -> None:
    """The snapshot's chunks are made one array per column; the whole country's addresses
    pass the 2 GiB a ``string`` array holds, so such a column becomes ``large_string``
    (shown with a small limit), and the core builds from it."""
    from jukicore.identity.index import whole

    col = pa.chunked_array([pa.array(["東京都1-2", "大阪府3"]), pa.array(["京都府4-5-6"])])
    big = whole(col, limit=16)
    assert big.type == pa.large_string() and big.to_pylist() == col.to_pylist()
    small = whole(col)
    assert small.type == pa.string() and small.to_pylist() == col.to_pylist()
    codes = pa.array([10000000009, 10000000010, 10000000021], pa.uint64())
    index = IdentityIndexCore.build(
        code=codes, family_name=pa.array(["山田"] * 3), given_name=pa.array(["花子"] * 3),
        address=big, lg_code=pa.array(["131016"] * 3), change_reason=pa.array(["load"] * 3),
        birth_date=pa.array([0, 1, 2], pa.int32()), sex=pa.array([2, 2, 2], pa.int8()),
        status=pa.array([0, 0, 0], pa.uint8()), change_date=pa.array([0, 0, 0], pa.int32()),
        store_id="t", mark=0)
    assert index.lookup(codes).column("address").to_pylist() == col.to_pylist()


def test_an_index_built_from_pieces_is_the_index_built_at_once(
        index: IdentityIndexCore, tmp_path: Path) -> None:
    """The same rows in pieces (one of them empty) give the same file as one build; a
    piece that is not the ten columns, or with a bad row (numbered from the first row of
    all pieces), refuses the build."""
    cols = _rows(PEOPLE)
    order = list(cols)
    retired = {"retired_old": pa.array([11111111111], pa.uint64()),
               "retired_new": pa.array([34567890123], pa.uint64()),
               "retired_on": pa.array([dt.date(2020, 1, 1)], pa.date32())}

    def pieces(cuts: list[tuple[int, int]]) -> list[tuple[Any, ...]]:
        return [tuple(cols[c].slice(a, b - a) for c in order) for a, b in cuts]

    built = IdentityIndexCore.build_from_pieces(
        iter(pieces([(0, 1), (1, 1), (1, 3)])), **retired, store_id="center", mark=5)
    index.save(tmp_path / "whole")
    built.save(tmp_path / "pieces")
    assert (tmp_path / "whole").read_bytes() == (tmp_path / "pieces").read_bytes()
    with pytest.raises(InvalidInputError, match="ten columns"):
        IdentityIndexCore.build_from_pieces([pieces([(0, 3)])[0][:9]], store_id="c", mark=0)
    bad = pieces([(0, 2), (2, 3)])
    bad[1] = (*bad[1][:7], pa.array([7], pa.int8()), *bad[1][8:])  # sex 7, row 2 of all
    with pytest.raises(InvalidInputError) as err:
        IdentityIndexCore.build_from_pieces(bad, store_id="c", mark=0)
    assert err.value.rows[0].row == 2  # type: ignore[attr-defined]
