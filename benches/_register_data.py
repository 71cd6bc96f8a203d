"""Data for the register benchmarks: a synthetic municipality of any size, fast.

Uses :func:`jukicore.synth.synthesize_municipality` when it is available and a
vectorized stand-in (same columns) otherwise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LG = "131016"
PREF = "東京都"
MUNI = "千代田区"


def _codes(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    rng = np.random.default_rng(seed)
    bodies = np.unique(rng.integers(0, 10**10, size=int(n * 1.01) + 16, dtype=np.int64))
    bodies = rng.permutation(bodies)[:n].astype(np.int64)
    w = np.array([5, 4, 3, 2, 7, 6, 5, 4, 3, 2], dtype=np.int64)
    digits = (bodies[:, None] // (10 ** np.arange(9, -1, -1, dtype=np.int64))) % 10
    r = (digits * w).sum(axis=1) % 11
    check = np.where(r <= 1, 0, 11 - r)
    return (bodies * 10 + check).astype(np.uint64)


def municipality(n: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(residents, households) with ~n residents, households of 1-4."""
    try:
        from jukicore.synth import synthesize_municipality

        m = synthesize_municipality(n, lg_code=LG, seed=seed, as_of=dt.date(2024, 6, 1))
        return m.residents, m.households
    except Exception:
        pass
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 3, 4], size=n, p=[0.38, 0.28, 0.18, 0.16])
    sizes = sizes[np.cumsum(sizes) <= n]
    nh = len(sizes)
    total = int(sizes.sum())
    hid = np.repeat(np.arange(1, nh + 1, dtype=np.int64), sizes)
    pos = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    rel = np.array(["世帯主", "妻", "子", "子"], dtype=object)[np.minimum(pos, 3)]
    fam = np.array(["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"], dtype=object)
    famk = np.array(["サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト",
                     "ナカムラ"], dtype=object)
    giv = np.array(["太郎", "花子", "一郎", "美咲", "健", "陽子", "翔", "愛"], dtype=object)
    givk = np.array(["タロウ", "ハナコ", "イチロウ", "ミサキ", "ケン", "ヨウコ", "ショウ", "アイ"],
                    dtype=object)
    fi = np.repeat(rng.integers(0, 8, nh), sizes)
    gi = rng.integers(0, 8, total)
    towns = np.array(["丸の内", "大手町", "神田", "有楽町", "霞が関", "永田町"], dtype=object)
    ti = np.repeat(rng.integers(0, 6, nh), sizes)
    chome = np.repeat(rng.integers(1, 9, nh), sizes).astype(str).astype(object)
    ban = np.repeat(rng.integers(1, 40, nh), sizes).astype(str).astype(object)
    go = np.repeat(rng.integers(1, 30, nh), sizes).astype(str).astype(object)
    street = chome + "丁目" + ban + "番" + go + "号"
    town = towns[ti]
    address = PREF + MUNI + town + street
    birth = np.datetime64("1940-01-01") + rng.integers(0, 30000, total).astype("timedelta64[D]")
    birth = np.where(pos >= 2, birth + np.timedelta64(9000, "D"), birth)
    birth = np.minimum(birth, np.datetime64("2023-12-31"))
    since = np.maximum(birth, np.datetime64("2000-01-01"))
    residents = pa.table({
        "person_id": pa.array(np.arange(1, total + 1, dtype=np.int64)),
        "family_name": pa.array(fam[fi], pa.string()),
        "given_name": pa.array(giv[gi], pa.string()),
        "family_name_kana": pa.array(famk[fi], pa.string()),
        "given_name_kana": pa.array(givk[gi], pa.string()),
        "birth_date": pa.array(birth.astype("datetime64[D]"), pa.date32()),
        "sex": pa.array((1 + (pos % 2)).astype(np.int8)),
        "household_id": pa.array(hid),
        "relationship": pa.array(rel, pa.string()),
        "domicile": pa.array(PREF + MUNI + town + ban + "番地", pa.string()),
        "domicile_head": pa.array(fam[fi] + "太郎", pa.string()),
        "postal_code": pa.array(np.full(total, "1000005", dtype=object), pa.string()),
        "prefecture": pa.array(np.full(total, PREF, dtype=object), pa.string()),
        "municipality": pa.array(np.full(total, MUNI, dtype=object), pa.string()),
        "lg_code": pa.array(np.full(total, LG, dtype=object), pa.string()),
        "town": pa.array(town, pa.string()),
        "street": pa.array(street, pa.string()),
        "building": pa.nulls(total, pa.string()),
        "address": pa.array(address, pa.string()),
        "resident_since": pa.array(since.astype("datetime64[D]"), pa.date32()),
        "address_since": pa.array(since.astype("datetime64[D]"), pa.date32()),
        "previous_address": pa.nulls(total, pa.string()),
        "move_in_notified": pa.nulls(total, pa.date32()),
    })
    heads = residents.filter(pc.equal(residents.column("relationship"), "世帯主"))
    households = pa.table({
        "household_id": heads.column("household_id"),
        "head_person_id": heads.column("person_id"),
        "address": heads.column("address"),
        "size": pa.array(sizes.astype(np.int32)),
    })
    return residents, households


#: Codes handed to residents by with_codes: block() never hands them out again (a code
#: block from the center holds only codes never issued before).
_ISSUED: list[np.ndarray[Any, np.dtype[np.uint64]]] = []


def with_codes(residents: pa.Table, seed: int = 7) -> pa.Table:
    codes = _codes(residents.num_rows, seed)
    _ISSUED.append(codes)
    return residents.append_column("resident_code", pa.array(codes, pa.uint64()))


class Block:
    """A code block for benchmarks (jukicore.ids.CodeBlock when available)."""

    def __init__(self, n: int, seed: int = 99) -> None:
        self.codes = _codes(n, seed)
        self.holder = LG
        self.block_id = f"bench-{seed}-{n}"
        self.parent_id: str | None = None


def block(n: int, seed: int = 99) -> Any:
    """A block of n fresh codes for LG, disjoint from every code with_codes gave out."""
    try:
        from jukicore.ids import CodeRegistry

        registry = CodeRegistry()
        for codes in _ISSUED:
            registry.add(codes)
        return registry.allocate_block(n, LG)
    except ImportError:
        b = Block(n, seed)
        if _ISSUED:
            b.codes = b.codes[~np.isin(b.codes, np.concatenate(_ISSUED))]
        return b
