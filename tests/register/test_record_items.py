"""The record items of Article 7 and of foreign residents (Article 30-45): load, birth and
move-in, ``record_items``, ``residence_status_change``; each rule and each refusal changing
nothing; history, as_of, export; never in the outbox, a packet or an identity store.

Tiny municipality (regkit): person 1 (head of household 1) born 1970-02-11, person 3 born
1970-03-12; residents since 2005-04-01; TODAY is 2024-06-03.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from regkit import (
    ADMIN,
    CLERK,
    LG,
    LOAD_DAY,
    MUNI,
    PREF,
    TODAY,
    code_of,
    ev,
    load_on,
    make_block,
    make_code,
    move_in,
    tiny_municipality,
)

from jukicore.errors import ConflictError, InvalidInputError
from jukicore.identity.items import IDENTITY_COLUMNS
from jukicore.register import (
    ARTICLE7_ITEMS,
    EVENT_SCHEMA,
    FOREIGN_ITEMS,
    OUTBOX_SCHEMA,
    RECORD_ITEMS,
    RESIDENT_SCHEMA,
    Register,
    create_register,
    open_register,
)

D = dt.timedelta
CARD = "AB12345678CD"
#: A mid- to long-term resident's items (a technical intern).
MID = {"nationality": "ベトナム", "foreign_status": "mid_long_term",
       "residence_status": "技能実習2号イ", "period_of_stay": "1年",
       "stay_expires_on": dt.date(2025, 5, 1), "residence_card_number": CARD}


def person(reg: Register, code: int) -> dict[str, Any]:
    return reg.resident(code, actor=ADMIN)


def items_of(reg: Register, code: int) -> dict[str, Any]:
    rec = person(reg, code)
    return {k: rec[k] for k in RECORD_ITEMS}


def apply_ok(reg: Register, *events: dict[str, Any], today: dt.date = TODAY) -> list[Any]:
    rep = reg.apply(list(events), actor=CLERK, today=today)
    assert rep.rejected == (), rep.rejected
    return rep.resident_codes.to_pylist()  # type: ignore[no-any-return]


def refused(reg: Register, event: dict[str, Any], error: str, words: str,
            column: str | None = None, today: dt.date = TODAY) -> None:
    """The event is refused with ``error`` mentioning ``words`` (and naming ``column``),
    and nothing changed: content digest (the audit log's changes included, its reads
    aside), counts of rows."""
    before, counts = reg.content_digest(), _counts(reg)
    rep = reg.apply([event], actor=CLERK, today=today)
    assert rep.applied == 0 and len(rep.rejected) == 1, rep
    r = rep.rejected[0]
    assert (r.error, r.row) == (error, 0), r
    assert words in r.reason, r
    if column is not None:
        assert r.column == column, r
    assert reg.content_digest() == before
    assert _counts(reg) == counts


def _counts(reg: Register) -> dict[str, int]:
    """Row counts but the audit's (reads are audited: counting is reading)."""
    return {k: v for k, v in reg.counts().items() if k != "audit"}


def newcomer(nid: str, code_body: int, birth: dt.date, arrived: dt.date,
             **items: Any) -> dict[str, Any]:
    """A move-in from abroad (a fresh code) at ``arrived``, head of a new household."""
    base = move_in(nid, event_date=arrived, notified_date=arrived, birth_date=birth,
                   from_abroad=True, resident_code=None,
                   street=f"2丁目{code_body}番1号", given_name=f"健{code_body}")
    base.update(items)
    return base


def arrive(reg: Register, birth: dt.date, arrived: dt.date, **items: Any) -> int:
    n = reg.counts()["notifications"]
    (code,) = apply_ok(reg, newcomer(f"arrive-{n}", n + 1, birth, arrived, **items))
    return int(code)


# -- the schema and the migration ------------------------------------------------------------


def test_the_columns_are_in_the_record_and_events_but_not_the_outbox() -> None:
    names = ("electoral_roll", "nhi_since", "elderly_care_since", "ltc_insurance_since",
             "pension_kind", "pension_since", "child_allowance_since", "nationality",
             "foreign_status", "residence_status", "period_of_stay", "stay_expires_on",
             "residence_card_number")
    assert names == RECORD_ITEMS
    assert set(RECORD_ITEMS) == set(ARTICLE7_ITEMS) | set(FOREIGN_ITEMS)
    for n in names:
        assert RESIDENT_SCHEMA.field(n).nullable
        assert n in EVENT_SCHEMA.names
        assert n not in OUTBOX_SCHEMA.names
        assert n not in {c.name for c in IDENTITY_COLUMNS}
    assert {RESIDENT_SCHEMA.field(n).type for n in ("electoral_roll", "pension_kind")} == {
        pa.int8()}


def test_a_register_of_the_previous_version_migrates_and_keeps_its_data(
        store_target: str) -> None:
    """A register made by the previous jukicore (schema version before this one) with a
    record and its history opens: the record is kept as it was, the new items are null,
    and notifications of the new kinds apply to it."""
    from jukicore.register._schema import MIGRATIONS, SCHEMA_VERSION, V1_RESIDENT_COLUMNS, _v10
    from jukicore.store.backend import connect, migrate

    assert MIGRATIONS[-1].version == SCHEMA_VERSION
    # every version before the record items' (later versions stay to be applied too)
    before = MIGRATIONS[:[m.statements for m in MIGRATIONS].index(_v10)]
    backend = connect(store_target, create=True)
    old_cols = [c.name for c in V1_RESIDENT_COLUMNS]
    birth = dt.date(1980, 2, 29)
    values: dict[str, Any] = dict.fromkeys(old_cols)
    values.update(person_id=1, resident_code=make_code(123456789), family_name="佐藤",
                  given_name="一", family_name_kana="サトウ", given_name_kana="ハジメ",
                  birth_date=birth, sex=1, household_id=1, relationship="世帯主",
                  postal_code="1000005", prefecture=PREF, municipality=MUNI, lg_code=LG,
                  town="丸の内", street="1丁目1番1号", address=f"{PREF}{MUNI}丸の内1丁目1番1号",
                  resident_since=dt.date(2010, 1, 1), address_since=dt.date(2010, 1, 1),
                  status="resident", updated_on=dt.date(2010, 1, 1))
    with backend.session() as s:
        migrate(s, "schema_version", before, 0)
        s.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                      [("lg_code", LG), ("prefecture", PREF), ("municipality", MUNI),
                       ("outbox_seq", "0")])
        cols = s.query("SELECT * FROM residents WHERE 1 = 0")  # the table exists
        assert cols == []
        s.execute(f"INSERT INTO residents ({', '.join(old_cols)}) VALUES"
                  f" ({', '.join('?' * len(old_cols))})",
                  [s.d(v) if isinstance(v, dt.date) else v for v in
                   (values[c] for c in old_cols)])
        s.execute("INSERT INTO households (household_id, head_person_id, address, created_on)"
                  " VALUES (1, 1, ?, ?)", (values["address"], s.d(dt.date(2010, 1, 1))))
        s.execute("INSERT INTO history (person_id, resident_code, item, old_value, new_value,"
                  " event_date, recorded_at, reason) VALUES (1, ?, 'status', NULL, 'resident',"
                  " ?, ?, 'move_in')",
                  (values["resident_code"], s.d(dt.date(2010, 1, 1)),
                   s.ts(dt.datetime(2010, 1, 1, tzinfo=dt.UTC))))
    backend.close()
    with open_register(store_target) as reg:
        assert reg.schema_version == SCHEMA_VERSION
        rec = person(reg, values["resident_code"])
        for c in old_cols:
            want = values[c]
            got = rec[c]
            if c == "resident_code":
                got = int(got)
            assert got == want, c
        assert all(rec[k] is None for k in RECORD_ITEMS)
        assert reg.history(values["resident_code"], actor=ADMIN).num_rows == 1
        apply_ok(reg, ev("record_items", "r1", resident_code=values["resident_code"],
                         nhi_since=dt.date(2024, 4, 1), event_date=dt.date(2024, 4, 1)))
        assert person(reg, values["resident_code"])["nhi_since"] == dt.date(2024, 4, 1)


# -- record_items: Article 7 --------------------------------------------------------------


def test_record_items_sets_clears_and_keeps_history_without_outbox(register: Register) -> None:
    code = code_of(register, 1)  # born 1970-02-11
    outbox = register.counts()["outbox"]
    apply_ok(register, ev("record_items", "r1", resident_code=code, event_date=TODAY - D(30),
                          electoral_roll=1, nhi_since=TODAY - D(40), pension_kind=1,
                          pension_since=dt.date(2000, 4, 1),
                          child_allowance_since=dt.date(2010, 6, 1),
                          ltc_insurance_since=dt.date(2010, 2, 10)))
    assert items_of(register, code) == {
        **dict.fromkeys(RECORD_ITEMS), "electoral_roll": 1, "nhi_since": TODAY - D(40),
        "pension_kind": 1, "pension_since": dt.date(2000, 4, 1),
        "child_allowance_since": dt.date(2010, 6, 1),
        "ltc_insurance_since": dt.date(2010, 2, 10)}
    apply_ok(register, ev("record_items", "r2", resident_code=code, event_date=TODAY - D(2),
                          pension_kind=2, pension_since=TODAY - D(2),
                          cleared_items=["nhi_since", "child_allowance_since"]))
    rec = items_of(register, code)
    assert (rec["pension_kind"], rec["nhi_since"], rec["child_allowance_since"]) == (
        2, None, None)
    hist = [(h["item"], h["old_value"], h["new_value"], h["reason"], h["event_date"])
            for h in register.history(code, actor=ADMIN).to_pylist()]
    assert ("nhi_since", None, str(TODAY - D(40)), "record_items", TODAY - D(30)) in hist
    assert ("nhi_since", str(TODAY - D(40)), None, "record_items", TODAY - D(2)) in hist
    assert ("pension_kind", "1", "2", "record_items", TODAY - D(2)) in hist
    assert ("electoral_roll", None, "1", "record_items", TODAY - D(30)) in hist
    # not identity info: no outbox entry; one audit entry per notification
    assert register.counts()["outbox"] == outbox
    actions = register.audit_log(actor=ADMIN).column("action").to_pylist()
    assert actions.count("notify.record_items") == 2
    # as_of answers the items of each day
    before = register.as_of(TODAY - D(31), actor=ADMIN).to_pylist()
    middle = register.as_of(TODAY - D(10), actor=ADMIN).to_pylist()
    now = register.as_of(TODAY, actor=ADMIN).to_pylist()

    def of(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return next(r for r in rows if r["resident_code"] == code)

    assert of(before)["nhi_since"] is None and of(before)["electoral_roll"] is None
    assert (of(middle)["nhi_since"], of(middle)["pension_kind"]) == (TODAY - D(40), 1)
    assert (of(now)["nhi_since"], of(now)["pension_kind"]) == (None, 2)
    # the export carries them
    exported = register.export(actor=ADMIN)["residents"]
    row = next(r for r in exported.to_pylist() if r["resident_code"] == code)
    assert row["pension_kind"] == 2 and row["electoral_roll"] == 1


@pytest.mark.parametrize(("change", "error", "words", "column"), [
    # kinds and formats
    ({"electoral_roll": 2}, "InvalidInputError", "one of 0, 1", "electoral_roll"),
    ({"pension_kind": 4, "pension_since": dt.date(2000, 4, 1)}, "InvalidInputError",
     "one of 1, 2, 3", "pension_kind"),
    ({"pension_kind": 1}, "InvalidInputError", "needs pension_since", "pension_since"),
    ({"pension_since": dt.date(2000, 4, 1)}, "InvalidInputError", "needs pension_kind",
     "pension_kind"),
    # dates: not after the event, not before birth, not before 1868, not after today
    ({"nhi_since": TODAY - D(1), "event_date": TODAY - D(2)}, "InvalidInputError",
     "after the event", "nhi_since"),
    ({"child_allowance_since": dt.date(1969, 1, 1)}, "InvalidInputError",
     "before the date of birth", "child_allowance_since"),
    ({"nhi_since": dt.date(1800, 1, 1)}, "InvalidInputError", "date before 1868",
     "nhi_since"),
    ({"nhi_since": TODAY + D(1)}, "InvalidInputError", "future", "nhi_since"),
    # ages
    ({"elderly_care_since": TODAY}, "InvalidInputError", "not before 65", "elderly_care_since"),
    # nothing to change
    ({}, "InvalidInputError", "at least one item", None),
    ({"cleared_items": ["nhi_since"]}, "ConflictError", "current ones", None),
    # what record_items does not take
    ({"nationality": "韓国"}, "InvalidInputError", "does not take nationality", "nationality"),
    ({"cleared_items": ["residence_card_number"]}, "InvalidInputError",
     "not an item a record_items ends", "cleared_items"),
    ({"cleared_items": ["family_name"]}, "InvalidInputError", "not an item", "cleared_items"),
    ({"nhi_since": TODAY, "cleared_items": ["nhi_since"]}, "InvalidInputError",
     "given a value as well", "cleared_items"),
    ({"cleared_items": ["nhi_since", "nhi_since"]}, "InvalidInputError", "named twice",
     "cleared_items"),
])
def test_record_items_refusals_change_nothing(register: Register, change: dict[str, Any],
                                              error: str, words: str,
                                              column: str | None) -> None:
    code = code_of(register, 1)
    refused(register, ev("record_items", "bad", resident_code=code, **change), error, words,
            column)


def test_items_only_with_the_kinds_that_take_them(register: Register) -> None:
    code = code_of(register, 2)
    refused(register, ev("death", "d1", resident_code=code, nhi_since=TODAY),
            "InvalidInputError", "does not take nhi_since", "nhi_since")
    refused(register, ev("name_change", "n1", resident_code=code, given_name="花",
                         cleared_items=["nhi_since"]),
            "InvalidInputError", "cleared_items go with", "cleared_items")
    refused(register, ev("birth", "b1", household_id=1, relationship="子", family_name="鈴木",
                         given_name="三郎", family_name_kana="スズキ", given_name_kana="サブロウ",
                         sex=1, event_date=TODAY - D(3), pension_kind=1),
            "InvalidInputError", "does not take pension_kind", "pension_kind")
    refused(register, ev("residence_status_change", "s1", resident_code=code,
                         electoral_roll=0), "InvalidInputError", "does not take electoral_roll",
            "electoral_roll")


def test_electoral_roll_rules(register: Register) -> None:
    # 18 or older: born 2004-02-29, reaches 18 on 2022-02-28 (no 29 February in 2022)
    young = arrive(register, dt.date(2004, 2, 29), dt.date(2021, 6, 1))
    refused(register, ev("record_items", "e1", resident_code=young, electoral_roll=1,
                         event_date=dt.date(2022, 2, 27)),
            "InvalidInputError", "18 or older", "electoral_roll")
    apply_ok(register, ev("record_items", "e2", resident_code=young, electoral_roll=1,
                          event_date=dt.date(2022, 2, 28)))
    # three months of residence
    late = arrive(register, dt.date(1990, 1, 1), dt.date(2024, 3, 4))
    refused(register, ev("record_items", "e3", resident_code=late, electoral_roll=1,
                         event_date=dt.date(2024, 6, 3)),
            "InvalidInputError", "three months", "electoral_roll")
    refused(register, newcomer("e4", 90, dt.date(1990, 1, 1), TODAY, electoral_roll=1),
            "InvalidInputError", "three months", "electoral_roll")
    apply_ok(register, ev("record_items", "e6", resident_code=late, electoral_roll=0))
    # a foreign resident is never on the roll
    foreigner = arrive(register, dt.date(1990, 1, 1), dt.date(2023, 1, 5), **MID | {
        "stay_expires_on": dt.date(2024, 1, 4)})
    refused(register, ev("record_items", "e7", resident_code=foreigner, electoral_roll=1,
                         event_date=dt.date(2023, 6, 1)),
            "InvalidInputError", "foreign resident is not registered", "electoral_roll")


def test_health_insurance_and_late_stage_elderly_care(register: Register) -> None:
    # born 29 February 1948: the 75th birthday in 2023 (no 29 February) is 1 March
    old = arrive(register, dt.date(1948, 2, 29), dt.date(2023, 1, 5),
                 nhi_since=dt.date(2023, 1, 5))
    refused(register, ev("record_items", "h1", resident_code=old, nhi_since=dt.date(2023, 1, 6),
                         event_date=dt.date(2023, 3, 1)),
            "InvalidInputError", "75 or older", "nhi_since")
    apply_ok(register, ev("record_items", "h2", resident_code=old,
                          nhi_since=dt.date(2023, 1, 6), event_date=dt.date(2023, 2, 28)))
    # both at once: national health insurance must end
    refused(register, ev("record_items", "h3", resident_code=old,
                         elderly_care_since=dt.date(2023, 3, 1), event_date=dt.date(2023, 3, 1)),
            "InvalidInputError", "clear nhi_since", "nhi_since")
    apply_ok(register, ev("record_items", "h4", resident_code=old,
                          elderly_care_since=dt.date(2023, 3, 1), cleared_items=["nhi_since"],
                          event_date=dt.date(2023, 3, 1)))
    assert (items_of(register, old)["nhi_since"], items_of(register, old)["elderly_care_since"]
            ) == (None, dt.date(2023, 3, 1))
    # 65 to 74 (a certified disability): from the day of reaching 65, not before
    sixty = arrive(register, dt.date(1959, 5, 20), dt.date(2020, 1, 5))
    refused(register, ev("record_items", "h5", resident_code=sixty,
                         elderly_care_since=dt.date(2024, 5, 18), event_date=dt.date(2024, 5, 18)),
            "InvalidInputError", "not before 65", "elderly_care_since")
    apply_ok(register, ev("record_items", "h6", resident_code=sixty,
                          elderly_care_since=dt.date(2024, 5, 19),
                          event_date=dt.date(2024, 5, 19)))


def test_long_term_care_insurance_from_40(register: Register) -> None:
    # born 1984-05-20: reaches 40 on 2024-05-19 (the day before the birthday)
    code = arrive(register, dt.date(1984, 5, 20), dt.date(2020, 1, 5))
    refused(register, ev("record_items", "l1", resident_code=code,
                         ltc_insurance_since=dt.date(2024, 5, 18)),
            "InvalidInputError", "begins at 40", "ltc_insurance_since")
    apply_ok(register, ev("record_items", "l2", resident_code=code,
                          ltc_insurance_since=dt.date(2024, 5, 19)))


def test_national_pension_kind_and_age(register: Register) -> None:
    # born 2004-02-29: reaches 20 on 2024-02-28
    young = arrive(register, dt.date(2004, 2, 29), dt.date(2023, 1, 5))
    for nid, kind in (("p1", 1), ("p2", 3)):
        refused(register, ev("record_items", nid, resident_code=young, pension_kind=kind,
                             pension_since=dt.date(2024, 2, 27),
                             event_date=dt.date(2024, 2, 27)),
                "InvalidInputError", "20 to 59", "pension_kind")
    refused(register, ev("record_items", "p3", resident_code=young, pension_kind=1,
                         pension_since=dt.date(2024, 2, 27), event_date=dt.date(2024, 2, 28)),
            "InvalidInputError", "begin at 20", "pension_since")
    apply_ok(register, ev("record_items", "p4", resident_code=young, pension_kind=1,
                          pension_since=dt.date(2024, 2, 28), event_date=dt.date(2024, 2, 28)))
    # kind 2 (an employee) before 20 is fine
    worker = arrive(register, dt.date(2006, 4, 2), dt.date(2023, 1, 5))
    apply_ok(register, ev("record_items", "p5", resident_code=worker, pension_kind=2,
                          pension_since=dt.date(2024, 4, 1), event_date=dt.date(2024, 4, 1)))
    # born 1964-06-01: reaches 60 on 2024-05-31: kind 1 ends
    sixty = arrive(register, dt.date(1964, 6, 1), dt.date(2020, 1, 5))
    apply_ok(register, ev("record_items", "p6", resident_code=sixty, pension_kind=1,
                          pension_since=dt.date(2020, 1, 5), event_date=dt.date(2024, 5, 30)))
    refused(register, ev("record_items", "p7", resident_code=sixty, pension_kind=3,
                         pension_since=dt.date(2024, 5, 31), event_date=dt.date(2024, 5, 31)),
            "InvalidInputError", "20 to 59", "pension_kind")
    # kind 2 ends at 70
    seventy = arrive(register, dt.date(1954, 1, 10), dt.date(2020, 1, 5))
    refused(register, ev("record_items", "p8", resident_code=seventy, pension_kind=2,
                         pension_since=dt.date(2024, 1, 9), event_date=dt.date(2024, 1, 9)),
            "InvalidInputError", "under 70", "pension_kind")


# -- foreign residents ---------------------------------------------------------------------


@pytest.mark.parametrize("items", [
    MID,
    MID | {"residence_status": "永住者", "period_of_stay": None, "stay_expires_on": None},
    MID | {"residence_status": "高度専門職2号", "period_of_stay": None, "stay_expires_on": None},
    MID | {"residence_status": "留学", "period_of_stay": "4年3月",
           "stay_expires_on": dt.date(2028, 6, 1)},
    {"nationality": "朝鮮", "foreign_status": "special_permanent",
     "residence_card_number": "XY00000001ZZ"},
    {"nationality": "ミャンマー", "foreign_status": "temporary_refuge", "period_of_stay": "6月",
     "stay_expires_on": dt.date(2024, 11, 30)},
    {"nationality": "トルコ", "foreign_status": "provisional_stay", "period_of_stay": "3月",
     "stay_expires_on": dt.date(2024, 8, 31)},
    {"nationality": "米国", "foreign_status": "nationality_loss_transition"},
])
def test_a_foreign_resident_moves_in(register: Register, items: dict[str, Any]) -> None:
    given = {k: v for k, v in items.items() if v is not None}
    code = arrive(register, dt.date(1990, 1, 1), TODAY - D(1), **given)
    assert items_of(register, code) == {**dict.fromkeys(RECORD_ITEMS), **given}


@pytest.mark.parametrize(("items", "words", "column"), [
    ({"foreign_status": "mid_long_term"}, "Japanese national", "foreign_status"),
    ({"nationality": "韓国"}, "needs foreign_status", "foreign_status"),
    ({"nationality": "日本", "foreign_status": "special_permanent",
      "residence_card_number": CARD}, "no nationality item", "nationality"),
    ({"nationality": "JAPAN", "foreign_status": "special_permanent",
      "residence_card_number": CARD}, "no nationality item", "nationality"),
    ({"nationality": "Ｊａｐａｎ", "foreign_status": "special_permanent",
      "residence_card_number": CARD}, "no nationality item", "nationality"),
    ({"nationality": "トルコ", "foreign_status": "provisional_stay", "period_of_stay": "99年",
      "stay_expires_on": dt.date(2024, 8, 31)}, "at most 5 years", "period_of_stay"),
    (MID | {"foreign_status": "resident"}, "one of mid_long_term", "foreign_status"),
    (MID | {"residence_status": None}, "required", "residence_status"),
    (MID | {"residence_card_number": None}, "required", "residence_card_number"),
    (MID | {"period_of_stay": None}, "required", "period_of_stay"),
    (MID | {"stay_expires_on": None}, "required", "stay_expires_on"),
    (MID | {"residence_status": "短期滞在"}, "not a status of residence", "residence_status"),
    (MID | {"residence_status": "高度専門職"}, "not a status of residence", "residence_status"),
    (MID | {"residence_status": "永住者"}, "without a period of stay", "period_of_stay"),
    (MID | {"residence_card_number": "ab12345678cd"}, "2 Latin capitals",
     "residence_card_number"),
    (MID | {"residence_card_number": "ＡＢ12345678ＣＤ"}, "2 Latin capitals",
     "residence_card_number"),
    (MID | {"residence_card_number": "AB1234567CD"}, "2 Latin capitals",
     "residence_card_number"),
    (MID | {"residence_card_number": "AB12345678CD "}, "surrounding spaces",
     "residence_card_number"),
    (MID | {"period_of_stay": "3ヶ月"}, "years, months and/or days", "period_of_stay"),
    (MID | {"period_of_stay": "0年"}, "years, months and/or days", "period_of_stay"),
    (MID | {"period_of_stay": "３年"}, "years, months and/or days", "period_of_stay"),
    (MID | {"period_of_stay": "3月"}, "longer than 3 months", "period_of_stay"),
    (MID | {"period_of_stay": "6年"}, "at most 5 years", "period_of_stay"),
    (MID | {"stay_expires_on": TODAY - D(2)}, "expired", "stay_expires_on"),
    (MID | {"stay_expires_on": dt.date(2030, 1, 1)}, "period of stay allows",
     "stay_expires_on"),
    ({"nationality": "朝鮮", "foreign_status": "special_permanent",
      "residence_card_number": CARD, "residence_status": "永住者"}, "does not apply",
     "residence_status"),
    ({"nationality": "朝鮮", "foreign_status": "special_permanent"}, "required",
     "residence_card_number"),
    ({"nationality": "ミャンマー", "foreign_status": "temporary_refuge", "period_of_stay": "7月",
      "stay_expires_on": dt.date(2024, 12, 31)}, "at most 6 months", "period_of_stay"),
    ({"nationality": "ミャンマー", "foreign_status": "temporary_refuge", "period_of_stay": "6月",
      "stay_expires_on": dt.date(2024, 11, 30), "residence_card_number": CARD},
     "does not apply", "residence_card_number"),
    ({"nationality": "米国", "foreign_status": "nationality_loss_transition",
      "residence_card_number": CARD}, "does not apply", "residence_card_number"),
    ({"nationality": "米国", "foreign_status": "birth_transition"}, "at most 60 days",
     "foreign_status"),
    ({"nationality": "x" * 51, "foreign_status": "birth_transition"}, "longer than 50",
     "nationality"),
    ({"nationality": "米\x00国", "foreign_status": "birth_transition"}, "control character",
     "nationality"),
])
def test_foreign_items_refused_on_move_in(register: Register, items: dict[str, Any],
                                          words: str, column: str) -> None:
    given = {k: v for k, v in items.items() if v is not None}
    refused(register, newcomer("bad", 77, dt.date(1990, 1, 1), TODAY - D(1), **given),
            "InvalidInputError", words, column)


def test_a_card_number_belongs_to_one_person(register: Register) -> None:
    first = arrive(register, dt.date(1990, 1, 1), TODAY - D(3), **MID)
    refused(register, newcomer("c2", 78, dt.date(1991, 1, 1), TODAY - D(1), **MID),
            "ConflictError", "another person", "residence_card_number")
    # the same batch: the second of two rows is refused
    rep = register.apply([newcomer("c3", 79, dt.date(1992, 1, 1), TODAY - D(1),
                                   **MID | {"residence_card_number": "QQ11111111QQ"}),
                          newcomer("c4", 80, dt.date(1993, 1, 1), TODAY - D(1),
                                   **MID | {"residence_card_number": "QQ11111111QQ"})],
                         actor=CLERK, today=TODAY)
    assert rep.applied == 1 and [r.column for r in rep.rejected] == ["residence_card_number"]
    # the holder's own renewal keeps it
    apply_ok(register, ev("residence_status_change", "c5", resident_code=first,
                          period_of_stay="3年", stay_expires_on=dt.date(2027, 5, 1)))


def test_a_foreign_newborn_is_a_birth_transition(register: Register) -> None:
    b = dict(household_id=1, relationship="子", family_name="鈴木", given_name="三郎",
             family_name_kana="スズキ", given_name_kana="サブロウ", sex=1,
             event_date=TODAY - D(3))
    refused(register, ev("birth", "b1", **b, nationality="中国", foreign_status="mid_long_term"),
            "InvalidInputError", "birth_transition", "foreign_status")
    refused(register, ev("birth", "b2", **b, nationality="中国"),
            "InvalidInputError", "needs foreign_status", "foreign_status")
    (code,) = apply_ok(register, ev("birth", "b3", **b, nationality="中国",
                                    foreign_status="birth_transition", nhi_since=TODAY - D(3)))
    rec = items_of(register, code)
    assert (rec["nationality"], rec["foreign_status"], rec["nhi_since"]) == (
        "中国", "birth_transition", TODAY - D(3))
    # day 60 after birth: still; granted special permanent residence with a certificate
    refused(register, ev("residence_status_change", "s1", resident_code=code,
                         nationality="台湾", event_date=TODAY + D(58), notified_date=TODAY + D(58)),
            "InvalidInputError", "at most 60 days", "foreign_status", today=TODAY + D(58))
    apply_ok(register, ev("residence_status_change", "s2", resident_code=code,
                          foreign_status="special_permanent",
                          residence_card_number="SP00000001AA",
                          event_date=TODAY + D(50), notified_date=TODAY + D(50)),
             today=TODAY + D(50))
    assert items_of(register, code)["foreign_status"] == "special_permanent"


# -- residence_status_change ---------------------------------------------------------------


def test_renewal_new_card_permanent_residence(register: Register) -> None:
    code = arrive(register, dt.date(1990, 1, 1), dt.date(2024, 1, 10),
                  **MID | {"stay_expires_on": dt.date(2024, 8, 1)})
    outbox = register.counts()["outbox"]
    apply_ok(register, ev("residence_status_change", "r1", resident_code=code,
                          event_date=TODAY - D(20), period_of_stay="3年",
                          stay_expires_on=dt.date(2027, 8, 1),
                          residence_card_number="AB00000002CD"))
    rec = items_of(register, code)
    assert (rec["period_of_stay"], rec["stay_expires_on"], rec["residence_card_number"]) == (
        "3年", dt.date(2027, 8, 1), "AB00000002CD")
    # permanent residence: period and expiry end with it
    apply_ok(register, ev("residence_status_change", "r2", resident_code=code,
                          residence_status="永住者", residence_card_number="AB00000003CD"))
    rec = items_of(register, code)
    assert (rec["residence_status"], rec["period_of_stay"], rec["stay_expires_on"]) == (
        "永住者", None, None)
    hist = [(h["item"], h["old_value"], h["new_value"], h["reason"])
            for h in register.history(code, actor=ADMIN).to_pylist()]
    assert ("period_of_stay", "3年", None, "residence_status_change") in hist
    assert ("residence_status", "技能実習2号イ", "永住者", "residence_status_change") in hist
    assert register.counts()["outbox"] == outbox  # none of it leaves
    # as_of answers the status of each day
    then = register.as_of(TODAY - D(21), actor=ADMIN).to_pylist()
    rec_then = next(r for r in then if r["resident_code"] == code)
    assert (rec_then["period_of_stay"], rec_then["stay_expires_on"]) == ("1年", dt.date(2024, 8, 1))
    # a renewal that changes nothing
    refused(register, ev("residence_status_change", "r3", resident_code=code,
                         residence_status="永住者"), "ConflictError", "current ones")
    # permanent residents have no period
    refused(register, ev("residence_status_change", "r4", resident_code=code,
                         period_of_stay="3年"), "InvalidInputError", "without a period of stay",
            "period_of_stay")


def test_loss_of_nationality_and_its_60_days(register: Register) -> None:
    code = code_of(register, 3)
    refused(register, ev("residence_status_change", "n0", resident_code=code,
                         nationality="米国", foreign_status="mid_long_term",
                         residence_status="定住者", period_of_stay="1年",
                         stay_expires_on=TODAY + D(300), residence_card_number=CARD),
            "ConflictError", "nationality_loss_transition", "foreign_status")
    lost = TODAY - D(61)
    apply_ok(register, ev("residence_status_change", "n1", resident_code=code,
                          nationality="米国", foreign_status="nationality_loss_transition",
                          event_date=lost))
    refused(register, ev("residence_status_change", "n2", resident_code=code,
                         nationality="カナダ", event_date=lost + D(61)),
            "InvalidInputError", "at most 60 days", "foreign_status")
    apply_ok(register, ev("residence_status_change", "n3", resident_code=code,
                          nationality="カナダ", event_date=lost + D(60)))
    # granted a status: the card and the period come with it
    apply_ok(register, ev("residence_status_change", "n4", resident_code=code,
                          foreign_status="mid_long_term", residence_status="定住者",
                          period_of_stay="5年", stay_expires_on=TODAY + D(1800),
                          residence_card_number="ZZ99999999ZZ"))
    # a foreign national cannot "lose nationality" again
    refused(register, ev("residence_status_change", "n5", resident_code=code,
                         foreign_status="nationality_loss_transition"),
            "ConflictError", "foreign national", "foreign_status")
    # naturalization: every foreign item ends
    apply_ok(register, ev("residence_status_change", "n6", resident_code=code,
                          cleared_items=["nationality"]))
    assert items_of(register, code) == dict.fromkeys(RECORD_ITEMS)


def test_a_voter_losing_nationality_leaves_the_roll_first(register: Register) -> None:
    code = code_of(register, 1)
    apply_ok(register, ev("record_items", "v1", resident_code=code, electoral_roll=1,
                          event_date=TODAY - D(5)))
    refused(register, ev("residence_status_change", "v2", resident_code=code,
                         nationality="米国", foreign_status="nationality_loss_transition"),
            "InvalidInputError", "electoral roll", "electoral_roll")
    apply_ok(register, ev("record_items", "v3", resident_code=code, electoral_roll=0),
             ev("residence_status_change", "v4", resident_code=code, nationality="米国",
                foreign_status="nationality_loss_transition"))


def test_residence_status_change_of_a_japanese_national_needs_nationality(
        register: Register) -> None:
    code = code_of(register, 1)
    refused(register, ev("residence_status_change", "j1", resident_code=code,
                         residence_card_number=CARD), "InvalidInputError", "Japanese national",
            "residence_card_number")
    refused(register, ev("residence_status_change", "j2", resident_code=code),
            "InvalidInputError", "at least one item")


# -- repeats, digests ------------------------------------------------------------------------


def test_a_repeat_is_a_duplicate_and_other_items_a_conflict(register: Register) -> None:
    code, other = code_of(register, 1), code_of(register, 3)
    first = ev("record_items", "x1", resident_code=code, nhi_since=TODAY - D(1),
               cleared_items=["child_allowance_since"])
    second = ev("record_items", "x2", resident_code=other, nhi_since=TODAY - D(1))
    # a batch (digests by the Rust core), then the same rows one by one (Python's digest)
    rep = register.apply([first, second], actor=CLERK, today=TODAY)
    assert rep.applied == 2
    for row in (first, second):
        assert register.apply([row], actor=CLERK, today=TODAY).duplicates == 1
    refused(register, {**first, "nhi_since": TODAY - D(2)}, "ConflictError", "other content",
            "notification_id")
    refused(register, {**first, "cleared_items": ["nhi_since"], "nhi_since": None},
            "ConflictError", "other content", "notification_id")


# -- the bulk load ---------------------------------------------------------------------------


def _with_items(residents: pa.Table, rows: dict[int, dict[str, Any]]) -> pa.Table:
    """``residents`` with item columns, set for the given row indexes."""
    out = residents
    for name in RECORD_ITEMS:
        if not any(name in r for r in rows.values()):
            continue
        typ = RESIDENT_SCHEMA.field(name).type
        values = [rows.get(i, {}).get(name) for i in range(residents.num_rows)]
        out = out.append_column(pa.field(name, typ), pa.array(values, typ))
    return out


def test_load_takes_the_items(empty_register: Register,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    residents, households = tiny_municipality()
    # row 0: person 1 (born 1970-02-11), a voter with insurances; row 1: a foreign spouse
    res = _with_items(residents, {
        0: {"electoral_roll": 1, "nhi_since": dt.date(2005, 4, 1), "pension_kind": 1,
            "pension_since": dt.date(2005, 4, 1), "ltc_insurance_since": dt.date(2010, 2, 10)},
        1: {"nationality": "韓国", "foreign_status": "special_permanent",
            "residence_card_number": "KR00000001AB"},
    })
    load_on(empty_register, LOAD_DAY, monkeypatch, res, households)
    got = empty_register.residents(actor=ADMIN).to_pylist()
    assert (got[0]["electoral_roll"], got[0]["pension_kind"], got[1]["nationality"],
            got[1]["residence_card_number"]) == (1, 1, "韓国", "KR00000001AB")
    assert all(r[k] is None for r in got[2:] for k in RECORD_ITEMS)
    # what went to the outbox: the identity items and nothing else
    out = empty_register.outbox(actor=ADMIN)
    assert set(out.column_names).isdisjoint(RECORD_ITEMS)
    assert "KR00000001AB" not in str(out.to_pylist())


@pytest.mark.parametrize(("rows", "error", "words", "column"), [
    ({0: {"electoral_roll": 3}}, InvalidInputError, "one of 0, 1", "electoral_roll"),
    ({0: {"elderly_care_since": dt.date(2024, 1, 1)}}, InvalidInputError, "not before 65",
     "elderly_care_since"),
    ({0: {"nhi_since": dt.date(2020, 1, 1), "elderly_care_since": dt.date(2020, 1, 1)}},
     InvalidInputError, "clear nhi_since", "nhi_since"),
    ({0: {"pension_kind": 1}}, InvalidInputError, "needs pension_since", "pension_since"),
    ({0: {"nhi_since": dt.date(2030, 1, 1)}}, InvalidInputError, "future", "nhi_since"),
    ({0: {"nhi_since": dt.date(1960, 1, 1)}}, InvalidInputError, "before the date of birth",
     "nhi_since"),
    ({0: {"foreign_status": "special_permanent"}}, InvalidInputError, "Japanese national",
     "foreign_status"),
    ({0: {"nationality": "韓国", "foreign_status": "special_permanent",
          "residence_card_number": "bad"}}, InvalidInputError, "2 Latin capitals",
     "residence_card_number"),
    ({0: {"nationality": "韓国", "foreign_status": "special_permanent",
          "residence_card_number": CARD},
      1: {"nationality": "韓国", "foreign_status": "special_permanent",
          "residence_card_number": CARD}}, InvalidInputError, "repeat", "residence_card_number"),
])
def test_load_refuses_bad_items_and_changes_nothing(
        empty_register: Register, rows: dict[int, dict[str, Any]], error: type[Exception],
        words: str, column: str) -> None:
    residents, households = tiny_municipality()
    before, counts = empty_register.content_digest(), empty_register.counts()
    with pytest.raises(error) as info:
        empty_register.load(_with_items(residents, rows), households, actor=ADMIN,
                            today=TODAY)
    text = str(info.value) + " " + " ".join(f"{r.column}: {r.reason}"
                                            for r in info.value.rows)  # type: ignore[attr-defined]
    assert words in text and column in text, text
    assert empty_register.content_digest() == before and empty_register.counts() == counts


def test_load_refuses_a_card_held_by_a_record(register: Register) -> None:
    code = arrive(register, dt.date(1990, 1, 1), TODAY - D(3), **MID)
    assert code
    residents, households = tiny_municipality(households=1)
    residents = residents.set_column(
        residents.schema.get_field_index("given_name"), "given_name",
        pa.array(["新"] * residents.num_rows))
    before = register.content_digest()
    with pytest.raises(ConflictError, match="residence card numbers"):
        register.load(_with_items(residents, {0: {"nationality": "ベトナム", **MID}}),
                      households, actor=ADMIN, today=TODAY)
    assert register.content_digest() == before


# -- never beyond the municipality -------------------------------------------------------------


def test_none_of_the_items_reaches_a_packet_or_an_identity_store(
        tmp_path: Path, store_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A municipality with every item set exports its night: the packet's table (decrypted
    by the prefecture) and the prefecture's identity store hold the six items only, and no
    value of the record items."""
    from jukicore.identity import IDENTITY_SCHEMA, create_identity_store, open_identity_store
    from jukicore.network.node import init_node, trust_each_other
    from jukicore.network.packet import Packet
    from jukicore.network.sync import apply_packet, export_changes

    password = "correct horse battery staple"
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", password)
    muni = init_node(tmp_path / "muni", LG, store=store_target)
    pref_target = str(tmp_path / "pref.db")
    pref = init_node(tmp_path / "pref", "130001", store=pref_target)
    create_identity_store(pref.store_target(), node_id="130001", kind="prefecture").close()
    reg = create_register(muni.store_target(), lg_code=LG, prefecture=PREF,
                          municipality=MUNI, actor=ADMIN)
    with reg:
        reg.import_code_block(make_block(50), actor=ADMIN)
        residents, households = tiny_municipality(households=2)
        load_on(reg, LOAD_DAY, monkeypatch, residents, households)
        voter = code_of(reg, 1)
        apply_ok(reg, ev("record_items", "r1", resident_code=voter, electoral_roll=1,
                         nhi_since=dt.date(2020, 4, 1), pension_kind=1,
                         pension_since=dt.date(2000, 4, 1),
                         child_allowance_since=dt.date(2011, 5, 1),
                         ltc_insurance_since=dt.date(2010, 2, 10)))
        foreign = arrive(reg, dt.date(1990, 1, 1), TODAY - D(10), **MID)
        apply_ok(reg, ev("residence_status_change", "s1", resident_code=foreign,
                         residence_card_number="QZ76543210XY", period_of_stay="3年",
                         stay_expires_on=dt.date(2027, 5, 1)))
        # a name change after them: identity info of the same people does leave
        apply_ok(reg, ev("name_change", "n1", resident_code=foreign, given_name="健太"))
        assert set(reg.outbox(actor=ADMIN).column_names) == set(OUTBOX_SCHEMA.names)
    trust_each_other((muni, pref), password)
    packet_path = export_changes(muni, "130001")
    assert packet_path is not None
    raw = packet_path.read_bytes()
    _, table = Packet.from_bytes(raw).verify_and_open(pref.trust(), "130001",
                                                      pref.current_keys(password))
    assert set(table.column_names) == set(IDENTITY_SCHEMA.names)
    text = str(table.to_pylist())
    secrets = ("QZ76543210XY", CARD, "ベトナム", "技能実習", "3年", "2027-05-01",
               "record_items", "residence_status_change")
    for s in secrets:
        assert s not in text, s
        assert s.encode() not in raw, s
    assert "健太" in text  # the check reads the right table
    # the identity store: its schema, and no value of the items
    inbox = pref.inbox / packet_path.name
    inbox.write_bytes(raw)
    assert apply_packet(pref, inbox).status == "applied"
    with open_identity_store(pref.store_target()) as st:
        cur = st.current(actor=st.node_id)
        assert set(cur.column_names) <= {*IDENTITY_SCHEMA.names, "lg_code"}
        assert not any(s in str(cur.to_pylist()) for s in secrets[:5])
