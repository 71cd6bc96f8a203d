"""Fuzz the packets and the nightly synchronization: packet bytes (truncated, flipped,
oversized, appended), packets applied at a node, code-block ids used in paths, and node
files (node.json, trust.json) corrupted.

Property: every refusal is a JukiError (a PacketRefusedError for a packet), nothing else
escapes, the receiving store's content digest is unchanged, nothing is written outside the
node, and a valid packet after a refused one still applies.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fuzzcases import node_json_variants, trust_json_variants
from fuzzkit import TODAY, assert_refused, fuzz, with_check
from hypothesis import given
from hypothesis import strategies as st
from regkit import ADMIN, LG, MUNI, PREF, make_block, tiny_municipality

from jukicore import errors
from jukicore.codes import CodeBlock, CodeRegistry
from jukicore.identity import IDENTITY_SCHEMA, create_identity_store, open_identity_store
from jukicore.network.crypto import NodeKeys, TrustStore
from jukicore.network.node import CENTER, Node, init_node, trust_each_other
from jukicore.network.packet import Packet
from jukicore.network.sync import (
    BLOCK_SCHEMA,
    apply_packet,
    apply_packets,
    export_changes,
    send_code_block,
)
from jukicore.register import create_register, open_register

PASSWORD = "fuzz horse battery staple"
PREF_ID = "130001"


# -- packet bytes (no store) --------------------------------------------------------------------


@cache
def _pair() -> tuple[NodeKeys, NodeKeys, TrustStore, TrustStore, bytes]:
    """A municipality's and the center's keys, their trust stores, and one valid packet."""
    muni, center = NodeKeys.generate(LG), NodeKeys.generate(CENTER)
    t_muni, t_center = TrustStore(), TrustStore()
    t_muni.add_record(center.public_record("center", dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    t_center.add_record(muni.public_record("municipality",
                                           dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    table = pa.Table.from_pylist([{
        "seq": i + 1, "resident_code": with_check("resident_code", 9_000_000 + i),
        "previous_resident_code": None, "family_name": "山田", "given_name": "花",
        "birth_date": dt.date(1990, 1, 1), "sex": 2, "address": "東京都千代田区丸の内1丁目",
        "status": "resident", "change_date": TODAY, "change_reason": "move_in"}
        for i in range(3)], schema=IDENTITY_SCHEMA)
    packet = Packet.build(kind="identity-changes", table=table, sender=muni, recipient=CENTER,
                          trust_store=t_muni, seq_first=1, seq_last=3)
    return muni, center, t_muni, t_center, packet.to_bytes()


def mutations() -> st.SearchStrategy[Callable[[bytes], bytes]]:
    """Ways to damage a packet's bytes."""

    def at(f: Callable[[bytes, int, int], bytes]) -> st.SearchStrategy[Callable[[bytes], bytes]]:
        return st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)).map(
            lambda a: lambda b: f(b, int(a[0] * len(b)), a[1]))

    def flip(b: bytes, i: int, m: int) -> bytes:
        return b[:i] + bytes([b[i] ^ m]) + b[i + 1:]

    def field(offset: int, fmt: str, value: int) -> Callable[[bytes], bytes]:
        return lambda b: b[:offset] + struct.pack(fmt, value) + b[offset + struct.calcsize(fmt):]

    return st.one_of(
        at(lambda b, i, _m: b[:i]).map(lambda f: f),                      # truncated
        at(flip),                                                         # one byte flipped
        at(lambda b, i, m: b[:i] + bytes([m]) * (1 + m % 7) + b[i:]),    # bytes inserted
        st.binary(min_size=1, max_size=64).map(lambda tail: lambda b: b + tail),  # appended
        st.sampled_from([field(8, ">H", v) for v in (0, 3, 65535)]),      # format version
        st.sampled_from([field(10, ">I", v) for v in (0, 1, 2**20 + 1, 2**32 - 1)]),  # header len
        st.binary(max_size=200).map(lambda junk: lambda _b: junk),        # not a packet at all
        st.just(lambda b: b"JUKIPKT\0" + b[8:]),  # intact (control: must open)
    )


def _payload_len_offset(raw: bytes) -> int:
    (hlen,) = struct.unpack_from(">I", raw, 10)
    (wlen,) = struct.unpack_from(">H", raw, 14 + hlen)
    return 14 + hlen + 2 + wlen


@fuzz(200)
@given(mutate=mutations())
def test_packet_bytes(mutate: Callable[[bytes], bytes]) -> None:
    _, center, _, t_center, raw = _pair()
    data = mutate(raw)
    try:
        header, table = Packet.from_bytes(data).verify_and_open(t_center, CENTER, [center])
    except Exception as exc:
        assert_refused(exc, invalid=False)
        assert isinstance(exc, errors.PacketRefusedError), f"{type(exc).__name__}: {exc}"
        assert data != raw, "the intact packet was refused"
    else:
        assert data == raw, "a damaged packet opened"
        assert table.num_rows == 3 and header.sender == LG


@fuzz(20)
@given(plen=st.sampled_from([2**31, 2**40, 2**63, 2**64 - 1]))
def test_packet_payload_length_oversized(plen: int) -> None:
    """A payload length in the framing far beyond the bytes there: refused, nothing read."""
    _, center, _, t_center, raw = _pair()
    off = _payload_len_offset(raw)
    data = raw[:off] + struct.pack(">Q", plen) + raw[off + 8:]
    with pytest.raises(errors.PacketRefusedError):
        Packet.from_bytes(data).verify_and_open(t_center, CENTER, [center])


@fuzz(30)
@given(mutate=mutations(), kind=st.sampled_from([bytearray, memoryview]))
def test_packet_from_bytes_like(mutate: Callable[[bytes], bytes], kind: type) -> None:
    """A bytearray or memoryview is taken as the bytes it holds."""
    _, center, _, t_center, raw = _pair()
    data = mutate(raw)
    try:
        Packet.from_bytes(kind(data)).verify_and_open(t_center, CENTER, [center])
    except Exception as exc:
        assert isinstance(exc, errors.PacketRefusedError), f"{type(exc).__name__}: {exc}"
        assert data != raw, "the intact packet was refused"
    else:
        assert data == raw, "a damaged packet opened"


# -- a small network ---------------------------------------------------------------------------


@dataclass
class Net:
    root: Path
    muni: Node
    pref: Node
    center: Node
    packet: Path  # the municipality's changes for the center, valid


@pytest.fixture
def net(tmp_path: Path, targets: Callable[[], str], monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[Net]:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
    root = tmp_path / "net"
    muni = init_node(root / "muni", LG, store=targets())
    pref = init_node(root / "pref", PREF_ID, store=targets())
    center = init_node(root / "center", CENTER, store=targets())
    create_identity_store(pref.store_target(), node_id=PREF_ID, kind="prefecture").close()
    create_identity_store(center.store_target(), node_id=CENTER, kind="center").close()
    with create_register(muni.store_target(), lg_code=LG, prefecture=PREF, municipality=MUNI,
                         actor=ADMIN) as reg:
        reg.import_code_block(make_block(100), actor=ADMIN)
        residents, households = tiny_municipality()
        reg.load(residents, households, actor=ADMIN)
    trust_each_other((muni, pref, center))
    packet = export_changes(muni, CENTER)
    assert packet is not None
    yield Net(root, muni, pref, center, packet)


@fuzz(20)
@given(mutate=mutations())
def test_sync_apply_damaged_packet(net: Net, mutate: Callable[[bytes], bytes]) -> None:
    raw = net.packet.read_bytes()
    data = mutate(raw)
    if data == raw:
        return  # the intact packet is applied once, below
    with open_identity_store(net.center.store_target()) as store:
        before = store.content_digest()
    acks = set(net.center.outbox.iterdir())
    target = net.center.inbox / "damaged.jkp"
    target.write_bytes(data)
    try:
        apply_packet(net.center, target)
    except Exception as exc:
        assert_refused(exc, invalid=False)
        assert isinstance(exc, errors.PacketRefusedError), f"{type(exc).__name__}: {exc}"
    else:
        pytest.fail("a damaged packet was applied")
    finally:
        target.unlink()
    with open_identity_store(net.center.store_target()) as store:
        assert store.content_digest() == before
    assert set(net.center.outbox.iterdir()) == acks, "an acknowledgement of a refused packet"


def test_sync_valid_after_damaged(net: Net) -> None:
    """Damaged packets and odd inbox entries before a valid one: each refused with a
    JukiError, and the valid packet still applied (apply_packets goes on)."""
    raw = net.packet.read_bytes()
    inbox = net.center.inbox
    (inbox / "a-truncated.jkp").write_bytes(raw[: len(raw) // 2])
    (inbox / "b-flipped.jkp").write_bytes(raw[:-70] + bytes([raw[-70] ^ 1]) + raw[-69:])
    (inbox / "c-directory.jkp").mkdir()
    (inbox / "d-dangling.jkp").symlink_to(inbox / "nowhere")
    (inbox / "e-empty.jkp").write_bytes(b"")
    (inbox / "f-valid.jkp").write_bytes(raw)
    results = dict(apply_packets(net.center, sorted(inbox.iterdir())))
    for name, outcome in results.items():
        if name.name == "f-valid.jkp":
            assert not isinstance(outcome, Exception), outcome
            assert outcome.status == "applied"
        else:
            assert isinstance(outcome, errors.JukiError), (name.name, outcome)
    with open_identity_store(net.center.store_target()) as store:
        assert store.count() == 15


_BAD_BLOCK_IDS = ["../../../escaped", "../escaped", "/tmp/jukicore-fuzz-escaped", "a/b", "..",
                  "", ".", "x\x00y", "blocks/../../escaped", "\\..\\escaped", "a" * 300]


def _files(root: Path) -> set[Path]:
    """Every file under ``root`` but the stores (SQLite files come and go with the WAL)."""
    return {p for p in root.rglob("*") if (p.is_file() or p.is_symlink())
            and not p.name.startswith("fuzz")}


@fuzz(12)
@given(block_id=st.sampled_from(_BAD_BLOCK_IDS))
def test_code_block_ids_in_paths(net: Net, block_id: str) -> None:
    """A code-block packet (signed by the trusted center) whose block id is a path: refused,
    or stored in the prefecture's blocks/ directory; never a file anywhere else."""
    codes = CodeRegistry().generate(3)
    try:
        block = CodeBlock.from_codes(codes, PREF_ID, block_id=block_id)
    except errors.InvalidInputError:
        return  # refused where the block is made: fine
    table = pa.table({"seq": pa.array([1], pa.int64()),
                      "block": pa.array([block.to_bytes()], pa.large_binary())},
                     schema=BLOCK_SCHEMA)
    packet = Packet.build(kind="code-block", table=table, sender=net.center.current_keys(),
                          recipient=PREF_ID, trust_store=net.center.trust(), seq_first=1,
                          seq_last=1)
    target = net.pref.inbox / "block.jkp"
    target.write_bytes(packet.to_bytes())
    before = _files(net.root.parent)
    try:
        apply_packet(net.pref, target)
    except Exception as exc:
        assert_refused(exc, invalid=False)
    finally:
        target.unlink()
        new = _files(net.root.parent) - before
        blocks = (net.pref.path / "blocks").resolve()
        assert all(p.resolve().parent == blocks for p in new), \
            f"block id {block_id!r} wrote {sorted(map(str, new))}"
        assert not Path("/tmp/jukicore-fuzz-escaped.block").exists()


# -- node files corrupted ---------------------------------------------------------------------


@fuzz(30)
@given(data=st.data())
def test_node_files_corrupted(net: Net, data: st.DataObject) -> None:
    """node.json or trust.json damaged: every entry point refuses with a JukiError; the
    node's store is unchanged."""
    which = data.draw(st.sampled_from(["node.json", "trust.json"]), label="file")
    node = data.draw(st.sampled_from(["muni", "center"]), label="node")
    n: Node = getattr(net, node)
    path = n.path / which
    good = path.read_bytes()
    variants = (node_json_variants if which == "node.json" else trust_json_variants)(
        json.loads(good))
    bad = data.draw(st.sampled_from(variants), label="content")
    path.write_bytes(bad)
    try:
        for call in _node_entry_points(net, n):
            digest = _digest(n)
            try:
                call()
            except Exception as exc:
                assert_refused(exc, invalid=False)
                assert _digest(n) == digest, "a refused call changed the node's store"
            # (a damage that the entry point does not read may go unnoticed)
    finally:
        path.write_bytes(good)


def _digest(n: Node) -> str:
    if n.role == "municipality":
        with open_register(n.store_target()) as reg:
            return reg.content_digest()
    with open_identity_store(n.store_target()) as store:
        return store.content_digest()


def _node_entry_points(net: Net, n: Node) -> list[Callable[[], object]]:
    from jukicore.network.sync import sync_status

    def reopened() -> Node:
        return Node.open(n.path)

    calls: list[Callable[[], object]] = [
        lambda: reopened().info(), lambda: sync_status(reopened()),
        lambda: reopened().trust()]
    if n.role == "municipality":
        calls.append(lambda: export_changes(reopened(), CENTER))
    else:
        def apply() -> None:
            target = n.inbox / "p.jkp"
            target.write_bytes(net.packet.read_bytes())
            try:
                apply_packet(reopened(), target)
            finally:
                target.unlink()
        calls.append(apply)
    return calls


def test_codes_of_a_block_packet_are_fresh(net: Net) -> None:
    """Control: a valid code block from the center is stored at the prefecture."""
    block = CodeRegistry().allocate_block(3, PREF_ID)
    target = net.pref.inbox / "block.jkp"
    target.write_bytes(send_code_block(net.center, block).read_bytes())
    outcome = apply_packet(net.pref, target)
    assert outcome.status == "applied" and np.asarray(block.codes).size == 3
