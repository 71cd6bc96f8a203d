"""The audit log as an RFC 6962 Merkle tree: sequence numbers, the tree state, checkpoints.

Every entry has a gap-free sequence number ``seq`` (0, 1, 2, ...) and is leaf ``seq`` of
the store's Merkle tree; its leaf hash is ``SHA-256(0x00 || canonical bytes)`` with the
canonical bytes defined once, in the Rust core (``jukicore_core::merkle::entry_bytes``;
see docs/audit.md). The tree's state (its size and frontier: one subtree root per set bit
of the size) is one row of ``audit_state``, read and rewritten in the same transaction as
the entries it grows by, so concurrent writers serialize on that row and no number is
skipped or used twice.

A *checkpoint* is the tree's size and root signed with the node's Ed25519 key as a C2SP
signed note (``tlog-checkpoint``); checkpoints are kept in ``audit_checkpoint`` and each is
itself recorded by the next entry (``audit.checkpoint``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jukicore import _jukicore as core
from jukicore.errors import (
    AuditCheckpointError,
    CorruptFileError,
    InvalidInputError,
    JukiError,
    NotFoundError,
)
from jukicore.store import Column, Ddl, Index, Session, Table, utcnow

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "CHECKPOINT_TABLE",
    "PEER_TABLE",
    "STATE_TABLE",
    "Checkpoint",
    "accept_peer_checkpoint",
    "checkpoint",
    "checkpoint_target",
    "checkpoints",
    "consistency_proof",
    "inclusion_proof",
    "key_hash",
    "leaves",
    "migration_v6",
    "packet_field",
    "parse_note",
    "sign_note",
    "state",
    "verify_inclusion",
    "verify_note",
]

#: The sequence number of each entry (added to the audit table by version 6).
SEQ_COLUMN = Column("seq", "int")
#: The tree state: one row (id 1). ``size`` -1: the entries a migration numbered are not
#: hashed yet (the next writer or reader chains them).
STATE_TABLE = Table("audit_state", (
    Column("id", "int", False),
    Column("size", "int", False),
    Column("frontier", "text", False),  # hex of the frontier's nodes, concatenated
    Column("root", "text", False),      # hex
), ("id",))
#: Signed checkpoints, numbered 1, 2, ... without gaps.
#: The action of the entry that records a checkpoint (the leaf after it).
CHECKPOINT_ACTION = "audit.checkpoint"

CHECKPOINT_TABLE = Table("audit_checkpoint", (
    Column("number", "int", False),
    Column("size", "int", False),
    Column("root", "text", False),      # hex
    Column("note", "text", False),      # the signed note, as signed
    Column("at", "ts", False),
), ("number",))

#: The latest checkpoint each sender (a municipality) sent in its packets, checked
#: consistent with the one before (kept by the prefecture and the center).
PEER_TABLE = Table("audit_peer_checkpoint", (
    Column("sender", "text", False),
    Column("size", "int", False),
    Column("root", "text", False),      # hex
    Column("note", "text", False),
    Column("proofs", "text", False),    # JSON: the consistency proofs its packet carried
    Column("received_at", "ts", False),
), ("sender",))
#: Earlier checkpoint sizes a packet carries consistency proofs from.
PROOFS_PER_PACKET = 64

#: The columns of an audit row that its leaf hash covers, in the canonical order.
TEXT_FIELDS = ("actor", "actor_kind", "action", "target", "notification_id", "detail")
LEAF_COLUMNS = ("seq", "at", *TEXT_FIELDS)
LEAF_SCHEMA = pa.schema([pa.field("seq", pa.int64()), pa.field("at", pa.timestamp("us", "UTC")),
                         *(pa.field(n, pa.string()) for n in TEXT_FIELDS)])

_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)
#: Entries hashed per read when a whole log is read (bounded memory).
READ_CHUNK = 2_000_000


def migration_v6(ddl: Ddl) -> list[str]:
    """Schema version 6's audit part, the same for every store kind: ``seq`` numbers the
    existing entries in their order of writing (``id``), the state and checkpoint tables.
    The existing entries are hashed into the tree by the first writer or reader
    (:func:`lock_state`), in its transaction."""
    return [
        ddl.add_column("audit", SEQ_COLUMN),
        "UPDATE audit SET seq = r.n FROM (SELECT id, row_number() OVER (ORDER BY id) - 1"
        " AS n FROM audit) AS r WHERE audit.id = r.id",
        ddl.create_index(Index("audit_seq", "audit", "seq", True)),
        ddl.create_table(STATE_TABLE),
        ddl.create_table(CHECKPOINT_TABLE),
        ddl.create_table(PEER_TABLE),
        "INSERT INTO audit_state (id, size, frontier, root) VALUES (1, -1, '', '')",
    ]


# -- the tree state --------------------------------------------------------------------


def at_micros(value: Any) -> tuple[dt.datetime, int]:
    """A timestamp (a session's parameter: ISO text or a datetime; naive means UTC) as an
    aware UTC datetime and its microseconds since the epoch."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(f"audit entry: at {value!r} is not a timestamp") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.replace(tzinfo=dt.UTC), (value - _EPOCH) // _US
    raise InvalidInputError(f"audit entry: at {value!r} is not a timestamp")


def read_leaves(s: Session, upto: int | None = None) -> core.MerkleLeaves:
    """The leaf hashes of the entries (``seq`` < ``upto``: all by default), recomputed from
    the rows in ``seq`` order, read in chunks with the store's Arrow bulk path."""
    out = core.MerkleLeaves()
    cols = ", ".join(LEAF_COLUMNS)
    while True:
        start = len(out)
        limit = READ_CHUNK if upto is None else min(READ_CHUNK, upto - start)
        if limit <= 0:
            break
        t = s.fetch_arrow(f"SELECT {cols} FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?",
                          (start, limit), LEAF_SCHEMA)
        for b in t.to_batches():
            out.extend_audit(b)
        if t.num_rows < limit:
            break
    return out


@dataclass(frozen=True)
class State:
    size: int
    frontier: bytes
    root: bytes


def _chain_existing(s: Session) -> State:
    """Hash the entries a migration numbered (the state row says -1) into the tree."""
    lv = read_leaves(s)
    n = len(lv)
    st = State(n, lv.frontier(n), lv.root(n))
    _save_state(s, st)
    return st


def _save_state(s: Session, st: State) -> None:
    s.execute("UPDATE audit_state SET size = ?, frontier = ?, root = ? WHERE id = 1",
              (st.size, st.frontier.hex(), st.root.hex()))


def lock_state(s: Session) -> State:
    """The tree state, locked for this transaction (PostgreSQL: the row is updated first,
    so concurrent writers wait for this one's commit; SQLite: one writer at a time)."""
    s.execute("UPDATE audit_state SET size = size WHERE id = 1")
    return state(s, chain=True)


def state(s: Session, *, chain: bool = False) -> State:
    """The stored tree state (``chain``: hash entries a migration numbered, if any)."""
    rows = s.query("SELECT size, frontier, root FROM audit_state WHERE id = 1")
    if not rows:
        raise CorruptFileError("the audit log has no tree state (audit_state row 1 is gone)")
    size, frontier, root = rows[0]
    size = int(size)
    if size < 0:
        if chain:
            return _chain_existing(s)
        lv = read_leaves(s)
        return State(len(lv), lv.frontier(len(lv)), lv.root(len(lv)))
    try:
        nodes = bytes.fromhex(frontier)
        r = bytes.fromhex(root)
        if core.merkle_frontier_root(size, nodes) != r:
            raise ValueError("its root is not the root of its frontier")
    except ValueError as exc:
        raise CorruptFileError(f"the audit log's tree state is damaged: {exc}") from None
    return State(size, nodes, r)


def append(s: Session, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Number ``rows`` (made by :func:`jukicore.audit.entry`) after the tree's last entry,
    grow the tree by them and save its state; returns the rows to insert, ``seq`` last."""
    st = lock_state(s)
    out: list[tuple[Any, ...]] = []
    entries: list[tuple[int, tuple[Any, ...]]] = []
    times: dict[Any, tuple[dt.datetime, int]] = {}  # a batch's entries share their time
    for i, row in enumerate(rows):
        if len(row) != 7:
            raise InvalidInputError(f"audit entry {i}: {len(row)} values, not 7 (use entry())")
        key = row[0] if isinstance(row[0], str | dt.datetime) else None
        hit = times.get(key) if key is not None else None
        at, us = hit if hit is not None else at_micros(row[0])
        if key is not None:
            times[key] = (at, us)
        texts = row[1:]
        for name, v in zip(TEXT_FIELDS, texts, strict=True):
            if v is not None and type(v) is not str:
                raise InvalidInputError(f"audit entry {i}: {name} is a {type(v).__name__},"
                                        " not text")
        entries.append((us, texts))
        out.append((s.ts(at), *texts, st.size + i))
    frontier, root = core.audit_chain_append(st.size, st.frontier, entries)
    _save_state(s, State(st.size + len(rows), frontier, root))
    return out


# -- signed notes (C2SP signed-note, tlog-checkpoint) -----------------------------------

#: The signature algorithm byte of Ed25519 in signed-note key hashes.
_ED25519 = b"\x01"
_DASH = "\u2014"


def origin(node_id: str) -> str:
    return f"jukicore/{node_id}"


def _raw(pub: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_hash(name: str, pub: Ed25519PublicKey) -> bytes:
    """The 4-byte key hash of signed-note: SHA-256(name || "\\n" || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + _raw(pub)).digest()[:4]


def note_body(node_id: str, size: int, root: bytes) -> str:
    return f"{origin(node_id)}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(body: str, name: str, key: Ed25519PrivateKey) -> str:
    """``body`` signed: the body, a blank line, ``— <name> <base64(key hash || sig)>``."""
    sig = key.sign(body.encode())
    tag = base64.b64encode(key_hash(name, key.public_key()) + sig).decode()
    return f"{body}\n{_DASH} {name} {tag}\n"


@dataclass(frozen=True)
class Note:
    origin: str
    size: int
    root: bytes
    body: str
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (name, key hash, signature)


def parse_note(text: str) -> Note:
    """A checkpoint note's parts; a malformed note is an :class:`InvalidInputError`."""
    body, sep, sigs = text.partition("\n\n")
    if not sep or not body:
        raise InvalidInputError("a checkpoint note has a body, a blank line and signatures")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or not lines[0]:
        raise InvalidInputError("a checkpoint body has an origin, a size and a root")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise InvalidInputError("a checkpoint's size or root is malformed") from None
    if size < 0 or len(root) != 32 or lines[1] != str(size):
        raise InvalidInputError("a checkpoint's size or root is malformed")
    found = []
    for line in sigs.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise InvalidInputError(f"malformed signature line {line!r}")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise InvalidInputError(f"malformed signature line {line!r}") from None
        if len(raw) < 5:
            raise InvalidInputError(f"malformed signature line {line!r}")
        found.append((parts[1], raw[:4], raw[4:]))
    if not found or not text.endswith("\n"):
        raise InvalidInputError("a checkpoint note carries no signature")
    return Note(lines[0], size, root, body, tuple(found))


def verify_note(text: str, node_id: str, keys: list[Ed25519PublicKey]) -> Note:
    """The note, if it is a checkpoint of ``node_id``'s log signed by one of ``keys`` (every
    generation of the node's signing keys); otherwise an :class:`InvalidInputError`."""
    from cryptography.exceptions import InvalidSignature

    note = parse_note(text)
    name = origin(node_id)
    if note.origin != name:
        raise InvalidInputError(f"the checkpoint is of {note.origin!r}, not {name!r}")
    for sig_name, kh, sig in note.signatures:
        if sig_name != name:
            continue
        for k in keys:
            if key_hash(name, k) != kh:
                continue
            try:
                k.verify(sig, note.body.encode())
            except InvalidSignature:
                continue
            return note
    raise InvalidInputError(f"the checkpoint of size {note.size} carries no valid signature"
                            f" of {node_id}'s keys")


@dataclass(frozen=True)
class Checkpoint:
    number: int
    size: int
    root: bytes
    note: str
    at: dt.datetime | None


def checkpoint(s: Session, node_id: str, key: Ed25519PrivateKey, *,
               actor: Any = None) -> Checkpoint:
    """Sign the tree's current size and root with the node's key, store the checkpoint and
    record it with an ``audit.checkpoint`` entry (the next leaf), in ``s``'s transaction."""
    from jukicore import audit

    st = lock_state(s)
    number = int(s.scalar("SELECT coalesce(max(number), 0) FROM audit_checkpoint")) + 1
    note = sign_note(note_body(node_id, st.size, st.root), origin(node_id), key)
    now = utcnow()
    s.execute("INSERT INTO audit_checkpoint (number, size, root, note, at)"
              " VALUES (?, ?, ?, ?, ?)", (number, st.size, st.root.hex(), note, s.ts(now)))
    audit.write(s, actor if actor is not None else node_id, CHECKPOINT_ACTION, node_id,
                checkpoint_detail(number, st.size, st.root))
    return Checkpoint(number, st.size, st.root, note, now)


def checkpoint_target(target: str, node_id: str, key: Ed25519PrivateKey) -> Checkpoint:
    """:func:`checkpoint` of the store at ``target`` (a path or URI), in its own
    transaction."""
    from jukicore.store import connect

    backend = connect(target)
    try:
        with backend.session() as s:
            return checkpoint(s, node_id, key)
    finally:
        backend.close()


def checkpoint_detail(number: int, size: int, root: bytes) -> str:
    return f"checkpoint {number} size {size} root {base64.b64encode(root).decode()}"


def checkpoints(s: Session) -> list[Checkpoint]:
    """The stored checkpoints, by number."""
    return [Checkpoint(int(n), int(z), bytes.fromhex(r) if _is_hex(r) else b"", note,
                       None if at is None else at_micros(at)[0])
            for n, z, r, note, at in s.query(
                "SELECT number, size, root, note, at FROM audit_checkpoint ORDER BY number")]


def latest_checkpoint(s: Session) -> Checkpoint | None:
    rows = s.query("SELECT number, size, root, note, at FROM audit_checkpoint"
                   " ORDER BY number DESC LIMIT 1")
    if not rows:
        return None
    n, z, r, note, at = rows[0]
    return Checkpoint(int(n), int(z), bytes.fromhex(r), note, at_micros(at)[0])


def _is_hex(v: Any) -> bool:
    try:
        bytes.fromhex(v)
    except (TypeError, ValueError):
        return False
    return True


# -- proofs ----------------------------------------------------------------------------


def leaves(s: Session, upto: int | None = None) -> core.MerkleLeaves:
    return read_leaves(s, upto)


def inclusion_proof(s: Session, seq: int, size: int | None = None) -> dict[str, Any]:
    """The inclusion proof of entry ``seq`` in the tree of ``size`` entries (the current
    tree by default): leaf hash, root, audit path (hex)."""
    st = state(s)
    size = st.size if size is None else size
    if not 0 <= seq < size or size > st.size:
        raise NotFoundError(f"no entry {seq} in a tree of {size} entries (the log has"
                            f" {st.size})")
    lv = read_leaves(s, size)
    if len(lv) != size:
        raise CorruptFileError(f"the audit log holds {len(lv)} consecutive entries, not {size}")
    return {"seq": seq, "size": size, "leaf": lv.leaf(seq).hex(), "root": lv.root(size).hex(),
            "proof": [h.hex() for h in lv.inclusion_proof(seq, size)]}


def consistency_proof(s: Session, m: int, n: int) -> list[bytes]:
    lv = read_leaves(s, n)
    if len(lv) != n:
        raise CorruptFileError(f"the audit log holds {len(lv)} consecutive entries, not {n}")
    return list(lv.consistency_proof(m, n)) if m else []


def verify_inclusion(proof: dict[str, Any]) -> bool:
    """Whether an :func:`inclusion_proof` holds (leaf, seq, size, path, root)."""
    return core.merkle_verify_inclusion(
        bytes.fromhex(proof["leaf"]), int(proof["seq"]), int(proof["size"]),
        [bytes.fromhex(h) for h in proof["proof"]], bytes.fromhex(proof["root"]))


# -- checkpoints in packets ------------------------------------------------------------


def packet_field(target: str, cp: Checkpoint) -> dict[str, Any]:
    """What a packet carries of its sender's log: the checkpoint ``cp`` (a signed note)
    and consistency proofs to it from the sizes of the earlier checkpoints (the last
    :data:`PROOFS_PER_PACKET`), so the recipient can check it against whichever of them it
    holds."""
    from jukicore.store import connect

    backend = connect(target)
    try:
        with backend.bulk_session(write=False) as s:
            sizes = sorted({int(r[0]) for r in s.query(
                "SELECT size FROM audit_checkpoint WHERE number < ? ORDER BY number DESC"
                " LIMIT ?", (cp.number, PROOFS_PER_PACKET)) if 0 < int(r[0]) < cp.size})
            proofs: dict[str, list[str]] = {}
            if sizes:
                lv = read_leaves(s, cp.size)
                for m in sizes:
                    proofs[str(m)] = [h.hex() for h in lv.consistency_proof(m, cp.size)]
    finally:
        backend.close()
    return {"checkpoint": cp.note, "proofs": proofs}


#: The audit action of an admin's reset of the checkpoint kept from a sender.
PEER_RESET_ACTION = "audit.peer_checkpoint_reset"


def reset_peer_checkpoint(store: Any, sender: str, *, actor: Any, reason: str,
                          now: dt.datetime | None = None) -> dict[str, Any] | None:
    """Forget the checkpoint kept from ``sender``, so that the next one it sends is kept as
    a new start: after ``sender`` restored its store from a backup, its log is shorter
    than the checkpoint kept and every checkpoint it sends is refused as a rewrite (its
    entries still apply). Nothing can tell a restore from a rewrite, so this is a
    person's decision: an admin of ``store``'s node (``policy.configure``), with a
    ``reason``, in an ``audit.peer_checkpoint_reset`` entry that keeps what was forgotten
    (size, root, note). Returns that checkpoint, or None when none was kept (nothing is
    written then but the refusal of a wrong actor)."""
    from jukicore import audit
    from jukicore.access.actors import CONFIGURE
    from jukicore.network.crypto import check_node_id

    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise InvalidInputError("a reset needs a reason (1 to 500 characters)")
    check_node_id(sender)
    with store.policy.session(actor, CONFIGURE, now=now, target=sender) as s:
        rows = s.query("SELECT size, root, note FROM audit_peer_checkpoint WHERE sender = ?",
                       (sender,))
        if not rows:
            return None
        size, root, note = int(rows[0][0]), str(rows[0][1]), str(rows[0][2])
        s.execute("DELETE FROM audit_peer_checkpoint WHERE sender = ?", (sender,))
        audit.write(s, actor, PEER_RESET_ACTION, sender,
                    f"forgot size {size} root {root}: {reason.strip()}\n{note}")
    return {"sender": sender, "size": size, "root": root, "note": note}


def accept_peer_checkpoint(target: str, node_id: str, sender: str, field: dict[str, Any],
                           keys: list[Ed25519PublicKey]) -> int:
    """Check a checkpoint ``sender`` sent (``field`` of its packet) and keep it: it must be
    signed by one of the sender's ``keys`` (its generations in the trust store) and be
    consistent with the last one kept from the sender (a consistency proof from that size
    in ``field``); returns its size. Otherwise the refusal is audited
    (``audit.checkpoint_refused``) and raised as :class:`AuditCheckpointError`; nothing
    else changes."""
    from jukicore import audit
    from jukicore.store import connect

    backend = connect(target)
    try:
        def refuse(reason: str) -> AuditCheckpointError:
            with backend.session() as s:
                audit.write(s, node_id, "audit.checkpoint_refused", sender, reason)
            return AuditCheckpointError(f"audit checkpoint of {sender} refused: {reason}")

        try:
            note = verify_note(str(field.get("checkpoint", "")), sender, keys)
        except JukiError as exc:
            raise refuse(str(exc)) from None
        with backend.session() as s:
            rows = s.query("SELECT size, root, proofs FROM audit_peer_checkpoint WHERE"
                           " sender = ?", (sender,))
            reason = None
            if rows:
                m, root_m = int(rows[0][0]), bytes.fromhex(rows[0][1])
                if note.size < m:
                    # an older packet arriving late: its checkpoint must be a prefix of the
                    # one kept, by the proofs the kept one's packet carried
                    kept_proofs = json.loads(rows[0][2])
                    proof = kept_proofs.get(str(note.size))
                    if proof is None:
                        reason = (f"it covers {note.size} entries, fewer than the {m} of the"
                                  " one kept before, and no proof ties it to that one (the"
                                  " log was truncated)")
                    elif not core.merkle_verify_consistency(
                            note.size, m, note.root, root_m, [bytes.fromhex(h) for h in proof]):
                        reason = (f"it is not consistent with the one kept before (size {m}):"
                                  " the sender's audit log was rewritten")
                    else:
                        return m  # consistent and older: the kept one stays
                elif note.size == m and note.root != root_m:
                    reason = f"its root differs from the one kept before at size {m}"
                elif note.size > m > 0:
                    proof = field.get("proofs", {}).get(str(m))
                    if proof is None:
                        reason = f"no consistency proof from the size kept before ({m})"
                    elif not core.merkle_verify_consistency(
                            m, note.size, root_m, note.root,
                            [bytes.fromhex(h) for h in proof]):
                        reason = (f"it is not consistent with the one kept before (size {m}):"
                                  " the sender's audit log was rewritten")
                if reason is None and (note.size, note.root) == (m, root_m):
                    return note.size  # the same checkpoint again
            if reason is None:
                s.execute("DELETE FROM audit_peer_checkpoint WHERE sender = ?", (sender,))
                s.execute("INSERT INTO audit_peer_checkpoint (sender, size, root, note,"
                          " proofs, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                          (sender, note.size, note.root.hex(), str(field["checkpoint"]),
                           json.dumps(field.get("proofs", {})), s.ts(utcnow())))
                audit.write(s, node_id, "audit.peer_checkpoint", sender,
                            f"size {note.size} root {base64.b64encode(note.root).decode()}")
                return note.size
        raise refuse(reason)
    finally:
        backend.close()
