"""Register viewing (住民基本台帳の一部の写しの閲覧): the counter service of Articles 11
and 11-2 of the Basic Resident Registration Act.

Only four items of a record are ever shown (name, address, birth date, sex), to a
public body for its statutory duties or to a private party for the purposes the law
allows, once a supervisor approved the request; each viewing is audited as a read of
personal data and charged per 30 minutes started; the list of viewings is published for
each half-year as CSV and PDF. See docs/viewing.md.

    from jukicore.viewing import Viewings
    desk = Viewings(register)
    rid = desk.request(kind="private", requester="…", purpose="survey", …, actor=clerk)
    desk.approve(rid, actor=supervisor)
    v = desk.record(rid, viewers={"…": "driver_license"}, actor=clerk)   # v.table
    desk.finish(v.session_id, actor=clerk)                                # the fee
    desk.publish(2024, 1, "out/", actor=supervisor)
"""

from __future__ import annotations

from ._schema import (
    EXTRACT_SCHEMA,
    FOUR_ITEMS,
    PUBLICATION_SCHEMA,
    REQUEST_SCHEMA,
    SESSION_SCHEMA,
)
from .desk import Publication, Viewing, Viewings
from .rules import (
    ID_KINDS,
    PHOTO_IDS,
    PURPOSES,
    Period,
    Purpose,
    fee_for,
    half_year,
    periods_started,
)

__all__ = ["EXTRACT_SCHEMA", "FOUR_ITEMS", "ID_KINDS", "PHOTO_IDS", "PUBLICATION_SCHEMA",
           "PURPOSES", "REQUEST_SCHEMA", "SESSION_SCHEMA", "Period", "Publication", "Purpose",
           "Viewing", "Viewings", "fee_for", "half_year", "periods_started"]
