"""``jukicore sync push``: the night's packets over the network, store and forward.

For each recipient (a municipality's prefecture and the center), :func:`push_changes`

1. exports what the recipient has not acknowledged (:func:`jukicore.network.sync.
   export_changes`: one packet from the first unacknowledged entry to the last, or the
   same packet again when nothing changed since it was written);
2. sends it (:meth:`jukicore.network.client.NodeClient.send_packet`, retried as the
   client does) and receives the recipient's signed acknowledgement;
3. puts the acknowledgement into the inbox and applies it as ``jukicore sync apply`` does
   (verified, recorded, archived): the acknowledged entries leave later exports.

A rewind acknowledgement (the recipient was restored from a backup) sets the position
back and the loop sends again from there (at most :data:`ROUNDS` rounds per recipient).

Store and forward: the outbox is the queue. While a recipient is down the municipality
keeps registering notifications (its outbox grows); a push that cannot reach the
recipient within ``retry_for`` seconds fails for that recipient with
:class:`~jukicore.errors.NetworkError`, the other recipient is still served, and nothing
is lost; the next push sends everything not acknowledged, in sequence order, and the
recipient applies each entry exactly once (its store refuses a range applied before and
a gap). Killed at any moment, a push leaves files and transactions as the file transport
does (atomic writes; an acknowledgement in the inbox is applied by the next push or
``sync apply``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from jukicore._files import PRIVATE_FILE, write_atomic
from jukicore.errors import JukiError, NetworkError
from jukicore.network.client import NodeClient
from jukicore.network.node import Node, check_relation
from jukicore.network.packet import Packet
from jukicore.network.sync import (
    apply_inbox,
    apply_packet,
    default_recipients,
    export_changes,
    packet_name,
)

__all__ = ["ROUNDS", "push_changes", "send_packet_file"]

log = logging.getLogger(__name__)

#: How many export-send-acknowledge rounds one push makes per recipient (one, and one
#: more after each rewind).
ROUNDS = 3


def _take_reply(node: Node, reply: bytes, password: str | bytes | None) -> dict[str, Any]:
    """An acknowledgement received: into the inbox, then applied and archived."""
    if not reply:
        return {}
    h = Packet.from_bytes(reply).header
    path = node.inbox / packet_name(h.sender, h.recipient, h.kind, h.seq_first, h.seq_last)
    write_atomic(path, reply, mode=PRIVATE_FILE)
    return apply_packet(node, path, password=password, archive=True).detail


def push_changes(node: Node, client: NodeClient, *, recipients: tuple[str, ...] | None = None,
                 password: str | bytes | None = None) -> dict[str, dict[str, Any]]:
    """Push to each recipient, all at once (see the module's text). Per recipient:
    ``status`` (``sent``,
    ``up-to-date`` or ``failed``), ``rows``, ``acked_seq``, ``seconds``, and ``error`` when
    it failed. Raises only for a refusal that is not the network's (a misaddressed
    recipient, a damaged store); a recipient that cannot be reached is reported."""
    recipients = recipients or default_recipients(node.node_id)
    for r in recipients:
        check_relation("identity-changes", node.node_id, r)
    # acknowledgements a killed push left in the inbox first
    for _, outcome in apply_inbox(node, password=password):
        if isinstance(outcome, JukiError):
            log.warning("%s: inbox: %s", node.node_id, outcome)
    # the recipients are independent (their own exports, locks and servers): both at once
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(recipients)) as pool:
        results = list(pool.map(lambda r: _push_one(node, client, r, password), recipients))
    return dict(zip(recipients, results, strict=True))


def _push_one(node: Node, client: NodeClient, r: str, password: str | bytes | None
              ) -> dict[str, Any]:
    t = time.perf_counter()
    result: dict[str, Any] = {"status": "up-to-date", "rows": 0}
    try:
        for _ in range(ROUNDS):
            packet = export_changes(node, r, password=password)
            if packet is None:
                break
            data = packet.read_bytes()
            h = Packet.from_bytes(data).header
            detail = _take_reply(node, client.send_packet(r, data), password)
            result.update(status="sent", rows=result["rows"] + h.rows,
                          packet=packet.name, acked_seq=detail.get("acked_seq"))
            if detail.get("acked_seq", -1) >= h.seq_last:
                break
    except NetworkError as exc:
        result.update(status="failed", error=str(exc))
        log.warning("push to %s failed: %s", r, exc,
                    extra={"step": "push", "node": node.node_id, "recipient": r,
                           "status": "failed"})
    result["seconds"] = round(time.perf_counter() - t, 3)
    log.info("push to %s: %s", r, result["status"],
             extra={"step": "push", "node": node.node_id, "recipient": r,
                    "rows": result["rows"], "seconds": result["seconds"]})
    return result


def send_packet_file(node: Node, client: NodeClient, packet: Any, *,
                     password: str | bytes | None = None) -> dict[str, Any]:
    """Send one packet of the node's outbox (a code block, an acknowledgement) to the
    recipient it names and take its reply (if any) as :func:`push_changes` does."""
    from pathlib import Path

    data = Path(packet).read_bytes()
    h = Packet.from_bytes(data).header
    if h.sender != node.node_id:
        from jukicore.errors import InvalidInputError

        raise InvalidInputError(f"{packet}: a packet of {h.sender}, not of {node.node_id}")
    check_relation(h.kind, node.node_id, h.recipient)
    detail = _take_reply(node, client.send_packet(h.recipient, data), password)
    return {"recipient": h.recipient, "kind": h.kind, "rows": h.rows, **detail}
