"""After every packet is delivered, in whatever order, the prefecture and the center hold
exactly the identity info of their municipalities: two municipalities of one prefecture,
real registers (days of every kind of notification, code changes, deaths, moves), a person
moving between them with a planned move-out later than the actual move-in, packets held
back, retransmitted and delivered out of order."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from netkit import DAY, PASSWORD, PREF, apply_day, build_network, deliver

from jukicore.cli import main
from jukicore.codes import CodeRegistry
from jukicore.errors import PacketSequenceError
from jukicore.identity import IDENTITY_SCHEMA, open_identity_store
from jukicore.network.node import CENTER, Node, init_node
from jukicore.network.packet import Packet
from jukicore.network.sync import apply_packet, export_changes
from jukicore.register import Actor, create_register, open_register
from jukicore.synth import synthesize_municipality
from jukicore.synth.day import generate_day

BOTH = pytest.mark.parametrize("identity_target", ["sqlite", "postgresql"], indirect=True)
OTHER = "131016"  # 千代田区, the second municipality of the prefecture
ITEMS = ("family_name", "given_name", "birth_date", "sex", "address", "status")


def _clerk(lg: str) -> Actor:
    # counter days replayed at any hour: under a supervisor's override (audited)
    return Actor.operator("clerk", lg, "clerk").with_override(
        Actor.operator("supervisor", lg, "supervisor"), "test: counter days replayed")


def _second_municipality(root: Path) -> Node:
    node = init_node(root / "other", OTHER)
    m = synthesize_municipality(200, lg_code=OTHER, seed=11, as_of=DAY - dt.timedelta(days=1))
    admin = Actor.operator("admin", OTHER, "admin")
    with create_register(node.store_target(), lg_code=OTHER, prefecture=m.prefecture,
                         municipality=m.name, actor=admin) as reg:
        reg.import_code_block(CodeRegistry().allocate_block(600, OTHER), actor=admin)
        reg.load(m.residents, m.households, actor=admin)
    return node


def _trust_newcomer(new: Node, others: tuple[Node, ...]) -> None:
    trust = new.trust()
    for n in others:
        trust.add_record(n.public_record(PASSWORD))
        theirs = n.trust()
        theirs.add_record(new.public_record(PASSWORD))
        n.save_trust(theirs)
    new.save_trust(trust)


def _truth(munis: list[Node]) -> dict[int, dict[str, Any]]:
    """Each code's identity info in the municipalities' registers (a resident record wins
    over removed ones: the person lives there)."""
    out: dict[int, dict[str, Any]] = {}
    for node in munis:
        actor = Actor.node(node.node_id, node.node_id, "cs")
        with open_register(node.store_target()) as reg:
            rows = reg.residents(actor=actor, include_removed=True).to_pylist()
        for r in rows:
            row = {k: r[k] for k in ITEMS} | {"lg_code": node.node_id}
            code = int(r["resident_code"])
            if code not in out or row["status"] == "resident":
                out[code] = row
    return out


def _upper(node: Node) -> tuple[dict[int, dict[str, Any]], int]:
    with open_identity_store(node.store_target()) as st:
        cur = st.current(actor=st.node_id).to_pylist()
        quarantined = st.quarantined(actor=st.node_id).num_rows
    return {int(r["resident_code"]): {k: r[k] for k in (*ITEMS, "lg_code")} for r in cur}, \
        quarantined


def _person_to_move(node: Node) -> dict[str, Any]:
    actor = Actor.node(node.node_id, node.node_id, "cs")
    with open_register(node.store_target()) as reg:
        res = reg.residents(actor=actor)
    rows = res.filter(pa.compute.not_equal(res.column("relationship"), "世帯主")).to_pylist()
    return rows[0]


@BOTH
@pytest.mark.parametrize("late", ["center", "prefecture"])
def test_upper_stores_equal_their_municipalities(tmp_path: Path,
                                                 identity_target: Callable[[str], str],
                                                 late: str) -> None:
    net = build_network(tmp_path, identity_target, population=250, seed=9)
    a, b = net.muni, _second_municipality(tmp_path)
    _trust_newcomer(b, (a, net.pref, net.center))
    apply_day(net, 40, seed=21)
    with open_register(b.store_target()) as reg:
        events = generate_day(reg, actor=Actor.operator("admin", OTHER, "admin"), day=DAY,
                              n=40, seed=22)
        reg.apply(events, actor=_clerk(OTHER), today=DAY)
    # P files the move-out at A for a planned day 10, and moves in at B on day 3.
    p = _person_to_move(a)
    code = int(p["resident_code"])
    with open_register(a.store_target()) as reg:
        rep = reg.apply([{"notification_id": "out-p", "kind": "move_out",
                          "notified_date": DAY + dt.timedelta(days=1),
                          "event_date": DAY + dt.timedelta(days=10), "resident_code": code,
                          "destination": "東京都千代田区"}],
                        actor=_clerk(a.node_id), today=DAY + dt.timedelta(days=1))
        assert rep.applied == 1, rep
    night1 = {(m.node_id, r): export_changes(m, r) for m in (a, b) for r in (PREF, CENTER)}
    with open_register(b.store_target()) as reg:
        rep = reg.apply([{"notification_id": "in-p", "kind": "move_in",
                          "notified_date": DAY + dt.timedelta(days=4),
                          "event_date": DAY + dt.timedelta(days=3), "resident_code": code,
                          "family_name": p["family_name"], "given_name": p["given_name"],
                          "family_name_kana": p["family_name_kana"],
                          "given_name_kana": p["given_name_kana"],
                          "birth_date": p["birth_date"], "sex": p["sex"],
                          "relationship": "世帯主", "previous_address": p["address"],
                          "postal_code": "1010021", "town": "外神田", "street": "1丁目1番1号"}],
                        actor=_clerk(OTHER), today=DAY + dt.timedelta(days=4))
        assert rep.applied == 1, rep
    apply_day(net, 30, seed=23, day=DAY + dt.timedelta(days=5))
    # Night 2: nothing was acknowledged, so each export resends night 1's entries too.
    night2 = {(m.node_id, r): export_changes(m, r) for m in (a, b) for r in (PREF, CENTER)}
    for r, node in ((PREF, net.pref), (CENTER, net.center)):
        a1, a2 = night1[(a.node_id, r)], night2[(a.node_id, r)]
        b1, b2 = night1[(b.node_id, r)], night2[(b.node_id, r)]
        assert None not in (a1, a2, b1, b2)
        # The late node gets B's whole story before anything from A, and A's first night
        # after its second (a retransmission of an applied range: already applied).
        order = [b2, b1, a2, a1] if late == r.replace("130001", "prefecture") else [
            a1, b1, a2, b2]
        applied = 0
        for pk in order:
            assert pk is not None
            try:
                applied += apply_packet(node, deliver(pk, node)).status == "applied"
            except PacketSequenceError as exc:  # an older export of a range applied since
                assert "replayed" in str(exc)
        assert applied >= 2
    truth = _truth([a, b])
    for node in (net.pref, net.center):
        held, quarantined = _upper(node)
        assert quarantined == 0
        assert held == truth
        assert (held[code]["lg_code"], held[code]["status"]) == (OTHER, "resident")


@BOTH
def test_an_entry_breaking_a_rule_never_stops_the_sync(tmp_path: Path,
                                                       identity_target: Callable[[str], str]
                                                       ) -> None:
    """A packet with an entry that breaks a rule is applied and acknowledged whole; the
    entry is quarantined, the next night applies."""
    net = build_network(tmp_path, identity_target, population=60, seed=4)
    cs = Actor.node(net.muni.node_id, net.muni.node_id, "cs")
    with open_register(net.muni.store_target()) as reg:
        entries = reg.outbox(actor=cs, after_seq=0)
    last = int(entries.column("seq")[-1].as_py())
    table = entries.select(IDENTITY_SCHEMA.names).cast(IDENTITY_SCHEMA)
    reasons = table.column("change_reason").to_pylist()
    reasons[5] = "teleport"
    table = table.set_column(table.schema.get_field_index("change_reason"), "change_reason",
                             pa.array(reasons, pa.string()))
    bad = net.center.inbox / "bad.jkp"
    bad.write_bytes(Packet.build(
        kind="identity-changes", table=table, sender=net.muni.current_keys(PASSWORD),
        recipient=CENTER, trust_store=net.muni.trust(), seq_first=1, seq_last=last).to_bytes())
    out = apply_packet(net.center, bad)
    assert out.status == "applied" and out.detail["rejected"] == 1
    assert out.reply is not None  # (crafted here, not exported: the municipality would
    # refuse this acknowledgement of entries it never sent; its next export resends them)
    with open_identity_store(net.center.store_target()) as st:
        r = st.rejected(actor=st.node_id).to_pylist()
        assert [(e["seq"], json.loads(e["entry"])["change_reason"]) for e in r] == \
            [(6, "teleport")]
        assert "change_reason" in r[0]["problem"]
        assert st.count() == last - 1 and st.last_seq(net.muni.node_id) == last
        assert st.history(json.loads(r[0]["entry"])["resident_code"],
                          actor=st.node_id).num_rows == 0
    listed = CliRunner().invoke(main, ["sync", "quarantine", str(net.center.path), "--json"])
    assert listed.exit_code == 0, listed.output
    shown = json.loads(listed.stdout)
    assert [e["seq"] for e in shown["rejected"]] == [6] and shown["quarantined"] == []
    assert CliRunner().invoke(main, ["sync", "quarantine", str(net.muni.path)]).exit_code == 2
    apply_day(net, 10, seed=5)
    nxt = export_changes(net.muni, CENTER)
    assert nxt is not None
    res = apply_packet(net.center, deliver(nxt, net.center))
    assert res.status == "applied" and res.detail["quarantined"] == 0
