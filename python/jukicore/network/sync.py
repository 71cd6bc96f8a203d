"""The nightly synchronization: municipality -> prefecture and center, and back.

``export_changes`` (municipality): the outbox entries the recipient has not
acknowledged become one packet: only the identity confirmation info
(:data:`jukicore.identity.IDENTITY_SCHEMA`), sensitive columns encrypted under a
fresh data key wrapped for the recipient, signed, bound to sender, recipient,
sequence range and creation time. The packet is written atomically into the
node's outbox and logged in the register; exporting again before anything new
or acknowledged happened writes nothing.

``apply_packet`` (any node): verifies the signature, the sender and the
relation, decrypts, and

* at a prefecture or the center, applies identity changes to the identity
  store exactly once (a packet or a range applied before changes nothing; a gap
  is refused) and answers with a signed acknowledgement of everything applied
  from that municipality, written atomically into the outbox;
* at a municipality, records an acknowledgement (acknowledged entries leave
  later exports; one of entries never sent to that peer is refused) or imports
  a code block into the register;
* after a restore (docs/backup.md): a prefecture or the center refuses a packet
  that starts past what its store holds (a gap) and answers with a *rewind*
  acknowledgement of its position; the municipality takes it (an ordinary older
  acknowledgement changes nothing) and sends everything after it again. Entries
  sent again that a store holds are skipped only when they are the same entries;
* at a prefecture, stores a code block from the center for splitting.

Packet files are read with :meth:`Packet.read` (regular files only, size checked
against the framing before the body is read); an odd inbox entry is refused on its
own and the others still apply. Every id used in a path follows
:func:`jukicore.network.crypto.check_path_id`. Exports to one recipient hold the node's
``export-RECIPIENT`` lock; every writing function first removes the temporary
files of killed runs (:meth:`Node.clean_temps`).

The inbox archive: :func:`apply_inbox` (``jukicore sync apply``) moves each packet it
applied, or found applied before, from ``inbox/`` into ``archive/YYYY-MM-DD/`` (the UTC
day of the move), so the inbox does not grow and no packet is verified twice. A refused
packet stays in the inbox (a packet beyond a gap applies once the gap is filled). The
move is a hard link into the archive, fsync, unlink from the inbox, fsync: a name taken
in the archive gets ``NAME.1.jkp``, ``NAME.2.jkp``, ... (never overwritten), and a run
killed between the apply's commit and the move leaves the packet in the inbox, where the
next run finds it applied and archives it (killed between the link and the unlink, the
next run recognizes the archived link and removes the inbox entry).

Logging: ``jukicore.network.sync`` logs each export (its seal: rows, bytes, seconds), each packet
applied or refused, and one summary per node and run (packets, rows, seconds), with the
figures as record fields (see :mod:`jukicore._log`).

Crash safety: every state change is one database transaction and every file is
written to a temporary name and renamed, so a run killed at any moment and
started again ends in the state of an uninterrupted run. A packet whose
changes were applied before the kill is refused as applied twice on the
second run, and its acknowledgement is written again (acknowledgements are
cumulative, so writing one twice is harmless).
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from jukicore._files import PRIVATE_DIR, PRIVATE_FILE, fsync_dir, private_dir, write_atomic
from jukicore._threads import one_ahead
from jukicore.audit.chain import accept_peer_checkpoint, packet_field
from jukicore.audit.chain import checkpoint_target as audit_checkpoint
from jukicore.codes import CodeBlock, lg_code_check_digit
from jukicore.errors import (
    AuditCheckpointError,
    ConflictError,
    CorruptFileError,
    FileError,
    InvalidInputError,
    JukiError,
    MisaddressedPacketError,
    PacketSequenceError,
    TamperedPacketError,
)
from jukicore.identity import IDENTITY_SCHEMA, open_identity_store
from jukicore.network.crypto import NodeKeys, check_node_id, check_path_id
from jukicore.network.node import CENTER, Node, check_relation
from jukicore.network.packet import MAX_PACKET_BYTES, Packet, PacketHeader
from jukicore.register import Actor, open_register

__all__ = [
    "ApplyOutcome",
    "apply_inbox",
    "apply_packet",
    "apply_packets",
    "archive_dir",
    "default_recipients",
    "export_changes",
    "inbox_packets",
    "send_code_block",
    "sync_status",
]

#: ``acked_packet`` of a rewind acknowledgement starts so: the peer holds only the
#: entries up to ``seq`` (its store was restored from a backup), and the municipality
#: sends again what follows (docs/backup.md).
REWIND = "rewind:"
ACK_SCHEMA = pa.schema([pa.field("seq", pa.int64(), False),
                        pa.field("acked_packet", pa.string(), False)])
BLOCK_SCHEMA = pa.schema([pa.field("seq", pa.int64(), False),
                          pa.field("block", pa.large_binary(), False)])

log = logging.getLogger(__name__)

#: The node's folder of applied packets (``archive/YYYY-MM-DD/NAME``).
ARCHIVE = "archive"


def _actor(node: Node) -> Actor:
    """The node's own synchronization software, acting on its register."""
    return Actor.node(node.node_id, node.node_id, "cs")


def packet_name(sender: str, recipient: str, kind: str, first: int, last: int) -> str:
    """The file name of a packet (sender and recipient follow the one id rule)."""
    check_node_id(sender)
    check_node_id(recipient)
    return f"{sender}-{recipient}-{kind}-{first:012d}-{last:012d}.jkp"


def inbox_packets(node: Node) -> list[Path]:
    """Every ``*.jkp`` entry of the node's inbox, in name order, whatever it is: a
    directory, a link or a FIFO named so is listed too and refused when applied, one by
    one, so that the other packets still apply."""
    try:
        names = sorted(e.name for e in os.scandir(node.inbox) if e.name.endswith(".jkp"))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise FileError(f"cannot list {node.inbox}: {exc.strerror or exc}") from None
    return [node.inbox / n for n in names]


# --------------------------------------------------------------------------- export


def export_changes(node: Node, recipient: str, *, password: str | bytes | None = None,
                   now: dt.datetime | None = None) -> Path | None:
    """Pack the changes ``recipient`` has not acknowledged; None when there are none.

    Logs the seal (``step="seal"``: rows, bytes, seconds to build, encrypt and sign) and
    the export (``step="export"``: rows, sequence range, bytes, seconds in all) on
    ``jukicore.network.sync``.
    """
    check_node_id(recipient)
    check_relation("identity-changes", node.node_id, recipient)
    t0 = time.perf_counter()
    node.clean_temps()
    keys = node.current_keys(password)
    trust = node.trust()
    actor = _actor(node)
    fields: dict[str, Any] = {"step": "export", "node": node.node_id, "recipient": recipient}
    # One export per (node, recipient) at a time: two runs would both find the range
    # unsent and log two packets for it.
    with node.lock(f"export-{recipient}"), open_register(node.store_target()) as reg:
        acked = reg.sync_acked(recipient, actor=actor)
        entries = reg.outbox(actor=actor, after_seq=acked)
        if entries.num_rows == 0:
            log.info("export to %s: nothing to send", recipient,
                     extra={**fields, "packets": 0, "rows": 0,
                            "seconds": time.perf_counter() - t0})
            return None
        first = int(entries.column("seq")[0].as_py())
        last = int(entries.column("seq")[-1].as_py())
        fields.update(rows=entries.num_rows, first_seq=first, last_seq=last)
        target = node.outbox / packet_name(node.node_id, recipient, "identity-changes",
                                           first, last)
        logged = reg.sync_sent(recipient, first, last, actor=actor)
        if logged is not None and target.exists():
            # exported already, nothing new since: idempotent
            log.info("export to %s: entries %d-%d exported before, %s", recipient, first,
                     last, target.name,
                     extra={**fields, "packets": 0, "packet": target.name,
                            "seconds": time.perf_counter() - t0})
            return target
        t1 = time.perf_counter()
        # a signed checkpoint of the audit log at every export
        # (and the packet carries it, with consistency proofs from the earlier ones)
        cp = audit_checkpoint(node.store_target(), node.node_id, keys.signing)
        table = entries.select(IDENTITY_SCHEMA.names).cast(IDENTITY_SCHEMA)
        packet = Packet.build(kind="identity-changes", table=table, sender=keys,
                              recipient=recipient, trust_store=trust, seq_first=first,
                              seq_last=last, created_at=now,
                              audit=packet_field(node.store_target(), cp))
        data = packet.to_bytes()
        log.info("sealed %d entries for %s (%d bytes)", table.num_rows, recipient, len(data),
                 extra={**fields, "step": "seal", "bytes": len(data),
                        "seconds": time.perf_counter() - t1})
        write_atomic(target, data, mode=PRIVATE_FILE)
        reg.log_sync_packet(packet.header.packet_id.hex(), "out", recipient,
                            "identity-changes", first, last, actor=actor)
    log.info("exported entries %d-%d to %s: %s", first, last, recipient, target.name,
             extra={**fields, "packets": 1, "packet": target.name, "bytes": len(data),
                    "seconds": time.perf_counter() - t0})
    return target


# --------------------------------------------------------------------------- apply


@dataclass
class ApplyOutcome:
    """What applying one packet did (and, from the inbox, where it was archived)."""

    packet: Path
    kind: str
    sender: str
    status: str  # "applied" | "already-applied"
    detail: dict[str, Any] = field(default_factory=dict)
    reply: Path | None = None
    archived: Path | None = None
    archive_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"packet": str(self.packet), "kind": self.kind, "sender": self.sender,
               "status": self.status, **self.detail,
               "reply": None if self.reply is None else str(self.reply),
               "archived": None if self.archived is None else str(self.archived)}
        if self.archive_error is not None:
            out["archive_error"] = self.archive_error
        return out


def apply_packet(node: Node, path: str | os.PathLike[str], *,
                 password: str | bytes | None = None,
                 max_bytes: int = MAX_PACKET_BYTES, archive: bool = False,
                 keys: list[NodeKeys] | None = None) -> ApplyOutcome:
    """Verify, open and apply one packet at ``node`` (see the module docs).

    The file is read with :meth:`Packet.read`: anything but a regular file, and a file
    larger than ``max_bytes`` or than its framing says, is refused before its body is
    read. With ``archive``, a packet that lies in the node's inbox is then moved into
    its archive (:func:`archive_dir`; ``outcome.archived``). ``keys``: the node's key
    generations, unlocked before (a server's), instead of ``password``.
    """
    node.clean_temps()
    keys = keys or node.keys(password)
    t = time.perf_counter()
    try:
        opened = _open(node, Path(path), keys, max_bytes)
        outcome = _apply_opened(node, opened, keys)
    except JukiError as exc:
        _log_refused(node, Path(path), exc)
        raise
    if archive:
        _archive_applied(node, opened, outcome)
    _log_applied(node, opened, outcome, time.perf_counter() - t)
    return outcome


def apply_packets(node: Node, paths: Iterable[str | os.PathLike[str]], *,
                  password: str | bytes | None = None, max_bytes: int = MAX_PACKET_BYTES,
                  archive: bool = False,
                  ) -> Iterator[tuple[Path, ApplyOutcome | JukiError]]:
    """Apply packets at ``node`` in the order given, each as :func:`apply_packet` would.

    Yields ``(path, outcome)`` for each packet, the outcome being the
    :class:`ApplyOutcome` or the :class:`~jukicore.errors.JukiError` that refused it
    (a refused packet changes nothing; the ones after it are still applied). While one
    packet is applied to the store, the next one is read, verified and decrypted in a
    worker thread (the cryptography and the database then run on two cores). Opening
    touches no state, so a run killed at any moment is as safe as with
    :func:`apply_packet`. With ``archive``, each packet applied or found applied before
    that lies in the node's inbox is moved into the archive; refused ones stay.

    When the iteration ends, one record sums the run up on ``jukicore.network.sync``
    (``step="apply"``: packets, applied, already_applied, refused, rows, seconds).
    """
    node.clean_temps()
    keys = node.keys(password)
    todo = [Path(p) for p in paths]
    t0 = time.perf_counter()
    counts = {"applied": 0, "already_applied": 0, "refused": 0, "archived": 0}
    rows = 0

    def open_one(p: Path) -> _Opened | JukiError:
        try:
            return _open(node, p, keys, max_bytes)
        except JukiError as exc:
            return exc

    t = time.perf_counter()
    for p, opened in zip(todo, one_ahead(open_one, todo, name="jukicore-open"), strict=True):
        if isinstance(opened, JukiError):
            _log_refused(node, p, opened)
            counts["refused"] += 1
            yield p, opened
            t = time.perf_counter()
            continue
        try:
            outcome: ApplyOutcome | JukiError = _apply_opened(node, opened, keys)
        except JukiError as exc:
            outcome = exc
        if isinstance(outcome, JukiError):
            _log_refused(node, p, outcome)
            counts["refused"] += 1
        else:
            if archive:
                _archive_applied(node, opened, outcome)
            _log_applied(node, opened, outcome, time.perf_counter() - t)
            counts["applied" if outcome.status == "applied" else "already_applied"] += 1
            counts["archived"] += outcome.archived is not None
            rows += opened.table.num_rows
        yield p, outcome
        t = time.perf_counter()
    log.info("%s: %d packets (%d applied, %d applied before, %d refused), %d rows",
             node.node_id, len(todo), counts["applied"], counts["already_applied"],
             counts["refused"], rows,
             extra={"step": "apply", "node": node.node_id, "packets": len(todo), **counts,
                    "rows": rows, "seconds": time.perf_counter() - t0})


def apply_inbox(node: Node, *, password: str | bytes | None = None,
                max_bytes: int = MAX_PACKET_BYTES,
                ) -> Iterator[tuple[Path, ApplyOutcome | JukiError]]:
    """Apply every packet of the node's inbox (:func:`inbox_packets`) and archive each one
    applied or found applied before (what ``jukicore sync apply DIR`` does); yields as
    :func:`apply_packets`. Refused entries stay in the inbox."""
    return apply_packets(node, inbox_packets(node), password=password, max_bytes=max_bytes,
                         archive=True)


def _log_applied(node: Node, opened: _Opened, outcome: ApplyOutcome, seconds: float) -> None:
    log.info("%s: %s %s from %s (%d rows)", node.node_id, opened.path.name,
             outcome.status, outcome.sender, opened.table.num_rows,
             extra={"step": "apply-packet", "node": node.node_id,
                    "packet": opened.path.name, "kind": outcome.kind,
                    "sender": outcome.sender, "status": outcome.status, "packets": 1,
                    "rows": opened.table.num_rows, "seconds": seconds,
                    "archived": None if outcome.archived is None else str(outcome.archived)})


def _log_refused(node: Node, path: Path, exc: JukiError) -> None:
    log.warning("%s: %s refused: %s", node.node_id, path.name, exc,
                extra={"step": "apply-packet", "node": node.node_id, "packet": path.name,
                       "status": "refused", "error": type(exc).__name__})


@dataclass
class _Opened:
    """A packet verified and decrypted, not yet applied."""

    path: Path
    header: PacketHeader
    table: pa.Table
    #: the inbox entry as it was before it was read (see _stamp)
    stamp: tuple[int, ...] | None = None


def _open(node: Node, path: Path, keys: list[NodeKeys], max_bytes: int) -> _Opened:
    stamp = _stamp(path)
    packet = Packet.read(path, max_bytes=max_bytes)
    trust = node.trust()
    try:
        header, table = packet.verify_and_open(trust, node.node_id, keys)
    except JukiError:
        raise
    except (ValueError, TypeError, KeyError, pa.ArrowException) as exc:
        # whatever a damaged payload provokes: one refused packet, not a stopped night
        raise TamperedPacketError(f"packet refused: {path.name}: unreadable ({exc})"
                                  ) from None
    check_relation(header.kind, header.sender, node.node_id)
    _note_key_used(node, header)
    return _Opened(path, header, table, stamp)


def _note_key_used(node: Node, h: PacketHeader) -> None:
    """Remember that the sender signs with this key generation: from then on its older
    generations verify nothing (the retired-key rule of ``TrustStore.verifying_key``).
    Only a packet whose signature verified gets here, so only the sender can set it."""
    if all(k.used for k in node.trust().keys(h.sender) if k.signing_key_id == h.sender_key_id):
        return
    with node.lock("trust"):
        trust = node.trust()
        if trust.note_used(h.sender, h.sender_key_id):
            node.save_trust(trust)


def _apply_opened(node: Node, opened: _Opened, keys: list[NodeKeys]) -> ApplyOutcome:
    p, header, table = opened.path, opened.header, opened.table
    if header.kind == "identity-changes":
        return _apply_changes(node, p, header, table, keys[-1])
    if header.kind == "ack":
        return _apply_ack(node, p, header, table)
    return _apply_block(node, p, header, table)


def _apply_changes(node: Node, path: Path, h: PacketHeader, table: pa.Table,
                   keys: NodeKeys) -> ApplyOutcome:
    pid = h.packet_id.hex()
    gap: PacketSequenceError | None = None
    with open_identity_store(node.store_target()) as store:
        try:
            result = store.apply_changes(sender=h.sender, packet_id=pid, first_seq=h.seq_first,
                                         last_seq=h.seq_last, changes=table,
                                         actor=node.node_id, set_aside_invalid=True)
            status, detail = "applied", result.as_dict()
        except PacketSequenceError as exc:
            # Applied before (this packet, or its whole range under another packet id:
            # a retransmission): nothing changes, and the sender gets the current
            # acknowledgement again. A gap is refused.
            if not store.packet_applied(pid) and h.seq_last > store.last_seq(h.sender):
                if h.seq_first <= store.last_seq(h.sender) + 1 or \
                        store.last_seq(h.sender) == 0:
                    raise  # (an acknowledgement names an entry: none for "nothing held")
                gap = exc
            status, detail = "already-applied", {}
        acked = store.last_seq(h.sender)
    if gap is not None:
        # A gap: this store holds less than the sender was told (it was restored from a
        # backup). The refusal is answered with a rewind acknowledgement of what the store
        # holds; the municipality then sends again everything after it (docs/backup.md).
        reply = _write_ack(node, keys, h.sender, acked, REWIND + pid)
        refusal = PacketSequenceError(f"{gap}; answered with a rewind acknowledgement of "
                                      f"entry {acked} ({reply.name}): the sender sends the "
                                      "entries after it again")
        refusal.reply = reply  # type: ignore[attr-defined]  # (the network's answer)
        raise refusal from None
    if h.audit is not None:
        # The sender's audit checkpoint: signed by it and consistent with the last one kept
        # from it. One that is not (the municipality's log was rewritten or truncated) is
        # refused, kept out, audited (audit.checkpoint_refused) and reported; the entries
        # still apply: nothing may stop the night's synchronization (docs/audit.md).
        try:
            accept_peer_checkpoint(node.store_target(), node.node_id, h.sender, h.audit,
                                   [k.signing_public for k in node.trust().keys(h.sender)])
        except AuditCheckpointError as exc:
            log.warning("%s: %s", node.node_id, exc,
                        extra={"step": "audit-checkpoint", "node": node.node_id,
                               "sender": h.sender, "status": "refused"})
            detail = {**detail, "audit_checkpoint_refused": str(exc)}
    reply = _write_ack(node, keys, h.sender, acked, pid)
    return ApplyOutcome(path, h.kind, h.sender, status, detail, reply)


def _write_ack(node: Node, keys: NodeKeys, municipality: str, acked: int,
               packet_id: str) -> Path:
    ack = pa.table({"seq": pa.array([acked], pa.int64()),
                    "acked_packet": pa.array([packet_id], pa.string())}, schema=ACK_SCHEMA)
    packet = Packet.build(kind="ack", table=ack, sender=keys, recipient=municipality,
                          trust_store=node.trust(), seq_first=acked, seq_last=acked)
    target = node.outbox / packet_name(node.node_id, municipality, "ack", acked, acked)
    write_atomic(target, packet.to_bytes(), mode=PRIVATE_FILE)
    return target


def _apply_ack(node: Node, path: Path, h: PacketHeader, table: pa.Table) -> ApplyOutcome:
    if table.schema != ACK_SCHEMA or table.num_rows != 1:
        raise InvalidInputError("an acknowledgement carries one (seq, acked_packet) row")
    acked = int(table.column("seq")[0].as_py())
    acked_packet = table.column("acked_packet")[0].as_py()
    rewind = isinstance(acked_packet, str) and acked_packet.startswith(REWIND)
    actor = _actor(node)
    with open_register(node.store_target()) as reg:
        before = reg.sync_acked(h.sender, actor=actor)
        reg.record_sync_ack(h.sender, acked, h.packet_id.hex(), actor=actor, rewind=rewind)
        after = reg.sync_acked(h.sender, actor=actor)
    status = "applied" if after != before else "already-applied"
    detail: dict[str, Any] = {"acked_seq": after}
    if after < before:
        detail["rewound_from"] = before
    return ApplyOutcome(path, h.kind, h.sender, status, detail)


# --------------------------------------------------------------------------- archive


def archive_dir(node: Node) -> Path:
    """The node's archive of applied packets: ``archive/YYYY-MM-DD/`` under the node."""
    return node.path / ARCHIVE


def _stamp(path: Path) -> tuple[int, ...] | None:
    """What identifies an inbox entry: device, inode, size, times of the entry (and of the
    file a link names). The entry is archived only if it is still the one that was read:
    a transport that replaced it meanwhile (a re-delivery) leaves the new one for the next
    run."""
    try:
        st = os.lstat(path)
        parts = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        if stat.S_ISLNK(st.st_mode):
            target = os.stat(path)
            parts += [target.st_dev, target.st_ino, target.st_size, target.st_mtime_ns]
    except (OSError, ValueError):
        return None
    return tuple(parts)


def _real_dir(path: Path) -> None:
    """Create ``path`` (a directory, never a link; 0700 whatever the umask: it holds
    packets) and make its entry durable."""
    try:
        os.mkdir(path, PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise FileError(f"cannot archive into {path}: not a directory") from None
        return
    fsync_dir(path.parent)


def _in_inbox(node: Node, path: Path) -> bool:
    try:
        return os.path.samefile(path.parent, node.inbox)
    except (OSError, ValueError):
        return False


#: How many ``NAME.N.jkp`` variants of one name a day's archive takes.
_MAX_VARIANTS = 10_000


def _variants(name: str) -> Iterator[str]:
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    yield name
    for n in range(1, _MAX_VARIANTS):
        yield f"{stem}.{n}.{suffix}" if suffix else f"{stem}.{n}"


def _archived_link(archive: Path, name: str, st: os.stat_result) -> Path | None:
    """The archive entry that is the same file as an inbox entry (a run killed between
    the link into the archive and the unlink from the inbox left both), if any."""
    stem = name.rpartition(".")[0] or name
    pattern = re.compile(re.escape(stem) + r"(?:\.\d+)?" + re.escape(name[len(stem):]))
    try:
        days = sorted(e.path for e in os.scandir(archive) if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return None
    for d in days:
        for e in os.scandir(d):
            if pattern.fullmatch(e.name) and os.path.samestat(e.stat(follow_symlinks=False), st):
                return Path(e.path)
    return None


def _archive_entry(node: Node, path: Path, stamp: tuple[int, ...] | None,
                   day: dt.date) -> Path | None:
    """Move the inbox entry ``path`` into ``archive/DAY/`` (see the module docs); returns
    its archive path, or None when it is gone or is no longer the entry that was read."""
    archive = archive_dir(node)
    with node.lock("archive"):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None  # archived by a concurrent run, or removed by an operator
        if stamp is None or _stamp(path) != stamp:
            log.warning("%s: %s changed since it was applied; left in the inbox",
                        node.node_id, path.name,
                        extra={"step": "archive", "node": node.node_id, "packet": path.name})
            return None
        _real_dir(archive)
        target_dir = archive / day.isoformat()
        _real_dir(target_dir)
        found = _archived_link(archive, path.name, st) if st.st_nlink > 1 else None
        if found is None:
            for name in _variants(path.name):
                candidate = target_dir / name
                try:
                    os.link(path, candidate, follow_symlinks=False)
                except FileExistsError:
                    continue
                found = candidate
                break
            else:
                raise FileError(f"cannot archive {path}: {_MAX_VARIANTS} packets named so in "
                                f"{target_dir}")
            fsync_dir(target_dir)
        os.unlink(path)
        fsync_dir(path.parent)
    return found


def _archive_applied(node: Node, opened: _Opened, outcome: ApplyOutcome) -> None:
    """Archive an applied packet that lies in the inbox; a failure is recorded in the
    outcome (and logged): the packet was applied, and the next run archives it."""
    if not _in_inbox(node, opened.path):
        return
    try:
        outcome.archived = _archive_entry(node, opened.path, opened.stamp,
                                          dt.datetime.now(dt.UTC).date())
    except OSError as exc:
        if isinstance(exc, FileError):
            reason = str(exc)
        elif exc.errno == errno.EXDEV:
            reason = (f"cannot archive {opened.path}: the archive must be on the inbox's "
                      f"file system")
        else:
            reason = (f"cannot archive {opened.path}: "
                      f"{exc.strerror or exc} ({os.fsdecode(exc.filename or '')})")
        outcome.archive_error = reason
        log.warning("%s: %s", node.node_id, reason,
                    extra={"step": "archive", "node": node.node_id,
                           "packet": opened.path.name})


# --------------------------------------------------------------------------- code blocks


def send_code_block(node: Node, block: CodeBlock, *, password: str | bytes | None = None,
                    seq: int = 1) -> Path:
    """Send a code block to its holder (center -> prefecture, prefecture -> municipality)."""
    check_relation("code-block", node.node_id, block.holder)
    check_path_id(block.block_id, "block id")
    node.clean_temps()
    table = pa.table({"seq": pa.array([seq], pa.int64()),
                      "block": pa.array([block.to_bytes()], pa.large_binary())},
                     schema=BLOCK_SCHEMA)
    packet = Packet.build(kind="code-block", table=table, sender=node.current_keys(password),
                          recipient=block.holder, trust_store=node.trust(), seq_first=seq,
                          seq_last=seq)
    target = node.outbox / f"{node.node_id}-{block.holder}-code-block-{block.block_id}.jkp"
    write_atomic(target, packet.to_bytes(), mode=PRIVATE_FILE)
    return target


def _apply_block(node: Node, path: Path, h: PacketHeader, table: pa.Table) -> ApplyOutcome:
    if table.schema != BLOCK_SCHEMA or table.num_rows != 1:
        raise InvalidInputError("a code-block packet carries one block")
    try:
        # (refuses a block id unfit for a file name, such as ../x)
        block = CodeBlock.from_bytes(table.column("block")[0].as_py())
    except JukiError as exc:
        if not isinstance(exc, InvalidInputError | CorruptFileError):
            raise
        raise TamperedPacketError(f"packet refused: {exc}") from None
    except (ValueError, TypeError) as exc:  # e.g. metadata that is not UTF-8
        raise TamperedPacketError(f"packet refused: unreadable code block ({exc})") from None
    if block.holder != node.node_id:
        raise MisaddressedPacketError(
            f"packet refused: block {block.block_id} is for {block.holder}")
    detail = {"block_id": block.block_id, "codes": len(block)}
    if node.role == "prefecture":
        # The identity store records every block received (id, holder, parent, count,
        # digest); the file in blocks/ is only the working copy that splits consume. A
        # block recorded before is "already-applied" even when its file is gone (writing
        # it again would hand out codes already split off), and a different block under a
        # recorded id is refused (ConflictError). The file is written before the record:
        # a run killed in between finds the file and records it without rewriting it.
        with open_identity_store(node.store_target()) as store:
            # refuses another block under a known id
            if store.code_block_recorded(block):
                return ApplyOutcome(path, h.kind, h.sender, "already-applied", detail)
            target = node.path / "blocks" / f"{block.block_id}.block"
            private_dir(target.parent)
            written = not target.exists()
            if written:
                block.save(target)
            store.receive_code_block(block, sender=h.sender, actor=node.node_id)
        return ApplyOutcome(path, h.kind, h.sender, "applied" if written else "already-applied",
                            detail)
    with open_register(node.store_target()) as reg:
        actor = _actor(node)
        try:
            reg.import_code_block(block, actor=actor)
        except ConflictError:
            if reg.code_block_imported(block.block_id, actor=actor):
                return ApplyOutcome(path, h.kind, h.sender, "already-applied", detail)
            raise
    return ApplyOutcome(path, h.kind, h.sender, "applied", detail)


# --------------------------------------------------------------------------- status


def default_recipients(municipality: str) -> tuple[str, str]:
    """Where a municipality sends its changes: its prefecture and the center."""
    body = f"{municipality[:2]}000"
    return (f"{body}{lg_code_check_digit(body)}", CENTER)


def sync_status(node: Node) -> dict[str, Any]:
    """Municipality: per recipient, entries sent and acknowledged. Prefecture or center:
    identity records held and the last entry applied from each municipality."""
    if node.role == "municipality":
        actor = _actor(node)
        with open_register(node.store_target()) as reg:
            last = reg.outbox_last_seq(actor=actor)
            peers = {r: 0 for r in default_recipients(node.node_id)}
            peers.update(reg.sync_peers(actor=actor))
        return {"node_id": node.node_id, "outbox_last_seq": last,
                "acknowledged": peers,
                "pending": {p: last - a for p, a in peers.items()}}
    with open_identity_store(node.store_target()) as store:
        return {"node_id": node.node_id, "identity_records": store.count(),
                "last_applied": store.peers(),
                "quarantined": store.quarantined(actor=node.node_id).num_rows,
                "rejected": store.rejected(actor=node.node_id).num_rows}
