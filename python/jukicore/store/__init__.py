"""Storage: everything that differs between SQLite (the embedded default) and
PostgreSQL (the production store). No module outside this package names a dialect.

- :mod:`jukicore.store.schema`: logical tables and columns, DDL of each dialect,
  migrations written against :class:`Ddl`.
- :mod:`jukicore.store.backend`: connections, sessions (one transaction each),
  Arrow bulk paths (ADBC ingest on SQLite, COPY on PostgreSQL), locks, schema
  versions and migration, content digests.
"""

from __future__ import annotations

from .backend import (
    Backend,
    PostgresBackend,
    Session,
    SqliteBackend,
    StoreKind,
    connect,
    content_digest,
    create_store,
    installed_version,
    is_postgres_uri,
    migrate,
    open_store,
    rows_to_arrow,
    utcnow,
)
from .schema import DIALECTS, Column, Ddl, Index, Migration, Table

__all__ = [
    "DIALECTS",
    "Backend",
    "Column",
    "Ddl",
    "Index",
    "Migration",
    "PostgresBackend",
    "Session",
    "SqliteBackend",
    "StoreKind",
    "Table",
    "connect",
    "content_digest",
    "create_store",
    "installed_version",
    "is_postgres_uri",
    "migrate",
    "open_store",
    "rows_to_arrow",
    "utcnow",
]
