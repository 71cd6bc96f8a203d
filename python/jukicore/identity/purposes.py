"""The legal purposes: which agency may receive identity confirmation info, for what.

An agency gets identity confirmation info (本人確認情報) from the center or a prefecture
only for a duty (事務) that the Basic Resident Registration Act lists for it in its
annexed tables (別表). Each store keeps that table as versioned data
(``legal_purpose``): a purpose names its agency, the duty, the legal basis, the
items an answer may carry (a purpose may get fewer than the six), whether the agency
may search by name, birth date, sex and address or only by resident code, whether the
answer for a retired code names the new code, how long a provision may be hidden from
the resident's disclosure (an investigation's embargo; 0 for most), and the tiers where
it may be asked.

The table is changed only by an operator with ``identity.purposes`` (admins), each
change a new version of the purpose (the old one closed, never edited) and an audit
entry; a provision record names the version it was given under. jukicore ships a
starting set (``jukicore/_data/legal_purposes.json``) that a new store holds as version
1. A private party is never an agency: every agency is one of the table's, and a
request naming another is refused and audited.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from jukicore.errors import InvalidInputError
from jukicore.store import Column, Ddl, Index, Session, Table, utcnow

__all__ = [
    "ITEMS",
    "SEARCHES",
    "Purpose",
    "default_purposes",
]

#: The six items of identity confirmation info, as a purpose names them: the name
#: (family and given), the date of birth, the sex, the address, the resident code, and
#: the change information (the status, the date and reason of the last change).
ITEMS: tuple[str, ...] = ("name", "birth_date", "sex", "address", "resident_code", "changes")
#: How a purpose may search: by resident code only, or also by the four items.
SEARCHES: tuple[str, ...] = ("code", "code+four")
_TIERS = ("prefecture", "center")
#: An id of the table (a purpose, an agency) or of a request.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

PURPOSE_TABLE = Table("legal_purpose", (
    Column("purpose_id", "text", False),
    Column("version", "int", False),
    Column("agency", "text", False),
    Column("agency_name", "text", False),
    Column("duty", "text", False),
    Column("legal_basis", "text", False),
    Column("items", "text", False),
    Column("search", "text", False),
    Column("new_code", "small", False),
    Column("embargo_days", "int", False),
    Column("tiers", "text", False),
    Column("valid_from", "ts", False),
    Column("valid_to", "ts"),
    Column("changed_by", "text", False),
), ("purpose_id", "version"))

#: One row per request answered: who asked, for what, under which law, when.
REQUEST_TABLE = Table("provision_request", (
    Column("request_no", "serial", False),
    Column("request_id", "text", False),
    Column("at", "ts", False),
    Column("agency", "text", False),
    Column("purpose_id", "text", False),
    Column("purpose_version", "int", False),
    Column("legal_basis", "text", False),
    Column("actor", "text", False),
    Column("embargo_until", "date"),
))
#: One row per person a request's answer gave data about (narrow: a bulk verification
#: writes tens of millions): the request, the code, the answer; ``items`` only where
#: they differ from what the purpose gives for that answer (:data:`PROVISION_VIEW`).
PROVISION_TABLE = Table("provision", (
    Column("request_no", "int", False),
    Column("resident_code", "int"),
    Column("answer", "text", False),
    Column("items", "text"),
))
_PROVISION_INDEX = Index("provision_code", "provision", "resident_code", False,
                         "resident_code IS NOT NULL")
#: Each provision with its request and purpose, and the items it gave: those the
#: purpose receives, none for ``not_found``, the new code (where allowed) for
#: ``retired``, or the row's own ``items``. The one place that rule is written.
PROVISION_VIEW = (
    "CREATE VIEW provision_detail AS SELECT r.request_no, r.request_id, r.at, r.agency,"
    " r.purpose_id, r.purpose_version, r.legal_basis, r.actor, r.embargo_until,"
    " p.resident_code, p.answer, COALESCE(p.items, CASE p.answer WHEN 'not_found' THEN ''"
    " WHEN 'retired' THEN CASE WHEN l.new_code = 1 THEN 'new_code' ELSE '' END"
    " ELSE l.items END) AS items, l.agency_name, l.duty FROM provision p"
    " JOIN provision_request r ON r.request_no = p.request_no"
    " JOIN legal_purpose l ON l.purpose_id = r.purpose_id AND l.version = r.purpose_version")


@dataclass(frozen=True)
class Purpose:
    """One legal purpose (see the module docs)."""

    purpose: str
    agency: str
    agency_name: str
    duty: str
    legal_basis: str
    items: tuple[str, ...]
    search: str
    new_code: bool
    embargo_days: int
    tiers: tuple[str, ...]
    version: int = 1

    def __post_init__(self) -> None:
        for name in ("purpose", "agency"):
            v = getattr(self, name)
            if not isinstance(v, str) or not ID_PATTERN.fullmatch(v):
                raise InvalidInputError(f"{name} {v!r}: 1 to 64 of a-z, 0-9, '.', '_', '-',"
                                        " starting with a letter or digit")
        for name in ("agency_name", "duty", "legal_basis"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip() or len(v) > 1000:
                raise InvalidInputError(f"{name}: a text of 1 to 1000 characters")
        if not self.items or len(set(self.items)) != len(self.items) or \
                any(i not in ITEMS for i in self.items):
            raise InvalidInputError(f"items {list(self.items)!r}: some of {list(ITEMS)},"
                                    " each once")
        if self.search not in SEARCHES:
            raise InvalidInputError(f"search {self.search!r}: one of {list(SEARCHES)}")
        if not isinstance(self.new_code, bool):
            raise InvalidInputError("new_code is true or false")
        if isinstance(self.embargo_days, bool) or not isinstance(self.embargo_days, int) \
                or not 0 <= self.embargo_days <= 3660:
            raise InvalidInputError(f"embargo_days {self.embargo_days!r}: 0 to 3660 days")
        if not self.tiers or any(t not in _TIERS for t in self.tiers):
            raise InvalidInputError(f"tiers {list(self.tiers)!r}: some of {list(_TIERS)}")

    @property
    def four_items(self) -> bool:
        """May the agency search by name, birth date, sex and address?"""
        return self.search == "code+four"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["items"], d["tiers"] = list(self.items), list(self.tiers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], agency_names: dict[str, str] | None = None,
                  ) -> Purpose:
        """A purpose from its JSON form (the shipped file's, or ``identity purposes set``'s
        file): unknown keys and missing ones are refused."""
        if not isinstance(d, dict):
            raise InvalidInputError("a purpose is a JSON object")
        keys = {"purpose", "agency", "agency_name", "duty", "legal_basis", "items", "search",
                "new_code", "embargo_days", "tiers", "version"}
        extra = sorted(set(d) - keys)
        if extra:
            raise InvalidInputError(f"a purpose has no field {extra}")
        d = dict(d)
        d.pop("version", None)
        if "agency_name" not in d and agency_names is not None:
            d["agency_name"] = agency_names.get(str(d.get("agency")), "")
        missing = sorted(keys - {"version"} - set(d))
        if missing:
            raise InvalidInputError(f"a purpose needs {missing}")
        for name in ("items", "tiers"):
            if not isinstance(d[name], list | tuple) or not all(isinstance(x, str)
                                                                for x in d[name]):
                raise InvalidInputError(f"{name} is a list of texts")
            d[name] = tuple(d[name])
        return cls(**d)


@lru_cache(maxsize=1)
def default_purposes() -> tuple[Purpose, ...]:
    """The starting set shipped with jukicore (version 1 in a new store)."""
    raw = json.loads(resources.files("jukicore._data").joinpath(
        "legal_purposes.json").read_text(encoding="utf-8"))
    names = {a["agency"]: a["name"] for a in raw["agencies"]}
    return tuple(Purpose.from_dict(p, names) for p in raw["purposes"])


def _literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool | int):
        return str(int(v))
    return "'" + str(v).replace("'", "''") + "'"


def migration_statements(ddl: Ddl) -> list[str]:
    """The legal purposes and the provision records (schema version 9); the store holds
    the shipped purposes of its tier (``meta``'s kind) as their version 1."""
    seeds = []
    for p in default_purposes():
        values = ", ".join(_literal(v) for v in _row(p, _SEEDED_AT, "jukicore"))
        tiers = ", ".join(_literal(t) for t in p.tiers)
        seeds.append(f"INSERT INTO legal_purpose ({', '.join(_COLS)}) SELECT {values}"
                     f" WHERE (SELECT value FROM meta WHERE key = 'kind') IN ({tiers})")
    return [ddl.create_table(PURPOSE_TABLE), ddl.create_table(REQUEST_TABLE),
            ddl.create_table(PROVISION_TABLE), ddl.create_index(_PROVISION_INDEX),
            PROVISION_VIEW, *seeds]


#: When the shipped purposes are in force from (any request is later).
_SEEDED_AT = "2000-01-01 00:00:00"


def seed(s: Session, tier: str) -> None:
    """Give a new store (whose ``meta`` came after its schema) the shipped purposes of its
    tier as version 1, if it holds none."""
    if not s.table_exists("legal_purpose") or s.scalar("SELECT count(*) FROM legal_purpose"):
        return  # (a schema older than version 9: its migration seeds them)
    s.executemany(_INSERT, [_row(p, _SEEDED_AT, "jukicore") for p in default_purposes()
                            if tier in p.tiers])


_COLS = [c.name for c in PURPOSE_TABLE.columns]
_INSERT = (f"INSERT INTO legal_purpose ({', '.join(_COLS)})"
           f" VALUES ({', '.join('?' * len(_COLS))})")


def _row(p: Purpose, at: Any, by: str) -> tuple[Any, ...]:
    return (p.purpose, p.version, p.agency, p.agency_name, p.duty, p.legal_basis,
            ",".join(p.items), p.search, int(p.new_code), p.embargo_days, ",".join(p.tiers),
            at, None, by)


def _of(row: tuple[Any, ...]) -> Purpose:
    (pid, version, agency, name, duty, basis, items, search, new_code, embargo, tiers,
     *_rest) = row
    return Purpose(pid, agency, name, duty, basis, tuple(items.split(",")), search,
                   bool(new_code), int(embargo), tuple(tiers.split(",")), int(version))


def current(s: Session, purpose: str | None = None, *, at: dt.datetime | None = None,
            ) -> list[Purpose]:
    """The purposes in force (at ``at``, default now), of one id if given."""
    moment = s.ts(at or utcnow())
    where = "valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)"
    params: tuple[Any, ...] = (moment, moment)
    if purpose is not None:
        where += " AND purpose_id = ?"
        params += (purpose,)
    rows = s.query(f"SELECT {', '.join(_COLS)} FROM legal_purpose WHERE {where}"
                   " ORDER BY agency, purpose_id", params)
    return [_of(r) for r in rows]


def agencies(s: Session) -> set[str]:
    """Every agency the table ever named (in force or not)."""
    return {str(a) for (a,) in s.query("SELECT DISTINCT agency FROM legal_purpose")}


def put(s: Session, p: Purpose, by: str) -> Purpose:
    """Make ``p`` the purpose in force: its current version (if any) closed, ``p`` the
    next version. Returns it with its version."""
    now = utcnow()
    last = s.scalar("SELECT max(version) FROM legal_purpose WHERE purpose_id = ?",
                    (p.purpose,))
    version = 1 if last is None else int(last) + 1
    s.execute("UPDATE legal_purpose SET valid_to = ? WHERE purpose_id = ? AND valid_to IS NULL",
              (s.ts(now), p.purpose))
    out = Purpose(**{**p.as_dict(), "items": p.items, "tiers": p.tiers, "version": version})
    s.execute(_INSERT, _row(out, s.ts(now), by))
    return out


def close(s: Session, purpose: str) -> bool:
    """Close the version in force of ``purpose`` (the law no longer lists it); False if
    none was in force."""
    if not s.query("SELECT 1 FROM legal_purpose WHERE purpose_id = ? AND valid_to IS NULL",
                   (purpose,)):
        return False
    s.execute("UPDATE legal_purpose SET valid_to = ? WHERE purpose_id = ? AND valid_to IS NULL",
              (s.ts(utcnow()), purpose))
    return True
