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
:func:`jukicore.crypto.check_path_id`. Exports to one recipient hold the node's
``export-RECIPIENT`` lock; every writing function first removes the temporary
files of killed runs (:meth:`Node.clean_temps`).

Crash safety: every state change is one database transaction and every file is
written to a temporary name and renamed, so a run killed at any moment and
started again ends in the state of an uninterrupted run. A packet whose
changes were applied before the kill is refused as applied twice on the
second run, and its acknowledgement is written again (acknowledgements are
cumulative, so writing one twice is harmless).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from jukicore._files import write_atomic
from jukicore._threads import one_ahead
from jukicore.codes import CodeBlock, lg_code_check_digit
from jukicore.crypto import NodeKeys, check_node_id, check_path_id
from jukicore.errors import (
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
from jukicore.node import CENTER, Node, check_relation
from jukicore.packet import MAX_PACKET_BYTES, Packet, PacketHeader
from jukicore.register import Actor, open_register

__all__ = [
    "ApplyOutcome",
    "apply_packet",
    "apply_packets",
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
    """Pack the changes ``recipient`` has not acknowledged; None when there are none."""
    check_node_id(recipient)
    check_relation("identity-changes", node.node_id, recipient)
    node.clean_temps()
    keys = node.current_keys(password)
    trust = node.trust()
    actor = _actor(node)
    # One export per (node, recipient) at a time: two runs would both find the range
    # unsent and log two packets for it.
    with node.lock(f"export-{recipient}"), open_register(node.store_target()) as reg:
        acked = reg.sync_acked(recipient, actor=actor)
        entries = reg.outbox(actor=actor, after_seq=acked)
        if entries.num_rows == 0:
            return None
        first = int(entries.column("seq")[0].as_py())
        last = int(entries.column("seq")[-1].as_py())
        target = node.outbox / packet_name(node.node_id, recipient, "identity-changes",
                                           first, last)
        logged = reg.sync_sent(recipient, first, last, actor=actor)
        if logged is not None and target.exists():
            return target  # exported already, nothing new since: idempotent
        table = entries.select(IDENTITY_SCHEMA.names).cast(IDENTITY_SCHEMA)
        packet = Packet.build(kind="identity-changes", table=table, sender=keys,
                              recipient=recipient, trust_store=trust, seq_first=first,
                              seq_last=last, created_at=now)
        write_atomic(target, packet.to_bytes())
        reg.log_sync_packet(packet.header.packet_id.hex(), "out", recipient,
                            "identity-changes", first, last, actor=actor)
    return target


# --------------------------------------------------------------------------- apply


@dataclass
class ApplyOutcome:
    """What applying one packet did."""

    packet: Path
    kind: str
    sender: str
    status: str  # "applied" | "already-applied"
    detail: dict[str, Any] = field(default_factory=dict)
    reply: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"packet": str(self.packet), "kind": self.kind, "sender": self.sender,
                "status": self.status, **self.detail,
                "reply": None if self.reply is None else str(self.reply)}


def apply_packet(node: Node, path: str | os.PathLike[str], *,
                 password: str | bytes | None = None,
                 max_bytes: int = MAX_PACKET_BYTES) -> ApplyOutcome:
    """Verify, open and apply one packet at ``node`` (see the module docs).

    The file is read with :meth:`Packet.read`: anything but a regular file, and a file
    larger than ``max_bytes`` or than its framing says, is refused before its body is
    read.
    """
    node.clean_temps()
    keys = node.keys(password)
    opened = _open(node, Path(path), keys, max_bytes)
    return _apply_opened(node, opened, keys)


def apply_packets(node: Node, paths: Iterable[str | os.PathLike[str]], *,
                  password: str | bytes | None = None, max_bytes: int = MAX_PACKET_BYTES,
                  ) -> Iterator[tuple[Path, ApplyOutcome | JukiError]]:
    """Apply packets at ``node`` in the order given, each as :func:`apply_packet` would.

    Yields ``(path, outcome)`` for each packet, the outcome being the
    :class:`ApplyOutcome` or the :class:`~jukicore.errors.JukiError` that refused it
    (a refused packet changes nothing; the ones after it are still applied). While one
    packet is applied to the store, the next one is read, verified and decrypted in a
    worker thread (the cryptography and the database then run on two cores). Opening
    touches no state, so a run killed at any moment is as safe as with
    :func:`apply_packet`.
    """
    node.clean_temps()
    keys = node.keys(password)
    todo = [Path(p) for p in paths]

    def open_one(p: Path) -> _Opened | JukiError:
        try:
            return _open(node, p, keys, max_bytes)
        except JukiError as exc:
            return exc

    for p, opened in zip(todo, one_ahead(open_one, todo, name="jukicore-open"), strict=True):
        if isinstance(opened, JukiError):
            yield p, opened
            continue
        try:
            outcome: ApplyOutcome | JukiError = _apply_opened(node, opened, keys)
        except JukiError as exc:
            outcome = exc
        yield p, outcome


@dataclass
class _Opened:
    """A packet verified and decrypted, not yet applied."""

    path: Path
    header: PacketHeader
    table: pa.Table


def _open(node: Node, path: Path, keys: list[NodeKeys], max_bytes: int) -> _Opened:
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
    return _Opened(path, header, table)


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
        raise PacketSequenceError(f"{gap}; answered with a rewind acknowledgement of entry "
                                  f"{acked} ({reply.name}): the sender sends the entries "
                                  "after it again") from None
    reply = _write_ack(node, keys, h.sender, acked, pid)
    return ApplyOutcome(path, h.kind, h.sender, status, detail, reply)


def _write_ack(node: Node, keys: NodeKeys, municipality: str, acked: int,
               packet_id: str) -> Path:
    ack = pa.table({"seq": pa.array([acked], pa.int64()),
                    "acked_packet": pa.array([packet_id], pa.string())}, schema=ACK_SCHEMA)
    packet = Packet.build(kind="ack", table=ack, sender=keys, recipient=municipality,
                          trust_store=node.trust(), seq_first=acked, seq_last=acked)
    target = node.outbox / packet_name(node.node_id, municipality, "ack", acked, acked)
    write_atomic(target, packet.to_bytes())
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
    write_atomic(target, packet.to_bytes())
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
            target.parent.mkdir(exist_ok=True)
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
                "quarantined": store.quarantined().num_rows,
                "rejected": store.rejected().num_rows}
