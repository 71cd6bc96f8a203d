"""Households, ages and sexes: the demographic skeleton of a synthetic municipality.

Everything is vectorized over households or people with numpy; the only Python
loops run over household types or roles (a handful of iterations).

Model (Japan, about 2023):

* Household types after the census shares: one person ~38%, couple ~20%, couple
  with children ~25%, single parent ~9%, three generations, a head living with a
  parent, siblings, non-relatives.
* Ages: households with children are built from the youngest child up (its age is
  drawn from the population pyramid times the chance of still living with the
  parents), then elder siblings, the mother (18 to 45 years older than her eldest
  child), the father; heads of adult-only households are drawn from the pyramid
  times an age profile of that household type. The overall result matches the
  pyramid (29% aged 65+, 11.5% under 15, 94.5 men per 100 women) closely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_AGE",
    "PYRAMID",
    "ROLE",
    "Skeleton",
    "skeleton",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_AGE = 105

# Population by 5-year age group, thousands (Japan, about 2023): male, female.
_GROUPS_MALE = (
    2100,
    2490,
    2730,
    2820,
    3160,
    3260,
    3300,
    3650,
    4030,
    4700,
    4750,
    4100,
    3700,
    3700,
    4300,
    3450,
    2350,
    1350,
    480,
    90,
    10,
)
_GROUPS_FEMALE = (
    2000,
    2370,
    2600,
    2680,
    3030,
    3130,
    3190,
    3550,
    3930,
    4600,
    4680,
    4100,
    3800,
    3930,
    4800,
    4150,
    3200,
    2300,
    1200,
    370,
    75,
)
_BIRTHS_RECENT = (727, 770, 812, 841, 865)  # births by year, ages 0..4 (thousands)


def _single_year(groups: tuple[int, ...]) -> FloatArray:
    out = np.zeros(MAX_AGE + 1)
    for g, total in enumerate(groups[:20]):
        out[5 * g : 5 * g + 5] = total / 5.0
    births = np.array(_BIRTHS_RECENT, dtype=np.float64)
    out[:5] = groups[0] * births / births.sum()
    tail = 0.6 ** np.arange(MAX_AGE - 99)
    out[100:] = groups[20] * tail / tail.sum()
    return out


PYRAMID_MALE = _single_year(_GROUPS_MALE)
PYRAMID_FEMALE = _single_year(_GROUPS_FEMALE)
PYRAMID = PYRAMID_MALE + PYRAMID_FEMALE
_AGES = np.arange(MAX_AGE + 1, dtype=np.float64)


def _profile(knots: tuple[float, ...], values: tuple[float, ...]) -> FloatArray:
    """Pyramid times a piecewise-linear age profile (zero outside the knots), normalized."""
    prof = np.interp(_AGES, knots, values, left=0.0, right=0.0)
    w = PYRAMID * prof
    return np.asarray(w / w.sum(), dtype=np.float64)


# Household types.
(
    SINGLE,
    COUPLE,
    COUPLE_KIDS,
    SINGLE_PARENT,
    THREE_GEN_OLD,
    THREE_GEN_MID,
    HEAD_PARENT,
    SIBLINGS,
    LODGER,
) = range(9)
_TYPE_P = np.array([0.380, 0.200, 0.245, 0.090, 0.022, 0.023, 0.025, 0.009, 0.006])
_TYPE_P = _TYPE_P / _TYPE_P.sum()

# Roles, in the order members are listed on a household's 住民票.
ROLE = {
    "head": 0,
    "spouse": 1,
    "child": 2,
    "child_spouse": 3,
    "grandchild": 4,
    "parent": 5,
    "spouse_parent": 6,
    "sibling": 7,
    "lodger": 8,
}
(
    R_HEAD,
    R_SPOUSE,
    R_CHILD,
    R_CHILD_SPOUSE,
    R_GRANDCHILD,
    R_PARENT,
    R_SPOUSE_PARENT,
    R_SIBLING,
    R_LODGER,
) = range(9)

# Age profiles.
_AGE_SINGLE = _profile(
    (18, 20, 23, 27, 32, 40, 50, 60, 70, 80, 90, 105),
    (0.2, 0.5, 0.7, 0.65, 0.45, 0.3, 0.28, 0.3, 0.38, 0.55, 0.7, 0.7),
)
_AGE_COUPLE = _profile(
    (20, 25, 30, 40, 50, 60, 65, 70, 80, 90, 100),
    (0.02, 0.06, 0.1, 0.06, 0.1, 0.3, 0.5, 0.65, 0.6, 0.35, 0.1),
)
_AGE_HEAD_PARENT = _profile((25, 35, 45, 55, 65, 75), (0.1, 0.4, 0.7, 1.0, 0.6, 0.1))
_AGE_SIBLINGS = _profile((20, 40, 60, 80, 95), (0.2, 0.4, 0.8, 0.6, 0.2))
_AGE_LODGER = _profile((18, 25, 35, 50, 70, 90), (0.5, 1.0, 0.7, 0.3, 0.15, 0.05))
# Youngest child still living with the parents.
_AGE_YOUNGEST_CHILD = _profile(
    (0, 17, 18, 22, 25, 30, 35, 40, 45, 50), (1, 1, 0.85, 0.6, 0.42, 0.3, 0.2, 0.14, 0.08, 0.0)
)
_AGE_YOUNGEST_GRANDCHILD = _profile((0, 12, 18, 25, 30), (1, 1, 0.7, 0.3, 0.0))

_MALE_BIRTH = 0.512  # 105 boys per 100 girls


@dataclass(frozen=True)
class Skeleton:
    """People sorted by household then role; households numbered 0..H-1."""

    household: IntArray  # per person, 0-based household index
    role: npt.NDArray[np.int8]
    sex: npt.NDArray[np.int8]  # 1 male, 2 female
    age: npt.NDArray[np.int16]
    htype: npt.NDArray[np.int8]  # per household
    # per household: in a three-generation household, the married child is a daughter
    married_daughter: npt.NDArray[np.bool_]


def _choice(
    rng: np.random.Generator, values: tuple[int, ...], p: tuple[float, ...], n: int
) -> IntArray:
    return np.asarray(values, dtype=np.int64)[rng.choice(len(values), size=n, p=np.asarray(p))]


def _age(rng: np.random.Generator, dist: FloatArray, n: int) -> IntArray:
    return rng.choice(MAX_AGE + 1, size=n, p=dist).astype(np.int64)


def _gap(rng: np.random.Generator, n: int, mean: float, cap_to: IntArray | None = None) -> IntArray:
    """Age of a mother at a child's birth: 18..45, optionally capped so that base+gap <= cap."""
    g = np.clip(np.rint(rng.normal(mean, 4.5, n)), 18, 45).astype(np.int64)
    if cap_to is not None:
        g = np.clip(g, 18, np.maximum(18, cap_to))
    return g


def _spouse_diff(rng: np.random.Generator, n: int) -> IntArray:
    """Husband minus wife, in years."""
    return np.clip(np.rint(rng.normal(2.2, 3.0, n)), -8, 12).astype(np.int64)


def _kids(
    rng: np.random.Generator, hh: IntArray, youngest: IntArray, counts: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """Children of households ``hh`` (youngest age, count): (household, age, eldest age per hh)."""
    owner = np.repeat(hh, counts)
    n = owner.size
    if hh.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    spacing = _choice(rng, (1, 2, 3, 4, 5), (0.15, 0.35, 0.3, 0.15, 0.05), n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    spacing[starts] = 0
    cum = np.cumsum(spacing)
    offset = cum - np.repeat(cum[starts], counts)
    ages = np.repeat(youngest, counts) + offset
    eldest = ages[np.cumsum(counts) - 1]
    return owner, ages, eldest


class _Builder:
    def __init__(self) -> None:
        self.hh: list[IntArray] = []
        self.role: list[IntArray] = []
        self.sex: list[IntArray] = []
        self.age: list[IntArray] = []

    def add(self, hh: IntArray, role: int, sex: IntArray, age: IntArray) -> None:
        self.hh.append(np.asarray(hh, dtype=np.int64))
        self.role.append(np.full(len(hh), role, dtype=np.int64))
        self.sex.append(np.asarray(sex, dtype=np.int64))
        self.age.append(np.asarray(age, dtype=np.int64))


def _sexes(rng: np.random.Generator, n: int, p_male: float | FloatArray) -> IntArray:
    return np.where(rng.random(n) < p_male, 1, 2).astype(np.int64)


def _couple(
    rng: np.random.Generator,
    b: _Builder,
    hh: IntArray,
    *,
    husband: IntArray,
    wife: IntArray,
    has_spouse: npt.NDArray[np.bool_],
    p_male_head_single: float,
) -> IntArray:
    """Add head (+ spouse); return the head's age."""
    n = hh.size
    male_head = np.where(has_spouse, rng.random(n) < 0.95, rng.random(n) < p_male_head_single)
    head_age = np.where(male_head, husband, wife)
    b.add(hh, R_HEAD, np.where(male_head, 1, 2), head_age)
    s = has_spouse
    b.add(hh[s], R_SPOUSE, np.where(male_head[s], 2, 1), np.where(male_head, wife, husband)[s])
    return head_age


def _parents(
    rng: np.random.Generator, b: _Builder, hh: IntArray, base_age: IntArray, role: int
) -> None:
    """One or two parents of someone aged ``base_age``."""
    n = hh.size
    two = rng.random(n) < 0.3
    mother = base_age + _gap(rng, n, 28.0)
    father = np.clip(mother + _spouse_diff(rng, n), base_age + 18, base_age + 55)
    has_mother = two | (rng.random(n) < 0.78)
    has_father = two | ~has_mother
    b.add(hh[has_mother], role, np.full(int(has_mother.sum()), 2), mother[has_mother])
    b.add(hh[has_father], role, np.full(int(has_father.sum()), 1), father[has_father])


def _cells(age: npt.NDArray[np.int16], sex: npt.NDArray[np.int8]) -> IntArray:
    """Calibration cell of each person: single years 0..4, then 5-year groups; by sex."""
    a = age.astype(np.int64)
    group = np.where(a < 5, a, np.minimum(a // 5, 20) + 4)
    return group * 2 + (sex.astype(np.int64) - 1)


def _target_cells() -> FloatArray:
    ages = np.arange(MAX_AGE + 1)
    cells = _cells(
        np.concatenate([ages, ages]).astype(np.int16),
        np.repeat(np.array([1, 2], dtype=np.int8), MAX_AGE + 1),
    )
    t = np.bincount(cells, weights=np.concatenate([PYRAMID_MALE, PYRAMID_FEMALE]))
    return np.asarray(t / t.sum(), dtype=np.float64)


_TARGET = _target_cells()


def _calibrate(sk: Skeleton, rounds: int = 12) -> FloatArray:
    """Household weights making the people's age-sex distribution match the pyramid."""
    cells = _cells(sk.age, sk.sex)
    sizes = np.bincount(sk.household, minlength=sk.htype.size).astype(np.float64)
    w = np.ones(sk.htype.size)
    for _ in range(rounds):
        have = np.bincount(cells, weights=w[sk.household], minlength=_TARGET.size)
        have = have / have.sum()
        log_r = np.log(np.where(have > 0, _TARGET / np.maximum(have, 1e-12), 1.0))
        w *= np.exp(np.bincount(sk.household, weights=log_r[cells], minlength=w.size) / sizes)
        w /= w.mean()
    return np.asarray(np.clip(w, 0.05, 20.0), dtype=np.float64)


def skeleton(rng: np.random.Generator, population: int) -> Skeleton:
    """Exactly ``population`` people in households.

    Draws about twice the households needed, weights them so the people match the
    pyramid, and keeps a weighted sample without replacement (Efraimidis-Spirakis
    keys) until ``population`` people are reached; a shortfall of a few people is
    filled with one-person households.
    """
    factor = 3.0
    while True:
        pool = _batch(rng, int(population / 2.2 * factor) + 64)
        sizes = np.bincount(pool.household, minlength=pool.htype.size)
        if sizes.sum() >= population:
            break
        factor *= 2.0
    w = _calibrate(pool)
    keys = np.log(rng.random(w.size)) / w
    order = np.argsort(-keys, kind="stable")
    total = np.cumsum(sizes[order])
    keep = np.zeros(w.size, dtype=np.bool_)
    keep[order[: int(np.searchsorted(total, population, side="right"))]] = True
    short = population - int(sizes[keep].sum())
    parts = [_select(pool, keep)]
    if short:
        parts.append(_batch(rng, short, only=SINGLE))
    return _concat(parts)


def _select(sk: Skeleton, keep: npt.NDArray[np.bool_]) -> Skeleton:
    new_index = np.cumsum(keep) - 1
    m = keep[sk.household]
    return Skeleton(
        household=new_index[sk.household[m]],
        role=sk.role[m],
        sex=sk.sex[m],
        age=sk.age[m],
        htype=sk.htype[keep],
        married_daughter=sk.married_daughter[keep],
    )


def _concat(parts: list[Skeleton]) -> Skeleton:
    offsets = np.cumsum([0] + [p.htype.size for p in parts[:-1]])
    return Skeleton(
        household=np.concatenate([p.household + o for p, o in zip(parts, offsets, strict=True)]),
        role=np.concatenate([p.role for p in parts]),
        sex=np.concatenate([p.sex for p in parts]),
        age=np.concatenate([p.age for p in parts]),
        htype=np.concatenate([p.htype for p in parts]),
        married_daughter=np.concatenate([p.married_daughter for p in parts]),
    )


def _batch(rng: np.random.Generator, n: int, only: int | None = None) -> Skeleton:
    htype = (
        np.full(n, only, dtype=np.int64)
        if only is not None
        else rng.choice(len(_TYPE_P), size=n, p=_TYPE_P).astype(np.int64)
    )
    b = _Builder()
    married_daughter = np.zeros(n, dtype=np.bool_)

    # One person.
    hh = np.flatnonzero(htype == SINGLE)
    age = _age(rng, _AGE_SINGLE, hh.size)
    p_female = np.interp(age, (18, 49, 64, 74, 85), (0.42, 0.42, 0.45, 0.65, 0.78))
    b.add(hh, R_HEAD, _sexes(rng, hh.size, 1.0 - p_female), age)

    # Couple only.
    hh = np.flatnonzero(htype == COUPLE)
    husband = _age(rng, _AGE_COUPLE, hh.size)
    wife = np.clip(husband - _spouse_diff(rng, hh.size), 18, MAX_AGE)
    _couple(
        rng,
        b,
        hh,
        husband=husband,
        wife=wife,
        has_spouse=np.ones(hh.size, dtype=np.bool_),
        p_male_head_single=0.5,
    )

    # Couple with children, single parent, three generations (head's parents).
    for t, counts in (
        (COUPLE_KIDS, ((1, 2, 3, 4), (0.42, 0.42, 0.13, 0.03))),
        (SINGLE_PARENT, ((1, 2, 3), (0.62, 0.30, 0.08))),
        (THREE_GEN_MID, ((1, 2, 3), (0.35, 0.45, 0.20))),
    ):
        hh = np.flatnonzero(htype == t)
        k = _choice(rng, counts[0], counts[1], hh.size)
        youngest = _age(rng, _AGE_YOUNGEST_CHILD, hh.size)
        kid_hh, kid_age, eldest = _kids(rng, hh, youngest, k)
        b.add(kid_hh, R_CHILD, _sexes(rng, kid_hh.size, _MALE_BIRTH), kid_age)
        mother = eldest + _gap(rng, hh.size, 29.5, np.minimum(92 - eldest, 45 - eldest + youngest))
        father = np.clip(mother + _spouse_diff(rng, hh.size), eldest + 18, youngest + 55)
        has_spouse = np.full(hh.size, t != SINGLE_PARENT)
        head_age = _couple(
            rng, b, hh, husband=father, wife=mother, has_spouse=has_spouse, p_male_head_single=0.15
        )
        if t == THREE_GEN_MID:
            of_spouse = rng.random(hh.size) < 0.2
            spouse_age = np.where(head_age == father, mother, father)
            base = np.where(of_spouse, spouse_age, head_age)
            _parents(rng, b, hh[~of_spouse], base[~of_spouse], R_PARENT)
            _parents(rng, b, hh[of_spouse], base[of_spouse], R_SPOUSE_PARENT)

    # Three generations, old head: head (+ spouse), a married child (+ spouse), grandchildren.
    hh = np.flatnonzero(htype == THREE_GEN_OLD)
    n_old = hh.size
    g = _choice(rng, (0, 1, 2, 3), (0.2, 0.3, 0.38, 0.12), n_old)
    with_g = g > 0
    youngest = _age(rng, _AGE_YOUNGEST_GRANDCHILD, n_old)
    gk_hh, gk_age, eldest = _kids(rng, hh[with_g], youngest[with_g], g[with_g])
    b.add(gk_hh, R_GRANDCHILD, _sexes(rng, gk_hh.size, _MALE_BIRTH), gk_age)
    c_mother = np.empty(n_old, dtype=np.int64)
    c_mother[~with_g] = rng.integers(25, 56, int((~with_g).sum()))
    spread = eldest - youngest[with_g]
    c_mother[with_g] = eldest + _gap(
        rng, int(with_g.sum()), 29.5, np.minimum(62 - eldest, 45 - spread)
    )
    floor = np.zeros(n_old, dtype=np.int64)
    ceiling = np.full(n_old, MAX_AGE, dtype=np.int64)
    floor[with_g] = eldest + 18
    ceiling[with_g] = youngest[with_g] + 55
    c_father = np.clip(c_mother + _spouse_diff(rng, n_old), floor, ceiling)
    daughter = rng.random(n_old) < 0.2
    married_daughter[hh] = daughter
    child_age = np.where(daughter, c_mother, c_father)
    b.add(hh, R_CHILD, np.where(daughter, 2, 1), child_age)
    has_cs = rng.random(n_old) < 0.85
    b.add(
        hh[has_cs],
        R_CHILD_SPOUSE,
        np.where(daughter, 1, 2)[has_cs],
        np.where(daughter, c_father, c_mother)[has_cs],
    )
    o_mother = np.minimum(child_age + _gap(rng, n_old, 28.0, 100 - child_age), MAX_AGE)
    o_father = np.clip(
        o_mother + _spouse_diff(rng, n_old), child_age + 18, np.minimum(child_age + 55, MAX_AGE)
    )
    _couple(
        rng,
        b,
        hh,
        husband=o_father,
        wife=o_mother,
        has_spouse=rng.random(n_old) < 0.7,
        p_male_head_single=0.2,
    )

    # Head living with a parent.
    hh = np.flatnonzero(htype == HEAD_PARENT)
    age = _age(rng, _AGE_HEAD_PARENT, hh.size)
    b.add(hh, R_HEAD, _sexes(rng, hh.size, 0.55), age)
    _parents(rng, b, hh, age, R_PARENT)

    # Siblings.
    hh = np.flatnonzero(htype == SIBLINGS)
    age = _age(rng, _AGE_SIBLINGS, hh.size)
    b.add(hh, R_HEAD, _sexes(rng, hh.size, 0.5), age)
    two = rng.random(hh.size) < 0.15
    sib_hh = np.concatenate([hh, hh[two]])
    sib_base = np.concatenate([age, age[two]])
    diff = np.rint(rng.normal(0, 6, sib_hh.size)).astype(np.int64)
    diff[diff == 0] = 1
    b.add(sib_hh, R_SIBLING, _sexes(rng, sib_hh.size, 0.5), np.clip(sib_base + diff, 18, 95))

    # Non-relatives sharing a household.
    hh = np.flatnonzero(htype == LODGER)
    age = _age(rng, _AGE_LODGER, hh.size)
    sex = _sexes(rng, hh.size, 0.6)
    b.add(hh, R_HEAD, sex, age)
    other = np.where(rng.random(hh.size) < 0.7, 3 - sex, sex)
    b.add(hh, R_LODGER, other, np.clip(age + np.rint(rng.normal(0, 4, hh.size)), 18, 95))

    household = np.concatenate(b.hh)
    role = np.concatenate(b.role)
    sex_all = np.concatenate(b.sex)
    age_all = np.concatenate(b.age)
    alive = age_all <= MAX_AGE
    household, role, sex_all, age_all = (
        household[alive],
        role[alive],
        sex_all[alive],
        age_all[alive],
    )
    order = np.lexsort((-age_all, role, household))
    return Skeleton(
        household=household[order],
        role=role[order].astype(np.int8),
        sex=sex_all[order].astype(np.int8),
        age=age_all[order].astype(np.int16),
        htype=htype.astype(np.int8),
        married_daughter=married_daughter,
    )
