"""Turn a demographic skeleton into resident records: names, addresses, dates, domiciles."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from . import _population as P
from ._sources import ERA_BOUNDS, Municipal, NamePools, PlacePool

__all__ = ["HOUSEHOLDS_SCHEMA", "RESIDENTS_SCHEMA", "build"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _field(name: str, type_: pa.DataType, *, nullable: bool) -> pa.Field[Any]:
    return pa.field(name, type_, nullable=nullable)


RESIDENTS_SCHEMA = pa.schema(
    [
        _field("person_id", pa.int64(), nullable=False),
        _field("family_name", pa.string(), nullable=False),
        _field("given_name", pa.string(), nullable=False),
        _field("family_name_kana", pa.string(), nullable=False),
        _field("given_name_kana", pa.string(), nullable=False),
        _field("birth_date", pa.date32(), nullable=False),
        _field("sex", pa.int8(), nullable=False),
        _field("household_id", pa.int64(), nullable=False),
        _field("relationship", pa.string(), nullable=False),
        _field("domicile", pa.string(), nullable=False),
        _field("domicile_head", pa.string(), nullable=False),
        _field("postal_code", pa.string(), nullable=False),
        _field("prefecture", pa.string(), nullable=False),
        _field("municipality", pa.string(), nullable=False),
        _field("lg_code", pa.string(), nullable=False),
        _field("town", pa.string(), nullable=False),
        _field("street", pa.string(), nullable=False),
        _field("building", pa.string(), nullable=True),
        _field("address", pa.string(), nullable=False),
        _field("resident_since", pa.date32(), nullable=False),
        _field("address_since", pa.date32(), nullable=False),
        _field("previous_address", pa.string(), nullable=True),
        _field("move_in_notified", pa.date32(), nullable=True),
    ]
)

HOUSEHOLDS_SCHEMA = pa.schema(
    [
        _field("household_id", pa.int64(), nullable=False),
        _field("head_person_id", pa.int64(), nullable=False),
        _field("address", pa.string(), nullable=False),
        _field("size", pa.int32(), nullable=False),
    ]
)

_EPOCH = dt.date(1970, 1, 1)
_YEAR = 365.2425

# Relationship labels (続柄) as written on a 住民票.
_LABELS = (
    "世帯主",
    "妻",
    "夫",
    "子",
    "子の妻",
    "子の夫",
    "孫",
    "父",
    "母",
    "妻の父",
    "妻の母",
    "夫の父",
    "夫の母",
    "兄",
    "姉",
    "弟",
    "妹",
    "同居人",
)
_L = {label: i for i, label in enumerate(_LABELS)}

_BUILDING_PREFIX = (
    "メゾン",
    "コーポ",
    "ハイツ",
    "パレス",
    "レジデンス",
    "グラン",
    "ヴィラ",
    "サンハイツ",
    "ドミール",
    "シャトー",
    "ハイム",
    "カーサ",
)
_BUILDING_STEM = (
    "桜",
    "若葉",
    "緑",
    "青葉",
    "ひまわり",
    "松風",
    "旭",
    "朝日",
    "富士見",
    "日の出",
    "白鳥",
    "光",
    "泉",
    "藤",
    "ポラリス",
    "エクセル",
)

# Household move kinds.
_TENNYU, _TENKYO, _NATIVE = 0, 1, 2


def _s(values: npt.NDArray[np.int64]) -> pa.Array[Any]:
    return cast("pa.Array[Any]", pc.cast(pa.array(values), pa.string()))


def _take(pool: tuple[str, ...] | list[str], idx: npt.NDArray[np.int64]) -> pa.Array[Any]:
    return pa.array(pool, type=pa.string()).take(idx)


def _if(mask: Any, yes: Any, no: Any) -> pa.Array[Any]:
    """Element-wise ``yes if mask else no`` (mask: a numpy bool array)."""
    return cast("pa.Array[Any]", pc.if_else(pa.array(mask, type=pa.bool_()), yes, no))


def _join(*parts: Any) -> pa.Array[Any]:
    return cast("pa.Array[Any]", pc.binary_join_element_wise(*parts, ""))


def _anchor_days(as_of: dt.date) -> IntArray:
    """Days since 1970 of the as_of anniversary ``a`` years back, a = 0..MAX_AGE+1."""
    out = np.empty(P.MAX_AGE + 2, dtype=np.int64)
    for a in range(P.MAX_AGE + 2):
        year = as_of.year - a
        day = as_of.day
        if as_of.month == 2 and day == 29:
            day = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
        out[a] = (dt.date(year, as_of.month, day) - _EPOCH).days
    return out


def _year_days(years: npt.NDArray[np.float64] | IntArray) -> IntArray:
    return np.rint(np.asarray(years, dtype=np.float64) * _YEAR).astype(np.int64)


def _segment_first(group: IntArray, n_groups: int) -> IntArray:
    """Index of the first element of each group in a group-sorted array."""
    return np.searchsorted(group, np.arange(n_groups))


def _street(
    rng: np.random.Generator, chome: BoolArray, n_chome: IntArray, domicile: bool
) -> pa.Array[Any]:
    """丁目・番地・号 for each row; ``n_chome`` is the number of 丁目 of its town."""
    n = chome.size
    c = 1 + np.floor(rng.random(n) * n_chome).astype(np.int64)
    ban = rng.integers(1, 31, n)
    go = rng.integers(1, 31, n)
    banchi = np.minimum(1 + rng.geometric(1 / 600, n), 4999)
    sub = rng.integers(1, 21, n)
    has_sub = rng.random(n) < 0.3
    if domicile:
        with_chome = _join(_s(c), "丁目", _s(ban), "番地")
        plain = _join(_s(banchi), "番地")
    else:
        with_chome = _join(_s(c), "丁目", _s(ban), "番", _s(go), "号")
        plain = _if(has_sub, _join(_s(banchi), "番地", _s(sub)), _join(_s(banchi), "番地"))
    return _if(chome, with_chome, plain)


def _elsewhere(
    rng: np.random.Generator,
    n: int,
    *,
    places: PlacePool,
    muni: Municipal,
    p_own: float,
    p_same_pref: float,
    domicile: bool,
) -> pa.Array[Any]:
    """Full address texts: in ``muni`` (p_own), elsewhere in its prefecture, or anywhere else."""
    jis = int(muni.jis)
    pref = (
        places.prefectures.index(muni.prefecture) if muni.prefecture in places.prefectures else -1
    )
    same = np.flatnonzero((places.pref_index == pref) & (places.jis != jis))
    other = np.flatnonzero(places.jis != jis)
    if same.size == 0:
        same = other
    u = rng.random(n)
    pick_same = same[rng.integers(0, same.size, n)]
    pick_other = other[rng.integers(0, other.size, n)]
    idx = np.where(u < p_own + p_same_pref, pick_same, pick_other)
    text = _take(places.text, idx)
    chome = places.chome[idx]
    own = u < p_own
    if own.any():
        t = rng.integers(0, len(muni.towns), n)
        own_text = _join(muni.prefecture + muni.name, _take(muni.towns, t))
        text = _if(own, own_text, text)
        chome = np.where(own, muni.chome[t], chome)
    n_chome = rng.integers(1, 9, n)
    return _join(text, _street(rng, chome, n_chome, domicile))


def build(
    sk: P.Skeleton,
    *,
    muni: Municipal,
    names: NamePools,
    places: PlacePool,
    rng: np.random.Generator,
    as_of: dt.date,
) -> tuple[pa.Table, pa.Table]:
    n = sk.age.size
    n_hh = sk.htype.size
    hh = sk.household.astype(np.int64)
    role = sk.role.astype(np.int64)
    sex = sk.sex.astype(np.int64)
    age = sk.age.astype(np.int64)
    htype = sk.htype.astype(np.int64)
    first = _segment_first(hh, n_hh)  # the head of each household
    head_sex = sex[first]
    pos = np.arange(n) - first[hh]
    today = (as_of - _EPOCH).days

    # ---- birth dates: exact age on as_of ---------------------------------------------
    anchor = _anchor_days(as_of)
    span = anchor[age] - anchor[age + 1]
    birth = anchor[age] - np.floor(rng.random(n) * span).astype(np.int64)
    birth_year = birth.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970

    # ---- relationships ----------------------------------------------------------------
    female = sex == 2
    rel = np.full(n, _L["世帯主"])
    rel[role == P.R_SPOUSE] = np.where(female, _L["妻"], _L["夫"])[role == P.R_SPOUSE]
    rel[role == P.R_CHILD] = _L["子"]
    m = role == P.R_CHILD_SPOUSE
    rel[m] = np.where(female, _L["子の妻"], _L["子の夫"])[m]
    rel[role == P.R_GRANDCHILD] = _L["孫"]
    m = role == P.R_PARENT
    rel[m] = np.where(female, _L["母"], _L["父"])[m]
    m = role == P.R_SPOUSE_PARENT
    by_head = np.where(
        head_sex[hh] == 1,
        np.where(female, _L["妻の母"], _L["妻の父"]),
        np.where(female, _L["夫の母"], _L["夫の父"]),
    )
    rel[m] = by_head[m]
    m = role == P.R_SIBLING
    older = birth < birth[first[hh]]
    sib = np.where(
        older, np.where(female, _L["姉"], _L["兄"]), np.where(female, _L["妹"], _L["弟"])
    )
    rel[m] = sib[m]
    rel[role == P.R_LODGER] = _L["同居人"]

    # ---- family names -----------------------------------------------------------------
    # 0 household, 1 married daughter's family, 2 spouse's parents, 3 father's name, 4 lodger
    own_family = sk.married_daughter & (rng.random(n_hh) < 0.9)
    fathers_name = (htype == P.SINGLE_PARENT) & (rng.random(n_hh) < 0.1)
    code = np.zeros(n, dtype=np.int64)
    in_b = own_family[hh] & np.isin(role, (P.R_CHILD, P.R_CHILD_SPOUSE, P.R_GRANDCHILD))
    code[in_b] = 1
    code[role == P.R_SPOUSE_PARENT] = 2
    code[fathers_name[hh] & (role == P.R_CHILD)] = 3
    code[role == P.R_LODGER] = 4
    sgroups, sinv = np.unique(hh * 8 + code, return_inverse=True)
    fam_idx = rng.choice(len(names.family_kanji), size=sgroups.size, p=names.family_p)[sinv]
    family = _take(names.family_kanji, fam_idx)
    family_kana = _take(names.family_kana, fam_idx)

    # ---- given names ------------------------------------------------------------------
    era = np.searchsorted(np.array(ERA_BOUNDS), birth_year, side="left")
    n_male = len(names.male.kanji)
    given_idx = np.empty(n, dtype=np.int64)
    for s, pool, offset in ((1, names.male, 0), (2, names.female, n_male)):
        for e in range(len(ERA_BOUNDS) + 1):
            sel = np.flatnonzero((sex == s) & (era == e))
            if sel.size:
                given_idx[sel] = offset + rng.choice(len(pool.kanji), sel.size, p=pool.weights[e])
    given_pool = names.male.kanji + names.female.kanji
    given = _take(given_pool, given_idx)
    given_kana = _take(names.male.kana + names.female.kana, given_idx)
    full_name = _join(family, given)

    # ---- addresses --------------------------------------------------------------------
    n_towns = len(muni.towns)
    town_w = rng.gamma(0.8, 1.0, n_towns)
    town_chome_count = rng.integers(1, 9, n_towns)
    town = rng.choice(n_towns, n_hh, p=town_w / town_w.sum())
    street = _street(rng, muni.chome[town], town_chome_count[town], domicile=False)
    in_building = rng.random(n_hh) < np.where(muni.chome[town], 0.45, 0.2)
    floor = np.minimum(rng.geometric(0.4, n_hh), 30)
    room = floor * 100 + rng.integers(1, 11, n_hh)
    bname = _join(
        _take(_BUILDING_PREFIX, rng.integers(0, len(_BUILDING_PREFIX), n_hh)),
        _take(_BUILDING_STEM, rng.integers(0, len(_BUILDING_STEM), n_hh)),
        _s(room),
        "号",
    )
    building = _if(in_building, bname, pa.scalar(None, pa.string()))
    town_text = _take(muni.towns, town)
    base_addr = _join(muni.prefecture + muni.name, town_text, street)
    hh_address = _if(in_building, _join(base_addr, " ", bname), base_addr)
    postal = _take(muni.postal_codes, town)

    # ---- residence dates --------------------------------------------------------------
    kind = rng.choice(3, n_hh, p=(0.55, 0.30, 0.15))
    native_ok = np.isin(
        htype, (P.SINGLE, P.COUPLE, P.COUPLE_KIDS, P.SINGLE_PARENT, P.THREE_GEN_OLD)
    )
    kind[(kind == _NATIVE) & ~native_ok] = _TENKYO
    head_birth = birth[first]
    adult_at = head_birth + _year_days(np.full(n_hh, 18.0))
    cap = np.maximum(today - adult_at, 0).astype(np.float64)
    mean = 12.0 * _YEAR
    dur = -mean * np.log1p(-rng.random(n_hh) * (1.0 - np.exp(-cap / mean)))
    arrival_hh = np.where(kind == _NATIVE, head_birth, today - np.rint(dur).astype(np.int64))
    arrival_hh = np.clip(arrival_hh, head_birth, today)

    base = arrival_hh[hh]
    later = base + np.floor(rng.random(n) * (today - base + 1)).astype(np.int64)
    join = base.copy()
    # married-in spouses of a native head; a child-in-law; parents, siblings, lodgers joining
    big = np.iinfo(np.int64).max
    eldest_child = np.full(n_hh, big)
    np.minimum.at(eldest_child, hh[role == P.R_CHILD], birth[role == P.R_CHILD])
    eldest_grand = np.full(n_hh, big)
    np.minimum.at(eldest_grand, hh[role == P.R_GRANDCHILD], birth[role == P.R_GRANDCHILD])
    since_18 = birth + _year_days(np.full(n, 18.0))
    marriage = since_18 + np.floor(rng.random(n) * np.maximum(today - since_18, 0)).astype(np.int64)
    m = (role == P.R_SPOUSE) & (kind[hh] == _NATIVE)
    join[m] = np.maximum(base, np.minimum(marriage, eldest_child[hh]))[m]
    m = role == P.R_CHILD_SPOUSE
    join[m] = np.maximum(base, np.minimum(marriage, eldest_grand[hh]))[m]
    late = np.isin(role, (P.R_PARENT, P.R_SPOUSE_PARENT, P.R_SIBLING, P.R_LODGER)) & (
        rng.random(n) < np.where(role == P.R_LODGER, 0.5, 0.35)
    )
    join[late] = later[late]
    join = np.clip(join, birth, today)
    born_here = join <= birth

    earlier = adult_at + np.floor(rng.random(n_hh) * np.maximum(arrival_hh - adult_at, 0)).astype(
        np.int64
    )
    earlier = np.where(rng.random(n_hh) < 0.35, head_birth, np.minimum(earlier, arrival_hh))
    tenkyo = ~born_here & (kind[hh] == _TENKYO) & (join == base)
    tennyu = ~born_here & ~tenkyo

    address_since = np.where(born_here, birth, join)
    resident_since = np.where(tenkyo, np.maximum(birth, earlier[hh]), address_since)
    notified = join + np.minimum(rng.integers(0, 15, n), today - join)

    # previous addresses: one per household moving together, one per late joiner
    hh_prev = _elsewhere(
        rng, n_hh, places=places, muni=muni, p_own=0.0, p_same_pref=0.55, domicile=False
    )
    own_prev = _elsewhere(
        rng, n, places=places, muni=muni, p_own=0.0, p_same_pref=0.55, domicile=False
    )
    with_household = join == base
    prev_idx = np.where(with_household, hh, n_hh + np.arange(n))
    prev_all = pa.concat_arrays([hh_prev, own_prev]).take(
        pa.array(prev_idx, type=pa.int64(), mask=~tennyu)
    )

    # ---- domicile (本籍) and its head (筆頭者) ---------------------------------------
    # koseki: 0 head's, 1 married child's, 2 parents', 3 absent father's, 4+ one's own
    kos = np.zeros(n, dtype=np.int64)
    kos[htype[hh] == P.THREE_GEN_OLD] = np.where(
        role == P.R_HEAD, 0, np.where(role == P.R_SPOUSE, 0, 1)
    )[htype[hh] == P.THREE_GEN_OLD]
    kos[np.isin(role, (P.R_PARENT, P.R_SPOUSE_PARENT))] = 2
    kos[code == 3] = 3
    head_in_parents = ((htype == P.HEAD_PARENT) & (rng.random(n_hh) < 0.7)) | (
        (htype == P.SIBLINGS) & (rng.random(n_hh) < 0.6)
    )
    kos[(role == P.R_HEAD) & head_in_parents[hh]] = 2
    own_k = np.isin(role, (P.R_SIBLING, P.R_LODGER))
    kos[own_k] = 4 + pos[own_k]
    kos[own_k & head_in_parents[hh] & (role == P.R_SIBLING)] = 2
    key = hh * 64 + kos
    kgroups, kinv = np.unique(key, return_inverse=True)
    n_k = kgroups.size
    # the oldest member decides
    order = np.lexsort((-age, kinv))
    oldest = order[_segment_first(kinv[order], n_k)]
    k_kind = kgroups % 64
    k_hh = kgroups // 64
    # present 筆頭者 candidates
    cand = np.full(n_k, -1, dtype=np.int64)
    has_spouse = np.zeros(n_hh, dtype=np.bool_)
    has_spouse[hh[role == P.R_SPOUSE]] = True
    male_partner = (kos == 0) & np.isin(role, (P.R_HEAD, P.R_SPOUSE)) & (sex == 1) & has_spouse[hh]
    cand[kinv[male_partner]] = np.flatnonzero(male_partner)
    son_in_law_name = own_family[hh] & (role == P.R_CHILD_SPOUSE)
    b_head = (kos == 1) & np.where(own_family[hh], son_in_law_name, role == P.R_CHILD)
    cand[kinv[b_head]] = np.flatnonzero(b_head)
    father = (kos == 2) & np.isin(role, (P.R_PARENT, P.R_SPOUSE_PARENT)) & (sex == 1)
    cand[kinv[father]] = np.flatnonzero(father)
    # otherwise: an absent (often late) husband or father, or the oldest member
    o_sex, o_age, o_type = sex[oldest], age[oldest], htype[k_hh]
    p_absent = np.select(
        [
            k_kind == 3,
            k_kind == 2,
            k_kind >= 4,
            (o_sex == 2) & (o_age >= 60),
            o_age < 35,
            o_type == P.LODGER,
        ],
        [1.0, 0.85, 0.4, 0.85, 0.6, 0.3],
        0.0,
    )
    p_absent = np.where(
        (k_kind == 0) & (o_type == P.SINGLE_PARENT) & (o_sex == 2) & (o_age < 60), 0.15, p_absent
    )
    absent = (cand < 0) & (rng.random(n_k) < p_absent)
    husband = absent & (k_kind == 0) & (o_sex == 2) & (o_age >= 60)
    absent_year = birth_year[oldest] - np.where(husband, 2, 30)
    a_era = np.searchsorted(np.array(ERA_BOUNDS), absent_year, side="left")
    absent_given = np.zeros(n_k, dtype=np.int64)
    for e in range(len(ERA_BOUNDS) + 1):
        sel = np.flatnonzero(absent & (a_era == e))
        if sel.size:
            absent_given[sel] = rng.choice(n_male, sel.size, p=names.male.weights[e])
    k_family = fam_idx[oldest]
    absent_name = _join(_take(names.family_kanji, k_family), _take(names.male.kanji, absent_given))
    present = np.where(cand >= 0, cand, oldest)
    head_name = _if(absent, absent_name, full_name.take(present))
    domicile_head = head_name.take(kinv)
    domicile = _elsewhere(
        rng, n_k, places=places, muni=muni, p_own=0.35, p_same_pref=0.35, domicile=True
    ).take(kinv)

    # ---- tables -----------------------------------------------------------------------
    hh_idx = hh
    sizes = np.bincount(hh, minlength=n_hh)

    def date(days: IntArray, mask: BoolArray | None = None) -> pa.Array[Any]:
        return pa.array(days.astype("datetime64[D]"), type=pa.date32(), mask=mask)

    residents = pa.table(
        {
            "person_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "family_name": family,
            "given_name": given,
            "family_name_kana": family_kana,
            "given_name_kana": given_kana,
            "birth_date": date(birth),
            "sex": pa.array(sex.astype(np.int8)),
            "household_id": pa.array(hh + 1),
            "relationship": _take(_LABELS, rel),
            "domicile": domicile,
            "domicile_head": domicile_head,
            "postal_code": postal.take(hh_idx),
            "prefecture": pa.array(np.full(n, muni.prefecture), type=pa.string()),
            "municipality": pa.array(np.full(n, muni.name), type=pa.string()),
            "lg_code": pa.array(np.full(n, muni.lg_code), type=pa.string()),
            "town": town_text.take(hh_idx),
            "street": street.take(hh_idx),
            "building": building.take(hh_idx),
            "address": hh_address.take(hh_idx),
            "resident_since": date(resident_since),
            "address_since": date(address_since),
            "previous_address": prev_all,
            "move_in_notified": date(notified, mask=~tennyu),
        },
        schema=RESIDENTS_SCHEMA,
    )
    households = pa.table(
        {
            "household_id": pa.array(np.arange(1, n_hh + 1, dtype=np.int64)),
            "head_person_id": pa.array(first + 1),
            "address": hh_address,
            "size": pa.array(sizes.astype(np.int32)),
        },
        schema=HOUSEHOLDS_SCHEMA,
    )
    return residents, households
