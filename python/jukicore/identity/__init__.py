"""Identity confirmation info (本人確認情報) held by prefectures and the center."""

from __future__ import annotations

from .provide import ANSWERS, VERIFY_ANSWERS, FourItems
from .purposes import Purpose
from .store import (
    CHANGE_REASONS,
    IDENTITY_COLUMNS,
    IDENTITY_SCHEMA,
    ApplyResult,
    IdentityStore,
    create_identity_store,
    open_identity_store,
)

__all__ = [
    "ANSWERS",
    "CHANGE_REASONS",
    "IDENTITY_COLUMNS",
    "IDENTITY_SCHEMA",
    "VERIFY_ANSWERS",
    "ApplyResult",
    "FourItems",
    "IdentityStore",
    "Purpose",
    "create_identity_store",
    "open_identity_store",
]
