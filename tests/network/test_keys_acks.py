"""Retired keys cannot inject entries; acknowledgements cover only what was sent; one export
per recipient at a time; a retransmission of an applied range gets the current ack."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
from netkit import DAY, MUNI, PASSWORD, PREF, Network, apply_day, deliver

from jukicore.errors import PacketSequenceError, UntrustedSenderError
from jukicore.identity import IDENTITY_SCHEMA, open_identity_store
from jukicore.network.crypto import RETIRED_KEY_GRACE, NodeKeys, TrustStore
from jukicore.network.node import CENTER, Node
from jukicore.network.packet import Packet
from jukicore.network.sync import ACK_SCHEMA, apply_packet, export_changes
from jukicore.register import Actor, open_register

BOTH = pytest.mark.parametrize("identity_target", ["sqlite", "postgresql"], indirect=True)
CS = Actor.node(MUNI, MUNI, "cs")
ROOT = Path(__file__).resolve().parents[2]


def _digest(node: Node) -> str:
    with open_identity_store(node.store_target()) as st:
        return st.content_digest()


def _night(net: Network, to: Node) -> None:
    packet = export_changes(net.muni, to.node_id)
    assert packet is not None
    out = apply_packet(to, deliver(packet, to))
    assert out.status == "applied" and out.reply is not None
    apply_packet(net.muni, deliver(out.reply, net.muni))


def _rotate_and_tell(net: Network, peer: Node) -> dt.datetime:
    """The municipality rotates its keys now; ``peer`` learns of it. Returns when the old
    key was retired."""
    when = dt.datetime.now(dt.UTC)
    net.muni.rotate(PASSWORD, valid_from=when)
    trust = peer.trust()
    trust.add_record(net.muni.public_record(PASSWORD))
    peer.save_trust(trust)
    return when


def _forged(net: Network, keys: NodeKeys, recipient: Node, created_at: dt.datetime,
            after: int) -> Path:
    """Entries after ``after`` in a packet signed with ``keys`` and dated ``created_at``."""
    with open_register(net.muni.store_target()) as reg:
        entries = reg.outbox(actor=CS, after_seq=after)
    first = int(entries.column("seq")[0].as_py())
    last = int(entries.column("seq")[-1].as_py())
    path = recipient.inbox / "forged.jkp"
    path.write_bytes(Packet.build(
        kind="identity-changes", table=entries.select(IDENTITY_SCHEMA.names).cast(
            IDENTITY_SCHEMA), sender=keys, recipient=recipient.node_id,
        trust_store=net.muni.trust(), seq_first=first, seq_last=last,
        created_at=created_at).to_bytes())
    return path


# --------------------------------------------------------------------------- retired keys


@BOTH
def test_a_retired_key_cannot_inject_once_the_sender_uses_its_new_key(network: Network
                                                                       ) -> None:
    apply_day(network, 10, seed=21)
    _night(network, network.center)
    old_keys = network.muni.keys(PASSWORD)[0]
    retired = _rotate_and_tell(network, network.center)
    # The next night is signed with the new key: the center now knows the old one is done.
    apply_day(network, 10, seed=22, day=DAY + dt.timedelta(days=1))
    _night(network, network.center)
    with open_identity_store(network.center.store_target()) as st:
        applied = st.last_seq(MUNI)
    # Whoever holds the retired key dates a packet just before the rotation (by a
    # microsecond: the old key may be only a second old) and carries the next entries:
    # refused, nothing changes.
    apply_day(network, 10, seed=23, day=DAY + dt.timedelta(days=2))
    forged = _forged(network, old_keys, network.center, retired - dt.timedelta(microseconds=1),
                     applied)
    before = _digest(network.center)
    with pytest.raises(UntrustedSenderError, match="newer key"):
        apply_packet(network.center, forged)
    assert _digest(network.center) == before
    # The rule survives a restart (it is kept in trust.json).
    assert network.center.trust().keys(MUNI)[1].used


@BOTH
def test_a_retired_key_cannot_inject_after_the_grace_period(network: Network) -> None:
    apply_day(network, 10, seed=24)
    _night(network, network.center)
    old_keys = network.muni.keys(PASSWORD)[0]
    retired = _rotate_and_tell(network, network.center)
    with open_identity_store(network.center.store_target()) as st:
        applied = st.last_seq(MUNI)
    apply_day(network, 10, seed=25, day=DAY + dt.timedelta(days=1))
    forged = _forged(network, old_keys, network.center, retired - dt.timedelta(microseconds=1),
                     applied)
    # Within the grace period, before any packet under the new key: in flight, accepted.
    assert Packet.read(forged).verify_and_open(
        network.center.trust(), CENTER, network.center.keys(PASSWORD))
    # The grace period over (the rotation learned long ago): refused, nothing changes.
    trust = network.center.trust()
    peer = trust._peers[MUNI]
    long_ago = retired - RETIRED_KEY_GRACE
    peer.keys[0] = replace(peer.keys[0], valid_from=long_ago - dt.timedelta(days=30),
                           retired_learned_at=long_ago - dt.timedelta(seconds=1),
                           retired_at=long_ago)
    network.center.save_trust(trust)
    forged = _forged(network, old_keys, network.center,
                     long_ago - dt.timedelta(seconds=2), applied)
    before = _digest(network.center)
    with pytest.raises(UntrustedSenderError, match="grace period"):
        apply_packet(network.center, forged)
    assert _digest(network.center) == before


def test_retired_key_rule_in_the_trust_store(tmp_path: Path) -> None:
    old, new = NodeKeys.generate("131016"), NodeKeys.generate("131016")
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    t1 = t0 + dt.timedelta(days=30)
    store = TrustStore()
    store.add("131016", "municipality", old.signing.public_key(),
              old.encryption.public_key(), t0)
    store.add("131016", "municipality", new.signing.public_key(),
              new.encryption.public_key(), t1)
    learned = store.keys("131016")[0].retired_learned_at
    assert learned is not None
    start = max(learned, t1)
    before = t1 - dt.timedelta(seconds=1)
    # In flight: within the grace period a packet dated before the rotation verifies.
    store.verifying_key("131016", old.signing_key_id, before, now=start)
    store.verifying_key("131016", old.signing_key_id, before,
                        now=start + RETIRED_KEY_GRACE - dt.timedelta(seconds=1))
    with pytest.raises(UntrustedSenderError, match="grace period"):
        store.verifying_key("131016", old.signing_key_id, before,
                            now=start + RETIRED_KEY_GRACE)
    # Once the new key is seen in use, the old one verifies nothing, even in the grace.
    assert store.note_used("131016", new.signing_key_id)
    assert not store.note_used("131016", new.signing_key_id)
    with pytest.raises(UntrustedSenderError, match="newer key"):
        store.verifying_key("131016", old.signing_key_id, before, now=start)
    assert store.verifying_key("131016", new.signing_key_id, t1 + dt.timedelta(days=1))
    # Kept across save and load; a store written before these fields still loads.
    store.save(tmp_path / "trust.json")
    again = TrustStore.load(tmp_path / "trust.json")
    assert [k.used for k in again.keys("131016")] == [False, True]
    assert again.keys("131016")[0].retired_learned_at == learned
    doc = again.to_json()
    for k in doc["peers"]["131016"]["keys"]:
        del k["used"], k["retired_learned_at"]
    legacy = TrustStore.from_json(doc)
    assert legacy.keys("131016")[0].grace_ends() == t1 + RETIRED_KEY_GRACE


# --------------------------------------------------------------------------- acknowledgements


def _ack(net: Network, sender: Node, seq: int, where: Path) -> Path:
    table = pa.table({"seq": pa.array([seq], pa.int64()),
                      "acked_packet": pa.array(["00" * 16], pa.string())}, schema=ACK_SCHEMA)
    where.write_bytes(Packet.build(
        kind="ack", table=table, sender=sender.current_keys(PASSWORD), recipient=MUNI,
        trust_store=sender.trust(), seq_first=max(seq, 1), seq_last=max(seq, 1)).to_bytes())
    return where


def _sync_state(net: Network) -> tuple[dict[str, int], list[tuple[object, ...]]]:
    with open_register(net.muni.store_target()) as reg:
        log = [(r["packet_id"], r["direction"], r["peer"], r["first_seq"], r["last_seq"])
               for r in reg.sync_log(actor=CS)]
        return reg.sync_peers(actor=CS), log


def _refusals(net: Network) -> int:
    with open_register(net.muni.store_target()) as reg, reg._b.session(write=False) as s:
        return int(s.scalar("SELECT count(*) FROM audit WHERE action = 'sync.ack-refused'"))


def test_an_acknowledgement_of_entries_never_sent_is_refused(full_network: Network,
                                                             tmp_path: Path) -> None:
    net = full_network
    apply_day(net, 15, seed=26)
    sent = export_changes(net.muni, PREF)
    assert sent is not None
    sent_last = Packet.read(sent).header.seq_last
    # More entries, not exported yet; the prefecture acknowledges them anyway.
    apply_day(net, 15, seed=27, day=DAY + dt.timedelta(days=1))
    with open_register(net.muni.store_target()) as reg:
        outbox_last = reg.outbox_last_seq(actor=CS)
    assert outbox_last > sent_last
    state = _sync_state(net)
    over = _ack(net, net.pref, outbox_last, tmp_path / "over.jkp")
    with pytest.raises(PacketSequenceError, match=f"only entries up to {sent_last}"):
        apply_packet(net.muni, over)
    assert _sync_state(net) == state
    assert _refusals(net) == 1  # logged
    # Nothing was sent to the center at all: any acknowledgement from it is refused.
    with pytest.raises(PacketSequenceError, match="only entries up to 0"):
        apply_packet(net.muni, _ack(net, net.center, 3, tmp_path / "c.jkp"))
    assert _sync_state(net) == state
    # Those entries are still sent: the next export to the prefecture carries them.
    again = export_changes(net.muni, PREF)
    assert again is not None
    assert Packet.read(again).header.seq_last == outbox_last
    # An honest acknowledgement of what was sent is recorded.
    assert apply_packet(net.muni, _ack(net, net.pref, sent_last, tmp_path / "ok.jkp")
                        ).status == "applied"
    assert _sync_state(net)[0][PREF] == sent_last


# --------------------------------------------------------------------------- concurrent export

_EXPORT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from jukicore.network.node import Node
    from jukicore.network.sync import export_changes
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    export_changes(Node.open(sys.argv[1]), sys.argv[3])
""")


def test_two_concurrent_exports_log_one_packet(full_network: Network, tmp_path: Path) -> None:
    net = full_network
    apply_day(net, 200, seed=28)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    procs = [subprocess.Popen([sys.executable, "-c", _EXPORT, str(net.muni.path), str(go),
                               CENTER], env=env) for _ in range(4)]
    go.touch()
    assert [p.wait(timeout=300) for p in procs] == [0] * len(procs)
    _, log = _sync_state(net)
    out = [row for row in log if row[1] == "out" and row[2] == CENTER]
    assert len(out) == 1
    packets = list(net.muni.outbox.glob(f"{MUNI}-{CENTER}-*.jkp"))
    assert len(packets) == 1
    assert Packet.read(packets[0]).header.packet_id.hex() == out[0][0]


@BOTH
def test_a_retransmitted_applied_range_gets_the_current_ack(network: Network) -> None:
    """The acknowledgement of a night was lost; the municipality exports the same range
    again under a new packet id: the center answers with its current acknowledgement,
    changes nothing, and the municipality's next export is empty."""
    apply_day(network, 15, seed=29)
    first = export_changes(network.muni, CENTER)
    assert first is not None
    out = apply_packet(network.center, deliver(first, network.center))
    assert out.status == "applied"
    assert out.reply is not None
    out.reply.unlink()  # lost on the way back
    first_id = Packet.read(first).header.packet_id
    first.unlink()  # the outbox was cleaned: the next export writes a new packet id
    again = export_changes(network.muni, CENTER)
    assert again is not None
    assert Packet.read(again).header.packet_id != first_id
    before = _digest(network.center)
    res = apply_packet(network.center, deliver(again, network.center))
    assert res.status == "already-applied" and res.reply is not None
    assert _digest(network.center) == before
    assert apply_packet(network.muni, deliver(res.reply, network.muni)).status == "applied"
    assert export_changes(network.muni, CENTER) is None
