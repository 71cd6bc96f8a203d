"""Each nightly packet carries the municipality's latest audit checkpoint; the prefecture
keeps it per sender and refuses one that is not consistent with the one before."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "network"))

from netkit import MUNI, PASSWORD, PREF, Network, apply_day, build_network, deliver

from jukicore.audit import chain
from jukicore.errors import AuditCheckpointError
from jukicore.identity import open_identity_store
from jukicore.network.packet import Packet
from jukicore.network.sync import apply_packet, export_changes
from jukicore.store import connect

DAY = dt.date(2024, 6, 3)


@pytest.fixture(params=["sqlite", "postgresql"])
def net(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        pg_databases: Callable[[str], str], cli_operator: object) -> Network:
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)

    def make(name: str) -> str:
        return f"{name}.sqlite" if request.param == "sqlite" else pg_databases(f"cp_{name}")

    return build_network(tmp_path, make, population=120, register_on_target=True)


def _night(net: Network, seed: int, day: dt.date) -> Path:
    apply_day(net, 15, seed=seed, day=day)
    packet = export_changes(net.muni, PREF)
    assert packet is not None
    return packet


def _kept(net: Network) -> tuple[int, str] | None:
    be = connect(net.pref.store_target())
    try:
        with be.session(write=False) as s:
            rows = s.query("SELECT size, root FROM audit_peer_checkpoint WHERE sender = ?",
                           (MUNI,))
            return (int(rows[0][0]), rows[0][1]) if rows else None
    finally:
        be.close()


def _actions(target: str, action: str) -> list[str | None]:
    be = connect(target)
    try:
        with be.session(write=False) as s:
            return [r[0] for r in s.query("SELECT detail FROM audit WHERE action = ?"
                                          " ORDER BY seq", (action,))]
    finally:
        be.close()


def _change_muni_log(net: Network, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Change the municipality's log by raw SQL and rebuild its tree state to match."""
    be = connect(net.muni.store_target())
    try:
        with be.bulk_session() as s:
            for sql, params in statements:
                s.execute(sql, params)
            lv = chain.read_leaves(s)
            n = len(lv)
            s.execute("UPDATE audit_state SET size = ?, frontier = ?, root = ?",
                      (n, lv.frontier(n).hex(), lv.root(n).hex()))
    finally:
        be.close()


def test_packets_carry_checkpoints_that_the_prefecture_keeps(net: Network) -> None:
    p1 = _night(net, 1, DAY)
    h1 = Packet.from_bytes(p1.read_bytes()).header
    assert h1.audit is not None and h1.audit["proofs"] == {}
    note1 = chain.parse_note(h1.audit["checkpoint"])
    apply_packet(net.pref, deliver(p1, net.pref))
    assert _kept(net) == (note1.size, note1.root.hex())
    p2 = _night(net, 2, DAY + dt.timedelta(days=1))
    h2 = Packet.from_bytes(p2.read_bytes()).header
    assert h2.audit is not None and str(note1.size) in h2.audit["proofs"]
    note2 = chain.parse_note(h2.audit["checkpoint"])
    assert note2.size > note1.size
    apply_packet(net.pref, deliver(p2, net.pref))
    assert _kept(net) == (note2.size, note2.root.hex())
    assert len(_actions(net.pref.store_target(), "audit.peer_checkpoint")) == 2
    # the municipality's own log verifies with its checkpoints
    from jukicore import audit

    be = connect(net.muni.store_target())
    try:
        keys = [k.signing.public_key() for k in net.muni.keys()]  # noqa: SIM118  (Node.keys)
        assert audit.verify(be, node_id=MUNI, keys=keys).ok
    finally:
        be.close()


def test_a_rewritten_past_is_refused_and_audited(net: Network) -> None:
    """The library call raises AuditCheckpointError (tested below); the night's apply
    refuses the checkpoint and reports it, and applies the entries."""
    p1 = _night(net, 1, DAY)
    apply_packet(net.pref, deliver(p1, net.pref))
    kept = _kept(net)
    # The municipality rewrites an old entry and rebuilds its tree state to match.
    _change_muni_log(net, ("UPDATE audit SET detail = 'rewritten' WHERE seq = 1", ()))
    p2 = _night(net, 2, DAY + dt.timedelta(days=1))
    with open_identity_store(net.pref.store_target()) as st:
        before = (st.last_seq(MUNI), st.current(actor=st.node_id).num_rows)
    # the checkpoint is refused, kept out and reported; the entries still apply (nothing
    # stops the night)
    outcome = apply_packet(net.pref, deliver(p2, net.pref))
    assert outcome.status == "applied"
    assert "not consistent" in outcome.detail["audit_checkpoint_refused"]
    with open_identity_store(net.pref.store_target()) as st:
        assert st.last_seq(MUNI) > before[0]
    assert _kept(net) == kept
    refused = _actions(net.pref.store_target(), "audit.checkpoint_refused")
    assert len(refused) == 1 and "rewritten" in (refused[0] or "")


def test_a_forged_or_truncated_checkpoint_is_refused(net: Network, tmp_path: Path) -> None:
    p1 = _night(net, 1, DAY)
    apply_packet(net.pref, deliver(p1, net.pref))
    size, root = _kept(net) or (0, "")
    keys = [k.signing_public for k in net.pref.trust().keys(MUNI)]
    own = net.muni.current_keys()
    smaller = chain.sign_note(chain.note_body(MUNI, size - 1, bytes(32)), f"jukicore/{MUNI}",
                              own.signing)
    with pytest.raises(AuditCheckpointError, match="was truncated"):
        chain.accept_peer_checkpoint(net.pref.store_target(), PREF, MUNI,
                                     {"checkpoint": smaller, "proofs": {}}, keys)
    same_size = chain.sign_note(chain.note_body(MUNI, size, bytes(32)), f"jukicore/{MUNI}",
                                own.signing)
    with pytest.raises(AuditCheckpointError, match="root differs"):
        chain.accept_peer_checkpoint(net.pref.store_target(), PREF, MUNI,
                                     {"checkpoint": same_size, "proofs": {}}, keys)
    bigger = chain.sign_note(chain.note_body(MUNI, size + 5, bytes(32)), f"jukicore/{MUNI}",
                             own.signing)
    with pytest.raises(AuditCheckpointError, match="no consistency proof"):
        chain.accept_peer_checkpoint(net.pref.store_target(), PREF, MUNI,
                                     {"checkpoint": bigger, "proofs": {}}, keys)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    forged = chain.sign_note(chain.note_body(MUNI, size + 5, bytes(32)), f"jukicore/{MUNI}",
                             Ed25519PrivateKey.generate())
    with pytest.raises(AuditCheckpointError, match="no valid signature"):
        chain.accept_peer_checkpoint(net.pref.store_target(), PREF, MUNI,
                                     {"checkpoint": forged, "proofs": {}}, keys)
    assert _kept(net) == (size, root)
    assert len(_actions(net.pref.store_target(), "audit.checkpoint_refused")) == 4


def test_a_header_without_the_field_is_the_old_format() -> None:
    from jukicore.network.packet import PacketHeader

    h = PacketHeader(version=2, packet_id=bytes(16), kind="ack", sender=PREF,
                     sender_key_id="k", recipient=MUNI, recipient_key_id="k", seq_first=1,
                     seq_last=1, created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), rows=0,
                     encrypted=(), schema=b"")
    raw = h.to_json_bytes()
    assert b"audit" not in raw
    assert PacketHeader.from_json_bytes(raw) == h


def test_an_older_packet_arriving_late_is_checked_by_the_newer_ones_proofs(
        net: Network) -> None:
    p1 = _night(net, 1, DAY)
    p2 = _night(net, 2, DAY + dt.timedelta(days=1))  # nothing acknowledged: resends 1 too
    apply_packet(net.pref, deliver(p2, net.pref))
    kept = _kept(net)
    outcome = apply_packet(net.pref, deliver(p1, net.pref))  # late: already applied
    assert outcome.status == "already-applied"
    assert _kept(net) == kept
    assert _actions(net.pref.store_target(), "audit.checkpoint_refused") == []
    # a late checkpoint of the same size with another root is refused
    h1 = Packet.from_bytes(p1.read_bytes()).header
    assert h1.audit is not None
    n1 = chain.parse_note(h1.audit["checkpoint"])
    forged = chain.sign_note(chain.note_body(MUNI, n1.size, bytes(32)), f"jukicore/{MUNI}",
                             net.muni.current_keys().signing)
    keys = [k.signing_public for k in net.pref.trust().keys(MUNI)]
    with pytest.raises(AuditCheckpointError, match="rewritten"):
        chain.accept_peer_checkpoint(net.pref.store_target(), PREF, MUNI,
                                     {"checkpoint": forged, "proofs": {}}, keys)


def test_an_admin_resets_the_checkpoint_kept_after_a_restore(net: Network) -> None:
    """A restored municipality's log is shorter than the checkpoint kept: its checkpoints
    are refused (entries still apply) until an admin of the prefecture forgets the kept
    one, with a reason; the next checkpoint is kept as a new start."""
    from click.testing import CliRunner

    from jukicore.cli import main

    apply_packet(net.pref, deliver(_night(net, 1, DAY), net.pref))
    kept = _kept(net)
    assert kept is not None
    # what a restore from an earlier backup leaves: the tail of the log is gone
    _change_muni_log(net, ("DELETE FROM audit WHERE seq >= ?", (kept[0] - 3,)),
                     ("DELETE FROM audit_checkpoint", ()))
    outcome = apply_packet(net.pref, deliver(_night(net, 2, DAY + dt.timedelta(days=1)),
                                             net.pref))
    assert outcome.status == "applied" and "audit_checkpoint_refused" in outcome.detail
    assert _kept(net) == kept

    def reset(*args: str) -> tuple[int, str]:
        r = CliRunner().invoke(main, ["audit", "peer-reset", str(net.pref.path), *args])
        return r.exit_code, r.output

    # bad input changes nothing
    assert reset("--sender", MUNI, "--reason", " ")[0] == 1
    assert reset("--sender", "../x", "--reason", "restore")[0] == 1
    assert _kept(net) == kept
    assert reset("--sender", "131059", "--reason", "restore") == (
        0, "no checkpoint of 131059 was kept: nothing to forget\n")
    code, out = reset("--sender", MUNI, "--reason", "restored from the backup of 2024-06-02")
    assert code == 0 and f"size {kept[0]}" in out, out
    assert _kept(net) is None
    (entry,) = _actions(net.pref.store_target(), chain.PEER_RESET_ACTION)
    assert entry is not None and entry.startswith(
        f"forgot size {kept[0]} root {kept[1]}: restored from the backup of 2024-06-02\n")
    # the next night's checkpoint is kept as a new start
    outcome = apply_packet(net.pref, deliver(_night(net, 3, DAY + dt.timedelta(days=2)),
                                             net.pref))
    assert "audit_checkpoint_refused" not in outcome.detail
    new = _kept(net)
    assert new is not None and new != kept
