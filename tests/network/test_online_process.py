"""``jukicore node serve`` as a process: killed mid-request, stopped gracefully, restarted."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from netkit import MUNI, PASSWORD, Network, apply_day, free_port
from test_online import _raw

from jukicore.identity import open_identity_store
from jukicore.network.client import NodeClient, set_peer_address
from jukicore.network.node import CENTER, Node
from jukicore.network.push import push_changes
from jukicore.network.server import PACKET
from jukicore.network.sync import sync_status


@contextmanager
def node_process(node: Node, port: int, ops: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``jukicore node serve`` in its own process, once its operations port answers."""
    env = {**os.environ, "JUKICORE_NODE_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jukicore", "--log-level", "info", "--log-format", "json",
         "node", "serve", str(node.path), "--port", str(port), "--ops-port", str(ops),
         *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.stderr.read().decode()}"  # type: ignore[union-attr]
                                     )
            try:
                if httpx.get(f"http://127.0.0.1:{ops}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server did not start")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]


def _center_seq(center: Node) -> int:
    with open_identity_store(center.store_target()) as st:
        return int(st.last_seq(MUNI))


def test_a_server_killed_mid_request_loses_nothing_and_applies_each_entry_once(
        network: Network) -> None:
    port, ops = free_port(), free_port()
    set_peer_address(network.muni, CENTER, f"https://127.0.0.1:{port}")
    # killed while a body arrives: nothing of it is applied
    apply_day(network, 60, seed=21)
    from jukicore.network.sync import export_changes

    packet = export_changes(network.muni, CENTER, password=PASSWORD)
    assert packet is not None
    data = packet.read_bytes()
    with node_process(network.center, port, ops) as proc:
        head = (f"POST /v1/packets HTTP/1.1\r\nHost: x\r\nContent-Type: {PACKET}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        t = threading.Thread(target=_raw, args=(network.muni, port, head + data),
                             kwargs={"server": network.center, "pause_after": len(head) + 100,
                                     "pause": 2.0})
        t.start()
        time.sleep(0.8)
        proc.send_signal(signal.SIGKILL)
        t.join(30)
    assert _center_seq(network.center) == 0
    # killed at moments during pushes, the day going on between them
    for i, delay in enumerate((0.02, 0.1, 0.3, 0.6)):
        apply_day(network, 40, seed=30 + i, day=dt.date(2024, 6, 4) + dt.timedelta(days=i))
        with node_process(network.center, port, ops) as proc:
            outcome: dict[str, Any] = {}

            def push(into: dict[str, Any]) -> None:
                with NodeClient(network.muni, PASSWORD, retry_for=0) as c:
                    into.update(push_changes(network.muni, c, recipients=(CENTER,),
                                             password=PASSWORD))

            t = threading.Thread(target=push, args=(outcome,))
            t.start()
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            t.join(60)
        assert outcome[CENTER]["status"] in ("sent", "failed")
        # whatever the kill interrupted, the center holds a prefix of the outbox
        assert _center_seq(network.center) <= sync_status(network.muni)["outbox_last_seq"]
    # back up: one push brings the center level, each entry applied once
    last = sync_status(network.muni)["outbox_last_seq"]
    with node_process(network.center, port, ops), NodeClient(network.muni, PASSWORD) as c:
        final = push_changes(network.muni, c, recipients=(CENTER,), password=PASSWORD)
    assert final[CENTER]["status"] in ("sent", "up-to-date")
    assert _center_seq(network.center) == last
    assert sync_status(network.muni)["acknowledged"][CENTER] == last
    with open_identity_store(network.center.store_target()) as st:
        applied_rows = st.count()
    assert applied_rows > 0


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(network: Network) -> None:
    port, ops = free_port(), free_port()
    apply_day(network, 10, seed=41)
    from jukicore.network.sync import export_changes

    packet = export_changes(network.muni, CENTER, password=PASSWORD)
    assert packet is not None
    data = packet.read_bytes()
    head = (f"POST /v1/packets HTTP/1.1\r\nHost: x\r\nContent-Type: {PACKET}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    with node_process(network.center, port, ops, "--graceful-seconds", "20") as proc:
        result: dict[str, bytes] = {}
        t = threading.Thread(target=lambda: result.update(reply=_raw(
            network.muni, port, head + data, server=network.center,
            pause_after=len(head) + 50, pause=1.5)))
        t.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        code = proc.wait(30)
        log = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert result["reply"].startswith(b"HTTP/1.1 200")
    assert code == 0
    assert _center_seq(network.center) == sync_status(network.muni)["outbox_last_seq"]
    # structured logs: one JSON object per line, the request with its fields
    import json

    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    req = [x for x in lines if x.get("step") == "request"]
    assert req and req[0]["peer"] == f"node:{MUNI}" and req[0]["status"] == 200
    assert any(x.get("step") == "stop" for x in lines)


def test_two_workers_serve_one_port_and_stop_together(network: Network) -> None:
    port, ops = free_port(), free_port()
    set_peer_address(network.muni, CENTER, f"https://127.0.0.1:{port}")
    with node_process(network.center, port, ops, "--workers", "2") as proc:
        with NodeClient(network.muni, PASSWORD) as c:
            for _ in range(20):
                assert c.call_json(CENTER, "/v1/health", {})["status"] == "ok"
        clients = [NodeClient(network.muni, PASSWORD) for _ in range(20)]
        try:  # new connections, spread over the workers by the kernel
            pids = {c.call_json(CENTER, "/v1/health", {})["worker"] for c in clients}
        finally:
            for c in clients:
                c.close()
        assert len(pids) == 2
        metrics = httpx.get(f"http://127.0.0.1:{ops}/metrics").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    # the workers' requests are summed at /metrics
    assert 'jukicore_requests_total{route="health",status="200"} 40.0' in metrics
    import socket

    with socket.socket() as s:  # nobody listens any more: the second worker stopped too
        assert s.connect_ex(("127.0.0.1", port)) != 0
