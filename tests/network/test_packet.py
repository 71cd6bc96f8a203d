"""Packets: build, serialize, verify and open; every refusal is typed and returns nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct
from pathlib import Path

import pyarrow as pa
import pytest

from jukicore.errors import (
    CorruptFileError,
    InvalidInputError,
    JukiError,
    PermissionDeniedError,
)
from jukicore.network.crypto import NodeKeys, TrustStore
from jukicore.network.packet import (
    MAGIC,
    SIGNATURE_LEN,
    Packet,
    PacketHeader,
)

T0 = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)
MUNI, PREF, CENTER = "131016", "pref-13", "center"


@dataclasses.dataclass
class World:
    muni: NodeKeys
    pref: NodeKeys
    center: NodeKeys
    trust: dict[str, TrustStore]


@pytest.fixture
def world() -> World:
    keys = {n: NodeKeys.generate(n) for n in (MUNI, PREF, CENTER)}
    roles = {MUNI: "municipality", PREF: "prefecture", CENTER: "center"}
    trust = {}
    for me in keys:
        store = TrustStore()
        for peer, k in keys.items():
            if peer != me:
                store.add_record(k.public_record(roles[peer], T0))  # type: ignore[arg-type]
        trust[me] = store
    return World(keys[MUNI], keys[PREF], keys[CENTER], trust)


def changes() -> pa.Table:
    return pa.table({
        "seq": pa.array([5, 6, 7], pa.int64()),
        "resident_code": pa.array([12345678906, 23456789017, 34567890128], pa.uint64()),
        "family_name": ["山田", "佐藤", "鈴木"],
        "given_name": ["太郎", "花子", None],
        "birth_date": pa.array([dt.date(1980, 1, 2), dt.date(1991, 5, 6),
                                dt.date(2024, 6, 1)], pa.date32()),
        "sex": pa.array([1, 2, 1], pa.int8()),
        "address": ["東京都千代田区千代田1番1号", "東京都千代田区丸の内3丁目",
                    "東京都千代田区永田町"],
        "change_date": pa.array([dt.date(2024, 6, 3)] * 3, pa.date32()),
        "change_reason": ["転入", "転居", "出生"],
    })


def build(w: World, *, recipient: str = CENTER, sender: NodeKeys | None = None,
          first: int = 5, last: int = 7, table: pa.Table | None = None,
          created_at: dt.datetime = NOW) -> Packet:
    s = sender or w.muni
    return Packet.build(kind="identity-changes", table=changes() if table is None else table,
                        sender=s, recipient=recipient, trust_store=w.trust[s.node_id],
                        seq_first=first, seq_last=last, created_at=created_at)


def test_round_trip_restores_the_table_and_header(world: World) -> None:
    data = build(world).to_bytes()
    assert data.startswith(MAGIC)
    header, table = Packet.from_bytes(data).verify_and_open(world.trust[CENTER], CENTER,
                                                            [world.center])
    assert table.equals(changes())
    assert table.schema == changes().schema
    assert (header.kind, header.sender, header.recipient) == ("identity-changes", MUNI, CENTER)
    assert (header.seq_first, header.seq_last, header.rows) == (5, 7, 3)
    assert header.created_at == NOW and len(header.packet_id) == 16
    assert header.sender_key_id == world.muni.signing_key_id
    assert header.recipient_key_id == world.center.encryption_key_id
    assert {c.name for c in header.encrypted} == set(changes().column_names) - {
        "seq", "change_reason"}
    assert Packet.from_bytes(data).to_bytes() == data


def test_sensitive_values_never_appear_in_clear(world: World) -> None:
    data = build(world).to_bytes()
    t = changes()
    for name in ("family_name", "given_name", "address"):
        for v in t.column(name).to_pylist():
            if v:
                assert v.encode() not in data, v
    for code in t.column("resident_code").to_pylist():
        assert str(code).encode() not in data
        assert struct.pack("<Q", code) not in data
    # The clear columns are readable without any key.
    p = Packet.from_bytes(data)
    payload = pa.ipc.open_stream(pa.py_buffer(p.payload)).read_all()
    assert payload.column("change_reason").to_pylist() == ["転入", "転居", "出生"]
    assert payload.column("resident_code").type == pa.large_binary()


def test_empty_table_and_other_kinds(world: World) -> None:
    empty = changes().slice(0, 0)
    p = build(world, table=empty, first=1, last=1)
    _, t = Packet.from_bytes(p.to_bytes()).verify_and_open(world.trust[CENTER], CENTER,
                                                           world.center)
    assert t.num_rows == 0 and t.schema == empty.schema
    ack = Packet.build(kind="ack", table=pa.table({"seq": [7]}), sender=world.center,
                       recipient=MUNI, trust_store=world.trust[CENTER], seq_first=7, seq_last=7)
    h, t = ack.verify_and_open(world.trust[MUNI], MUNI, [world.muni])
    assert h.kind == "ack" and t.column("seq").to_pylist() == [7]


def test_every_tampered_byte_is_refused(world: World) -> None:
    small = changes().slice(0, 1)
    data = build(world, table=small, first=5, last=5).to_bytes()
    p = Packet.from_bytes(data)
    regions = {"header": (0, 14 + len(p.header_bytes)),
               "wrapped key": (14 + len(p.header_bytes), 16 + len(p.header_bytes) + 80),
               "payload": (len(data) - SIGNATURE_LEN - len(p.payload) - 8,
                           len(data) - SIGNATURE_LEN),
               "signature": (len(data) - SIGNATURE_LEN, len(data))}
    seen = set()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises((CorruptFileError, PermissionDeniedError)):
            Packet.from_bytes(bytes(bad)).verify_and_open(world.trust[CENTER], CENTER,
                                                          [world.center])
        seen |= {r for r, (a, b) in regions.items() if a <= i < b}
    assert seen == set(regions)


def test_truncation_and_garbage(world: World) -> None:
    data = build(world).to_bytes()
    for n in [*range(0, 80), *range(len(data) - 100, len(data))]:
        with pytest.raises(CorruptFileError):
            Packet.from_bytes(data[:n])
    with pytest.raises(CorruptFileError):
        Packet.from_bytes(data + b"\0")
    with pytest.raises(CorruptFileError, match="magic"):
        Packet.from_bytes(b"NOTAPKT\0" + data[8:])


def _resign(data: bytes, key: NodeKeys, mutate: bytes | None = None, at: int = 0) -> bytes:
    body = bytearray(data[:-SIGNATURE_LEN])
    if mutate is not None:
        body[at:at + len(mutate)] = mutate
    return bytes(body) + key.signing.sign(bytes(body))


def test_unsupported_version_even_when_signed(world: World) -> None:
    data = _resign(build(world).to_bytes(), world.muni, struct.pack(">H", 3), 8)
    with pytest.raises(CorruptFileError, match="unsupported packet format version 3"):
        Packet.from_bytes(data)


def test_format_1_packets_still_open_and_versions_cannot_be_swapped(world: World) -> None:
    """A packet written before an upgrade (format 1) still opens; relabelling a packet's
    version, even re-signed by its sender, is refused."""
    old = Packet.build(kind="identity-changes", table=changes(), sender=world.muni,
                       recipient=CENTER, trust_store=world.trust[MUNI], seq_first=5,
                       seq_last=7, format_version=1)
    opened = Packet.from_bytes(old.to_bytes())
    assert opened.header.version == 1
    _, table = opened.verify_and_open(world.trust[CENTER], CENTER, [world.center])
    assert table.equals(changes())
    relabelled = _resign(build(world).to_bytes(), world.muni, struct.pack(">H", 1), 8)
    with pytest.raises(CorruptFileError, match="header version differs"):
        Packet.from_bytes(relabelled)


def test_forged_signature_is_refused(world: World) -> None:
    intruder = NodeKeys.generate(MUNI)
    data = _resign(build(world).to_bytes(), intruder)
    with pytest.raises(CorruptFileError, match="signature"):
        Packet.from_bytes(data).verify_and_open(world.trust[CENTER], CENTER, [world.center])


def test_unknown_sender_or_untrusted_key(world: World) -> None:
    stranger = NodeKeys.generate("999999")
    trust = TrustStore()
    trust.add_record(world.center.public_record("center", T0))
    p = Packet.build(kind="identity-changes", table=changes(), sender=stranger,
                     recipient=CENTER, trust_store=trust, seq_first=5, seq_last=7)
    with pytest.raises(PermissionDeniedError, match="unknown sender"):
        p.verify_and_open(world.trust[CENTER], CENTER, [world.center])
    # Known node id, but a key the center never trusted.
    impostor = NodeKeys.generate(MUNI)
    p = Packet.build(
        kind="identity-changes", table=changes(), sender=impostor, recipient=CENTER,
        trust_store=world.trust[MUNI], seq_first=5, seq_last=7)
    with pytest.raises(PermissionDeniedError, match="not in the trust store"):
        p.verify_and_open(world.trust[CENTER], CENTER, [world.center])


def test_packet_for_another_recipient(world: World) -> None:
    p = build(world, recipient=PREF)
    with pytest.raises(PermissionDeniedError, match="addressed to 'pref-13'"):
        p.verify_and_open(world.trust[CENTER], CENTER, [world.center])
    # Right node id, but not holding the key it was encrypted to.
    other = NodeKeys.generate(PREF)
    with pytest.raises(PermissionDeniedError, match="does not hold"):
        p.verify_and_open(world.trust[PREF], PREF, [other])
    h, _ = p.verify_and_open(world.trust[PREF], PREF, {world.pref.encryption_key_id: world.pref})
    assert h.recipient == PREF


def test_rotation_old_packets_stay_verifiable(world: World) -> None:
    old_packet = build(world, created_at=NOW).to_bytes()
    new_muni = NodeKeys.generate(MUNI)
    new_center = NodeKeys.generate(CENTER)
    rotated = NOW + dt.timedelta(days=1)
    world.trust[CENTER].add_record(new_muni.public_record("municipality", rotated))
    world.trust[MUNI].add_record(new_center.public_record("center", rotated))
    # Old packet: signed with the muni's old key, encrypted to the center's old key.
    _, t = Packet.from_bytes(old_packet).verify_and_open(
        world.trust[CENTER], CENTER, [new_center, world.center])
    assert t.equals(changes())
    # New packets go to the center's new key and carry the muni's new signature.
    later = rotated + dt.timedelta(hours=1)
    p = build(world, sender=new_muni, created_at=later)
    assert p.header.recipient_key_id == new_center.encryption_key_id
    p.verify_and_open(world.trust[CENTER], CENTER, [new_center, world.center])
    # The old signing key may not sign packets dated after its retirement.
    stale = build(world, sender=world.muni, created_at=later)
    with pytest.raises(PermissionDeniedError, match="not current"):
        stale.verify_and_open(world.trust[CENTER], CENTER, [new_center, world.center])


def test_build_refusals(world: World) -> None:
    with pytest.raises(InvalidInputError, match="kind"):
        Packet.build(kind="gossip", table=changes(), sender=world.muni, recipient=CENTER,
                     trust_store=world.trust[MUNI], seq_first=5, seq_last=7)
    for first, last in [(0, 3), (7, 5), (True, 7)]:
        with pytest.raises(InvalidInputError):
            build(world, first=first, last=last)
    with pytest.raises(InvalidInputError, match="'seq'"):
        build(world, first=6, last=7)
    with pytest.raises(InvalidInputError):
        build(world, created_at=dt.datetime(2024, 6, 3))
    with pytest.raises(JukiError):  # not trusted: no key to encrypt to
        build(world, recipient="999999")
    with pytest.raises(InvalidInputError, match="cannot encrypt"):
        build(world, table=changes().append_column("flag", pa.array([True] * 3)))


def test_header_json_is_strict() -> None:
    with pytest.raises(CorruptFileError):
        PacketHeader.from_json_bytes(b'{"version": 1, "version": 2}')
    with pytest.raises(CorruptFileError):
        PacketHeader.from_json_bytes(b"\xff")




def test_reading_a_large_packet_holds_it_once(world: World, tmp_path: Path) -> None:
    """Packet.read fills one buffer of the file's size; splitting and verifying it makes
    no second copy (the Python heap's peak stays near one packet, not two or three)."""
    import tracemalloc

    blob = pa.array([b"x" * (1 << 20)] * 48, pa.large_binary())  # 48 MiB, kept in clear
    table = pa.table({"seq": pa.array(range(1, 49), pa.int64()), "blob": blob})
    p = Packet.build(kind="identity-changes", table=table, sender=world.muni,
                     recipient=CENTER, trust_store=world.trust[MUNI], seq_first=1,
                     seq_last=48, clear_columns={"seq", "blob"}, created_at=NOW)
    path = tmp_path / "big.jkp"
    path.write_bytes(p.to_bytes())
    size = path.stat().st_size
    del p, table, blob
    tracemalloc.start()
    try:
        packet = Packet.read(path)
        _, opened = packet.verify_and_open(world.trust[CENTER], CENTER, world.center)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert opened.num_rows == 48
    assert size <= peak < size * 1.3
