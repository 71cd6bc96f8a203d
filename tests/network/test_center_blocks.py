"""A prefecture records the code blocks it receives in its identity store: a block file
deleted (or split) is never stored whole again, and another block under a known id is
refused."""

from __future__ import annotations

import pyarrow as pa
import pytest
from netkit import PASSWORD, PREF, Network, block_bytes, deliver

from jukicore.codes import CodeBlock, CodeRegistry
from jukicore.errors import ConflictError, TamperedPacketError
from jukicore.identity import open_identity_store
from jukicore.network.node import Node
from jukicore.network.packet import Packet
from jukicore.network.sync import BLOCK_SCHEMA, apply_packet, send_code_block

BOTH = pytest.mark.parametrize("identity_target", ["sqlite", "postgresql"], indirect=True)


def _state(node: Node) -> tuple[str, list[str]]:
    with open_identity_store(node.store_target()) as st:
        digest = st.content_digest()
    blocks = node.path / "blocks"
    return digest, sorted(p.name for p in blocks.iterdir()) if blocks.exists() else []


@BOTH
def test_a_block_file_deleted_is_not_stored_again(network: Network) -> None:
    block = CodeRegistry().allocate_block(300, PREF)
    packet = deliver(send_code_block(network.center, block), network.pref)
    assert apply_packet(network.pref, packet).status == "applied"
    with open_identity_store(network.pref.store_target()) as st:
        rec = st.code_blocks(actor=st.node_id).to_pylist()
    assert [(r["block_id"], r["holder"], r["codes"], r["sender"]) for r in rec] == [
        (block.block_id, PREF, 300, "center")]
    target = network.pref.path / "blocks" / f"{block.block_id}.block"
    # the prefecture splits part of the block off for a municipality, then loses the file
    working = CodeBlock.load(target)
    working.split(100, "131041")
    working.save(target)
    target.unlink()
    before = _state(network.pref)
    again = apply_packet(network.pref, packet)
    assert again.status == "already-applied"
    assert not target.exists() and _state(network.pref) == before


@BOTH
def test_another_block_under_a_recorded_id_is_refused(network: Network) -> None:
    registry = CodeRegistry()
    block = registry.allocate_block(50, PREF)
    assert apply_packet(network.pref, deliver(send_code_block(network.center, block),
                                              network.pref)).status == "applied"
    target = network.pref.path / "blocks" / f"{block.block_id}.block"
    kept = target.read_bytes()
    other = CodeBlock.from_codes(registry.allocate_block(50, PREF).codes, PREF,
                                     block_id=block.block_id)
    forged = send_code_block(network.center, other)
    before = _state(network.pref)
    with pytest.raises(ConflictError, match="different block under the same id"):
        apply_packet(network.pref, deliver(forged, network.pref))
    target.unlink()  # even with the file gone
    with pytest.raises(ConflictError):
        apply_packet(network.pref, network.pref.inbox / forged.name)
    target.write_bytes(kept)
    assert _state(network.pref) == before


@BOTH
def test_a_block_id_that_is_a_path_is_refused(network: Network) -> None:
    raw = block_bytes(CodeRegistry().generate(5), PREF, "../../../x")
    table = pa.table({"seq": pa.array([1], pa.int64()),
                      "block": pa.array([raw], pa.large_binary())},
                     schema=BLOCK_SCHEMA)
    packet = network.pref.inbox / "evil.jkp"
    packet.write_bytes(Packet.build(
        kind="code-block", table=table, sender=network.center.current_keys(PASSWORD),
        recipient=PREF, trust_store=network.center.trust(), seq_first=1,
        seq_last=1).to_bytes())
    before = _state(network.pref)
    with pytest.raises(TamperedPacketError, match="block id"):
        apply_packet(network.pref, packet)
    assert _state(network.pref) == before
    assert not (network.pref.path.parent / "x.block").exists()


@BOTH
def test_a_block_file_from_before_the_record_is_kept_as_it_is(network: Network) -> None:
    """A block stored by an older jukicore (file, no record), or a run killed between the
    file and the record: the next apply records it and leaves the file alone."""
    block = CodeRegistry().allocate_block(40, PREF)
    target = network.pref.path / "blocks" / f"{block.block_id}.block"
    target.parent.mkdir(exist_ok=True)
    block.save(target)
    working = CodeBlock.load(target)
    working.split(10, "131041")  # the file has been split since
    working.save(target)
    split = target.read_bytes()
    out = apply_packet(network.pref, deliver(send_code_block(network.center, block),
                                             network.pref))
    assert out.status == "already-applied" and target.read_bytes() == split
    with open_identity_store(network.pref.store_target()) as st:
        assert st.code_blocks(actor=st.node_id).column("block_id").to_pylist() == [block.block_id]
