"""The special move-in/out (転入転出の特例): a move-out filed by mail or online with a card
at the old municipality, the move-in at the new one with the card and its PIN, the
move-out data fetched over the network, both ends atomic and resumable.

See :mod:`jukicore.moves.service` and docs/moves.md.
"""

from __future__ import annotations

from ._schema import MOVE_IN_SCHEMA, MOVE_OUT_SCHEMA
from .service import (
    ARRIVAL_DAYS,
    CONFIRM_PATH,
    FETCH_PATH,
    PLANNED_DAYS,
    ROUTES,
    Call,
    SpecialMoves,
    data_digest,
    node_pin_key,
    resume,
)

__all__ = ["ARRIVAL_DAYS", "CONFIRM_PATH", "FETCH_PATH", "MOVE_IN_SCHEMA", "MOVE_OUT_SCHEMA",
           "PLANNED_DAYS", "ROUTES", "Call", "SpecialMoves", "data_digest", "node_pin_key",
           "resume"]
