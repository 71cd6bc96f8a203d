"""The packet: the transport-agnostic file nodes exchange.

Layout (all integers big-endian)::

    offset  size  field
    0       8     magic b"JUKIPKT\\0"
    8       2     format version (2; version 1 is still opened)
    10      4     header length H
    14      H     header: UTF-8 JSON (see PacketHeader)
    14+H    2     wrapped data key length W (80)
    ...     W     the data key wrapped for the recipient (crypto.wrap_data_key)
    ...     8     payload length P
    ...     P     payload: an Arrow IPC stream
    end-64  64    Ed25519 signature of the sender over every byte before it

The payload is the table with its sensitive columns replaced by
``large_binary`` columns of AES-256-GCM records (``crypto.seal_records``) under
a fresh data key; the header lists them (name, slot) and carries the table's
original Arrow schema, so opening restores names, types and nullability. By
default every column is sensitive except :data:`CLEAR_COLUMNS` (the change
sequence number and the change reason code, which reveal no one's identity);
the resident code, names, birth date, sex, address and change dates are
always encrypted.

Opening checks, in order: framing and version, the sender and its key in the
trust store (the key must have been current at the packet's creation time),
the signature over every byte, the recipient (node and key), the wrapped key,
the payload and every record's tag. Any failure raises and returns nothing.
Replay, duplicate, gap and ordering need the receiving store's state: the
identity store checks them (:meth:`jukicore.identity.IdentityStore.apply_changes`).

Every refusal is a :class:`~jukicore.errors.PacketRefusedError`: tampering,
truncation and unknown versions are :class:`~jukicore.errors.TamperedPacketError`
(also a ``CorruptFileError``); unknown senders and untrusted keys are
:class:`~jukicore.errors.UntrustedSenderError` and packets for someone else
:class:`~jukicore.errors.MisaddressedPacketError` (both ``PermissionDeniedError``).
"""

from __future__ import annotations

import base64
import datetime as dt
import errno
import json
import os
import stat
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jukicore.errors import (
    FileError,
    InvalidInputError,
    MisaddressedPacketError,
    TamperedPacketError,
    UntrustedSenderError,
)
from jukicore.network.crypto import (
    WRAPPED_KEY_LEN,
    NodeKeys,
    RecordCipher,
    TrustStore,
    check_node_id,
    new_data_key,
    open_records,
    private_keys_by_id,
    unwrap_data_key,
    wrap_context,
    wrap_data_key,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CLEAR_COLUMNS",
    "FORMAT_VERSION",
    "KINDS",
    "MAGIC",
    "MAX_PACKET_BYTES",
    "READABLE_VERSIONS",
    "EncryptedColumn",
    "Packet",
    "PacketHeader",
]

MAGIC = b"JUKIPKT\0"
FORMAT_VERSION = 2
#: Versions opened: 2 (records under per-column keys, ``crypto`` scheme 2) and 1 (records
#: under the data key with a long AAD, scheme 1), so packets written before an upgrade
#: still apply after it. New packets are always written in :data:`FORMAT_VERSION`.
READABLE_VERSIONS = (1, 2)
KINDS = ("identity-changes", "ack", "code-block")
CLEAR_COLUMNS = frozenset({"seq", "change_reason"})
SIGNATURE_LEN = 64
_PREFIX = struct.Struct(">8sHI")
_MAX_HEADER = 1 << 20
#: The largest packet :meth:`Packet.read` accepts by default (a million identity records
#: take about 300 MB); larger files are refused before their body is read.
MAX_PACKET_BYTES = 2 << 30
_CHUNK = 1 << 20


# Every refusal goes through one of these, so moving to dedicated classes is a
# one-line change each.
def _tampered(message: str) -> TamperedPacketError:
    return TamperedPacketError(f"packet refused: {message}")


def _untrusted(message: str) -> UntrustedSenderError:
    return UntrustedSenderError(f"packet refused: {message}")


def _misaddressed(message: str) -> MisaddressedPacketError:
    return MisaddressedPacketError(f"packet refused: {message}")


@dataclass(frozen=True)
class EncryptedColumn:
    name: str
    slot: int


@dataclass(frozen=True)
class PacketHeader:
    """What a packet says about itself (all of it covered by the signature)."""

    version: int
    packet_id: bytes
    kind: str
    sender: str
    sender_key_id: str
    recipient: str
    recipient_key_id: str
    seq_first: int
    seq_last: int
    created_at: dt.datetime
    rows: int
    encrypted: tuple[EncryptedColumn, ...]
    schema: bytes
    #: The sender's latest audit-log checkpoint (a signed note) and consistency proofs
    #: from its earlier checkpoints' sizes: ``{"checkpoint": str, "proofs": {size:
    #: [hex, ...]}}`` (jukicore.audit.chain.packet_field). Absent in older packets.
    audit: dict[str, Any] | None = None

    def to_json_bytes(self) -> bytes:
        doc = {
            "version": self.version,
            "packet_id": self.packet_id.hex(),
            "kind": self.kind,
            "sender": {"node": self.sender, "key_id": self.sender_key_id},
            "recipient": {"node": self.recipient, "key_id": self.recipient_key_id},
            "sequence": [self.seq_first, self.seq_last],
            "created_at": self.created_at.astimezone(dt.UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "rows": self.rows,
            "encrypted": [{"name": c.name, "slot": c.slot} for c in self.encrypted],
            "schema": base64.b64encode(self.schema).decode(),
        }
        if self.audit is not None:
            doc["audit"] = self.audit
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> PacketHeader:
        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            d = dict(pairs)
            if len(d) != len(pairs):
                raise ValueError("duplicate key")
            return d

        try:
            d = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
            created = dt.datetime.fromisoformat(d["created_at"].replace("Z", "+00:00"))
            if created.tzinfo is None:
                raise ValueError("created_at has no time zone")
            first, last = d["sequence"]
            enc = tuple(EncryptedColumn(str(c["name"]), int(c["slot"])) for c in d["encrypted"])
            h = cls(
                version=int(d["version"]),
                packet_id=bytes.fromhex(d["packet_id"]),
                kind=str(d["kind"]),
                sender=str(d["sender"]["node"]),
                sender_key_id=str(d["sender"]["key_id"]),
                recipient=str(d["recipient"]["node"]),
                recipient_key_id=str(d["recipient"]["key_id"]),
                seq_first=int(first),
                seq_last=int(last),
                created_at=created.astimezone(dt.UTC),
                rows=int(d["rows"]),
                encrypted=enc,
                schema=base64.b64decode(d["schema"], validate=True),
                audit=_audit_field(d.get("audit")),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise _tampered(f"unreadable header ({e})") from None
        if len(h.packet_id) != 16 or h.kind not in KINDS or h.rows < 0:
            raise _tampered("header fields out of range")
        try:
            check_node_id(h.sender)
            check_node_id(h.recipient)
        except InvalidInputError as e:
            raise _tampered(f"header names a malformed node ({e})") from None
        return h


def _audit_field(value: Any) -> dict[str, Any] | None:
    """The header's audit checkpoint field, checked for shape (its content is checked by
    the receiving store: jukicore.audit.chain.accept_peer_checkpoint)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"checkpoint", "proofs"} or not isinstance(
            value["checkpoint"], str) or not isinstance(value["proofs"], dict):
        raise ValueError("malformed audit checkpoint field")
    for size, proof in value["proofs"].items():
        if not (size.isascii() and size.isdigit()) or not isinstance(proof, list) or not all(
                isinstance(h, str) and len(h) == 64 for h in proof):
            raise ValueError("malformed audit consistency proof")
    return value


def _ipc_bytes(table: pa.Table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue())


@dataclass(frozen=True)
class Packet:
    """A signed, encrypted packet. Build with :meth:`build`, read with
    :meth:`from_bytes`, and trust nothing in it before :meth:`verify_and_open`."""

    header: PacketHeader
    header_bytes: bytes
    wrapped_key: bytes
    payload: bytes | memoryview
    signature: bytes
    #: The signed bytes as read (a view of :meth:`read`'s buffer), so that verifying a
    #: large packet does not assemble a second copy of it.
    signed: memoryview | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        *,
        kind: str,
        table: pa.Table,
        sender: NodeKeys,
        recipient: str,
        trust_store: TrustStore,
        seq_first: int,
        seq_last: int,
        clear_columns: Iterable[str] = CLEAR_COLUMNS,
        created_at: dt.datetime | None = None,
        format_version: int = FORMAT_VERSION,
        audit: dict[str, Any] | None = None,
    ) -> Packet:
        """Encrypt ``table`` for ``recipient`` (its current key in ``trust_store``)
        and sign it with ``sender``'s key.

        Columns named in ``clear_columns`` stay in clear; every other column is
        encrypted record by record. If the table has a ``seq`` column, its values
        must lie within ``seq_first..seq_last``. ``format_version`` is for tests of
        older readers and writers only. ``audit``: the sender's latest audit checkpoint
        and consistency proofs (:func:`jukicore.audit.chain.packet_field`).
        """
        import pyarrow as pa

        if kind not in KINDS:
            raise InvalidInputError(f"unknown packet kind {kind!r}; one of {', '.join(KINDS)}")
        if format_version not in READABLE_VERSIONS:
            raise InvalidInputError(f"unknown packet format version {format_version}")
        check_node_id(recipient)
        if isinstance(seq_first, bool) or isinstance(seq_last, bool) or not (
            isinstance(seq_first, int) and isinstance(seq_last, int)
        ) or not 1 <= seq_first <= seq_last:
            raise InvalidInputError(f"malformed sequence range {seq_first!r}..{seq_last!r}")
        if not isinstance(table, pa.Table):
            raise InvalidInputError("a packet's payload is a pyarrow Table")
        if "seq" in table.column_names and table.num_rows:
            import pyarrow.compute as pc

            lo, hi = pc.min_max(table.column("seq")).values()
            if lo.as_py() is None or lo.as_py() < seq_first or hi.as_py() > seq_last:
                raise InvalidInputError(
                    f"column 'seq' holds {lo} .. {hi}, outside the packet's range "
                    f"{seq_first}..{seq_last}"
                )
        when = dt.datetime.now(dt.UTC) if created_at is None else created_at
        if when.tzinfo is None:
            raise InvalidInputError("created_at must be timezone-aware (UTC)")
        target = trust_store.current(recipient)
        packet_id = os.urandom(16)
        data_key = new_data_key()
        cipher = RecordCipher(data_key, packet_id, scheme=format_version)
        clear = set(clear_columns)
        columns, fields, encrypted = [], [], []
        for name, col in zip(table.column_names, table.columns, strict=True):
            if name in clear:
                columns.append(col)
                fields.append(table.schema.field(name))
            else:
                slot, sealed = cipher.seal(name, col)
                encrypted.append(EncryptedColumn(name, slot))
                columns.append(sealed)
                fields.append(pa.field(name, pa.large_binary()))
        payload_table = pa.Table.from_arrays(columns, schema=pa.schema(fields))
        header = PacketHeader(
            version=format_version,
            packet_id=packet_id,
            kind=kind,
            sender=sender.node_id,
            sender_key_id=sender.signing_key_id,
            recipient=recipient,
            recipient_key_id=target.encryption_key_id,
            seq_first=seq_first,
            seq_last=seq_last,
            created_at=when.astimezone(dt.UTC),
            rows=table.num_rows,
            encrypted=tuple(encrypted),
            schema=bytes(table.schema.serialize()),
            audit=_audit_field(audit),
        )
        context = wrap_context(sender.node_id, header.sender_key_id, recipient,
                               header.recipient_key_id, packet_id)
        wrapped = wrap_data_key(data_key, target.encryption_public, context)
        hb = header.to_json_bytes()
        payload = _ipc_bytes(payload_table)
        body = _frame(format_version, hb, wrapped, payload)
        return cls(header, hb, wrapped, payload, sender.signing.sign(body))

    def _body(self) -> bytes:
        return _frame(self.header.version, self.header_bytes, self.wrapped_key, self.payload)

    def to_bytes(self) -> bytes:
        return self._body() + self.signature

    @classmethod
    def read(cls, path: str | os.PathLike[str], *, max_bytes: int = MAX_PACKET_BYTES) -> Packet:
        """Read the packet file at ``path`` (see :meth:`from_bytes`), safely.

        Only a regular file is read (a directory, FIFO, device, socket or dangling
        link is refused without blocking: :class:`~jukicore.errors.FileError`). The
        framing (prefix, header, wrapped key, payload length, at most about 1 MiB) is
        read first and the size it announces is checked against the file's size and
        against ``max_bytes`` before a byte of the body is read; the body is then read
        in 1 MiB chunks into one buffer of exactly that size. A file that is not a
        packet, or whose size does not match its framing, is refused as
        :class:`~jukicore.errors.TamperedPacketError`.
        """
        p = Path(path)
        try:
            # O_NONBLOCK: a FIFO with no writer would otherwise block the open forever
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        except ValueError:  # a NUL in the path
            raise FileError(f"cannot read {p!r}: not a valid path") from None
        except OSError as exc:
            if exc.errno == errno.ENOENT and os.path.lexists(p):
                raise FileError(f"cannot read {p}: a link to nothing") from None
            raise _file_error(p, exc) from None
        try:
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise FileError(f"cannot read {p}: not a regular file")
                size = st.st_size
                fixed = _PREFIX.size
                if size < fixed + 2 + 8 + SIGNATURE_LEN:
                    raise _tampered(f"truncated ({size} bytes)")
                head = _read_exact(fd, fixed)
                magic, version, hlen = _PREFIX.unpack(head)
                if magic != MAGIC:
                    raise _tampered("not a jukicore packet (bad magic)")
                if version not in READABLE_VERSIONS:
                    raise _tampered(f"unsupported packet format version {version}")
                if hlen > _MAX_HEADER or fixed + hlen + 2 > size:
                    raise _tampered("header length does not fit the file")
                head += _read_exact(fd, hlen + 2)
                (wlen,) = struct.unpack_from(">H", head, fixed + hlen)
                if len(head) + wlen + 8 > size:
                    raise _tampered("wrapped key length does not fit the file")
                head += _read_exact(fd, wlen + 8)
                (plen,) = struct.unpack_from(">Q", head, len(head) - 8)
                total = len(head) + plen + SIGNATURE_LEN
                if total != size:
                    raise _tampered(f"length mismatch: {size} bytes, framing says {total}")
                if size > max_bytes:
                    raise FileError(f"cannot read {p}: {size} bytes, more than the "
                                    f"{max_bytes} allowed for a packet")
                buf = bytearray(size)
                buf[:len(head)] = head
                view = memoryview(buf)
                pos = len(head)
                while pos < size:
                    n = os.readv(fd, [view[pos:min(size, pos + _CHUNK)]])
                    if n == 0:
                        raise _tampered(f"truncated while reading ({pos} of {size} bytes)")
                    pos += n
                if os.read(fd, 1):
                    raise _tampered(f"{p} grew while it was read")
            except OSError as exc:
                if isinstance(exc, FileError):
                    raise
                raise _file_error(p, exc) from None
        finally:
            os.close(fd)
        del view
        return cls._split(buf)  # the buffer is ours alone: no copy

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Packet:
        """Split a packet into its parts (checks framing and version only: nothing
        here is authenticated until :meth:`verify_and_open`)."""
        # A copy of a mutable buffer: it must not change between verification and use.
        return cls._split(data if isinstance(data, bytes) else bytes(data))

    @classmethod
    def _split(cls, raw: bytes | bytearray) -> Packet:
        data = memoryview(raw)
        if len(data) < _PREFIX.size + 2 + 8 + SIGNATURE_LEN:
            raise _tampered(f"truncated ({len(data)} bytes)")
        magic, version, hlen = _PREFIX.unpack_from(data, 0)
        if magic != MAGIC:
            raise _tampered("not a jukicore packet (bad magic)")
        if version not in READABLE_VERSIONS:
            raise _tampered(f"unsupported packet format version {version}")
        if hlen > _MAX_HEADER:
            raise _tampered("header too large")
        pos = _PREFIX.size
        need = pos + hlen + 2
        if len(data) < need:
            raise _tampered("truncated in the header")
        hb = bytes(data[pos:pos + hlen])
        pos += hlen
        (wlen,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if len(data) < pos + wlen + 8:
            raise _tampered("truncated in the wrapped key")
        wrapped = bytes(data[pos:pos + wlen])
        pos += wlen
        (plen,) = struct.unpack_from(">Q", data, pos)
        pos += 8
        if len(data) != pos + plen + SIGNATURE_LEN:
            raise _tampered(
                f"length mismatch: {len(data)} bytes, framing says {pos + plen + SIGNATURE_LEN}"
            )
        payload = data[pos:pos + plen]
        header = PacketHeader.from_json_bytes(hb)
        if header.version != version:
            raise _tampered("header version differs from the framing's")
        return cls(header, hb, wrapped, payload, bytes(data[-SIGNATURE_LEN:]),
                   data[:-SIGNATURE_LEN])

    def verify_and_open(
        self,
        trust_store: TrustStore,
        my_node_id: str,
        my_private_keys: NodeKeys | Iterable[NodeKeys] | Mapping[str, NodeKeys],
        *,
        now: dt.datetime | None = None,
    ) -> tuple[PacketHeader, pa.Table]:
        """Authenticate, then decrypt: returns the header and the original table.

        ``my_private_keys`` are this node's key generations (current and retired:
        a packet encrypted to a retired key still opens). ``now`` (default: the
        clock) decides whether a retired sender key is still in its grace period
        (:meth:`jukicore.network.crypto.TrustStore.verifying_key`).
        """
        from cryptography.exceptions import InvalidSignature

        h = self.header
        signer = trust_store.verifying_key(h.sender, h.sender_key_id, h.created_at, now=now)
        try:
            signer.signing_public.verify(
                self.signature, self._body() if self.signed is None else self.signed)
        except InvalidSignature:
            raise _tampered(f"signature of {h.sender!r} does not verify "
                            "(tampered or forged)") from None
        if h.recipient != my_node_id:
            raise _misaddressed(f"addressed to {h.recipient!r}, not to {my_node_id!r}")
        keys = (dict(my_private_keys) if isinstance(my_private_keys, Mapping)
                else private_keys_by_id(my_private_keys))
        mine = keys.get(h.recipient_key_id)
        if mine is None or mine.node_id != my_node_id:
            raise _misaddressed(
                f"encrypted to key {h.recipient_key_id}, which {my_node_id!r} does not hold"
            )
        if len(self.wrapped_key) != WRAPPED_KEY_LEN:
            raise _tampered("wrapped key has the wrong length")
        context = wrap_context(h.sender, h.sender_key_id, h.recipient, h.recipient_key_id,
                               h.packet_id)
        data_key = unwrap_data_key(self.wrapped_key, mine.encryption, context)
        return h, _open_payload(h, self.payload, data_key)


def _file_error(path: Path, exc: OSError) -> FileError:
    err = FileError(f"cannot read {path}: {exc.strerror or exc}")
    err.errno = exc.errno
    err.filename = str(path)
    return err


def _read_exact(fd: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, min(n - len(out), _CHUNK))
        if not chunk:
            raise _tampered("truncated in the framing")
        out += chunk
    return out


def _frame(version: int, header_bytes: bytes, wrapped: bytes,
           payload: bytes | memoryview) -> bytes:
    return b"".join((
        _PREFIX.pack(MAGIC, version, len(header_bytes)),
        header_bytes,
        struct.pack(">H", len(wrapped)),
        wrapped,
        struct.pack(">Q", len(payload)),
        payload,
    ))


def _open_payload(h: PacketHeader, payload: bytes | memoryview, data_key: bytes) -> pa.Table:
    import pyarrow as pa

    try:
        schema = pa.ipc.read_schema(pa.py_buffer(h.schema))
        table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        raise _tampered(f"unreadable payload ({e})") from None
    slots = {c.name: c.slot for c in h.encrypted}
    if table.num_rows != h.rows or table.column_names != schema.names \
            or len(slots) != len(h.encrypted) or not set(slots) <= set(schema.names):
        raise _tampered("payload does not match its header")
    columns = []
    for f in schema:
        col = table.column(f.name)
        if f.name in slots:
            columns.append(open_records(data_key, h.packet_id, slots[f.name], f.name, col,
                                        type=f.type, scheme=h.version))
        elif col.type != f.type:
            raise _tampered(f"clear column {f.name!r} is {col.type}, header says {f.type}")
        else:
            columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)
