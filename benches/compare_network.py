"""The online network on this machine's loopback, each figure beside its alternative.

    python benches/compare_network.py                 # full: the issue's sizes
    python benches/compare_network.py --scale small   # a smoke run (seconds)

1. **Agency code queries over mutual TLS 1.3**: the center (``jukicore node serve`` in its
   own process, SQLite store of ``--records`` identity records) answers single
   ``/v1/identity/confirm`` requests by resident code for ``jps-pension-benefits`` (each
   answer a provision record, committed before the answer leaves; the queries that
   arrive together are committed together). The load: ``--clients`` keep-alive TLS
   connections from one asyncio process, each sending its next request when the last is
   answered, for ``--seconds``. Reported: queries/s, p50/p99 latency as the client sees
   it (targets: >= 2,000/s, p99 <= 20 ms), and the CPU of the load generator and of the
   server. Alternative, same run: the same queries in one process,
   ``IdentityStore.confirm`` called in a loop (no network, no TLS, no HTTP, one
   transaction per query). ``--center-store postgresql`` puts the center on a
   throwaway PostgreSQL server (fsync on); ``--workers`` runs more server processes.
2. **A night pushed**: a municipality with ``--changes`` outbox entries (a synthetic
   population loaded, every resident an entry) pushed to its prefecture and the center
   (``push_changes``: export, send over mutual TLS, apply, acknowledge, record the
   acknowledgement), both servers in their own processes (target: <= 2 s for 40,000).
   Alternative, same run, same entries: the file transport (export, copy into the inbox,
   ``sync apply`` at the recipient, the acknowledgement copied back and applied), on a
   copy of the same nodes.
3. **Bulk verification over the network**: ``--rows`` codes verified by an agency with
   ``AgencyClient.verify`` (an Arrow IPC stream up, the answers' stream down) against the
   same table with ``IdentityStore.verify`` in-process on a copy of the same store
   (target: network <= 1.5x in-process); each way the best of :data:`REPEATS` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from jukicore.access.actors import Actor
from jukicore.identity import open_identity_store
from jukicore.network.agency import AgencyIdentity, trust_agency
from jukicore.network.client import AgencyClient, NodeClient, set_peer_address
from jukicore.network.node import CENTER, Node, create_node, trust_each_other
from jukicore.network.push import push_changes
from jukicore.network.sync import apply_inbox, default_recipients, export_changes
from jukicore.network.tls import client_context
from jukicore.register import Actor as RegActor
from jukicore.register import open_register

PASSWORD = "bench-network-password"
#: Bulk verifications are timed as the best of this many runs each way (the first of a
#: process pays for its memory and the page cache; the next ones are what a service does).
REPEATS = 2
PURPOSE = "jps-pension-benefits"
SCALES = {
    "full": {"records": 200_000, "changes": 40_000, "rows": 1_000_000, "seconds": 10.0,
             "clients": 16},
    "small": {"records": 3_000, "changes": 2_000, "rows": 20_000, "seconds": 2.0,
              "clients": 8},
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """``jukicore node serve`` in its own process."""

    def __init__(self, node: Node, workers: int = 1) -> None:
        import httpx

        self.port, ops = free_port(), free_port()
        env = {**os.environ, "JUKICORE_NODE_PASSWORD": PASSWORD}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jukicore",
             *os.environ.get("BENCH_SERVER_LOG", "").split(),  # e.g. --log-level info
             "node", "serve", str(node.path), "--port", str(self.port), "--ops-port",
             str(ops), "--max-concurrency", "1024", "--workers", str(workers)], env=env)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{ops}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{node.node_id}: the server did not start")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """CPU seconds the server's processes have used (Linux /proc)."""
        import glob

        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        pids = [self.proc.pid] + [int(p.split("/")[2]) for p in glob.glob("/proc/*/stat")
                                  if p.split("/")[2].isdigit()
                                  and _ppid(int(p.split("/")[2])) == self.proc.pid]
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def build(root: Path, population: int, center_store: str | None = None
          ) -> tuple[Node, Node, Node]:
    """A municipality with ``population`` residents loaded (each an outbox entry), its
    prefecture and the center, trusting each other."""
    from jukicore.codes import CodeRegistry
    from jukicore.synth import synthesize_municipality

    m = synthesize_municipality(population, seed=7, as_of=dt.date(2026, 11, 30))
    pref_id = default_recipients(m.lg_code)[0]
    muni = create_node(root / m.lg_code, m.lg_code, password=PASSWORD,
                       prefecture=m.prefecture, municipality=m.name)
    pref = create_node(root / pref_id, pref_id, password=PASSWORD)
    center = create_node(root / CENTER, CENTER, password=PASSWORD, store=center_store)
    trust_each_other((muni, pref, center), PASSWORD)
    admin = RegActor.operator("admin", m.lg_code, "admin")
    with open_register(muni.store_target()) as reg:
        reg.import_code_block(CodeRegistry().allocate_block(population * 2, m.lg_code),
                              actor=admin)
        reg.load(m.residents, m.households, actor=admin)
    return muni, pref, center


def files_night(muni: Node, recipients: list[Node]) -> float:
    """The file transport: export, copy, apply, acknowledgement back."""
    t = time.perf_counter()
    for r in recipients:
        packet = export_changes(muni, r.node_id, password=PASSWORD)
        assert packet is not None
        shutil.copyfile(packet, r.inbox / packet.name)
        (_, outcome), = list(apply_inbox(r, password=PASSWORD))
        assert not isinstance(outcome, Exception) and outcome.reply is not None
        shutil.copyfile(outcome.reply, muni.inbox / outcome.reply.name)
        (_, ack), = list(apply_inbox(muni, password=PASSWORD))
        assert not isinstance(ack, Exception)
    return time.perf_counter() - t


def bench_night(root: Path, changes: int) -> dict[str, Any]:
    muni, pref, center = build(root / "net", changes)
    shutil.copytree(root / "net", root / "files", symlinks=True)
    fm = Node.open(root / "files" / muni.node_id)
    fr = [Node.open(root / "files" / n.node_id) for n in (pref, center)]
    with open_register(muni.store_target()) as reg:
        rows = reg.outbox_last_seq(actor=RegActor.node(muni.node_id, muni.node_id, "cs"))
    servers = [Served(pref), Served(center)]
    try:
        for n, s in zip((pref, center), servers, strict=True):
            set_peer_address(muni, n.node_id, s.url)
        with NodeClient(muni, PASSWORD, timeout=300) as c:
            c.call_json(CENTER, "/v1/health", {})  # the connections' handshakes
            c.call_json(pref.node_id, "/v1/health", {})
            t = time.perf_counter()
            out = push_changes(muni, c, password=PASSWORD)
            net = time.perf_counter() - t
    finally:
        for s in servers:
            s.stop()
    assert all(v["status"] == "sent" and v["acked_seq"] == rows for v in out.values()), out
    files = files_night(fm, fr)
    return {"entries": rows, "network_s": net, "files_s": files, "ratio": net / files}


async def _load(port: int, ctx: ssl.SSLContext, codes: list[str], clients: int,
                seconds: float) -> list[float]:
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        k = i
        while time.perf_counter() < stop:
            body = json.dumps({"purpose": PURPOSE, "code": codes[k % len(codes)]}).encode()
            k += clients
            t = time.perf_counter()
            writer.write(b"POST /v1/identity/confirm HTTP/1.1\r\nHost: c\r\n"
                         b"Content-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"refused: {head[:200]!r}")
            n = next(int(h.split(b":")[1]) for h in head.split(b"\r\n")
                     if h.lower().startswith(b"content-length:"))
            await reader.readexactly(n)
            lat.append(time.perf_counter() - t)
        writer.close()

    await asyncio.gather(*(one(i) for i in range(clients)))
    return lat


def bench_queries(root: Path, records: int, seconds: float, clients: int,
                  workers: int = 1, center_store: str | None = None) -> dict[str, Any]:
    muni, _, center = build(root / "q", records, center_store)
    ident = AgencyIdentity.create(root / "jps", "jps", PASSWORD)
    trust_agency(center, (ident.path / "certificate.pem").read_bytes())
    files_night(muni, [center])
    with open_register(muni.store_target()) as reg:
        codes = [f"{c:011d}" for c in reg.outbox(actor=RegActor.node(
            muni.node_id, muni.node_id, "cs")).column("resident_code").to_pylist()]
    rng = np.random.default_rng(3)
    codes = [codes[i] for i in rng.permutation(len(codes))]
    # in process
    with open_identity_store(center.store_target()) as st:
        actor = Actor.agency("jps")
        st.confirm(agency="jps", purpose=PURPOSE, actor=actor, code=codes[0])
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds / 2:
            st.confirm(agency="jps", purpose=PURPOSE, actor=actor, code=codes[n % len(codes)])
            n += 1
        local_qps = n / (time.perf_counter() - t)
    server = Served(center, workers)
    try:
        record = center.public_record(PASSWORD)
        import base64

        ctx = client_context(ident.certificate, ident.key,
                             [base64.b64decode(record["certificate"])])
        with AgencyClient(ident, record, server.url) as c:  # the service answers
            assert c.confirm(PURPOSE, code=codes[0])["rows"][0]["answer"] == "found"
        asyncio.run(_load(server.port, ctx, codes, clients, 1.0))  # warm
        t, cpu, scpu = time.perf_counter(), time.process_time(), server.cpu_seconds()
        lat = asyncio.run(_load(server.port, ctx, codes, clients, seconds))
        wall = time.perf_counter() - t
        client_cpu = (time.process_time() - cpu) / wall
        server_cpu = (server.cpu_seconds() - scpu) / wall
    finally:
        server.stop()
    ms = np.asarray(lat) * 1000
    qps = len(lat) / wall
    return {"queries": len(lat), "qps": qps, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "in_process_qps": local_qps,
            "ratio": local_qps / qps, "clients": clients, "workers": workers,
            "client_cpu": client_cpu, "server_cpu": server_cpu,
            "store": "PostgreSQL" if center_store else "SQLite"}


def bench_verify(root: Path, records: int, rows: int) -> dict[str, Any]:
    muni, _, center = build(root / "v", records)
    ident = AgencyIdentity.create(root / "jps-v", "jps", PASSWORD)
    trust_agency(center, (ident.path / "certificate.pem").read_bytes())
    files_night(muni, [center])
    with open_register(muni.store_target()) as reg:
        held = reg.outbox(actor=RegActor.node(muni.node_id, muni.node_id, "cs")).column(
            "resident_code").to_numpy()
    rng = np.random.default_rng(5)
    table = pa.table({"resident_code": pa.array(rng.choice(held, rows), pa.uint64())})
    shutil.copytree(center.path, root / "center-copy", symlinks=True)
    local_node = Node.open(root / "center-copy")
    local_s = net_s = float("inf")
    with open_identity_store(local_node.store_target()) as st:
        for _ in range(REPEATS):
            t = time.perf_counter()
            local = st.verify(table, agency="jps", purpose=PURPOSE, actor=Actor.agency("jps"))
            local_s = min(local_s, time.perf_counter() - t)
    server = Served(center)
    try:
        with AgencyClient(ident, center.public_record(PASSWORD), server.url,
                          timeout=3600) as c:
            for _ in range(REPEATS):
                t = time.perf_counter()
                remote = c.verify(table, PURPOSE)
                net_s = min(net_s, time.perf_counter() - t)
    finally:
        server.stop()
    assert remote.equals(local), "the answers differ"
    return {"rows": rows, "network_s": net_s, "in_process_s": local_s, "ratio": net_s / local_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=SCALES, default="full")
    for k in ("records", "changes", "rows", "clients"):
        ap.add_argument(f"--{k}", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--workers", type=int, default=1,
                    help="The center's server processes for the queries (more than one make"
                         " their batches wait for each other's writes on one store).")
    ap.add_argument("--only", choices=("queries", "night", "verify"))
    ap.add_argument("--center-store", choices=("sqlite", "postgresql"), default="sqlite",
                    help="The center's store for the queries: a throwaway PostgreSQL server"
                         " on loopback (fsync on), as a center runs, or SQLite.")
    a = ap.parse_args()
    cfg = {**SCALES[a.scale], **{k: v for k, v in vars(a).items()
                                 if k in SCALES["full"] and v is not None}}
    root = Path(tempfile.mkdtemp(prefix="bench-network-"))
    try:
        if a.only in (None, "queries"):
            pg = None
            target = None
            if a.center_store == "postgresql":
                from jukicore.testing import TempPostgres

                pg = TempPostgres(durable=True).start()
                target = pg.create_database("center")
            try:
                q = bench_queries(root, cfg["records"], cfg["seconds"], cfg["clients"],
                                  a.workers, target)
            finally:
                if pg is not None:
                    pg.stop()
            print(f"agency code queries over mutual TLS ({q['clients']} connections, "
                  f"{q['workers']} server processes, center on {q['store']}, "
                  f"{q['queries']} queries): {q['qps']:.0f}/s, p50 {q['p50_ms']:.2f} ms, "
                  f"p99 {q['p99_ms']:.2f} ms; in process, one call at a time "
                  f"{q['in_process_qps']:.0f}/s: network / in process {1 / q['ratio']:.2f}x"
                  f" (targets: >= 2000/s, p99 <= 20 ms); "
                  f"the load generator used {q['client_cpu']:.0%} of a core, the server "
                  f"{q['server_cpu']:.0%}")
        if a.only in (None, "night"):
            n = bench_night(root, cfg["changes"])
            print(f"a night of {n['entries']} entries pushed to both recipients and "
                  f"acknowledged: network {n['network_s']:.2f} s, files "
                  f"{n['files_s']:.2f} s: {n['ratio']:.2f}x (target: <= 2 s)")
        if a.only in (None, "verify"):
            v = bench_verify(root, cfg["records"], cfg["rows"])
            print(f"bulk verification of {v['rows']} rows: network {v['network_s']:.2f} s,"
                  f" in process {v['in_process_s']:.2f} s: {v['ratio']:.2f}x "
                  f"(target: <= 1.5x)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
