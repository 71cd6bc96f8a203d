"""The notification (届出) table that :meth:`Register.apply` takes: one Arrow schema, all kinds."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["EVENT_SCHEMA", "KINDS", "REASON_LABELS", "RESTATED_TYPE", "empty_events",
           "events_table"]

#: Every kind of notification, with the reason recorded in the history (付随情報).
REASON_LABELS: dict[str, str] = {
    "birth": "出生",
    "death": "死亡",
    "move_in": "転入",
    "move_out": "転出",
    "move_within": "転居",
    "household_change": "世帯変更",
    "name_change": "氏名変更",
    "code_change": "住民票コード変更",
    "my_number": "個人番号指定",
    "ex_officio_removal": "職権消除",
    # the old municipality closes a planned move-out at the actual move-in date that the new
    # municipality reported (転入通知): a removed record's removal date moves earlier
    "move_out_correction": "転出日訂正",
    # a change of the Article 7 items (electoral roll, insurances, pension, child
    # allowance), notified or ex officio
    "record_items": "記載事項変更",
    # the immigration services' notice (Article 30-50): status of residence, period of
    # stay, card number; also a Japanese national's loss of nationality (経過滞在)
    "residence_status_change": "在留資格等変更",
}
KINDS: tuple[str, ...] = tuple(REASON_LABELS)

#: One restated relationship (続柄) of a household member: whose, and the new one.
RESTATED_TYPE: pa.DataType = pa.list_(pa.struct([pa.field("resident_code", pa.uint64()),
                                                 pa.field("relationship", pa.string())]))

#: One row per notification. ``kind`` says which columns a row needs (docs/register.md).
EVENT_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("notification_id", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("notified_date", pa.date32()),
        pa.field("event_date", pa.date32()),
        pa.field("resident_code", pa.uint64()),
        pa.field("family_name", pa.string()),
        pa.field("given_name", pa.string()),
        pa.field("family_name_kana", pa.string()),
        pa.field("given_name_kana", pa.string()),
        pa.field("birth_date", pa.date32()),
        pa.field("sex", pa.int8()),
        pa.field("household_id", pa.int64()),
        pa.field("relationship", pa.string()),
        pa.field("household_action", pa.string()),
        pa.field("new_head_code", pa.uint64()),
        pa.field("whole_household", pa.bool_()),
        pa.field("domicile", pa.string()),
        pa.field("domicile_head", pa.string()),
        pa.field("postal_code", pa.string()),
        pa.field("town", pa.string()),
        pa.field("street", pa.string()),
        pa.field("building", pa.string()),
        pa.field("previous_address", pa.string()),
        pa.field("from_abroad", pa.bool_()),
        pa.field("destination", pa.string()),
        pa.field("my_number", pa.uint64()),
        # household_change new_head: other members' relationships restated to the new head
        pa.field("restated_relationships", RESTATED_TYPE),
        # the Article 7 items and the foreign residents' items (docs/register.md): given
        # with a birth or a move-in, changed by record_items / residence_status_change
        pa.field("electoral_roll", pa.int8()),
        pa.field("nhi_since", pa.date32()),
        pa.field("elderly_care_since", pa.date32()),
        pa.field("ltc_insurance_since", pa.date32()),
        pa.field("pension_kind", pa.int8()),
        pa.field("pension_since", pa.date32()),
        pa.field("child_allowance_since", pa.date32()),
        pa.field("nationality", pa.string()),
        pa.field("foreign_status", pa.string()),
        pa.field("residence_status", pa.string()),
        pa.field("period_of_stay", pa.string()),
        pa.field("stay_expires_on", pa.date32()),
        pa.field("residence_card_number", pa.string()),
        # record_items / residence_status_change: items that end (set to null)
        pa.field("cleared_items", pa.list_(pa.string())),
    ]
)


def empty_events() -> pa.Table:
    return EVENT_SCHEMA.empty_table()


def events_table(rows: list[dict[str, object]]) -> pa.Table:
    """Build an events table from dicts (missing keys are null); handy for one-off use."""
    full = [{name: row.get(name) for name in EVENT_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=EVENT_SCHEMA)
