"""Crash safety: ``sync apply`` and ``sync export`` killed (SIGKILL) at random moments.

Each run starts from the same state, is killed after a random delay drawn with
a fixed seed, and is started again to completion. The final state must equal
that of one uninterrupted run, compared by a content digest (wall-clock
columns and random packet ids left out where a rerun legitimately makes new
ones).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from netkit import DAY, MUNI, PASSWORD, PREF, Network, apply_day, build_network

from jukicore.identity import open_identity_store
from jukicore.network.node import CENTER, Node
from jukicore.network.packet import Packet
from jukicore.network.sync import export_changes
from jukicore.register import Actor, open_register
from jukicore.testing import TempPostgres

KILLS = 30
#: At least this many of the kills must interrupt a running process (else the
#: test would prove nothing: delays landing after the run ended).
MIN_INTERRUPTED = 20
SEED = 20021205


def _env() -> dict[str, str]:
    """The environment of a nightly script: the node's password and the operator's
    credentials (the suite's ``cli_operator``, set for this test)."""
    return {**os.environ, "JUKICORE_NODE_PASSWORD": PASSWORD}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "jukicore", *args]


def _run(args: list[str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(args, env=_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return time.perf_counter() - t


def _kill_after(args: list[str], delay: float) -> bool:
    """Start ``args`` and SIGKILL it after ``delay`` seconds; True if it was still running."""
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    return False


def _startup() -> float:
    """Seconds the interpreter needs to import what the command uses (best of three)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import jukicore.network.sync, jukicore.cli"],
                       check=True)
        best = min(best, time.perf_counter() - t)
    return best


def _delays(total: float, startup: float) -> list[float]:
    """Kill moments spread over the run after the interpreter's start-up."""
    rng = random.Random(SEED)
    return [rng.uniform(startup, max(total * 0.95, startup + 0.05)) for _ in range(KILLS)]


def _nights(net: Network, nights: int = 4, per_night: int = 1500) -> list[Path]:
    """Several exports without acknowledgements: overlapping packets, as after lost acks."""
    packets = []
    for i in range(nights):
        apply_day(net, per_night, seed=100 + i, day=DAY + dt.timedelta(days=i))
        p = export_changes(net.muni, CENTER)
        assert p is not None
        kept = p.with_name(f"night{i}-{p.name}")
        shutil.copy(p, kept)
        packets.append(kept)
    return packets


def _clone_center(net: Network, dest: Path, pg: TempPostgres | None, template: str | None,
                  tag: str) -> Node:
    shutil.copytree(net.center.path, dest)
    if pg is not None and template is not None:
        name = f"crash_{os.getpid()}_{tag}"
        uri = pg.create_database(name, template=template)
        doc = json.loads((dest / "node.json").read_text())
        doc["store"] = uri
        (dest / "node.json").write_text(json.dumps(doc))
    return Node.open(dest)


@pytest.mark.parametrize("identity_target", ["sqlite", "postgresql"], indirect=True)
def test_sync_apply_survives_sigkill(tmp_path: Path, identity_target: Callable[[str], str],
                                     pg_server: TempPostgres | None) -> None:
    net = build_network(tmp_path / "net", identity_target, population=30_000)
    packets = _nights(net)
    pg = pg_server if "://" in net.center.store else None
    template = None
    if pg is not None:  # the pristine center store becomes the template of every run
        template = net.center.store.rsplit("/", 1)[1]
    args = [str(p) for p in packets]

    # Two uninterrupted runs: the reference state (they must agree), and the shorter one's
    # duration spreads the kills (a run slowed by a busy machine would put many kills
    # after the end).
    totals, digests = [], []
    for tag in ("ref", "ref2"):
        ref = _clone_center(net, tmp_path / tag, pg, template, tag)
        totals.append(_run(_cli("sync", "apply", str(ref.path), *args, "-q")))
        with open_identity_store(ref.store_target()) as st:
            digests.append(st.content_digest())
            assert st.count() > 2000
    expected = digests[0]
    assert digests[1] == expected
    total = min(totals)
    startup = _startup()
    interrupted = 0
    for k, delay in enumerate(_delays(total, startup)):
        node = _clone_center(net, tmp_path / f"run{k}", pg, template, str(k))
        interrupted += _kill_after(_cli("sync", "apply", str(node.path), *args, "-q"), delay)
        _run(_cli("sync", "apply", str(node.path), *args, "-q"))
        with open_identity_store(node.store_target()) as st:
            assert st.content_digest() == expected, f"kill {k} after {delay:.3f}s"
        acks = sorted(node.outbox.glob(f"{CENTER}-{MUNI}-ack-*.jkp"))
        assert acks, f"kill {k}: no acknowledgement written"
        shutil.rmtree(node.path)
    assert interrupted >= MIN_INTERRUPTED, f"only {interrupted} kills hit a running apply"


def _muni_state(node: Node, readers: dict[str, Node]) -> str:
    """Register content that matters to sync, and every packet's decrypted content."""
    h = hashlib.sha256()
    actor = Actor.node(MUNI, MUNI, "cs")
    with open_register(node.store_target()) as reg:
        h.update(repr(reg.sync_peers(actor=actor)).encode())
        h.update(repr(sorted((e["direction"], e["peer"], e["kind"], e["first_seq"],
                              e["last_seq"]) for e in reg.sync_log(actor=actor))).encode())
        h.update(str(reg.outbox_last_seq(actor=actor)).encode())
    for p in sorted(node.outbox.glob("*.jkp")):
        packet = Packet.from_bytes(p.read_bytes())
        reader = readers[packet.header.recipient]
        _, table = packet.verify_and_open(reader.trust(), reader.node_id,
                                          reader.keys(PASSWORD))
        h.update(p.name.encode())
        sink = table.to_pylist()
        h.update(repr(sink).encode())
    return h.hexdigest()


def test_sync_export_survives_sigkill(tmp_path: Path,
                                      identity_target: Callable[[str], str]) -> None:
    net = build_network(tmp_path / "net", identity_target, population=30_000)
    apply_day(net, 1500, seed=7)
    readers = {PREF: net.pref, CENTER: net.center}
    export = ["sync", "export", "--to", PREF, "--to", CENTER]

    def clone(tag: str) -> Node:
        dest = tmp_path / tag
        shutil.copytree(net.muni.path, dest)
        return Node.open(dest)

    ref = clone("ref")
    total = _run(_cli(*export[:2], str(ref.path), *export[2:]))
    expected = _muni_state(ref, readers)
    startup = _startup()
    interrupted = 0
    for k, delay in enumerate(_delays(total, startup)):
        node = clone(f"run{k}")
        interrupted += _kill_after(_cli(*export[:2], str(node.path), *export[2:]), delay)
        _run(_cli(*export[:2], str(node.path), *export[2:]))
        assert _muni_state(node, readers) == expected, f"kill {k} after {delay:.3f}s"
        shutil.rmtree(node.path)
    assert interrupted >= MIN_INTERRUPTED, f"only {interrupted} kills hit a running export"
