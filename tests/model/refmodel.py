"""The reference model of the whole network: plain Python dicts, no jukicore.

It says what each municipality's register must hold after every accepted notification,
and what each upper store (prefecture, center) must hold once every packet is delivered.
It knows nothing of SQL, packets or crypto: only people, records, households, codes and
numbers, and the rules of docs/register.md and docs/sync.md as a clerk would state them.

* A human (``Human``) lives in at most one municipality at a time; every municipality
  they lived in keeps a record (``Rec``) of them, current or removed (除票).
* A resident code and a My Number belong to one human forever: retired codes (code
  change) and replaced numbers (a leak) are never held by anyone again.
* An upper store holds, for each resident code reported by its municipalities, the
  identity info (the six items and the status) of the record of the municipality the
  human lived in last among them; a code retired by a code change reported to it is
  gone from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

HEAD = "世帯主"

#: The municipalities of the model network: local government code -> (prefecture id,
#: prefecture name, municipality name, [(postal code, town), ...]).
MUNICIPALITIES: dict[str, tuple[str, str, str, list[tuple[str, str]]]] = {
    "131016": ("130001", "東京都", "千代田区", [("1000005", "丸の内"), ("1010021", "外神田")]),
    "131041": ("130001", "東京都", "新宿区", [("1600022", "新宿"), ("1600023", "西新宿")]),
    "271276": ("270008", "大阪府", "大阪市北区", [("5300001", "梅田"), ("5300017", "角田町")]),
}
PREFECTURES: dict[str, list[str]] = {}
for _m, (_p, *_rest) in MUNICIPALITIES.items():
    PREFECTURES.setdefault(_p, []).append(_m)
CENTER = "center"

#: Streets a household may live on (with a town of the municipality, an address).
STREETS = ("1丁目1番1号", "2丁目3番4号", "3丁目5番6号")


@dataclass(frozen=True)
class Addr:
    postal_code: str
    town: str
    street: str

    def full(self, muni: str) -> str:
        _, pref, name, _ = MUNICIPALITIES[muni]
        return f"{pref}{name}{self.town}{self.street}"


@dataclass
class Human:
    """A person, wherever they are registered; ``given_name`` is unique to them."""

    hid: int
    given_name: str
    given_kana: str
    birth_date: dt.date
    sex: int
    domicile: str


@dataclass
class Rec:
    """One record (住民票) in one municipality."""

    muni: str
    person_id: int
    human: Human
    code: int
    my_number: int | None
    family_name: str
    family_kana: str
    household_id: int
    head: bool
    addr: Addr
    status: str = "resident"
    updated_on: dt.date = dt.date.min
    change_date: dt.date = dt.date.min  # of the last identity change
    change_reason: str = ""

    def identity(self) -> tuple[object, ...]:
        """What an upper store must hold of this record (six items, status, holder)."""
        return (self.family_name, self.human.given_name, self.human.birth_date,
                self.human.sex, self.addr.full(self.muni), self.status, self.change_date,
                self.change_reason, self.muni)


@dataclass
class Household:
    household_id: int
    head: int  # person_id
    addr: Addr
    members: set[int] = field(default_factory=set)


@dataclass
class Muni:
    lg_code: str
    records: dict[int, Rec] = field(default_factory=dict)  # person_id -> record
    households: dict[int, Household] = field(default_factory=dict)  # active ones
    max_household_id: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # notification id -> kind
    #: notification ids whose change reaches the outbox (identity items changed)
    identity_nids: set[str] = field(default_factory=set)
    retired_codes: set[int] = field(default_factory=set)
    #: My Numbers replaced here (after a leak): this register's history holds them, so it
    #: refuses them; one replaced at another municipality is not known here (My Numbers
    #: never leave a municipality)
    retired_numbers: set[int] = field(default_factory=set)
    #: codes of people who died here
    dead_codes: set[int] = field(default_factory=set)

    def current(self) -> list[Rec]:
        return [r for r in self.records.values() if r.status == "resident"]

    def by_code(self, code: int) -> Rec | None:
        for r in self.records.values():
            if r.status == "resident" and r.code == code:
                return r
        return None

    def next_person_id(self) -> int:
        return max(self.records, default=0) + 1

    def new_household_id(self) -> int:
        self.max_household_id += 1
        return self.max_household_id

    def members(self, household_id: int) -> list[Rec]:
        hh = self.households[household_id]
        return [self.records[p] for p in sorted(hh.members)]


@dataclass
class Transit:
    """A human who moved out and has not moved in anywhere yet."""

    rec: Rec  # the removed record they left behind
    moved_out: dt.date


@dataclass
class Model:
    today: dt.date
    munis: dict[str, Muni] = field(default_factory=dict)
    humans: list[Human] = field(default_factory=list)
    #: every code ever issued to someone, with the human it belongs to (forever)
    code_owner: dict[int, int] = field(default_factory=dict)
    number_owner: dict[int, int] = field(default_factory=dict)
    retired_codes: set[int] = field(default_factory=set)
    retired_numbers: set[int] = field(default_factory=set)
    #: human id -> (lg_code, person_id) of the municipality they were registered in last
    last_holder: dict[int, tuple[str, int]] = field(default_factory=dict)
    in_transit: dict[int, Transit] = field(default_factory=dict)  # human id -> transit
    #: the code an issued My Number was issued for (the issuer's key for replace())
    number_code: dict[int, int] = field(default_factory=dict)
    #: every record ever created, in order: (lg_code, person_id)
    created: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for m in MUNICIPALITIES:
            self.munis[m] = Muni(m)

    # -- issuing ------------------------------------------------------------------------

    def take_code(self, code: int, human: Human) -> None:
        """A code handed to ``human`` by a register: it must never have been seen before."""
        assert code not in self.code_owner, (
            f"code {code:011d} issued again: it belonged to human {self.code_owner[code]}")
        self.code_owner[code] = human.hid

    def record(self, m: Muni, rec: Rec) -> None:
        m.records[rec.person_id] = rec
        self.last_holder[rec.human.hid] = (m.lg_code, rec.person_id)
        self.created.append((m.lg_code, rec.person_id))

    # -- what the upper stores must hold ------------------------------------------------

    def expected_store(self, node_id: str) -> dict[int, tuple[object, ...]]:
        """resident code -> identity row an upper store must hold once all is delivered."""
        munis = list(MUNICIPALITIES) if node_id == CENTER else PREFECTURES[node_id]
        retired: set[int] = set()
        by_code: dict[int, list[Rec]] = {}
        for m in munis:
            retired |= self.munis[m].retired_codes
            for rec in self.munis[m].records.values():
                by_code.setdefault(rec.code, []).append(rec)
        # "lived there last": the latest created of a code's records
        rank = {key: i for i, key in enumerate(self.created)}
        out: dict[int, tuple[object, ...]] = {}
        for code, recs in by_code.items():
            if code in retired:
                continue
            latest = max(recs, key=lambda r: rank[(r.muni, r.person_id)])
            out[code] = latest.identity()
        return out
