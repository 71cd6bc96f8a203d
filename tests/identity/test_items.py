"""One definition of what leaves a municipality (jukicore.identity.items)."""

from __future__ import annotations

from jukicore.identity import IDENTITY_SCHEMA
from jukicore.identity.items import CHANGE_ITEMS, IDENTITY_COLUMNS, IDENTITY_ITEMS, PERSON_ITEMS
from jukicore.register._schema import TABLE_BY_NAME, TRACKED_ITEMS


def test_the_six_items() -> None:
    """Name (two parts), birth date, sex, address, resident code, and the change
    information: nothing else."""
    assert [c.name for c in PERSON_ITEMS] == [
        "resident_code", "family_name", "given_name", "birth_date", "sex", "address"]
    assert [c.name for c in CHANGE_ITEMS] == ["status", "change_date", "change_reason"]
    assert set(IDENTITY_COLUMNS) == {*PERSON_ITEMS, *CHANGE_ITEMS,
                                     *(c for c in IDENTITY_COLUMNS
                                       if c.name in ("seq", "previous_resident_code"))}
    assert IDENTITY_SCHEMA.names == [c.name for c in IDENTITY_COLUMNS]
    assert set(TRACKED_ITEMS) >= IDENTITY_ITEMS  # a change of each is in the history


def test_the_outbox_holds_the_identity_info_and_bookkeeping_only() -> None:
    outbox = TABLE_BY_NAME["outbox"]
    assert outbox.names == ["lg_code", *(c.name for c in IDENTITY_COLUMNS),
                            "notification_id", "recorded_at"]
    assert "my_number" not in outbox.names and "domicile" not in outbox.names
