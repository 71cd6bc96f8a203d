"""Identity confirmation info (本人確認情報) held by prefectures and the center."""

from __future__ import annotations

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
    "CHANGE_REASONS",
    "IDENTITY_COLUMNS",
    "IDENTITY_SCHEMA",
    "ApplyResult",
    "IdentityStore",
    "create_identity_store",
    "open_identity_store",
]
