"""The one exception hierarchy of jukicore.

Every error jukicore raises on purpose is a :class:`JukiError`. Errors caused by
what the caller passed in are also :class:`ValueError` (or ``PermissionError``,
``LookupError``, ``ImportError`` where that is the better-known base), so code
that does not know jukicore still catches them in the usual way.

The Rust extension maps its core errors onto these classes; it defines none of
its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AuditCheckpointError",
    "AuthenticationError",
    "BadRow",
    "CertificateRefusedError",
    "CodeSpaceExhaustedError",
    "ConflictError",
    "CorruptFileError",
    "FileError",
    "InvalidInputError",
    "JukiError",
    "MisaddressedPacketError",
    "MissingDependencyError",
    "MissingFontError",
    "NetworkError",
    "NotFoundError",
    "PacketRefusedError",
    "PacketSequenceError",
    "PermissionDeniedError",
    "SchemaVersionError",
    "StoreError",
    "TamperedCertificateError",
    "TamperedPacketError",
    "UntrustedCertificateError",
    "UntrustedSenderError",
]


class JukiError(Exception):
    """Root of every error jukicore raises on purpose."""


@dataclass(frozen=True)
class BadRow:
    """One rejected row of a column or table: its position, column and reason."""

    row: int
    reason: str
    column: str | None = None

    def __str__(self) -> str:
        where = f"row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.reason}"


class _WithRows(JukiError):
    """An error that may name the offending rows of a column or table."""

    #: How many rows the message shows before "(and N more)".
    SHOWN = 5

    def __init__(self, message: str, rows: Sequence[BadRow] = (), *,
                 total: int | None = None) -> None:
        """``rows``: the offending rows (pass them all); ``total``: how many there are when
        ``rows`` holds only the first ones. "(and N more)" counts from ``total``, exact."""
        self.rows: tuple[BadRow, ...] = tuple(rows)
        self.total: int = len(self.rows) if total is None else max(int(total), len(self.rows))
        if self.rows:
            shown = "; ".join(str(r) for r in self.rows[:self.SHOWN])
            hidden = self.total - min(len(self.rows), self.SHOWN)
            more = f" (and {hidden} more)" if hidden > 0 else ""
            message = f"{message}: {shown}{more}"
        super().__init__(message)


class InvalidInputError(_WithRows, ValueError):
    """Input that jukicore refuses; nothing was changed.

    ``rows`` lists every offending row (position in the input, column, reason)
    when the input was a column or a table; it is empty for a scalar.
    """


class CorruptFileError(JukiError, ValueError):
    """A file jukicore wrote was truncated, corrupted, or is of an unknown version."""


class FileError(JukiError, OSError):
    """A file could not be read or written (missing, not a regular file, too large,
    disk full, no permission); the message names the path. Nothing was changed."""


class CodeSpaceExhaustedError(JukiError, RuntimeError):
    """Not enough fresh codes are left (in a block, or in the whole code space)."""


class NotFoundError(JukiError, LookupError):
    """The thing asked for (resident, household, block, ...) does not exist."""


class ConflictError(_WithRows, ValueError):
    """The request contradicts the current state (a duplicate, an illegal transition).

    Like :class:`InvalidInputError`, ``rows`` names the offending rows of a column.
    """


class PermissionDeniedError(JukiError, PermissionError):
    """The actor may not do this (deny by default)."""


class AuthenticationError(PermissionDeniedError):
    """A login was refused (unknown operator, wrong password or card, disabled or locked
    account: one message for all), or a session has expired. Nothing but the audit entry
    of the refusal was written."""


class StoreError(JukiError):
    """The database could not do what was asked (connection, transaction)."""


class SchemaVersionError(StoreError):
    """The store's schema is newer than this jukicore knows, or cannot be migrated."""


class MissingDependencyError(JukiError, ImportError):
    """An optional dependency (an extra) is needed for this feature."""


class MissingFontError(MissingDependencyError):
    """The Japanese font every PDF is written in (IPAmj明朝) is not installed; the
    message says how to install it (:mod:`jukicore.documents.fonts`)."""


class PacketRefusedError(JukiError):
    """A packet between nodes was refused; nothing was applied."""


class TamperedPacketError(CorruptFileError, PacketRefusedError):
    """A packet is truncated, altered, or of an unknown format version."""


class UntrustedSenderError(PermissionDeniedError, PacketRefusedError):
    """The sender, or the key it signed with, is not in the recipient's trust store."""


class MisaddressedPacketError(PermissionDeniedError, PacketRefusedError):
    """The packet is for another node, or for a relation that does not exist."""


class PacketSequenceError(ConflictError, PacketRefusedError):
    """Applied twice, a replay, or a gap in the sender's numbering."""


class AuditCheckpointError(ConflictError, PacketRefusedError):
    """A sender's audit-log checkpoint is not signed by it, or is not consistent with the
    one it sent before (its past was rewritten); refused and audited."""


class CertificateRefusedError(JukiError):
    """A certificate of residence did not verify (``jukicore certificate verify``)."""


class TamperedCertificateError(CertificateRefusedError, CorruptFileError):
    """A certificate's PDF or QR payload was altered (a changed byte, a changed item, a
    payload whose signature does not verify, a PDF that says other than its payload)."""


class UntrustedCertificateError(CertificateRefusedError, PermissionDeniedError):
    """A certificate is signed by a node or key the trust store does not hold, by a
    revoked key, or by a key that was not valid at its issue time."""


class NetworkError(JukiError, ConnectionError):
    """A peer could not be reached, refused the handshake, or did not answer in time, after
    the retries. Nothing changed on this side; the request may have reached the peer
    (every service that changes state takes the same request again without doing it
    twice, so the same call can be made again)."""
