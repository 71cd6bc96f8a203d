"""The nightly synchronization end to end: export, apply, acknowledge, refuse."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from netkit import DAY, MUNI, PASSWORD, PREF, Network, apply_day, deliver

from jukicore.codes import CodeBlock, CodeRegistry
from jukicore.errors import (
    MisaddressedPacketError,
    PacketRefusedError,
    PacketSequenceError,
    TamperedPacketError,
    UntrustedSenderError,
)
from jukicore.identity import IDENTITY_SCHEMA, open_identity_store
from jukicore.network.crypto import NodeKeys
from jukicore.network.node import CENTER, Node, allowed, init_node
from jukicore.network.packet import Packet
from jukicore.network.sync import (
    ApplyOutcome,
    apply_packet,
    apply_packets,
    export_changes,
    send_code_block,
    sync_status,
)
from jukicore.register import Actor, open_register

BOTH = pytest.mark.parametrize("identity_target", ["sqlite", "postgresql"], indirect=True)
CS = Actor.node(MUNI, MUNI, "cs")


def _digest(node: Node) -> str:
    with open_identity_store(node.store_target()) as st:
        return st.content_digest()


def _night(net: Network) -> None:
    """Export to both recipients, deliver, apply, and bring the acknowledgements back."""
    sent = {r: export_changes(net.muni, r) for r in (PREF, CENTER)}
    for r, node in ((PREF, net.pref), (CENTER, net.center)):
        packet = sent[r]
        assert packet is not None
        outcome = apply_packet(node, deliver(packet, node))
        assert outcome.status == "applied" and outcome.reply is not None
        assert apply_packet(net.muni, deliver(outcome.reply, net.muni)).status == "applied"


@BOTH
def test_a_night_moves_identity_info_only(network: Network) -> None:
    applied = apply_day(network, 60, seed=1)
    assert applied > 50
    _night(network)
    with open_register(network.muni.store_target()) as reg:
        residents = reg.residents(actor=CS, include_removed=True)
        last = reg.outbox_last_seq(actor=CS)
    for node in (network.pref, network.center):
        with open_identity_store(node.store_target()) as st:
            cur = st.current(actor=st.node_id)
            assert st.last_seq(MUNI) == last
        # Every resident code of the register (current and removed) is known upstream.
        assert set(cur.column("resident_code").to_pylist()) >= set(
            residents.filter(pa.compute.equal(residents.column("status"), "resident"))
            .column("resident_code").to_pylist())
        # Data minimization: only the identity items reach the stores.
        assert set(cur.column_names) <= {*IDENTITY_SCHEMA.names, "lg_code"}
    status = sync_status(network.muni)
    assert status["pending"] == {PREF: 0, CENTER: 0}


@BOTH
def test_acknowledged_entries_leave_later_exports(network: Network) -> None:
    _night(network)
    assert export_changes(network.muni, PREF) is None  # everything acknowledged
    apply_day(network, 20, seed=2, day=DAY + dt.timedelta(days=1))
    packet = export_changes(network.muni, PREF)
    assert packet is not None
    header = Packet.from_bytes(packet.read_bytes()).header
    with open_identity_store(network.pref.store_target()) as st:
        assert header.seq_first == st.last_seq(MUNI) + 1
    # Exporting again before an acknowledgement writes the same range once.
    assert export_changes(network.muni, PREF) == packet


@BOTH
def test_applied_twice_and_replay_are_refused_but_acknowledged_again(network: Network) -> None:
    apply_day(network, 30, seed=3)
    first = export_changes(network.muni, PREF)
    assert first is not None
    delivered = deliver(first, network.pref)
    assert apply_packet(network.pref, delivered).status == "applied"
    before = _digest(network.pref)
    again = apply_packet(network.pref, delivered)
    assert again.status == "already-applied" and again.reply is not None
    assert _digest(network.pref) == before
    # The same range under a new packet id (a retransmission, or an old export replayed)
    # changes nothing and is answered with the current acknowledgement.
    replay = first.with_name("replay.jkp")
    with open_register(network.muni.store_target()) as reg:
        entries = reg.outbox(actor=CS, after_seq=0)
    keys = network.muni.current_keys(PASSWORD)
    last = int(entries.column("seq")[-1].as_py())
    replay.write_bytes(Packet.build(
        kind="identity-changes", table=entries.select(IDENTITY_SCHEMA.names).cast(
            IDENTITY_SCHEMA), sender=keys, recipient=PREF, trust_store=network.muni.trust(),
        seq_first=1, seq_last=last).to_bytes())
    retransmitted = apply_packet(network.pref, replay)
    assert retransmitted.status == "already-applied" and retransmitted.reply is not None
    ack = Packet.read(retransmitted.reply).verify_and_open(
        network.muni.trust(), MUNI, network.muni.keys(PASSWORD))[1]
    assert ack.column("seq").to_pylist() == [last]
    assert _digest(network.pref) == before


def test_gap_is_refused(network: Network) -> None:
    apply_day(network, 30, seed=4)
    with open_register(network.muni.store_target()) as reg:
        entries = reg.outbox(actor=CS, after_seq=0)
    last = int(entries.column("seq")[-1].as_py())
    tail = entries.filter(pa.compute.greater(entries.column("seq"), last - 5))
    gapped = network.muni.outbox / "gapped.jkp"
    gapped.write_bytes(Packet.build(
        kind="identity-changes", table=tail.select(IDENTITY_SCHEMA.names).cast(IDENTITY_SCHEMA),
        sender=network.muni.current_keys(PASSWORD), recipient=CENTER,
        trust_store=network.muni.trust(), seq_first=last - 4, seq_last=last).to_bytes())
    before = _digest(network.center)
    with pytest.raises(PacketSequenceError, match="gap"):
        apply_packet(network.center, gapped)
    assert _digest(network.center) == before


def test_tampered_misaddressed_and_unknown_senders_are_refused(network: Network,
                                                              tmp_path: Path) -> None:
    apply_day(network, 10, seed=5)
    packet = export_changes(network.muni, CENTER)
    assert packet is not None
    data = packet.read_bytes()
    before = _digest(network.center)
    for pos in (0, 9, 40, len(data) // 3, len(data) // 2, len(data) - 70, len(data) - 1):
        bad = tmp_path / f"bad{pos}.jkp"
        b = bytearray(data)
        b[pos] ^= 0x10
        bad.write_bytes(bytes(b))
        with pytest.raises(PacketRefusedError):
            apply_packet(network.center, bad)
    with pytest.raises(TamperedPacketError):
        (tmp_path / "short.jkp").write_bytes(data[:-10])
        apply_packet(network.center, tmp_path / "short.jkp")
    # For the center, not for the prefecture.
    with pytest.raises(MisaddressedPacketError):
        apply_packet(network.pref, packet)
    # A node nobody trusts.
    stranger = init_node(tmp_path / "stranger", "131059", password=PASSWORD)
    keys = stranger.current_keys(PASSWORD)
    fake = tmp_path / "fake.jkp"
    fake.write_bytes(Packet.build(
        kind="identity-changes", table=Packet.from_bytes(data).verify_and_open(
            network.center.trust(), CENTER, network.center.keys(PASSWORD))[1],
        sender=keys, recipient=CENTER, trust_store=network.muni.trust(),
        seq_first=1, seq_last=Packet.from_bytes(data).header.seq_last).to_bytes())
    with pytest.raises(UntrustedSenderError):
        apply_packet(network.center, fake)
    assert _digest(network.center) == before


def test_relations() -> None:
    assert allowed("identity-changes", MUNI, PREF) and allowed("identity-changes", MUNI, CENTER)
    assert not allowed("identity-changes", MUNI, "270008")  # another prefecture
    assert not allowed("identity-changes", PREF, CENTER)
    assert allowed("ack", CENTER, MUNI) and allowed("ack", PREF, MUNI)
    assert not allowed("ack", "270008", MUNI)
    assert allowed("code-block", CENTER, PREF) and allowed("code-block", PREF, MUNI)
    assert not allowed("code-block", CENTER, MUNI)


def test_nothing_municipal_only_travels(network: Network) -> None:
    apply_day(network, 40, seed=6)
    with open_register(network.muni.store_target()) as reg:
        full = reg.residents(actor=CS, include_removed=True)
    packet = export_changes(network.muni, CENTER)
    assert packet is not None
    raw = packet.read_bytes()
    _, table = Packet.from_bytes(raw).verify_and_open(
        network.center.trust(), CENTER, network.center.keys(PASSWORD))
    assert table.column_names == IDENTITY_SCHEMA.names
    for secret in ("domicile", "domicile_head", "my_number", "household_id", "relationship",
                   "family_name_kana", "postal_code"):
        assert secret.encode() not in raw
    # No domicile text, My Number or name appears in clear in the packet bytes.
    for value in full.column("domicile").to_pylist()[:50]:
        assert value is None or value.encode() not in raw
    for value in full.column("family_name").to_pylist()[:50]:
        assert value.encode() not in raw
    for number in full.column("my_number").drop_null().to_pylist()[:50]:
        assert str(number).encode() not in raw


def test_code_blocks_travel_center_to_prefecture_to_municipality(network: Network) -> None:
    center_registry = CodeRegistry()
    block = center_registry.allocate_block(500, PREF)
    p1 = send_code_block(network.center, block)
    out = apply_packet(network.pref, deliver(p1, network.pref))
    assert out.status == "applied" and out.detail["codes"] == 500
    assert apply_packet(network.pref, network.pref.inbox / p1.name).status == "already-applied"
    stored = CodeBlock.load(network.pref.path / "blocks" / f"{block.block_id}.block")
    child = stored.split(200, MUNI)
    p2 = send_code_block(network.pref, child)
    with open_register(network.muni.store_target()) as reg:
        before = reg.codes_remaining()
    assert apply_packet(network.muni, deliver(p2, network.muni)).status == "applied"
    assert apply_packet(network.muni, network.muni.inbox / p2.name).status == "already-applied"
    with open_register(network.muni.store_target()) as reg:
        assert reg.codes_remaining() == before + 200
    with pytest.raises(MisaddressedPacketError):
        send_code_block(network.center, center_registry.allocate_block(5, MUNI))


def test_key_rotation_keeps_old_packets_verifiable(network: Network) -> None:
    apply_day(network, 10, seed=7)
    old = export_changes(network.muni, CENTER)
    assert old is not None
    network.muni.rotate(PASSWORD, valid_from=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    store = network.center.trust()
    store.add_record(network.muni.public_record(PASSWORD))
    network.center.save_trust(store)
    assert apply_packet(network.center, deliver(old, network.center)).status == "applied"
    assert len(network.muni.keys(PASSWORD)) == 2
    assert isinstance(network.muni.current_keys(PASSWORD), NodeKeys)


def test_wrong_password_and_missing_node(tmp_path: Path, network: Network) -> None:
    from jukicore.errors import NotFoundError, PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        network.muni.current_keys("wrong")
    with pytest.raises(NotFoundError):
        Node.open(tmp_path / "nowhere")
    shutil.rmtree(network.pref.path / "keys")
    (network.pref.path / "keys").mkdir()
    with pytest.raises(NotFoundError):
        network.pref.keys(PASSWORD)


def test_apply_packets_applies_in_order_and_reports_refusals(network: Network,
                                                             tmp_path: Path) -> None:
    """A refused packet among good ones is reported, changes nothing; the rest apply."""
    apply_day(network, 20, seed=7)
    first = export_changes(network.muni, CENTER)
    assert first is not None
    with open_register(network.muni.store_target()) as reg:
        last1 = reg.outbox_last_seq(actor=CS)
    # The next night's entries as their own packet (an export would send them together
    # with the first night's, which nobody has acknowledged yet).
    apply_day(network, 20, seed=8, day=DAY + dt.timedelta(days=1))
    with open_register(network.muni.store_target()) as reg:
        entries = reg.outbox(actor=CS, after_seq=last1)
    last2 = int(entries.column("seq")[-1].as_py())
    second = tmp_path / "second.jkp"
    second.write_bytes(Packet.build(
        kind="identity-changes", table=entries.select(IDENTITY_SCHEMA.names).cast(
            IDENTITY_SCHEMA), sender=network.muni.current_keys(PASSWORD), recipient=CENTER,
        trust_store=network.muni.trust(), seq_first=last1 + 1, seq_last=last2).to_bytes())
    tampered = tmp_path / "tampered.jkp"
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    # The tampered copy and the follow-up come before the good first packet: the
    # follow-up is then a gap, refused, and changes nothing either.
    order = [tampered, second, deliver(first, network.center), second]
    results = list(apply_packets(network.center, order))
    assert [p for p, _ in results] == order
    kinds = [type(o).__name__ if not isinstance(o, ApplyOutcome) else o.status
             for _, o in results]
    assert kinds == ["TamperedPacketError", "PacketSequenceError", "applied", "applied"]
    with open_identity_store(network.center.store_target()) as st:
        assert st.last_seq(MUNI) == last2
        assert st.count() > 0
