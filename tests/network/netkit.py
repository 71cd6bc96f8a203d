"""Helpers of the sync tests: a small network of a municipality, its prefecture, the center."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jukicore.access.operators import bootstrap_admin
from jukicore.codes import _BLOCK_KIND, _BLOCK_VERSION, CodeRegistry
from jukicore.identity import create_identity_store
from jukicore.network.node import CENTER, Node, init_node, trust_each_other
from jukicore.register import Actor, create_register, open_register
from jukicore.synth import synthesize_municipality
from jukicore.synth.day import generate_day

PASSWORD = "correct horse battery staple"
MUNI, PREF = "131041", "130001"
DAY = dt.date(2024, 6, 3)


@dataclass
class Network:
    muni: Node
    pref: Node
    center: Node


def build_network(root: Path, make_target: Callable[[str], str], population: int = 300,
                  seed: int = 5, *, register_on_target: bool = False) -> Network:
    """The three nodes, their stores and a loaded register. Their keys are protected by
    PASSWORD, read from JUKICORE_NODE_PASSWORD (set by the suite's conftest). The
    municipality's register is SQLite unless ``register_on_target`` (then it is where
    ``make_target`` puts stores: SQLite or PostgreSQL)."""
    muni = init_node(root / "muni", MUNI,
                     store=make_target("muni") if register_on_target else None)
    pref = init_node(root / "pref", PREF, store=make_target("pref"))
    center = init_node(root / "center", CENTER, store=make_target("center"))
    create_identity_store(pref.store_target(), node_id=PREF, kind="prefecture").close()
    create_identity_store(center.store_target(), node_id=CENTER, kind="center").close()
    m = synthesize_municipality(population, lg_code=MUNI, seed=seed,
                                as_of=DAY - dt.timedelta(days=1))
    admin = Actor.operator("admin", MUNI, "admin")
    with create_register(muni.store_target(), lg_code=MUNI, prefecture=m.prefecture,
                         municipality=m.name, actor=admin) as reg:
        reg.import_code_block(CodeRegistry().allocate_block(population * 3, MUNI),
                              actor=admin)
        reg.load(m.residents, m.households, actor=admin)
    net = Network(muni, pref, center)
    trust_each_other((muni, pref, center), PASSWORD)
    for n in (muni, pref, center):
        first_admin(n)
    return net


def first_admin(node: Node) -> None:
    """What ``jukicore node init`` does with $JUKICORE_ADMIN_*: the store's first admin
    (the suite's ``cli_operator``, whose login the CLI commands then use)."""
    env = os.environ
    if not env.get("JUKICORE_ADMIN_ID"):
        return
    from jukicore.store import connect

    b = connect(node.store_target())
    try:
        bootstrap_admin(b, env["JUKICORE_ADMIN_ID"], name=env["JUKICORE_ADMIN_NAME"],
                        password=env["JUKICORE_ADMIN_PASSWORD"],
                        card_path=env["JUKICORE_ADMIN_CARD"],
                        card_pin=env["JUKICORE_ADMIN_CARD_PIN"])
    finally:
        b.close()


def apply_day(net: Network, n: int, seed: int, day: dt.date = DAY) -> int:
    admin = Actor.operator("admin", MUNI, "admin")
    with open_register(net.muni.store_target()) as reg:
        events = generate_day(reg, actor=admin, day=day, n=n, seed=seed)
        # counter days replayed at any hour: under a supervisor's override (audited)
        clerk = Actor.operator("clerk", MUNI, "clerk").with_override(
            Actor.operator("supervisor", MUNI, "supervisor"), "test: counter days replayed")
        report = reg.apply(events, actor=clerk, today=day)
    return report.applied


def deliver(packet: Path, to: Node) -> Path:
    """The transport: copy a packet file into a node's inbox."""
    target = to.inbox / packet.name
    target.write_bytes(packet.read_bytes())
    return target




def block_bytes(codes: Any, holder: str, block_id: str) -> bytes:
    """A code block's bytes as a buggy or hostile sender could write them: any block id
    (jukicore.codes refuses to build a block with an id unfit for a file name)."""
    import numpy as np

    from jukicore import _jukicore

    meta = "\n".join([block_id, holder, ""]).encode()
    return bytes(_jukicore.container_pack(
        _BLOCK_KIND, _BLOCK_VERSION,
        [meta, np.asarray(codes, dtype="<u8").tobytes()]))


@contextlib.contextmanager
def serving(*nodes: Node, **options: Any) -> Iterator[dict[str, Any]]:
    """Each node's server on loopback (an ephemeral port, in a thread), every other node's
    address book pointing at it; stopped (gracefully) at the end."""
    from jukicore.network.client import set_peer_address
    from jukicore.network.server import NodeServer, serve_in_thread

    servers: dict[str, Any] = {}
    threads = []
    try:
        for n in nodes:
            srv = NodeServer(n, PASSWORD, port=0, **options)
            threads.append(serve_in_thread(srv))
            servers[n.node_id] = srv
        for n in nodes:
            for other in (net_node for net_node in _all_nodes(n) if net_node != n.node_id):
                if other in servers:
                    set_peer_address(n, other, f"https://127.0.0.1:{servers[other].port}")
        yield servers
    finally:
        for srv in servers.values():
            srv.stop()
        for t in threads:
            t.join(timeout=60)


def _all_nodes(node: Node) -> list[str]:
    return [node.node_id, *node.trust()]


def point(node: Node, servers: dict[str, Any]) -> None:
    """``node``'s address book: every server of ``servers``."""
    from jukicore.network.client import set_peer_address

    for nid, srv in servers.items():
        if nid != node.node_id:
            set_peer_address(node, nid, f"https://127.0.0.1:{srv.port}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
