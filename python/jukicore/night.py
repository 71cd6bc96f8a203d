"""A whole night of the network, end to end (what ``jukicore demo`` runs).

1. Three nodes are created in a work directory: a municipality (with its
   resident register), its prefecture and the center (each with an identity
   store), and they trust each other's public keys.
2. The center allocates a block of fresh resident codes to the prefecture and
   sends it as a packet; the prefecture splits a block for the municipality
   and sends that on; the municipality imports it into its register.
3. The municipality loads a synthetic population (its codes from the block)
   and applies a day of notifications.
4. It exports the identity-info changes to the prefecture and the center; they
   verify, decrypt and apply them, and answer with signed acknowledgements,
   which the municipality records.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jukicore._files import write_atomic
from jukicore.codes import CodeRegistry, allocate_block_file, split_block_file
from jukicore.identity import create_identity_store, open_identity_store
from jukicore.node import CENTER, Node, init_node, trust_each_other
from jukicore.register import Actor, create_register, open_register
from jukicore.sync import apply_packet, default_recipients, export_changes, send_code_block
from jukicore.synth.day import generate_day

__all__ = ["run_night"]

Progress = Callable[[str, int, int], None]


def _deliver(packet: Path, to: Node) -> Path:
    """The transport's part: a copy of the packet in the recipient's inbox (atomic)."""
    target = to.inbox / packet.name
    write_atomic(target, packet.read_bytes())
    return target


def run_night(workdir: str | os.PathLike[str], *, population: int = 100_000,
              notifications: int = 2_000, seed: int = 1, day: dt.date | None = None,
              password: str = "jukicore-demo", progress: Progress | None = None
              ) -> dict[str, Any]:
    """Run the night in ``workdir`` (which must not hold nodes yet); returns a summary."""
    from jukicore.synth import synthesize_municipality

    day = day or dt.date.today()
    root = Path(workdir)
    times: dict[str, float] = {}
    t = time.perf_counter()
    m = synthesize_municipality(population, seed=seed, as_of=day - dt.timedelta(days=1))
    times["synthesize"] = time.perf_counter() - t

    t = time.perf_counter()
    pref_id = default_recipients(m.lg_code)[0]
    muni = init_node(root / m.lg_code, m.lg_code, password=password)
    pref = init_node(root / pref_id, pref_id, password=password)
    center = init_node(root / CENTER, CENTER, password=password)
    trust_each_other((muni, pref, center), password)
    create_identity_store(pref.store_target(), node_id=pref_id, kind="prefecture").close()
    create_identity_store(center.store_target(), node_id=CENTER, kind="center").close()
    admin = Actor.operator("demo", m.lg_code, "admin")
    create_register(muni.store_target(), lg_code=m.lg_code, prefecture=m.prefecture,
                    municipality=m.name, actor=admin).close()
    times["nodes"] = time.perf_counter() - t

    # Codes: center -> prefecture -> municipality, as packets.
    t = time.perf_counter()
    # Each step records where the codes went before they are sent (the registry before the
    # block leaves the center; the prefecture's split through a recorded intent), so a crash
    # can lose codes but never hand one out twice.
    needed = population + 2 * notifications + 1000
    (center.path / "allocated").mkdir()
    to_pref = allocate_block_file(center.path / "registry.bin", 2 * needed, pref_id,
                                      center.path / "allocated" / f"{pref_id}.block")
    apply_packet(pref, _deliver(send_code_block(center, to_pref, password=password), pref),
                 password=password)
    (pref.path / "split").mkdir()
    to_muni = split_block_file(pref.path / "blocks" / f"{to_pref.block_id}.block", needed,
                                   m.lg_code, pref.path / "split" / f"{m.lg_code}.block")
    apply_packet(muni, _deliver(send_code_block(pref, to_muni, password=password), muni),
                 password=password)
    times["code blocks"] = time.perf_counter() - t

    t = time.perf_counter()
    with open_register(muni.store_target()) as reg:
        reg.load(m.residents, m.households, actor=admin,
                 progress=(lambda k: progress("load", k, m.residents.num_rows))
                 if progress else None)
        times["load"] = time.perf_counter() - t
        t = time.perf_counter()
        events = generate_day(reg, actor=admin, day=day, n=notifications, seed=seed)
        report = reg.apply(events, actor=Actor.operator("counter-1", m.lg_code, "clerk"),
                           today=day)
        times["notifications"] = time.perf_counter() - t
        kinds = {k["values"]: k["counts"]
                 for k in events.column("kind").value_counts().to_pylist()}

    t = time.perf_counter()
    moved: dict[str, Any] = {}
    for node in (pref, center):
        packet = export_changes(muni, node.node_id, password=password)
        if packet is None:
            continue
        outcome = apply_packet(node, _deliver(packet, node), password=password)
        assert outcome.reply is not None
        ack = apply_packet(muni, _deliver(outcome.reply, muni), password=password)
        moved[node.node_id] = {"packet_bytes": packet.stat().st_size, **outcome.detail,
                               "acknowledged": ack.detail["acked_seq"]}
    times["sync"] = time.perf_counter() - t
    with open_identity_store(center.store_target()) as st:
        center_records = st.count()
    with open_identity_store(pref.store_target()) as st:
        pref_records = st.count()
    return {
        "workdir": str(root),
        "municipality": f"{m.prefecture}{m.name} ({m.lg_code})",
        "residents_loaded": m.residents.num_rows,
        "households_loaded": m.households.num_rows,
        "codes_issued_by_center": len(CodeRegistry.load(center.path / "registry.bin")),
        "notifications": kinds,
        **report.summary(),
        "sent": moved,
        "identity_records": {pref_id: pref_records, CENTER: center_records},
        "seconds": {k: round(v, 3) for k, v in times.items()},
    }
