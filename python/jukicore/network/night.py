"""A whole night of the network, end to end (what ``jukicore demo`` runs).

1. Three nodes are created in a work directory: a municipality (with its
   resident register), its prefecture and the center (each with an identity
   store), and they trust each other's public keys.
2. The center allocates a block of fresh resident codes to the prefecture and
   sends it as a packet; the prefecture splits a block for the municipality
   and sends that on; the municipality imports it into its register.
3. The municipality loads a synthetic population (its codes from the block)
   and applies a day of notifications.
4. At the counter, a resident receives a My Number card and sets its PIN, then asks
   with the card and the PIN for a certificate of residence of their household; the
   signed PDF is verified offline with the trust store of the prefecture.
5. It exports the identity-info changes to the prefecture and the center; they
   verify, decrypt and apply them, and answer with signed acknowledgements,
   which the municipality records.

The transport (``transport``): ``"network"`` (the default) starts each node's server
(:class:`jukicore.network.server.NodeServer`, mutual TLS 1.3 on loopback, ephemeral ports
written into each node's address book) and carries every packet over it: the code blocks
with ``sync send``'s function, the night's changes with ``sync push``'s
(:func:`jukicore.network.push.push_changes`); the servers stop gracefully at the end.
``"files"``: the packets are copied into the recipients' inboxes (an air-gapped site).
Either way every packet goes through the recipient's inbox and is applied as ``jukicore
sync apply`` does: once applied it is moved into the node's ``archive/YYYY-MM-DD/``, so
every inbox is empty after the night.

Each step logs its figures on ``jukicore.network.night`` (``step``, ``node``, ``packets``,
``rows``, ``bytes``, ``seconds``; the export, seal and apply steps on
``jukicore.network.sync``), and the night ends with one record of every step's seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jukicore._files import PRIVATE_FILE, private_dir, write_atomic
from jukicore.codes import CodeRegistry, allocate_block_file, split_block_file
from jukicore.errors import JukiError
from jukicore.identity import open_identity_store
from jukicore.network.node import CENTER, Node, create_node, trust_each_other
from jukicore.network.sync import (
    ApplyOutcome,
    apply_inbox,
    archive_dir,
    default_recipients,
    export_changes,
    send_code_block,
)
from jukicore.register import Actor, open_register
from jukicore.synth.day import generate_day

__all__ = ["run_night"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


def _deliver(packet: Path, to: Node) -> Path:
    """The transport's part: a copy of the packet in the recipient's inbox (atomic)."""
    t = time.perf_counter()
    target = to.inbox / packet.name
    data = packet.read_bytes()
    write_atomic(target, data, mode=PRIVATE_FILE)
    log.info("delivered %s to %s", packet.name, to.node_id,
             extra={"step": "deliver", "node": to.node_id, "packet": packet.name,
                    "packets": 1, "bytes": len(data), "seconds": time.perf_counter() - t})
    return target


def _apply_inbox(node: Node, password: str) -> list[ApplyOutcome]:
    """``sync apply`` at ``node``: every packet of its inbox, archived once applied. In
    this night nothing may be refused: the first refusal is raised."""
    outcomes = []
    for _, outcome in apply_inbox(node, password=password):
        if isinstance(outcome, JukiError):
            raise outcome
        outcomes.append(outcome)
    return outcomes


def _archived(node: Node) -> int:
    """How many packets the node's archive holds."""
    top = archive_dir(node)
    if not top.is_dir():
        return 0
    return sum(1 for d in top.iterdir() if d.is_dir() for _ in d.iterdir())


@contextmanager
def _step(times: dict[str, float], name: str, **fields: object) -> Iterator[dict[str, object]]:
    """Time one step of the night: its seconds go into ``times`` and one log record (with
    the fields the step adds to the yielded dict)."""
    t = time.perf_counter()
    extra: dict[str, object] = dict(fields)
    yield extra
    seconds = time.perf_counter() - t
    times[name] = times.get(name, 0.0) + seconds
    log.info("%s: %.3f s", name, seconds, extra={"step": name, **extra, "seconds": seconds})


def _demo_operators(muni: Any, cards: Path) -> tuple[Actor, Actor, Actor]:
    """The municipality's operators for the night: its first admin, a counter clerk and
    a supervisor, each with a card in ``cards`` (0700) and random one-night secrets,
    logged in."""
    from jukicore.access import operators as ops

    cards.mkdir(mode=0o700)
    admin_pw, clerk_pw, sup_pw = (f"Demo-{secrets.token_urlsafe(12)}-1" for _ in range(3))
    pin = secrets.token_urlsafe(9)
    with open_register(muni.store_target()) as reg:
        ops.bootstrap_admin(reg, "demo-admin", name="Demo Admin", password=admin_pw,
                            card_path=cards / "demo-admin.card", card_pin=pin)
        admin = ops.login(reg, "demo-admin", admin_pw, cards / "demo-admin.card", pin)
        ops.create_operator(reg, admin, "counter-1", name="Counter Clerk", roles="clerk",
                            password=clerk_pw, card_path=cards / "counter-1.card",
                            card_pin=pin)
        clerk = ops.login(reg, "counter-1", clerk_pw, cards / "counter-1.card", pin)
        ops.create_operator(reg, admin, "supervisor-1", name="Supervisor", roles="supervisor",
                            password=sup_pw, card_path=cards / "supervisor-1.card",
                            card_pin=pin)
        supervisor = ops.login(reg, "supervisor-1", sup_pw, cards / "supervisor-1.card", pin)
    return admin.actor(), clerk.actor(), supervisor.actor()


def _my_number_holder(reg: Any, events: Any, admin: Actor, counter: Actor,
                      day: dt.date) -> int:
    """A resident whose only notification of the day gave them their My Number (chosen
    from ``events``: nothing is read for the choice). A day without one (a short day):
    the counter records a My Number for the first resident of the outbox, the first
    number the register does not hold yet."""
    import pyarrow.compute as pc

    from jukicore.codes import my_number_check_digit
    from jukicore.errors import ConflictError

    if events.num_rows:
        codes = pc.drop_null(events.column("resident_code")).combine_chunks()
        counted = pc.value_counts(codes)
        once = counted.field("values").filter(pc.equal(counted.field("counts"), 1))
        kinds = events.column("kind")
        given = events.filter(pc.equal(kinds, "my_number")).column("resident_code")
        chosen = pc.filter(given, pc.is_in(given, value_set=once))
        if len(chosen):
            return int(chosen[0].as_py())
    code = int(reg.outbox(actor=admin).column("resident_code")[0].as_py())
    for body in range(10**10, 10**10 + 100):
        try:
            reg.notify(actor=counter, today=day, kind="my_number",
                       notification_id=f"counter-my-number-{body}", notified_date=day,
                       event_date=day, resident_code=code,
                       my_number=body * 10 + my_number_check_digit(body))
        except ConflictError:
            continue  # that number is someone's
        return code
    raise ConflictError("no free My Number among the demo's candidates")


def _counter(reg: Any, muni: Node, trust_from: Node, counter: Actor, day: dt.date,
             password: str, out: Path, events: Any, admin: Actor) -> dict[str, Any]:
    """The counter's work of the day: a My Number card issued to a resident who has just
    been given a My Number (:func:`_my_number_holder`), handed over with a PIN (the
    node's pin key beside its keys, mode 0600), then a certificate of residence of that
    resident's household asked for with the card and its PIN, written to ``out`` and
    verified offline with the trust store of ``trust_from`` (which holds the
    municipality's public key)."""

    from jukicore.cards import Cards, create_pin_key
    from jukicore.certificates import CardPin, Certificates, Requester, verify_file

    holder = _my_number_holder(reg, events, admin, counter, day)
    cards = Cards(reg, create_pin_key(muni.path / "pin.key"))
    card_id = str(cards.issue([{"resident_code": holder, "kind": "mynumber"}],
                              actor=counter, today=day).column("card_id")[0])
    pin = f"{secrets.randbelow(10_000):04d}"
    cards.activate(card_id, pin, actor=counter, today=day)
    certs = Certificates(reg, muni.current_keys(password), cards=cards)
    issued = certs.issue(holder, household=True, items=["relationship"],
                         requester=Requester(CardPin(card_id, pin)), actor=counter)
    write_atomic(out, issued.pdf, mode=PRIVATE_FILE)
    checked = verify_file(out, trust_from.trust())
    row = issued.record.to_pylist()[0]
    return {"card_id": card_id, "certificate": str(out), "issuance_id": row["issuance_id"],
            "members": len(row["member_codes"]), "fee": row["fee"],
            "verified_by": trust_from.node_id, "checks": list(checked.checks)}


class _Files:
    """The file transport: a copy of each packet into its recipient's inbox, applied there."""

    name = "files"

    def __init__(self, nodes: dict[str, Node], password: str) -> None:
        self.nodes, self.password = nodes, password

    def send(self, sender: Node, packet: Path, to: str) -> dict[str, Any]:
        node = self.nodes[to]
        _deliver(packet, node)
        outcome, = _apply_inbox(node, self.password)
        return {**outcome.detail, "reply": outcome.reply}

    def sync(self, muni: Node, recipients: tuple[str, ...]) -> dict[str, Any]:
        moved: dict[str, Any] = {}
        for r in recipients:
            packet = export_changes(muni, r, password=self.password)
            if packet is None:
                continue
            detail = self.send(muni, packet, r)
            reply = detail.pop("reply")
            assert reply is not None
            _deliver(reply, muni)
            ack, = _apply_inbox(muni, self.password)
            moved[r] = {"packet_bytes": packet.stat().st_size, **detail,
                        "entries": detail["applied"] + detail["skipped"],
                        "acknowledged": ack.detail["acked_seq"]}
        return moved

    def close(self) -> None:
        pass


class _Network:
    """The network: every node serves on loopback (mutual TLS); packets are sent to the
    recipient's server, which applies them and answers with its reply."""

    name = "network"

    def __init__(self, nodes: dict[str, Node], password: str) -> None:
        from jukicore.network.client import NodeClient, set_peer_address
        from jukicore.network.server import NodeServer, serve_in_thread

        self.nodes, self.password = nodes, password
        self.servers: dict[str, NodeServer] = {}
        self.threads: list[Any] = []
        try:
            for nid, node in nodes.items():
                srv = NodeServer(node, password, port=0)
                self.threads.append(serve_in_thread(srv))
                self.servers[nid] = srv
            for nid, node in nodes.items():
                for other, srv in self.servers.items():
                    if other != nid:
                        set_peer_address(node, other, f"https://{srv.host}:{srv.port}")
        except BaseException:
            self.close()
            raise
        self.clients = {nid: NodeClient(node, password) for nid, node in nodes.items()}

    def send(self, sender: Node, packet: Path, to: str) -> dict[str, Any]:
        from jukicore.network.push import send_packet_file

        return send_packet_file(sender, self.clients[sender.node_id], packet,
                                password=self.password)

    def sync(self, muni: Node, recipients: tuple[str, ...]) -> dict[str, Any]:
        from jukicore.network.push import push_changes

        pushed = push_changes(muni, self.clients[muni.node_id], recipients=recipients,
                              password=self.password)
        moved = {}
        for r, res in pushed.items():
            if res["status"] == "failed":
                raise JukiError(f"push to {r}: {res['error']}")
            if res["status"] == "sent":
                moved[r] = {"packet_bytes": (muni.outbox / res["packet"]).stat().st_size,
                            "entries": res["rows"], "seconds": res["seconds"],
                            "acknowledged": res["acked_seq"]}
        return moved

    def close(self) -> None:
        for c in getattr(self, "clients", {}).values():
            c.close()
        for srv in self.servers.values():
            srv.stop()
        for t in self.threads:
            t.join(timeout=60)


def run_night(workdir: str | os.PathLike[str], *, population: int = 100_000,
              notifications: int = 2_000, seed: int = 1, day: dt.date | None = None,
              password: str = "jukicore-demo", progress: Progress | None = None,
              transport: str = "network") -> dict[str, Any]:
    """Run the night in ``workdir`` (which must not hold nodes yet); returns a summary."""
    if transport not in ("network", "files"):
        from jukicore.errors import InvalidInputError

        raise InvalidInputError(f"transport is 'network' or 'files', not {transport!r}")
    from jukicore.synth import synthesize_municipality

    day = day or dt.date.today()
    root = Path(workdir)
    times: dict[str, float] = {}
    night_start = time.perf_counter()
    with _step(times, "synthesize", rows=population) as f:
        m = synthesize_municipality(population, seed=seed,
                                    as_of=day - dt.timedelta(days=1))
        f["node"] = m.lg_code

    with _step(times, "nodes", packets=0) as f:
        pref_id = default_recipients(m.lg_code)[0]
        muni = create_node(root / m.lg_code, m.lg_code, password=password,
                           prefecture=m.prefecture, municipality=m.name)
        pref = create_node(root / pref_id, pref_id, password=password)
        center = create_node(root / CENTER, CENTER, password=password)
        trust_each_other((muni, pref, center), password)
        admin, clerk, supervisor = _demo_operators(muni, root / "operators")
        f["nodes"] = [muni.node_id, pref.node_id, center.node_id]
        carrier: _Files | _Network = (_Network if transport == "network" else _Files)(
            {n.node_id: n for n in (muni, pref, center)}, password)
    try:
        return _night(root, m, day, times, night_start, muni, pref, center, carrier,
                      (admin, clerk, supervisor), population, notifications, seed, password,
                      progress)
    finally:
        carrier.close()


def _night(root: Path, m: Any, day: dt.date, times: dict[str, float], night_start: float,
           muni: Node, pref: Node, center: Node, carrier: _Files | _Network,
           operators: tuple[Actor, Actor, Actor], population: int, notifications: int,
           seed: int, password: str, progress: Progress | None) -> dict[str, Any]:
    admin, clerk, supervisor = operators
    pref_id = pref.node_id

    # Codes: center -> prefecture -> municipality, as packets.
    # Each step records where the codes went before they are sent (the registry before the
    # block leaves the center; the prefecture's split through a recorded intent), so a crash
    # can lose codes but never hand one out twice.
    with _step(times, "code blocks", packets=2) as f:
        needed = population + 2 * notifications + 1000
        private_dir(center.path / "allocated")
        to_pref = allocate_block_file(center.path / "registry.bin", 2 * needed, pref_id,
                                          center.path / "allocated" / f"{pref_id}.block")
        carrier.send(center, send_code_block(center, to_pref, password=password), pref_id)
        private_dir(pref.path / "split")
        to_muni = split_block_file(pref.path / "blocks" / f"{to_pref.block_id}.block",
                                       needed, m.lg_code,
                                       pref.path / "split" / f"{m.lg_code}.block")
        carrier.send(pref, send_code_block(pref, to_muni, password=password), m.lg_code)
        f["rows"] = len(to_pref) + len(to_muni)
        f["transport"] = carrier.name

    with open_register(muni.store_target()) as reg:
        with _step(times, "load", node=muni.node_id, rows=m.residents.num_rows,
                   households=m.households.num_rows):
            reg.load(m.residents, m.households, actor=admin,
                     progress=(lambda k: progress("load", k, m.residents.num_rows))
                     if progress else None)
        with _step(times, "notifications", node=muni.node_id) as f:
            events = generate_day(reg, actor=admin, day=day, n=notifications, seed=seed)
            # the day's counter work, replayed now: a clerk outside working hours acts
            # under the supervisor's override (audited as access.override)
            counter = clerk.with_override(supervisor, "demo: a counter day replayed by the"
                                          " night simulation")
            report = reg.apply(events, actor=counter, today=day)
            kinds = {k["values"]: k["counts"]
                     for k in events.column("kind").value_counts().to_pylist()}
            f.update(rows=events.num_rows, **report.summary())
        with _step(times, "counter", node=muni.node_id) as f:
            desk = _counter(reg, muni, pref, counter, day, password, root / "certificate.pdf",
                            events, admin)
            f.update(rows=desk["members"])

    with _step(times, "sync", node=muni.node_id, transport=carrier.name) as f:
        moved = carrier.sync(muni, (pref.node_id, center.node_id))
        f["packets"] = 2 * len(moved)
    with open_identity_store(center.store_target()) as st:
        center_records = st.count()
    with open_identity_store(pref.store_target()) as st:
        pref_records = st.count()
    nodes = (muni, pref, center)
    archived = {n.node_id: _archived(n) for n in nodes}
    seconds = {k: round(v, 3) for k, v in times.items()}
    log.info("the night: %.3f s", time.perf_counter() - night_start,
             extra={"step": "night", "node": muni.node_id, "steps": seconds,
                    "archived": archived, "seconds": time.perf_counter() - night_start})
    return {
        "workdir": str(root),
        "municipality": f"{m.prefecture}{m.name} ({m.lg_code})",
        "transport": carrier.name,
        "residents_loaded": m.residents.num_rows,
        "households_loaded": m.households.num_rows,
        "codes_issued_by_center": len(CodeRegistry.load(center.path / "registry.bin")),
        "notifications": kinds,
        **report.summary(),
        "counter": desk,
        "sent": moved,
        "identity_records": {pref_id: pref_records, CENTER: center_records},
        "archived": archived,
        "seconds": seconds,
    }
