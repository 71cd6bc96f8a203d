"""What a certificate of residence may show: its items, their labels, the groups a
request may name, and how values are written (dates in 和暦 and the Western calendar).

An item is either shown always (the base items: name, reading, date of birth, sex,
address, the head of the household, the dates of becoming a resident and of the
address, the previous address; for a removed record, the date and reason of its
removal) or only on request and right (:data:`OPTIONAL_ITEMS`). The optional items
that municipalities' layouts print as 「省略」 when not requested are
:data:`SHOWN_OMITTED`; the Article 7 and foreign residents' items are simply absent
when not requested.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from jukicore.errors import InvalidInputError

__all__ = [
    "ARTICLE7_ITEMS",
    "FOREIGN_ITEMS",
    "GROUPS",
    "LABELS",
    "OMITTED",
    "OPTIONAL_ITEMS",
    "RECORD_ITEMS",
    "SHOWN_OMITTED",
    "WIDE_AREA_ITEMS",
    "expand_items",
    "format_value",
    "wareki",
    "western",
]

#: Written where an item exists on the layout but was not requested (or not allowed).
OMITTED = "省略"
#: Written for an item requested but not recorded for this person.
NOT_RECORDED = "―"

#: Article 7 items (住民基本台帳法第7条) recorded by the register's record columns.
ARTICLE7_ITEMS: tuple[str, ...] = (
    "electoral_roll", "nhi_since", "elderly_care_since", "ltc_insurance_since",
    "pension_kind", "pension_since", "child_allowance_since",
)
#: Foreign residents' items (法第30条の45).
FOREIGN_ITEMS: tuple[str, ...] = (
    "nationality", "foreign_status", "residence_status", "period_of_stay",
    "stay_expires_on", "residence_card_number",
)
#: Items shown only on request (and right), in the order they are printed.
OPTIONAL_ITEMS: tuple[str, ...] = (
    "relationship", "domicile", "resident_code", "my_number", *ARTICLE7_ITEMS, *FOREIGN_ITEMS,
)
#: Optional items the layout prints as 「省略」 when they are not on the certificate.
SHOWN_OMITTED: tuple[str, ...] = ("relationship", "domicile", "resident_code", "my_number")
#: The optional items a wide-area certificate (広域交付, 住民基本台帳法第12条の4) may show.
#: Never the domicile and its head (本籍・筆頭者: the seeds); the Article 7 items, the
#: foreign residents' items and My Number are left out as well (the seeds name only
#: 本籍・筆頭者; the law omits the Article 7 items too, and My Numbers never leave their
#: municipality in jukicore: docs/certificates.md).
WIDE_AREA_ITEMS: tuple[str, ...] = ("relationship", "resident_code")
#: Names a request may use for several items at once.
GROUPS: dict[str, tuple[str, ...]] = {"article7": ARTICLE7_ITEMS, "foreign": FOREIGN_ITEMS}

#: The record columns behind each optional item (the domicile item shows two).
RECORD_ITEMS: dict[str, tuple[str, ...]] = {
    **{i: (i,) for i in OPTIONAL_ITEMS},
    "domicile": ("domicile", "domicile_head"),
}

LABELS: dict[str, str] = {
    "name": "氏名",
    "kana": "フリガナ",
    "birth_date": "生年月日",
    "sex": "性別",
    "head": "世帯主",
    "address": "住所",
    "resident_since": "住民となった年月日",
    "address_since": "住所を定めた年月日",
    "move_in_notified": "届出日",
    "previous_address": "従前の住所",
    "removal": "消除",
    "removal_reason": "消除事由",
    "removal_date": "消除された年月日",
    "move_out_destination": "転出先",
    "relationship": "続柄",
    "domicile": "本籍",
    "domicile_head": "筆頭者",
    "resident_code": "住民票コード",
    "my_number": "個人番号",
    "electoral_roll": "選挙人名簿への登録",
    "nhi_since": "国民健康保険の資格取得日",
    "elderly_care_since": "後期高齢者医療の資格取得日",
    "ltc_insurance_since": "介護保険の資格取得日",
    "pension_kind": "国民年金の種別",
    "pension_since": "国民年金の資格取得日",
    "child_allowance_since": "児童手当の受給開始日",
    "nationality": "国籍・地域",
    "foreign_status": "法第30条の45に規定する区分",
    "residence_status": "在留資格",
    "period_of_stay": "在留期間",
    "stay_expires_on": "在留期間の満了の日",
    "residence_card_number": "在留カード等の番号",
}

REMOVAL_REASONS: dict[str, str] = {"moved_out": "転出", "died": "死亡",
                                   "ex_officio": "職権消除"}
SEXES: dict[int, str] = {1: "男", 2: "女"}

#: The eras of the Japanese calendar (first day, name), latest first.
_ERAS: tuple[tuple[dt.date, str], ...] = (
    (dt.date(2019, 5, 1), "令和"),
    (dt.date(1989, 1, 8), "平成"),
    (dt.date(1926, 12, 25), "昭和"),
    (dt.date(1912, 7, 30), "大正"),
    (dt.date(1873, 1, 1), "明治"),  # the Gregorian calendar's adoption (明治6年)
)


def wareki(day: dt.date) -> str:
    """``day`` in the Japanese calendar: 令和6年6月3日, the first year of an era as 元年.
    Before 1873 (the Gregorian calendar's adoption) the Western date is written."""
    if isinstance(day, dt.datetime):
        day = day.date()
    for start, era in _ERAS:
        if day >= start:
            year = day.year - start.year + 1
            if era == "明治":
                year = day.year - 1867
            y = "元" if year == 1 else str(year)
            return f"{era}{y}年{day.month}月{day.day}日"
    return western(day)


def western(day: dt.date) -> str:
    """``day`` in the Western calendar as printed beside the Japanese one: 2024年6月3日."""
    return f"{day.year}年{day.month}月{day.day}日"


def format_value(item: str, value: Any) -> str:
    """How a record's value of ``item`` is printed (and carried in the QR payload)."""
    if value is None or value == "":
        return NOT_RECORDED
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return wareki(value)
    if item == "sex":
        return SEXES.get(int(value), NOT_RECORDED)
    if item == "removal_reason":
        return REMOVAL_REASONS.get(str(value), str(value))
    if item == "resident_code":
        return str(int(value)).zfill(11)
    if item == "my_number":
        return str(int(value)).zfill(12)
    if isinstance(value, bool):
        return "有" if value else "無"
    return str(value)


def expand_items(items: Iterable[str] | str | None) -> frozenset[str]:
    """The optional items a request names (groups expanded); an unknown name is an
    :class:`InvalidInputError` naming it."""
    if items is None:
        return frozenset()
    if isinstance(items, str):
        items = [p for p in items.replace(" ", ",").split(",") if p]
    out: set[str] = set()
    unknown: list[str] = []
    for name in items:
        if not isinstance(name, str):
            raise InvalidInputError(f"an item is a name, not {type(name).__name__}")
        if name in GROUPS:
            out.update(GROUPS[name])
        elif name in OPTIONAL_ITEMS:
            out.add(name)
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(repr(u[:40]) for u in unknown[:5])
        raise InvalidInputError(
            f"unknown certificate items: {shown}; the items are "
            f"{', '.join(OPTIONAL_ITEMS)} (groups: {', '.join(GROUPS)})")
    return frozenset(out)
