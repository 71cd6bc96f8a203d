"""The municipality's side of the nightly synchronization, kept in its register.

Per recipient (its prefecture and the center) the last outbox entry that
recipient acknowledged, and a log of every packet sent and acknowledgement
received (the "histories of communication" the system keeps). Mixed into
:class:`jukicore.register.Register`; every change is one transaction with its
audit entry.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from jukicore import audit
from jukicore.access import actors as perm
from jukicore.access.actors import Actor
from jukicore.errors import InvalidInputError, PacketSequenceError
from jukicore.store.backend import utcnow

if TYPE_CHECKING:
    from jukicore.store.backend import Backend, Session


class SyncState:
    """Methods of :class:`~jukicore.register.Register` for the synchronization."""

    _b: Backend

    def _check(self, actor: Actor, permission: str) -> None:  # provided by Register
        raise NotImplementedError

    def _sync_audit(self, s: Session, actor: Actor, action: str, detail: str) -> None:
        audit.write(s, actor, action, None, detail)

    def outbox_last_seq(self, *, actor: Actor) -> int:
        """The number of the last identity-info change in the outbox (0 when empty)."""
        self._check(actor, perm.EXPORT)
        with self._b.session(write=False) as s:
            v = s.scalar("SELECT max(seq) FROM outbox")
        return 0 if v is None else int(v)

    def sync_acked(self, peer: str, *, actor: Actor) -> int:
        """The last outbox entry ``peer`` acknowledged (0 when none)."""
        self._check(actor, perm.EXPORT)
        with self._b.session(write=False) as s:
            v = s.scalar("SELECT acked_seq FROM sync_peers WHERE peer = ?", (peer,))
        return 0 if v is None else int(v)

    def sync_peers(self, *, actor: Actor) -> dict[str, int]:
        """Every recipient with its last acknowledged entry."""
        self._check(actor, perm.EXPORT)
        with self._b.session(write=False) as s:
            rows = s.query("SELECT peer, acked_seq FROM sync_peers ORDER BY peer")
        return {str(p): int(a) for p, a in rows}

    def sync_lag(self, peer: str, *, actor: Actor, now: dt.datetime | None = None) -> float:
        """Seconds ``peer`` is behind: since the first packet that carried an entry it has
        not acknowledged was sent (0 when it holds every entry, or nothing is sent yet)."""
        self._check(actor, perm.EXPORT)
        with self._b.session(write=False) as s:
            acked = s.scalar("SELECT acked_seq FROM sync_peers WHERE peer = ?", (peer,))
            first = s.scalar("SELECT min(at) FROM sync_log WHERE peer = ? AND direction ="
                             " 'out' AND kind = 'identity-changes' AND last_seq > ?",
                             (peer, 0 if acked is None else int(acked)))
        if first is None:
            return 0.0
        at = first if isinstance(first, dt.datetime) else dt.datetime.fromisoformat(str(first))
        at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at
        return max(0.0, ((now or utcnow()) - at).total_seconds())

    def sync_sent(self, peer: str, first: int, last: int, *, actor: Actor) -> str | None:
        """The id of the packet already sent to ``peer`` for ``first..last``, if any."""
        self._check(actor, perm.EXPORT)
        with self._b.session(write=False) as s:
            v = s.scalar(
                "SELECT packet_id FROM sync_log WHERE peer = ? AND direction = 'out'"
                " AND first_seq = ? AND last_seq = ?", (peer, first, last))
        return None if v is None else str(v)

    def log_sync_packet(self, packet_id: str, direction: str, peer: str, kind: str,
                        first: int, last: int, *, actor: Actor) -> None:
        """Record a packet sent (``out``) or received (``in``)."""
        self._check(actor, perm.EXPORT)
        if direction not in ("in", "out"):
            raise InvalidInputError(f"direction is 'in' or 'out', not {direction!r}")
        with self._b.session() as s:
            s.execute("INSERT INTO sync_log (packet_id, direction, peer, kind, first_seq,"
                      " last_seq, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (packet_id, direction, peer, kind, first, last, s.ts(utcnow())))
            self._sync_audit(s, actor, f"sync.{direction}", f"{kind} {packet_id} {peer} "
                             f"{first}..{last}")

    def sync_sent_up_to(self, peer: str, *, actor: Actor) -> int:
        """The last outbox entry exported to ``peer`` in any packet (0 when none)."""
        self._check(actor, perm.EXPORT)
        with self._b.session(write=False) as s:
            return self._sent_up_to(s, peer)

    @staticmethod
    def _sent_up_to(s: Session, peer: str) -> int:
        v = s.scalar("SELECT max(last_seq) FROM sync_log WHERE peer = ? AND direction = 'out'"
                     " AND kind = 'identity-changes'", (peer,))
        return 0 if v is None else int(v)

    def record_sync_ack(self, peer: str, acked: int, packet_id: str, *, actor: Actor,
                        rewind: bool = False) -> bool:
        """Record that ``peer`` acknowledged every entry up to ``acked``.

        Acknowledgements are cumulative: an older or repeated one changes nothing
        (and returns False). A ``rewind`` acknowledgement (the peer's store was restored
        from a backup and holds only the entries up to ``acked``) sets the position back
        to ``acked`` (audit ``sync.rewind``), so the entries after it are exported again;
        a repeated one (same ``packet_id``) changes nothing.

        One acknowledging entries never exported to ``peer``
        (beyond the last entry of the packets logged as sent to it) is refused with
        :class:`~jukicore.errors.PacketSequenceError`, changes nothing, and is written
        to the audit log (``sync.ack-refused``): accepting it would drop those entries
        from every later export.
        """
        self._check(actor, perm.EXPORT)
        if isinstance(acked, bool) or not isinstance(acked, int) or acked < 0:
            raise InvalidInputError(f"{peer} acknowledges entry {acked!r}: not a sequence "
                                    "number")
        with self._b.session(write=False) as s:
            sent = self._sent_up_to(s, peer)
        if acked > sent:
            reason = (f"{peer} acknowledges entries up to {acked}, but only entries up to "
                      f"{sent} were sent to it (packet {packet_id})")
            with self._b.session() as s:
                self._sync_audit(s, actor, "sync.ack-refused", reason)
            raise PacketSequenceError(f"acknowledgement refused: {reason}")
        with self._b.session() as s:
            cur = s.scalar("SELECT acked_seq FROM sync_peers WHERE peer = ?", (peer,))
            if s.query("SELECT 1 FROM sync_log WHERE packet_id = ?", (packet_id,)):
                return False
            s.execute("INSERT INTO sync_log (packet_id, direction, peer, kind, first_seq,"
                      " last_seq, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (packet_id, "in", peer, "ack", acked, acked, s.ts(utcnow())))
            if cur is not None and int(cur) > acked and rewind:
                s.execute("UPDATE sync_peers SET acked_seq = ? WHERE peer = ?", (acked, peer))
                self._sync_audit(s, actor, "sync.rewind",
                                 f"{peer} holds entries up to {acked} only (it had "
                                 f"acknowledged {int(cur)}): the entries after are sent again")
                return True
            if cur is not None and int(cur) >= acked:
                return False
            if cur is None:
                s.execute("INSERT INTO sync_peers (peer, acked_seq) VALUES (?, ?)",
                          (peer, acked))
            else:
                s.execute("UPDATE sync_peers SET acked_seq = ? WHERE peer = ?", (acked, peer))
            self._sync_audit(s, actor, "sync.ack", f"{peer} acknowledged up to {acked}")
        return True

    def sync_log(self, *, actor: Actor) -> list[dict[str, Any]]:
        """Every packet sent and acknowledgement received, oldest first."""
        self._check(actor, perm.EXPORT)
        with self._b.session(write=False) as s:
            rows = s.query("SELECT packet_id, direction, peer, kind, first_seq, last_seq, at"
                           " FROM sync_log ORDER BY at, packet_id")
        keys = ("packet_id", "direction", "peer", "kind", "first_seq", "last_seq", "at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def code_block_imported(self, block_id: str, *, actor: Actor) -> bool:
        self._check(actor, perm.READ)
        with self._b.session(write=False) as s:
            return bool(s.query("SELECT 1 FROM code_blocks WHERE block_id = ?", (block_id,)))
